// The error bound of softmax attention with int8 Q·Kᵀ and bf16 P·V (flash's
// `precision=int8qk`), against the exact (float64) result. Derivation in
// Docs/NUMERICS.md, "int8 Q·Kᵀ tiles".

import Foundation

/// Per-element bounds of |O_int8qk − O| and |LSE_int8qk − LSE| for one problem and its inputs.
///
/// Model of the kernel (Kernels/attention_int8qk.h): q' = q · scale · log2 e per query row
/// is quantised with the row's scale s_q = max_d |q'_d| / 127; each key is smoothed,
/// k̃ = k − μ (μ the mean of the keys some query row sees, per batch × kv head), and
/// quantised with its own scale s_k = max_d |k̃_d| / 127; rounding to nearest moves each
/// element by at most half a step. The int32 dot product is exact and the term q'·μ is added
/// back in f32, so a base-2 score is off by at most
///
///     E_j ≤ (s_q / 2)(‖k̃_j‖₁ + d s_k / 2) + (s_k / 2) ‖q'‖₁  + (d + 3) 2⁻²⁴ Σ_d |q'_d| (|k_jd| + |μ_d|)
///
/// (|q̂k̂ − q'k̃| ≤ |q̂ − q'||k̂| + |q'||k̂ − k̃|; the last term is f32 arithmetic). With
/// E = max_j E_j over the row's visible keys, the rest is the bf16 tiles' propagation
/// (BF16AttentionBound: P and V rounded to bf16, the short exp2). The quantisation terms
/// carry 1 % slack for μ and the scales being computed in f32 here in float64.
///
/// This is a worst case (every rounding error aligned): typically the error is about
/// √d times smaller (Docs/NUMERICS.md gives measured figures).
public enum Int8QKAttentionBound {
    public static func bound(_ p: ReferenceAttentionProblem, q: [Double], k: [Double], v: [Double]) throws
        -> (o: [Double], lse: [Double]) {
        let d = p.qkDim, log2e = 1.4426950408889634, off = p.resolvedQOffset
        // The keys some query row sees: [lo, hi) of every batch × kv head.
        var lo = Int.max, hi = 0
        for i in 0..<p.qLen {
            let seen = (0..<p.kvLen).filter {
                ReferenceAttention.isVisible(key: $0, queryPosition: off + i, causal: p.causal, window: p.window)
            }
            if let first = seen.first, let last = seen.last { lo = min(lo, first); hi = max(hi, last + 1) }
        }
        var mean = [Double](repeating: 0, count: p.batch * p.kvHeads * d)
        for kv in 0..<(p.batch * p.kvHeads) where lo < hi {
            for j in lo..<hi { for c in 0..<d { mean[kv * d + c] += k[(kv * p.kvLen + j) * d + c] } }
            for c in 0..<d { mean[kv * d + c] /= Double(hi - lo) }
        }
        return try BF16AttentionBound.propagate(p, q: q, k: k, v: v) { row, kv, visible in
            let qs = (0..<d).map { q[row * d + $0] * p.scale * log2e }
            let sq = qs.map(abs).max()! / 127, q1 = qs.reduce(0) { $0 + abs($1) }
            var worst = 0.0
            for j in visible {
                var kmax = 0.0, k1 = 0.0, f32 = 0.0
                for c in 0..<d {
                    let x = k[(kv * p.kvLen + j) * d + c], mu = mean[kv * d + c]
                    kmax = max(kmax, abs(x - mu))
                    k1 += abs(x - mu)
                    f32 += abs(qs[c]) * (abs(x) + abs(mu))
                }
                let sk = kmax / 127
                let quantisation = sq / 2 * (k1 + Double(d) * sk / 2) + sk / 2 * q1
                worst = max(worst, 1.01 * quantisation + Double(d + 3) * 0x1p-24 * f32)
            }
            return worst
        }
    }
}
