import AttuneIR

/// Folds RoPE into the merged QKV projection's epilogue:
///
///     y = linear(x, W_qkv[, b])                 (as `merge-qkv` leaves it)
///     q = rope(slice(y, [0, Hq·D)), positions)
///     k = rope(slice(y, [Hq·D, (Hq+Hkv)·D)), positions)
///     v = slice(y, [(Hq+Hkv)·D, (Hq+2·Hkv)·D))
///
/// becomes `qkv_rope(x, W_qkv[, b], positions)` with results q, k, v, labelled like the
/// projection. The root is the later of the two ropes.
///
/// When q and k are normalised per head between the slice and the rope (Qwen3's
/// `head_rms_norm`), the norms join the fused op too (`qk_norm_eps`, with both weights
/// as inputs before `positions`).
///
/// Refuses when the projection is not split into exactly three contiguous slices
/// (q, k, v in order), q or k is not rotated (or v is), the rope attributes (head_dim,
/// rotary_dim, frequencies) differ between q and k, q and k use different positions, only
/// one of q and k is normalised or their norms differ in eps or width, the widths do not
/// match the heads, or x is not 2-D.
public enum QKVRopeFusion {
    public struct Match: RewriteMatch {
        public var root: Int
        public var nodes: [Int]
        public var replaced: [Value]
        public var parsed: Result<Parts, Mismatch>
    }

    public struct Parts: Sendable {
        /// The merged projection; the fused node takes its label.
        public var projection: Int
        public var x: Value
        public var weight: Value
        public var bias: Value?
        /// q's and k's per-head norm weights (Qwen3), in that order.
        public var norms: [Value]
        public var positions: Value
        public var attrs: QKVRopeAttrs
    }

    public struct Mismatch: Error, Sendable {
        public var reason: String
        init(_ reason: String) { self.reason = reason }
    }

    public static let rewrite = RewritePass<Match>(
        name: "fuse-qkv-rope",
        summary: "merged QKV linear + slices + rope on q and k → qkv_rope",
        match: match,
        legality: { _, m in
            if case .failure(let mismatch) = m.parsed { return mismatch.reason }
            return nil
        },
        rewrite: { r, m in
            let p = try m.parsed.get()
            let inputs = [p.x, p.weight] + (p.bias.map { [$0] } ?? []) + p.norms + [p.positions]
            return try r.emitResults(.qkvRope(p.attrs), inputs.map(r.new), label: r.source.nodes[p.projection].label)
        })

    static func match(_ g: IndexedGraph, _ i: Int) -> Match? {
        guard case .rope = g[i].op else { return nil }
        var sliced = g[i].inputs[0]
        if case .headRMSNorm = g.producer(sliced).op { sliced = g.producer(sliced).inputs[0] }
        guard case .slice = g.producer(sliced).op else { return nil }
        let y = g.producer(sliced).inputs[0]
        guard case .linear = g.producer(y).op else { return nil }

        // Every slice of y in start order, and the rope (if any) reading each.
        let slices = g.users(y).filter { u in
            if case .slice = g[u].op { return true } else { return false }
        }.sorted { sliceBounds(g, $0).start < sliceBounds(g, $1).start }
        // A rope reading the slice directly, or through a per-head norm.
        func rope(reading v: Value) -> Int? {
            g.users(v).first { u in
                if case .rope = g[u].op { return g[u].inputs[0] == v } else { return false }
            }
        }
        var norms: [Int] = []
        let ropeOf: [Int: Int] = Dictionary(uniqueKeysWithValues: slices.compactMap { s in
            if let r = rope(reading: Value(node: s)) { return (s, r) }
            for u in g.users(Value(node: s)) {
                if case .headRMSNorm = g[u].op, g[u].inputs[0] == Value(node: s), let r = rope(reading: Value(node: u)) {
                    norms.append(u)
                    return (s, r)
                }
            }
            return nil
        })
        guard ropeOf.values.max() == i else { return nil }   // the root is the last rope

        let nodes = [y.node] + slices + norms + ropeOf.values.sorted()
        let parsed = Result<Parts, Mismatch> { () throws(Mismatch) -> Parts in try parse(g, y: y, slices: slices, ropeOf: ropeOf) }
        var replaced: [Value] = []
        if slices.count == 3, let q = ropeOf[slices[0]], let k = ropeOf[slices[1]] {
            replaced = [Value(node: q), Value(node: k), Value(node: slices[2])]
        }
        return Match(root: i, nodes: Array(Set(nodes)).sorted(), replaced: replaced, parsed: parsed)
    }

    private static func sliceBounds(_ g: IndexedGraph, _ s: Int) -> (axis: Int, start: Int, end: Int) {
        guard case .slice(let axis, let start, let end) = g[s].op else { preconditionFailure("not a slice") }
        return (axis, start, end ?? g.type(g[s].inputs[0]).shape[axis].fixedValue!)
    }

    private static func parse(_ g: IndexedGraph, y: Value, slices: [Int], ropeOf: [Int: Int]) throws(Mismatch) -> Parts {
        let linear = g.producer(y)
        let x = linear.inputs[0]
        guard g.type(x).rank == 2 else { throw Mismatch("the projection input is not 2-D [seq, hidden]") }
        guard g.users(y).count == slices.count, !g.isOutput(y) else {
            throw Mismatch("the projection output has users other than slices")
        }
        guard slices.count == 3 else { throw Mismatch("the projection is not split into three slices (q, k, v)") }
        let bounds = slices.map { sliceBounds(g, $0) }
        let width = g.type(y).shape[1].fixedValue!
        guard bounds.allSatisfy({ $0.axis == 1 }), bounds[0].start == 0, bounds[0].end == bounds[1].start,
              bounds[1].end == bounds[2].start, bounds[2].end == width else {
            throw Mismatch("the slices do not split the projection into contiguous q, k, v")
        }
        guard let qRope = ropeOf[slices[0]] else { throw Mismatch("q (the first slice) is not rotated by a rope") }
        guard let kRope = ropeOf[slices[1]] else { throw Mismatch("k (the second slice) is not rotated by a rope") }
        guard ropeOf[slices[2]] == nil else { throw Mismatch("v (the third slice) is rotated by a rope") }
        guard case .rope(let qa) = g[qRope].op, case .rope(let ka) = g[kRope].op else { preconditionFailure() }
        var differences: [String] = []
        if qa.headDim != ka.headDim { differences.append("head_dim \(qa.headDim) vs \(ka.headDim)") }
        if qa.rotaryDim != ka.rotaryDim { differences.append("rotary_dim \(qa.rotaryDim) vs \(ka.rotaryDim)") }
        switch (qa.frequencies.source, ka.frequencies.source) {
        case (.theta(let qt), .theta(let kt)) where qa.frequencies.attentionScaling == ka.frequencies.attentionScaling:
            if qt != kt { differences.append("theta \(qt) vs \(kt)") }
        default:
            if qa.frequencies != ka.frequencies {
                differences.append("frequencies \(AttrValue.dict(qa.frequencies.attributes)) vs \(AttrValue.dict(ka.frequencies.attributes))")
            }
        }
        guard differences.isEmpty else {
            throw Mismatch("rope attributes differ between q and k (\(differences.joined(separator: ", ")))")
        }
        guard g[qRope].inputs[1] == g[kRope].inputs[1] else { throw Mismatch("q and k are rotated at different positions") }
        guard bounds[2].end - bounds[2].start == ka.heads * ka.headDim else {
            throw Mismatch("v's width \(bounds[2].end - bounds[2].start) is not kv_heads*head_dim = \(ka.heads * ka.headDim)")
        }
        // The per-head norm between a slice and its rope, if any.
        func norm(_ rope: Int) -> Node? {
            let n = g.producer(g[rope].inputs[0])
            if case .headRMSNorm = n.op { return n } else { return nil }
        }
        var norms: [Value] = []
        var qkNormEps: Double?
        switch (norm(qRope), norm(kRope)) {
        case (nil, nil): break
        case let (qn?, kn?):
            guard case .headRMSNorm(let qe) = qn.op, case .headRMSNorm(let ke) = kn.op else { preconditionFailure() }
            guard qe == ke else { throw Mismatch("q and k are normalised with different eps (\(qe) vs \(ke))") }
            for n in [qn, kn] where g.type(n.inputs[1]).shape[0] != .fixed(qa.headDim) {
                throw Mismatch("a per-head norm's weight \(g.type(n.inputs[1])) does not match head_dim \(qa.headDim)")
            }
            norms = [qn.inputs[1], kn.inputs[1]]
            qkNormEps = qe
        default:
            throw Mismatch("only one of q and k is normalised per head before RoPE")
        }
        guard qa.heads % ka.heads == 0 else {
            throw Mismatch("q heads (\(qa.heads)) are not a multiple of k heads (\(ka.heads))")
        }
        let hasBias = linear.inputs.count == 3
        let attrs = QKVRopeAttrs(heads: qa.heads, kvHeads: ka.heads, headDim: qa.headDim, rotaryDim: qa.rotaryDim,
                                 frequencies: qa.frequencies, hasBias: hasBias, qkNormEps: qkNormEps)
        return Parts(projection: y.node, x: x, weight: linear.inputs[1], bias: hasBias ? linear.inputs[2] : nil,
                     norms: norms, positions: g[qRope].inputs[1], attrs: attrs)
    }
}

extension Pass {
    /// See `QKVRopeFusion`.
    public static let fuseQKVRope = QKVRopeFusion.rewrite.pass
}
