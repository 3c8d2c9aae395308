import AttuneBench
import AttuneKernels
import AttuneNumerics
import AttuneTensor
import XCTest

/// `sparge` (SpargeAttn block-sparse attention) against the float64 reference: the exact
/// configuration on the harness's edge cases, the approximation on structured inputs,
/// the prediction on hand-built cases, parameter validation and NaN containment.
final class SpargeHarnessTests: XCTestCase {
    /// Every block kept, no P.V skipping: must equal dense attention to fp32 rounding.
    static let exact: KernelParameters = ["cdfthreshd": 1, "pvthreshd": 200]

    func identity(_ name: String, _ p: AttentionProblem, _ extra: KernelParameters = [:], poison: Float? = nil) -> HarnessCase {
        HarnessCase(name: name, problem: p, kernel: "sparge", parameters: Self.exact.merging(extra) { $1 }, poison: poison)
    }

    func testIdentityOnTheHarnessShapes() {
        for d in [64, 80, 128, 256] {
            Harness.check(identity("head dim \(d)", .init(qHeads: 2, qLen: 67, kvLen: 131, qkDim: d, causal: true)))
        }
        Harness.check(identity("dv < dqk", .init(qHeads: 2, qLen: 40, kvLen: 97, qkDim: 128, vDim: 64)))
        Harness.check(identity("odd dims", .init(qHeads: 1, qLen: 19, kvLen: 37, qkDim: 72, vDim: 40, causal: true)))
        for (hq, hkv) in [(4, 2), (8, 1), (6, 2)] {
            Harness.check(identity("GQA \(hq)/\(hkv) prefill", .init(qHeads: hq, kvHeads: hkv, qLen: 150, kvLen: 283, qkDim: 64, causal: true)))
            Harness.check(identity("GQA \(hq)/\(hkv) decode", .init(qHeads: hq, kvHeads: hkv, qLen: 1, kvLen: 1031, qkDim: 128)))
        }
        for kv in [1, 2, 63, 64, 65, 255, 256, 257, 509] {
            Harness.check(identity("kv \(kv) causal", .init(qHeads: 2, qLen: min(kv, 140), kvLen: kv, qkDim: 64, causal: true)))
        }
        for ql in [1, 2, 15, 16, 17, 127, 128, 129, 300] {
            Harness.check(identity("q_len \(ql)", .init(qHeads: 2, qLen: ql, kvLen: 300, qkDim: 64, causal: true)))
        }
        Harness.check(identity("non-causal batch", .init(batch: 2, qHeads: 3, qLen: 77, kvLen: 77, qkDim: 64)))
        Harness.check(identity("prefill 512", .init(qHeads: 2, qLen: 512, kvLen: 512, qkDim: 128, causal: true)))
    }

    func testIdentityWithMasks() {
        Harness.check(identity("window", .init(qHeads: 2, qLen: 150, kvLen: 400, qkDim: 64, causal: true, window: 37)))
        Harness.check(identity("window 1", .init(qHeads: 2, qLen: 20, kvLen: 20, qkDim: 64, causal: true, window: 1)))
        Harness.check(identity("window without causal", .init(qHeads: 1, qLen: 30, kvLen: 90, qkDim: 64, window: 25)))
        Harness.check(identity("explicit q_offset", .init(qHeads: 2, qLen: 40, kvLen: 100, qkDim: 64, causal: true, qOffset: 10)))
        Harness.check(identity("fully masked first rows", .init(qHeads: 2, qLen: 90, kvLen: 50, qkDim: 64, causal: true, qOffset: -70),
                               ["block_q": 32]))
        Harness.check(identity("fully masked last rows", .init(qHeads: 2, qLen: 60, kvLen: 40, qkDim: 64, causal: true, qOffset: 20, window: 30),
                               ["block_q": 16]))
        Harness.check(identity("every row masked", .init(qHeads: 2, qLen: 5, kvLen: 40, qkDim: 64, causal: true, qOffset: -10)))
        Harness.check(identity("kv_len 0", .init(qHeads: 2, qLen: 3, kvLen: 0, qkDim: 64)))
        for params: KernelParameters in [["block_q": 16, "block_kv": 16], ["block_q": 64, "block_kv": 128], ["block_kv": 512], ["threads": 1]] {
            Harness.check(identity("params", .init(qHeads: 4, kvHeads: 2, qLen: 130, kvLen: 700, qkDim: 96, causal: true), params))
        }
    }
}
