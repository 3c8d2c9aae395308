import AttuneIR

/// What a pattern found at its root: the nodes it consists of and the values the
/// rewrite gives new definitions for.
public protocol RewriteMatch: Sendable {
    /// Every node of the pattern, root included. The root is the last of them in node
    /// order, so every input from outside the pattern exists when the rewrite runs.
    var nodes: [Int] { get }
    /// The values the rewrite replaces, in the order it returns their replacements.
    var replaced: [Value] { get }
}

/// A pass made of one pattern: `match` looks at each node as a possible root (in node
/// order, on the pass's input graph), `legality` returns why a match must not be
/// rewritten (nil: go ahead), and `rewrite` emits the replacement nodes at the root's
/// position and returns the new values for `replaced`.
///
/// Mechanics: the output graph is rebuilt in node order with a value-replacement map
/// (every node is copied, pattern roots are replaced), then dead nodes are removed.
/// Besides the pattern's own legality, two checks apply to every pattern:
/// - a pattern node whose values are not replaced must have no users outside the
///   pattern (otherwise it would stay alive and the fusion would compute it twice);
/// - a replaced value must not be read before the root, where its replacement appears;
/// and a match that shares nodes with one already rewritten in the same run is refused.
public struct RewritePass<Match: RewriteMatch>: Sendable {
    public var name: String
    public var summary: String
    public var match: @Sendable (IndexedGraph, Int) -> Match?
    public var legality: @Sendable (IndexedGraph, Match) -> String?
    public var rewrite: @Sendable (inout Rewriter, Match) throws -> [Value]
    /// Run again on the result until nothing matches (at most 8 times), so rewrites
    /// that enable each other (reshape of reshape of reshape) all happen.
    public var untilFixedPoint: Bool
    /// Names the kind of a rewritten match ("reshape of a reshape"); the stats' notes
    /// count rewrites by kind.
    public var kind: (@Sendable (Match) -> String)?

    public init(name: String, summary: String,
                match: @escaping @Sendable (IndexedGraph, Int) -> Match?,
                legality: @escaping @Sendable (IndexedGraph, Match) -> String? = { _, _ in nil },
                rewrite: @escaping @Sendable (inout Rewriter, Match) throws -> [Value],
                untilFixedPoint: Bool = false,
                kind: (@Sendable (Match) -> String)? = nil) {
        self.name = name
        self.summary = summary
        self.match = match
        self.legality = legality
        self.rewrite = rewrite
        self.untilFixedPoint = untilFixedPoint
        self.kind = kind
    }

    public var pass: Pass {
        let rewritePass = self
        return Pass(name: name, summary: summary) { graph in try rewritePass.apply(graph) }
    }

    /// One sweep (or sweeps until a fixed point): match, check, rewrite, then DCE.
    public func apply(_ graph: Graph) throws -> PassOutcome {
        var current = graph
        var total = PassStats()
        var kinds: [String: Int] = [:]
        for _ in 0..<(untilFixedPoint ? 8 : 1) {
            let round = try sweep(current, &kinds)
            current = round.graph
            total.matches += round.stats.matches
            // Refusals of the last sweep only: earlier sweeps saw the same patterns.
            total.refusals = round.stats.refusals
            total.refusedAt = round.stats.refusedAt
            if round.stats.matches == 0 { break }
        }
        total.notes = kinds.keys.sorted().map { "\($0): \(kinds[$0]!)" }
        return PassOutcome(graph: current, stats: total)
    }

    private func sweep(_ graph: Graph, _ kinds: inout [String: Int]) throws -> PassOutcome {
        let g = IndexedGraph(graph)
        var stats = PassStats()
        var accepted: [Int: Match] = [:]
        var taken = Set<Int>()
        for i in 0..<g.count {
            guard let m = match(g, i) else { continue }
            precondition(m.nodes.max() == i, "\(name): a pattern's root must be its last node")
            if !taken.isDisjoint(with: m.nodes) {
                stats.refuse("overlaps a pattern already rewritten", at: i, label: g[i].label)
            } else if let reason = legality(g, m) ?? sharedChecks(g, m, root: i) {
                stats.refuse(reason, at: i, label: g[i].label)
            } else {
                taken.formUnion(m.nodes)
                accepted[i] = m
                stats.matches += 1
                if let kind { kinds[kind(m), default: 0] += 1 }
            }
        }
        guard !accepted.isEmpty else { return PassOutcome(graph: graph, stats: stats) }

        var r = Rewriter(source: graph)
        for i in 0..<g.count {
            guard let m = accepted[i] else {
                try r.copy(i)
                continue
            }
            let replacesRoot = (0..<g[i].types.count).allSatisfy { m.replaced.contains(Value(node: i, result: $0)) }
            if !replacesRoot { try r.copy(i) }
            r.label = g[i].label
            let new: [Value]
            do {
                new = try rewrite(&r, m)
                guard new.count == m.replaced.count else {
                    throw PassError("returned \(new.count) values for \(m.replaced.count) replaced ones")
                }
                for (old, value) in zip(m.replaced, new) { try r.replace(old, with: value) }
            } catch {
                throw PassError("\(name): rewrite at \(g.describe(i)) failed: \(error)")
            }
        }
        let dce = DeadCodeElimination.eliminate(r.finish())
        return PassOutcome(graph: dce.graph, stats: stats)
    }

    private func sharedChecks(_ g: IndexedGraph, _ m: Match, root: Int) -> String? {
        let inside = Set(m.nodes)
        let replaced = Set(m.replaced)
        for n in m.nodes.sorted() {
            for r in g[n].types.indices {
                let v = Value(node: n, result: r)
                if replaced.contains(v) {
                    if g.users(v).contains(where: { $0 < root && !inside.contains($0) }) {
                        return "the \(g[n].op.mnemonic) result is read before the pattern completes"
                    }
                    continue
                }
                if g.isOutput(v) { return "the \(g[n].op.mnemonic) result is a graph output" }
                if g.users(v).contains(where: { !inside.contains($0) }) {
                    return "the \(g[n].op.mnemonic) result has other users outside the pattern"
                }
            }
        }
        return nil
    }
}
