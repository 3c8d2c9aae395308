import AttuneKernels
import AttuneNumerics
import AttuneTensor

/// Runs the float64 reference on the same inputs a kernel saw.
enum ReferenceBridge {
    static func problem(_ p: AttentionProblem) -> ReferenceAttentionProblem {
        var r = ReferenceAttentionProblem(batch: p.batch, qHeads: p.qHeads, kvHeads: p.kvHeads, qLen: p.qLen,
                                          kvLen: p.kvLen, qkDim: p.qkDim, vDim: p.vDim,
                                          scale: Double(p.resolvedScale), causal: p.causal,
                                          qOffset: p.qOffset, window: p.window, softcap: p.softcap,
                                          alibiSlopes: p.alibiSlopes?.map(Double.init), sinks: p.sinks?.map(Double.init))
        // The masks in the reference's terms: ids, and the bitmask as a matrix of booleans.
        r.documentIDs = p.documentIDs?.map(Int.init)
        if let m = p.blockMask {
            let nb = m.blocks(kvLen: p.kvLen)
            r.maskBlock = m.block
            r.blockMask = (0..<nb).map { qb in (0..<nb).map { kb in m.isSet(qb, kb, kvLen: p.kvLen) } }
        }
        return r
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
