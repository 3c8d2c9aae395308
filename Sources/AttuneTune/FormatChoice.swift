import AttuneCodegen
import AttuneKernels
import AttuneRuntime
import Foundation

/// The KV-cache and weight formats `attune tune MODEL` may choose (`--kv-candidates`,
/// `--weights-candidates`). Formats are whole-model: the generated runtime has one KV
/// element type and one weight format (CEmitter), so the choice is not per layer.
public struct FormatCandidates: Sendable {
    public var weights: [WeightPolicy] = []
    public var kv: [KVFormat] = []

    public init(weights: [WeightPolicy] = [], kv: [KVFormat] = []) {
        self.weights = weights
        self.kv = kv
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

extension ModelTuner {
    /// Weights first (they are most of a decode step's bytes), then the KV cache, each on
    /// top of what is chosen so far. Candidates are tried from the fewest bytes up; the
    /// first that compiles with the chosen kernels, keeps every model budget against the
    /// dense compile (both phases' logits) and makes decode steps faster than the current
    /// choice by more than the noise (paired runs, as kernels are chosen) is kept.
    func chooseFormats(options: inout CompileOptions, tuned: inout CompiledModel, measurement: inout Measurement,
                       dense: CompiledModel, sequences: [[Int32]],
                       compile: (CompileOptions) throws -> CompiledModel) throws -> [FormatTrial] {
        var trials: [FormatTrial] = []
        func axis(_ name: String, _ candidates: [(text: String, apply: (inout CompileOptions) -> Void)]) throws {
            for c in candidates {
                var o = options
                c.apply(&o)
                var trial = FormatTrial(option: "\(name)=\(c.text)", accepted: false, outcome: "")
                defer { trials.append(trial); reporter.note("format \(trial.summary)") }
                let model: CompiledModel
                do { model = try compile(o) } catch {
                    trial.outcome = "does not compile with the chosen kernels: \(error)"
                    continue
                }
                let m = try Self.compare(dense: dense, tuned: model, sequences: sequences)
                trial.quality = m.quality
                if let failed = modelBudgets.first(where: { !$0.holds(m.quality) }) {
                    trial.outcome = "over \(failed) (KL \(String(format: "%.3e", m.quality.meanKL)), perplexity ×\(String(format: "%.5f", m.quality.perplexityRatio)), top-1 \(String(format: "%.4f", m.quality.top1Agreement)))"
                    continue
                }
                let (speedup, noise) = try decodeSpeedup(of: model, over: tuned, sequences: sequences)
                (trial.decodeSpeedup, trial.noise) = (speedup, noise)
                let figures = "decode \(String(format: "%.2f", speedup))x (noise \(String(format: "%.1f", 100 * noise)) %), KL \(String(format: "%.3e", m.quality.meanKL))"
                guard speedup - 1 > noise else {
                    trial.outcome = "within every budget but not faster: \(figures)"
                    continue
                }
                trial.accepted = true
                trial.outcome = "chosen: \(figures)"
                (options, tuned, measurement) = (o, model, m)
                return
            }
        }
        // Bytes of a large block of weights in each format (auto counted as f32: its widest case).
        let weightBytes = { (w: WeightPolicy) in w.format(stored: .f32).bytes(elements: 1 << 20) }
        try axis("weights", formats.weights.sorted { weightBytes($0) < weightBytes($1) }.map { w in (w.description, { $0.weights = w }) })
        let kvBytes: [KVFormat: Int] = [.int8: 1, .bf16: 2, .f32: 4]
        try axis("kv", formats.kv.sorted { kvBytes[$0]! < kvBytes[$1]! }.map { f in (f.rawValue, { $0.kvFormat = f }) })
        return trials
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
