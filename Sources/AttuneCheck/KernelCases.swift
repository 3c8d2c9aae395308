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
    /// Written into K/V rows no query may see (their future), to prove they stay unread.
    public var poison: Float? = nil
    public var seed: UInt64 = 1

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
    ]

    /// Seeded N(0, 1) inputs; batches share their first half of K/V (a shared prompt, which
    /// prefix_shared needs and no other kernel minds); poison past the last query's position.
    public func inputs() -> (q: Tensor, k: Tensor, v: Tensor) {
        let p = problem
        var rng = SeededNormal(seed: seed)
        func draw(_ shape: [Int], scale: Float = 1) -> Tensor {
            Tensor(shape: shape, data: (0..<shape.reduce(1, *)).map { _ in Float(rng.next()) * scale })
        }
        let q = draw(p.qShape, scale: qScale)
        var k = draw(p.kShape), v = draw(p.vShape)
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
}

enum KernelCheck {
    /// The float64 reference of `kernel`'s semantics (softmax or sigmoid with `bias`).
    static func reference(_ kernel: any AttentionKernel, _ p: AttentionProblem, _ x: (q: Tensor, k: Tensor, v: Tensor),
                          bias: Double) throws -> [Double] {
        let r = ReferenceAttentionProblem(batch: p.batch, qHeads: p.qHeads, kvHeads: p.kvHeads, qLen: p.qLen, kvLen: p.kvLen,
                                          qkDim: p.qkDim, vDim: p.vDim, scale: Double(p.resolvedScale), causal: p.causal,
                                          qOffset: p.qOffset, window: p.window, softcap: p.softcap)
        let q = x.q.data.map(Double.init), k = x.k.data.map(Double.init), v = x.v.data.map(Double.init)
        switch kernel.normalizer {
        case .softmax: return try ReferenceAttention.softmax(r, q: q, k: k, v: v).o
        case .sigmoid: return try ReferenceAttention.sigmoid(r, bias: bias, q: q, k: k, v: v)
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
                 "nan_mismatch": Double(m.nanMismatch)], rows)
    }

    /// The parameters the suite runs `kernel` with: its defaults, plus what it needs to run
    /// at all (prefix_shared's prefix length, sigmoid's bias).
    static func parameters(_ kernel: any AttentionKernel, _ p: AttentionProblem) -> KernelParameters {
        switch kernel.name {
        case "prefix_shared": return ["prefix_len": Double(max(1, min(p.kvLen / 2, p.resolvedQOffset + 1)))]
        case "sigmoid": return ["bias": -4]
        default: return [:]
        }
    }

    /// The kernel accepts the problem with the suite's parameters. prefix_shared's own
    /// conditions (a prefix every query sees, no window) depend on its parameter.
    static func supports(_ kernel: any AttentionKernel, _ p: AttentionProblem) -> Bool {
        guard kernel.unsupportedReasons(p).isEmpty else { return false }
        if kernel.name == "prefix_shared" { return p.window == nil && p.resolvedQOffset >= 0 && p.kvLen >= 2 }
        return true
    }

    /// Variants of a kernel the suite also runs, beyond its defaults: `precision=bf16` for
    /// kernels with bf16 prefill tiles (approximate, held to the bf16 bound).
    static func variants(_ kernel: any AttentionKernel) -> [KernelParameters] {
        kernel.parameters.contains { $0.name == "precision" } ? [["precision": 1]] : []
    }

    /// `flash:precision=bf16`: the case name of a variant.
    static func label(_ kernel: any AttentionKernel, _ variant: KernelParameters) -> String {
        variant.isEmpty ? kernel.name
            : kernel.name + ":" + variant.keys.sorted().map { "\($0)=\(kernel.describeValue($0, variant[$0]!))" }.joined(separator: ",")
    }

    static func run(_ kernel: any AttentionKernel, _ c: KernelProblem, variant: KernelParameters = [:],
                    breakOutput: Bool) throws -> KernelResult {
        let x = c.inputs()
        let params = parameters(kernel, c.problem).merging(variant) { $1 }
        var out = try kernel.run(c.problem, q: x.q, k: x.k, v: x.v, parameters: params)
        // The test-only switch (`ATTUNE_CHECK_BREAK_KERNEL`): a kernel made wrong on purpose,
        // to prove the check notices.
        if breakOutput, !out.o.data.isEmpty { out.o.data[out.o.data.count / 2] += 0.05 }
        let ref = try reference(kernel, c.problem, x, bias: params["bias"] ?? 0)
        var (metrics, rows) = compare(out.o.data, ref, c.problem)
        // BF16AttentionBound is derived for uncapped scores: a capped problem has the metrics above only.
        if params["precision"] == 1, kernel.isExact, c.problem.softcap == nil {
            metrics["bf16_bound_ratio"] = try bf16BoundRatio(c.problem, x, out, sigmoidBias: kernel.normalizer == .sigmoid ? params["bias"] ?? 0 : nil)
        }
        return KernelResult(metrics: metrics, rowError: rows, stats: out.stats)
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
        let exact = try ReferenceAttention.softmax(r, q: q, k: k, v: v)
        let bound = try BF16AttentionBound.bound(r, q: q, k: k, v: v)
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
