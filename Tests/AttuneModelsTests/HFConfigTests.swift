import Foundation
import XCTest
import AttuneModels

final class HFConfigTests: XCTestCase {
    /// TinyLlama-1.1B's config.json, as published.
    static let tinyLlama = """
    {
      "architectures": ["LlamaForCausalLM"], "attention_bias": false, "bos_token_id": 1, "eos_token_id": 2,
      "hidden_act": "silu", "hidden_size": 2048, "initializer_range": 0.02, "intermediate_size": 5632,
      "max_position_embeddings": 2048, "model_type": "llama", "num_attention_heads": 32, "num_hidden_layers": 22,
      "num_key_value_heads": 4, "pretraining_tp": 1, "rms_norm_eps": 1e-05, "rope_scaling": null,
      "rope_theta": 10000.0, "tie_word_embeddings": false, "torch_dtype": "bfloat16",
      "transformers_version": "4.35.0", "use_cache": true, "vocab_size": 32000
    }
    """

    /// Qwen2.5-0.5B's config.json, as published.
    static let qwen25 = """
    {
      "architectures": ["Qwen2ForCausalLM"], "attention_dropout": 0.0, "bos_token_id": 151643, "eos_token_id": 151643,
      "hidden_act": "silu", "hidden_size": 896, "initializer_range": 0.02, "intermediate_size": 4864,
      "max_position_embeddings": 32768, "max_window_layers": 24, "model_type": "qwen2", "num_attention_heads": 14,
      "num_hidden_layers": 24, "num_key_value_heads": 2, "rms_norm_eps": 1e-06, "rope_theta": 1000000.0,
      "sliding_window": 32768, "tie_word_embeddings": true, "torch_dtype": "bfloat16",
      "transformers_version": "4.40.1", "use_cache": true, "use_mrope": false, "use_sliding_window": false,
      "vocab_size": 151936
    }
    """

    /// Mistral-7B-v0.1's config.json, as published.
    static let mistral = """
    {
      "architectures": ["MistralForCausalLM"], "bos_token_id": 1, "eos_token_id": 2, "hidden_act": "silu",
      "hidden_size": 4096, "initializer_range": 0.02, "intermediate_size": 14336, "max_position_embeddings": 32768,
      "model_type": "mistral", "num_attention_heads": 32, "num_hidden_layers": 32, "num_key_value_heads": 8,
      "rms_norm_eps": 1e-05, "rope_theta": 10000.0, "sliding_window": 4096, "tie_word_embeddings": false,
      "torch_dtype": "bfloat16", "transformers_version": "4.34.0.dev0", "use_cache": true, "vocab_size": 32000
    }
    """

    /// Modelled on Qwen3-0.6B's config.json (tied embeddings, head_dim 128 ≠ 1024 / 16).
    static let qwen3 = """
    {
      "architectures": ["Qwen3ForCausalLM"], "attention_bias": false, "attention_dropout": 0.0, "bos_token_id": 151643,
      "eos_token_id": 151645, "head_dim": 128, "hidden_act": "silu", "hidden_size": 1024, "initializer_range": 0.02,
      "intermediate_size": 3072, "max_position_embeddings": 40960, "max_window_layers": 28, "model_type": "qwen3",
      "num_attention_heads": 16, "num_hidden_layers": 28, "num_key_value_heads": 8, "rms_norm_eps": 1e-06,
      "rope_scaling": null, "rope_theta": 1000000, "sliding_window": null, "tie_word_embeddings": true,
      "torch_dtype": "bfloat16", "transformers_version": "4.51.0", "use_cache": true, "use_sliding_window": false,
      "vocab_size": 151936
    }
    """

    /// Modelled on Phi-3-mini-4k-instruct's config.json (rope_scaling null, sliding_window 2047).
    static let phi3 = """
    {
      "architectures": ["Phi3ForCausalLM"], "attention_bias": false, "attention_dropout": 0.0, "bos_token_id": 1,
      "embd_pdrop": 0.0, "eos_token_id": 32000, "hidden_act": "silu", "hidden_size": 3072, "initializer_range": 0.02,
      "intermediate_size": 8192, "max_position_embeddings": 4096, "model_type": "phi3", "num_attention_heads": 32,
      "num_hidden_layers": 32, "num_key_value_heads": 32, "original_max_position_embeddings": 4096,
      "pad_token_id": 32000, "resid_pdrop": 0.0, "rms_norm_eps": 1e-05, "rope_scaling": null, "rope_theta": 10000.0,
      "sliding_window": 2047, "tie_word_embeddings": false, "torch_dtype": "bfloat16",
      "transformers_version": "4.40.2", "use_cache": true, "vocab_size": 32064
    }
    """

    /// The smallest config that names every required key.
    static func minimal(_ arch: String = "LlamaForCausalLM", _ extra: String = "") -> String {
        """
        {"architectures": ["\(arch)"], "vocab_size": 100, "hidden_size": 64, "intermediate_size": 96,
         "num_hidden_layers": 3, "num_attention_heads": 4\(extra.isEmpty ? "" : ", " + extra)}
        """
    }

    func decode(_ text: String) throws -> HFConfig {
        try HFConfig(json: Data(text.utf8), name: "config.json")
    }

    func assertConfigError(_ text: String, _ fragments: String..., file: StaticString = #filePath, line: UInt = #line) {
        do {
            _ = try decode(text)
            XCTFail("expected an error containing \(fragments)", file: file, line: line)
        } catch let e as ModelImportError {
            XCTAssertTrue(e.message.hasPrefix("config.json: "), e.message, file: file, line: line)
            XCTAssertFalse(e.message.contains("\n"), e.message, file: file, line: line)
            for f in fragments {
                XCTAssertTrue(e.message.contains(f), "\(e.message.debugDescription) lacks \(f.debugDescription)", file: file, line: line)
            }
        } catch {
            XCTFail("unexpected \(error)", file: file, line: line)
        }
    }

    func testLlama() throws {
        let c = try decode(Self.tinyLlama)
        XCTAssertEqual(c.architecture, .llama)
        XCTAssertEqual(c.vocabSize, 32000)
        XCTAssertEqual(c.hiddenSize, 2048)
        XCTAssertEqual(c.intermediateSize, 5632)
        XCTAssertEqual(c.numHiddenLayers, 22)
        XCTAssertEqual(c.numAttentionHeads, 32)
        XCTAssertEqual(c.numKeyValueHeads, 4)
        XCTAssertEqual(c.headDim, 64)
        XCTAssertEqual(c.ropeTheta, 10000)
        XCTAssertEqual(c.rmsNormEps, 1e-5)
        XCTAssertEqual(c.maxPositionEmbeddings, 2048)
        XCTAssertFalse(c.tieWordEmbeddings)
        XCTAssertFalse(c.qkvBias)
        XCTAssertFalse(c.outputBias)
        XCTAssertEqual(c.torchDtype, "bfloat16")
        XCTAssertEqual(c.attentionNormalizer, .softmax)
        XCTAssertNil(c.sigmoidBias)
        XCTAssertNil(c.slidingWindow(layer: 0))
        XCTAssertNil(c.slidingWindow(layer: 21))
    }

    func testLlamaAttentionBias() throws {
        let c = try decode(Self.minimal("LlamaForCausalLM", "\"attention_bias\": true"))
        XCTAssertTrue(c.qkvBias)
        XCTAssertTrue(c.outputBias)
        assertConfigError(Self.minimal("LlamaForCausalLM", "\"mlp_bias\": true"), "mlp_bias true is not supported")
        XCTAssertNoThrow(try decode(Self.minimal("LlamaForCausalLM", "\"mlp_bias\": false")))
    }

    func testQwen2() throws {
        let c = try decode(Self.qwen25)
        XCTAssertEqual(c.architecture, .qwen2)
        XCTAssertEqual(c.headDim, 64)
        XCTAssertEqual(c.numKeyValueHeads, 2)
        XCTAssertEqual(c.ropeTheta, 1_000_000)
        XCTAssertEqual(c.rmsNormEps, 1e-6)
        XCTAssertTrue(c.tieWordEmbeddings)
        XCTAssertTrue(c.qkvBias)
        XCTAssertFalse(c.outputBias)
        // use_sliding_window is false, so sliding_window (32768) is ignored.
        XCTAssertTrue((0..<24).allSatisfy { c.slidingWindow(layer: $0) == nil })
        // attention_bias is not a Qwen2 key: its biases are fixed.
        XCTAssertTrue(try decode(Self.minimal("Qwen2ForCausalLM", "\"attention_bias\": false")).qkvBias)
    }

    func testQwen2SlidingWindowLayers() throws {
        let c = try decode(Self.minimal("Qwen2ForCausalLM", "\"use_sliding_window\": true, \"sliding_window\": 512, \"max_window_layers\": 1"))
        XCTAssertEqual((0..<3).map { c.slidingWindow(layer: $0) }, [nil, 512, 512])
        // max_window_layers defaults to 28, beyond these 3 layers.
        let d = try decode(Self.minimal("Qwen2ForCausalLM", "\"use_sliding_window\": true, \"sliding_window\": 512"))
        XCTAssertEqual((0..<3).map { d.slidingWindow(layer: $0) }, [nil, nil, nil])
        let e = try decode(Self.minimal("Qwen2ForCausalLM",
            "\"use_sliding_window\": true, \"layer_types\": [\"sliding_attention\", \"full_attention\", \"sliding_attention\"]"))
        XCTAssertEqual((0..<3).map { e.slidingWindow(layer: $0) }, [4096, nil, 4096])
        assertConfigError(Self.minimal("Qwen2ForCausalLM", "\"use_sliding_window\": true, \"layer_types\": [\"full_attention\"]"),
                          "layer_types has length 1; num_hidden_layers is 3")
        assertConfigError(Self.minimal("Qwen2ForCausalLM", "\"use_sliding_window\": true, \"sliding_window\": 0"),
                          "sliding_window is 0, expected 1 ... 2147483647")
    }

    func testQwen3() throws {
        let c = try decode(Self.qwen3)
        XCTAssertEqual(c.architecture, .qwen3)
        XCTAssertEqual(c.headDim, 128)
        XCTAssertEqual(c.numKeyValueHeads, 8)
        XCTAssertEqual(c.ropeTheta, 1_000_000)
        XCTAssertEqual(c.rotaryDim, 128)
        XCTAssertEqual(c.maxPositionEmbeddings, 40960)
        XCTAssertTrue(c.tieWordEmbeddings)
        XCTAssertTrue(c.qkNorm)
        XCTAssertFalse(c.qkvBias)
        XCTAssertFalse(c.outputBias)
        XCTAssertTrue((0..<28).allSatisfy { c.slidingWindow(layer: $0) == nil })
        let names = Set(c.expectedTensors.map(\.name))
        XCTAssertTrue(names.isSuperset(of: ["model.layers.27.self_attn.q_norm.weight", "model.layers.27.self_attn.k_norm.weight"]))
        XCTAssertEqual(c.expectedTensors.first { $0.name == "model.layers.0.self_attn.k_norm.weight" }?.shape, [128])
        XCTAssertEqual(c.expectedTensors.first { $0.name == "model.layers.0.self_attn.q_proj.weight" }?.shape, [2048, 1024])

        // transformers' Qwen3Config defaults: head_dim 128 (not hidden/heads), 32768 positions;
        // attention_bias gives q/k/v and o biases, as for Llama.
        let d = try decode(Self.minimal("Qwen3ForCausalLM", "\"attention_bias\": true"))
        XCTAssertEqual(d.headDim, 128)
        XCTAssertEqual(d.maxPositionEmbeddings, 32768)
        XCTAssertEqual(d.rmsNormEps, 1e-6)
        XCTAssertTrue(d.qkvBias)
        XCTAssertTrue(d.outputBias)
        // Qwen3's attention reads config.head_dim as is: null is not "use the default".
        assertConfigError(Self.minimal("Qwen3ForCausalLM", "\"head_dim\": null"),
                          "head_dim is null; Qwen3ForCausalLM needs an integer (default 128 when absent)")
        // Same sliding-window rule as Qwen2.
        let w = try decode(Self.minimal("Qwen3ForCausalLM",
            "\"use_sliding_window\": true, \"sliding_window\": 64, \"layer_types\": [\"full_attention\", \"sliding_attention\", \"full_attention\"]"))
        XCTAssertEqual((0..<3).map { w.slidingWindow(layer: $0) }, [nil, 64, nil])
    }

    func testPhi3() throws {
        let c = try decode(Self.phi3)
        XCTAssertEqual(c.architecture, .phi3)
        XCTAssertEqual(c.headDim, 96)
        XCTAssertEqual(c.rotaryDim, 96)
        XCTAssertEqual(c.rmsNormEps, 1e-5)
        XCTAssertFalse(c.qkvBias)
        XCTAssertFalse(c.outputBias)
        XCTAssertFalse(c.qkNorm)
        XCTAssertEqual(c.slidingWindow(layer: 0), 2047)
        XCTAssertEqual(c.slidingWindow(layer: 31), 2047)
        let shapes = Dictionary(uniqueKeysWithValues: c.expectedTensors.map { ($0.name, $0.shape) })
        XCTAssertEqual(shapes["model.layers.0.self_attn.qkv_proj.weight"], [9216, 3072])
        XCTAssertEqual(shapes["model.layers.0.mlp.gate_up_proj.weight"], [16384, 3072])
        XCTAssertNil(shapes["model.layers.0.self_attn.q_proj.weight"])
        XCTAssertNil(shapes["model.layers.0.mlp.gate_proj.weight"])

        // transformers' Phi3Config defaults: no window, 4096 positions, eps 1e-5.
        let d = try decode(Self.minimal("Phi3ForCausalLM"))
        XCTAssertNil(d.slidingWindow(layer: 0))
        XCTAssertEqual(d.maxPositionEmbeddings, 4096)
        XCTAssertEqual(d.rmsNormEps, 1e-5)
        // attention_bias is not a Phi-3 key: its projections have no biases.
        XCTAssertFalse(try decode(Self.minimal("Phi3ForCausalLM", "\"attention_bias\": true")).qkvBias)
    }

    func testPartialRotaryFactor() throws {
        // v5 keeps it in rope_parameters (Phi-4-mini: 0.75); older files at top level.
        let c = try decode(Self.minimal("Phi3ForCausalLM", "\"rope_parameters\": {\"rope_type\": \"default\", \"rope_theta\": 10000.0, \"partial_rotary_factor\": 0.75}"))
        XCTAssertEqual(c.rotaryDim, 12)
        XCTAssertEqual(try decode(Self.minimal("Phi3ForCausalLM", "\"partial_rotary_factor\": 0.5")).rotaryDim, 8)
        // rope_parameters wins, as in transformers' standardisation (setdefault).
        let both = "\"partial_rotary_factor\": 0.5, \"rope_parameters\": {\"rope_theta\": 10000.0, \"partial_rotary_factor\": 0.25}"
        XCTAssertEqual(try decode(Self.minimal("Phi3ForCausalLM", both)).rotaryDim, 4)
        // int(16 * 0.3) = 4; int(16 * 0.3125) = 5 is odd.
        XCTAssertEqual(try decode(Self.minimal("Phi3ForCausalLM", "\"partial_rotary_factor\": 0.3")).rotaryDim, 4)
        assertConfigError(Self.minimal("Phi3ForCausalLM", "\"partial_rotary_factor\": 0.3125"),
                          "partial_rotary_factor 0.3125 gives rotary dim 5 for head_dim 16; it must be even and >= 2")
        assertConfigError(Self.minimal("Phi3ForCausalLM", "\"rope_parameters\": {\"partial_rotary_factor\": 1.5}"),
                          "partial_rotary_factor is 1.5, expected a number in (0, 1]")
        // Llama's attention rotates whole heads: transformers ignores the factor for plain RoPE.
        XCTAssertEqual(try decode(Self.minimal("LlamaForCausalLM", "\"partial_rotary_factor\": 0.5")).rotaryDim, 16)
    }

    /// Phi-3 declares `original_max_position_embeddings` at top level (default 4096), and
    /// transformers' standardisation gives it priority over the RoPE object's own: here 8,
    /// not 16. Goldens: Phi3RotaryEmbedding's inv_freq and attention_scaling (transformers
    /// 5.24) after a forward over 8 and 9 positions, printed to 9 decimals.
    func testPhi3LongropeTakesTheTopLevelOriginalLength() throws {
        let sf = "[1.0,1.1,1.2,1.3,1.5,2.0,3.0,4.0]", lf = "[2.0,2.5,3.0,4.0,6.0,8.0,12.0,16.0]"
        let rope = "\"max_position_embeddings\": 64, \"original_max_position_embeddings\": 8, \"rope_scaling\": {\"type\": \"longrope\", "
            + "\"short_factor\": \(sf), \"long_factor\": \(lf), \"original_max_position_embeddings\": 16}"
        let c = try decode(Self.minimal("Phi3ForCausalLM", rope))
        let short = [1.0, 0.287479758, 0.083333336, 0.024325214, 0.006666667, 0.001581139, 0.000333333, 7.9057e-05]
        let long = [0.5, 0.126491114, 0.033333335, 0.007905695, 0.001666667, 0.000395285, 8.3333e-05, 1.9764e-05]
        for (length, want) in [(8, short), (9, long)] {
            let got = c.rope.frequencies.inverseFrequencies(rotaryDim: 16, totalLength: length)
            XCTAssertEqual(got.count, want.count)
            for (g, w) in zip(got, want) { XCTAssertEqual(g, w, accuracy: 2e-6 * w + 1e-9, "length \(length)") }
        }
        XCTAssertEqual(c.rope.frequencies.attentionScaling, 2.0.squareRoot(), accuracy: 1e-12)
        // Absent at top level: Phi3Config's default 4096, beyond max_position_embeddings 64, so
        // the short factors always apply and the scaling is 1.
        let d = try decode(Self.minimal("Phi3ForCausalLM", rope.replacingOccurrences(of: "\"original_max_position_embeddings\": 8, ", with: "")))
        for (g, w) in zip(d.rope.frequencies.inverseFrequencies(rotaryDim: 16, totalLength: 60), short) { XCTAssertEqual(g, w, accuracy: 2e-6 * w + 1e-9) }
        XCTAssertEqual(d.rope.frequencies.attentionScaling, 1.0)
    }

    /// Modelled on gemma-2-2b's config.json (both hidden_act and hidden_activation, no
    /// tie_word_embeddings key, no layer_types: the pre-v5 spelling).
    static let gemma2 = """
    {
      "architectures": ["Gemma2ForCausalLM"], "attention_bias": false, "attention_dropout": 0.0,
      "attn_logit_softcapping": 50.0, "bos_token_id": 2, "cache_implementation": "hybrid", "eos_token_id": 1,
      "final_logit_softcapping": 30.0, "head_dim": 256, "hidden_act": "gelu_pytorch_tanh",
      "hidden_activation": "gelu_pytorch_tanh", "hidden_size": 2304, "initializer_range": 0.02, "intermediate_size": 9216,
      "max_position_embeddings": 8192, "model_type": "gemma2", "num_attention_heads": 8, "num_hidden_layers": 26,
      "num_key_value_heads": 4, "pad_token_id": 0, "query_pre_attn_scalar": 256, "rms_norm_eps": 1e-06,
      "rope_theta": 10000.0, "sliding_window": 4096, "torch_dtype": "float32", "transformers_version": "4.42.4",
      "use_cache": true, "vocab_size": 256000
    }
    """

    func testGemma2() throws {
        let c = try decode(Self.gemma2)
        XCTAssertEqual(c.architecture, .gemma2)
        XCTAssertEqual(c.headDim, 256)
        XCTAssertEqual(c.attentionScale, 1.0 / 16)
        XCTAssertEqual(c.attnLogitSoftcap, 50)
        XCTAssertEqual(c.finalLogitSoftcap, 30)
        XCTAssertEqual(c.activation, .geluTanh)
        XCTAssertTrue(c.tieWordEmbeddings, "Gemma2Config ties by default")
        // configuration_gemma2.py: sliding on even layers ((i + 1) % 2) when layer_types is absent.
        XCTAssertEqual((0..<4).map(c.slidingWindow(layer:)), [4096, nil, 4096, nil])
        let names = Set(c.expectedTensors.map(\.name))
        for norm in ["input_layernorm", "post_attention_layernorm", "pre_feedforward_layernorm", "post_feedforward_layernorm"] {
            XCTAssertTrue(names.contains("model.layers.25.\(norm).weight"), norm)
        }
        XCTAssertFalse(names.contains("lm_head.weight"))

        // Gemma2Config's defaults; layer_types and null soft-caps honoured.
        let d = try decode(Self.minimal("Gemma2ForCausalLM"))
        XCTAssertEqual([d.headDim, d.maxPositionEmbeddings], [256, 8192])
        XCTAssertEqual([d.attnLogitSoftcap, d.finalLogitSoftcap], [50, 30])
        XCTAssertEqual(d.attentionScale, 1.0 / 16)
        let e = try decode(Self.minimal("Gemma2ForCausalLM", """
            "layer_types": ["full_attention", "sliding_attention", "sliding_attention"], "sliding_window": 8,
            "attn_logit_softcapping": null, "final_logit_softcapping": null, "query_pre_attn_scalar": 144
            """))
        XCTAssertEqual((0..<3).map(e.slidingWindow(layer:)), [nil, 8, 8])
        XCTAssertNil(e.attnLogitSoftcap)
        XCTAssertNil(e.finalLogitSoftcap)
        XCTAssertEqual(e.attentionScale, 1.0 / 12)
        // Llama-shaped families keep head_dim^-0.5 and no caps.
        let llama = try decode(Self.minimal())
        XCTAssertEqual(llama.attentionScale, 0.25)
        XCTAssertNil(llama.attnLogitSoftcap)
    }

    func testGemmaRefusals() {
        assertConfigError(Self.minimal("Gemma2ForCausalLM", "\"hidden_activation\": \"gelu\""),
                          "hidden_activation 'gelu' is not supported (only 'gelu_pytorch_tanh')")
        assertConfigError(Self.minimal("Gemma2ForCausalLM", "\"use_bidirectional_attention\": true"),
                          "use_bidirectional_attention true is not supported")
        assertConfigError(Self.minimal("Gemma2ForCausalLM", "\"attn_logit_softcapping\": 0"), "attn_logit_softcapping must be positive, found 0")
        assertConfigError(Self.minimal("Gemma2ForCausalLM", "\"attention_normalizer\": \"sigmoid\""),
                          "attention_normalizer 'sigmoid' is not supported for Gemma2ForCausalLM")
        for other in ["Gemma3ForCausalLM", "GemmaForCausalLM", "Gemma3ForConditionalGeneration"] {
            assertConfigError(Self.minimal(other), "unsupported architecture '\(other)': of the Gemma family only Gemma2ForCausalLM is supported")
        }
    }

    func testLayerTypesValidatedForEveryFamily() throws {
        // transformers validates layer_types on every config: one entry per layer, known kinds.
        assertConfigError(Self.minimal("LlamaForCausalLM", "\"layer_types\": [\"full_attention\", \"full_attention\"]"),
                          "layer_types has length 2; num_hidden_layers is 3")
        assertConfigError(Self.minimal("Qwen3ForCausalLM", "\"layer_types\": [\"full_attention\", \"chunked_attention\", \"full_attention\"]"),
                          "layer_types[1] 'chunked_attention' is not supported (only 'full_attention' or 'sliding_attention')")
        assertConfigError(Self.minimal("Phi3ForCausalLM", "\"layer_types\": \"full_attention\""),
                          "layer_types is a string, expected an array of 3 strings, one per layer")
        assertConfigError(Self.minimal("MistralForCausalLM", "\"layer_types\": [1, 2, 3]"), "layer_types[0] is a number, expected a string")
        // The legacy spelling "attention" is full attention (transformers remaps it).
        XCTAssertNoThrow(try decode(Self.minimal("Qwen2ForCausalLM", "\"layer_types\": [\"attention\", \"attention\", \"full_attention\"]")))
    }

    func testProjectionRowsBounded() {
        // Each size is in range, but q + k + v rows together are not a valid dimension.
        assertConfigError(Self.minimal("Phi3ForCausalLM", "\"head_dim\": 1073741824"),
                          "(num_attention_heads + 2·num_key_value_heads)·head_dim is 12884901888, expected at most 2147483647")
    }

    func testQuantizedCheckpointRefused() {
        assertConfigError(Self.minimal("Qwen3ForCausalLM", "\"quantization_config\": {\"quant_method\": \"fp8\", \"weight_block_size\": [128, 128]}"),
                          "quantization_config is set: quantized checkpoints are not supported (only F32, BF16 and F16 weights)")
    }

    func testMaxPositionEmbeddingsValidated() {
        assertConfigError(Self.minimal("Phi3ForCausalLM", "\"max_position_embeddings\": 0"), "max_position_embeddings is 0, expected 1 ... 2147483647")
        assertConfigError(Self.minimal("Qwen3ForCausalLM", "\"max_position_embeddings\": 4096.5"), "max_position_embeddings must be an integer, found 4096.5")
    }

    func testMistral() throws {
        let c = try decode(Self.mistral)
        XCTAssertEqual(c.architecture, .mistral)
        XCTAssertEqual(c.numKeyValueHeads, 8)
        XCTAssertEqual(c.headDim, 128)
        XCTAssertEqual(c.maxPositionEmbeddings, 32768)
        XCTAssertFalse(c.qkvBias)
        XCTAssertFalse(c.outputBias)
        XCTAssertEqual(c.slidingWindow(layer: 0), 4096)
        XCTAssertEqual(c.slidingWindow(layer: 31), 4096)
        XCTAssertNil(try decode(Self.minimal("MistralForCausalLM", "\"sliding_window\": null")).slidingWindow(layer: 2))
        // transformers' MistralConfig default.
        XCTAssertEqual(try decode(Self.minimal("MistralForCausalLM")).slidingWindow(layer: 2), 4096)
        XCTAssertEqual(try decode(Self.minimal("MistralForCausalLM")).maxPositionEmbeddings, 131_072)
    }

    func testDefaults() throws {
        let c = try decode(Self.minimal())
        XCTAssertEqual(c.numKeyValueHeads, 4)
        XCTAssertEqual(c.headDim, 16)
        XCTAssertEqual(c.ropeTheta, 10000)
        XCTAssertEqual(c.rmsNormEps, 1e-6)
        XCTAssertEqual(c.maxPositionEmbeddings, 2048)
        XCTAssertFalse(c.tieWordEmbeddings)
        XCTAssertNil(c.torchDtype)
        XCTAssertEqual(c.attentionNormalizer, .softmax)
        // null means "use the default" too.
        let n = try decode(Self.minimal("LlamaForCausalLM", "\"num_key_value_heads\": null, \"head_dim\": null, \"rope_theta\": null"))
        XCTAssertEqual(n.numKeyValueHeads, 4)
        XCTAssertEqual(n.headDim, 16)
        XCTAssertEqual(n.ropeTheta, 10000)
        XCTAssertEqual(try decode(Self.minimal("Qwen2ForCausalLM")).maxPositionEmbeddings, 32768)
    }

    func testExplicitHeadDim() throws {
        // Mistral-Nemo style: hidden_size != heads × head_dim.
        let c = try decode(Self.minimal("MistralForCausalLM", "\"head_dim\": 32"))
        XCTAssertEqual(c.headDim, 32)
        XCTAssertEqual(c.expectedTensors.first { $0.name == "model.layers.0.self_attn.q_proj.weight" }?.shape, [128, 64])
        XCTAssertEqual(c.expectedTensors.first { $0.name == "model.layers.0.self_attn.o_proj.weight" }?.shape, [64, 128])
    }

    func testUnknownArchitecture() {
        assertConfigError(Self.minimal("GPT2LMHeadModel"), "unsupported architecture 'GPT2LMHeadModel'",
                          "supported: LlamaForCausalLM, Qwen2ForCausalLM, MistralForCausalLM, Qwen3ForCausalLM, Phi3ForCausalLM")
        assertConfigError("{\"hidden_size\": 64}", "missing key 'architectures'", "LlamaForCausalLM")
        assertConfigError("{\"architectures\": []}", "architectures must be a non-empty array of strings")
        assertConfigError("{\"architectures\": \"LlamaForCausalLM\"}", "architectures must be a non-empty array")
    }

    func testRopeScalingMustBeAnObjectOfAKnownType() throws {
        // Every scaled type is covered in RopeScalingTests; here only what is refused.
        assertConfigError(Self.minimal("LlamaForCausalLM", "\"rope_scaling\": {\"type\": \"su\", \"factor\": 4.0}"),
                          "rope_scaling of type 'su' is not supported (supported: default, linear, dynamic, yarn, longrope, llama3)")
        assertConfigError(Self.minimal("LlamaForCausalLM", "\"rope_scaling\": 2"), "rope_scaling is a number, expected an object or null")
        // Plain RoPE spelled out is not scaling.
        XCTAssertEqual(try decode(Self.minimal("LlamaForCausalLM", "\"rope_scaling\": {\"rope_type\": \"default\"}")).rope.kind, .plain)
    }

    func testRopeParameters() throws {
        // transformers v5 writes rope_parameters instead of rope_theta.
        let c = try decode(Self.minimal("LlamaForCausalLM", "\"rope_parameters\": {\"rope_theta\": 500000.0, \"rope_type\": \"default\"}"))
        XCTAssertEqual(c.ropeTheta, 500_000)
        assertConfigError(Self.minimal("LlamaForCausalLM", "\"rope_parameters\": {\"rope_theta\": 500000.0, \"rope_type\": \"llama3\"}"),
                          "rope_parameters of type 'llama3': missing key 'low_freq_factor'")
        assertConfigError(Self.minimal("LlamaForCausalLM", "\"rope_theta\": 10000, \"rope_parameters\": {\"rope_theta\": 500000.0}"),
                          "disagree")
    }

    func testInconsistentHeads() {
        assertConfigError(Self.minimal("LlamaForCausalLM", "\"num_key_value_heads\": 3"),
                          "num_attention_heads 4 is not divisible by num_key_value_heads 3")
        assertConfigError(Self.minimal("LlamaForCausalLM", "\"num_key_value_heads\": 8"),
                          "num_attention_heads 4 is not divisible by num_key_value_heads 8")
        assertConfigError(Self.minimal("LlamaForCausalLM").replacingOccurrences(of: "\"num_attention_heads\": 4", with: "\"num_attention_heads\": 5"),
                          "hidden_size 64 is not divisible by num_attention_heads 5, and head_dim is not given")
        assertConfigError(Self.minimal("LlamaForCausalLM", "\"head_dim\": 15"), "head_dim 15 must be even")
    }

    func testBadValues() {
        assertConfigError(Self.minimal().replacingOccurrences(of: "\"hidden_size\": 64,", with: ""), "missing key 'hidden_size'")
        assertConfigError(Self.minimal().replacingOccurrences(of: "\"hidden_size\": 64", with: "\"hidden_size\": 64.0"),
                          "hidden_size must be an integer, found 64.0")
        assertConfigError(Self.minimal().replacingOccurrences(of: "\"hidden_size\": 64", with: "\"hidden_size\": \"64\""),
                          "hidden_size must be an integer, found '64'")
        assertConfigError(Self.minimal().replacingOccurrences(of: "\"vocab_size\": 100", with: "\"vocab_size\": 0"),
                          "vocab_size is 0, expected 1 ... 2147483647")
        assertConfigError(Self.minimal().replacingOccurrences(of: "\"vocab_size\": 100", with: "\"vocab_size\": -5"), "vocab_size is -5")
        assertConfigError(Self.minimal().replacingOccurrences(of: "\"vocab_size\": 100", with: "\"vocab_size\": 99999999999999999999"),
                          "vocab_size 99999999999999999999 is too large")
        assertConfigError(Self.minimal().replacingOccurrences(of: "\"num_hidden_layers\": 3", with: "\"num_hidden_layers\": 1000000000000"),
                          "num_hidden_layers is 1000000000000, expected 1 ... 10000")
        assertConfigError(Self.minimal("LlamaForCausalLM", "\"hidden_act\": \"gelu\""), "hidden_act 'gelu' is not supported (only 'silu')")
        assertConfigError(Self.minimal("LlamaForCausalLM", "\"rms_norm_eps\": 0"), "rms_norm_eps must be positive")
        assertConfigError(Self.minimal("LlamaForCausalLM", "\"rope_theta\": 1e999"), "rope_theta must be a finite number, found 1e999")
        assertConfigError(Self.minimal("LlamaForCausalLM", "\"tie_word_embeddings\": 1"), "tie_word_embeddings must be true or false, found 1")
        assertConfigError("[1]", "not a JSON object (it is an array)")
        assertConfigError("{\"architectures\": [\"LlamaForCausalLM\"],}", "not valid JSON")
    }

    func testAttuneNormalizerKeys() throws {
        let s = try decode(Self.minimal("LlamaForCausalLM", "\"attention_normalizer\": \"sigmoid\", \"sigmoid_bias\": -7.62"))
        XCTAssertEqual(s.attentionNormalizer, .sigmoid)
        XCTAssertEqual(s.sigmoidBias, -7.62)
        XCTAssertNil(try decode(Self.minimal("LlamaForCausalLM", "\"attention_normalizer\": \"sigmoid\"")).sigmoidBias)
        XCTAssertEqual(try decode(Self.minimal("LlamaForCausalLM", "\"attention_normalizer\": \"softmax\"")).attentionNormalizer, .softmax)
        assertConfigError(Self.minimal("LlamaForCausalLM", "\"attention_normalizer\": \"relu\""), "attention_normalizer 'relu' is not supported")
        assertConfigError(Self.minimal("LlamaForCausalLM", "\"sigmoid_bias\": -2"), "sigmoid_bias is set but attention_normalizer is 'softmax'")
        assertConfigError(Self.minimal("LlamaForCausalLM", "\"attention_normalizer\": \"sigmoid\", \"sigmoid_bias\": \"x\""),
                          "sigmoid_bias must be a finite number")
    }

    func testReadsFileOrFolder() throws {
        let dir = try TempDir()
        let url = try dir.write("config.json", text: Self.qwen25)
        XCTAssertEqual(try HFConfig(contentsOf: url).architecture, .qwen2)
        XCTAssertEqual(try HFConfig(contentsOf: dir.url).architecture, .qwen2)
        let missing = dir.url.appendingPathComponent("nope.json")
        assertImportError(try HFConfig(contentsOf: missing), prefix: missing.path, "cannot read")
        let bad = try dir.write("bad.json", text: Self.minimal("BertModel"))
        assertImportError(try HFConfig(contentsOf: bad), prefix: bad.path, "unsupported architecture 'BertModel'")
    }
}
