import AttuneIR
import Foundation

/// Builds the IR of a Llama-family decoder exactly as Hugging Face computes it, op by op
/// and unfused: separate q/k/v projections, RoPE, the explicit attention pattern
/// (matmul, scale, mask add, softmax, matmul), residual adds, RMSNorm, the gated MLP.
/// What a family changes comes from its `ArchitectureSpec`: biases, Qwen3's per-head
/// q/k norm before RoPE, and Phi-3's fused `qkv_proj`/`gate_up_proj`, which are split
/// here into row slices of the stored weight, so every family reaches the passes in the
/// same unfused form (`merge-qkv` and `fuse-swiglu` re-join them; the slices and the
/// concatenation of weights are constants, folded at compile time). Gemma 2
/// (`ArchitectureSpec.Gemma`) adds its embedding scale, `1 + w` norm weights (an
/// `elementwise` on the weight, folded at compile time), post-attention and
/// pre/post-feedforward norms, the GeGLU MLP and the soft-caps (`softcap` on the scaled
/// scores and on the logits), as `modeling_gemma2.py` computes them.
/// The compiler's passes fuse it; the reference interpreter runs it as is.
///
/// Inputs: `tokens i32[seq]`, `positions i32[seq]` (absolute positions, the KV-cache
/// length before the call plus 0..<seq). Output: `logits f32[seq, vocab]`.
public enum DecoderGraph {
    /// `tensors` says which checkpoint tensors hold the embedding table and the output
    /// projection (`HFConfig.check` resolves them; nil: the names of `expectedTensors`);
    /// `dtype(name)` gives each weight's stored dtype (from the checkpoint).
    public static func build(_ c: HFConfig, tensors: EmbeddingTensors? = nil, name: String,
                             dtype: (String) throws -> DType) throws -> Graph {
        let tensors = tensors ?? EmbeddingTensors(expectedBy: c)
        var b = GraphBuilder(name: name)
        let spec = c.architecture.spec
        let (h, d, hq, hkv, inter) = (c.hiddenSize, c.headDim, c.numAttentionHeads, c.numKeyValueHeads, c.intermediateSize)
        func weight(_ name: String, _ shape: [Dim]) throws -> Value {
            b.weight(name, try dtype(name), shape)
        }
        func linear(_ x: Value, _ prefix: String, out: Int, in inDim: Int, bias: Bool) throws -> Value {
            let w = try weight(prefix + ".weight", [.fixed(out), .fixed(inDim)])
            if bias { return try b.add(.linear(hasBias: true), [x, w, try weight(prefix + ".bias", [.fixed(out)])]) }
            return try b.add(.linear(hasBias: false), [x, w])
        }
        /// Linears whose weights (and biases) are consecutive row blocks of one stored
        /// fused tensor `prefix`, in `rows` order.
        func splitLinear(_ x: Value, _ prefix: String, rows: [Int], in inDim: Int, bias: Bool) throws -> [Value] {
            let w = try weight(prefix + ".weight", [.fixed(rows.reduce(0, +)), .fixed(inDim)])
            let bv = bias ? try weight(prefix + ".bias", [.fixed(rows.reduce(0, +))]) : nil
            var start = 0
            return try rows.map { n in
                defer { start += n }
                let slice = Op.slice(axis: 0, start: start, end: start + n)
                var inputs = [x, try b.add(slice, [w])]
                if let bv { inputs.append(try b.add(slice, [bv])) }
                return try b.add(.linear(hasBias: bias), inputs)
            }
        }
        /// An RMSNorm weight as the family applies it: Gemma's `1 + w` (computed in fp32 by
        /// transformers: folded at compile time, once), else the stored `w`.
        func normWeight(_ name: String) throws -> Value {
            let w = try weight(name, [.fixed(h)])
            guard spec.gemma != nil else { return w }
            return try b.add(.elementwise(ElementwiseProgram(.add(.input(0), .constant(1)))), [w])
        }
        func rmsNorm(_ x: Value, _ name: String) throws -> Value {
            try b.add(.rmsNorm(eps: c.rmsNormEps), [x, try normWeight(name)])
        }
        /// RoPE of `x` with `heads` heads: the one place the rotary settings are read.
        func rope(_ x: Value, heads: Int) throws -> Value {
            try b.add(.rope(RopeAttrs(heads: heads, headDim: d, rotaryDim: c.rope.rotaryDim, frequencies: c.rope.frequencies)), [x, positions])
        }

        let tokens = b.input("tokens", .i32, ["seq"])
        let positions = b.input("positions", .i32, ["seq"])
        b.label = "model.embed_tokens"
        let embed = try weight(tensors.embedding, [.fixed(c.vocabSize), .fixed(h)])
        var x = try b.add(.embedding, [embed, tokens])
        if spec.gemma != nil {
            x = try b.add(.scale(factor: embeddingNormalizer(hidden: h, dtype: try dtype(tensors.embedding))), [x])
        }

        for l in 0..<c.numHiddenLayers {
            let p = "model.layers.\(l)"
            b.label = "\(p).input_layernorm"
            let hn = try rmsNorm(x, "\(p).input_layernorm.weight")

            var q: Value, k: Value, v: Value
            switch spec.attention {
            case .separate:
                b.label = "\(p).self_attn.q_proj"
                q = try linear(hn, "\(p).self_attn.q_proj", out: hq * d, in: h, bias: c.qkvBias)
                b.label = "\(p).self_attn.k_proj"
                k = try linear(hn, "\(p).self_attn.k_proj", out: hkv * d, in: h, bias: c.qkvBias)
                b.label = "\(p).self_attn.v_proj"
                v = try linear(hn, "\(p).self_attn.v_proj", out: hkv * d, in: h, bias: c.qkvBias)
            case .fused:
                b.label = "\(p).self_attn.qkv_proj"
                let qkv = try splitLinear(hn, "\(p).self_attn.qkv_proj", rows: [hq * d, hkv * d, hkv * d], in: h, bias: c.qkvBias)
                (q, k, v) = (qkv[0], qkv[1], qkv[2])
            }
            if spec.qkNorm {
                b.label = "\(p).self_attn.q_norm"
                q = try b.add(.headRMSNorm(eps: c.rmsNormEps), [q, try weight("\(p).self_attn.q_norm.weight", [.fixed(d)])])
                b.label = "\(p).self_attn.k_norm"
                k = try b.add(.headRMSNorm(eps: c.rmsNormEps), [k, try weight("\(p).self_attn.k_norm.weight", [.fixed(d)])])
            }

            b.label = "\(p).self_attn.rotary_emb"
            q = try rope(q, heads: hq)
            k = try rope(k, heads: hkv)

            b.label = "\(p).self_attn.kv_cache"
            let kc = try b.add(.kvAppend(layer: l, kind: .key), [k])
            let vc = try b.add(.kvAppend(layer: l, kind: .value), [v])

            b.label = "\(p).self_attn"
            let attn = try attention(&b, q: q, k: kc, v: vc, config: c, layer: l)

            b.label = "\(p).self_attn.o_proj"
            var o = try linear(attn, "\(p).self_attn.o_proj", out: h, in: hq * d, bias: c.outputBias)
            if spec.gemma != nil {
                b.label = "\(p).post_attention_layernorm"
                o = try rmsNorm(o, "\(p).post_attention_layernorm.weight")
            }
            b.label = "\(p).residual"
            x = try b.add(.add, [x, o])

            let mlpNorm = spec.gemma != nil ? "pre_feedforward_layernorm" : "post_attention_layernorm"
            b.label = "\(p).\(mlpNorm)"
            let hn2 = try rmsNorm(x, "\(p).\(mlpNorm).weight")
            b.label = "\(p).mlp"
            let gate: Value, up: Value
            switch spec.mlp {
            case .separate:
                gate = try linear(hn2, "\(p).mlp.gate_proj", out: inter, in: h, bias: false)
                up = try linear(hn2, "\(p).mlp.up_proj", out: inter, in: h, bias: false)
            case .fused:
                let gu = try splitLinear(hn2, "\(p).mlp.gate_up_proj", rows: [inter, inter], in: h, bias: false)
                (gate, up) = (gu[0], gu[1])
            }
            let activated = try b.add(c.activation == .geluTanh ? .gelu : .silu, [gate])
            let act = try b.add(.mul, [activated, up])
            var down = try linear(act, "\(p).mlp.down_proj", out: h, in: inter, bias: false)
            if spec.gemma != nil {
                b.label = "\(p).post_feedforward_layernorm"
                down = try rmsNorm(down, "\(p).post_feedforward_layernorm.weight")
            }
            b.label = "\(p).residual"
            x = try b.add(.add, [x, down])
        }
        b.label = "model.norm"
        x = try rmsNorm(x, "model.norm.weight")
        b.label = "lm_head"
        let head = tensors.lmHead == tensors.embedding ? embed : try weight(tensors.lmHead, [.fixed(c.vocabSize), .fixed(h)])
        var logits = try b.add(.linear(hasBias: false), [x, head])
        if let cap = c.finalLogitSoftcap {
            b.label = "final_logit_softcapping"
            logits = try b.add(.softcap(cap: cap), [logits])
        }
        b.output("logits", logits)
        return b.graph
    }

    /// The eager attention of transformers: repeat_kv, q kᵀ · scale, additive causal
    /// (and sliding-window) mask, softmax, · v. Sigmoid attention has no softmax to
    /// recognise, so it is emitted as the attention op directly.
    private static func attention(_ b: inout GraphBuilder, q: Value, k: Value, v: Value, config c: HFConfig,
                                  layer: Int) throws -> Value {
        let (d, hq, hkv) = (c.headDim, c.numAttentionHeads, c.numKeyValueHeads)
        let window = c.slidingWindow(layer: layer)
        if c.attentionNormalizer == .sigmoid {
            let bias = c.sigmoidBias ?? -Foundation.log(Double(c.maxPositionEmbeddings))
            return try b.add(.attention(AttentionAttrs(heads: hq, kvHeads: hkv, headDim: d, scale: c.attentionScale, causal: true, window: window,
                                                       normalizer: .sigmoid(bias: bias))), [q, k, v])
        }
        let qh = try splitHeads(&b, q, rows: "seq", heads: hq, dim: d)
        var kh = try splitHeads(&b, k, rows: "kv", heads: hkv, dim: d)
        var vh = try splitHeads(&b, v, rows: "kv", heads: hkv, dim: d)
        if hq != hkv {
            kh = try b.add(.repeatInterleave(axis: 0, repeats: hq / hkv), [kh])
            vh = try b.add(.repeatInterleave(axis: 0, repeats: hq / hkv), [vh])
        }
        var scores = try b.add(.scale(factor: c.attentionScale), [try b.add(.matmul(transposeB: true), [qh, kh])])
        if let cap = c.attnLogitSoftcap { scores = try b.add(.softcap(cap: cap), [scores]) }
        let mask = try b.add(.attentionMask(causal: true, window: window), [scores])
        let probs = try b.add(.softmax, [try b.add(.add, [scores, mask])])
        let out = try b.add(.matmul(transposeB: false), [probs, vh])
        let merged = try b.add(.transpose(perm: [1, 0, 2]), [out])
        return try b.add(.reshape(shape: ["seq", .fixed(hq * d)]), [merged])
    }
}

extension DecoderGraph {
    /// Gemma's embedding scale √hidden as transformers applies it: a float32 tensor cast
    /// to the embedding table's dtype (√3072 = 55.43 is 55.5 in bf16), then multiplied
    /// in that dtype; Attune multiplies in fp32 by the same rounded factor.
    static func embeddingNormalizer(hidden: Int, dtype: DType) -> Double {
        let f = Float(Double(hidden).squareRoot())
        switch dtype {
        case .bf16:
            let u = f.bitPattern
            return Double(Float(bitPattern: (u &+ 0x7FFF &+ ((u >> 16) & 1)) & 0xFFFF_0000))
        case .f16: return Double(Float(Float16(f)))
        case .f32, .i32: return Double(f)
        }
    }

    /// [rows, heads*dim] -> [heads, rows, dim]
    static func splitHeads(_ b: inout GraphBuilder, _ x: Value, rows: Dim, heads: Int, dim: Int) throws -> Value {
        let r = try b.add(.reshape(shape: [rows, .fixed(heads), .fixed(dim)]), [x])
        return try b.add(.transpose(perm: [1, 0, 2]), [r])
    }
}

