import AttuneKernels
import AttuneNumerics
import AttuneTensor
import CAttuneKernels
import XCTest

/// The ABI's strided views and the shared log-sum-exp merge.
final class StridedAndMergeTests: XCTestCase {
    /// Q/K/V/O stored as [B, L, H, D] (the layout Hugging Face projections produce) and read
    /// through strides must give the same numbers as the contiguous [B, H, L, D] call.
    func testSequenceMajorStridesMatchContiguous() throws {
        let p = AttentionProblem(batch: 2, qHeads: 4, kvHeads: 2, qLen: 37, kvLen: 90, qkDim: 64, vDim: 32, causal: true)
        let x = AttentionInputs(p, seed: 21)
        let want = try FlashKernel().run(p, q: x.q, k: x.k, v: x.v)

        func toBLHD(_ t: Tensor) -> [Float] {
            let (b, h, l, d) = (t.shape[0], t.shape[1], t.shape[2], t.shape[3])
            var out = [Float](repeating: 0, count: t.count)
            for bi in 0..<b { for hi in 0..<h { for li in 0..<l { for di in 0..<d {
                out[((bi * l + li) * h + hi) * d + di] = t.data[((bi * h + hi) * l + li) * d + di]
            } } } }
            return out
        }
        let q = toBLHD(x.q), k = toBLHD(x.k), v = toBLHD(x.v)
        var o = [Float](repeating: .nan, count: p.oShape.reduce(1, *))
        var lse = [Float](repeating: .nan, count: p.lseShape.reduce(1, *))
        var cp = p.cProblem
        func blhd(_ h: Int, _ l: Int, _ d: Int) -> attune_strides {
            attune_strides(batch: Int64(l * h * d), head: Int64(d), row: Int64(h * d))
        }
        cp.q_stride = blhd(4, 37, 64)
        cp.k_stride = blhd(2, 90, 64)
        cp.v_stride = blhd(2, 90, 32)
        cp.o_stride = blhd(4, 37, 32)
        var status = attune_status()
        let rc = q.withUnsafeBufferPointer { qb in k.withUnsafeBufferPointer { kb in v.withUnsafeBufferPointer { vb in
            o.withUnsafeMutableBufferPointer { ob in lse.withUnsafeMutableBufferPointer { lb in
                var t = attune_attention_tensors(q: qb.baseAddress, k: kb.baseAddress, v: vb.baseAddress,
                                                 o: ob.baseAddress, lse: lb.baseAddress)
                return attune_flash_attention(&cp, &t, nil, &status)
            } }
        } } }
        XCTAssertEqual(rc, 0)
        let wantBLHD = toBLHD(want.o)
        let err = zip(o, wantBLHD).map { abs($0 - $1) }.max() ?? .nan
        XCTAssertLessThanOrEqual(err, 1e-6)
        XCTAssertEqual(lse.map(\.bitPattern), want.lse.data.map(\.bitPattern))
    }

    /// Attention over keys [0, a) and [a, n) merged by LSE equals attention over [0, n);
    /// an empty part (LSE = -inf) changes nothing.
    func testMergingDisjointKeyPartitionsEqualsFullAttention() throws {
        let n = 300, a = 113
        let p = AttentionProblem(qHeads: 2, qLen: 5, kvLen: n, qkDim: 64)
        let x = AttentionInputs(p, seed: 22)
        let full = try FlashKernel().run(p, q: x.q, k: x.k, v: x.v)
        func part(_ range: Range<Int>) throws -> AttentionOutput {
            let sub = AttentionProblem(qHeads: 2, qLen: 5, kvLen: range.count, qkDim: 64)
            func rows(_ t: Tensor) -> Tensor {
                var data: [Float] = []
                for h in 0..<2 { data += t.data[(h * n + range.lowerBound) * 64..<(h * n + range.upperBound) * 64] }
                return Tensor(shape: [1, 2, range.count, 64], data: data)
            }
            return try FlashKernel().run(sub, q: x.q, k: rows(x.k), v: rows(x.v))
        }
        let parts = [try part(0..<a), try part(a..<n), try part(n..<n)]
        XCTAssertTrue(parts[2].lse.data.allSatisfy { $0 == -.infinity })
        var merged = [Float](repeating: 0, count: 10 * 64), mergedLse = [Float](repeating: 0, count: 10)
        let os = parts.map(\.o.data), ls = parts.map(\.lse.data)
        os[0].withUnsafeBufferPointer { o0 in os[1].withUnsafeBufferPointer { o1 in os[2].withUnsafeBufferPointer { o2 in
            ls[0].withUnsafeBufferPointer { l0 in ls[1].withUnsafeBufferPointer { l1 in ls[2].withUnsafeBufferPointer { l2 in
                let po: [UnsafePointer<Float>?] = [o0.baseAddress, o1.baseAddress, o2.baseAddress]
                let pl: [UnsafePointer<Float>?] = [l0.baseAddress, l1.baseAddress, l2.baseAddress]
                let strides: [Int64] = [64, 64, 64]
                attune_lse_merge_rows(3, 10, 64, po, strides, pl, &merged, 64, &mergedLse)
            } } }
        } } }
        XCTAssertLessThanOrEqual(zip(merged, full.o.data).map { abs($0 - $1) }.max()!, 1e-6)
        XCTAssertLessThanOrEqual(zip(mergedLse, full.lse.data).map { abs($0 - $1) }.max()!, 1e-5)
    }

    func testMergingOnlyEmptyPartsGivesZeroAndMinusInfinity() {
        let o: [Float] = [.nan, .nan, .nan]
        let l: [Float] = [-.infinity]
        var out: [Float] = [9, 9, 9], outLse: [Float] = [9]
        o.withUnsafeBufferPointer { ob in l.withUnsafeBufferPointer { lb in
            let po: [UnsafePointer<Float>?] = [ob.baseAddress, ob.baseAddress]
            let pl: [UnsafePointer<Float>?] = [lb.baseAddress, lb.baseAddress]
            attune_lse_merge_rows(2, 1, 3, po, [3, 3], pl, &out, 3, &outLse)
        } }
        XCTAssertEqual(out, [0, 0, 0])
        XCTAssertEqual(outLse, [-.infinity])
    }
}
