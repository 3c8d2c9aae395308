/// A change to the attention scores that composes with a kernel rather than being one
/// (Docs/ARCHITECTURE.md, "Adding a variant"): soft-capping, an ALiBi bias, sink logits.
/// A kernel declares the ones it implements (`AttentionKernel.modifiers`); every other
/// kernel refuses a problem that uses one, with a reason written here once.
public enum ScoreModifier: String, CaseIterable, Sendable {
    case softcap, alibi, sinks
    /// Document ids and a block bitmask (`documentIDs`, `blockMask`): masks with holes,
    /// whose fully hidden tiles the engine skips.
    case masks

    /// What it is called in a refusal, with the problem's setting where it has one.
    func phrase(_ problem: AttentionProblem) -> String {
        switch self {
        case .softcap: return "logit soft-capping (softcap=\(problem.softcap.map(describeParameterValue) ?? "?"))"
        case .alibi: return "ALiBi (alibi)"
        case .sinks: return "attention sinks (sinks)"
        case .masks: return "document or block masks (masks)"
        }
    }

    /// The registered kernels that implement it, as a sentence's subject: "flash does",
    /// "flash, unified_max and sparge do".
    var implementers: String {
        let names = KernelRegistry.all.filter { $0.modifiers.contains(self) }.map(\.name)
        guard let last = names.last else { return "no kernel does" }
        return names.count == 1 ? "\(last) does" : names.dropLast().joined(separator: ", ") + " and \(last) do"
    }
}

extension AttentionProblem {
    /// The score modifiers this problem uses.
    public var modifiers: Set<ScoreModifier> {
        var set: Set<ScoreModifier> = []
        if softcap != nil { set.insert(.softcap) }
        if alibiSlopes != nil { set.insert(.alibi) }
        if sinks != nil { set.insert(.sinks) }
        if documentIDs != nil || blockMask != nil { set.insert(.masks) }
        return set
    }
}

extension AttentionKernel {
    /// Why this kernel cannot run `problem`, empty when it can: the ABI's own validation,
    /// the kernel's `problemRefusals`, and each score modifier the problem uses that the
    /// kernel does not declare (its `modifierRefusal`, or the common reason).
    public func unsupportedReasons(_ problem: AttentionProblem) -> [String] {
        var reasons = problem.validationError().map { [$0] } ?? []
        reasons += problemRefusals(problem)
        for m in ScoreModifier.allCases where problem.modifiers.contains(m) && !modifiers.contains(m) {
            reasons.append(modifierRefusal(m) ?? "\(name) does not implement \(m.phrase(problem)); \(m.implementers)")
        }
        return reasons
    }
}
