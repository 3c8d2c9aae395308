import AttuneTensor
import CAttuneKernels

// The keys the sparse kernels read (`AttentionKernel.keptKeys`), for `attune check`'s
// report, which draws them as images.

extension KascadeKernel {
    /// Per query tile, the keys kascade attends for batch 0's kv head 0 at its defaults:
    /// the anchor's selected history keys and the tile's own keys.
    public func keptKeys(_ p: AttentionProblem, inputs: () -> (q: Tensor, k: Tensor, v: Tensor)) -> [[Bool]]? {
        let (q, k, v) = inputs()
        var cp = p.cProblem
        var params = cStruct([:])
        var cap: Int64 = 0, slots: Int64 = 0
        attune_kascade_capacity(&cp, &params, &cap, &slots)
        var idx = [Int32](repeating: -1, count: Int(Int64(p.batch) * slots * Int64(p.kvHeads) * cap))
        var o = [Float](repeating: 0, count: p.batch * p.qHeads * p.qLen * p.vDim)
        var status = attune_status()
        let rc = q.data.withUnsafeBufferPointer { q in k.data.withUnsafeBufferPointer { k in v.data.withUnsafeBufferPointer { v in
            o.withUnsafeMutableBufferPointer { ob in idx.withUnsafeMutableBufferPointer { ib in
                var t = attune_attention_tensors(q: q.baseAddress, k: k.baseAddress, v: v.baseAddress, o: ob.baseAddress, lse: nil)
                var table = attune_kascade_indices(idx: ib.baseAddress, k_cap: cap, slots: slots)
                return attune_kascade_anchor(&cp, &t, &params, &table, &status)
            } }
        } } }
        guard rc == 0 else { return [] }
        let tile = Int(params.tile), first = max(0, p.resolvedQOffset) / tile
        return (0..<Int(slots)).map { s in
            var row = [Bool](repeating: false, count: p.kvLen)
            for j in 0..<Int(cap) {
                let key = Int(idx[(s * p.kvHeads) * Int(cap) + j])
                if key >= 0 && key < p.kvLen { row[key] = true }
            }
            let start = (first + s) * tile
            for key in start..<min(start + tile, p.kvLen) where key >= 0 { row[key] = true }
            return row
        }
    }
}

extension SpargeKernel {
    /// Per query block, the key blocks sparge predicts for batch 0's q head 0 at its
    /// defaults; nil for decode (one query row has no block to predict from).
    public func keptKeys(_ p: AttentionProblem, inputs: () -> (q: Tensor, k: Tensor, v: Tensor)) -> [[Bool]]? {
        guard p.qLen > 1 else { return nil }
        let (q, k, v) = inputs()
        var cp = p.cProblem
        var params = cStruct([:])
        let bq = Int(params.block_q), bk = Int(params.block_kv)
        let nqb = (p.qLen + bq - 1) / bq, nkb = (p.kvLen + bk - 1) / bk
        var mask = [UInt8](repeating: 0, count: p.batch * p.qHeads * nqb * nkb)
        var o = [Float](repeating: 0, count: p.batch * p.qHeads * p.qLen * p.vDim)
        var status = attune_status()
        let rc = q.data.withUnsafeBufferPointer { q in k.data.withUnsafeBufferPointer { k in v.data.withUnsafeBufferPointer { v in
            o.withUnsafeMutableBufferPointer { ob in mask.withUnsafeMutableBufferPointer { mb in
                params.mask_out = mb.baseAddress
                var t = attune_attention_tensors(q: q.baseAddress, k: k.baseAddress, v: v.baseAddress, o: ob.baseAddress, lse: nil)
                // With the problem's modifiers and masks: the blocks the kernel really keeps.
                return p.withModifiers(&cp) { attune_sparge_attention(&$0, &t, &params, &status) }
            } }
        } } }
        guard rc == 0 else { return [] }
        return (0..<nqb).map { qb in (0..<nkb).map { mask[qb * nkb + $0] != 0 } }
    }
}
