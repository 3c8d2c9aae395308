import AttuneIR

/// Builds one eager attention block the way `DecoderGraph` emits it, on graph inputs
/// `q [seq, H*D]`, `k [kv, Hkv*D]`, `v [kv, Hkv*Dv]`, with knobs that break the
/// pattern in the ways `fuse-attention` must notice.
struct EagerAttentionGraph {
    var heads = 4
    var kvHeads = 2
    var headDim = 8
    var vHeadDim = 8
    var scale: Double? = 0.25
    var mask: Mask? = Mask(causal: true, window: nil)
    /// Give v this many heads instead of `kvHeads` (a head split k and v disagree on).
    var vHeads: Int?
    /// Also output the softmax probabilities.
    var exposeSoftmax = false
    /// Add an input `bias [seq, kv]` instead of an `attention_mask`.
    var addPlainBias = false
    /// Soft-cap the scaled scores (Gemma 2), before the mask.
    var softcap: Double?

    struct Mask {
        var causal: Bool
        var window: Int?
    }

    func build() throws -> Graph {
        var b = GraphBuilder(name: "attention")
        b.label = "layers.0.self_attn"
        let q = b.input("q", .f32, ["seq", .fixed(heads * headDim)])
        let k = b.input("k", .f32, ["kv", .fixed(kvHeads * headDim)])
        let vH = vHeads ?? kvHeads
        let v = b.input("v", .f32, ["kv", .fixed(vH * vHeadDim)])
        let bias = addPlainBias ? b.input("bias", .f32, ["seq", "kv"]) : nil
        func split(_ x: Value, _ rows: Dim, _ h: Int, _ d: Int) throws -> Value {
            let r = try b.add(.reshape(shape: [rows, .fixed(h), .fixed(d)]), [x])
            return try b.add(.transpose(perm: [1, 0, 2]), [r])
        }
        let qh = try split(q, "seq", heads, headDim)
        var kh = try split(k, "kv", kvHeads, headDim)
        var vh = try split(v, "kv", vH, vHeadDim)
        if heads != kvHeads { kh = try b.add(.repeatInterleave(axis: 0, repeats: heads / kvHeads), [kh]) }
        if heads != vH { vh = try b.add(.repeatInterleave(axis: 0, repeats: heads / vH), [vh]) }
        var scores = try b.add(.matmul(transposeB: true), [qh, kh])
        if let scale { scores = try b.add(.scale(factor: scale), [scores]) }
        if let softcap { scores = try b.add(.softcap(cap: softcap), [scores]) }
        if let bias {
            scores = try b.add(.add, [scores, bias])
        } else if let mask {
            let m = try b.add(.attentionMask(causal: mask.causal, window: mask.window), [scores])
            scores = try b.add(.add, [scores, m])
        }
        let probs = try b.add(.softmax, [scores])
        let out = try b.add(.matmul(transposeB: false), [probs, vh])
        let merged = try b.add(.transpose(perm: [1, 0, 2]), [out])
        b.output("o", try b.add(.reshape(shape: ["seq", .fixed(heads * vHeadDim)]), [merged]))
        if exposeSoftmax { b.output("probs", probs) }
        return b.graph
    }
}
