import AttuneIR

/// Merges nodes that compute the same thing: the same op (attributes included) on the
/// same inputs with the same types, e.g. two `weight` nodes of one name. The first
/// keeps its label. `input` and `kv_append` nodes are never merged (an input is unique
/// by name; each cache write is its own side effect).
public enum CommonSubexpressionElimination {
    public static let pass = Pass(name: "cse", summary: "merge nodes with the same op and inputs (duplicate weights, repeated computations)") { graph in
        let result = eliminate(graph)
        return PassOutcome(graph: result.graph, stats: result.stats)
    }

    private struct Key: Hashable {
        var op: Op
        var inputs: [Value]
        var types: [TensorType]
    }

    static func eliminate(_ graph: Graph) -> (graph: Graph, stats: PassStats) {
        var first: [Key: Int] = [:]
        var renumber = [Int](repeating: -1, count: graph.nodes.count)
        var out = Graph(name: graph.name)
        var merged: [String: Int] = [:]
        for (i, node) in graph.nodes.enumerated() {
            var copy = node
            copy.inputs = node.inputs.map { Value(node: renumber[$0.node], result: $0.result) }
            let key = Key(op: node.op, inputs: copy.inputs, types: node.types)
            switch node.op {
            case .input, .kvAppend:
                break
            default:
                if let j = first[key] {
                    renumber[i] = j
                    merged[node.op.mnemonic, default: 0] += 1
                    continue
                }
                first[key] = out.nodes.count
            }
            renumber[i] = out.nodes.count
            out.nodes.append(copy)
        }
        out.outputs = graph.outputs.map { Graph.Output(name: $0.name, value: Value(node: renumber[$0.value.node], result: $0.value.result)) }
        let stats = PassStats(matches: merged.values.reduce(0, +),
                              notes: merged.keys.sorted().map { "merged \(merged[$0]!) duplicate \($0) node(s)" })
        return (out, stats)
    }
}

extension Pass {
    /// See `CommonSubexpressionElimination`.
    public static let cse = CommonSubexpressionElimination.pass
}
