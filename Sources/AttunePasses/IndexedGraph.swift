import AttuneIR

/// A graph with its use lists, for pattern matching: who uses a value, whether it is
/// a graph output, what produced it. Built once per pass run over the pass's input.
public struct IndexedGraph: Sendable {
    public let graph: Graph
    private let usersByValue: [Value: [Int]]
    private let outputValues: Set<Value>

    public init(_ graph: Graph) {
        self.graph = graph
        var users: [Value: [Int]] = [:]
        for (i, node) in graph.nodes.enumerated() {
            for v in Set(node.inputs) { users[v, default: []].append(i) }
        }
        usersByValue = users
        outputValues = Set(graph.outputs.map(\.value))
    }

    public var count: Int { graph.nodes.count }

    public subscript(_ i: Int) -> Node { graph.nodes[i] }

    /// The node that produces `v`.
    public func producer(_ v: Value) -> Node { graph.nodes[v.node] }

    public func type(_ v: Value) -> TensorType { graph.type(of: v) }

    /// The nodes that read `v`, each once, in node order.
    public func users(_ v: Value) -> [Int] { usersByValue[v] ?? [] }

    public func isOutput(_ v: Value) -> Bool { outputValues.contains(v) }

    /// True when exactly one node reads `v` and it is not a graph output.
    public func hasSingleUse(_ v: Value) -> Bool { users(v).count == 1 && !isOutput(v) }

    /// `softmax %12 (model.layers.0.self_attn)`: how refusal reasons name a node.
    public func describe(_ i: Int) -> String {
        "\(graph.nodes[i].op.mnemonic) %\(i)\(graph.nodes[i].label.map { " (\($0))" } ?? "")"
    }
}
