import AttuneCodegen
import AttuneIR
import AttuneKernels
import AttuneNumerics
import AttunePasses
import AttuneRuntime
import AttuneTensor
@testable import AttuneTune
import Foundation
import XCTest

/// Per-layer accuracy-aware choice on the 8-layer fixture.
final class ModelTunerTests: XCTestCase {
    var model: LoadedModel!
    var sequences: [[Int32]] = []

    override func setUpWithError() throws {
        let folder = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Fixtures/models/llama_deep")
        model = try ModelSource.load(folder.path)
        let (shape, values) = try Npy.readIntegers(contentsOf: folder.appendingPathComponent("calibration_tokens.npy"))
        sequences = stride(from: 0, to: values.count, by: shape[1]).prefix(2).map { values[$0..<$0 + shape[1]].map { Int32($0) } }
    }

    func testChoicesStayWithinTheBudgetAndTheModelIsCompared() throws {
        // A budget below fp32 rounding rejects every candidate but flash (the baseline).
        var strict = ModelTuner(budget: 1e-9, candidates: try ["flash", "unified_max", "sparge:cdfthreshd=0.5,simthreshd1=0.9,block_q=16,block_kv=16"].map { try KernelChoice(parsing: $0) })
        strict.pairs = 3
        let r = try strict.tune(model, sequences: sequences, toolchain: try Toolchain.detect())
        XCTAssertEqual(r.layers.count, 8)
        XCTAssertTrue(r.layers.allSatisfy { $0.choice.kernel == "flash" })
        XCTAssertTrue(r.layers.allSatisfy { $0.rejected.map(\.0).contains("unified_max") }, "unified_max errs ~1e-7 > 1e-9")
        XCTAssertTrue(r.layers.allSatisfy { $0.decode == nil }, "decode steps keep flash too")
        XCTAssertEqual(r.comparison.positions, 2 * 96)
        XCTAssertEqual(r.comparison.top1Agreement, 1)
        XCTAssertLessThanOrEqual(r.comparison.maxAbs, 1e-4)

        // A usual budget: whatever is chosen is within it, and the policy file reads back.
        var usual = ModelTuner(budget: 0.05, candidates: try ["flash", "unified_max", "sparge"].map { try KernelChoice(parsing: $0) })
        usual.pairs = 3
        usual.kascade = .init(anchors: 2, parameters: ["fraction": 0.25, "min_k": 4, "tile": 8])
        let u = try usual.tune(model, sequences: sequences, toolchain: try Toolchain.detect())
        XCTAssertTrue(u.layers.allSatisfy { $0.relL1 <= 0.05 })
        XCTAssertEqual(u.calibration.kascade?.anchors.count, 2, "kascade anchors chosen on the same data")
        XCTAssertEqual(u.calibration.layers.count, 8, "and φ for every layer")
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("attune-policy-\(UUID().uuidString).json")
        defer { try? FileManager.default.removeItem(at: file) }
        try u.policyJSON.write(to: file)
        let overrides = try AttentionPolicy.load(file.path)
        XCTAssertEqual(overrides.byLayer.count, 8)
        XCTAssertEqual(overrides.byLayer.mapValues(\.kernel), Dictionary(uniqueKeysWithValues: u.layers.map { ($0.layer, $0.choice.kernel) }))
        XCTAssertEqual(overrides.decodeByLayer, Dictionary(uniqueKeysWithValues: u.layers.compactMap { c in c.decode.map { (c.layer, $0) } }))
        XCTAssertTrue(u.layers.allSatisfy { $0.decode != $0.choice }, "a decode choice is written only when it differs")
    }

    /// The decode shape is the last query row against every key: flash on it gives the
    /// reference's last rows, and a decode choice is written to the policy's "decode" object.
    func testDecodeShapeAndPolicy() throws {
        let a = AttentionAttrs(heads: 4, kvHeads: 2, headDim: 8)
        var g = SystemRandomNumberGenerator()
        func tensor(_ rows: Int, _ width: Int) -> F64Tensor { F64Tensor(shape: [rows, width], data: (0..<rows * width).map { _ in Double.random(in: -1...1, using: &g) }) }
        let x = try ModelTuner.activations(a, q: tensor(20, 32), k: tensor(20, 16), v: tensor(20, 16))
        let d = ModelTuner.decodeShape(x)
        XCTAssertEqual(d.problem.qLen, 1)
        XCTAssertEqual(d.problem.kvLen, 20)
        XCTAssertEqual(d.reference.count, 4 * 8)
        XCTAssertEqual(d.q.data[8..<16], x.q.data[(20 + 19) * 8..<(20 + 20) * 8], "head 1's last row")
        let out = try FlashKernel().run(d.problem, q: d.q, k: d.k, v: d.v).o.data
        XCTAssertLessThanOrEqual(ErrorMetrics.compare(out, d.reference).relL1, 1e-6)
        XCTAssertEqual(d.reference[0..<8], x.reference[(19 * 8)..<(20 * 8)], "head 0's last reference row")

        let layers = [ModelTuner.LayerChoice(layer: 0, choice: KernelChoice(kernel: "sparge"), speedup: 1.3, relL1: 0.01, cosine: 1,
                                              rejected: [], noise: 0.01, decode: KernelChoice(kernel: "flash"), decodeSpeedup: 1)]
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("attune-policy-\(UUID().uuidString).json")
        defer { try? FileManager.default.removeItem(at: file) }
        try ModelTuner.Result.policyJSON(layers, evidence: [:]).write(to: file)
        let overrides = try AttentionPolicy.load(file.path)
        XCTAssertEqual(overrides.byLayer, [0: KernelChoice(kernel: "sparge")])
        XCTAssertEqual(overrides.decodeByLayer, [0: KernelChoice(kernel: "flash")])
    }

    /// Model budgets: while one fails, the approximate layer with the largest rel-L1 goes
    /// back to flash, until every budget holds.
    func testModelBudgetsRevertTheWorstLayersFirst() throws {
        func choice(_ layer: Int, _ kernel: String, _ relL1: Double) -> ModelTuner.LayerChoice {
            .init(layer: layer, choice: KernelChoice(kernel: kernel), speedup: 1.5, relL1: relL1, cosine: 1, rejected: [], noise: 0.01)
        }
        // Each approximate layer adds its rel-L1 / 10 to the KL in this made-up model.
        func quality(_ layers: [ModelTuner.LayerChoice]) -> ModelQuality {
            let kl = layers.filter { $0.choice.kernel != "flash" }.reduce(0) { $0 + $1.relL1 / 10 }
            return ModelQuality(meanKL: kl, maxKL: kl, top1Agreement: 1 - kl, maxAbs: kl, perplexityRatio: 1 + kl, positions: 10)
        }
        var layers = [choice(0, "flash", 0), choice(1, "sparge", 0.04), choice(2, "unified_max", 1e-7), choice(3, "sparge", 0.02)]
        let reverted = try ModelTuner.enforce([.kl(0.001)], layers: &layers, quality: quality(layers), reporter: .silent) { quality($0) }
        XCTAssertEqual(reverted, [1, 3], "largest error first, until KL <= 0.001")
        XCTAssertEqual(layers.map(\.choice.kernel), ["flash", "flash", "unified_max", "flash"])
        XCTAssertEqual(layers[1].rejected.map(\.0), ["sparge"])
        var kept = [choice(0, "sparge", 0.04)]
        XCTAssertEqual(try ModelTuner.enforce([.top1(0.99), .perplexity(relativeIncrease: 0.01)], layers: &kept,
                                              quality: quality(kept), reporter: .silent) { quality($0) }, [],
                       "0.004 of KL keeps top-1 at 0.996 and perplexity within +1 %")

        XCTAssertEqual(try ModelBudget.parse("kl=0.01"), .kl(0.01))
        XCTAssertEqual(try ModelBudget.parse("ppl=+1%"), .perplexity(relativeIncrease: 0.01))
        XCTAssertEqual(try ModelBudget.parse("top1=99%"), .top1(0.99))
        XCTAssertNil(try ModelBudget.parse("rel_l1=0.05"))
        for (bad, message) in [("kl=-1", "kl must be >= 0"), ("top1=2", "top1 must be in 0...1"), ("bleu=3", "unknown measure 'bleu'"),
                               ("kl", "expects NAME=VALUE"), ("ppl=x%", "'x%' is not a number")] {
            XCTAssertThrowsError(try ModelBudget.parse(bad), bad) { XCTAssertTrue("\($0)".contains(message), "\(bad): \($0)") }
        }
    }

    /// End to end: a KL budget is met as measured, and the policy file carries the evidence.
    func testAKLBudgetIsMetAndRecordedWithThePolicy() throws {
        var tuner = ModelTuner(budget: 0.5, candidates: try ["flash", "unified_max", "sparge:cdfthreshd=0.5,simthreshd1=0.9,block_q=16,block_kv=16"]
            .map { try KernelChoice(parsing: $0) })
        tuner.pairs = 3
        tuner.modelBudgets = [.kl(1e-6)]
        let r = try tuner.tune(model, sequences: sequences, toolchain: try Toolchain.detect())
        XCTAssertLessThanOrEqual(r.quality.meanKL, 1e-6)
        for layer in r.reverted { XCTAssertEqual(r.layers.first { $0.layer == layer }?.choice.kernel, "flash", "reverted layer \(layer)") }
        XCTAssertEqual(r.evidence["reverted_layers"] as? [Int], r.reverted)
        let evidence = try XCTUnwrap(try JSONSerialization.jsonObject(with: r.policyJSON) as? [String: Any])["evidence"] as? [String: Any]
        XCTAssertEqual(evidence?["budgets"] as? [String], ["rel_l1=0.5", "kl=1e-06"])
        // JSON keeps a double to within an ulp or so (JSONSerialization prints 17 significant digits).
        XCTAssertEqual(try XCTUnwrap(evidence?["kl_mean"] as? Double), r.quality.meanKL, accuracy: 1e-12 * max(r.quality.meanKL, 1e-300))
        XCTAssertEqual(evidence?["positions"] as? Int, 2 * 96)
        XCTAssertTrue((evidence?["data"] as? String)?.hasPrefix("fnv64:") == true)
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("attune-policy-\(UUID().uuidString).json")
        defer { try? FileManager.default.removeItem(at: file) }
        try r.policyJSON.write(to: file)
        XCTAssertNoThrow(try AttentionPolicy.load(file.path))
        XCTAssertTrue(AttentionPolicy.evidenceSummary(file.path)?.hasPrefix("chosen by attune tune under rel_l1=0.5, kl=1e-06 on fnv64:") == true)
    }

    /// Formats: a budget no format can keep rejects them all with the measured quality; a
    /// loose one keeps a format only if it decodes faster beyond the noise; the policy
    /// carries the choice, and formats need an end-to-end budget.
    func testFormatsAreChosenWithinTheModelBudgets() throws {
        var strict = ModelTuner(budget: 0.05, candidates: [KernelChoice(kernel: "flash")])
        strict.pairs = 3
        strict.modelBudgets = [.kl(1e-12)]
        strict.formats = FormatCandidates(weights: [.bf16, .quantized(QuantizedLayout(bits: 8))], kv: [.bf16, .int8])
        strict.formats.groups = false   // WeightMixTests search groups
        let s = try strict.tune(model, sequences: sequences, toolchain: try Toolchain.detect())
        XCTAssertEqual(s.formatTrials.map(\.option), ["weights=int8", "weights=bf16", "kv=int8", "kv=bf16"], "fewest bytes first, weights before KV")
        for t in s.formatTrials {
            XCTAssertFalse(t.accepted, t.summary)
            XCTAssertTrue(t.outcome.hasPrefix("over kl=1e-12"), t.summary)
            XCTAssertGreaterThan(try XCTUnwrap(t.quality).meanKL, 1e-12, t.summary)
        }
        XCTAssertNil(s.kv)
        XCTAssertNil(s.weights)
        XCTAssertEqual(s.quality.maxAbs, 0, "flash against flash, stored formats")
        XCTAssertEqual(s.evidence["formats_tried"] as? [String], s.formatTrials.map(\.summary))

        var loose = strict
        loose.modelBudgets = [.kl(1)]
        loose.formats = FormatCandidates(kv: [.int8])
        let l = try loose.tune(model, sequences: sequences, toolchain: try Toolchain.detect())
        let t = try XCTUnwrap(l.formatTrials.first)
        XCTAssertNotNil(t.decodeSpeedup, "within the budget, so timed")
        XCTAssertEqual(t.accepted, t.decodeSpeedup! - 1 > t.noise!)
        XCTAssertEqual(l.kv, t.accepted ? .int8 : nil)
        if t.accepted { XCTAssertGreaterThan(l.quality.meanKL, 0, "the kept format's quality is the result's") }
        let object = try XCTUnwrap(try JSONSerialization.jsonObject(with: ModelTuner.Result.policyJSON([], evidence: [:], kv: .int8, weights: .quantized(QuantizedLayout(bits: 8, group: 64, scale: .f32)))) as? [String: Any])
        XCTAssertEqual(object["kv"] as? String, "int8")
        XCTAssertEqual(object["weights"] as? String, "int8:group=64,scale=f32")
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("attune-policy-\(UUID().uuidString).json")
        defer { try? FileManager.default.removeItem(at: file) }
        try ModelTuner.Result.policyJSON([], evidence: [:], kv: .bf16, weights: .quantized(QuantizedLayout(bits: 8, group: 64, scale: .f32))).write(to: file)
        let contents = try AttentionPolicy.contents(file.path)
        XCTAssertEqual(contents.kv, .bf16)
        XCTAssertEqual(contents.weights, .quantized(QuantizedLayout(bits: 8, group: 64, scale: .f32)))

        var noBudget = ModelTuner(budget: 0.05, candidates: [KernelChoice(kernel: "flash")])
        noBudget.formats = FormatCandidates(kv: [.int8])
        XCTAssertThrowsError(try noBudget.tune(model, sequences: sequences, toolchain: try Toolchain.detect())) {
            XCTAssertTrue("\($0)".contains("needs an end-to-end budget"), "\($0)")
        }
    }
}
