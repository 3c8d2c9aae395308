import AttuneKernels
import AttuneNumerics
import AttuneTensor

/// Runs the float64 reference on the same inputs a kernel saw.
enum ReferenceBridge {
    static func problem(_ p: AttentionProblem) -> ReferenceAttentionProblem {
        ReferenceAttentionProblem(batch: p.batch, qHeads: p.qHeads, kvHeads: p.kvHeads, qLen: p.qLen,
                                  kvLen: p.kvLen, qkDim: p.qkDim, vDim: p.vDim,
                                  scale: Double(p.resolvedScale), causal: p.causal,
                                  qOffset: p.qOffset, window: p.window, softcap: p.softcap,
                                  alibiSlopes: p.alibiSlopes?.map(Double.init), sinks: p.sinks?.map(Double.init))
    }

    static func sigmoid(_ p: AttentionProblem, bias: Double, _ x: AttentionInputs) throws -> [Double] {
        try ReferenceAttention.sigmoid(problem(p), bias: bias, q: x.q.data.map(Double.init),
                                       k: x.k.data.map(Double.init), v: x.v.data.map(Double.init))
    }

    static func softmax(_ p: AttentionProblem, _ x: AttentionInputs) throws -> (o: [Double], lse: [Double]) {
        try ReferenceAttention.softmax(problem(p), q: x.q.data.map(Double.init),
                                       k: x.k.data.map(Double.init), v: x.v.data.map(Double.init))
    }
}
