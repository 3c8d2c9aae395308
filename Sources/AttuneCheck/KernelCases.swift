import AttuneBench
import AttuneKernels
import AttuneNumerics
import AttuneTensor
import Foundation

/// One attention problem of the built-in suite, with how its inputs are made.
public struct KernelProblem: Sendable {
    public var name: String
    public var problem: AttentionProblem
    /// Multiplies Q (large scores: |scale q·k| in the hundreds).
    public var qScale: Float = 1
    /// Multiplies K (with `qScale`: |q·k| in the thousands at large head dims).
    public var kScale: Float = 1
    /// Written into K/V rows no query may see (their future), to prove they stay unread.
    public var poison: Float? = nil
    public var seed: UInt64 = 1
    /// Inputs from `StructuredAttention` with these knobs (attention shaped like a trained
    /// model's: what the approximate kernels are for) instead of N(0, 1).
    public var structured: StructuredAttention.Knobs? = nil
    /// Set for every kernel that has a parameter of that name (e.g. a forced KV split).
    public var parameters: KernelParameters = [:]

    /// The edge cases of TESTING.md, fixed and seeded: decode and prefill, GQA/MQA/MHA,
    /// odd and unequal head dims, masks, windows, rows that see nothing, poisoned masked
    /// keys, huge scores, tile-boundary lengths.
    public static let suite: [KernelProblem] = [
        .init(name: "decode-gqa", problem: .init(qHeads: 8, kvHeads: 2, qLen: 1, kvLen: 1000, qkDim: 128, causal: true)),
        .init(name: "decode-mqa-long", problem: .init(qHeads: 8, kvHeads: 1, qLen: 1, kvLen: 4099, qkDim: 64, causal: true)),
        .init(name: "prefill-causal", problem: .init(qHeads: 4, kvHeads: 2, qLen: 300, kvLen: 300, qkDim: 64, causal: true)),
        .init(name: "chunk-mha-tile-edge", problem: .init(qHeads: 2, qLen: 33, kvLen: 257, qkDim: 96, causal: true)),
        .init(name: "odd-dims-full", problem: .init(qHeads: 3, qLen: 17, kvLen: 45, qkDim: 80, vDim: 48)),
        .init(name: "window", problem: .init(qHeads: 4, kvHeads: 2, qLen: 64, kvLen: 200, qkDim: 64, causal: true, window: 32)),
        .init(name: "rows-before-keys", problem: .init(qHeads: 2, qLen: 20, kvLen: 100, qkDim: 64, causal: true, qOffset: -5)),
        .init(name: "poison-future", problem: .init(qHeads: 4, kvHeads: 2, qLen: 16, kvLen: 400, qkDim: 64, causal: true, qOffset: 150), poison: .nan),
        .init(name: "large-scores", problem: .init(qHeads: 4, kvHeads: 2, qLen: 1, kvLen: 600, qkDim: 64, causal: true), qScale: 30),
        .init(name: "batch2-shared-prefix", problem: .init(batch: 2, qHeads: 4, kvHeads: 2, qLen: 1, kvLen: 500, qkDim: 64, causal: true)),
        // Gemma 2's soft-capped scores (Q × 4 so the cap of 5 bends them): flash only, the
        // other kernels refuse it.
        .init(name: "softcap", problem: .init(qHeads: 4, kvHeads: 2, qLen: 48, kvLen: 300, qkDim: 64, causal: true, window: 200, softcap: 5),
              qScale: 4),
    ] + fieldCases + structuredCases

    /// Edge cases reported from the field (issue 15 item 5). Rows that see no key: the ABI
    /// gives O = 0 and LSE = −inf (KERNELS.md), asserted by `empty_row_nonzero`; the
    /// problem has no bias input, so empty rows come from masks: a window that slid past the
    /// last key (rows at the end) and a chunk wholly before the first key. |q·k| ≈ 1e4 at
    /// head dim 256 (scores ≈ 625 after scaling: exp would overflow fp32 without the row max).
    /// Decode over KV lengths 0, 1, tile − 1, tile + 1 (prime), a prime past the split size,
    /// each forced through a 3-way KV split. GQA ratios 1, 2, 3, 4, 8 under a sliding window.
    /// ALiBi (standard slopes; 6 and 12 q heads take the non-power-of-two rule) and attention
    /// sinks (a sink near a row's log-mass, so it takes a real share), in prefill, decode
    /// through a 3-way split (a sink counted once), and rows that see only the sink. Masks:
    /// packed documents (a one-key document, boundaries inside tiles) in prefill and split
    /// decode, interleaved document ids (holes inside tiles), and a random block bitmask
    /// whose cleared q blocks leave rows with no key.
    static let fieldCases: [KernelProblem] = [
        .init(name: "alibi", problem: .init(qHeads: 6, kvHeads: 2, qLen: 48, kvLen: 300, qkDim: 64, causal: true,
                                            alibiSlopes: AttentionProblem.standardALiBiSlopes(heads: 6))),
        .init(name: "alibi-decode-split3", problem: .init(qHeads: 12, kvHeads: 4, qLen: 1, kvLen: 1031, qkDim: 64, causal: true,
                                                          alibiSlopes: AttentionProblem.standardALiBiSlopes(heads: 12)),
              parameters: ["kv_splits": 3]),
        .init(name: "sinks-window", problem: .init(qHeads: 4, kvHeads: 2, qLen: 48, kvLen: 300, qkDim: 64, causal: true, window: 64,
                                                   sinks: [4, 5, 3, 4.5])),
        .init(name: "sinks-decode-split3", problem: .init(qHeads: 8, kvHeads: 2, qLen: 1, kvLen: 1031, qkDim: 64, causal: true,
                                                          sinks: [6, 7, 5, 6.5, 8, 6, 7, 5])),
        .init(name: "sinks-empty-rows", problem: .init(qHeads: 2, kvHeads: 1, qLen: 8, kvLen: 40, qkDim: 64, causal: true, qOffset: -5,
                                                       alibiSlopes: [0.5, 0.25], sinks: [1, -2])),
        .init(name: "documents", problem: masked(.init(qHeads: 6, kvHeads: 2, qLen: 300, kvLen: 300, qkDim: 64, causal: true),
                                                 lengths: [70, 1, 129, 100])),
        .init(name: "documents-decode-split3", problem: masked(.init(qHeads: 8, kvHeads: 2, qLen: 1, kvLen: 1031, qkDim: 64, causal: true),
                                                               lengths: [500, 531]),
              parameters: ["kv_splits": 3]),
        .init(name: "documents-interleaved", problem: masked(.init(qHeads: 4, kvHeads: 2, qLen: 48, kvLen: 300, qkDim: 64, causal: true),
                                                             ids: { Int32($0 / 5 % 3) })),
        .init(name: "block-mask-empty-rows", problem: masked(.init(qHeads: 4, kvHeads: 1, qLen: 256, kvLen: 256, qkDim: 64, causal: true),
                                                             bits: BlockMask.random(block: 32, kvLen: 256, density: 0.4, seed: 3))),
        .init(name: "empty-rows-window-end", problem: .init(qHeads: 2, qLen: 16, kvLen: 64, qkDim: 64, qOffset: 60, window: 8)),
        .init(name: "empty-rows-all", problem: .init(qHeads: 2, kvHeads: 1, qLen: 8, kvLen: 40, qkDim: 64, causal: true, qOffset: -9)),
        .init(name: "qk-1e4-d256", problem: .init(qHeads: 2, kvHeads: 1, qLen: 24, kvLen: 200, qkDim: 256, causal: true), qScale: 25, kScale: 25),
        .init(name: "qk-1e4-d256-decode", problem: .init(qHeads: 4, kvHeads: 1, qLen: 1, kvLen: 700, qkDim: 256, causal: true), qScale: 25, kScale: 25),
    ] + [0, 1, 255, 257, 1031].map { kv in
        .init(name: "decode-kv\(kv)-split3", problem: .init(qHeads: 4, kvHeads: 2, qLen: 1, kvLen: kv, qkDim: 64, causal: true),
              parameters: ["kv_splits": 3])
    } + [(8, 8), (8, 4), (6, 2), (8, 2), (8, 1)].map { (hq, hkv) in
        .init(name: "gqa\(hq / hkv)-window", problem: .init(qHeads: hq, kvHeads: hkv, qLen: 24, kvLen: 150, qkDim: 64, causal: true, window: 40))
    }

    /// `p` with packed documents of these lengths, ids from a rule, or a block bitmask.
    static func masked(_ p: AttentionProblem, lengths: [Int]? = nil, ids: ((Int) -> Int32)? = nil,
                       bits: BlockMask? = nil) -> AttentionProblem {
        var p = p
        if let lengths { p.documentIDs = try! AttentionProblem.documentIDs(lengths: lengths, kvLen: p.kvLen) }
        if let ids { p.documentIDs = (0..<p.kvLen).map(ids) }
        p.blockMask = bits
        return p
    }

    /// Attention shaped like a trained model's (recency, sinks, heavy hitters): where the
    /// selection kernels' contracts apply. Decode over 4096 keys with kind-pure GQA groups
    /// (local, sink, heavy: a kv head's selection serves one kind, as kascade assumes), and
    /// a causal prefill with every kind (diffuse heads included) for sparge.
    static let structuredCases: [KernelProblem] = {
        var pure = StructuredAttention.Knobs()
        pure.kinds = [.local, .local, .local, .local, .sink, .sink, .sink, .sink, .heavy, .heavy, .heavy, .heavy]
        return [
            .init(name: "structured-decode", problem: .init(qHeads: 12, kvHeads: 3, qLen: 1, kvLen: 4096, qkDim: 128, causal: true),
                  seed: 42, structured: pure),
            .init(name: "structured-prefill", problem: .init(qHeads: 8, kvHeads: 2, qLen: 512, kvLen: 512, qkDim: 64, causal: true),
                  seed: 42, structured: StructuredAttention.Knobs()),
        ]
    }()

    /// Seeded N(0, 1) inputs; batches share their first half of K/V (a shared prompt, which
    /// prefix_shared needs and no other kernel minds); poison past the last query's position.
    public func inputs() -> (q: Tensor, k: Tensor, v: Tensor) {
        let p = problem
        if let structured {
            let x = StructuredAttention(p, seed: seed, knobs: structured)
            return (Tensor(shape: p.qShape, data: x.q), Tensor(shape: p.kShape, data: x.k), Tensor(shape: p.vShape, data: x.v))
        }
        var rng = SeededNormal(seed: seed)
        func draw(_ shape: [Int], scale: Float = 1) -> Tensor {
            Tensor(shape: shape, data: (0..<shape.reduce(1, *)).map { _ in Float(rng.next()) * scale })
        }
        let q = draw(p.qShape, scale: qScale)
        var k = draw(p.kShape, scale: kScale), v = draw(p.vShape)
        let prefix = p.kvLen / 2
        for b in 1..<max(p.batch, 1) {
            for g in 0..<p.kvHeads {
                for j in 0..<prefix {
                    for d in 0..<p.qkDim { k.data[((b * p.kvHeads + g) * p.kvLen + j) * p.qkDim + d] = k.data[(g * p.kvLen + j) * p.qkDim + d] }
                    for d in 0..<p.vDim { v.data[((b * p.kvHeads + g) * p.kvLen + j) * p.vDim + d] = v.data[(g * p.kvLen + j) * p.vDim + d] }
                }
            }
        }
        if let poison {
            let lastVisible = p.resolvedQOffset + p.qLen - 1
            for b in 0..<p.batch { for g in 0..<p.kvHeads { for j in max(0, lastVisible + 1)..<p.kvLen {
                for d in 0..<p.qkDim { k.data[((b * p.kvHeads + g) * p.kvLen + j) * p.qkDim + d] = poison }
                for d in 0..<p.vDim { v.data[((b * p.kvHeads + g) * p.kvLen + j) * p.vDim + d] = poison }
            } } }
        }
        return (q, k, v)
    }
}

/// A kernel's output against the float64 reference: the check's metrics, all "lower is
/// better", and the error of each query row (for the report's where-in-the-sequence plot).
public struct KernelResult: Sendable {
    public var metrics: [String: Double]
    public var rowError: [Double]
    public var stats: KernelRunStats
    public var contract: ContractVerdict
    /// The fp32 eager reference's own errors (`rmse`, `max_abs`, `rel_l1`).
    public var eager: [String: Double]
}

/// The test-only switch `ATTUNE_CHECK_BREAK_KERNEL`: `NAME` adds 0.05 to one output element
/// of that kernel (a bug a baseline catches); `NAME*S` multiplies its whole output by S (a
/// drift that `--update-baseline` would follow, which only the contracts catch).
public struct BreakSwitch: Sendable, Equatable {
    public var kernel: String
    public var scale: Float?

    public init?(_ text: String?) {
        guard let text, !text.isEmpty else { return nil }
        let parts = text.split(separator: "*", maxSplits: 1).map(String.init)
        kernel = parts[0]
        scale = parts.count == 2 ? Float(parts[1]) : nil
    }

    func apply(_ o: inout [Float]) {
        guard !o.isEmpty else { return }
        if let scale { for i in o.indices { o[i] *= scale } } else { o[o.count / 2] += 0.05 }
    }
}

enum KernelCheck {
    /// The float64 reference of `kernel`'s semantics (softmax or sigmoid with `bias`).
    static func reference(_ kernel: any AttentionKernel, _ p: AttentionProblem, _ x: (q: Tensor, k: Tensor, v: Tensor),
                          bias: Double) throws -> [Double] {
        var r = ReferenceAttentionProblem(batch: p.batch, qHeads: p.qHeads, kvHeads: p.kvHeads, qLen: p.qLen, kvLen: p.kvLen,
                                          qkDim: p.qkDim, vDim: p.vDim, scale: Double(p.resolvedScale), causal: p.causal,
                                          qOffset: p.qOffset, window: p.window, softcap: p.softcap,
                                          alibiSlopes: p.alibiSlopes?.map(Double.init), sinks: p.sinks?.map(Double.init))
        referenceMasks(p, &r)
        let q = x.q.data.map(Double.init), k = x.k.data.map(Double.init), v = x.v.data.map(Double.init)
        switch kernel.normalizer {
        case .softmax: return try ReferenceAttention.softmax(r, q: q, k: k, v: v).o
        case .sigmoid: return try ReferenceAttention.sigmoid(r, bias: bias, q: q, k: k, v: v)
        }
    }

    /// The problem's document ids and block bitmask in the reference's own terms (ids, a
    /// matrix of booleans).
    static func referenceMasks(_ p: AttentionProblem, _ r: inout ReferenceAttentionProblem) {
        r.documentIDs = p.documentIDs?.map(Int.init)
        if let m = p.blockMask {
            let nb = m.blocks(kvLen: p.kvLen)
            r.maskBlock = m.block
            r.blockMask = (0..<nb).map { qb in (0..<nb).map { kb in m.isSet(qb, kb, kvLen: p.kvLen) } }
        }
    }

    /// Metrics of `out` against `ref`: max_abs, rel_l1, 1 - cosine, nan_mismatch; and the
    /// largest error of every query row (over batches, heads and dims).
    static func compare(_ out: [Float], _ ref: [Double], _ p: AttentionProblem) -> (metrics: [String: Double], rows: [Double]) {
        let m = ErrorMetrics.compare(out, ref)
        var rows = [Double](repeating: 0, count: p.qLen)
        for b in 0..<p.batch { for h in 0..<p.qHeads { for i in 0..<p.qLen {
            let base = ((b * p.qHeads + h) * p.qLen + i) * p.vDim
            for d in 0..<p.vDim {
                let e = abs(Double(out[base + d]) - ref[base + d])
                rows[i] = max(rows[i], e.isNaN ? .infinity : e)
            }
        } } }
        let cosineGap = m.cosine.isFinite ? max(0, 1 - m.cosine) : 1
        return (["max_abs": m.maxAbs, "rel_l1": m.relL1.isFinite ? m.relL1 : (m.maxAbs == 0 ? 0 : 1), "cosine_gap": cosineGap,
                 "nan_mismatch": Double(m.nanMismatch), "nmse": AccuracyRules.nmse(out, ref)], rows)
    }

    /// The dynamo rule's metrics: RMSE of `out` and of plain fp32 attention against float64,
    /// and their ratio to the rule's bound (`rmse_ratio` ≤ 1 passes). `eager` holds the fp32
    /// eager reference's own max_abs and rel_l1 (what fp32 can achieve on this problem).
    static func dynamo(_ out: [Float], _ ref: [Double], _ p: AttentionProblem, _ x: (q: Tensor, k: Tensor, v: Tensor),
                       sigmoidBias: Float?, lowPrecision: Bool) -> (metrics: [String: Double], eager: [String: Double]) {
        let eager = EagerAttention.run(p, q: x.q.data, k: x.k.data, v: x.v.data, sigmoidBias: sigmoidBias)
        let result = AccuracyRules.rmse(out, ref), reach = AccuracyRules.rmse(eager, ref)
        let e = ErrorMetrics.compare(eager, ref)
        return (["rmse": result, "rmse_ratio": AccuracyRules.dynamoRatio(result: result, eager: reach, elements: ref.count, lowPrecision: lowPrecision)],
                ["rmse": reach, "max_abs": e.maxAbs, "rel_l1": e.relL1.isFinite ? e.relL1 : 0])
    }

    /// Output elements of rows that see no key which are not exactly 0, plus those rows'
    /// LSE entries that are not −inf, or the head's sink (softmax kernels): the ABI's
    /// empty-row convention.
    static func emptyRowViolations(_ out: AttentionOutput, _ p: AttentionProblem, softmax: Bool) -> Double {
        var bad = 0
        for b in 0..<p.batch { for h in 0..<p.qHeads { for i in 0..<p.qLen where EagerAttention.visibleKeys(p, row: i).isEmpty {
            let row = (b * p.qHeads + h) * p.qLen + i
            bad += out.o.data[(row * p.vDim)..<((row + 1) * p.vDim)].filter { $0 != 0 }.count
            let want = p.sinks?[h] ?? -.infinity
            if softmax, row < out.lse.data.count, !(out.lse.data[row] == want || abs(out.lse.data[row] - want) <= 1e-5 * max(1, abs(want))) { bad += 1 }
        } } }
        return Double(bad)
    }

    /// The parameters the suite runs `kernel` with: its defaults, plus what the kernel
    /// declares it needs on this problem (`AttentionKernel.suiteParameters`).
    static func parameters(_ kernel: any AttentionKernel, _ p: AttentionProblem) -> KernelParameters {
        kernel.suiteParameters(p) ?? [:]
    }

    /// The kernel accepts the problem, and the suite can choose its parameters for it
    /// (prefix_shared's prefix must be one every query sees).
    static func supports(_ kernel: any AttentionKernel, _ p: AttentionProblem) -> Bool {
        kernel.unsupportedReasons(p).isEmpty && kernel.suiteParameters(p) != nil
    }

    /// Variants of a kernel the suite also runs, beyond its defaults: `precision=bf16` for
    /// kernels with bf16 prefill tiles (approximate, held to the bf16 bound), and
    /// `precision=int8qk` for those with int8 Q·Kᵀ tiles (held to the int8qk bound).
    static func variants(_ kernel: any AttentionKernel) -> [KernelParameters] {
        guard let precision = kernel.parameters.first(where: { $0.name == "precision" }) else { return [] }
        return [["precision": 1]] + (precision.valueNames["int8qk"].map { [["precision": $0]] } ?? [])
    }

    /// `flash:precision=bf16`: the case name of a variant.
    static func label(_ kernel: any AttentionKernel, _ variant: KernelParameters) -> String {
        variant.isEmpty ? kernel.name
            : kernel.name + ":" + variant.keys.sorted().map { "\($0)=\(kernel.describeValue($0, variant[$0]!))" }.joined(separator: ",")
    }

    static func run(_ kernel: any AttentionKernel, _ c: KernelProblem, variant: KernelParameters = [:],
                    breakSwitch: BreakSwitch? = nil) throws -> KernelResult {
        let x = c.inputs()
        let caseParams = c.parameters.filter { name, _ in kernel.parameters.contains { $0.name == name } }
        let params = parameters(kernel, c.problem).merging(caseParams) { $1 }.merging(variant) { $1 }
        var out = try kernel.run(c.problem, q: x.q, k: x.k, v: x.v, parameters: params)
        // The test-only switch: a kernel made wrong on purpose, to prove the check notices.
        if let breakSwitch, breakSwitch.kernel == kernel.name { breakSwitch.apply(&out.o.data) }
        let ref = try reference(kernel, c.problem, x, bias: params["bias"] ?? 0)
        var (metrics, rows) = compare(out.o.data, ref, c.problem)
        let sigmoidBias = kernel.normalizer == .sigmoid ? Float(params["bias"] ?? 0) : nil
        let lowPrecision = (params["precision"] ?? 0) != 0
        let rule = dynamo(out.o.data, ref, c.problem, x, sigmoidBias: sigmoidBias, lowPrecision: lowPrecision)
        metrics["rmse"] = rule.metrics["rmse"]
        // dynamo compares a bf16 result with a bf16 eager run; the eager reference here is
        // fp32, so bf16 variants are judged by their derived bound instead.
        if !lowPrecision { metrics["rmse_ratio"] = rule.metrics["rmse_ratio"] }
        if (0..<c.problem.qLen).contains(where: { EagerAttention.visibleKeys(c.problem, row: $0).isEmpty }) {
            metrics["empty_row_nonzero"] = emptyRowViolations(out, c.problem, softmax: kernel.normalizer == .softmax)
        }
        // The bounds are derived for unmodified scores and the causal/window mask: a capped,
        // biased, sunk or document/block-masked problem has the metrics above only.
        if lowPrecision, kernel.isExact, c.problem.modifiers.isEmpty {
            if params["precision"] == 2 {
                metrics["int8qk_bound_ratio"] = try int8qkBoundRatio(c.problem, x, out)
            } else {
                metrics["bf16_bound_ratio"] = try bf16BoundRatio(c.problem, x, out, sigmoidBias: sigmoidBias.map(Double.init))
            }
        }
        let contract = KernelContracts.judge(kernel, variant: variant, problem: c.problem,
                                             inputs: .init(q: x.q.data.map(Double.init), k: x.k.data.map(Double.init),
                                                           v: x.v.data.map(Double.init), o: ref), metrics: metrics)
        if let ratio = contract.ratio { metrics["contract_ratio"] = ratio }
        return KernelResult(metrics: metrics, rowError: rows, stats: out.stats, contract: contract, eager: rule.eager)
    }

    /// The largest |error| / bound over O and LSE (softmax) with bf16 tiles
    /// (BF16AttentionBound): at most 1 when the kernel keeps the bound; NaN counts as over it.
    static func bf16BoundRatio(_ p: AttentionProblem, _ x: (q: Tensor, k: Tensor, v: Tensor), _ out: AttentionOutput,
                               sigmoidBias: Double?) throws -> Double {
        let r = ReferenceAttentionProblem(batch: p.batch, qHeads: p.qHeads, kvHeads: p.kvHeads, qLen: p.qLen, kvLen: p.kvLen,
                                          qkDim: p.qkDim, vDim: p.vDim, scale: Double(p.resolvedScale), causal: p.causal,
                                          qOffset: p.qOffset, window: p.window)
        let q = x.q.data.map(Double.init), k = x.k.data.map(Double.init), v = x.v.data.map(Double.init)
        if let bias = sigmoidBias {
            let exact = try ReferenceAttention.sigmoid(r, bias: bias, q: q, k: k, v: v)
            let bound = try BF16AttentionBound.sigmoid(r, bias: bias, q: q, k: k, v: v)
            let ratios = zip(out.o.data, zip(exact, bound)).map { abs(Double($0.0) - $0.1.0) / $0.1.1 }
            return ratios.contains { $0.isNaN } ? .infinity : ratios.max() ?? 0
        }
        return worstRatio(out, exact: try ReferenceAttention.softmax(r, q: q, k: k, v: v), bound: try BF16AttentionBound.bound(r, q: q, k: k, v: v))
    }

    /// The same with int8 Q·Kᵀ tiles (Int8QKAttentionBound), softmax only.
    static func int8qkBoundRatio(_ p: AttentionProblem, _ x: (q: Tensor, k: Tensor, v: Tensor), _ out: AttentionOutput) throws -> Double {
        let r = ReferenceAttentionProblem(batch: p.batch, qHeads: p.qHeads, kvHeads: p.kvHeads, qLen: p.qLen, kvLen: p.kvLen,
                                          qkDim: p.qkDim, vDim: p.vDim, scale: Double(p.resolvedScale), causal: p.causal,
                                          qOffset: p.qOffset, window: p.window)
        let q = x.q.data.map(Double.init), k = x.k.data.map(Double.init), v = x.v.data.map(Double.init)
        return worstRatio(out, exact: try ReferenceAttention.softmax(r, q: q, k: k, v: v), bound: try Int8QKAttentionBound.bound(r, q: q, k: k, v: v))
    }

    /// The largest |error| / bound over O and LSE; NaN counts as over it.
    static func worstRatio(_ out: AttentionOutput, exact: (o: [Double], lse: [Double]), bound: (o: [Double], lse: [Double])) -> Double {
        var worst = 0.0
        for (got, (want, limit)) in zip(out.o.data, zip(exact.o, bound.o)) where !(want.isNaN && got.isNaN) {
            worst = max(worst, abs(Double(got) - want) / limit)
        }
        for (got, (want, limit)) in zip(out.lse.data, zip(exact.lse, bound.lse)) where Double(got) != want {
            worst = max(worst, abs(Double(got) - want) / limit)
        }
        return worst.isNaN ? .infinity : worst
    }
}
