import AttuneIR

/// Local simplifications that make later patterns see one spelling of each thing.
/// At each root node, the first rule that applies:
/// - `scale` by 1 of an f32 tensor → the tensor;
/// - `reshape` of a `reshape` → one reshape of the inner input; a reshape to the
///   input's own shape → the input;
/// - `transpose` of a `transpose` → one transpose with the composed permutation; an
///   identity permutation → the input;
/// - `slice` of a whole axis, `concat` of one input, `repeat_interleave` by 1 → the input.
/// Runs to a fixed point. Never refuses: a rule either applies or does not.
public enum Canonicalize {
    /// The rewrite a rule chose for one node.
    public struct Match: RewriteMatch {
        public enum Action: Sendable {
            /// Use this existing value instead of the root.
            case forward(Value)
            case reshape(Value, [Dim])
            case transpose(Value, [Int])
        }
        public var root: Int
        public var rule: String
        public var action: Action
        public var nodes: [Int] { [root] }
        public var replaced: [Value] { [Value(node: root)] }
    }

    public static let rewrite = RewritePass<Match>(
        name: "canonicalize",
        summary: "drop identity scales/reshapes/transposes/slices, merge consecutive reshapes and transposes",
        match: match,
        rewrite: { r, m in
            switch m.action {
            case .forward(let v): return [r.new(v)]
            case .reshape(let x, let shape): return [try r.emit(.reshape(shape: shape), [r.new(x)])]
            case .transpose(let x, let perm): return [try r.emit(.transpose(perm: perm), [r.new(x)])]
            }
        },
        untilFixedPoint: true,
        kind: { $0.rule })

    static func match(_ g: IndexedGraph, _ i: Int) -> Match? {
        let node = g[i]
        let rootType = node.types.first
        func found(_ rule: String, _ action: Match.Action) -> Match { Match(root: i, rule: rule, action: action) }
        switch node.op {
        case .scale(let factor) where factor == 1 && g.type(node.inputs[0]) == rootType:
            return found("scale by 1", .forward(node.inputs[0]))
        case .reshape(let shape):
            var source = node.inputs[0]
            var rule = "identity reshape"
            if case .reshape = g.producer(source).op {
                source = g.producer(source).inputs[0]
                rule = "reshape of a reshape"
            }
            if g.type(source).shape == shape { return found(rule, .forward(source)) }
            return source == node.inputs[0] ? nil : found(rule, .reshape(source, shape))
        case .transpose(let perm):
            var source = node.inputs[0]
            var composed = perm
            var rule = "identity transpose"
            if case .transpose(let inner) = g.producer(source).op {
                source = g.producer(source).inputs[0]
                composed = perm.map { inner[$0] }
                rule = "transpose of a transpose"
            }
            if composed == Array(composed.indices) { return found(rule, .forward(source)) }
            return source == node.inputs[0] ? nil : found(rule, .transpose(source, composed))
        case .slice(let axis, let start, let end):
            let n = g.type(node.inputs[0]).shape[axis].fixedValue
            return start == 0 && (end == nil || end == n) ? found("whole-axis slice", .forward(node.inputs[0])) : nil
        case .concat where node.inputs.count == 1:
            return found("concat of one input", .forward(node.inputs[0]))
        case .repeatInterleave(_, let repeats) where repeats == 1:
            return found("repeat_interleave by 1", .forward(node.inputs[0]))
        default:
            return nil
        }
    }
}

extension Pass {
    /// See `Canonicalize`.
    public static let canonicalize = Canonicalize.rewrite.pass
}
