import AttuneIR

/// Fuses a residual add with the RMSNorm that reads it: `rms_norm(add(a, b), w)` →
/// `add_rms_norm(a, b, w)`, whose two results replace the sum (still needed by the
/// next residual add) and the normed value. The root is the `rms_norm`.
///
/// Refuses when the add broadcasts (`add_rms_norm` needs `a` and `b` of one shape),
/// the norm's weight is not 1-D over the last axis, or the sum is read before the norm
/// (the fused op would come too late for that reader).
public enum AddRMSNormFusion {
    public struct Match: RewriteMatch {
        public var add: Int
        public var norm: Int
        public var nodes: [Int] { [add, norm] }
        public var replaced: [Value] { [Value(node: add), Value(node: norm)] }
    }

    public static let rewrite = RewritePass<Match>(
        name: "fuse-add-rms-norm",
        summary: "rms_norm(add(a, b), w) → add_rms_norm(a, b, w) (sum and normed)",
        match: { g, i in
            guard case .rmsNorm = g[i].op, case .add = g.producer(g[i].inputs[0]).op else { return nil }
            return Match(add: g[i].inputs[0].node, norm: i)
        },
        legality: { g, m in
            let add = g[m.add]
            let (a, b, w) = (g.type(add.inputs[0]), g.type(add.inputs[1]), g.type(g[m.norm].inputs[1]))
            guard a.shape == b.shape else { return "the add broadcasts \(b) over \(a); add_rms_norm needs equal shapes" }
            guard w.rank == 1, w.shape.first == a.shape.last else { return "the norm weight \(w) is not 1-D over the last axis" }
            return nil
        },
        rewrite: { r, m in
            guard case .rmsNorm(let eps) = r.source.nodes[m.norm].op else { preconditionFailure() }
            let add = r.source.nodes[m.add]
            return try r.emitResults(.addRMSNorm(eps: eps),
                                     [r.new(add.inputs[0]), r.new(add.inputs[1]), r.new(r.source.nodes[m.norm].inputs[1])])
        })
}

extension Pass {
    /// See `AddRMSNormFusion`.
    public static let fuseAddRMSNorm = AddRMSNormFusion.rewrite.pass
}
