import AttuneCodegen
import AttuneIR
import AttuneKernels
import AttuneNumerics
import AttunePasses
import AttuneRuntime
import AttuneTensor
import Foundation

/// Accuracy-aware kernel choice for a whole model (`attune tune MODEL --error-budget
/// rel_l1=X --data tokens.npy`): for every attention layer, the fastest candidate whose
/// output on that layer's own calibration activations stays within the budget of dense
/// attention, then the model compiled with those choices against the dense compile.
///
/// 1. Calibration (φ per head for `unified_max`) from the float64 reference run.
/// 2. The same run captures each layer's q, k, v on the longest calibration sequence
///    (a prefill from an empty cache): the model is interpreted once.
/// 3. Per layer, per candidate that can run it and be compiled: rel-L1 and cosine against
///    the float64 reference attention of those activations, and the speed ratio to
///    `flash` measured pair by pair in this process. Candidates over the budget are
///    rejected; the fastest remaining one is chosen if it beats flash by more than the
///    noise (the A/A spread of flash against itself), else flash.
/// 4. Per layer, the same choice on a decode shape of those activations (the last query
///    row against all keys): the kernel decode steps run, written to the policy's
///    `"decode"` object when it differs from the prefill choice (flash unless a candidate
///    beats it beyond the noise). Not for a prefill choice keeping its own K/V store
///    (`hybrid`): both phases must run it.
/// 5. End to end: the dense compile and the tuned compile run every calibration sequence,
///    a prefill and then its last tokens as decode steps; max logit error, KL, top-1
///    agreement and perplexity over both phases' positions. While a model budget fails,
///    the worst approximate layer goes back to flash.
/// 6. Optionally (`formats`), weight and KV-cache formats: the smallest format that keeps
///    every model budget and gains (decodes faster beyond the noise, or reads fewer bytes)
///    on the whole model (`FormatChoice.swift`); then, for a format that broke a budget, the
///    groups of weights or layers' KV caches that can take it (`GroupSearch.swift`).
///
/// `kascade` is not a per-layer candidate: its reuse layers depend on an anchor layer's
/// selection, so it is chosen with `attune calibrate --kascade`, not layer by layer.
public struct ModelTuner {
    public struct LayerChoice: Sendable {
        public var layer: Int
        public var choice: KernelChoice
        public var speedup: Double
        public var relL1: Double
        public var cosine: Double
        public var rejected: [(String, Double)]
        public var noise: Double
        /// The kernel decode steps run when it is not `choice`, and its speed-up over flash there.
        public var decode: KernelChoice? = nil
        public var decodeSpeedup: Double = 1
    }

    public struct Result {
        public var layers: [LayerChoice]
        public var calibration: Calibration
        /// The final compile (kernels and formats) against the dense one.
        public var measurement: Measurement
        public var overrides: KernelOverrides
        /// Layers whose choice went back to flash to meet the model budgets, in that order.
        public var reverted: [Int] = []
        /// The KV and weight formats chosen (`formats`); nil where the default stays.
        public var kv: KVFormat? = nil
        public var weights: WeightPolicy? = nil
        /// Per-weight formats the group search chose (`--weights-for` rules), on top of `weights`.
        public var weightRules: [WeightOverride] = []
        /// Layers whose KV cache the group search put in another format than `kv` (`--layer-kv`).
        public var kvByLayer: [Int: KVFormat] = [:]
        /// Every format tried, in order, with what decided it.
        public var formatTrials: [FormatTrial] = []
        /// The group searches' measurements, one line each after their axis (`weights …`, `kv …`), in order.
        public var groupSteps: [String] = []
        /// Format trials and group-search steps as printed (`format     …`, `weights    …`), in order.
        public var formatReport: [String] = []
        /// What the choice was measured to cost and gain, stored in the policy file.
        public var evidence: [String: Any] = [:]

        public var comparison: LogitComparison { measurement.comparison }
        public var quality: ModelQuality { measurement.quality }

        /// The choices as an attention policy file (`--attention-policy`), with the evidence.
        public var policyJSON: Data {
            Self.policyJSON(layers, evidence: evidence, kv: kv, weights: weights, weightRules: weightRules, kvByLayer: kvByLayer)
        }

        static func policyJSON(_ layers: [LayerChoice], evidence: [String: Any], kv: KVFormat? = nil, weights: WeightPolicy? = nil,
                               weightRules: [WeightOverride] = [], kvByLayer: [Int: KVFormat] = [:]) -> Data {
            let layersObject = Dictionary(uniqueKeysWithValues: layers.map { (String($0.layer), $0.choice.description) })
            var object: [String: Any] = ["default": KernelRegistry.exactDefault.name, "layers": layersObject, "evidence": evidence]
            let decode = layers.compactMap { c in c.decode.map { (String(c.layer), $0.description) } }
            if !decode.isEmpty { object["decode"] = ["layers": Dictionary(uniqueKeysWithValues: decode)] }
            if let kv { object["kv"] = kv.rawValue }
            if let weights { object["weights"] = weights.description }
            if !weightRules.isEmpty { object["weights_for"] = weightRules.map(\.description) }
            if !kvByLayer.isEmpty { object["kv_layers"] = Dictionary(uniqueKeysWithValues: kvByLayer.map { (String($0.key), $0.value.rawValue) }) }
            return (try? JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys])) ?? Data()
        }
    }

    /// Candidates tried on every layer when none are given. flash's int8 Q·Kᵀ tiles are
    /// among them because they measured faster than its bf16 tiles (Docs/PERFORMANCE.md).
    public static let defaultCandidates = ["flash", "flash:precision=bf16", "flash:precision=int8qk", "unified_max", "sparge", "sparge:simthreshd1=0.3,cdfthreshd=0.95,block_kv=32",
                                           "hybrid:cold_budget=0.25"]

    public var budget: Double
    /// End-to-end budgets (`kl=`, `ppl=`, `top1=`); every one must hold.
    public var modelBudgets: [ModelBudget] = []
    public var candidates: [KernelChoice]
    public var pairs = 9
    public var reporter: TuneReporter = .silent
    /// Also choose `kascade` anchors and head maps on the same data (`attune calibrate
    /// --kascade`), stored in the calibration written next to the policy.
    public var kascade: Calibrator.KascadeRequest?
    /// KV and weight formats to try once the kernels are chosen (`FormatChoice.swift`).
    public var formats = FormatCandidates()

    public init(budget: Double, candidates: [KernelChoice]) {
        self.budget = budget
        self.candidates = candidates
    }

    public func tune(_ model: LoadedModel, sequences: [[Int32]], toolchain: Toolchain) throws -> Result {
        guard formats.isEmpty || !modelBudgets.isEmpty else {
            throw TuneError("choosing KV or weight formats needs an end-to-end budget (kl=, ppl= or top1=): a per-layer rel-L1 does not see them")
        }
        let start = Date()
        // One float64 run: calibration, and every layer's inputs on the longest sequence.
        let longest = sequences.indices.max { sequences[$0].count < sequences[$1].count }!
        var activations: [Int: Activations] = [:]
        var failure: Error?
        let calibration = try Calibrator.calibrate(model, sequences: sequences, kascade: kascade, observe: { sequence, layer, a, q, k, v in
            guard sequence == longest else { return }
            do { activations[layer] = try Self.activations(a, q: q, k: k, v: v) } catch { failure = error }
        })
        if let failure { throw failure }
        if let k = calibration.kascade { reporter.note("kascade anchors \(k.anchors) (objective \(String(format: "%.4f", k.objective)))") }
        reporter.note("calibrated φ on \(sequences.count) sequences (\(String(format: "%.1f", Date().timeIntervalSince(start))) s)")
        var layers: [LayerChoice] = []
        for (layer, x) in activations.sorted(by: { $0.key < $1.key }) {
            let phi = calibration.layers.first { $0.layer == layer }?.heads.map(\.phi)
            var c = try choose(layer: layer, x, phi: phi)
            if !(try KernelRegistry.kernel(named: c.choice.kernel) is any KVStoreKernel) {
                let d = try choose(layer: layer, Self.decodeShape(x), phi: phi, decode: true)
                if d.choice != c.choice { (c.decode, c.decodeSpeedup) = (d.choice, d.speedup) }
            }
            layers.append(c)
            reporter.note("layer \(layer): \(c.choice) — \(String(format: "%.2f", c.speedup))x flash, rel-L1 \(String(format: "%.2e", c.relL1)) (\(c.rejected.count) over the budget)"
                          + (c.decode.map { "; decode \($0) — \(String(format: "%.2f", c.decodeSpeedup))x flash" } ?? ""))
        }

        var overrides = KernelOverrides(global: KernelChoice(kernel: KernelRegistry.exactDefault.name))
        for c in layers { (overrides.byLayer[c.layer], overrides.decodeByLayer[c.layer]) = (c.choice, c.decode) }
        let context = max(16, sequences.map(\.count).max()!)
        let dense = try CompiledModel(artifacts: try ModelCompiler.compile(model, CompileOptions(maxContext: context), toolchain: toolchain))
        var options = CompileOptions(kernels: overrides, maxContext: context, calibration: (calibration, "(attune tune)"))
        func compile(_ options: CompileOptions) throws -> CompiledModel {
            try CompiledModel(artifacts: try ModelCompiler.compile(model, options, toolchain: toolchain))
        }
        var tuned = try compile(options)
        var measurement = try Self.compare(dense: dense, tuned: tuned, sequences: sequences)
        let reverted = try Self.enforce(modelBudgets, layers: &layers, quality: measurement.quality, reporter: reporter) { layers in
            for c in layers { (options.kernels.byLayer[c.layer], options.kernels.decodeByLayer[c.layer]) = (c.choice, c.decode) }
            tuned = try compile(options)
            measurement = try Self.compare(dense: dense, tuned: tuned, sequences: sequences)
            return measurement.quality
        }
        let formatChoices = try chooseFormats(model, options: &options, tuned: &tuned, measurement: &measurement, dense: dense,
                                              sequences: sequences, compile: compile)
        var result = Result(layers: layers, calibration: calibration, measurement: measurement, overrides: options.kernels, reverted: reverted)
        (result.formatTrials, result.groupSteps, result.formatReport) = (formatChoices.trials, formatChoices.groupSteps, formatChoices.report)
        if options.kvFormat != .f32 { result.kv = options.kvFormat }
        if options.weights != .auto { result.weights = options.weights }
        result.weightRules = options.weightOverrides
        result.kvByLayer = options.kvFormatByLayer
        let quality = measurement.quality
        result.evidence = [
            "budgets": ["rel_l1=\(budget)"] + modelBudgets.map(\.description),
            "kl_mean": quality.meanKL, "kl_max": quality.maxKL, "top1_agreement": quality.top1Agreement,
            "perplexity_ratio": quality.perplexityRatio, "max_logit_error": quality.maxAbs,
            "speedup": measurement.denseMs / measurement.tunedMs,
            "decode_speedup": measurement.denseDecodeMs / measurement.tunedDecodeMs, "positions": quality.positions,
            "data": Self.dataHash(sequences), "reverted_layers": reverted,
            "created": ISO8601DateFormatter().string(from: Date()),
        ]
        if !result.formatTrials.isEmpty { result.evidence["formats_tried"] = result.formatTrials.map(\.summary) }
        if !result.groupSteps.isEmpty { result.evidence["group_steps"] = result.groupSteps }
        return result
    }

    /// The per-layer budget is a proxy; the model budgets are what the user asked for. While
    /// one fails, the approximate layer with the largest error goes back to flash and the
    /// model is measured again (`evaluate`). Returns the layers reverted, in order.
    static func enforce(_ budgets: [ModelBudget], layers: inout [LayerChoice], quality start: ModelQuality, reporter: TuneReporter,
                        evaluate: ([LayerChoice]) throws -> ModelQuality) throws -> [Int] {
        var quality = start
        var reverted: [Int] = []
        while let failed = budgets.first(where: { !$0.holds(quality) }),
              let worst = layers.indices.filter({ layers[$0].choice.kernel != KernelRegistry.exactDefault.name }).max(by: { layers[$0].relL1 < layers[$1].relL1 }) {
            let old = layers[worst]
            reporter.note("\(failed) not met (KL \(String(format: "%.3e", quality.meanKL)), perplexity ×\(String(format: "%.5f", quality.perplexityRatio)), "
                          + "top-1 \(String(format: "%.4f", quality.top1Agreement))): layer \(old.layer) (\(old.choice)) back to flash")
            reverted.append(old.layer)
            layers[worst] = LayerChoice(layer: old.layer, choice: KernelChoice(kernel: KernelRegistry.exactDefault.name), speedup: 1, relL1: 0, cosine: 1,
                                        rejected: old.rejected + [(old.choice.description, old.relL1)], noise: old.noise)
            quality = try evaluate(layers)
        }
        return reverted
    }

    /// What one tuned compile was measured to do against the dense one on the data.
    public struct Measurement {
        public var comparison: LogitComparison
        public var quality: ModelQuality
        /// Medians: a prefill of all but the last `decodeSteps` tokens of a sequence, in ms.
        public var denseMs: Double, tunedMs: Double
        /// Medians of one decode step, in ms.
        public var denseDecodeMs: Double, tunedDecodeMs: Double
    }

    /// Decode steps at the end of each sequence (the rest is one prefill): enough for a
    /// stable median, few enough that the prefill keeps most of the positions.
    static func decodeSteps(_ n: Int) -> Int { min(16, n / 4) }

    /// Dense and tuned compiles run every sequence `runs` times, alternating (the timings
    /// share the machine's state; 1 when only the quality is wanted): a prefill of all but
    /// the last `decodeSteps` tokens, then those tokens one decode step each, so both phases'
    /// kernels and the KV cache as stored are measured. Logits of the last run are
    /// compared, every position of both phases.
    static func compare(dense: CompiledModel, tuned: CompiledModel, sequences: [[Int32]], runs: Int = 3) throws -> Measurement {
        var parts: [LogitComparison] = []
        var denseMs: [Double] = [], tunedMs: [Double] = [], denseStep: [Double] = [], tunedStep: [Double] = []
        var nllDense = 0.0, nllTuned = 0.0, predictions = 0
        func run(_ model: CompiledModel, _ tokens: [Int32], prefillMs: inout [Double], stepMs: inout [Double]) throws -> [Float] {
            let split = tokens.count - decodeSteps(tokens.count)
            model.reset()
            let t0 = DispatchTime.now().uptimeNanoseconds
            var logits = try model.prefill(Array(tokens[..<split]))
            prefillMs.append(Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e6)
            for t in tokens[split...] {
                let t1 = DispatchTime.now().uptimeNanoseconds
                logits += try model.decodeStep(t)
                stepMs.append(Double(DispatchTime.now().uptimeNanoseconds - t1) / 1e6)
            }
            return logits
        }
        for tokens in sequences {
            var a: [Float] = [], b: [Float] = []
            for _ in 0..<runs {
                a = try run(dense, tokens, prefillMs: &denseMs, stepMs: &denseStep)
                b = try run(tuned, tokens, prefillMs: &tunedMs, stepMs: &tunedStep)
            }
            parts.append(LogitComparison(baseline: a, candidate: b, vocab: dense.vocab))
            for i in 0..<(tokens.count - 1) {
                nllDense -= LogSoftmaxRow(a, row: i, vocab: dense.vocab).logProbability(Int(tokens[i + 1]))
                nllTuned -= LogSoftmaxRow(b, row: i, vocab: dense.vocab).logProbability(Int(tokens[i + 1]))
                predictions += 1
            }
        }
        let c = LogitComparison.combine(parts)
        let ratio = predictions > 0 ? exp((nllTuned - nllDense) / Double(predictions)) : 1
        let quality = ModelQuality(meanKL: c.meanKL, maxKL: c.maxKL, top1Agreement: c.top1Agreement, maxAbs: c.maxAbs,
                                   perplexityRatio: ratio, positions: c.positions)
        func median(_ x: [Double]) -> Double { x.isEmpty ? .nan : x.sorted()[x.count / 2] }
        return Measurement(comparison: c, quality: quality, denseMs: median(denseMs), tunedMs: median(tunedMs),
                           denseDecodeMs: median(denseStep), tunedDecodeMs: median(tunedStep))
    }

    /// Names the tuning data in the evidence: 64-bit FNV-1a of the ids, with their shape.
    static func dataHash(_ sequences: [[Int32]]) -> String {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        for s in sequences { for t in s { for b in withUnsafeBytes(of: t.littleEndian, Array.init) { h = (h ^ UInt64(b)) &* 0x100_0000_01b3 } } }
        return String(format: "fnv64:%016llx (%d × %d ids)", h, sequences.count, sequences.first?.count ?? 0)
    }

    /// One layer's attention inputs in kernel layout.
    struct Activations {
        var attrs: AttentionAttrs
        var problem: AttentionProblem
        var q: Tensor, k: Tensor, v: Tensor
        var reference: [Double]
    }

    /// `x` cut to a decode step: its last query row (which sees every key) against all keys.
    static func decodeShape(_ x: Activations) -> Activations {
        var p = x.problem
        let rows = p.qLen
        p.qLen = 1
        func lastRows<T>(_ data: [T], heads: Int, width: Int) -> [T] {
            var out: [T] = []
            for h in 0..<heads {
                let end = (h + 1) * rows * width
                out += data[(end - width)..<end]
            }
            return out
        }
        return Activations(attrs: x.attrs, problem: p, q: Tensor(shape: p.qShape, data: lastRows(x.q.data, heads: p.qHeads, width: p.qkDim)),
                           k: x.k, v: x.v, reference: lastRows(x.reference, heads: p.qHeads, width: p.vDim))
    }

    /// One layer's q, k, v in kernel layout, and the float64 reference output.
    static func activations(_ a: AttentionAttrs, q: F64Tensor, k: F64Tensor, v: F64Tensor) throws -> Activations {
        // The observer sees q, k and v, not a node's sink weights: a sink layer's reference is out of reach here.
        if a.sinks { throw TuneError("attune tune does not tune attention with sinks yet (its sink logits are weights the tuner does not see)") }
        var p = AttentionProblem(qHeads: a.heads, kvHeads: a.kvHeads, qLen: q.shape[0], kvLen: k.shape[0], qkDim: a.headDim,
                                 vDim: a.vHeadDim, scale: Float(a.scale), causal: a.causal, window: a.window, softcap: a.softcap)
        p.addModifiers(of: a)
        func heads(_ x: F64Tensor, _ h: Int) -> [Double] {
            let rows = x.shape[0], d = x.shape[1] / h
            var o = [Double](repeating: 0, count: x.data.count)
            for hh in 0..<h { for r in 0..<rows { for c in 0..<d { o[(hh * rows + r) * d + c] = x.data[r * x.shape[1] + hh * d + c] } } }
            return o
        }
        let qh = heads(q, a.heads), kh = heads(k, a.kvHeads), vh = heads(v, a.kvHeads)
        let ref = ReferenceAttentionProblem(qHeads: a.heads, kvHeads: a.kvHeads, qLen: p.qLen, kvLen: p.kvLen, qkDim: a.headDim,
                                            vDim: a.vHeadDim, scale: a.scale, causal: a.causal, window: a.window, softcap: a.softcap,
                                            alibiSlopes: p.alibiSlopes?.map(Double.init))
        let o = try ReferenceAttention.softmax(ref, q: qh, k: kh, v: vh).o
        return Activations(attrs: a, problem: p, q: Tensor(shape: p.qShape, data: qh.map(Float.init)),
                           k: Tensor(shape: p.kShape, data: kh.map(Float.init)), v: Tensor(shape: p.vShape, data: vh.map(Float.init)),
                           reference: o)
    }

    /// `decode`: for decode steps, so kernels keeping their own K/V store are not candidates.
    func choose(layer: Int, _ x: Activations, phi: [Double]?, decode: Bool = false) throws -> LayerChoice {
        let flash = KernelRegistry.exactDefault
        func time(_ kernel: any AttentionKernel, _ params: KernelParameters) throws -> Double {
            let t0 = DispatchTime.now().uptimeNanoseconds
            _ = try kernel.run(x.problem, q: x.q, k: x.k, v: x.v, parameters: params)
            return Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e6
        }
        // A/A: flash against itself.
        _ = try time(flash, [:])
        var aa: [Double] = []
        for _ in 0..<pairs { aa.append(try time(flash, [:]) / time(flash, [:])) }
        aa.sort()
        let noise = (aa[(3 * aa.count) / 4] - aa[aa.count / 4]) / 2 + abs(aa[aa.count / 2] - 1)

        var best = LayerChoice(layer: layer, choice: KernelChoice(kernel: flash.name), speedup: 1, relL1: 0, cosine: 1, rejected: [], noise: noise)
        var rejected: [(String, Double)] = []
        for choice in candidates where choice.kernel != flash.name {
            guard let kernel = try? KernelRegistry.kernel(named: choice.kernel), kernel.normalizer == .softmax,
                  kernel.cInvocation([:]) != nil || (kernel is any KVStoreKernel && !decode), !kernel.linksLayers,
                  kernel.unsupportedReasons(x.problem).isEmpty else { continue }
            var params = choice.parameters
            if let table = kernel.calibratedTable, params[table] == nil, let phi { params[table] = phi.sorted()[phi.count / 2] }
            let out = try kernel.run(x.problem, q: x.q, k: x.k, v: x.v, parameters: params)
            let m = ErrorMetrics.compare(out.o.data, x.reference)
            guard m.nanCount == 0, m.relL1 <= budget else { rejected.append((choice.description, m.relL1)); continue }
            _ = try time(kernel, params)
            var ratios: [Double] = []
            for _ in 0..<pairs { ratios.append(try time(flash, [:]) / time(kernel, params)) }
            let speedup = ratios.sorted()[ratios.count / 2]
            if speedup > best.speedup, speedup - 1 > noise {
                best = LayerChoice(layer: layer, choice: choice, speedup: speedup, relL1: m.relL1, cosine: m.cosine, rejected: [], noise: noise)
            }
        }
        if best.choice.kernel == flash.name {
            let m = ErrorMetrics.compare(try flash.run(x.problem, q: x.q, k: x.k, v: x.v).o.data, x.reference)
            best.relL1 = m.relL1
            best.cosine = m.cosine
        }
        best.rejected = rejected
        return best
    }
}
