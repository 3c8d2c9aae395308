import AttuneKernels
import AttuneNumerics
import AttuneTensor
import CAttuneKernels
import XCTest

/// Logit soft-capping (`AttentionProblem.softcap`, Gemma 2): flash caps every score on
/// each of its paths (wide and narrow tiles, sgemm, split KV, bf16 tiles) as the float64
/// reference does; every other kernel refuses a capped problem, in Swift and in C.
final class SoftcapTests: XCTestCase {
    /// Scores of q and k drawn ×3: |s| reaches several units, so a cap of 2 is far from linear.
    static func capped(_ name: String, _ p: AttentionProblem, _ parameters: KernelParameters = [:]) -> HarnessCase {
        var p = p
        p.softcap = 2
        return HarnessCase(name: name, problem: p, parameters: parameters, maxAbs: 2e-5, lseRel: 2e-6, qScale: 3, kScale: 3)
    }

    func testFlashCapsScoresOnEveryPath() {
        let cases = [
            Self.capped("prefill, wide tiles", .init(qHeads: 4, kvHeads: 2, qLen: 67, kvLen: 131, qkDim: 64, causal: true)),
            Self.capped("prefill, sgemm tiles", .init(qHeads: 2, qLen: 40, kvLen: 300, qkDim: 32, causal: true), ["gemm": 2]),
            Self.capped("sliding window", .init(qHeads: 2, qLen: 50, kvLen: 80, qkDim: 16, causal: true, window: 7)),
            Self.capped("decode MHA (narrow, 1 row)", .init(qHeads: 4, qLen: 1, kvLen: 700, qkDim: 64, causal: true)),
            Self.capped("decode GQA 2 (narrow, 2 rows)", .init(qHeads: 4, kvHeads: 2, qLen: 1, kvLen: 333, qkDim: 16, causal: true)),
            Self.capped("decode GQA 4 (narrow, 4 rows), split KV", .init(qHeads: 8, kvHeads: 2, qLen: 1, kvLen: 2100, qkDim: 32, causal: true),
                        ["kv_splits": 3]),
            Self.capped("short q tile (narrow rows)", .init(qHeads: 2, qLen: 3, kvLen: 90, qkDim: 24, vDim: 8, causal: true)),
        ]
        for c in cases {
            Harness.check(c)
            // The cap matters on these inputs: the uncapped reference is far from the capped one.
            let x = AttentionInputs(c.problem, seed: c.seed, qScale: c.qScale, kScale: c.kScale)
            var plain = c.problem
            plain.softcap = nil
            let (a, b) = (try? ReferenceBridge.softmax(c.problem, x).o, try? ReferenceBridge.softmax(plain, x).o)
            XCTAssertGreaterThan(zip(a ?? [], b ?? []).map { abs($0 - $1) }.max() ?? 0, 1e-2, c.name)
        }
    }

    /// bf16 prefill tiles cap their f32 scores too: the error stays at bf16's, not the cap's.
    func testFlashBF16TilesCapScores() throws {
        var p = AttentionProblem(qHeads: 4, kvHeads: 2, qLen: 64, kvLen: 128, qkDim: 64, causal: true)
        p.softcap = 2
        let x = AttentionInputs(p, seed: 3, qScale: 3, kScale: 3)
        let out = try FlashKernel().run(p, q: x.q, k: x.k, v: x.v, parameters: ["precision": 1])
        let ref = try ReferenceBridge.softmax(p, x)
        XCTAssertLessThanOrEqual(ErrorMetrics.compare(out.o.data, ref.o).maxAbs, 2e-2)
    }

    func testOtherKernelsRefuseACappedProblem() throws {
        var p = AttentionProblem(qHeads: 2, qLen: 8, kvLen: 8, qkDim: 16, causal: true)
        p.softcap = 30
        // Which kernels refuse it, and with which words, is KernelScope's "softcap" row
        // (KernelScopeTests). In C: a kernel validating without ATTUNE_ACCEPTS_SOFTCAP refuses, naming itself.
        var c = p.cProblem
        var status = attune_status()
        XCTAssertEqual(attune_attention_validate_kv(&c, nil, 1, "unified_max", &status), Int32(ATTUNE_ERR_UNSUPPORTED.rawValue))
        XCTAssertEqual(withUnsafeBytes(of: status.message) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) },
                       "unified_max does not implement logit soft-capping (softcap = 30); flash does")
        XCTAssertEqual(attune_attention_validate_kv(&c, nil, 1 | ATTUNE_ACCEPTS_SOFTCAP, "flash", &status), 0)
        p.softcap = -1
        XCTAssertEqual(p.validationError(), "softcap must be 0 (none) or a finite positive cap, got -1")
        // A cap that is 0 or subnormal as a float is refused, never read as "no cap".
        p.softcap = 1e-300
        XCTAssertEqual(p.validationError()?.hasPrefix("softcap 1e-300 is not representable as a float"), true)
        p.softcap = 1e-40
        XCTAssertEqual(p.validationError()?.hasSuffix("is below the smallest normal float (1.17549e-38)"), true, p.validationError() ?? "")
    }
}
