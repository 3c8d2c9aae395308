import XCTest
import AttuneIR
import AttuneModels
@testable import AttunePasses

final class PipelineTests: XCTestCase {
    /// What a fully compiled Llama-family decoder must look like.
    func assertFullyFused(_ c: HFConfig, file: StaticString = #filePath, line: UInt = #line) throws {
        let report = try Pipeline.standard().run(try decoder(c))
        let g = report.output
        let counts = opCounts(g)
        let layers = c.numHiddenLayers
        for gone in ["matmul", "softmax", "attention_mask", "repeat_interleave", "transpose", "reshape", "rope", "slice", "silu", "mul", "add"] {
            XCTAssertNil(counts[gone], "\(gone) left after the pipeline", file: file, line: line)
        }
        XCTAssertEqual(counts["qkv_rope"], layers, file: file, line: line)
        XCTAssertEqual(counts["attention"], layers, file: file, line: line)
        XCTAssertEqual(counts["swiglu"], layers, file: file, line: line)
        // Every residual add meets a norm: post-attention in each layer, then the next
        // layer's input norm or the final norm. Only layer 0's input norm has no add.
        XCTAssertEqual(counts["add_rms_norm"], 2 * layers, file: file, line: line)
        XCTAssertEqual(counts["rms_norm"], 1, file: file, line: line)
        // One qkv_rope, attention, swiglu per layer, labelled with the layer's module path.
        for l in 0..<layers {
            let inLayer = g.nodes.filter { $0.label?.hasPrefix("model.layers.\(l).") ?? false }.map(\.op.mnemonic)
            for op in ["qkv_rope", "attention", "swiglu"] {
                XCTAssertEqual(inLayer.filter { $0 == op }.count, 1, "layer \(l): \(op)", file: file, line: line)
            }
        }
        for node in g.nodes {
            guard case .attention(let a) = node.op else { continue }
            XCTAssertEqual(a.binding?.kernel, "flash", file: file, line: line)
            XCTAssertEqual(a.binding?.reason, "rule: exact softmax → flash", file: file, line: line)
        }
        XCTAssertEqual(report.unfused, [], file: file, line: line)
    }

    func testLlamaWithGQAFusesFully() throws { try assertFullyFused(try TinyConfigs.llamaGQA()) }
    func testQwen2WithBiasesFusesFully() throws { try assertFullyFused(try TinyConfigs.qwen2Biases()) }
    func testMistralWithSlidingWindowFusesFully() throws { try assertFullyFused(try TinyConfigs.mistralWindow()) }
    func testLlamaWithoutGQAFusesFully() throws { try assertFullyFused(try TinyConfigs.llamaMHA()) }
    /// The fused checkpoint tensors come back whole: no slice or concat of weights is left.
    func testPhi3WithFusedProjectionsFusesFully() throws {
        let c = try TinyConfigs.phi3Fused()
        try assertFullyFused(c)
        let g = try Pipeline.standard().run(try decoder(c)).output
        XCTAssertNil(opCounts(g)["concat"])
        let qkv = try XCTUnwrap(g.nodes.first { $0.op.mnemonic == "qkv_rope" })
        XCTAssertEqual(qkv.op, .qkvRope(QKVRopeAttrs(heads: 2, kvHeads: 1, headDim: 16, rotaryDim: 12, theta: 10000, hasBias: false)))
        XCTAssertEqual(g.nodes[qkv.inputs[1].node].op, .weight(name: "model.layers.0.self_attn.qkv_proj.weight"))
        let swiglu = try XCTUnwrap(g.nodes.first { $0.op == .swiGLU })
        XCTAssertEqual(g.nodes[swiglu.inputs[1].node].op, .weight(name: "model.layers.0.mlp.gate_up_proj.weight"))
    }

    /// Gemma 2 fuses like the others, with `geglu` for `swiglu`: one qkv_rope, capped
    /// attention and geglu per layer; its post-norms stay `rms_norm`s (nothing is added
    /// before them), the `1 + w` weights are constants, the logits' cap one `softcap`.
    func testGemma2FusesFully() throws {
        let c = try TinyConfigs.gemma2()
        let report = try Pipeline.standard().run(try decoder(c))
        let counts = opCounts(report.output)
        for gone in ["matmul", "softmax", "attention_mask", "repeat_interleave", "transpose", "rope", "gelu", "mul", "add", "swiglu"] {
            XCTAssertNil(counts[gone], gone)
        }
        XCTAssertEqual([counts["qkv_rope"], counts["attention"], counts["geglu"], counts["softcap"]], [3, 3, 3, 1])
        XCTAssertEqual([counts["add_rms_norm"], counts["rms_norm"]], [6, 1 + 6])
        let attention = report.output.nodes.compactMap { n -> AttentionAttrs? in if case .attention(let a) = n.op { a } else { nil } }
        XCTAssertEqual(attention.map(\.window), [4, nil, 4])
        XCTAssertEqual(attention.map(\.softcap), [0.5, 0.5, 0.5])
        XCTAssertEqual(attention.map(\.scale), Array(repeating: 1 / 10.0.squareRoot(), count: 3))
        XCTAssertEqual(attention.map { $0.binding?.kernel }, ["flash", "flash", "flash"])
        XCTAssertEqual(report.unfused, [])
    }

    /// Qwen3's per-head q/k norms end up inside the qkv_rope: nothing of them is left.
    func testQwen3WithQKNormFusesFully() throws {
        let c = try TinyConfigs.qwen3QKNorm()
        try assertFullyFused(c)
        let g = try Pipeline.standard().run(try decoder(c)).output
        XCTAssertNil(opCounts(g)["head_rms_norm"])
        let qkv = try XCTUnwrap(g.nodes.first { $0.op.mnemonic == "qkv_rope" })
        XCTAssertEqual(qkv.op, .qkvRope(QKVRopeAttrs(heads: 4, kvHeads: 2, headDim: 12, theta: 1_000_000, hasBias: true, qkNormEps: 1e-6)))
        XCTAssertEqual(qkv.inputs[3...4].map { g.nodes[$0.node].op },
                       [.weight(name: "model.layers.0.self_attn.q_norm.weight"), .weight(name: "model.layers.0.self_attn.k_norm.weight")])
    }

    func testSlidingWindowReachesTheAttentionOp() throws {
        let g = try Pipeline.standard().run(try decoder(try TinyConfigs.mistralWindow())).output
        let windows = g.nodes.compactMap { if case .attention(let a) = $0.op { a.window } else { nil } }
        XCTAssertEqual(windows, [4, 4])
    }

    func testSnapshotAfterEveryPass() throws {
        let pipeline = Pipeline.standard()
        XCTAssertEqual(pipeline.passNames, ["verify", "canonicalize", "dce", "cse", "fuse-attention", "fuse-swiglu",
                                            "merge-qkv", "fuse-qkv-rope", "fuse-add-rms-norm", "fuse-elementwise",
                                            "select-kernels", "link-kascade"])
        let report = try pipeline.run(try decoder(try TinyConfigs.llamaGQA()))
        XCTAssertEqual(report.steps.map(\.pass), pipeline.passNames)
        for name in pipeline.passNames {
            let g = try XCTUnwrap(report.graph(after: name), name)
            XCTAssertNoThrow(try Verifier.verify(g), name)
        }
        XCTAssertNil(report.graph(after: "no-such-pass"))
        let afterAttention = try XCTUnwrap(report.graph(after: "fuse-attention"))
        XCTAssertEqual(opCounts(afterAttention)["attention"], 2)
        XCTAssertEqual(opCounts(afterAttention)["swiglu"], nil)
        XCTAssertEqual(report.stats(of: "fuse-attention")?.matches, 2)
        XCTAssertEqual(report.stats(of: "fuse-attention")?.notes, ["GQA attention: 2"])
        XCTAssertTrue(report.summary.contains("fuse-swiglu: 2 matched"), report.summary)
        // The printed IR after a pass is what `attune inspect --after` shows.
        XCTAssertTrue(TextFormat.print(afterAttention).contains("attention(%"))
    }

    func testUnfusedPatternsAreListedWithTheirLabels() throws {
        let overrides = KernelOverrides(global: KernelChoice(kernel: "flash"))
        let report = try Pipeline.standard(kernels: overrides).run(try decoder(try TinyConfigs.llamaSigmoid()))
        XCTAssertEqual(report.unfused.map(\.description), [
            "select-kernels: %13 (model.layers.0.self_attn): override --attention flash: 'flash' is not a sigmoid-attention kernel",
            "select-kernels: %33 (model.layers.1.self_attn): override --attention flash: 'flash' is not a sigmoid-attention kernel",
        ])
        XCTAssertTrue(report.summary.contains("refused 2x: override --attention flash: 'flash' is not a sigmoid-attention kernel"), report.summary)
    }

    func testAPassThatBreaksTheGraphIsCaught() throws {
        let broken = Pass(name: "broken", summary: "drops every node") { g in
            var out = g
            out.nodes.removeLast()
            return PassOutcome(graph: out)
        }
        XCTAssertThrowsError(try Pipeline([.verify, broken]).run(try decoder(try TinyConfigs.llamaMHA()))) { error in
            XCTAssertTrue("\(error)".hasPrefix("pass 'broken' produced a graph that does not verify: output 'logits'"), "\(error)")
        }
    }

    func testTheStandardPipelineIsIdempotent() throws {
        let once = try Pipeline.standard().run(try decoder(try TinyConfigs.qwen2Biases())).output
        let twice = try Pipeline.standard().run(once)
        XCTAssertEqual(twice.output, once)
        XCTAssertEqual(twice.steps.filter { $0.pass != "select-kernels" }.map(\.stats.matches).reduce(0, +), 0)
    }
}
