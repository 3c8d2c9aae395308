/// An error in building, parsing or verifying a graph, with a message that names the
/// node (and, for text, the line) and the reason.
public struct IRError: Error, Sendable, Equatable, CustomStringConvertible {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// Result `result` of node `node`. Printed `%node` for result 0 and `%node.result` otherwise.
public struct Value: Sendable, Hashable, Comparable, CustomStringConvertible {
    public var node: Int
    public var result: Int

    public init(node: Int, result: Int = 0) {
        self.node = node
        self.result = result
    }

    public var description: String { result == 0 ? "%\(node)" : "%\(node).\(result)" }

    public static func < (a: Value, b: Value) -> Bool { (a.node, a.result) < (b.node, b.result) }
}

/// One operation applied to earlier values, with the types of its results.
public struct Node: Sendable, Hashable {
    public var op: Op
    public var inputs: [Value]
    public var types: [TensorType]
    /// Where the node came from (e.g. `layers.0.self_attn.q_proj`); printed as a comment.
    public var label: String?

    public init(op: Op, inputs: [Value], types: [TensorType], label: String? = nil) {
        self.op = op
        self.inputs = inputs
        self.types = types
        self.label = label
    }
}

/// A typed SSA graph. Nodes are in topological order: a node's inputs refer only to
/// nodes before it. Outputs are named values.
public struct Graph: Sendable, Hashable {
    public var name: String
    public var nodes: [Node]
    public var outputs: [Output]

    public struct Output: Sendable, Hashable {
        public var name: String
        public var value: Value
        public init(name: String, value: Value) {
            self.name = name
            self.value = value
        }
    }

    public init(name: String, nodes: [Node] = [], outputs: [Output] = []) {
        self.name = name
        self.nodes = nodes
        self.outputs = outputs
    }

    public func type(of v: Value) -> TensorType { nodes[v.node].types[v.result] }

    /// Every node's users, by the value they use.
    public func users() -> [Value: [Int]] {
        var out: [Value: [Int]] = [:]
        for (i, n) in nodes.enumerated() {
            for v in n.inputs { out[v, default: []].append(i) }
        }
        return out
    }

    /// Names and types of the `input` nodes, in order.
    public var inputs: [(name: String, type: TensorType)] {
        nodes.compactMap { n in
            if case .input(let name) = n.op { return (name, n.types[0]) }
            return nil
        }
    }

    /// Names and types of the `weight` nodes, in order.
    public var weights: [(name: String, type: TensorType)] {
        nodes.compactMap { n in
            if case .weight(let name) = n.op { return (name, n.types[0]) }
            return nil
        }
    }
}
