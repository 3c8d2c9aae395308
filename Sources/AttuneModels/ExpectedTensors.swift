/// A tensor a checkpoint must hold, by its Hugging Face name.
public struct ExpectedTensor: Sendable, Equatable {
    public let name: String
    public let shape: [Int]

    public init(name: String, shape: [Int]) {
        self.name = name
        self.shape = shape
    }
}

extension HFConfig {
    /// The tensors a checkpoint for this config holds, in model order, with
    /// their shapes. Linear weights are `[out_features, in_features]`, as
    /// PyTorch stores them:
    ///
    /// - `model.embed_tokens.weight` `[vocab, hidden]`
    /// - per layer `i`, under `model.layers.i.`:
    ///   `input_layernorm.weight` `[hidden]`;
    ///   `self_attn.q_proj.weight` `[heads·head_dim, hidden]`,
    ///   `k_proj`/`v_proj` `[kv_heads·head_dim, hidden]`,
    ///   `o_proj` `[hidden, heads·head_dim]`, and the biases `qkvBias` and
    ///   `outputBias` call for (one entry per output feature);
    ///   `post_attention_layernorm.weight` `[hidden]`;
    ///   `mlp.gate_proj.weight`, `mlp.up_proj.weight` `[intermediate, hidden]`,
    ///   `mlp.down_proj.weight` `[hidden, intermediate]`
    /// - `model.norm.weight` `[hidden]`
    /// - `lm_head.weight` `[vocab, hidden]`, unless `tieWordEmbeddings`.
    ///
    /// Validation keeps every product here below 2^62, so no shape overflows.
    public var expectedTensors: [ExpectedTensor] {
        let q = numAttentionHeads * headDim
        let kv = numKeyValueHeads * headDim
        var out = [ExpectedTensor(name: "model.embed_tokens.weight", shape: [vocabSize, hiddenSize])]
        for i in 0..<numHiddenLayers {
            let p = "model.layers.\(i)."
            out.append(ExpectedTensor(name: p + "input_layernorm.weight", shape: [hiddenSize]))
            for (proj, rows) in [("q_proj", q), ("k_proj", kv), ("v_proj", kv)] {
                out.append(ExpectedTensor(name: p + "self_attn.\(proj).weight", shape: [rows, hiddenSize]))
                if qkvBias { out.append(ExpectedTensor(name: p + "self_attn.\(proj).bias", shape: [rows])) }
            }
            out.append(ExpectedTensor(name: p + "self_attn.o_proj.weight", shape: [hiddenSize, q]))
            if outputBias { out.append(ExpectedTensor(name: p + "self_attn.o_proj.bias", shape: [hiddenSize])) }
            out.append(ExpectedTensor(name: p + "post_attention_layernorm.weight", shape: [hiddenSize]))
            out.append(ExpectedTensor(name: p + "mlp.gate_proj.weight", shape: [intermediateSize, hiddenSize]))
            out.append(ExpectedTensor(name: p + "mlp.up_proj.weight", shape: [intermediateSize, hiddenSize]))
            out.append(ExpectedTensor(name: p + "mlp.down_proj.weight", shape: [hiddenSize, intermediateSize]))
        }
        out.append(ExpectedTensor(name: "model.norm.weight", shape: [hiddenSize]))
        if !tieWordEmbeddings {
            out.append(ExpectedTensor(name: "lm_head.weight", shape: [vocabSize, hiddenSize]))
        }
        return out
    }

    /// Checks that `weights` holds every tensor of `expectedTensors` with the
    /// expected shape and a dtype that converts to `Float`.
    ///
    /// Extra tensors are allowed (older Llama checkpoints carry
    /// `rotary_emb.inv_freq`; tied ones may still carry `lm_head.weight`).
    ///
    /// - Throws: `ModelImportError` "<path>: <first problem> (and N more
    ///   problems)", where a problem is "missing tensor 'x'", "tensor 'x' has
    ///   shape [..], expected [..]" or "tensor 'x' has dtype I8, …".
    public func check(_ weights: some TensorStore) throws {
        var problems: [String] = []
        for t in expectedTensors {
            guard let info = try? weights.info(t.name) else {
                problems.append("missing tensor \(quoted(t.name))")
                continue
            }
            if info.shape != t.shape {
                problems.append("tensor \(quoted(t.name)) has shape \(info.shape), expected \(t.shape)")
            } else if !info.dtype.convertsToFloat {
                problems.append("tensor \(quoted(t.name)) has dtype \(info.dtype.rawValue); only F32, BF16 and F16 are supported")
            }
        }
        guard let first = problems.first else { return }
        let more = problems.count > 1 ? " (and \(problems.count - 1) more problem\(problems.count > 2 ? "s" : ""))" : ""
        throw ModelImportError("\(weights.path): \(first)\(more)")
    }
}
