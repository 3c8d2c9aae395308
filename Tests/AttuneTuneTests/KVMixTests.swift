import AttuneKernels
import AttunePasses
import AttuneRuntime
import AttuneTensor
@testable import AttuneTune
import Foundation
import XCTest

/// KV caches layer by layer (KVMix.swift) on the 8-layer fixture: an int8 cache everywhere
/// breaks kl=1e-3, layer 0's alone does too, the other seven keep it.
final class KVMixTests: XCTestCase {
    func testLayersTakeTheCacheFormatTheBudgetAllows() throws {
        let folder = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Fixtures/models/llama_deep")
        let model = try ModelSource.load(folder.path)
        let (shape, values) = try Npy.readIntegers(contentsOf: folder.appendingPathComponent("calibration_tokens.npy"))
        let sequences = stride(from: 0, to: values.count, by: shape[1]).prefix(2).map { values[$0..<$0 + shape[1]].map { Int32($0) } }
        var tuner = ModelTuner(budget: 0.05, candidates: [KernelChoice(kernel: "flash")])
        tuner.pairs = 3
        tuner.modelBudgets = [.kl(1e-3)]
        tuner.formats = FormatCandidates(kv: [.int8], gain: .bytes)
        let toolchain = try Toolchain.detect()
        let r = try tuner.tune(model, sequences: sequences, toolchain: toolchain)

        let whole = try XCTUnwrap(r.formatTrials.first)
        XCTAssertEqual(whole.option, "kv=int8")
        XCTAssertGreaterThan(try XCTUnwrap(whole.quality).meanKL, 1e-3, whole.summary)
        XCTAssertEqual(r.groupSteps.filter { $0.hasPrefix("kv int8 alone on layer ") }.count, 8)
        XCTAssertTrue(try XCTUnwrap(r.groupSteps.first).hasSuffix(", over"), "layer 0 alone: \(r.groupSteps[0])")
        let mix = try XCTUnwrap(r.formatTrials.last)
        XCTAssertTrue(mix.accepted, mix.summary)
        XCTAssertNil(r.kv, "the cache stays f32 but for the layers named")
        XCTAssertNil(r.kvByLayer[0])
        XCTAssertFalse(r.kvByLayer.isEmpty)
        XCTAssertTrue(r.kvByLayer.values.allSatisfy { $0 == .int8 })
        XCTAssertTrue(mix.option.hasPrefix("kv=int8 on \(r.kvByLayer.count) of 8 groups"), mix.option)
        XCTAssertLessThanOrEqual(r.quality.meanKL, 1e-3)
        XCTAssertGreaterThan(r.quality.meanKL, 0)

        // The policy names the layers, and compiled from it the model measures the same KL.
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("attune-policy-\(UUID().uuidString).json")
        defer { try? FileManager.default.removeItem(at: file) }
        try r.policyJSON.write(to: file)
        let contents = try AttentionPolicy.contents(file.path)
        XCTAssertEqual(contents.kvByLayer, r.kvByLayer)
        var options = CompileOptions(maxContext: 96)
        options.kvFormatByLayer = contents.kvByLayer
        let dense = try CompiledModel(artifacts: try ModelCompiler.compile(model, CompileOptions(maxContext: 96), toolchain: toolchain))
        let mixed = try CompiledModel(artifacts: try ModelCompiler.compile(model, options, toolchain: toolchain))
        XCTAssertEqual(try ModelTuner.compare(dense: dense, tuned: mixed, sequences: sequences, runs: 1).quality.meanKL, r.quality.meanKL, accuracy: 1e-9)
    }
}
