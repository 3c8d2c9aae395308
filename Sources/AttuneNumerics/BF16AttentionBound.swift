// The error bound of softmax attention computed on bf16 operands (the kernels'
// `precision=bf16`), against the exact (float64) result. Derivation in
// Docs/NUMERICS.md, "bf16 attention tiles".

import Foundation

/// Per-element bounds of |O_bf16 - O| and |LSE_bf16 - LSE| for one problem and its inputs.
///
/// Model of the kernel: every operand of Q·Kᵀ (q scaled by scale·log2 e, k) and of P·V
/// (p = 2^(s − m), v) is rounded to bf16 (8 significant bits, round to nearest: relative
/// error ≤ u = 2⁻⁸); products of two bf16 values are exact in f32 and summed in f32; the
/// softmax state, the row sum l (of the unrounded p) and the division are f32. Then, with
/// `E` the largest error of one of the row's base-2 scores,
///
///     E    ≤ (2u + u² + d·2⁻²⁴) · max_j Σ_d |q'_d k_jd|          (q' = q · scale · log2 e)
///     |Õ_c − O_c| ≤ ((2^(2E) − 1) + (2u + u²) · 2^(2E)) · Σ_j w_j |v_jc|  + f32 rounding
///     |LSẼ − LSE| ≤ ln 2 · E                                      + f32 rounding
///
/// where w_j are the exact softmax weights of the row (each weight moves by a factor in
/// [2^(−2E), 2^(2E)] when every score moves by at most E; rounding p and v adds 2u + u²).
/// flash's fused bf16 softmax step computes p with a shorter exp2 (relative error ≤ ε =
/// 4.3e-5, in the numerator and in l alike): 2^(2E) becomes 2^(2E)(1 + 2ε), and the LSE
/// gains ε.
/// The f32 terms are those the exact kernels are held to (1e-5 relative, Docs/NUMERICS.md).
public enum BF16AttentionBound {
    /// Unit roundoff of bf16 (8 significant bits, round to nearest even).
    public static let unitRoundoff = 0x1p-8
    /// f32 arithmetic outside the bf16 roundings: the exact kernels' own tolerance.
    static let f32Relative = 1e-5
    /// Relative error of the bf16 softmax step's exp2 (degree-4 polynomial, attention_tiles_bf16.h).
    public static let expError = 4.3e-5

    public static func bound(_ p: ReferenceAttentionProblem, q: [Double], k: [Double], v: [Double]) throws
        -> (o: [Double], lse: [Double]) {
        let log2e = 1.4426950408889634
        let perProduct = 2 * unitRoundoff + unitRoundoff * unitRoundoff + Double(p.qkDim) * 0x1p-24
        return try propagate(p, q: q, k: k, v: v) { row, kv, visible in
            var magnitude = 0.0
            for j in visible {
                var a = 0.0
                for d in 0..<p.qkDim { a += abs(q[row * p.qkDim + d] * p.scale * log2e * k[(kv * p.kvLen + j) * p.qkDim + d]) }
                magnitude = max(magnitude, a)
            }
            return perProduct * magnitude
        }
    }

    /// The bounds of O and LSE when every visible base-2 score of row `row` (of kv head
    /// `kv`, flat batch × kv head) is off by at most `scoreError(row, kv, visible keys)` and
    /// P.V runs on bf16 p and v (the derivation above): shared by the bf16 tiles and the
    /// int8 Q·Kᵀ tiles (Int8QKAttentionBound), which differ only in their score error.
    static func propagate(_ p: ReferenceAttentionProblem, q: [Double], k: [Double], v: [Double],
                          scoreError: (_ row: Int, _ kv: Int, _ visible: [Int]) -> Double) throws
        -> (o: [Double], lse: [Double]) {
        let exact = try ReferenceAttention.softmax(p, q: q, k: k, v: v)
        let u = unitRoundoff
        var o = [Double](repeating: 0, count: p.oCount)
        var lse = [Double](repeating: 0, count: p.lseCount)
        let group = p.qHeads / p.kvHeads, off = p.resolvedQOffset
        for b in 0..<p.batch {
            for h in 0..<p.qHeads {
                let kv = b * p.kvHeads + h / group
                for i in 0..<p.qLen {
                    let row = (b * p.qHeads + h) * p.qLen + i
                    let visible = (0..<p.kvLen).filter {
                        ReferenceAttention.isVisible(key: $0, queryPosition: off + i, causal: p.causal, window: p.window)
                    }
                    guard !visible.isEmpty else { continue }
                    let scores = visible.map { j in
                        (0..<p.qkDim).reduce(0.0) { $0 + q[row * p.qkDim + $1] * p.scale * k[(kv * p.kvLen + j) * p.qkDim + $1] }
                    }
                    let e = scoreError(row, kv, visible)
                    let m = scores.max()!
                    let weights = scores.map { exp($0 - m) }
                    let total = weights.reduce(0, +)
                    let g = exp2(2 * e) * (1 + 2 * expError)
                    let factor = (g - 1) + (2 * u + u * u) * g
                    for c in 0..<p.vDim {
                        var spread = 0.0
                        for (n, j) in visible.enumerated() { spread += weights[n] / total * abs(v[(kv * p.kvLen + j) * p.vDim + c]) }
                        o[row * p.vDim + c] = (factor + f32Relative) * spread + 1e-7
                    }
                    lse[row] = log(2) * e + expError + f32Relative * max(1, abs(exact.lse[row]))
                }
            }
        }
        return (o, lse)
    }

    /// Sigmoid attention `O = Σ_j σ(scale q·k_j + bias) v_j` (`ReferenceAttention.sigmoid`) on
    /// bf16 operands: a score off by E_j (base 2; the bias is added in f32) moves σ by at
    /// most ln 2 · E_j / 4 (σ' ≤ 1/4), and rounding p and v adds 2u + u²:
    ///
    ///     |Õ_c − O_c| ≤ Σ_j ((ln 2 / 4) E_j (1 + 2u + u²) + (2u + u²) σ_j) |v_jc|  + f32 rounding
    public static func sigmoid(_ p: ReferenceAttentionProblem, bias: Double, q: [Double], k: [Double], v: [Double]) throws -> [Double] {
        _ = try ReferenceAttention.sigmoid(p, bias: bias, q: q, k: k, v: v)  // validates shapes
        let u = unitRoundoff, log2e = 1.4426950408889634, r = 2 * u + u * u
        let perProduct = r + Double(p.qkDim) * 0x1p-24
        var o = [Double](repeating: 0, count: p.oCount)
        let group = p.qHeads / p.kvHeads, off = p.resolvedQOffset
        for b in 0..<p.batch {
            for h in 0..<p.qHeads {
                let kv = b * p.kvHeads + h / group
                for i in 0..<p.qLen {
                    let row = (b * p.qHeads + h) * p.qLen + i
                    for j in 0..<p.kvLen where ReferenceAttention.isVisible(key: j, queryPosition: off + i, causal: p.causal, window: p.window) {
                        var a = 0.0, s = 0.0
                        for d in 0..<p.qkDim {
                            let x = q[row * p.qkDim + d] * p.scale, y = k[(kv * p.kvLen + j) * p.qkDim + d]
                            a += abs(x * log2e * y)
                            s += x * y
                        }
                        let sigma = 1 / (1 + exp(-(s + bias)))
                        let weight = log(2) / 4 * perProduct * a * (1 + r) + (r + f32Relative) * sigma
                        for c in 0..<p.vDim { o[row * p.vDim + c] += weight * abs(v[(kv * p.kvLen + j) * p.vDim + c]) }
                    }
                    for c in 0..<p.vDim { o[row * p.vDim + c] += 1e-6 }
                }
            }
        }
        return o
    }
}
