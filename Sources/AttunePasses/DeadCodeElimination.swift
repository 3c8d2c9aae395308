import AttuneIR

/// Removes nodes nothing depends on. Live roots are the graph outputs, every `input`
/// (they are the graph's interface, used or not) and every `kv_append` (it writes the
/// KV cache, a side effect later calls read).
public enum DeadCodeElimination {
    public static let pass = Pass(name: "dce", summary: "remove nodes no output, input or KV-cache write depends on") { graph in
        let result = eliminate(graph)
        var stats = PassStats(matches: result.removed)
        stats.notes = ["removed \(result.removed) of \(graph.nodes.count) nodes"]
        return PassOutcome(graph: result.graph, stats: stats)
    }

    /// The graph without dead nodes, renumbered in the same order, and how many went.
    public static func eliminate(_ graph: Graph) -> (graph: Graph, removed: Int) {
        var live = [Bool](repeating: false, count: graph.nodes.count)
        var work: [Int] = graph.outputs.map(\.value.node)
        for (i, node) in graph.nodes.enumerated() {
            switch node.op {
            case .input, .kvAppend: work.append(i)
            default: break
            }
        }
        while let i = work.popLast() {
            guard !live[i] else { continue }
            live[i] = true
            work.append(contentsOf: graph.nodes[i].inputs.map(\.node))
        }
        var renumber = [Int](repeating: -1, count: graph.nodes.count)
        var out = Graph(name: graph.name)
        for (i, node) in graph.nodes.enumerated() where live[i] {
            var copy = node
            copy.inputs = node.inputs.map { Value(node: renumber[$0.node], result: $0.result) }
            renumber[i] = out.nodes.count
            out.nodes.append(copy)
        }
        out.outputs = graph.outputs.map { Graph.Output(name: $0.name, value: Value(node: renumber[$0.value.node], result: $0.value.result)) }
        return (out, graph.nodes.count - out.nodes.count)
    }
}

extension Pass {
    /// See `DeadCodeElimination`.
    public static let dce = DeadCodeElimination.pass
}
