import AttuneIR
import AttuneKernels
import AttunePasses
import AttuneTensor
@testable import AttuneRuntime
import XCTest

/// `attune calibrate --kascade`: similarities, the anchor choice, and the file compiled in.
final class KascadeCalibrationTests: XCTestCase {
    /// The DP's choice equals the best of every anchor set (layer 1 first), by brute force.
    func testDynamicProgrammingFindsTheBestAnchorSet() throws {
        let n = 7
        var sim = KascadeSimilarity(layers: n, kvHeads: 2, parameters: [:])
        var seed: UInt64 = 12345
        func next() -> Double { seed = seed &* 6364136223846793005 &+ 1442695040888963407; return Double(seed >> 11) / Double(1 << 53) }
        for b in 0..<n { for a in 0..<n { for gb in 0..<2 { for ga in 0..<2 { sim.minSim[b][a][gb][ga] = next() } } } }
        for k in 1...(n - 1) {
            let chosen = try sim.choose(anchors: k)
            XCTAssertEqual(chosen.anchors.count, k)
            XCTAssertEqual(chosen.anchors.first, 1)
            // Brute force: every subset of 2..<n of size k-1, plus layer 1.
            var best = -Double.infinity
            func total(_ anchors: [Int]) -> Double {
                (2..<n).filter { !anchors.contains($0) }.reduce(0) { s, b in s + chosen.scores[b][anchors.last { $0 < b }!] }
            }
            func visit(_ start: Int, _ picked: [Int]) {
                if picked.count == k { best = max(best, total(picked)); return }
                guard start < n else { return }
                for a in start..<n { visit(a + 1, picked + [a]) }
            }
            visit(2, [1])
            XCTAssertEqual(chosen.objective, best, accuracy: 1e-12, "k = \(k)")
            XCTAssertEqual(total(chosen.anchors), best, accuracy: 1e-12)
            // Head maps: for every reuse layer, the best anchor head per kv head.
            for (layer, map) in chosen.headMapsByLayer {
                let anchor = chosen.anchors.last { $0 < layer }!
                for gb in 0..<2 { XCTAssertEqual(map[gb], sim.minSim[layer][anchor][gb][1] > sim.minSim[layer][anchor][gb][0] ? 1 : 0) }
            }
        }
        XCTAssertThrowsError(try sim.choose(anchors: n))
        XCTAssertThrowsError(try sim.choose(anchors: 0))
    }

    /// Identical attention in two layers: every row keeps all it would keep, similarity 1;
    /// a layer attending elsewhere keeps less.
    func testSimilarityIsTheShareOfTheOwnTopKKept() {
        var sim = KascadeSimilarity(layers: 3, kvHeads: 1, parameters: ["fraction": 0.25, "min_k": 1, "tile": 4])
        let n = 12
        func peaked(_ at: (Int) -> Int) -> [[[Double]]] {
            [(0..<n).map { row in (0..<n).map { j in j > row ? 0 : (j == at(row) ? 0.9 : 0.1 / Double(row)) } }]
        }
        // Rows from 8 on have a history of 8 keys and keep 2 of them.
        sim.add([0: peaked { _ in 0 }, 1: peaked { _ in 1 }, 2: peaked { _ in 1 }])
        XCTAssertEqual(sim.minSim[2][1][0][0], 1, accuracy: 1e-12)
        var other = KascadeSimilarity(layers: 3, kvHeads: 1, parameters: ["fraction": 0.25, "min_k": 1, "tile": 4])
        other.add([0: peaked { _ in 0 }, 1: peaked { _ in 5 }, 2: peaked { _ in 1 }])
        XCTAssertLessThan(other.minSim[2][1][0][0], 0.5)
    }

    func testCalibratedAnchorsReachTheCompiledDeepModel() throws {
        let fixture = try GoldenModel("llama_deep")
        let model = try ModelSource.load(fixture.folder.path)
        let (shape, values) = try Npy.readIntegers(contentsOf: fixture.folder.appendingPathComponent("calibration_tokens.npy"))
        let sequences = stride(from: 0, to: values.count, by: shape[1]).map { values[$0..<$0 + shape[1]].map { Int32($0) } }
        let settings: KernelParameters = ["fraction": 0.25, "min_k": 4, "tile": 8]
        let calibration = try Calibrator.calibrate(model, sequences: Array(sequences.prefix(2)),
                                                   kascade: .init(anchors: 3, parameters: settings))
        let k = try XCTUnwrap(calibration.kascade)
        XCTAssertEqual(k.anchors.count, 3)
        XCTAssertEqual(k.anchors.first, 1)
        XCTAssertEqual(Set(k.headMapsByLayer.keys), Set(1..<8).subtracting(k.anchors))
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("attune-kascade-\(UUID().uuidString).json")
        defer { try? FileManager.default.removeItem(at: file) }
        try calibration.encoded().write(to: file)
        let loaded = try Calibration.load(file.path)
        XCTAssertEqual(loaded.kascade, k)

        let options = CompileOptions(kernels: KernelOverrides(global: KernelChoice(kernel: "kascade", parameters: settings)),
                                     maxChunk: 16, maxContext: 128, calibration: (loaded, file.path))
        let graph = try ModelCompiler.lower(model, options).output
        let producers = graph.nodes.compactMap { node -> Bool? in
            guard case .attention(let a) = node.op, let s = a.selection else { return nil }
            if case .produce = s { return true }
            return false
        }
        XCTAssertEqual(producers.filter { $0 }.count, 3, "one producing node per calibrated anchor")
        let artifacts = try ModelCompiler.compile(model, options, toolchain: try Toolchain.detect())
        let session = try CompiledModel(artifacts: artifacts)
        XCTAssertTrue(try session.prefill(sequences[2].map { $0 }).allSatisfy(\.isFinite))
    }
}
