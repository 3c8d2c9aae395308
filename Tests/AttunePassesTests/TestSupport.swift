import Foundation
import XCTest
import AttuneIR
import AttuneModels
import AttuneNumerics
@testable import AttunePasses

/// Number of nodes of each op, by mnemonic.
func opCounts(_ g: Graph) -> [String: Int] {
    g.nodes.reduce(into: [:]) { $0[$1.op.mnemonic, default: 0] += 1 }
}

/// The refusal reasons a pass gave, by reason.
func refusals(_ pass: Pass, _ g: Graph) throws -> [String: Int] {
    let outcome = try pass.run(g)
    try Verifier.verify(outcome.graph)
    return outcome.stats.refusals
}

/// Small decoder configs, one per family feature the passes must handle.
enum TinyConfigs {
    static func config(_ json: String) throws -> HFConfig {
        try HFConfig(json: Data(json.utf8), name: "config.json")
    }

    /// Llama with GQA (4 query heads over 2 kv heads), no biases.
    static func llamaGQA() throws -> HFConfig {
        try config("""
        {"architectures": ["LlamaForCausalLM"], "vocab_size": 40, "hidden_size": 32, "intermediate_size": 48,
         "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2, "rms_norm_eps": 1e-5,
         "rope_theta": 10000.0}
        """)
    }

    /// Llama with GQA and five layers: room for kascade anchors and reuse layers.
    static func llamaDeep() throws -> HFConfig {
        try config("""
        {"architectures": ["LlamaForCausalLM"], "vocab_size": 40, "hidden_size": 32, "intermediate_size": 48,
         "num_hidden_layers": 5, "num_attention_heads": 4, "num_key_value_heads": 2, "rms_norm_eps": 1e-5,
         "rope_theta": 10000.0}
        """)
    }

    /// Qwen2: q/k/v biases, tied embeddings, 3 layers, MHA-with-GQA 6 over 2.
    static func qwen2Biases() throws -> HFConfig {
        try config("""
        {"architectures": ["Qwen2ForCausalLM"], "vocab_size": 40, "hidden_size": 48, "intermediate_size": 64,
         "num_hidden_layers": 3, "num_attention_heads": 6, "num_key_value_heads": 2, "rms_norm_eps": 1e-6,
         "rope_theta": 1000000.0, "tie_word_embeddings": true, "use_sliding_window": false}
        """)
    }

    /// Mistral with a sliding window of 4 (shorter than the prompt) and a single kv head.
    static func mistralWindow() throws -> HFConfig {
        try config("""
        {"architectures": ["MistralForCausalLM"], "vocab_size": 40, "hidden_size": 32, "intermediate_size": 40,
         "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 1, "head_dim": 8,
         "sliding_window": 4, "rms_norm_eps": 1e-5}
        """)
    }

    /// Qwen3: per-head q/k RMSNorm before RoPE, explicit head_dim 12 (not hidden/heads = 8),
    /// q/k/v/o biases, GQA 4 over 2.
    static func qwen3QKNorm() throws -> HFConfig {
        try config("""
        {"architectures": ["Qwen3ForCausalLM"], "vocab_size": 40, "hidden_size": 32, "intermediate_size": 48,
         "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 12,
         "attention_bias": true, "rms_norm_eps": 1e-6, "rope_theta": 1000000.0}
        """)
    }

    /// Phi-3: fused qkv_proj and gate_up_proj, partial rotary (12 of 16 channels), a window of 5.
    static func phi3Fused() throws -> HFConfig {
        try config("""
        {"architectures": ["Phi3ForCausalLM"], "vocab_size": 40, "hidden_size": 32, "intermediate_size": 40,
         "num_hidden_layers": 2, "num_attention_heads": 2, "num_key_value_heads": 1, "sliding_window": 5,
         "rope_parameters": {"rope_type": "default", "rope_theta": 10000.0, "partial_rotary_factor": 0.75}}
        """)
    }

    /// Llama without GQA (kv heads = heads), so no repeat_interleave.
    static func llamaMHA() throws -> HFConfig {
        try config("""
        {"architectures": ["LlamaForCausalLM"], "vocab_size": 40, "hidden_size": 32, "intermediate_size": 48,
         "num_hidden_layers": 1, "num_attention_heads": 2}
        """)
    }

    /// Gemma 2: 3 layers (sliding window 4 on layers 0 and 2 by the default rule), soft-caps
    /// small enough to bite on random weights, head_dim 12 ≠ hidden/heads = 8.
    static func gemma2() throws -> HFConfig {
        try config("""
        {"architectures": ["Gemma2ForCausalLM"], "vocab_size": 40, "hidden_size": 32, "intermediate_size": 48,
         "num_hidden_layers": 3, "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 12,
         "query_pre_attn_scalar": 10, "sliding_window": 4, "attn_logit_softcapping": 0.5, "final_logit_softcapping": 2}
        """)
    }

    /// Llama with Attune's sigmoid attention.
    static func llamaSigmoid() throws -> HFConfig {
        try config("""
        {"architectures": ["LlamaForCausalLM"], "vocab_size": 40, "hidden_size": 32, "intermediate_size": 48,
         "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
         "attention_normalizer": "sigmoid"}
        """)
    }
}

func decoder(_ c: HFConfig, dtype: DType = .f32) throws -> Graph {
    try DecoderGraph.build(c, name: "tiny", dtype: { _ in dtype })
}

/// A deterministic generator (SplitMix64), so failures reproduce.
struct SeededRandom {
    var state: UInt64
    init(seed: UInt64) { state = seed }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// Uniform in [-1, 1).
    mutating func uniform() -> Double { Double(next() >> 11) / Double(1 << 52) - 1 }
}

/// Random values for every weight of `g`: norm weights near 1, the rest in ±0.3.
func randomWeights(for g: Graph, seed: UInt64 = 7) -> DictionaryWeights {
    var rng = SeededRandom(seed: seed)
    var values: [String: [Float]] = [:]
    for (name, type) in g.weights.sorted(by: { $0.name < $1.name }) where values[name] == nil {
        let count = type.shape.map { $0.fixedValue! }.reduce(1, *)
        let isNorm = name.hasSuffix("norm.weight")
        values[name] = (0..<count).map { _ in Float(isNorm ? 1 + 0.2 * rng.uniform() : 0.3 * rng.uniform()) }
    }
    return DictionaryWeights(values)
}

/// Runs both decoders on the same prefill and decode steps and returns the largest
/// absolute logit difference.
func maxLogitDifference(_ a: Graph, _ b: Graph, weights: WeightSource, prompt: [Int], decode: [Int]) throws -> Double {
    let ra = try ReferenceInterpreter(graph: a, weights: weights)
    let rb = try ReferenceInterpreter(graph: b, weights: weights)
    var worst = 0.0
    var position = 0
    for tokens in [prompt] + decode.map({ [$0] }) {
        let inputs = ["tokens": F64Tensor(ids: tokens), "positions": F64Tensor(ids: Array(position..<position + tokens.count))]
        let la = try XCTUnwrap(try ra.run(inputs: inputs)["logits"])
        let lb = try XCTUnwrap(try rb.run(inputs: inputs)["logits"])
        XCTAssertEqual(la.shape, lb.shape)
        worst = max(worst, zip(la.data, lb.data).map { abs($0 - $1) }.max() ?? 0)
        position += tokens.count
    }
    return worst
}

/// Runs `a` and `b` (graphs with the same inputs and outputs) once on `inputs` and
/// returns the largest absolute difference over all outputs.
func maxOutputDifference(_ a: Graph, _ b: Graph, weights: WeightSource, inputs: [String: F64Tensor]) throws -> Double {
    let oa = try ReferenceInterpreter(graph: a, weights: weights).run(inputs: inputs)
    let ob = try ReferenceInterpreter(graph: b, weights: weights).run(inputs: inputs)
    XCTAssertEqual(Set(oa.keys), Set(ob.keys))
    var worst = 0.0
    for (name, x) in oa {
        let y = try XCTUnwrap(ob[name])
        XCTAssertEqual(x.shape, y.shape, name)
        worst = max(worst, zip(x.data, y.data).map { abs($0 - $1) }.max() ?? 0)
    }
    return worst
}

/// A random f32 tensor of `shape`.
func randomTensor(_ shape: [Int], seed: UInt64) -> F64Tensor {
    var rng = SeededRandom(seed: seed)
    return F64Tensor(shape: shape, data: (0..<shape.reduce(1, *)).map { _ in rng.uniform() })
}
