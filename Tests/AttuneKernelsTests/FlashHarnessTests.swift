import AttuneKernels
import XCTest

/// The table of flash rows: every edge case of the attention contract against the
/// float64 reference (see Docs/KERNELS.md for the conventions they pin down).
final class FlashHarnessTests: XCTestCase {
    static let defaultTile = 256

    func testHeadDims() {
        for d in [64, 80, 96, 128, 256] {
            Harness.check(HarnessCase(name: "head dim \(d)", problem: .init(qHeads: 2, qLen: 67, kvLen: 131, qkDim: d, causal: true)))
        }
        Harness.check(HarnessCase(name: "dv < dqk", problem: .init(qHeads: 2, qLen: 40, kvLen: 97, qkDim: 128, vDim: 64)))
        Harness.check(HarnessCase(name: "dv > dqk", problem: .init(qHeads: 2, qLen: 40, kvLen: 97, qkDim: 64, vDim: 128, causal: true)))
        Harness.check(HarnessCase(name: "odd dims", problem: .init(qHeads: 1, qLen: 19, kvLen: 37, qkDim: 72, vDim: 40, causal: true)))
    }

    func testGroupedQueryAttention() {
        for (hq, hkv) in [(4, 4), (4, 2), (6, 2), (8, 2), (8, 1), (16, 2)] {
            Harness.check(HarnessCase(name: "GQA \(hq)/\(hkv) prefill",
                                      problem: .init(qHeads: hq, kvHeads: hkv, qLen: 50, kvLen: 83, qkDim: 64, causal: true)))
            Harness.check(HarnessCase(name: "GQA \(hq)/\(hkv) decode",
                                      problem: .init(qHeads: hq, kvHeads: hkv, qLen: 1, kvLen: 1031, qkDim: 128)))
        }
    }

    func testKVLengthsAroundTiles() {
        let t = Self.defaultTile
        for kv in [1, 2, t - 1, t, t + 1, 509, 2 * t + 3] {
            Harness.check(HarnessCase(name: "kv \(kv) causal", problem: .init(qHeads: 2, qLen: min(kv, 70), kvLen: kv, qkDim: 64, causal: true)))
            Harness.check(HarnessCase(name: "kv \(kv) decode", problem: .init(qHeads: 4, kvHeads: 2, qLen: 1, kvLen: kv, qkDim: 128)))
        }
        for kv in [63, 64, 65, 127] {
            Harness.check(HarnessCase(name: "kv \(kv) small tiles", problem: .init(qHeads: 2, qLen: 33, kvLen: kv, qkDim: 64, causal: true),
                                      parameters: ["block_kv": 64, "block_q": 16]))
        }
    }

    func testQueryLengths() {
        for ql in [1, 2, 15, 16, 17, 64, 65, 200] {
            Harness.check(HarnessCase(name: "q_len \(ql) < kv", problem: .init(qHeads: 2, qLen: ql, kvLen: 300, qkDim: 64, causal: true)))
        }
        Harness.check(HarnessCase(name: "q_len = kv non-causal", problem: .init(batch: 2, qHeads: 3, qLen: 77, kvLen: 77, qkDim: 64)))
    }

    func testMasks() {
        Harness.check(HarnessCase(name: "window", problem: .init(qHeads: 2, qLen: 150, kvLen: 400, qkDim: 64, causal: true, window: 37)))
        Harness.check(HarnessCase(name: "window 1", problem: .init(qHeads: 2, qLen: 20, kvLen: 20, qkDim: 64, causal: true, window: 1)))
        Harness.check(HarnessCase(name: "window without causal", problem: .init(qHeads: 1, qLen: 30, kvLen: 90, qkDim: 64, window: 25)))
        Harness.check(HarnessCase(name: "window decode split", problem: .init(qHeads: 8, kvHeads: 1, qLen: 1, kvLen: 5000, qkDim: 64, window: 3000)))
        Harness.check(HarnessCase(name: "explicit q_offset", problem: .init(qHeads: 2, qLen: 40, kvLen: 100, qkDim: 64, causal: true, qOffset: 10)))
        // Rows at negative positions see nothing: the whole first tile and part of the second are empty.
        Harness.check(HarnessCase(name: "fully masked first rows", problem: .init(qHeads: 2, qLen: 90, kvLen: 50, qkDim: 64, causal: true, qOffset: -70),
                                  parameters: ["block_q": 32]))
        // Rows past the window's reach see nothing: the last rows are empty.
        Harness.check(HarnessCase(name: "fully masked last rows", problem: .init(qHeads: 2, qLen: 60, kvLen: 40, qkDim: 64, causal: true, qOffset: 20, window: 30),
                                  parameters: ["block_q": 16]))
        Harness.check(HarnessCase(name: "every row masked", problem: .init(qHeads: 2, qLen: 5, kvLen: 40, qkDim: 64, causal: true, qOffset: -10)))
        Harness.check(HarnessCase(name: "kv_len 0", problem: .init(qHeads: 2, qLen: 3, kvLen: 0, qkDim: 64)))
    }

    func testPoisonInMaskedPositions() {
        for value in [Float.nan, .infinity, -.infinity, 1e10] {
            Harness.check(HarnessCase(name: "poison \(value) future keys", problem: .init(qHeads: 2, qLen: 40, kvLen: 300, qkDim: 64, causal: true, qOffset: 100),
                                      poison: value))
            Harness.check(HarnessCase(name: "poison \(value) outside window", problem: .init(qHeads: 4, kvHeads: 2, qLen: 1, kvLen: 2000, qkDim: 64, window: 700),
                                      poison: value))
        }
    }

    func testLargeScores() {
        // |scale * q.k| around 1e4: the online softmax must not overflow. Scores that large
        // carry fp32 rounding of about 1e4 * 6e-8 in the exponent, hence the looser bound.
        Harness.check(HarnessCase(name: "scores ~1e4", problem: .init(qHeads: 2, qLen: 64, kvLen: 200, qkDim: 64, causal: true),
                                  maxAbs: 5e-3, lseRel: 1e-6, qScale: 35, kScale: 35))
        Harness.check(HarnessCase(name: "scores ~1e4 decode", problem: .init(qHeads: 4, kvHeads: 1, qLen: 1, kvLen: 3000, qkDim: 128),
                                  maxAbs: 5e-3, lseRel: 1e-6, qScale: 30, kScale: 30))
    }

    func testParameters() {
        let p = AttentionProblem(qHeads: 4, kvHeads: 2, qLen: 130, kvLen: 700, qkDim: 96, causal: true)
        for params: KernelParameters in [["block_q": 16, "block_kv": 32], ["block_q": 96, "block_kv": 512], ["kv_splits": 5],
                                         ["gemm": 2], ["gemm": 1, "threads": 1], ["gemm": 2, "kv_splits": 3, "block_kv": 64]] {
            Harness.check(HarnessCase(name: "params", problem: p, parameters: params))
        }
        let decode = AttentionProblem(qHeads: 8, kvHeads: 8, qLen: 1, kvLen: 4099, qkDim: 128)
        for splits in [1.0, 2, 7, 16] {
            Harness.check(HarnessCase(name: "decode splits", problem: decode, parameters: ["kv_splits": splits]))
        }
        Harness.check(HarnessCase(name: "decode blas", problem: decode, parameters: ["gemm": 2]))
    }

    func testBatchAndScale() {
        Harness.check(HarnessCase(name: "batch 3 custom scale", problem: .init(batch: 3, qHeads: 4, kvHeads: 2, qLen: 33, kvLen: 65, qkDim: 64, scale: 0.3, causal: true)))
        Harness.check(HarnessCase(name: "scale 0 is uniform", problem: .init(qHeads: 1, qLen: 8, kvLen: 30, qkDim: 64, scale: 0)))
    }

    func testLongPrefill() {
        Harness.check(HarnessCase(name: "prefill 512", problem: .init(qHeads: 2, qLen: 512, kvLen: 512, qkDim: 128, causal: true)))
    }
}
