/// A tensor a checkpoint must hold, by its Hugging Face name.
public struct ExpectedTensor: Sendable, Equatable {
    public let name: String
    public let shape: [Int]

    public init(name: String, shape: [Int]) {
        self.name = name
        self.shape = shape
    }
}

/// Which checkpoint tensors hold the input embedding table and the output projection,
/// resolved as transformers' `from_pretrained` ties them (see `HFConfig.check`).
public struct EmbeddingTensors: Sendable, Equatable {
    public let embedding: String
    public let lmHead: String

    /// The names a checkpoint holding exactly `config.expectedTensors` uses.
    public init(expectedBy config: HFConfig) {
        self.init(embedding: HFConfig.embeddingName, lmHead: config.tieWordEmbeddings ? HFConfig.embeddingName : HFConfig.lmHeadName)
    }

    public init(embedding: String, lmHead: String) {
        self.embedding = embedding
        self.lmHead = lmHead
    }
}

extension HFConfig {
    public static let embeddingName = "model.embed_tokens.weight"
    public static let lmHeadName = "lm_head.weight"

    /// The tensors a checkpoint for this config holds, in model order, with
    /// their shapes. Linear weights are `[out_features, in_features]`, as
    /// PyTorch stores them:
    ///
    /// - `model.embed_tokens.weight` `[vocab, hidden]`
    /// - per layer `i`, under `model.layers.i.`:
    ///   `input_layernorm.weight` `[hidden]`;
    ///   `self_attn.q_proj.weight` `[heads·head_dim, hidden]`,
    ///   `k_proj`/`v_proj` `[kv_heads·head_dim, hidden]` — or, for a fused family
    ///   (Phi-3), one `self_attn.qkv_proj.weight` `[(heads + 2·kv_heads)·head_dim, hidden]`;
    ///   `self_attn.q_norm.weight`, `k_norm.weight` `[head_dim]` (Qwen3);
    ///   `o_proj` `[hidden, heads·head_dim]`, and the biases `qkvBias` and
    ///   `outputBias` call for (one entry per output feature);
    ///   `post_attention_layernorm.weight` `[hidden]`, and with post-norms (Gemma 2)
    ///   `pre_feedforward_layernorm.weight`, `post_feedforward_layernorm.weight` `[hidden]`;
    ///   `mlp.gate_proj.weight`, `mlp.up_proj.weight` `[intermediate, hidden]` — or
    ///   one `mlp.gate_up_proj.weight` `[2·intermediate, hidden]` (gate rows first);
    ///   `mlp.down_proj.weight` `[hidden, intermediate]`
    /// - `model.norm.weight` `[hidden]`
    /// - `lm_head.weight` `[vocab, hidden]`, unless `tieWordEmbeddings`.
    ///
    /// Validation keeps every product here below 2^62, so no shape overflows.
    public var expectedTensors: [ExpectedTensor] {
        let spec = architecture.spec
        let q = numAttentionHeads * headDim
        let kv = numKeyValueHeads * headDim
        var out = [ExpectedTensor(name: Self.embeddingName, shape: [vocabSize, hiddenSize])]
        func linear(_ name: String, _ rows: Int, _ cols: Int, bias: Bool) {
            out.append(ExpectedTensor(name: name + ".weight", shape: [rows, cols]))
            if bias { out.append(ExpectedTensor(name: name + ".bias", shape: [rows])) }
        }
        for i in 0..<numHiddenLayers {
            let p = "model.layers.\(i)."
            out.append(ExpectedTensor(name: p + "input_layernorm.weight", shape: [hiddenSize]))
            switch spec.attention {
            case .separate:
                for (proj, rows) in [("q_proj", q), ("k_proj", kv), ("v_proj", kv)] {
                    linear(p + "self_attn.\(proj)", rows, hiddenSize, bias: qkvBias)
                }
            case .fused:
                linear(p + "self_attn.qkv_proj", q + 2 * kv, hiddenSize, bias: qkvBias)
            }
            if spec.qkNorm {
                out.append(ExpectedTensor(name: p + "self_attn.q_norm.weight", shape: [headDim]))
                out.append(ExpectedTensor(name: p + "self_attn.k_norm.weight", shape: [headDim]))
            }
            linear(p + "self_attn.o_proj", hiddenSize, q, bias: outputBias)
            out.append(ExpectedTensor(name: p + "post_attention_layernorm.weight", shape: [hiddenSize]))
            if spec.gemma != nil {
                out.append(ExpectedTensor(name: p + "pre_feedforward_layernorm.weight", shape: [hiddenSize]))
                out.append(ExpectedTensor(name: p + "post_feedforward_layernorm.weight", shape: [hiddenSize]))
            }
            switch spec.mlp {
            case .separate:
                linear(p + "mlp.gate_proj", intermediateSize, hiddenSize, bias: false)
                linear(p + "mlp.up_proj", intermediateSize, hiddenSize, bias: false)
            case .fused:
                linear(p + "mlp.gate_up_proj", 2 * intermediateSize, hiddenSize, bias: false)
            }
            linear(p + "mlp.down_proj", hiddenSize, intermediateSize, bias: false)
        }
        out.append(ExpectedTensor(name: "model.norm.weight", shape: [hiddenSize]))
        if !tieWordEmbeddings {
            out.append(ExpectedTensor(name: Self.lmHeadName, shape: [vocabSize, hiddenSize]))
        }
        return out
    }

    /// Checks `weights` against `expectedTensors` and resolves the embedding tensors, with
    /// transformers' loading rules:
    ///
    /// - Every expected tensor is present, with the expected shape and a dtype that
    ///   converts to `Float`.
    /// - Tied embeddings (`tie_word_embeddings: true`): transformers ties `lm_head.weight`
    ///   to `model.embed_tokens.weight` only when the file lacks one of them or both hold
    ///   equal values; when both are present with different values it does NOT tie them
    ///   and each layer uses its own. So: both present → each its own (equal or not, that
    ///   is transformers' result); only `lm_head.weight` present → it serves as the
    ///   embedding table too; neither → missing `model.embed_tokens.weight`.
    /// - Untied: both are required (transformers would initialise a missing one randomly).
    /// - No tensor may be left over: any name that is not part of this model (a layer
    ///   index `>= num_hidden_layers`, another family's projection, a stray buffer) is an
    ///   error naming it — except `…rotary_emb.inv_freq`, the RoPE buffer old exports
    ///   carry, which transformers too ignores and Attune recomputes.
    ///
    /// - Throws: `ModelImportError` "<path>: <first problem> (and N more
    ///   problems)", where a problem is "missing tensor 'x'", "tensor 'x' has
    ///   shape [..], expected [..]", "tensor 'x' has dtype I8, …" or
    ///   "unexpected tensor 'x' (…)".
    @discardableResult
    public func check(_ weights: some TensorStore) throws -> EmbeddingTensors {
        var expected = expectedTensors
        var embedding = Self.embeddingName
        let present = Set(weights.tensorNames)
        if tieWordEmbeddings {
            let head = ExpectedTensor(name: Self.lmHeadName, shape: [vocabSize, hiddenSize])
            if present.contains(Self.lmHeadName) { expected.append(head) }
            if !present.contains(Self.embeddingName) && present.contains(Self.lmHeadName) {
                expected.removeAll { $0.name == Self.embeddingName }
                embedding = Self.lmHeadName
            }
        }
        var problems: [String] = []
        for t in expected {
            guard let info = try? weights.info(t.name) else {
                let why = t.name == Self.lmHeadName ? " (tie_word_embeddings is false)" : ""
                problems.append("missing tensor \(quoted(t.name))\(why)")
                continue
            }
            if info.shape != t.shape {
                problems.append("tensor \(quoted(t.name)) has shape \(info.shape), expected \(t.shape)")
            } else if !info.dtype.convertsToFloat {
                problems.append("tensor \(quoted(t.name)) has dtype \(info.dtype.rawValue); only F32, BF16 and F16 are supported")
            }
        }
        let known = Set(expected.map(\.name))
        for name in weights.tensorNames where !known.contains(name) && !name.hasSuffix("rotary_emb.inv_freq") {
            problems.append("unexpected tensor \(quoted(name)) (\(unexpectedReason(name)))")
        }
        if let first = problems.first {
            let more = problems.count > 1 ? " (and \(problems.count - 1) more problem\(problems.count > 2 ? "s" : ""))" : ""
            throw ModelImportError("\(weights.path): \(first)\(more)")
        }
        let lmHead = tieWordEmbeddings && !present.contains(Self.lmHeadName) ? embedding : Self.lmHeadName
        return EmbeddingTensors(embedding: embedding, lmHead: lmHead)
    }

    /// Why a tensor name is not part of this model, for the error message.
    private func unexpectedReason(_ name: String) -> String {
        let parts = name.split(separator: ".")
        if parts.count > 2, parts[0] == "model", parts[1] == "layers", let layer = Int(parts[2]), layer >= numHiddenLayers {
            return "num_hidden_layers is \(numHiddenLayers)"
        }
        return "not a tensor of \(architecture.rawValue)"
    }
}
