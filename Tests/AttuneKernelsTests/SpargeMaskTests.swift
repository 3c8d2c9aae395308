import AttuneBench
import AttuneKernels
import CAttuneKernels
import XCTest

/// sparge's optional block mask agrees with its kept-block count and with the causal
/// structure: no block beyond a q block's last row is ever marked.
final class SpargeMaskTests: XCTestCase {
    func testMaskMatchesTheKeptCountAndTheCausalMask() throws {
        let p = AttentionProblem(qHeads: 4, kvHeads: 2, qLen: 512, kvLen: 512, qkDim: 64, causal: true)
        let x = StructuredAttention(p, seed: 3)
        var cp = p.cProblem
        var params = attune_sparge_params()
        params.block_q = 64; params.block_kv = 64; params.simthreshd1 = 0.3; params.cdfthreshd = 0.9; params.pvthreshd = 50; params.sink = 1
        let nqb = 8, nkb = 8
        var mask = [UInt8](repeating: 7, count: p.qHeads * nqb * nkb)
        var stats = attune_sparge_stats()
        var o = [Float](repeating: 0, count: p.qHeads * p.qLen * p.vDim)
        var status = attune_status()
        let rc = x.q.withUnsafeBufferPointer { q in x.k.withUnsafeBufferPointer { k in x.v.withUnsafeBufferPointer { v in
            o.withUnsafeMutableBufferPointer { ob in mask.withUnsafeMutableBufferPointer { mb in withUnsafeMutablePointer(to: &stats) { sp in
                params.mask_out = mb.baseAddress
                params.stats_out = sp
                var t = attune_attention_tensors(q: q.baseAddress, k: k.baseAddress, v: v.baseAddress, o: ob.baseAddress, lse: nil)
                return attune_sparge_attention(&cp, &t, &params, &status)
            } } }
        } } }
        XCTAssertEqual(rc, 0)
        XCTAssertTrue(mask.allSatisfy { $0 <= 1 }, "every entry written")
        XCTAssertEqual(Int64(mask.reduce(0) { $0 + Int($1) }), stats.kept_blocks)
        XCTAssertLessThan(stats.kept_fraction, 1, "something was skipped")
        for h in 0..<p.qHeads { for qb in 0..<nqb { for kb in (qb + 1)..<nkb {
            XCTAssertEqual(mask[(h * nqb + qb) * nkb + kb], 0, "head \(h) q block \(qb) key block \(kb) is in the future")
        } } }
        for h in 0..<p.qHeads { for qb in 0..<nqb { XCTAssertEqual(mask[(h * nqb + qb) * nkb + qb], 1, "the diagonal block is kept") } }
    }
}
