import AttuneIR
import AttuneKernels

/// Wires `kascade` layers together after kernel selection: anchors produce their key
/// selection as a value (`KeySelection.produce`, a second result) and reuse layers take
/// the anchor's value as a fourth input (`.consume`), so the graph says which layer's keys
/// each layer attends (`attune inspect`).
///
/// Roles, in order of precedence:
/// - layer 0 stays dense: a kascade binding there becomes `flash` (Kascade's rule);
/// - `role=0` / `role=1` given in the choice;
/// - the calibrated anchors (`KernelOverrides.kascadeAnchors`): anchor iff listed;
/// - otherwise the first kascade layer is the anchor and the rest reuse it.
/// A reuse layer reads `anchor=L` if given, else the nearest earlier anchor, with the
/// calibrated head map of its layer if there is one (table `head_map`). Anchor and reuse
/// must agree on `fraction`, `min_k` and `tile` (they index the same table).
public enum KeySelectionLinking {
    static let shared = ["fraction", "min_k", "tile"]

    public static func pass(_ overrides: KernelOverrides) -> Pass {
        Pass(name: "link-kascade", summary: "kascade anchors produce their key selection, reuse layers consume it") { graph in
            var g = graph
            var stats = PassStats()
            // kascade nodes by layer, in graph order.
            var nodes: [(index: Int, layer: Int, attrs: AttentionAttrs)] = []
            for (i, node) in g.nodes.enumerated() {
                guard case .attention(let a) = node.op, let kernel = a.binding.flatMap({ try? KernelRegistry.kernel(named: $0.kernel) }),
                      kernel.linksLayers else { continue }
                guard case .kvAppend(let layer, _) = g.nodes[node.inputs[1].node].op else {
                    throw PassError("node %\(i): kascade needs its keys from a layer's kv_append (the layer decides its role)")
                }
                if layer == 0 {
                    var dense = a
                    dense.binding = KernelBinding(kernel: KernelRegistry.exactDefault.name, reason: "kascade keeps layer 0 dense")
                    g.nodes[i].op = .attention(dense)
                    stats.notes.append("layer 0 stays dense (flash)")
                    continue
                }
                nodes.append((i, layer, a))
            }
            func role(_ n: (index: Int, layer: Int, attrs: AttentionAttrs)) -> Int {
                if let r = n.attrs.binding?.parameters["role"] { return Int(r) }
                if let anchors = overrides.kascadeAnchors { return anchors.contains(n.layer) ? 0 : 1 }
                return n.index == nodes.first?.index ? 0 : 1
            }
            var anchors: [Int: (index: Int, attrs: AttentionAttrs)] = [:]   // by layer
            for n in nodes {
                var a = n.attrs, binding = n.attrs.binding!
                let width = a.kvHeads * KascadeKernel.capacity(context: overrides.selectionContext, binding.parameters)
                if role(n) == 0 {
                    binding.parameters["role"] = 0
                    a.binding = binding
                    a.selection = .produce(width: width)
                    g.nodes[n.index].op = .attention(a)
                    g.nodes[n.index].types = [g.nodes[n.index].types[0], TensorType(.i32, [g.nodes[n.index].types[0].shape[0], .fixed(width)])]
                    anchors[n.layer] = (n.index, a)
                    stats.matches += 1
                    continue
                }
                let wanted = binding.parameters["anchor"].map(Int.init) ?? -1
                let source = wanted >= 0 ? anchors[wanted] : anchors.filter { $0.key < n.layer }.max { $0.key < $1.key }?.value
                guard let anchor = source else {
                    throw PassError("layer \(n.layer) reuses kascade keys, but \(wanted >= 0 ? "layer \(wanted) is not an earlier anchor" : "no anchor layer comes before it")")
                }
                let anchorParameters = anchor.attrs.binding!.parameters
                for key in shared where (anchorParameters[key] ?? -1) != (binding.parameters[key] ?? -1) {
                    throw PassError("layer \(n.layer) reuses the keys of the anchor at node %\(anchor.index), but their '\(key)' differs")
                }
                guard anchor.attrs.kvHeads == a.kvHeads, anchor.attrs.selection == .produce(width: width) else {
                    throw PassError("layer \(n.layer): its anchor (node %\(anchor.index)) has another kv-head count or context")
                }
                if let map = overrides.kascadeHeadMaps[n.layer] {
                    guard map.count == a.kvHeads, map.allSatisfy({ (0..<a.kvHeads).contains($0) }) else {
                        throw PassError("layer \(n.layer): calibrated head map \(map) must give one anchor kv head in 0..<\(a.kvHeads) per kv head")
                    }
                    binding.tables["head_map"] = map.map(Double.init)
                }
                binding.parameters["role"] = 1
                a.binding = binding
                a.selection = .consume(width: width)
                g.nodes[n.index].op = .attention(a)
                g.nodes[n.index].inputs.append(Value(node: anchor.index, result: 1))
                stats.matches += 1
            }
            return PassOutcome(graph: g, stats: stats)
        }
    }
}
