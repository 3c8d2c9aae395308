import AttuneKernels
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
    }
}
