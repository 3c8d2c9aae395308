import Foundation
import XCTest
import AttuneIR
import AttuneModels

final class ExpectedTensorsTests: XCTestCase {
    /// 2 layers, hidden 8, 2 heads of 4 sharing 1 kv head, vocab 16, mlp 12.
    static func config(_ arch: String, _ extra: String = "") throws -> HFConfig {
        let text = """
        {"architectures": ["\(arch)"], "vocab_size": 16, "hidden_size": 8, "intermediate_size": 12,
         "num_hidden_layers": 2, "num_attention_heads": 2, "num_key_value_heads": 1\(extra)}
        """
        return try HFConfig(json: Data(text.utf8), name: "config.json")
    }

    func testLlamaTensorList() throws {
        let c = try Self.config("LlamaForCausalLM")
        let list = c.expectedTensors
        XCTAssertEqual(list.count, 1 + 2 * 9 + 2)
        XCTAssertEqual(Array(list.prefix(11)), [
            ExpectedTensor(name: "model.embed_tokens.weight", shape: [16, 8]),
            ExpectedTensor(name: "model.layers.0.input_layernorm.weight", shape: [8]),
            ExpectedTensor(name: "model.layers.0.self_attn.q_proj.weight", shape: [8, 8]),
            ExpectedTensor(name: "model.layers.0.self_attn.k_proj.weight", shape: [4, 8]),
            ExpectedTensor(name: "model.layers.0.self_attn.v_proj.weight", shape: [4, 8]),
            ExpectedTensor(name: "model.layers.0.self_attn.o_proj.weight", shape: [8, 8]),
            ExpectedTensor(name: "model.layers.0.post_attention_layernorm.weight", shape: [8]),
            ExpectedTensor(name: "model.layers.0.mlp.gate_proj.weight", shape: [12, 8]),
            ExpectedTensor(name: "model.layers.0.mlp.up_proj.weight", shape: [12, 8]),
            ExpectedTensor(name: "model.layers.0.mlp.down_proj.weight", shape: [8, 12]),
            ExpectedTensor(name: "model.layers.1.input_layernorm.weight", shape: [8]),
        ])
        XCTAssertEqual(Array(list.suffix(2)), [
            ExpectedTensor(name: "model.norm.weight", shape: [8]),
            ExpectedTensor(name: "lm_head.weight", shape: [16, 8]),
        ])
        XCTAssertEqual(Set(list.map(\.name)).count, list.count)
    }

    func testBiasesAndTiedEmbeddings() throws {
        let qwen = try Self.config("Qwen2ForCausalLM", ", \"tie_word_embeddings\": true").expectedTensors
        XCTAssertEqual(qwen.count, 1 + 2 * 12 + 1)
        XCTAssertFalse(qwen.contains { $0.name == "lm_head.weight" })
        XCTAssertTrue(qwen.contains(ExpectedTensor(name: "model.layers.1.self_attn.q_proj.bias", shape: [8])))
        XCTAssertTrue(qwen.contains(ExpectedTensor(name: "model.layers.1.self_attn.k_proj.bias", shape: [4])))
        XCTAssertTrue(qwen.contains(ExpectedTensor(name: "model.layers.1.self_attn.v_proj.bias", shape: [4])))
        XCTAssertFalse(qwen.contains { $0.name.hasSuffix("o_proj.bias") })

        let llama = try Self.config("LlamaForCausalLM", ", \"attention_bias\": true").expectedTensors
        XCTAssertEqual(llama.count, 1 + 2 * 13 + 2)
        XCTAssertTrue(llama.contains(ExpectedTensor(name: "model.layers.0.self_attn.o_proj.bias", shape: [8])))

        let mistral = try Self.config("MistralForCausalLM").expectedTensors
        XCTAssertFalse(mistral.contains { $0.name.hasSuffix(".bias") })
    }

    /// A checkpoint holding exactly `config.expectedTensors`, with changes.
    func writeCheckpoint(
        _ config: HFConfig, in dir: TempDir, dropping: Set<String> = [], reshaping: [String: [Int]] = [:],
        dtype: [String: String] = [:], extra: [TestTensor] = []
    ) throws -> Checkpoint {
        let tensors = config.expectedTensors.filter { !dropping.contains($0.name) }.map {
            TestTensor.zeros($0.name, reshaping[$0.name] ?? $0.shape, dtype: dtype[$0.name] ?? "BF16")
        }
        try dir.write("model.safetensors", SafeTensorsWriter.encode(tensors + extra))
        return try Checkpoint(directory: dir.url)
    }

    func testCheckAcceptsCompleteCheckpoint() throws {
        let dir = try TempDir()
        let c = try Self.config("Qwen2ForCausalLM")
        // RoPE buffers of old Llama exports are ignored (as transformers does).
        let ckpt = try writeCheckpoint(c, in: dir, dtype: ["model.norm.weight": "F32", "lm_head.weight": "F16"],
                                       extra: [.zeros("model.layers.0.self_attn.rotary_emb.inv_freq", [2], dtype: "F32")])
        XCTAssertNoThrow(try c.check(ckpt))
        XCTAssertEqual(try ckpt.floats("model.embed_tokens.weight").count, 16 * 8)
    }

    func testCheckReportsMissingTensor() throws {
        let dir = try TempDir()
        let c = try Self.config("LlamaForCausalLM")
        let ckpt = try writeCheckpoint(c, in: dir, dropping: ["model.layers.0.self_attn.q_proj.weight"])
        assertImportError(try c.check(ckpt), prefix: dir.url.path, "missing tensor 'model.layers.0.self_attn.q_proj.weight'")
    }

    func testCheckReportsWrongShapeAndCountsProblems() throws {
        let dir = try TempDir()
        let c = try Self.config("LlamaForCausalLM")
        let ckpt = try writeCheckpoint(c, in: dir, dropping: ["lm_head.weight", "model.norm.weight"],
                                       reshaping: ["model.layers.1.self_attn.k_proj.weight": [8, 8]])
        assertImportError(try c.check(ckpt), prefix: dir.url.path,
                          "tensor 'model.layers.1.self_attn.k_proj.weight' has shape [8, 8], expected [4, 8] (and 2 more problems)")
    }

    func testCheckReportsUnconvertibleDType() throws {
        let dir = try TempDir()
        let c = try Self.config("MistralForCausalLM")
        let ckpt = try writeCheckpoint(c, in: dir, dtype: ["model.layers.0.mlp.up_proj.weight": "I8"])
        assertImportError(try c.check(ckpt), prefix: dir.url.path,
                          "tensor 'model.layers.0.mlp.up_proj.weight' has dtype I8; only F32, BF16 and F16 are supported")
    }

    func testTiedCheckpointNeedsNoLMHead() throws {
        let dir = try TempDir()
        let tied = try Self.config("LlamaForCausalLM", ", \"tie_word_embeddings\": true")
        XCTAssertNoThrow(try tied.check(try writeCheckpoint(tied, in: dir)))
        let untied = try Self.config("LlamaForCausalLM")
        assertImportError(try untied.check(try Checkpoint(directory: dir.url)), prefix: dir.url.path, "missing tensor 'lm_head.weight' (tie_word_embeddings is false)")
    }

    func testQwen3AndPhi3TensorLists() throws {
        let qwen3 = try Self.config("Qwen3ForCausalLM", ", \"head_dim\": 4, \"attention_bias\": true").expectedTensors
        XCTAssertEqual(Array(qwen3.prefix(13)).map(\.name), [
            "model.embed_tokens.weight", "model.layers.0.input_layernorm.weight",
            "model.layers.0.self_attn.q_proj.weight", "model.layers.0.self_attn.q_proj.bias",
            "model.layers.0.self_attn.k_proj.weight", "model.layers.0.self_attn.k_proj.bias",
            "model.layers.0.self_attn.v_proj.weight", "model.layers.0.self_attn.v_proj.bias",
            "model.layers.0.self_attn.q_norm.weight", "model.layers.0.self_attn.k_norm.weight",
            "model.layers.0.self_attn.o_proj.weight", "model.layers.0.self_attn.o_proj.bias",
            "model.layers.0.post_attention_layernorm.weight",
        ])
        XCTAssertTrue(qwen3.contains(ExpectedTensor(name: "model.layers.1.self_attn.q_norm.weight", shape: [4])))

        let phi3 = try Self.config("Phi3ForCausalLM").expectedTensors
        XCTAssertEqual(phi3, [ExpectedTensor(name: "model.embed_tokens.weight", shape: [16, 8])] + (0..<2).flatMap { l in [
            ExpectedTensor(name: "model.layers.\(l).input_layernorm.weight", shape: [8]),
            ExpectedTensor(name: "model.layers.\(l).self_attn.qkv_proj.weight", shape: [16, 8]),
            ExpectedTensor(name: "model.layers.\(l).self_attn.o_proj.weight", shape: [8, 8]),
            ExpectedTensor(name: "model.layers.\(l).post_attention_layernorm.weight", shape: [8]),
            ExpectedTensor(name: "model.layers.\(l).mlp.gate_up_proj.weight", shape: [24, 8]),
            ExpectedTensor(name: "model.layers.\(l).mlp.down_proj.weight", shape: [8, 12]),
        ] } + [ExpectedTensor(name: "model.norm.weight", shape: [8]), ExpectedTensor(name: "lm_head.weight", shape: [16, 8])])
    }

    // transformers' tie rule (PreTrainedModel.tie_weights during from_pretrained): with
    // tie_word_embeddings true it ties only when one of the two tensors is missing or both
    // are equal; both present and different are NOT tied, each layer keeps its own.

    func testTiedConfigWithItsOwnLMHeadUsesIt() throws {
        let dir = try TempDir()
        let c = try Self.config("LlamaForCausalLM", ", \"tie_word_embeddings\": true")
        let ckpt = try writeCheckpoint(c, in: dir, extra: [.zeros("lm_head.weight", [16, 8], dtype: "BF16")])
        XCTAssertEqual(try c.check(ckpt), EmbeddingTensors(embedding: "model.embed_tokens.weight", lmHead: "lm_head.weight"))
    }

    func testTiedConfigWithOnlyTheLMHeadUsesItForBoth() throws {
        let dir = try TempDir()
        let c = try Self.config("LlamaForCausalLM", ", \"tie_word_embeddings\": true")
        let ckpt = try writeCheckpoint(c, in: dir, dropping: ["model.embed_tokens.weight"],
                                       extra: [.zeros("lm_head.weight", [16, 8], dtype: "F32")])
        XCTAssertEqual(try c.check(ckpt), EmbeddingTensors(embedding: "lm_head.weight", lmHead: "lm_head.weight"))
        let graph = try DecoderGraph.build(c, tensors: try c.check(ckpt), name: "t") { _ in .f32 }
        XCTAssertEqual(graph.weights.map(\.name).filter { $0.contains("embed") || $0.contains("lm_head") }, ["lm_head.weight"])
    }

    func testTiedConfigWithNeitherTensorNamesTheEmbedding() throws {
        let dir = try TempDir()
        let c = try Self.config("LlamaForCausalLM", ", \"tie_word_embeddings\": true")
        let ckpt = try writeCheckpoint(c, in: dir, dropping: ["model.embed_tokens.weight"])
        assertImportError(try c.check(ckpt), prefix: dir.url.path, "missing tensor 'model.embed_tokens.weight'")
        XCTAssertEqual(try c.check(try writeCheckpoint(c, in: dir)),
                       EmbeddingTensors(embedding: "model.embed_tokens.weight", lmHead: "model.embed_tokens.weight"))
    }

    func testLayerBeyondNumHiddenLayersIsRefused() throws {
        let dir = try TempDir()
        let c = try Self.config("LlamaForCausalLM")
        let ckpt = try writeCheckpoint(c, in: dir, extra: [.zeros("model.layers.2.mlp.up_proj.weight", [12, 8])])
        assertImportError(try c.check(ckpt), prefix: dir.url.path,
                          "unexpected tensor 'model.layers.2.mlp.up_proj.weight' (num_hidden_layers is 2)")
    }

    func testAnotherFamilysTensorIsRefused() throws {
        let dir = try TempDir()
        let c = try Self.config("Qwen2ForCausalLM")
        // A Qwen3 checkpoint labelled Qwen2 would silently lose its q/k norms.
        let ckpt = try writeCheckpoint(c, in: dir, extra: [.zeros("model.layers.0.self_attn.q_norm.weight", [4]),
                                                           .zeros("model.layers.0.self_attn.k_norm.weight", [4])])
        assertImportError(try c.check(ckpt), prefix: dir.url.path,
                          "unexpected tensor 'model.layers.0.self_attn.k_norm.weight' (not a tensor of Qwen2ForCausalLM) (and 1 more problem)")
    }

    func testRotaryBuffersAreIgnoredAsInTransformers() throws {
        let dir = try TempDir()
        let c = try Self.config("MistralForCausalLM")
        let ckpt = try writeCheckpoint(c, in: dir, extra: [.zeros("model.layers.1.self_attn.rotary_emb.inv_freq", [2], dtype: "F32"),
                                                           .zeros("model.rotary_emb.inv_freq", [2], dtype: "F32")])
        XCTAssertNoThrow(try c.check(ckpt))
    }
}
