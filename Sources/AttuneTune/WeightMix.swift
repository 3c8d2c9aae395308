import AttuneCodegen
import AttuneIR
import AttuneRuntime
import Foundation

/// Weight formats group by group (`attune tune MODEL --weights-candidates …`), when a
/// format breaks a model budget (or does not compile) on the whole model. A group is what
/// one matmul reads (`MatmulWeightGroup`: a layer's merged q/k/v, its o, its merged
/// gate/up, its down; the embedding table; the output projection), since `--weights-for`
/// cannot split a merged matmul. As llama.cpp's quantisation mixes keep some tensors wider
/// (its output table, `attn_v`, `ffn_down` of some layers) by rule, this measures which:
///
/// 1. Sensitivity: each group alone in the format, the rest as chosen so far; one compile
///    and one run of the calibration data against the dense compile each. Its cost is the
///    largest share of a budget it uses (`ModelBudget.share`); a group over a budget alone
///    stays.
/// 2. Groups sorted by cost per byte a decode step saves (an untied embedding table saves
///    one row a step, so it comes last however cheap), and the longest prefix that keeps
///    every budget found by bisection: ⌈log₂ n⌉ compiles at most, since the first group's
///    prefix was measured in step 1 and the whole list is the whole-model trial.
/// 3. The chosen prefix was measured end to end in step 2; it is run again as the other
///    formats are (both phases, timed) and kept under the same rule (`FormatGain`).
///
/// So a model with n groups costs about n + log₂ n compiles per format: 34 groups and
/// 40 compiles for an 8-layer model. Budget shares need not add up (errors of two groups
/// can cancel or compound), which is why the prefix is measured, not predicted.
struct WeightMix {
    /// One line per measurement, as printed.
    var steps: [String] = []
    /// The mixed assignment, when one kept every budget.
    var trial: FormatTrial?
    /// The groups moved to the format and kept (empty: none).
    var moved: Set<Int> = []
}

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

    /// Bytes a decode step reads of group `g`, in `format` (nil: as compiled).
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

    static func kilobytes(_ bytes: Int) -> String { String(format: "%.1f kB", Double(bytes) / 1000) }

    /// Moves as many groups as the budgets allow to `format` (`movable`: the groups a wider
    /// format's search moved; nil: every group), updating the current choice when the
    /// result gains (`WeightMix`).
    func mixWeights(_ model: LoadedModel, to format: WeightPolicy, movable: Set<Int>?, options: inout CompileOptions, tuned: inout CompiledModel,
                    measurement: inout Measurement, dense: CompiledModel, sequences: [[Int32]],
                    compile: (CompileOptions) throws -> CompiledModel) throws -> WeightMix {
        var mix = WeightMix()
        func step(_ line: String) {
            mix.steps.append(line)
            reporter.note("weights \(line)")
        }
        let layout = try WeightLayout(model, options)
        let groups = layout.groups
        var policies: [Int: WeightPolicy] = [:]
        for (g, group) in groups.enumerated() {
            policies[g] = WeightOverride.policy(for: group.names[0], in: options.weightOverrides, fallback: options.weights)
        }
        func assignment(moving moved: [Int]) throws -> CompileOptions {
            var p = policies
            for g in moved { p[g] = format }
            var o = options
            o.weightOverrides = try Self.weightRules(groups, p, base: options.weights)
            return o
        }
        let saving = groups.indices.map { layout.stepBytes($0) - layout.stepBytes($0, in: format) }
        let candidates = groups.indices.filter { (movable?.contains($0) ?? true) && saving[$0] > 0 }
        func holds(_ m: Measurement) -> Bool { modelBudgets.allSatisfy { $0.holds(m.quality) } }
        func share(_ m: Measurement) -> Double { modelBudgets.map { $0.share(of: m.quality) }.max() ?? 0 }

        /// The model with `moved` groups in the format against the dense compile (quality
        /// only: one run); nil when it does not compile, said in `label`'s step.
        func measure(_ moved: [Int], _ label: String) throws -> Measurement? {
            let o = try assignment(moving: moved)
            let compiled: CompiledModel
            do { compiled = try compile(o) } catch {
                step("\(label): does not compile: \(error)")
                return nil
            }
            return try Self.compare(dense: dense, tuned: compiled, sequences: sequences, runs: 1)
        }

        // 1. Each group alone.
        var alone: [Int: Double] = [:]
        for g in candidates {
            let label = "\(format.description) alone on \(groups[g].label) (saves \(Self.kilobytes(saving[g])) a step)"
            guard let m = try measure([g], label) else { continue }
            let s = share(m)
            step("\(label): \(Self.describe(m.quality)), \(String(format: "%.3g", 100 * s)) % of the budget" + (holds(m) ? "" : ", over"))
            if holds(m) { alone[g] = s }
        }
        // 2. Cheapest per byte saved first; the longest prefix within every budget.
        let order = alone.keys.sorted { a, b in
            let (x, y) = (alone[a]! / Double(saving[a]), alone[b]! / Double(saving[b]))
            return x != y ? x < y : (saving[a] != saving[b] ? saving[a] > saving[b] : a < b)
        }
        guard !order.isEmpty else {
            step("no group keeps every budget in \(format.description) alone: weights stay as they are")
            return mix
        }
        func prefix(_ k: Int) throws -> Bool {
            let label = "\(format.description) on the \(k) cheapest groups (to \(groups[order[k - 1]].label))"
            guard let m = try measure(Array(order.prefix(k)), label) else { return false }
            let over = modelBudgets.first { !$0.holds(m.quality) }
            step("\(label): \(Self.describe(m.quality)), " + (over.map { "over \($0)" } ?? "within every budget"))
            return over == nil
        }
        // Prefix 1 was measured alone. The list of every group is the whole-model trial,
        // which broke a budget or did not compile; a shorter list is measured first.
        var lo = 1, hi = order.count
        if movable != nil || order.count < candidates.count {
            if try prefix(order.count) { lo = order.count }
        }
        while hi - lo > 1 {
            let mid = (lo + hi) / 2
            if try prefix(mid) { lo = mid } else { hi = mid }
        }

        // 3. The prefix, timed as the other formats are, and kept if it gains.
        let chosen = Array(order.prefix(lo))
        let o = try assignment(moving: chosen)
        let compiled = try compile(o)
        let m = try Self.compare(dense: dense, tuned: compiled, sequences: sequences)
        let before = layout.stepBytes, after = before - chosen.reduce(0) { $0 + saving[$1] }
        var trial = FormatTrial(option: "weights=\(format.description) on \(lo) of \(groups.count) groups", accepted: false, quality: m.quality, outcome: "")
        func finish() -> WeightMix {
            mix.trial = trial
            reporter.note("format \(trial.summary)")
            return mix
        }
        let bytes = "\(Self.kilobytes(before)) → \(Self.kilobytes(after)) a decode step"
        guard holds(m) else {
            trial.outcome = "over \(modelBudgets.first { !$0.holds(m.quality) }!) when run again \(Self.describe(m.quality))"
            return finish()
        }
        var figures = bytes
        if formats.gain == .speed {
            let (speedup, noise) = try decodeSpeedup(of: compiled, over: tuned, sequences: sequences)
            (trial.decodeSpeedup, trial.noise) = (speedup, noise)
            figures = "decode \(String(format: "%.2f", speedup))x (noise \(String(format: "%.1f", 100 * noise)) %), " + bytes
            guard speedup - 1 > noise else {
                trial.outcome = "within every budget but not faster: \(figures), KL \(String(format: "%.3e", m.quality.meanKL))"
                return finish()
            }
        }
        trial.accepted = true
        trial.outcome = "chosen: \(figures), KL \(String(format: "%.3e", m.quality.meanKL))"
        (options, tuned, measurement) = (o, compiled, m)
        mix.moved = Set(chosen)
        return finish()
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
