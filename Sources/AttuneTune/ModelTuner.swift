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
/// 5. End to end: the dense compile and the tuned compile prefill every calibration
///    sequence; max logit error, KL and top-1 agreement (of prefill: the decode choices
///    are held to the per-layer budget only).
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
        public var comparison: LogitComparison
        public var quality: ModelQuality
        public var denseMs: Double
        public var tunedMs: Double
        public var overrides: KernelOverrides
        /// Layers whose choice went back to flash to meet the model budgets, in that order.
        public var reverted: [Int] = []
        /// What the choice was measured to cost and gain, stored in the policy file.
        public var evidence: [String: Any] = [:]

        /// The choices as an attention policy file (`--attention-policy`), with the evidence.
        public var policyJSON: Data { Self.policyJSON(layers, evidence: evidence) }

        static func policyJSON(_ layers: [LayerChoice], evidence: [String: Any]) -> Data {
            let layersObject = Dictionary(uniqueKeysWithValues: layers.map { (String($0.layer), $0.choice.description) })
            var object: [String: Any] = ["default": "flash", "layers": layersObject, "evidence": evidence]
            let decode = layers.compactMap { c in c.decode.map { (String(c.layer), $0.description) } }
            if !decode.isEmpty { object["decode"] = ["layers": Dictionary(uniqueKeysWithValues: decode)] }
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

    public init(budget: Double, candidates: [KernelChoice]) {
        self.budget = budget
        self.candidates = candidates
    }

    public func tune(_ model: LoadedModel, sequences: [[Int32]], toolchain: Toolchain) throws -> Result {
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

        var overrides = KernelOverrides(global: KernelChoice(kernel: "flash"))
        for c in layers { (overrides.byLayer[c.layer], overrides.decodeByLayer[c.layer]) = (c.choice, c.decode) }
        let context = max(16, sequences.map(\.count).max()!)
        let dense = try CompiledModel(artifacts: try ModelCompiler.compile(model, CompileOptions(maxContext: context), toolchain: toolchain))
        func evaluate() throws -> (LogitComparison, ModelQuality, Double, Double) {
            let tuned = try CompiledModel(artifacts: try ModelCompiler.compile(
                model, CompileOptions(kernels: overrides, maxContext: context, calibration: (calibration, "(attune tune)")), toolchain: toolchain))
            return try Self.compare(dense: dense, tuned: tuned, sequences: sequences)
        }
        var (comparison, quality, denseMs, tunedMs) = try evaluate()
        let reverted = try Self.enforce(modelBudgets, layers: &layers, quality: quality, reporter: reporter) { layers in
            for c in layers { (overrides.byLayer[c.layer], overrides.decodeByLayer[c.layer]) = (c.choice, c.decode) }
            (comparison, quality, denseMs, tunedMs) = try evaluate()
            return quality
        }
        var result = Result(layers: layers, calibration: calibration, comparison: comparison, quality: quality,
                            denseMs: denseMs, tunedMs: tunedMs, overrides: overrides, reverted: reverted)
        result.evidence = [
            "budgets": ["rel_l1=\(budget)"] + modelBudgets.map(\.description),
            "kl_mean": quality.meanKL, "kl_max": quality.maxKL, "top1_agreement": quality.top1Agreement,
            "perplexity_ratio": quality.perplexityRatio, "max_logit_error": quality.maxAbs,
            "speedup": denseMs / tunedMs, "positions": quality.positions,
            "data": Self.dataHash(sequences), "reverted_layers": reverted,
            "created": ISO8601DateFormatter().string(from: Date()),
        ]
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
              let worst = layers.indices.filter({ layers[$0].choice.kernel != "flash" }).max(by: { layers[$0].relL1 < layers[$1].relL1 }) {
            let old = layers[worst]
            reporter.note("\(failed) not met (KL \(String(format: "%.3e", quality.meanKL)), perplexity ×\(String(format: "%.5f", quality.perplexityRatio)), "
                          + "top-1 \(String(format: "%.4f", quality.top1Agreement))): layer \(old.layer) (\(old.choice)) back to flash")
            reverted.append(old.layer)
            layers[worst] = LayerChoice(layer: old.layer, choice: KernelChoice(kernel: "flash"), speedup: 1, relL1: 0, cosine: 1,
                                        rejected: old.rejected + [(old.choice.description, old.relL1)], noise: old.noise)
            quality = try evaluate(layers)
        }
        return reverted
    }

    /// Dense and tuned compiles prefill every sequence three times, alternating (the
    /// timings share the machine's state); logits of the last run are compared.
    static func compare(dense: CompiledModel, tuned: CompiledModel, sequences: [[Int32]]) throws -> (LogitComparison, ModelQuality, Double, Double) {
        var parts: [LogitComparison] = []
        var denseMs: [Double] = [], tunedMs: [Double] = []
        var nllDense = 0.0, nllTuned = 0.0, predictions = 0
        for tokens in sequences {
            var a: [Float] = [], b: [Float] = []
            for _ in 0..<3 {
                dense.reset(); tuned.reset()
                let t0 = Date(); a = try dense.prefill(tokens); denseMs.append(Date().timeIntervalSince(t0) * 1e3)
                let t1 = Date(); b = try tuned.prefill(tokens); tunedMs.append(Date().timeIntervalSince(t1) * 1e3)
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
        return (c, quality, denseMs.sorted()[denseMs.count / 2], tunedMs.sorted()[tunedMs.count / 2])
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
        let p = AttentionProblem(qHeads: a.heads, kvHeads: a.kvHeads, qLen: q.shape[0], kvLen: k.shape[0], qkDim: a.headDim,
                                 vDim: a.vHeadDim, scale: Float(a.scale), causal: a.causal, window: a.window, softcap: a.softcap)
        func heads(_ x: F64Tensor, _ h: Int) -> [Double] {
            let rows = x.shape[0], d = x.shape[1] / h
            var o = [Double](repeating: 0, count: x.data.count)
            for hh in 0..<h { for r in 0..<rows { for c in 0..<d { o[(hh * rows + r) * d + c] = x.data[r * x.shape[1] + hh * d + c] } } }
            return o
        }
        let qh = heads(q, a.heads), kh = heads(k, a.kvHeads), vh = heads(v, a.kvHeads)
        let ref = ReferenceAttentionProblem(qHeads: a.heads, kvHeads: a.kvHeads, qLen: p.qLen, kvLen: p.kvLen, qkDim: a.headDim,
                                            vDim: a.vHeadDim, scale: a.scale, causal: a.causal, window: a.window, softcap: a.softcap)
        let o = try ReferenceAttention.softmax(ref, q: qh, k: kh, v: vh).o
        return Activations(attrs: a, problem: p, q: Tensor(shape: p.qShape, data: qh.map(Float.init)),
                           k: Tensor(shape: p.kShape, data: kh.map(Float.init)), v: Tensor(shape: p.vShape, data: vh.map(Float.init)),
                           reference: o)
    }

    /// `decode`: for decode steps, so kernels keeping their own K/V store are not candidates.
    func choose(layer: Int, _ x: Activations, phi: [Double]?, decode: Bool = false) throws -> LayerChoice {
        let flash = FlashKernel()
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

        var best = LayerChoice(layer: layer, choice: KernelChoice(kernel: "flash"), speedup: 1, relL1: 0, cosine: 1, rejected: [], noise: noise)
        var rejected: [(String, Double)] = []
        for choice in candidates where choice.kernel != "flash" {
            guard let kernel = try? KernelRegistry.kernel(named: choice.kernel), kernel.normalizer == .softmax,
                  kernel.cInvocation([:]) != nil || (kernel is any KVStoreKernel && !decode), !kernel.linksLayers,
                  kernel.unsupportedReasons(x.problem).isEmpty else { continue }
            var params = choice.parameters
            if kernel.name == "unified_max", params["phi"] == nil, let phi { params["phi"] = phi.sorted()[phi.count / 2] }
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
        if best.choice.kernel == "flash" {
            let m = ErrorMetrics.compare(try flash.run(x.problem, q: x.q, k: x.k, v: x.v).o.data, x.reference)
            best.relL1 = m.relL1
            best.cosine = m.cosine
        }
        best.rejected = rejected
        return best
    }
}
