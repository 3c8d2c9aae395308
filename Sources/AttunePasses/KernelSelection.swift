import AttuneIR
import AttuneKernels

/// Binds every `attention` node to a kernel (`AttentionAttrs.binding`): the kernel's
/// name, its parameters and why it was chosen, which `inspect` shows.
///
/// Rules, in order:
/// 1. sigmoid attention needs a kernel named `sigmoid`: bound if `KernelRegistry` has
///    one, otherwise left unbound and refused ("no kernel implements sigmoid attention
///    yet"). A softmax kernel is never substituted: the normaliser is the model's math.
/// 2. a user override (per layer, else global) is used if the kernel accepts the
///    layer's problem; otherwise the node is left unbound and refused with the
///    kernel's reasons (never silently given another kernel than the one asked for).
///    `unified_max` on a layer with calibrated phi (`KernelOverrides.calibratedPhi`)
///    gets it as its `phi` table unless the choice sets `phi`.
/// 3. exact softmax → `flash`, if `unsupportedReasons` is empty for a representative
///    problem (the node's heads, head dims, scale, mask; 128 rows where symbolic).
///
/// A decode override (`KernelOverrides.decodeChoice`) binds `decodeBinding` the same way,
/// for a one-row problem, when it differs from the prefill binding. Refused: a pair where
/// either kernel keeps its own K/V store (`KVStoreKernel`) or links key selections across
/// layers (`kascade`), since the other phase would not see that state; a decode kernel that
/// cannot read the `--kv` format; a normaliser mismatch (as for prefill overrides).
///
/// The layer index comes from the `kv_append` feeding k (or the `layers.N` label).
public enum KernelSelection {
    public struct Match: RewriteMatch {
        public var root: Int
        public var decision: Result<KernelBinding, Unbound>
        /// nil: decode steps run `decision`'s kernel.
        public var decode: Result<KernelBinding?, Unbound> = .success(nil)
        public var nodes: [Int] { [root] }
        public var replaced: [Value] { [Value(node: root)] }
    }

    public struct Unbound: Error, Sendable {
        public var reason: String
    }

    /// Rows of the representative problem when the graph's are symbolic.
    static let representativeRows = 128

    public static func rewrite(_ overrides: KernelOverrides) -> RewritePass<Match> {
        RewritePass<Match>(
            name: "select-kernels",
            summary: "bind every attention to a kernel (overrides, then rules)",
            match: { g, i in
                guard case .attention(let attrs) = g[i].op else { return nil }
                let layer = layer(of: i, in: g), kvRows = g.type(g[i].inputs[1]).shape[0].fixedValue
                let decision = choose(attrs, layer: layer, rows: g.type(g[i].inputs[0]).shape[0].fixedValue,
                                      kvRows: kvRows, overrides: overrides)
                var match = Match(root: i, decision: decision)
                if case .success(let prefill) = decision, let asked = overrides.decodeChoice(layer: layer) {
                    match.decode = chooseDecode(attrs, asked, prefill: prefill, layer: layer, kvRows: kvRows, overrides: overrides)
                }
                return match
            },
            legality: { _, m in
                if case .failure(let unbound) = m.decision { return unbound.reason }
                if case .failure(let unbound) = m.decode { return unbound.reason }
                return nil
            },
            rewrite: { r, m in
                guard case .attention(var attrs) = r.source.nodes[m.root].op else { preconditionFailure() }
                attrs.binding = try m.decision.get()
                attrs.decodeBinding = try m.decode.get()
                let node = r.source.nodes[m.root]
                return [try r.emit(.attention(attrs), node.inputs.map(r.new))]
            },
            kind: { m in
                guard let b = try? m.decision.get() else { return "unbound" }
                guard case .success(let d?) = m.decode else { return "\(b.kernel) (\(b.reason))" }
                return "\(b.kernel), decode \(d.kernel) (\(b.reason); \(d.reason))"
            })
    }

    /// The decode binding for `asked`, checked against the prefill one; nil when they are the same.
    static func chooseDecode(_ a: AttentionAttrs, _ asked: (KernelChoice, String), prefill: KernelBinding, layer: Int?,
                             kvRows: Int?, overrides: KernelOverrides) -> Result<KernelBinding?, Unbound> {
        let decode: KernelBinding
        switch choose(a, layer: layer, rows: 1, kvRows: kvRows, overrides: overrides, override: asked) {
        case .failure(let unbound): return .failure(unbound)
        case .success(let b): decode = b
        }
        if decode.kernel == prefill.kernel, decode.parameters == prefill.parameters, decode.tables == prefill.tables { return .success(nil) }
        for name in [prefill.kernel, decode.kernel] {
            let k = try? KernelRegistry.kernel(named: name)
            let state = k is any KVStoreKernel ? "keeps its own K/V store"
                : k?.linksLayers == true ? "links key selections across layers" : nil
            if let state {
                return .failure(Unbound(reason: "prefill '\(prefill.kernel)' and decode '\(decode.kernel)' differ, but '\(name)' \(state), which the other phase would not see: give both phases the same kernel"))
            }
        }
        if let k = try? KernelRegistry.kernel(named: decode.kernel), let refusal = k.kvFormatRefusal(overrides.kvFormat(layer: layer)) {
            return .failure(Unbound(reason: "\(asked.1): \(refusal)"))
        }
        return .success(decode)
    }

    /// `override`: the user's choice to bind (default: the prefill one for `layer`).
    static func choose(_ a: AttentionAttrs, layer: Int?, rows: Int?, kvRows: Int?,
                       overrides: KernelOverrides) -> Result<KernelBinding, Unbound> {
        choose(a, layer: layer, rows: rows, kvRows: kvRows, overrides: overrides, override: overrides.choice(layer: layer))
    }

    static func choose(_ a: AttentionAttrs, layer: Int?, rows: Int?, kvRows: Int?,
                       overrides: KernelOverrides, override: (KernelChoice, String)?) -> Result<KernelBinding, Unbound> {
        if case .sigmoid = a.normalizer {
            // Sigmoid attention is the model's semantics: only sigmoid kernels qualify.
            guard let rule = KernelRegistry.all.first(where: { $0.normalizer == .sigmoid }) else {
                return .failure(Unbound(reason: "no kernel implements sigmoid attention yet"))
            }
            if let (choice, why) = override {
                guard let kernel = try? KernelRegistry.kernel(named: choice.kernel), kernel.normalizer == .sigmoid else {
                    return .failure(Unbound(reason: "\(why): '\(choice.kernel)' is not a sigmoid-attention kernel"))
                }
                return .success(KernelBinding(kernel: kernel.name, parameters: choice.parameters, reason: why))
            }
            return .success(.rule(rule.name, "sigmoid attention → \(rule.name)"))
        }
        var problem = AttentionProblem(qHeads: a.heads, kvHeads: a.kvHeads, qLen: rows ?? representativeRows,
                                       kvLen: kvRows ?? max(rows ?? representativeRows, representativeRows),
                                       qkDim: a.headDim, vDim: a.vHeadDim, scale: Float(a.scale),
                                       causal: a.causal, window: a.window, softcap: a.softcap)
        problem.addModifiers(of: a)
        if let (choice, why) = override {
            if let kernel = try? KernelRegistry.kernel(named: choice.kernel) {
                guard kernel.normalizer == .softmax else {
                    return .failure(Unbound(reason: "\(why): '\(kernel.name)' computes \(kernel.normalizer.rawValue) attention, this node softmax"))
                }
                let reasons = kernel.unsupportedReasons(problem)
                if reasons.isEmpty {
                    var binding = KernelBinding(kernel: kernel.name, parameters: choice.parameters, reason: why)
                    if let table = kernel.calibratedTable, choice.parameters[table] == nil, let layer, let phi = overrides.calibratedPhi[layer] {
                        guard phi.count == a.heads else {
                            return .failure(Unbound(reason: "calibration has \(phi.count) \(table) values for layer \(layer), the node has \(a.heads) q heads"))
                        }
                        binding.tables[table] = phi
                        binding.reason += "; \(table) per head from calibration"
                    }
                    return .success(binding)
                }
                return .failure(Unbound(reason: "\(why) cannot run \(problem): \(reasons.joined(separator: "; "))"))
            }
            return .failure(Unbound(reason: "\(why): unknown kernel '\(choice.kernel)'"))
        }
        let exact = KernelRegistry.exactDefault
        let reasons = exact.unsupportedReasons(problem)
        guard reasons.isEmpty else {
            return .failure(Unbound(reason: "\(exact.name) cannot run \(problem): \(reasons.joined(separator: "; "))"))
        }
        return .success(.rule(exact.name, "exact softmax → \(exact.name)"))
    }

    /// The decoder layer of attention node `i`: from the `kv_append` that feeds its k,
    /// else from a `layers.N` component of its label.
    static func layer(of i: Int, in g: IndexedGraph) -> Int? {
        if case .kvAppend(let layer, _) = g.producer(g[i].inputs[1]).op { return layer }
        let parts = (g[i].label ?? "").split(separator: ".")
        guard let at = parts.firstIndex(of: "layers"), at + 1 < parts.count else { return nil }
        return Int(parts[at + 1])
    }
}

extension Pass {
    /// See `KernelSelection`.
    public static func selectKernels(_ overrides: KernelOverrides = KernelOverrides()) -> Pass {
        KernelSelection.rewrite(overrides).pass
    }
}

extension AttentionProblem {
    /// An attention node's ALiBi and sinks, as kernels judge them: the standard slopes, and
    /// zeros in place of the sink logits (weights, unknown here: whether a kernel takes sinks
    /// at all is the question).
    public mutating func addModifiers(of a: AttentionAttrs) {
        if a.alibi { alibiSlopes = AttentionProblem.standardALiBiSlopes(heads: qHeads) }
        if a.sinks { sinks = Array(repeating: 0, count: qHeads) }
    }
}
