import AttuneIR
import AttuneKernels
import AttuneNumerics
import AttunePasses
import AttuneRuntime
import XCTest

/// Gemma 2 (Tests/Fixtures/models/gemma2, made by transformers): soft-capped attention
/// and logits, alternating sliding-window/global layers, GeGLU, four (1 + w) norms per
/// layer, the √hidden embedding scale, query_pre_attn_scalar and head_dim ≠ hidden/heads.
/// Not in `GoldenModel.names`: its capped attention binds only to flash, and those tests
/// sweep every kernel.
final class Gemma2ModelTests: XCTestCase {
    func testReferenceInterpreterMatchesTransformers() throws {
        let fixture = try GoldenModel("gemma2")
        let model = try ModelSource.load(fixture.folder.path)
        let interp = try ReferenceInterpreter(graph: model.graph, weights: model.weights)
        for (i, seq) in fixture.golden.sequences.enumerated() {
            interp.reset()
            let out = try interp.run(inputs: ["tokens": F64Tensor(ids: seq.input_ids),
                                              "positions": F64Tensor(ids: Array(0..<seq.input_ids.count))])
            let got = out["logits"]!, want = try fixture.logits(seq.logits_f64)
            XCTAssertEqual(got.shape, want.shape)
            // Float64 goldens stored as float32 by the .npy reader.
            let err = zip(got.data, want.data).map { abs($0 - Double($1)) }.max() ?? .infinity
            XCTAssertLessThanOrEqual(err, 2e-6, "seq \(i) logits")
            var generated: [Int] = [], last = Array(got.data.suffix(got.shape[1])), position = seq.input_ids.count
            for _ in seq.greedy_new_ids {
                let next = last.indices.max { last[$0] < last[$1] }!
                generated.append(next)
                last = try interp.run(inputs: ["tokens": F64Tensor(ids: [next]), "positions": F64Tensor(ids: [position])])["logits"]!.data
                position += 1
            }
            XCTAssertEqual(generated, seq.greedy_new_ids, "seq \(i) greedy")
        }
    }

    func testCompiledMatchesTransformers() throws {
        let fixture = try GoldenModel("gemma2")
        let model = try ModelSource.load(fixture.folder.path)
        // Chunks of 6: the 16-token prompt runs as three passes, each over the cached rows.
        let artifacts = try ModelCompiler.compile(model, CompileOptions(maxChunk: 6, maxContext: 64), toolchain: try Toolchain.detect())
        let attention = artifacts.report.output.nodes.compactMap { node -> AttentionAttrs? in
            if case .attention(let a) = node.op { return a } else { return nil }
        }
        // Layers 0 and 2 slide (window 6), layer 1 is global; every one capped at 5, scaled
        // by 24^-0.5 and bound to flash by the rule.
        XCTAssertEqual(attention.map(\.window), [6, nil, 6])
        XCTAssertEqual(attention.map(\.softcap), [5, 5, 5])
        XCTAssertEqual(attention.map(\.scale), Array(repeating: 1 / 24.0.squareRoot(), count: 3))
        XCTAssertEqual(attention.map { $0.binding?.kernel }, ["flash", "flash", "flash"])
        let ops = artifacts.report.output.nodes.map(\.op.mnemonic)
        XCTAssertEqual(ops.filter { $0 == "geglu" }.count, 3)
        XCTAssertEqual(ops.filter { $0 == "softcap" }.count, 1, "the final logits' soft-cap")
        XCTAssertFalse(ops.contains("softmax"))
        try fixture.assertCompiledMatchesGoldens(try CompiledModel(artifacts: artifacts))
    }

    /// Kernels without soft-capping are refused by name, never given the node silently.
    func testKernelsWithoutSoftcapAreRefused() throws {
        let model = try ModelSource.load(try GoldenModel("gemma2").folder.path)
        for kernel in ["unified_max", "sparge", "kascade"] {
            let options = CompileOptions(kernels: KernelOverrides(global: KernelChoice(kernel: kernel)), maxChunk: 8, maxContext: 64)
            XCTAssertThrowsError(try ModelCompiler.compile(model, options, toolchain: try Toolchain.detect()), kernel) { error in
                XCTAssertTrue("\(error)".contains("\(kernel) does not implement logit soft-capping (softcap=5); flash does"), "\(error)")
            }
        }
    }

    /// A bf16 KV cache through flash's decode path with the cap: greedy ids unchanged.
    func testBF16KVCacheKeepsTheGreedyIds() throws {
        let fixture = try GoldenModel("gemma2")
        var options = CompileOptions(maxChunk: 8, maxContext: 64)
        options.kvFormat = .bf16
        let session = try CompiledModel(artifacts: try ModelCompiler.compile(try ModelSource.load(fixture.folder.path), options,
                                                                             toolchain: try Toolchain.detect()))
        for seq in fixture.golden.sequences {
            session.reset()
            var last = Array(try session.prefill(seq.input_ids.map(Int32.init)).suffix(session.vocab))
            var generated: [Int] = []
            for _ in seq.greedy_new_ids {
                let next = last.indices.max { last[$0] < last[$1] }!
                generated.append(next)
                last = try session.decodeStep(Int32(next))
            }
            XCTAssertEqual(generated, seq.greedy_new_ids)
        }
    }
}
