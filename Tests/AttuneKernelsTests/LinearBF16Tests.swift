import CAttuneKernels
import XCTest

/// The bf16-weight matmuls (Kernels/linear_bf16.c) against a float64 reference over the
/// exact bf16 weights, with the bounds attune_linear_bf16.h states: S = sum_i |x_i w_i|,
/// GEMV (f32 activations) |err| <= in * 2^-24 * S, GEMM (activations rounded to bf16)
/// |err| <= (2^-8 + in * 2^-24) * S.
final class LinearBF16Tests: XCTestCase {
    /// Ragged sizes: rows 1, 3, 17; in and out not multiples of 16 or 32 (and one large
    /// enough to split over threads).
    static let shapes = [(1, 1), (31, 17), (33, 45), (97, 67), (896, 40), (1000, 1100)]

    struct Case {
        var x: [Float]
        var w: [UInt16]
        var rows: Int, inWidth: Int, out: Int

        init(rows: Int, inWidth: Int, out: Int, seed: UInt64) {
            var s = seed
            func next() -> Float {
                s = s &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
                return Float(Int64(bitPattern: s >> 11) % 2_000_001) / 1_000_000 - 1
            }
            self.rows = rows
            self.inWidth = inWidth
            self.out = out
            x = (0..<(rows * inWidth)).map { _ in next() * 3 }
            let wf = (0..<(out * inWidth)).map { _ in next() }
            w = [UInt16](repeating: 0, count: wf.count)
            attune_f32_to_bf16(wf, Int64(wf.count), &w)
        }

        /// Largest |y - exact| / (bound(S) * S) over all outputs, bound per path.
        func worstRatio(_ y: [Float], bound: Double) -> Double {
            var worst = 0.0
            for r in 0..<rows {
                for o in 0..<out {
                    var exact = 0.0, s = 0.0
                    for i in 0..<inWidth {
                        let p = Double(x[r * inWidth + i]) * Double(Float(bitPattern: UInt32(w[o * inWidth + i]) << 16))
                        exact += p
                        s += abs(p)
                    }
                    worst = max(worst, abs(Double(y[r * out + o]) - exact) / (bound * s))
                }
            }
            return worst
        }

        func gemv() -> [Float] {
            var y = [Float](repeating: .nan, count: rows * out)
            attune_linear_bf16_gemv(x, Int64(rows), Int64(inWidth), w, Int64(out), &y)
            return y
        }

        func gemm() -> [Float] {
            var y = [Float](repeating: .nan, count: rows * out)
            attune_linear_bf16_gemm(x, Int64(rows), Int64(inWidth), w, Int64(out), &y)
            return y
        }
    }

    func testGEMVAndGEMMStayWithinTheirBoundsOnRaggedSizes() {
        var gemmWorst = 0.0
        for rows in [1, 3, 17] {
            for (inWidth, out) in Self.shapes {
                let c = Case(rows: rows, inWidth: inWidth, out: out, seed: UInt64(rows * 7919 + inWidth * 31 + out))
                let f32Bound = Double(inWidth) * 0x1p-24
                let gemv = c.worstRatio(c.gemv(), bound: f32Bound)
                XCTAssertLessThanOrEqual(gemv, 1, "GEMV rows \(rows) in \(inWidth) out \(out)")
                let gemm = c.worstRatio(c.gemm(), bound: 0x1p-8 + f32Bound)
                XCTAssertLessThanOrEqual(gemm, 1, "GEMM rows \(rows) in \(inWidth) out \(out)")
                gemmWorst = max(gemmWorst, gemm)
            }
        }
        // The bound is the activations' rounding, and it is reached within a small factor:
        // the GEMM does round them (a GEMM in f32 would stay near 0 here).
        XCTAssertGreaterThan(gemmWorst, 0.1)
    }

    /// Merged projections (blocks) with a bias give what one weight plus the bias gives,
    /// bit for bit, on both paths (rows 3: GEMV, rows 17: GEMM).
    func testBlocksWithBiasEqualOneWeightPlusBias() {
        for rows in [3, 17] {
            let c = Case(rows: rows, inWidth: 97, out: 101, seed: 5)
            let bias = (0..<101).map { Float($0) * 0.25 - 7 }
            let single = rows < ATTUNE_BF16_GEMM_MIN_ROWS ? c.gemv() : c.gemm()
            var y = [Float](repeating: .nan, count: rows * 101)
            let counts: [Int64] = [64, 5, 32]
            c.w.withUnsafeBufferPointer { w in
                let blocks: [UnsafePointer<UInt16>?] = [w.baseAddress!, w.baseAddress! + 64 * 97, w.baseAddress! + 69 * 97]
                attune_op_linear_bf16_blocks(c.x, Int64(rows), 97, blocks, counts, 3, bias, &y)
            }
            for r in 0..<rows {
                for o in 0..<101 { XCTAssertEqual(y[r * 101 + o], single[r * 101 + o] + bias[o], "rows \(rows) [\(r), \(o)]") }
            }
        }
    }

    /// The gated call (SwiGLU/GeGLU's first matmul with its product) gives, bit for bit,
    /// the two-block matmul over [gate; up] followed by the model's epilogue, on the GEMV
    /// (3 rows) and paired-panel GEMM (8, 17 rows) paths, with an intermediate width ending
    /// in a partial panel (75 = 32 + 32 + 11).
    func testGatedMatmulEqualsTheMatmulThenItsEpilogue() {
        let inter = 75
        for rows in [3, 8, 17] {
            let c = Case(rows: rows, inWidth: 97, out: 2 * inter, seed: 11)
            var both = [Float](repeating: .nan, count: rows * 2 * inter)
            c.w.withUnsafeBufferPointer { w in
                let blocks: [UnsafePointer<UInt16>?] = [w.baseAddress!, w.baseAddress! + inter * 97]
                attune_op_linear_bf16_blocks(c.x, Int64(rows), 97, blocks, [Int64(inter), Int64(inter)], 2, nil, &both)
            }
            for gelu: Int32 in [0, 1] {
                var epilogue = [Float](repeating: .nan, count: rows * inter), y = epilogue
                if gelu == 1 { attune_op_geglu_epilogue(both, Int64(rows), Int64(inter), &epilogue) }
                else { attune_op_swiglu_epilogue(both, Int64(rows), Int64(inter), &epilogue) }
                c.w.withUnsafeBufferPointer { w in
                    attune_op_linear_bf16_gated(c.x, Int64(rows), 97, w.baseAddress!, w.baseAddress! + inter * 97, Int64(inter), gelu, &y)
                }
                XCTAssertEqual(y.map(\.bitPattern), epilogue.map(\.bitPattern), "rows \(rows) gelu \(gelu)")
                XCTAssertTrue(y.allSatisfy(\.isFinite) && y.contains { $0 != 0 }, "rows \(rows): a real product")
            }
        }
    }

    func testEmbeddingWidensRowsExactlyAndRefusesOutOfRangeIds() {
        let table: [UInt16] = [0x3F80, 0xC000, 0x7F80, 0x0001, 0x4049, 0xBF00]   // 3 rows of 2
        var out = [Float](repeating: .nan, count: 4)
        XCTAssertEqual(attune_op_embedding_bf16(table, 3, 2, [2, 0], 2, &out), -1)
        XCTAssertEqual(out, [3.140625, -0.5, 1, -2])
        XCTAssertEqual(attune_op_embedding_bf16(table, 3, 2, [1, 3], 2, &out), 1, "id 3 is outside a vocabulary of 3")
    }
}
