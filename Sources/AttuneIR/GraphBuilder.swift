/// Builds a graph node by node, inferring each result type from the op's type rule, so
/// an ill-typed graph fails at the line that builds it.
///
///     var b = GraphBuilder(name: "toy")
///     let x = b.input("x", .f32, ["seq", 64])
///     let w = b.weight("w", .f32, [32, 64])
///     let y = try b.add(.linear(hasBias: false), [x, w])
///     b.output("y", y)
public struct GraphBuilder {
    public private(set) var graph: Graph
    /// Label attached to nodes added from now on (e.g. the HF module path).
    public var label: String?

    public init(name: String) { graph = Graph(name: name) }

    public mutating func input(_ name: String, _ dtype: DType, _ shape: [Dim]) -> Value {
        append(Node(op: .input(name: name), inputs: [], types: [TensorType(dtype, shape)], label: label))
    }

    public mutating func weight(_ name: String, _ dtype: DType, _ shape: [Dim]) -> Value {
        append(Node(op: .weight(name: name), inputs: [], types: [TensorType(dtype, shape)], label: label))
    }

    /// Adds `op` applied to `inputs`; returns its first result.
    @discardableResult
    public mutating func add(_ op: Op, _ inputs: [Value]) throws -> Value {
        try addMulti(op, inputs)[0]
    }

    /// Adds `op` applied to `inputs`; returns all of its results.
    public mutating func addMulti(_ op: Op, _ inputs: [Value]) throws -> [Value] {
        for v in inputs where v.node >= graph.nodes.count || v.result >= graph.nodes[v.node].types.count {
            throw IRError("\(op.mnemonic): input \(v) does not exist")
        }
        let types: [TensorType]
        do {
            types = try op.resultTypes(inputs.map(graph.type(of:)))
        } catch let e as IRError {
            throw IRError("\(op.mnemonic) (node %\(graph.nodes.count)\(label.map { ", \($0)" } ?? "")): \(e.message)")
        }
        let first = append(Node(op: op, inputs: inputs, types: types, label: label))
        return (0..<types.count).map { Value(node: first.node, result: $0) }
    }

    public mutating func output(_ name: String, _ value: Value) {
        graph.outputs.append(Graph.Output(name: name, value: value))
    }

    private mutating func append(_ node: Node) -> Value {
        graph.nodes.append(node)
        return Value(node: graph.nodes.count - 1)
    }
}
