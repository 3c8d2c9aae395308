import AttuneCodegen
import AttuneIR
import AttuneRuntime
import Foundation

/// The matmul weights of one compile: their groups, what each weight is, and what a decode
/// step reads of each group.
struct WeightLayout {
    var groups: [MatmulWeightGroup]
    /// Per weight name: its elements, row width and the format it is compiled in.
    var weights: [String: (elements: Int, width: Int, format: WeightFormat)]

    init(_ model: LoadedModel, _ options: CompileOptions) throws {
        let (report, module) = try ModelCompiler.emit(model, options)
        groups = MatmulWeightGroup.groups(in: report.output)
        weights = [:]
        for slot in module.constants {
            for part in slot.parts { weights[part.name] = (part.count, slot.width, slot.format) }
        }
    }

    /// Bytes a decode step reads of group `g`, in `policy`'s format (nil: as compiled).
    func stepBytes(_ g: Int, in policy: WeightPolicy? = nil) -> Int {
        groups[g].names.reduce(0) { sum, name in
            guard let w = weights[name] else { return sum }
            let stored: DType = w.format == .bf16 ? .bf16 : .f32
            let format = policy?.format(stored: stored) ?? w.format
            return sum + format.bytes(elements: groups[g].isLookupOnly ? w.width : w.elements)
        }
    }

    var stepBytes: Int { groups.indices.reduce(0) { $0 + stepBytes($1) } }
}

extension ModelTuner {
    /// Bytes of matmul weights a decode step reads when compiled with `options`.
    static func stepBytes(_ model: LoadedModel, _ options: CompileOptions) throws -> Int {
        try WeightLayout(model, options).stepBytes
    }

    /// Weights group by group (`GroupSearch`): a group is what one matmul reads
    /// (`MatmulWeightGroup`: a layer's merged q/k/v, its o, its merged gate/up, its down; the
    /// embedding table; the output projection), since `--weights-for` cannot split a merged
    /// matmul; it saves what a decode step reads of it (an untied embedding table: one row).
    /// llama.cpp's quantisation mixes keep some tensors wider by rule (the output table,
    /// `attn_v`, some layers' `ffn_down`); this measures which.
    func mixWeights(_ model: LoadedModel, to format: WeightPolicy, movable: Set<Int>?, options: inout CompileOptions, tuned: inout CompiledModel,
                    measurement: inout Measurement, dense: CompiledModel, sequences: [[Int32]],
                    compile: (CompileOptions) throws -> CompiledModel) throws -> GroupMix {
        let layout = try WeightLayout(model, options)
        let groups = layout.groups
        var policies: [Int: WeightPolicy] = [:]
        for (g, group) in groups.enumerated() {
            policies[g] = WeightOverride.policy(for: group.names[0], in: options.weightOverrides, fallback: options.weights)
        }
        let base = options
        let search = GroupSearch(option: "weights=\(format.description)", format: format.description, labels: groups.map(\.label),
                                 saving: groups.indices.map { layout.stepBytes($0) - layout.stepBytes($0, in: format) },
                                 unit: "a decode step", bytes: layout.stepBytes, movable: movable) { moved in
            var p = policies
            for g in moved { p[g] = format }
            var o = base
            o.weightOverrides = try Self.weightRules(groups, p, base: base.weights)
            return o
        }
        return try mix(search, options: &options, tuned: &tuned, measurement: &measurement, dense: dense, sequences: sequences, compile: compile)
    }

    /// `--weights-for` rules giving each group its policy where it differs from `base`: one
    /// rule per layer (`model.layers.3.=int8`) when every weight of that layer takes the same
    /// policy, else one per weight, by its full name. Checked to give every weight its policy
    /// under the first-match rule.
    static func weightRules(_ groups: [MatmulWeightGroup], _ policies: [Int: WeightPolicy], base: WeightPolicy) throws -> [WeightOverride] {
        let names = groups.flatMap(\.names)
        var policyOf: [String: WeightPolicy] = [:]
        for (g, group) in groups.enumerated() { for name in group.names { policyOf[name] = policies[g] ?? base } }
        var rules: [WeightOverride] = []
        var covered = Set<String>()
        for name in names where policyOf[name] != base && !covered.contains(name) {
            let policy = policyOf[name]!
            var pattern = name
            if let layer = layerPrefix(name), names.filter({ $0.contains(layer) }).allSatisfy({ policyOf[$0] == policy }) { pattern = layer }
            rules.append(WeightOverride(pattern: pattern, policy: policy))
            covered.formUnion(names.filter { $0.contains(pattern) })
        }
        if let wrong = names.first(where: { WeightOverride.policy(for: $0, in: rules, fallback: base) != policyOf[$0] }) {
            throw TuneError("internal: the weight rules \(rules.map(\.description)) give \(wrong) the wrong format")
        }
        return rules
    }

    /// `model.layers.3.` for `model.layers.3.mlp.down_proj.weight`: the name up to its first
    /// number (the dot keeps layer 1's prefix from matching layer 13); nil without one.
    static func layerPrefix(_ name: String) -> String? {
        let parts = name.split(separator: ".", omittingEmptySubsequences: false)
        guard let i = parts.firstIndex(where: { !$0.isEmpty && $0.allSatisfy(\.isNumber) }), i + 1 < parts.count else { return nil }
        return parts[...i].joined(separator: ".") + "."
    }
}
