import AttuneCodegen
import AttuneKernels
import AttuneRuntime
import Foundation

/// What a format must gain over the current choice to be kept (`--format-gain`).
public enum FormatGain: String, Sendable, CaseIterable {
    /// Decode steps faster by more than the noise (paired runs): what a user waits for.
    case speed
    /// Fewer bytes read per decode step (weights in their formats, an untied embedding
    /// table's one row; the KV cache's bytes per cached position): what a memory-bound
    /// machine pays for, decided without timing, so a busy machine's noise cannot decide it.
    case bytes
}

/// The KV-cache and weight formats `attune tune MODEL` may choose (`--kv-candidates`,
/// `--weights-candidates`), each tried on the whole model, then group by group
/// (GroupSearch.swift: matmuls' weights, layers' KV caches).
public struct FormatCandidates: Sendable {
    public var weights: [WeightPolicy] = []
    public var kv: [KVFormat] = []
    public var gain = FormatGain.speed
    /// Try a format that breaks a budget on the whole model group by group (GroupSearch.swift:
    /// about one compile per matmul or layer); false: whole-model formats only.
    public var groups = true

    public init(weights: [WeightPolicy] = [], kv: [KVFormat] = [], gain: FormatGain = .speed) {
        self.weights = weights
        self.kv = kv
        self.gain = gain
    }

    public var isEmpty: Bool { weights.isEmpty && kv.isEmpty }
}

/// One format the tuner tried, and what decided it.
public struct FormatTrial: Sendable {
    /// `weights=int8`, `kv=bf16`.
    public var option: String
    public var accepted: Bool
    /// Against the dense compile, when it compiled.
    public var quality: ModelQuality?
    /// Decode step time of the current choice over this one (> 1: faster), with the A/A noise.
    public var decodeSpeedup: Double?
    public var noise: Double?
    /// Why it was kept or not, in words.
    public var outcome: String

    public var summary: String { "\(option): \(outcome)" }
}

/// What the format search tried and what it printed along the way.
struct FormatChoices {
    var trials: [FormatTrial] = []
    /// The group searches' steps, one line each, after their axis (`weights`, `kv`).
    var groupSteps: [String] = []
    /// Every trial and step as `attune tune` prints them, in the order they ran.
    var report: [String] = []
}

extension ModelTuner {
    /// Weights first (they are most of a decode step's bytes), then the KV cache, each on
    /// top of what is chosen so far. Candidates are tried from the fewest bytes up; the
    /// first that compiles with the chosen kernels, keeps every model budget against the
    /// dense compile (both phases' logits) and gains (`FormatGain`: decodes faster than the
    /// current choice by more than the noise, paired runs as kernels are chosen; or reads
    /// fewer bytes a decode step) is kept. A format over a budget (or not compiling) for the
    /// whole model is then tried group by group (GroupSearch.swift).
    func chooseFormats(_ model: LoadedModel, options: inout CompileOptions, tuned: inout CompiledModel, measurement: inout Measurement,
                       dense: CompiledModel, sequences: [[Int32]],
                       compile: (CompileOptions) throws -> CompiledModel) throws -> FormatChoices {
        var choices = FormatChoices()
        /// Tries `candidates` in order; returns those that broke a budget or did not compile.
        func axis(_ name: String, _ candidates: [(text: String, apply: (inout CompileOptions) -> Void)], unit: String,
                  bytes: (CompileOptions) throws -> Int) throws -> [String] {
            var failed: [String] = []
            for c in candidates {
                var o = options
                c.apply(&o)
                var trial = FormatTrial(option: "\(name)=\(c.text)", accepted: false, outcome: "")
                defer {
                    choices.trials.append(trial)
                    choices.report.append("format     \(trial.summary)")
                    reporter.note("format \(trial.summary)")
                }
                let model: CompiledModel
                do { model = try compile(o) } catch {
                    trial.outcome = "does not compile with the chosen kernels: \(error)"
                    failed.append(c.text)
                    continue
                }
                let m = try Self.compare(dense: dense, tuned: model, sequences: sequences)
                trial.quality = m.quality
                if let over = modelBudgets.first(where: { !$0.holds(m.quality) }) {
                    trial.outcome = "over \(over) \(Self.describe(m.quality))"
                    failed.append(c.text)
                    continue
                }
                // Bytes decide only under `--format-gain bytes`; speed is timed without them.
                var smaller = false, figures: String?
                if formats.gain == .bytes {
                    let (now, then) = (try bytes(o), try bytes(options))
                    (smaller, figures) = (now < then, "\(Self.kilobytes(then)) → \(Self.kilobytes(now)) \(unit)")
                }
                guard try judgeGain(&trial, model, over: tuned, quality: m.quality, bytes: figures, smaller: smaller, sequences: sequences) else { continue }
                (options, tuned, measurement) = (o, model, m)
                break
            }
            return failed
        }
        /// The formats of one axis that failed on the whole model, group by group
        /// (`GroupSearch`), from the widest to the narrowest: each moves only the groups the
        /// wider one moved (a group that cannot take int8 will not take q4).
        func groupByGroup(_ axis: String, _ failed: [String], _ search: (String, Set<Int>?) throws -> GroupMix) throws {
            var movable: Set<Int>?
            for text in failed.reversed() where formats.groups {
                let mix = try search(text, movable)
                choices.groupSteps += mix.steps.map { "\(axis) \($0)" }
                choices.report += mix.steps.map { axis.padding(toLength: 11, withPad: " ", startingAt: 0) + $0 }
                if let trial = mix.trial {
                    choices.trials.append(trial)
                    choices.report.append("format     \(trial.summary)")
                }
                guard !mix.moved.isEmpty else { break }
                movable = mix.moved
            }
        }
        // Bytes of a large block of weights in each format (auto counted as f32: its widest case).
        let weightBytes = { (w: WeightPolicy) in w.format(stored: .f32).bytes(elements: 1 << 20) }
        let weights = formats.weights.sorted { weightBytes($0) < weightBytes($1) }
        let failedWeights = try axis("weights", weights.map { w in (w.description, { $0.weights = w }) }, unit: "a decode step") {
            try Self.stepBytes(model, $0)
        }
        try groupByGroup("weights", failedWeights) { text, movable in
            try mixWeights(model, to: weights.first { $0.description == text }!, movable: movable, options: &options, tuned: &tuned,
                           measurement: &measurement, dense: dense, sequences: sequences, compile: compile)
        }
        let kv = formats.kv.sorted { $0.elementBytes < $1.elementBytes }
        let failedKV = try axis("kv", kv.map { f in (f.rawValue, { $0.kvFormat = f }) }, unit: "a cached position") {
            ModelCompiler.kvBytesPerPosition(model.graph, $0.kvFormat, byLayer: $0.kvFormatByLayer)
        }
        try groupByGroup("kv", failedKV) { text, movable in
            try mixKV(model, to: try KVFormat(parsing: text), movable: movable, options: &options, tuned: &tuned,
                      measurement: &measurement, dense: dense, sequences: sequences, compile: compile)
        }
        return choices
    }

    /// Decides a candidate that keeps every budget: kept when it gains over `current`
    /// (`formats.gain`): decode steps faster beyond the noise, or `smaller` (fewer bytes a
    /// step). Writes the trial's outcome with the figures (`bytes`, after the decode figures
    /// when timed) and returns whether it was kept.
    func judgeGain(_ trial: inout FormatTrial, _ candidate: CompiledModel, over current: CompiledModel, quality: ModelQuality,
                   bytes: String?, smaller: Bool, sequences: [[Int32]]) throws -> Bool {
        var (kept, figures) = (smaller, bytes ?? "")
        if formats.gain == .speed {
            let (speedup, noise) = try decodeSpeedup(of: candidate, over: current, sequences: sequences)
            (trial.decodeSpeedup, trial.noise) = (speedup, noise)
            (kept, figures) = (speedup - 1 > noise, Self.decodeFigures(speedup, noise) + (bytes.map { ", " + $0 } ?? ""))
        }
        let kl = "KL \(String(format: "%.3e", quality.meanKL))"
        trial.accepted = kept
        trial.outcome = kept ? "chosen: \(figures), \(kl)" : "within every budget but not \(formats.gain == .speed ? "faster" : "smaller"): \(figures), \(kl)"
        return kept
    }

    /// `decode 1.32x (noise 2.3 %)`: a paired decode speed-up as format trials print it.
    static func decodeFigures(_ speedup: Double, _ noise: Double) -> String {
        "decode \(String(format: "%.2f", speedup))x (noise \(String(format: "%.1f", 100 * noise)) %)"
    }

    /// `(KL …, perplexity ×…, top-1 …)`, as every format step prints a model measurement.
    static func describe(_ q: ModelQuality) -> String {
        "(KL \(String(format: "%.3e", q.meanKL)), perplexity ×\(String(format: "%.5f", q.perplexityRatio)), top-1 \(String(format: "%.4f", q.top1Agreement)))"
    }

    /// Median over `pairs` of (current's decode time / candidate's), runs alternating, on
    /// the longest sequence's decode steps; noise from current against itself, as
    /// `choose` measures kernels.
    func decodeSpeedup(of candidate: CompiledModel, over current: CompiledModel, sequences: [[Int32]]) throws -> (Double, Double) {
        let tokens = sequences.max { $0.count < $1.count }!
        let steps = max(1, Self.decodeSteps(tokens.count))
        let split = max(1, tokens.count - steps)
        func time(_ model: CompiledModel) throws -> Double {
            model.reset()
            _ = try model.prefill(Array(tokens[..<split]))
            let t0 = DispatchTime.now().uptimeNanoseconds
            for t in tokens[split...] { _ = try model.decodeStep(t) }
            return Double(DispatchTime.now().uptimeNanoseconds - t0)
        }
        _ = try time(current); _ = try time(candidate)
        var aa: [Double] = [], ratios: [Double] = []
        for _ in 0..<pairs {
            aa.append(try time(current) / time(current))
            ratios.append(try time(current) / time(candidate))
        }
        aa.sort()
        let noise = (aa[(3 * aa.count) / 4] - aa[aa.count / 4]) / 2 + abs(aa[aa.count / 2] - 1)
        return (ratios.sorted()[ratios.count / 2], noise)
    }
}
