import AttuneBench
import AttuneKernels
import AttuneTensor

/// Tensors of N(0, 1) draws (`SeededNormal` lives in AttuneBench, shared with
/// `StructuredAttention`).
extension SeededNormal {
    mutating func tensor(_ shape: [Int], scale: Float = 1) -> Tensor {
        let n = shape.reduce(1, *)
        return Tensor(shape: shape, data: (0..<n).map { _ in Float(next()) * scale })
    }
}

import Foundation

/// Q, K, V for one problem.
struct AttentionInputs {
    var q: Tensor
    var k: Tensor
    var v: Tensor

    init(_ p: AttentionProblem, seed: UInt64, qScale: Float = 1, kScale: Float = 1) {
        var rng = SeededNormal(seed: seed)
        q = rng.tensor(p.qShape, scale: qScale)
        k = rng.tensor(p.kShape, scale: kScale)
        v = rng.tensor(p.vShape)
    }

    /// Keys no query row of `p` may see under the test's own reading of the mask.
    static func keysNoQuerySees(_ p: AttentionProblem) -> [Int] {
        let off = p.resolvedQOffset
        return (0..<p.kvLen).filter { j in
            !(0..<p.qLen).contains { i in
                let pos = off + i
                return (!p.causal || j <= pos) && (p.window.map { j > pos - $0 } ?? true)
            }
        }
    }

    /// Writes `value` into every element of K and V rows `keys`, all batches and heads.
    mutating func poison(keys: [Int], with value: Float, _ p: AttentionProblem) {
        for b in 0..<p.batch {
            for h in 0..<p.kvHeads {
                for j in keys {
                    let kBase = ((b * p.kvHeads + h) * p.kvLen + j) * p.qkDim
                    for d in 0..<p.qkDim { k.data[kBase + d] = value }
                    let vBase = ((b * p.kvHeads + h) * p.kvLen + j) * p.vDim
                    for d in 0..<p.vDim { v.data[vBase + d] = value }
                }
            }
        }
    }

    /// Makes keys and values [0, n) of every batch equal to batch 0's.
    mutating func sharePrefix(_ n: Int, _ p: AttentionProblem) {
        for b in 1..<max(p.batch, 1) {
            for h in 0..<p.kvHeads {
                for j in 0..<n {
                    for d in 0..<p.qkDim { k.data[((b * p.kvHeads + h) * p.kvLen + j) * p.qkDim + d] = k.data[(h * p.kvLen + j) * p.qkDim + d] }
                    for d in 0..<p.vDim { v.data[((b * p.kvHeads + h) * p.kvLen + j) * p.vDim + d] = v.data[(h * p.kvLen + j) * p.vDim + d] }
                }
            }
        }
    }
}
