import AttuneIR

/// Recognises eager softmax attention as `DecoderGraph` (and transformers) emit it and
/// replaces it with one `attention` op on the 2-D q `[seq, heads*dim]` and k/v
/// `[kv, kv_heads*dim]`:
///
///     qh = transpose[1,0,2](reshape[seq, H, D](q))            (same for k, v with Hkv;
///     kh = repeat_interleave(axis 0, H/Hkv)(...)               the repeat only for GQA)
///     s  = scale(matmul(qh, khᵀ))       or softcap(scale(matmul(qh, khᵀ)))  (Gemma 2)
///     p  = softmax(add(s, attention_mask(s)))                  (the mask add is optional)
///     o  = reshape[seq, H*Dv](transpose[1,0,2](matmul(p, vh)))  ← root
///
/// The scale comes from the `scale` op, the soft-cap from a `softcap` op on the scaled
/// scores; causal and window from the `attention_mask` (both bottom-right aligned, like
/// `attention`); no mask means causal false.
///
/// Refuses (with the reason) when the scores are not scaled, the added tensor is not an
/// `attention_mask`, a head split is not reshape + transpose[1,0,2] of a 2-D tensor,
/// the head counts or head dims do not agree, the GQA repeat does not map query heads
/// to kv heads, or an intermediate (the softmax, the scores, ...) has other users.
public enum AttentionFusion {
    public struct Match: RewriteMatch {
        public var root: Int
        public var nodes: [Int]
        public var replaced: [Value] { [Value(node: root)] }
        /// The parsed pattern, or why the found pattern cannot become one `attention`.
        public var parsed: Result<Parts, PatternMismatch>
    }

    /// The pieces of a recognised pattern.
    public struct Parts: Sendable {
        public var q: Value
        public var k: Value
        public var v: Value
        public var attrs: AttentionAttrs
    }

    /// Why a found pattern does not parse (a value, so it can travel in a `Result`).
    public struct PatternMismatch: Error, Sendable {
        public var reason: String
        init(_ reason: String) { self.reason = reason }
    }

    public static let rewrite = RewritePass<Match>(
        name: "fuse-attention",
        summary: "matmul·scale·mask·softmax·matmul with its head split/merge → attention",
        match: match,
        legality: { _, m in
            if case .failure(let mismatch) = m.parsed { return mismatch.reason }
            return nil
        },
        rewrite: { r, m in
            let parts = try m.parsed.get()
            return [try r.emit(.attention(parts.attrs), [r.new(parts.q), r.new(parts.k), r.new(parts.v)])]
        },
        kind: { m in
            guard case .success(let p) = m.parsed else { return "attention" }
            return p.attrs.window != nil ? "sliding-window attention" : p.attrs.heads == p.attrs.kvHeads ? "attention" : "GQA attention"
        })

    /// Anchors on the output side: reshape ← transpose[1,0,2] ← matmul ← softmax. Anything
    /// beyond the anchor that does not fit is a refusal, not a miss.
    static func match(_ g: IndexedGraph, _ i: Int) -> Match? {
        guard case .reshape(let outShape) = g[i].op else { return nil }
        let merge = g[i].inputs[0]
        guard case .transpose([1, 0, 2]) = g.producer(merge).op else { return nil }
        let pv = g.producer(merge).inputs[0]
        guard case .matmul(transposeB: false) = g.producer(pv).op else { return nil }
        let probs = g.producer(pv).inputs[0]
        guard case .softmax = g.producer(probs).op else { return nil }

        var nodes = [i, merge.node, pv.node, probs.node]
        let parsed = Result<Parts, PatternMismatch> { () throws(PatternMismatch) -> Parts in
            try parse(g, outShape: outShape, probs: probs, vh: g.producer(pv).inputs[1], nodes: &nodes)
        }
        return Match(root: i, nodes: Array(Set(nodes)).sorted(), parsed: parsed)
    }

    private static func parse(_ g: IndexedGraph, outShape: [Dim], probs: Value, vh: Value, nodes: inout [Int]) throws(PatternMismatch) -> Parts {
        // softmax input: scores, or scores + attention_mask(·)
        var scores = g.producer(probs).inputs[0]
        var causal = false
        var window: Int?
        if case .add = g.producer(scores).op {
            let add = g.producer(scores)
            guard case .attentionMask(let c, let w) = g.producer(add.inputs[1]).op else {
                throw PatternMismatch("the tensor added to the scores is not an attention_mask")
            }
            let maskInput = g.type(g.producer(add.inputs[1]).inputs[0]).shape
            guard Array(maskInput.suffix(2)) == Array(g.type(add.inputs[0]).shape.suffix(2)) else {
                throw PatternMismatch("the attention_mask is built for a different [seq, kv] than the scores")
            }
            nodes += [scores.node, add.inputs[1].node]
            (causal, window) = (c, w)
            scores = add.inputs[0]
        }
        // scores = softcap(s) (optional), s = scale(q·kᵀ)
        var softcap: Double?
        if case .softcap(let c) = g.producer(scores).op {
            softcap = c
            nodes.append(scores.node)
            scores = g.producer(scores).inputs[0]
        }
        let scale: Double
        let qk: Value
        switch g.producer(scores).op {
        case .scale(let factor):
            scale = factor
            qk = g.producer(scores).inputs[0]
            nodes.append(scores.node)
        case .matmul(transposeB: true):
            throw PatternMismatch("the scale is missing: q·kᵀ goes to the softmax unscaled")
        default:
            throw PatternMismatch("the softmax input is not scale(matmul(q, kᵀ))\(causal || window != nil ? " plus a mask" : "")")
        }
        guard case .matmul(transposeB: true) = g.producer(qk).op else {
            throw PatternMismatch("the scaled scores are not matmul(q, kᵀ)")
        }
        nodes.append(qk.node)

        let q = try headSplit(g, g.producer(qk).inputs[0], "q", repeatable: false, nodes: &nodes)
        let k = try headSplit(g, g.producer(qk).inputs[1], "k", repeatable: true, nodes: &nodes)
        let v = try headSplit(g, vh, "v", repeatable: true, nodes: &nodes)

        guard k.heads == v.heads, k.repeats == v.repeats else {
            throw PatternMismatch("the head split does not match: k has \(k.heads) heads ×\(k.repeats), v \(v.heads) ×\(v.repeats)")
        }
        guard k.heads * k.repeats == q.heads else {
            throw PatternMismatch("the head split does not match: \(q.heads) query heads vs \(k.heads) kv heads repeated ×\(k.repeats)")
        }
        guard q.dim == k.dim else {
            throw PatternMismatch("the head split does not match: q head_dim \(q.dim) vs k head_dim \(k.dim)")
        }
        guard outShape == [g.type(q.value).shape[0], .fixed(q.heads * v.dim)] else {
            throw PatternMismatch("the head merge does not match: output reshaped to [\(outShape.map(\.description).joined(separator: ", "))], not [\(g.type(q.value).shape[0]), \(q.heads * v.dim)]")
        }
        let attrs = AttentionAttrs(heads: q.heads, kvHeads: k.heads, headDim: q.dim, vHeadDim: v.dim, scale: scale,
                                   causal: causal, window: window, normalizer: .softmax, softcap: softcap)
        return Parts(q: q.value, k: k.value, v: v.value, attrs: attrs)
    }

    /// `[rows, heads*dim]` split into `[heads, rows, dim]` (then repeated for GQA).
    private struct HeadSplit {
        var value: Value
        var heads: Int
        var dim: Int
        var repeats: Int
    }

    private static func headSplit(_ g: IndexedGraph, _ split: Value, _ what: String, repeatable: Bool,
                                  nodes: inout [Int]) throws(PatternMismatch) -> HeadSplit {
        var x = split
        var repeats = 1
        if repeatable, case .repeatInterleave(let axis, let r) = g.producer(x).op {
            guard axis == 0 else { throw PatternMismatch("the \(what) heads are repeated along axis \(axis), not the head axis") }
            repeats = r
            nodes.append(x.node)
            x = g.producer(x).inputs[0]
        }
        let shape = "\(what) is not reshape([rows, heads, dim]) + transpose([1, 0, 2]) of a 2-D [rows, heads*dim]"
        guard case .transpose([1, 0, 2]) = g.producer(x).op else { throw PatternMismatch("the head split does not match: \(shape)") }
        let reshaped = g.producer(x).inputs[0]
        guard case .reshape(let dims) = g.producer(reshaped).op, dims.count == 3,
              let heads = dims[1].fixedValue, let dim = dims[2].fixedValue else {
            throw PatternMismatch("the head split does not match: \(shape)")
        }
        let source = g.producer(reshaped).inputs[0]
        let t = g.type(source)
        guard t.rank == 2, t.shape[0] == dims[0], t.shape[1] == .fixed(heads * dim) else {
            throw PatternMismatch("the head split does not match: \(shape)")
        }
        nodes += [x.node, reshaped.node]
        return HeadSplit(value: source, heads: heads, dim: dim, repeats: repeats)
    }
}

extension Pass {
    /// See `AttentionFusion`.
    public static let fuseAttention = AttentionFusion.rewrite.pass
}
