import AttuneRuntime
import Foundation

/// A format tried group by group (`attune tune MODEL` with `--weights-candidates` or
/// `--kv-candidates`), when it breaks a model budget (or does not compile) on the whole
/// model: groups of weights (WeightMix.swift) or layers' KV caches (KVMix.swift).
///
/// 1. Cost alone: each group alone in the format, the rest as chosen so far; one compile
///    and one run of the calibration data against the dense compile each. Its cost is the
///    largest share of a budget it adds to the current choice's (`ModelBudget.share`; the
///    current choice may use some already: approximate kernels, a wider format); a group
///    over a budget alone stays.
/// 2. Groups sorted by cost per byte they save, and the longest prefix that keeps every
///    budget found by bisection: ⌈log₂ n⌉ compiles at most, since the first group's prefix
///    was measured in step 1 and the list of every group is the whole-model trial.
/// 3. The chosen prefix, measured end to end in step 2, is run again as the whole formats
///    are (both phases, timed) and kept under the same rule (`FormatGain`).
///
/// So n groups cost about n + log₂ n compiles per format: 34 weight groups and 40 compiles
/// for an 8-layer model. Costs need not add up (errors of two groups can cancel or
/// compound), which is why every prefix is measured, not predicted.
struct GroupSearch {
    /// `weights=int8`, `kv=int8`: the trial's name.
    var option: String
    /// `int8`: the format, in the steps' text.
    var format: String
    var labels: [String]
    /// Bytes moving each group saves, per `unit` (≤ 0: not narrower, never moved).
    var saving: [Int]
    /// `a decode step`, `a cached position`.
    var unit: String
    /// Bytes per `unit` of the current choice.
    var bytes: Int
    /// The groups a wider format's search moved (only they may move further); nil: every group.
    var movable: Set<Int>?
    /// The current choice with `moved` groups in the format.
    var options: ([Int]) throws -> CompileOptions
}

/// What one group search printed and chose.
struct GroupMix {
    /// One line per measurement, as printed.
    var steps: [String] = []
    /// The mixed assignment, when one kept every budget.
    var trial: FormatTrial?
    /// The groups moved to the format and kept (empty: none).
    var moved: Set<Int> = []
}

extension ModelTuner {
    static func kilobytes(_ bytes: Int) -> String { String(format: "%.1f kB", Double(bytes) / 1000) }

    /// Moves as many of `search`'s groups as the budgets allow to its format (`GroupSearch`),
    /// updating the current choice when the result gains.
    func mix(_ search: GroupSearch, options: inout CompileOptions, tuned: inout CompiledModel, measurement: inout Measurement,
             dense: CompiledModel, sequences: [[Int32]], compile: (CompileOptions) throws -> CompiledModel) throws -> GroupMix {
        var mix = GroupMix()
        func step(_ line: String) {
            mix.steps.append(line)
            reporter.note("\(search.option.prefix { $0 != "=" }) \(line)")
        }
        let (format, saving, labels) = (search.format, search.saving, search.labels)
        let candidates = labels.indices.filter { (search.movable?.contains($0) ?? true) && saving[$0] > 0 }
        func holds(_ m: Measurement) -> Bool { modelBudgets.allSatisfy { $0.holds(m.quality) } }
        func share(_ m: Measurement) -> Double { modelBudgets.map { $0.share(of: m.quality) }.max() ?? 0 }
        let current = measurement.quality
        /// What `m` adds to the current choice's use of the budgets.
        func cost(_ m: Measurement) -> Double { max(0, modelBudgets.map { $0.share(of: m.quality) - $0.share(of: current) }.max() ?? 0) }
        /// The model with `moved` groups in the format against the dense compile (quality
        /// only: one run); nil when it does not compile, said in `label`'s step.
        func measure(_ moved: [Int], _ label: String) throws -> Measurement? {
            let o = try search.options(moved)
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
            let label = "\(format) alone on \(labels[g]) (saves \(Self.kilobytes(saving[g])) \(search.unit))"
            guard let m = try measure([g], label) else { continue }
            let (s, c) = (share(m), cost(m))
            step("\(label): \(Self.describe(m.quality)), \(String(format: "%.3g", 100 * s)) % of the budget"
                 + (c < s ? " (+\(String(format: "%.3g", 100 * c)) %)" : "") + (holds(m) ? "" : ", over"))
            if holds(m) { alone[g] = c }
        }
        // 2. Cheapest per byte saved first; the longest prefix within every budget.
        let order = alone.keys.sorted { a, b in
            let (x, y) = (alone[a]! / Double(saving[a]), alone[b]! / Double(saving[b]))
            return x != y ? x < y : (saving[a] != saving[b] ? saving[a] > saving[b] : a < b)
        }
        guard !order.isEmpty else {
            step("no group keeps every budget in \(format) alone: they stay as they are")
            return mix
        }
        func prefix(_ k: Int) throws -> Bool {
            let label = "\(format) on the \(k) cheapest groups (to \(labels[order[k - 1]]))"
            guard let m = try measure(Array(order.prefix(k)), label) else { return false }
            let over = modelBudgets.first { !$0.holds(m.quality) }
            step("\(label): \(Self.describe(m.quality)), " + (over.map { "over \($0)" } ?? "within every budget"))
            return over == nil
        }
        // Prefix 1 was measured alone. The list of every group is the whole-model trial,
        // which broke a budget or did not compile; a shorter list is measured first.
        var lo = 1, hi = order.count
        if search.movable != nil || order.count < candidates.count {
            if try prefix(order.count) { lo = order.count }
        }
        while hi - lo > 1 {
            let mid = (lo + hi) / 2
            if try prefix(mid) { lo = mid } else { hi = mid }
        }

        // 3. The prefix, timed as the other formats are, and kept if it gains.
        let chosen = Array(order.prefix(lo))
        let o = try search.options(chosen)
        let compiled = try compile(o)
        let m = try Self.compare(dense: dense, tuned: compiled, sequences: sequences)
        let after = search.bytes - chosen.reduce(0) { $0 + saving[$1] }
        var trial = FormatTrial(option: "\(search.option) on \(lo) of \(labels.count) groups", accepted: false, quality: m.quality, outcome: "")
        func finish() -> GroupMix {
            mix.trial = trial
            reporter.note("format \(trial.summary)")
            return mix
        }
        let bytes = "\(Self.kilobytes(search.bytes)) → \(Self.kilobytes(after)) \(search.unit)"
        guard holds(m) else {
            trial.outcome = "over \(modelBudgets.first { !$0.holds(m.quality) }!) when run again \(Self.describe(m.quality))"
            return finish()
        }
        // The chosen groups each save bytes, so under `--format-gain bytes` it is smaller.
        guard try judgeGain(&trial, compiled, over: tuned, quality: m.quality, bytes: bytes, smaller: true, sequences: sequences) else { return finish() }
        (options, tuned, measurement) = (o, compiled, m)
        mix.moved = Set(chosen)
        return finish()
    }
}
