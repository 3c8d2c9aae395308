import AttuneIR

extension Pass {
    /// Checks the input graph with `Verifier.verify` and passes it through unchanged;
    /// first in the pipeline so an ill-formed import fails before any rewrite.
    public static let verify = Pass(name: "verify", summary: "check that the graph is well formed and well typed") { graph in
        do {
            try Verifier.verify(graph)
        } catch {
            throw PassError("verify: graph '\(graph.name)' is ill-formed: \(error)")
        }
        let weights = Set(graph.weights.map(\.name)).count
        return PassOutcome(graph: graph, stats: PassStats(notes: ["\(graph.nodes.count) nodes, \(weights) weights"]))
    }
}
