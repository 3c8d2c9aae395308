import AttuneIR

/// Fuses the gated MLP `mul(silu(linear(x, W_gate)), linear(x, W_up))` (either operand
/// order) into `swiglu(x, concat(axis 0)(W_gate, W_up))`, whose weight holds the gate
/// rows then the up rows; with `gelu` for `silu` (Gemma's GeGLU) into `geglu`, same layout. Phi-3's `gate_up_proj` (split into two row slices at import)
/// is rejoined into the stored tensor, which already has that layout.
///
/// Refuses when a projection has a bias (`swiglu` has none), gate and up read different
/// inputs, their weights have different dtypes (they are concatenated), or the gate,
/// its activation or the up projection has other users.
public enum SwiGLUFusion {
    public struct Match: RewriteMatch {
        public var root: Int
        public var gate: Int
        public var silu: Int
        public var up: Int
        /// The activation is gelu (GeGLU) rather than silu (SwiGLU); `silu` is its node either way.
        public var gelu = false
        public var nodes: [Int] { [gate, silu, up, root] }
        public var replaced: [Value] { [Value(node: root)] }
    }

    public static let rewrite = RewritePass<Match>(
        name: "fuse-swiglu",
        summary: "mul(silu|gelu(linear(x, Wg)), linear(x, Wu)) → swiglu|geglu(x, concat(Wg, Wu))",
        match: match,
        legality: legality,
        rewrite: { r, m in
            let source = r.source
            let (gate, up) = (source.nodes[m.gate], source.nodes[m.up])
            let weight = try r.emitConcat(of: [gate.inputs[1], up.inputs[1]], axis: 0)
            return [try r.emit(m.gelu ? .geGLU : .swiGLU, [r.new(gate.inputs[0]), weight])]
        })

    static func match(_ g: IndexedGraph, _ i: Int) -> Match? {
        guard case .mul = g[i].op else { return nil }
        for (a, b) in [(g[i].inputs[0], g[i].inputs[1]), (g[i].inputs[1], g[i].inputs[0])] {
            let gelu: Bool
            switch g.producer(a).op {
            case .silu: gelu = false
            case .gelu: gelu = true
            default: continue
            }
            guard case .linear = g.producer(g.producer(a).inputs[0]).op,
                  case .linear = g.producer(b).op else { continue }
            return Match(root: i, gate: g.producer(a).inputs[0].node, silu: a.node, up: b.node, gelu: gelu)
        }
        return nil
    }

    static func legality(_ g: IndexedGraph, _ m: Match) -> String? {
        let (gate, up) = (g[m.gate], g[m.up])
        if case .linear(hasBias: true) = gate.op { return "the gate projection has a bias" }
        if case .linear(hasBias: true) = up.op { return "the up projection has a bias" }
        guard gate.inputs[0] == up.inputs[0] else { return "gate and up projections read different inputs" }
        let (wg, wu) = (g.type(gate.inputs[1]), g.type(up.inputs[1]))
        guard wg.dtype == wu.dtype else { return "gate and up weights have different dtypes (\(wg.dtype) vs \(wu.dtype))" }
        guard wg.shape == wu.shape else { return "gate and up weights have different shapes (\(wg) vs \(wu))" }
        return nil
    }
}

extension Pass {
    /// See `SwiGLUFusion`.
    public static let fuseSwiGLU = SwiGLUFusion.rewrite.pass
}
