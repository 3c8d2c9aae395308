import AttuneCodegen
import AttuneIR
import AttuneModels
import AttuneRuntime
import Foundation
import XCTest

/// Compiled modules take their weights through a manifest (Kernels/weights_loader.c):
/// checkpoint tensors mapped in place, damaged or changed files refused, NaN/Inf named.
final class WeightsLoadingTests: XCTestCase {
    var dir: URL!
    var toolchain: Toolchain!

    override func setUpWithError() throws {
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("attune-weights-\(UUID().uuidString)")
        try FileManager.default.copyItem(at: GoldenModel.root.appendingPathComponent("llama"), to: dir)
        toolchain = try Toolchain.detect()
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: dir) }

    var checkpoint: URL { dir.appendingPathComponent("model.safetensors") }

    func compile(_ options: CompileOptions = CompileOptions(maxChunk: 16, maxContext: 64)) throws -> CompiledArtifacts {
        try ModelCompiler.compile(try ModelSource.load(dir.path), options, toolchain: toolchain)
    }

    /// Overwrites element `index` of `tensor` (an f32 tensor) in the copied checkpoint.
    func plant(_ value: Float, in tensor: String, at index: Int) throws {
        let offset = try SafeTensorsFile(contentsOf: checkpoint).info(tensor).fileOffset + 4 * index
        let handle = try FileHandle(forUpdating: checkpoint)
        try handle.seek(toOffset: UInt64(offset))
        try handle.write(contentsOf: withUnsafeBytes(of: value.bitPattern.littleEndian) { Data($0) })
        try handle.close()
    }

    func testCheckpointTensorsAreMappedNotCopied() throws {
        let artifacts = try compile()
        let manifest = try String(contentsOf: artifacts.manifest, encoding: .utf8)
        XCTAssertTrue(manifest.contains("- \(checkpoint.standardizedFileURL.path)\n"), manifest)
        XCTAssertFalse(FileManager.default.fileExists(atPath: artifacts.manifest.deletingLastPathComponent()
            .appendingPathComponent(WeightsManifest.derivedFileName).path), "an f32 checkpoint needs no derived blob")
        XCTAssertTrue(artifacts.module.derived.isEmpty)
        // Merged QKV: one slot, three parts in q, k, v order.
        XCTAssertTrue(manifest.contains("part 0 ") && manifest.contains(" 3\npart 0 "), manifest)
        let golden = try GoldenModel("llama")
        let session = try CompiledModel(artifacts: artifacts)
        let ids = golden.golden.sequences[0].input_ids.map(Int32.init)
        let last = try session.prefillLast(ids)
        session.reset()
        let all = try session.prefill(ids)
        // One row goes through sgemv, all rows through sgemm: equal up to rounding.
        XCTAssertLessThanOrEqual(zip(last, all.suffix(session.vocab)).map { abs($0 - $1) }.max()!, 1e-5)
        let expected = try golden.logits("logits_0.npy").data.suffix(session.vocab)
        XCTAssertLessThanOrEqual(zip(last, expected).map { abs($0 - $1) }.max()!, 1e-4)
    }

    func testNaNWeightIsRefusedByName() throws {
        try plant(.nan, in: "model.layers.1.mlp.up_proj.weight", at: 7)
        let artifacts = try compile()
        XCTAssertThrowsError(try CompiledModel(artifacts: artifacts)) { error in
            XCTAssertEqual("\(error)", "weight 'model.layers.1.mlp.up_proj.weight' holds NaN at element 7 of 10240 (f32): the checkpoint is damaged; pass --allow-nonfinite to load it anyway")
        }
        var options = CompileOptions(maxChunk: 16, maxContext: 64)
        options.allowNonfinite = true
        let session = try CompiledModel(artifacts: try compile(options))
        XCTAssertTrue(try session.prefillLast([1, 2, 3]).contains { $0.isNaN }, "allowed NaN flows into the logits")
    }

    func testInfInAConcatenatedWeightIsNamed() throws {
        try plant(-.infinity, in: "model.layers.0.self_attn.k_proj.weight", at: 0)
        XCTAssertThrowsError(try CompiledModel(artifacts: try compile())) { error in
            XCTAssertTrue("\(error)".hasPrefix("weight 'model.layers.0.self_attn.k_proj.weight' holds -Inf at element 0 of 2048"), "\(error)")
        }
    }

    func testChangedCheckpointIsRefused() throws {
        let artifacts = try compile()
        let handle = try FileHandle(forWritingTo: checkpoint)
        try handle.seekToEnd()
        try handle.write(contentsOf: Data([0]))
        try handle.close()
        XCTAssertThrowsError(try CompiledModel(artifacts: artifacts)) { error in
            XCTAssertTrue("\(error)".contains("the file changed since the model was compiled; compile again"), "\(error)")
        }
    }

    func testDamagedCachedLibraryIsRebuilt() throws {
        let first = try compile()
        XCTAssertFalse(first.cached)
        XCTAssertTrue(try compile().cached)
        var bytes = try Data(contentsOf: first.library)
        bytes[bytes.count / 2] ^= 0xff
        try bytes.write(to: first.library)
        XCTAssertNotNil(Toolchain.damage(first.library, first.library.deletingLastPathComponent().appendingPathComponent("payload.sum")))
        let second = try compile()
        XCTAssertFalse(second.cached, "a damaged library is rebuilt, not served")
        XCTAssertNil(Toolchain.damage(second.library, second.library.deletingLastPathComponent().appendingPathComponent("payload.sum")))
        XCTAssertEqual(try CompiledModel(artifacts: second).prefillLast([1, 2, 3]).count, 128)
    }
}
