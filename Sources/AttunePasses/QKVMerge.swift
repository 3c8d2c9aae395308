import AttuneIR

/// Merges linear projections that read the same input (q_proj, k_proj, v_proj) into
/// one: `linear(x, concat(axis 0)(W…), concat(axis 0)(b…))` followed by one `slice`
/// per projection along the last axis, in node order. One wide GEMM instead of three
/// narrow ones; `fuse-qkv-rope` then folds the slices and RoPE into the epilogue.
/// Weights that are row slices of one fused checkpoint tensor (Phi-3's `qkv_proj`) are
/// rejoined into that tensor rather than concatenated (`Rewriter.emitConcat`).
///
/// Refuses when some projections have a bias and others do not, or their weights (or
/// biases) have different dtypes and so cannot be concatenated.
public enum QKVMerge {
    public struct Match: RewriteMatch {
        /// The projections, in node order; the last is the root.
        public var projections: [Int]
        public var nodes: [Int] { projections }
        public var replaced: [Value] { projections.map { Value(node: $0) } }
    }

    public static let rewrite = RewritePass<Match>(
        name: "merge-qkv",
        summary: "linears sharing one input → one linear on concatenated weights + slices",
        match: match,
        legality: legality,
        rewrite: { r, m in
            let nodes = m.projections.map { r.source.nodes[$0] }
            let merged = mergedLabel(nodes.map(\.label))
            let hasBias = nodes[0].inputs.count == 3
            let weight = try r.emitConcat(of: nodes.map { $0.inputs[1] }, axis: 0, label: merged)
            var inputs = [r.new(nodes[0].inputs[0]), weight]
            if hasBias { inputs.append(try r.emitConcat(of: nodes.map { $0.inputs[2] }, axis: 0, label: merged)) }
            let y = try r.emit(.linear(hasBias: hasBias), inputs, label: merged)
            let axis = r.type(ofNew: y).rank - 1
            var start = 0
            return try nodes.map { node in
                let width = node.types[0].shape[axis].fixedValue!
                defer { start += width }
                return try r.emit(.slice(axis: axis, start: start, end: start + width), [y], label: node.label)
            }
        },
        kind: { "\($0.projections.count) projections" })

    static func match(_ g: IndexedGraph, _ i: Int) -> Match? {
        guard case .linear = g[i].op else { return nil }
        let x = g[i].inputs[0]
        let group = g.users(x).filter { u in
            if case .linear = g[u].op { return g[u].inputs[0] == x }
            return false
        }
        guard group.count >= 2, group.last == i else { return nil }
        return Match(projections: group)
    }

    static func legality(_ g: IndexedGraph, _ m: Match) -> String? {
        let nodes = m.projections.map { g[$0] }
        if Set(nodes.map { $0.inputs.count }).count > 1 { return "some projections have a bias and some do not" }
        if Set(nodes.map { g.type($0.inputs[1]).dtype }).count > 1 { return "the projection weights have different dtypes" }
        if nodes[0].inputs.count == 3, Set(nodes.map { g.type($0.inputs[2]).dtype }).count > 1 {
            return "the projection biases have different dtypes"
        }
        return nil
    }
}

extension Pass {
    /// See `QKVMerge`.
    public static let mergeQKV = QKVMerge.rewrite.pass
}
