import AttuneBench
import AttuneKernels
import AttuneNumerics
import AttuneTensor
import Foundation
import XCTest

/// `kascade` against the float64 reference: exact when every history key is kept, the
/// reuse pass equal to the anchor's on the same selection, and a small error on
/// structured inputs where attention really is concentrated.
final class KascadeHarnessTests: XCTestCase {
    func exact(_ name: String, _ p: AttentionProblem, role: Double = 0, tile: Double = 32, poison: Float? = nil) -> HarnessCase {
        HarnessCase(name: name, problem: p, kernel: "kascade", parameters: ["fraction": 1, "tile": tile, "role": role], poison: poison)
    }

    func testEveryKeyKeptEqualsDenseAttention() {
        for role in [0.0, 1.0] {
            for kv in [1, 31, 32, 33, 200, 2000] {
                Harness.check(exact("decode GQA kv \(kv)", .init(qHeads: 8, kvHeads: 2, qLen: 1, kvLen: kv, qkDim: 128, causal: true), role: role))
            }
            Harness.check(exact("decode MQA", .init(qHeads: 8, kvHeads: 1, qLen: 1, kvLen: 3000, qkDim: 64, causal: true), role: role))
            Harness.check(exact("decode MHA", .init(qHeads: 3, qLen: 1, kvLen: 700, qkDim: 80, causal: true), role: role))
            Harness.check(exact("batch 2, dv != dk", .init(batch: 2, qHeads: 4, kvHeads: 2, qLen: 1, kvLen: 900, qkDim: 96, vDim: 64, causal: true), role: role))
            Harness.check(exact("prefill q = kv", .init(qHeads: 4, kvHeads: 2, qLen: 300, kvLen: 300, qkDim: 64, causal: true), role: role))
            Harness.check(exact("chunk off the tile grid", .init(qHeads: 4, kvHeads: 2, qLen: 45, kvLen: 500, qkDim: 64, causal: true), role: role))
            Harness.check(exact("odd tile", .init(qHeads: 2, kvHeads: 1, qLen: 50, kvLen: 260, qkDim: 64, causal: true), role: role, tile: 7))
            Harness.check(exact("q_offset inside", .init(qHeads: 4, kvHeads: 2, qLen: 20, kvLen: 400, qkDim: 64, causal: true, qOffset: 100), role: role))
        }
        // With the defaults, histories of at most min_k = 128 keys are kept whole.
        Harness.check(HarnessCase(name: "short history, defaults", problem: .init(qHeads: 4, kvHeads: 2, qLen: 1, kvLen: 150, qkDim: 64, causal: true),
                                  kernel: "kascade"))
    }

    func testPoisonInFutureKeysStaysOut() {
        for value in [Float.nan, .infinity, 1e10] {
            // Keys past each row's position are poisoned; with q_offset 100 most of the cache is future.
            Harness.check(exact("poison \(value)", .init(qHeads: 4, kvHeads: 2, qLen: 20, kvLen: 400, qkDim: 64, causal: true, qOffset: 100), poison: value))
            Harness.check(HarnessCase(name: "poison \(value) sparse", problem: .init(qHeads: 4, kvHeads: 1, qLen: 1, kvLen: 2000, qkDim: 64, causal: true, qOffset: 900),
                                      kernel: "kascade", parameters: ["fraction": 0.1], maxAbs: 10, lseRel: 10, poison: value))
        }
    }

    func testReuseOfTheSameInputsEqualsTheAnchorBitwise() throws {
        for p in [AttentionProblem(qHeads: 8, kvHeads: 2, qLen: 1, kvLen: 5000, qkDim: 128, causal: true),
                  AttentionProblem(qHeads: 4, kvHeads: 2, qLen: 100, kvLen: 1000, qkDim: 64, causal: true)] {
            let x = AttentionInputs(structured: p, seed: 5)
            let anchor = try KascadeKernel().run(p, q: x.q, k: x.k, v: x.v, parameters: ["role": 0])
            let reuse = try KascadeKernel().run(p, q: x.q, k: x.k, v: x.v, parameters: ["role": 1])
            XCTAssertTrue(anchor.o.data == reuse.o.data, "\(p)")
            XCTAssertTrue(anchor.lse.data == reuse.lse.data, "\(p)")
            XCTAssertEqual(anchor.stats["attended_keys"], reuse.stats["attended_keys"])
        }
    }

    func testThreadCountsGiveTheSameBits() throws {
        let p = AttentionProblem(qHeads: 8, kvHeads: 2, qLen: 1, kvLen: 6000, qkDim: 128, causal: true)
        let x = AttentionInputs(structured: p, seed: 2)
        let outs = try [1.0, 2.0, 3.0].map { try KascadeKernel().run(p, q: x.q, k: x.k, v: x.v, parameters: ["threads": $0]).o.data }
        XCTAssertTrue(outs[0] == outs[1], "1 vs 2 threads")
        XCTAssertTrue(outs[0] == outs[2], "1 vs 3 threads")
    }

    /// k% = 10 on inputs with recency, sinks and heavy hitters. Each kv head's q heads
    /// share one head kind (local, sink or heavy hitters), as heads sharing K/V in real
    /// models tend to; diffuse heads are left out: flat attention has no top-k structure
    /// and O ≈ 0 makes a relative error meaningless. Bounds are the measured errors with
    /// room.
    func testTopTenPercentOnStructuredInputs() throws {
        var knobs = StructuredAttention.Knobs()
        knobs.kinds = [.local, .local, .sink, .sink, .heavy, .heavy]
        // Measured: decode over 8000 keys rel-L1 0.184 where even each row's own best 10 %
        // leaves 0.147 of the probability out (the generator's noise floor spreads mass over
        // long contexts); prefill 1024 rel-L1 0.0071, tail 0.0098. So: within 1.5x the tail
        // + 0.01 (kascade shares one selection per kv head and tile, the tail is per row),
        // and the prefill within SpargeAttn's 0.05.
        for (p, bound) in [(AttentionProblem(qHeads: 6, kvHeads: 3, qLen: 1, kvLen: 8000, qkDim: 128, causal: true), 1.0),
                           (AttentionProblem(qHeads: 6, kvHeads: 3, qLen: 1024, kvLen: 1024, qkDim: 64, causal: true), 0.05)] {
            let x = AttentionInputs(structured: p, seed: 7, knobs: knobs)
            let out = try KascadeKernel().run(p, q: x.q, k: x.k, v: x.v, parameters: [:])
            let ref = try ReferenceBridge.softmax(p, x).o
            let m = ErrorMetrics.compare(out.o.data, ref)
            // What a top-k choice can do at best: the probability outside each row's own top k.
            let tail = oracleTail(p, x, keep: 0.10)
            print("kascade 10% structured \(p): \(m) attended \(out.stats["attended_fraction"]!) oracle tail mass \(tail)")
            XCTAssertEqual(m.nanCount, 0)
            XCTAssertLessThanOrEqual(m.relL1, min(bound, 1.5 * tail + 0.01), "\(p): \(m), tail \(tail)")
            XCTAssertLessThan(out.stats["attended_fraction"]!, p.qLen == 1 ? 0.12 : 0.6)
        }
    }

    /// Mean over rows of the exact probability outside the row's own best `keep` share of
    /// its history (the most any top-k selection can lose less than), in float64.
    func oracleTail(_ p: AttentionProblem, _ x: AttentionInputs, keep: Double) -> Double {
        let d = p.qkDim, g = p.qHeads / p.kvHeads, scale = Double(p.resolvedScale)
        var total = 0.0, rows = 0
        for h in 0..<p.qHeads {
            for i in stride(from: 0, to: p.qLen, by: max(1, p.qLen / 16)) {
                let pos = p.resolvedQOffset + i
                let scores = (0...pos).map { j in
                    (0..<d).reduce(0.0) { $0 + Double(x.q.data[(h * p.qLen + i) * d + $1]) * Double(x.k.data[((h / g) * p.kvLen + j) * d + $1]) } * scale
                }
                let m = scores.max()!
                let probs = scores.map { exp($0 - m) }, sum = probs.reduce(0, +)
                let history = pos / 32 * 32
                let k = Int((keep * Double(history)).rounded(.down))
                guard history > 128 else { continue }
                let kept = probs[0..<history].sorted(by: >).prefix(max(k, 128)).reduce(0, +) + probs[history...].reduce(0, +)
                total += 1 - kept / sum
                rows += 1
            }
        }
        return rows > 0 ? total / Double(rows) : 0
    }

    func testSelectionFollowsTheMass() throws {
        // One kv head, decode at position 999: keys 100..109 score 16 (e^16 ≈ 9e6 each)
        // against about 0 for the other 990, so they hold all but 1e-4 of the mass; a budget
        // of min_k = 16 keys must hold them, and the output is then nearly exact.
        let p = AttentionProblem(qHeads: 2, kvHeads: 1, qLen: 1, kvLen: 1000, qkDim: 16, causal: true)
        var x = AttentionInputs(p, seed: 9)
        for h in 0..<2 { for d in 0..<16 { x.q.data[h * 16 + d] = d == 0 ? 8 : 0 } }
        for j in 0..<1000 { x.k.data[j * 16] = (100..<110).contains(j) ? 8 : 0 }
        let out = try KascadeKernel().run(p, q: x.q, k: x.k, v: x.v, parameters: ["fraction": 0.001, "min_k": 16])
        let ref = try ReferenceBridge.softmax(p, x)
        XCTAssertEqual(out.stats["attended_keys"], 16 + 8, "16 selected + the 8 keys of tile 31 (992..999)")
        XCTAssertLessThanOrEqual(ErrorMetrics.compare(out.o.data, ref.o).relL1, 0.02)
    }

    func testHistoryKeysInTheBlockAcrossTheTileEdgeCount() throws {
        // tile 7, decode at position 999: tile 142, history [0, 994) with 994 = 62 * 16 + 2, so
        // the anchor scores keys 992 and 993 in the block that also holds the own tile. They
        // score 16 against about 0 for the other 992 history keys (all but 1e-4 of the mass):
        // a budget of min_k = 16 must hold them, and the output is then nearly exact.
        let p = AttentionProblem(qHeads: 2, kvHeads: 1, qLen: 1, kvLen: 1000, qkDim: 16, causal: true)
        var x = AttentionInputs(p, seed: 9)
        for h in 0..<2 { for d in 0..<16 { x.q.data[h * 16 + d] = d == 0 ? 8 : 0 } }
        for j in 0..<1000 { x.k.data[j * 16] = (992..<994).contains(j) ? 8 : 0 }
        let ref = try ReferenceBridge.softmax(p, x)
        for role in [0.0, 1.0] {
            let out = try KascadeKernel().run(p, q: x.q, k: x.k, v: x.v,
                                              parameters: ["fraction": 0.001, "min_k": 16, "tile": 7, "role": role])
            XCTAssertEqual(out.stats["attended_keys"], 16 + 6, "16 selected + the 6 keys of tile 142 (994..999)")
            XCTAssertLessThanOrEqual(ErrorMetrics.compare(out.o.data, ref.o).relL1, 0.02, "role \(role)")
        }
    }

    func testBadParametersAndProblemsAreRefused() {
        let p = AttentionProblem(qHeads: 2, qLen: 1, kvLen: 10, qkDim: 16, causal: true)
        let x = AttentionInputs(p, seed: 1)
        for (params, needle) in [(["fraction": 0.0], "fraction"), (["fraction": 1.5], "fraction"), (["min_k": 0.0], "min_k"),
                                 (["tile": 0.0], "tile"), (["tile": 300.0], "tile")] as [(KernelParameters, String)] {
            XCTAssertThrowsError(try KascadeKernel().run(p, q: x.q, k: x.k, v: x.v, parameters: params)) {
                XCTAssertTrue("\($0)".contains(needle), "\($0)")
            }
        }
        let reasons = KascadeKernel().unsupportedReasons(AttentionProblem(qHeads: 2, qLen: 4, kvLen: 10, qkDim: 16, window: 3))
        XCTAssertEqual(reasons.count, 2, "\(reasons)")
    }
}
