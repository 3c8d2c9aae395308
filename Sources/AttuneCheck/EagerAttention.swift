import AttuneKernels
import Foundation

/// Plain fp32 attention, the textbook way: per row, every visible score as an fp32 dot
/// product, the row max, fp32 `exp`, an fp32 sum, and the weighted sum of V divided by it
/// (sigmoid: σ(score + bias) weights, no normaliser). It is the "same-dtype eager
/// reference" of PyTorch dynamo's accuracy rule: what fp32 arithmetic achieves on the
/// problem without any kernel cleverness (soft-capped scores: c·tanh(s/c), as Gemma 2; an
/// ALiBi bias m_h·(j − p) added after it, as BLOOM; a sink logit in the max and the sum,
/// as gpt-oss's eager_attention_forward), so a kernel is judged against its precision's
/// reach and not only against yesterday (Docs/NUMERICS.md, "Accuracy rules").
enum EagerAttention {
    static func run(_ p: AttentionProblem, q: [Float], k: [Float], v: [Float], sigmoidBias: Float?) -> [Float] {
        var o = [Float](repeating: 0, count: p.batch * p.qHeads * p.qLen * p.vDim)
        let group = p.qHeads / max(p.kvHeads, 1)
        let scale = p.resolvedScale
        var weights = [Float](repeating: 0, count: max(p.kvLen, 1))
        for b in 0..<p.batch { for h in 0..<p.qHeads {
            let kvBase = (b * p.kvHeads + h / group) * p.kvLen
            for i in 0..<p.qLen {
                let row = (b * p.qHeads + h) * p.qLen + i
                let keys = visibleKeys(p, row: i)
                guard !keys.isEmpty else { continue }  // no visible key: O = 0 (the ABI's convention)
                var m = -Float.infinity
                for j in keys {
                    var s: Float = 0
                    for d in 0..<p.qkDim { s += q[row * p.qkDim + d] * k[(kvBase + j) * p.qkDim + d] }
                    weights[j] = s * scale
                    if let cap = p.softcap { weights[j] = Float(cap) * tanhf(weights[j] / Float(cap)) }
                    if let slopes = p.alibiSlopes { weights[j] += slopes[h] * Float(j - (p.resolvedQOffset + i)) }
                    m = max(m, weights[j])
                }
                let sink = sigmoidBias == nil ? p.sinks?[h] : nil
                if let sink { m = max(m, sink) }
                var l: Float = sink.map { expf($0 - m) } ?? 0
                for j in keys {
                    if let bias = sigmoidBias {
                        weights[j] = 1 / (1 + expf(-(weights[j] + bias)))
                    } else {
                        weights[j] = expf(weights[j] - m)
                        l += weights[j]
                    }
                }
                let norm: Float = sigmoidBias == nil ? l : 1
                for d in 0..<p.vDim {
                    var acc: Float = 0
                    for j in keys { acc += weights[j] * v[(kvBase + j) * p.vDim + d] }
                    o[row * p.vDim + d] = acc / norm
                }
            }
        } }
        return o
    }

    /// The keys query row `i` sees: one interval (KERNELS.md's masking convention), less the
    /// keys the document and block masks hide.
    static func visibleKeys(_ p: AttentionProblem, row i: Int) -> [Int] {
        let pos = p.resolvedQOffset + i
        var lo = 0, hi = p.kvLen
        if p.causal { hi = min(hi, pos + 1) }
        if let w = p.window { lo = max(lo, pos - w + 1) }
        guard lo < hi else { return [] }
        return (lo..<hi).filter { p.masksLet(position: pos, see: $0) }
    }
}
