import AttuneIR

/// The matmul weights of a lowered graph as the kernels read them: one group per matmul
/// (a merged projection's blocks together, since `--weights-for` must give them one
/// format) and per embedding table. The tuner's per-group weight search
/// (AttuneTune/WeightMix.swift) moves these groups between formats.
public struct MatmulWeightGroup: Sendable, Equatable {
    /// Checkpoint names, in the order the matmul reads them.
    public var names: [String]
    /// Only looked up by token id (an untied embedding table): a decode step reads one
    /// row of it, not all of it.
    public var isLookupOnly: Bool

    /// The weights' names without their shared prefix and `.weight`, e.g.
    /// `model.layers.3.self_attn.q_proj+k_proj+v_proj`.
    public var label: String {
        let stems = names.map { $0.hasSuffix(".weight") ? String($0.dropLast(7)) : $0 }
        let parts = stems.map { $0.split(separator: ".", omittingEmptySubsequences: false) }
        var shared = parts[0].count - 1
        for p in parts.dropFirst() {
            shared = min(shared, zip(parts[0], p).prefix { $0 == $1 }.count, p.count - 1)
        }
        let prefix = parts[0].prefix(shared).joined(separator: ".")
        let rest = parts.map { $0.dropFirst(shared).joined(separator: ".") }.joined(separator: "+")
        return prefix.isEmpty ? rest : prefix + "." + rest
    }

    /// The groups of `graph` (after the pipeline: the merged projections exist), in the
    /// order the forward pass first reads them. The ops are those `NodeLowering` reads
    /// through `linearCall` (weight at input 1) and `.embedding` (table at input 0); a weight
    /// both looked up and multiplied (tied embeddings) is one group, read whole.
    public static func groups(in graph: Graph) -> [MatmulWeightGroup] {
        var groups: [MatmulWeightGroup] = []
        var groupOf: [String: Int] = [:]
        func names(_ v: Value) -> [String] {
            switch graph.nodes[v.node].op {
            case .weight(let name): return [name]
            case .concat(axis: 0): return graph.nodes[v.node].inputs.flatMap(names)
            default: return []   // a derived constant: it follows --weights, it has no name to match
            }
        }
        func add(_ members: [String], lookup: Bool) {
            guard !members.isEmpty else { return }
            let joined = Set(members.compactMap { groupOf[$0] })
            guard let first = joined.min() else {
                groupOf.merge(members.map { ($0, groups.count) }) { a, _ in a }
                groups.append(MatmulWeightGroup(names: members, isLookupOnly: lookup))
                return
            }
            for other in joined.sorted(by: >) where other != first {
                groups[first].names += groups[other].names
                groups[first].isLookupOnly = groups[first].isLookupOnly && groups[other].isLookupOnly
                groups[other].names = []
            }
            for m in members where !groups[first].names.contains(m) { groups[first].names.append(m) }
            groups[first].isLookupOnly = groups[first].isLookupOnly && lookup
            for m in groups[first].names { groupOf[m] = first }
        }
        for node in graph.nodes {
            switch node.op {
            case .embedding: add(names(node.inputs[0]), lookup: true)
            case .linear, .qkvRope, .swiGLU, .geGLU: add(names(node.inputs[1]), lookup: false)
            default: break
            }
        }
        return groups.filter { !$0.names.isEmpty }
    }
}
