import AttuneIR

/// Fuses chains of elementwise ops (`add`, `mul`, `scale`, `silu`, `gelu`, and earlier
/// `elementwise` nodes) into one `elementwise` node whose `ElementwiseProgram` computes
/// the chain per element, without materialising intermediates.
///
/// The root is an elementwise op whose result is not itself absorbed by a consumer (it
/// has several users, is an output, or feeds a non-elementwise op). Producers with a
/// single use are inlined; anything else is an input of the program. The input with
/// the root's full shape is `in0` (the program's shape), the others broadcast as `add`.
///
/// Refuses a root whose elementwise producers all have other users: fusing would
/// recompute them, so they stay materialised and the root stays as is.
public enum ElementwiseFusion {
    public struct Match: RewriteMatch {
        public var root: Int
        /// Inlined producers and the root, in node order.
        public var nodes: [Int]
        public var program: ElementwiseProgram
        /// Source values bound to in0, in1, ...
        public var inputs: [Value]
        public var replaced: [Value] { [Value(node: root)] }
    }

    public static let rewrite = RewritePass<Match>(
        name: "fuse-elementwise",
        summary: "chains of add/mul/scale/silu/gelu with single-use intermediates → elementwise",
        match: match,
        legality: { g, m in
            m.nodes.count > 1 ? nil : "every elementwise producer of the \(g[m.root].op.mnemonic) has other users"
        },
        rewrite: { r, m in [try r.emit(.elementwise(m.program), m.inputs.map(r.new))] },
        kind: { "chain of \($0.nodes.count) ops" })

    static func isFusible(_ op: Op) -> Bool {
        switch op {
        case .add, .mul, .scale, .silu, .gelu, .elementwise: return true
        default: return false
        }
    }

    static func match(_ g: IndexedGraph, _ i: Int) -> Match? {
        guard isFusible(g[i].op) else { return nil }
        let out = Value(node: i)
        if g.hasSingleUse(out), isFusible(g[g.users(out)[0]].op) { return nil }   // a consumer absorbs it
        // A pattern exists only if some input comes from an elementwise op.
        guard g[i].inputs.contains(where: { isFusible(g.producer($0).op) }) else { return nil }

        var leaves: [Value] = []
        var inlined: [Int] = []
        func leaf(_ v: Value) -> ElementwiseExpr {
            if let k = leaves.firstIndex(of: v) { return .input(k) }
            leaves.append(v)
            return .input(leaves.count - 1)
        }
        func expr(_ v: Value) -> ElementwiseExpr {
            guard v.node == i || (isFusible(g.producer(v).op) && g.hasSingleUse(v)) else { return leaf(v) }
            if v.node != i { inlined.append(v.node) }
            let node = g.producer(v)
            let args = node.inputs.map(expr)
            switch node.op {
            case .add: return .add(args[0], args[1])
            case .mul: return .mul(args[0], args[1])
            case .scale(let factor): return .mul(args[0], .constant(factor))
            case .silu: return .silu(args[0])
            case .gelu: return .gelu(args[0])
            case .elementwise(let program): return program.expr.mapInputs { args[$0] }
            default: preconditionFailure("not elementwise")
            }
        }
        var program = expr(out)
        // in0 must carry the output's shape: move the first full-shape input to the front.
        let shape = g[i].types[0].shape
        if let full = leaves.firstIndex(where: { g.type($0).shape == shape }), full != 0 {
            var order = Array(leaves.indices)
            order.remove(at: full)
            order.insert(full, at: 0)
            program = renumber(program) { order.firstIndex(of: $0)! }
            leaves = order.map { leaves[$0] }
        }
        return Match(root: i, nodes: Set(inlined + [i]).sorted(), program: ElementwiseProgram(program), inputs: leaves)
    }

    private static func renumber(_ e: ElementwiseExpr, _ index: (Int) -> Int) -> ElementwiseExpr {
        e.mapInputs { .input(index($0)) }
    }
}

extension ElementwiseExpr {
    /// The expression with each `.input(k)` replaced by `f(k)`.
    func mapInputs(_ f: (Int) -> ElementwiseExpr) -> ElementwiseExpr {
        switch self {
        case .input(let k): return f(k)
        case .constant: return self
        case .add(let a, let b): return .add(a.mapInputs(f), b.mapInputs(f))
        case .mul(let a, let b): return .mul(a.mapInputs(f), b.mapInputs(f))
        case .silu(let a): return .silu(a.mapInputs(f))
        case .gelu(let a): return .gelu(a.mapInputs(f))
        }
    }
}

extension Pass {
    /// See `ElementwiseFusion`.
    public static let fuseElementwise = ElementwiseFusion.rewrite.pass
}
