import AttuneCodegen
import AttuneModels
import AttuneRuntime
import Foundation
import XCTest

/// bf16 checkpoints (the qwen2 and qwen3 fixtures) compiled as stored (`--weights auto`):
/// matmul weights mapped where they lie and read by the bf16 kernels.
final class BF16CheckpointTests: XCTestCase {
    func testBF16MatmulWeightsAreMappedInPlace() throws {
        let model = try ModelSource.load(GoldenModel.root.appendingPathComponent("qwen2").path)
        let artifacts = try ModelCompiler.compile(model, CompileOptions(maxChunk: 16, maxContext: 64), toolchain: try Toolchain.detect())
        let module = artifacts.module
        XCTAssertTrue(module.derived.isEmpty, "nothing rounded or copied at compile time")
        let bf16 = module.constants.filter { $0.format == .bf16 }
        // Embedding (tied: also the vocabulary projection), and per layer q, k, v, o, gate, up, down.
        XCTAssertEqual(bf16.count, 1 + 2 * 7)
        XCTAssertTrue(bf16.allSatisfy(\.isMappedInPlace))
        // Norm weights and biases are f32: their bf16 values are widened once at open.
        XCTAssertTrue(module.constants.filter { $0.format == .f32 }.allSatisfy { $0.elements <= 96 })
        let manifest = try String(contentsOf: artifacts.manifest, encoding: .utf8)
        XCTAssertTrue(manifest.contains("slot 0 8192 1 bf16\npart 0 "), manifest)
        let f32 = try ModelCompiler.emit(model, { var o = CompileOptions(maxChunk: 16, maxContext: 64); o.weights = .f32; return o }()).1
        XCTAssertTrue(f32.constants.allSatisfy { $0.format == .f32 }, "--weights f32 keeps the f32 path")
    }

    /// With chunks of 16 the 16-token prompts run the GEMM path (activations rounded to
    /// bf16; the 5-token ones the GEMV path, f32 activations, 1e-4): the logits stay within 6 * 2^-8 of their largest magnitude of transformers'
    /// float64 ones (bound argued in BF16WeightsTests.testGEMMPathStaysWithinActivationRounding,
    /// 9 matmuls per logit path here too), and the greedy continuation is transformers'.
    /// Chunks under 8 rows (CompiledVsTransformersTests) run the GEMV path at 1e-4.
    func testBF16FixturesThroughTheGEMMPathStayWithinTheBound() throws {
        let toolchain = try Toolchain.detect()
        for name in ["qwen2", "qwen3"] {
            let fixture = try GoldenModel(name)
            let model = try ModelSource.load(fixture.folder.path)
            let session = try CompiledModel(artifacts: try ModelCompiler.compile(model, CompileOptions(maxChunk: 16, maxContext: 64), toolchain: toolchain))
            for (i, seq) in fixture.golden.sequences.enumerated() {
                session.reset()
                let logits = try session.prefill(seq.input_ids.map(Int32.init))
                let want = try fixture.logits(seq.logits_f64).data
                let scale = want.map(abs).max()!
                let err = zip(logits, want).map { abs($0 - $1) }.max()!
                // Measured: 2.6 and 1.6 * 2^-8 * scale for the 16-token prompts; the 5-token
                // ones run the GEMV path (fewer than ATTUNE_BF16_GEMM_MIN_ROWS = 8 rows), 2e-6.
                XCTAssertLessThanOrEqual(err, seq.input_ids.count >= 8 ? 6 * 0x1p-8 * scale : 1e-4, "\(name) seq \(i)")
                var last = Array(logits.suffix(session.vocab))
                var generated: [Int] = []
                for _ in seq.greedy_new_ids {
                    let next = last.indices.max { last[$0] < last[$1] }!
                    generated.append(next)
                    last = try session.decodeStep(Int32(next))
                }
                XCTAssertEqual(generated, seq.greedy_new_ids, "\(name) seq \(i) greedy")
            }
        }
    }

    /// A NaN in a bf16 weight the module maps in place (never copied, never converted) is
    /// still found at open and named.
    func testNaNInAMappedBF16WeightIsRefusedByName() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("attune-bf16-\(UUID().uuidString)")
        try FileManager.default.copyItem(at: GoldenModel.root.appendingPathComponent("qwen2"), to: dir)
        defer { try? FileManager.default.removeItem(at: dir) }
        let checkpoint = dir.appendingPathComponent("model.safetensors")
        let tensor = "model.layers.1.mlp.up_proj.weight"
        let offset = try SafeTensorsFile(contentsOf: checkpoint).info(tensor).fileOffset + 2 * 7
        let handle = try FileHandle(forUpdating: checkpoint)
        try handle.seek(toOffset: UInt64(offset))
        try handle.write(contentsOf: Data([0xC0, 0x7F]))
        try handle.close()
        let artifacts = try ModelCompiler.compile(try ModelSource.load(dir.path), CompileOptions(maxChunk: 16, maxContext: 64), toolchain: try Toolchain.detect())
        XCTAssertTrue(artifacts.module.constants.filter { $0.format == .bf16 }.allSatisfy(\.isMappedInPlace))
        XCTAssertThrowsError(try CompiledModel(artifacts: artifacts)) { error in
            XCTAssertTrue("\(error)".hasPrefix("weight '\(tensor)' holds NaN at element 7 of "), "\(error)")
            XCTAssertTrue("\(error)".contains("(bf16)"), "\(error)")
        }
    }
}
