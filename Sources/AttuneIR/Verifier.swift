/// Checks that a graph is well formed and well typed. Errors name the node (index, op,
/// label) and the reason, e.g. `node %7 (linear, layers.0.q_proj): x's last dim vs
/// weight's in dim: 64 != 32`.
public enum Verifier {
    public static func verify(_ g: Graph) throws {
        var inputNames: [String: Int] = [:]
        var weightTypes: [String: TensorType] = [:]
        var caches: Set<String> = []
        for (i, node) in g.nodes.enumerated() {
            func fail(_ reason: String) -> IRError {
                IRError("node %\(i) (\(node.op.mnemonic)\(node.label.map { ", \($0)" } ?? "")): \(reason)")
            }
            for v in node.inputs {
                guard v.node >= 0, v.node < i else { throw fail("input \(v) is not defined before this node") }
                guard v.result >= 0, v.result < g.nodes[v.node].types.count else {
                    throw fail("input \(v): node %\(v.node) has \(g.nodes[v.node].types.count) result(s)")
                }
            }
            switch node.op {
            case .input(let name), .weight(let name):
                guard node.inputs.isEmpty, node.types.count == 1 else { throw fail("a source has no inputs and one result") }
                if case .input = node.op {
                    if let j = inputNames[name] { throw fail("input '\(name)' is already defined by node %\(j)") }
                    inputNames[name] = i
                } else if let t = weightTypes[name], t != node.types[0] {
                    throw fail("weight '\(name)' used with type \(node.types[0]) and \(t)")
                } else {
                    weightTypes[name] = node.types[0]
                }
                continue
            case .kvAppend(let layer, let kind):
                let key = "\(layer).\(kind.rawValue)"
                guard caches.insert(key).inserted else { throw fail("layer \(layer)'s \(kind.rawValue) cache is appended twice") }
            default:
                break
            }
            let inferred: [TensorType]
            do {
                inferred = try node.op.resultTypes(node.inputs.map(g.type(of:)))
            } catch let e as IRError {
                throw fail(e.message)
            }
            guard inferred == node.types else {
                throw fail("declared type \(node.types.map(\.description).joined(separator: ", ")) but the op produces \(inferred.map(\.description).joined(separator: ", "))")
            }
        }
        var outputNames: Set<String> = []
        for o in g.outputs {
            guard outputNames.insert(o.name).inserted else { throw IRError("output '\(o.name)' is defined twice") }
            guard o.value.node >= 0, o.value.node < g.nodes.count, o.value.result < g.nodes[o.value.node].types.count else {
                throw IRError("output '\(o.name)' refers to \(o.value), which does not exist")
            }
        }
    }
}
