import AttuneText
import Foundation
import XCTest

final class SamplerTests: XCTestCase {
    /// transformers' class name for each step, to compare with the goldens.
    private func transformersName(_ step: LogitsStep) -> String {
        switch step {
        case .repetitionPenalty: return "RepetitionPenaltyLogitsProcessor"
        case .temperature: return "TemperatureLogitsWarper"
        case .topK: return "TopKLogitsWarper"
        case .topP: return "TopPLogitsWarper"
        case .minP: return "MinPLogitsWarper"
        }
    }

    /// Same processors, same order, same output (bit for bit, -inf where transformers masks)
    /// as transformers' `generate` builds from the same generation_config.json.
    func testProcessorsAndScoresMatchTransformers() throws {
        let cases = try SamplingFixtures.processorCases()
        XCTAssertGreaterThanOrEqual(cases.count, 16)
        for c in cases {
            let config = try c.config()
            XCTAssertEqual(config.logitsSteps.map(transformersName), c.processors, c.name)
            var sampler = Sampler(config: config, seed: 0)
            let ours = try sampler.processedLogits(c.logits, history: c.history)
            XCTAssertEqual(ours.count, c.scores.count, c.name)
            for (i, (mine, theirs)) in zip(ours, c.scores).enumerated() {
                if let theirs {
                    XCTAssertEqual(mine, theirs, "\(c.name): token \(i)")
                } else {
                    XCTAssertEqual(mine, -.infinity, "\(c.name): token \(i) should be filtered")
                }
            }
        }
    }

    /// On the greedy goldens (no processor but the repetition penalty), `next` is the argmax
    /// of transformers' scores.
    func testGreedyPicksTheTransformersArgmax() throws {
        let greedy = try SamplingFixtures.processorCases().filter { !$0.settingsJSON.contains("\"do_sample\": true") }
        XCTAssertEqual(greedy.map(\.name), ["greedy_defaults", "greedy_ignores_warpers", "repetition_penalty_out_of_vocab"])
        for c in greedy {
            let scores = c.scores.map { $0! }
            let expected = scores.indices.first { scores[$0] == scores.max() }!
            var sampler = Sampler(config: try c.config(), seed: 0)
            XCTAssertEqual(Int(try sampler.next(logits: c.logits, history: c.history)), expected, c.name)
        }
        var sampler = Sampler(config: GenerationConfig(), seed: 0)
        XCTAssertEqual(try sampler.next(logits: [1, 3, 3, -2], history: []), 1, "ties go to the lowest id, as torch.argmax")
    }

    func testTopK1EqualsGreedy() throws {
        var rng = RandomStream(seed: 7, stream: 0)
        var greedyConfig = GenerationConfig()
        greedyConfig.repetitionPenalty = 1.3
        var topK1 = greedyConfig
        topK1.doSample = true
        topK1.topK = 1
        topK1.temperature = 1.7
        topK1.topP = 0.5
        var greedy = Sampler(config: greedyConfig, seed: 1)
        var sampled = Sampler(config: topK1, seed: 2)
        var history: [Int32] = []
        for _ in 0..<200 {
            let logits = (0..<1000).map { _ in Float(rng.nextUnitInterval() * 8 - 4) }
            let g = try greedy.next(logits: logits, history: history)
            XCTAssertEqual(try sampled.next(logits: logits, history: history), g)
            history.append(g)
        }
    }

    func testSameSeedSameIdsAndStreamsDiffer() throws {
        var config = GenerationConfig()
        config.doSample = true
        config.topK = 0
        let logits = (0..<64).map { Float(sin(Double($0))) }
        func draws(seed: UInt64, stream: Int) throws -> [Int32] {
            var s = Sampler(config: config, seed: seed, stream: stream)
            return try (0..<100).map { _ in try s.next(logits: logits, history: []) }
        }
        XCTAssertEqual(try draws(seed: 42, stream: 0), try draws(seed: 42, stream: 0))
        XCTAssertNotEqual(try draws(seed: 42, stream: 0), try draws(seed: 42, stream: 1))
        XCTAssertNotEqual(try draws(seed: 42, stream: 0), try draws(seed: 43, stream: 0))
    }

    /// The PRNG gives the numbers of an independent implementation (the goldens script).
    func testRandomStreamMatchesReferenceImplementation() throws {
        let cases = try SamplingFixtures.load("random.json")
        XCTAssertEqual(cases.count, 5)
        for c in cases {
            let seed = try XCTUnwrap(UInt64(try XCTUnwrap(c["seed"] as? String)))
            let stream = try XCTUnwrap(c["stream"] as? Int)
            let expected = try XCTUnwrap(c["outputs"] as? [String]).map { UInt64($0)! }
            var r = RandomStream(seed: seed, stream: stream)
            XCTAssertEqual((0..<expected.count).map { _ in r.next() }, expected, "seed \(seed) stream \(stream)")
        }
    }

    /// 20 000 draws on a fixed row follow the softmax of transformers' processed scores:
    /// Pearson's chi-square over the kept tokens stays below the 0.1% critical value, and no
    /// filtered token is ever drawn. The seed is fixed, so the outcome is too.
    func testDrawsFollowTheFilteredSoftmax() throws {
        let c = try XCTUnwrap(try SamplingFixtures.processorCases().first { $0.name == "chi_square" })
        let kept = c.scores.indices.filter { c.scores[$0] != nil }
        XCTAssertEqual(kept.count, 6)  // the critical value below is for 5 degrees of freedom
        let top = Double(kept.map { c.scores[$0]! }.max()!)
        let weights = kept.map { exp(Double(c.scores[$0]!) - top) }
        let total = weights.reduce(0, +)

        var sampler = Sampler(config: try c.config(), seed: 20_261_203)
        let n = 20_000
        var counts = [Int](repeating: 0, count: c.logits.count)
        for _ in 0..<n { counts[Int(try sampler.next(logits: c.logits, history: c.history))] += 1 }

        XCTAssertEqual(kept.reduce(0) { $0 + counts[$1] }, n, "a filtered token was drawn: \(counts)")
        var chi2 = 0.0
        for (j, id) in kept.enumerated() {
            let expected = Double(n) * weights[j] / total
            chi2 += (Double(counts[id]) - expected) * (Double(counts[id]) - expected) / expected
        }
        XCTAssertLessThan(chi2, 20.515, "counts \(counts)")  // chi-square 0.999 quantile, 5 dof

        // The same statistic against the unfiltered softmax must be far off: the test can fail.
        let rawTop = Double(c.logits.max()!)
        let rawWeights = c.logits.map { exp(Double($0) - rawTop) }
        let rawTotal = rawWeights.reduce(0, +)
        let rawChi2 = c.logits.indices.reduce(0.0) { acc, i in
            let e = Double(n) * rawWeights[i] / rawTotal
            return acc + (Double(counts[i]) - e) * (Double(counts[i]) - e) / e
        }
        XCTAssertGreaterThan(rawChi2, 100)
    }

    /// Top-p over a large row (the binned path) keeps exactly the set a full sort gives,
    /// with many tied scores ranked by lower id first.
    func testTopPOnALargeRowEqualsAFullSort() throws {
        var rng = RandomStream(seed: 5, stream: 0)
        let logits = (0..<20_000).map { _ in Float(Int(rng.nextUnitInterval() * 48)) / 4 }
        for p in [0.0, 0.5, 0.9, 0.99] {
            var config = GenerationConfig()
            config.doSample = true
            config.topK = 0
            config.topP = p
            var sampler = Sampler(config: config, seed: 0)
            let out = try sampler.processedLogits(logits, history: [])
            let kept = Set(out.indices.filter { out[$0] != -.infinity })

            let top = Double(logits.max()!)
            let weights = logits.map { exp(Double($0) - top) }
            let total = weights.reduce(0, +)
            let ranked = logits.indices.sorted { logits[$0] > logits[$1] || (logits[$0] == logits[$1] && $0 < $1) }
            var expected = Set<Int>()
            var massAbove = 0.0
            for i in ranked where expected.isEmpty || massAbove < p * total {
                expected.insert(i)
                massAbove += weights[i]
            }
            XCTAssertEqual(kept, expected, "top_p \(p)")
            XCTAssertGreaterThan(kept.count, p == 0 ? 0 : 100)
        }
    }

    func testRepetitionPenaltyAsTransformersDefinesIt() throws {
        var config = GenerationConfig()
        config.repetitionPenalty = 2
        var sampler = Sampler(config: config, seed: 0)
        // Positive logits are divided, negative multiplied, zero stays; each id once, however
        // often it repeats; ids outside the row are ignored.
        let out = try sampler.processedLogits([4, -1, 0, 3, 1], history: [0, 0, 0, 1, 2, 9, -3])
        XCTAssertEqual(out, [2, -2, 0, 3, 1])
        // Greedy sees the penalty: token 0 (4 → 2) loses to token 3.
        XCTAssertEqual(try sampler.next(logits: [4, -1, 0, 3, 1], history: [0]), 3)
    }

    func testBadLogitsAreRefused() {
        var sampler = Sampler(config: GenerationConfig(), seed: 0)
        XCTAssertThrowsError(try sampler.next(logits: [], history: [])) {
            XCTAssertEqual("\($0)", "sampling: empty logits row")
        }
        XCTAssertThrowsError(try sampler.next(logits: [0, .nan, 1], history: [])) {
            XCTAssertEqual("\($0)", "sampling: logit of token 1 is nan")
        }
        XCTAssertThrowsError(try sampler.next(logits: [0, 1, .infinity], history: [])) {
            XCTAssertEqual("\($0)", "sampling: logit of token 2 is inf")
        }
        XCTAssertThrowsError(try sampler.next(logits: [-.infinity, -.infinity], history: [])) {
            XCTAssertEqual("\($0)", "sampling: every logit is -inf")
        }
        var cold = GenerationConfig()
        cold.doSample = true
        cold.temperature = 1e-38
        var frozen = Sampler(config: cold, seed: 0)
        XCTAssertThrowsError(try frozen.next(logits: [1, 5], history: [])) {
            XCTAssertEqual("\($0)", "sampling: temperature 1e-38 turns the logit of token 1 into inf")
        }
    }

    func testTopKLargerThanTheRowKeepsEveryToken() throws {
        var config = GenerationConfig()
        config.doSample = true
        config.topK = Int.max
        var sampler = Sampler(config: config, seed: 0)
        XCTAssertEqual(try sampler.processedLogits([0.5, -2, 3], history: []), [0.5, -2, 3])
        config.topK = 2
        sampler = Sampler(config: config, seed: 0)
        XCTAssertEqual(try sampler.processedLogits([0.5, -2, 3], history: []), [0.5, -.infinity, 3])
    }

    func testMaskedTokensAreNeverDrawn() throws {
        var config = GenerationConfig()
        config.doSample = true
        config.topK = 0
        var sampler = Sampler(config: config, seed: 3)
        let logits: [Float] = [-.infinity, 0, -.infinity, 0.5, -.infinity]
        for _ in 0..<500 {
            XCTAssertTrue([1, 3].contains(try sampler.next(logits: logits, history: [])))
        }
    }
}
