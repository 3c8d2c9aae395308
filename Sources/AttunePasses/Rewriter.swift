import AttuneIR

/// Builds a pass's output graph: copies nodes of the input graph in order, maps each
/// old value to its new value, and lets a rewrite emit replacement nodes. Every node
/// is type-checked as it is added (through `GraphBuilder`), so an ill-typed rewrite
/// fails at the node that is wrong.
public struct Rewriter {
    public let source: Graph
    private var builder: GraphBuilder
    private var map: [Value: Value] = [:]
    /// Label of nodes emitted without an explicit one: the current pattern root's.
    public var label: String?

    public init(source: Graph) {
        self.source = source
        builder = GraphBuilder(name: source.name)
    }

    /// The new value standing for `old` (a value of the source graph already copied or replaced).
    public func new(_ old: Value) -> Value {
        guard let v = map[old] else { preconditionFailure("\(old) has not been copied or replaced yet") }
        return v
    }

    /// The type of a value of the graph being built.
    public func type(ofNew v: Value) -> TensorType { builder.graph.type(of: v) }

    /// Adds `op` on new values; returns its first result. The label defaults to `label`.
    @discardableResult
    public mutating func emit(_ op: Op, _ inputs: [Value], label: String? = nil) throws -> Value {
        try emitResults(op, inputs, label: label)[0]
    }

    /// Adds `op` on new values; returns all its results.
    public mutating func emitResults(_ op: Op, _ inputs: [Value], label: String? = nil) throws -> [Value] {
        builder.label = label ?? self.label
        return try builder.addMulti(op, inputs)
    }

    /// `concat(axis)` of the new values of `old` — or, when `old` are consecutive slices
    /// that together cover one value along `axis` (a fused checkpoint weight such as
    /// Phi-3's `qkv_proj`, split at import), that value itself: rejoining what was split
    /// costs nothing and leaves no layout op behind.
    public mutating func emitConcat(of old: [Value], axis: Int, label: String? = nil) throws -> Value {
        if let whole = rejoined(old, axis: axis) { return new(whole) }
        return try emit(.concat(axis: axis), old.map(new), label: label)
    }

    private func rejoined(_ old: [Value], axis: Int) -> Value? {
        var base: Value?
        var next = 0
        for v in old {
            let node = source.nodes[v.node]
            guard v.result == 0, case .slice(let a, let start, let end) = node.op, a == axis, start == next,
                  base == nil || base == node.inputs[0],
                  let dim = source.type(of: node.inputs[0]).shape[axis].fixedValue else { return nil }
            base = node.inputs[0]
            next = end ?? dim
        }
        guard let base, next == source.type(of: base).shape[axis].fixedValue else { return nil }
        return base
    }

    /// Copies source node `i` with its inputs mapped and its label kept.
    public mutating func copy(_ i: Int) throws {
        let node = source.nodes[i]
        builder.label = node.label
        let results: [Value]
        switch node.op {
        case .input(let name):
            results = [builder.input(name, node.types[0].dtype, node.types[0].shape)]
        case .weight(let name):
            results = [builder.weight(name, node.types[0].dtype, node.types[0].shape)]
        default:
            results = try builder.addMulti(node.op, node.inputs.map(new))
        }
        for (r, v) in results.enumerated() { map[Value(node: i, result: r)] = v }
    }

    /// Makes `new` stand for the source value `old` from now on. The types must agree:
    /// a rewrite never changes what a value is, only how it is computed.
    public mutating func replace(_ old: Value, with new: Value) throws {
        let was = source.type(of: old), now = builder.graph.type(of: new)
        guard was == now else {
            throw PassError("replacing \(old) (\(was)) with a value of type \(now)")
        }
        map[old] = new
    }

    /// The built graph, with the source's outputs mapped.
    public func finish() -> Graph {
        var g = builder.graph
        g.outputs = source.outputs.map { Graph.Output(name: $0.name, value: new($0.value)) }
        return g
    }
}

/// The label of a node that merges several labelled nodes: the shared label, or the
/// common dotted prefix with the differing tails in braces
/// (`model.layers.0.self_attn.{q_proj,k_proj,v_proj}`).
func mergedLabel(_ labels: [String?]) -> String? {
    let present = labels.compactMap { $0 }
    guard let first = present.first else { return nil }
    if present.allSatisfy({ $0 == first }) { return first }
    let parts = present.map { $0.split(separator: ".", omittingEmptySubsequences: false).map(String.init) }
    var common = 0
    while parts.allSatisfy({ $0.count > common + 1 && $0[common] == parts[0][common] }) { common += 1 }
    let tails = parts.map { $0[common...].joined(separator: ".") }
    let prefix = parts[0][..<common].joined(separator: ".")
    return (prefix.isEmpty ? "" : prefix + ".") + "{" + tails.joined(separator: ",") + "}"
}
