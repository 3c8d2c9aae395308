import AttuneKernels
import AttuneNumerics
import AttuneTensor
import CAttuneKernels
import XCTest

/// `unified_max` against the float64 reference: flash's whole edge-case table, then the
/// fixed-max specifics — a wrong phi makes every row fall back and stay exact, scores far
/// above phi fall back, a good phi falls back nowhere, thread counts change no bit.
final class UnifiedMaxHarnessTests: XCTestCase {
    static let defaultTile = 256
    let kernel = UnifiedMaxKernel()

    func row(_ name: String, _ p: AttentionProblem, _ params: KernelParameters = [:], maxAbs: Double = 2e-5,
             lseRel: Double = 2e-6, qScale: Float = 1, kScale: Float = 1, poison: Float? = nil) -> HarnessCase {
        HarnessCase(name: name, problem: p, kernel: "unified_max", parameters: params, maxAbs: maxAbs, lseRel: lseRel,
                    qScale: qScale, kScale: kScale, poison: poison)
    }

    /// Inputs and float64 reference per (problem, seed, scales): many rows share them.
    var cache: [String: (AttentionInputs, (o: [Double], lse: [Double]))] = [:]

    /// Runs a row, asserts its bound like `Harness.check`, and returns the kernel's stats.
    @discardableResult
    func checked(_ c: HarnessCase, file: StaticString = #filePath, line: UInt = #line) -> KernelRunStats {
        do {
            let key = "\(c.problem) \(c.seed) \(c.qScale) \(c.kScale)"
            if cache[key] == nil {
                let x = AttentionInputs(c.problem, seed: c.seed, qScale: c.qScale, kScale: c.kScale)
                cache[key] = (x, try ReferenceBridge.softmax(c.problem, x))
            }
            let (x, ref) = cache[key]!
            let out = try kernel.run(c.problem, q: x.q, k: x.k, v: x.v, parameters: c.parameters)
            let o = ErrorMetrics.compare(out.o.data, ref.o)
            XCTAssertEqual(o.nanCount, 0, "\(c): NaN in output or reference", file: file, line: line)
            XCTAssertLessThanOrEqual(o.maxAbs, c.maxAbs, "\(c): max abs error", file: file, line: line)
            var worst = 0.0
            for (a, b) in zip(out.lse.data, ref.lse) where Double(a) != b {
                worst = max(worst, a.isNaN ? .infinity : abs(Double(a) - b) / max(1, abs(b)))
            }
            XCTAssertLessThanOrEqual(worst, c.lseRel, "\(c): LSE error", file: file, line: line)
            XCTAssertEqual(out.stats["rows"], Double(c.problem.batch * c.problem.qHeads * c.problem.qLen), "\(c)", file: file, line: line)
            return out.stats
        } catch {
            XCTFail("\(c): \(error)", file: file, line: line)
            return [:]
        }
    }

    // MARK: flash's table, kernel unified_max (phi = 0)

    func testHeadDims() {
        for d in [64, 80, 96, 128, 256] {
            Harness.check(row("head dim \(d)", .init(qHeads: 2, qLen: 67, kvLen: 131, qkDim: d, causal: true)))
        }
        Harness.check(row("dv < dqk", .init(qHeads: 2, qLen: 40, kvLen: 97, qkDim: 128, vDim: 64)))
        Harness.check(row("dv > dqk", .init(qHeads: 2, qLen: 40, kvLen: 97, qkDim: 64, vDim: 128, causal: true)))
        Harness.check(row("odd dims", .init(qHeads: 1, qLen: 19, kvLen: 37, qkDim: 72, vDim: 40, causal: true)))
        // The split merge sums v_dim in chunks of 256.
        checked(row("decode dv 300 split", .init(qHeads: 4, kvHeads: 2, qLen: 1, kvLen: 1500, qkDim: 80, vDim: 300), ["kv_splits": 3]))
    }

    func testGroupedQueryAttention() {
        for (hq, hkv) in [(4, 4), (4, 2), (6, 2), (8, 2), (8, 1), (16, 2)] {
            Harness.check(row("GQA \(hq)/\(hkv) prefill", .init(qHeads: hq, kvHeads: hkv, qLen: 50, kvLen: 83, qkDim: 64, causal: true)))
            Harness.check(row("GQA \(hq)/\(hkv) decode", .init(qHeads: hq, kvHeads: hkv, qLen: 1, kvLen: 1031, qkDim: 128)))
        }
        // Wide decode tiles (>= 16 stacked heads) take the prefill micro-kernels.
        Harness.check(row("MQA 32/1 decode", .init(qHeads: 32, kvHeads: 1, qLen: 1, kvLen: 2100, qkDim: 64)))
    }

    func testKVLengthsAroundTiles() {
        let t = Self.defaultTile
        for kv in [1, 2, t - 1, t, t + 1, 509, 2 * t + 3] {
            Harness.check(row("kv \(kv) causal", .init(qHeads: 2, qLen: min(kv, 70), kvLen: kv, qkDim: 64, causal: true)))
            Harness.check(row("kv \(kv) decode", .init(qHeads: 4, kvHeads: 2, qLen: 1, kvLen: kv, qkDim: 128)))
        }
        for kv in [63, 64, 65, 127] {
            Harness.check(row("kv \(kv) small tiles", .init(qHeads: 2, qLen: 33, kvLen: kv, qkDim: 64, causal: true), ["block_kv": 64]))
        }
    }

    func testQueryLengths() {
        for ql in [1, 2, 15, 16, 17, 64, 65, 200] {
            Harness.check(row("q_len \(ql) < kv", .init(qHeads: 2, qLen: ql, kvLen: 300, qkDim: 64, causal: true)))
        }
        Harness.check(row("q_len = kv non-causal", .init(batch: 2, qHeads: 3, qLen: 77, kvLen: 77, qkDim: 64)))
    }

    func testMasks() {
        Harness.check(row("window", .init(qHeads: 2, qLen: 150, kvLen: 400, qkDim: 64, causal: true, window: 37)))
        Harness.check(row("window 1", .init(qHeads: 2, qLen: 20, kvLen: 20, qkDim: 64, causal: true, window: 1)))
        Harness.check(row("window without causal", .init(qHeads: 1, qLen: 30, kvLen: 90, qkDim: 64, window: 25)))
        Harness.check(row("window decode split", .init(qHeads: 8, kvHeads: 1, qLen: 1, kvLen: 5000, qkDim: 64, window: 3000)))
        Harness.check(row("explicit q_offset", .init(qHeads: 2, qLen: 40, kvLen: 100, qkDim: 64, causal: true, qOffset: 10)))
        Harness.check(row("fully masked first rows", .init(qHeads: 2, qLen: 90, kvLen: 50, qkDim: 64, causal: true, qOffset: -70)))
        Harness.check(row("fully masked last rows", .init(qHeads: 2, qLen: 60, kvLen: 40, qkDim: 64, causal: true, qOffset: 20, window: 30)))
        Harness.check(row("every row masked", .init(qHeads: 2, qLen: 5, kvLen: 40, qkDim: 64, causal: true, qOffset: -10)))
        Harness.check(row("kv_len 0", .init(qHeads: 2, qLen: 3, kvLen: 0, qkDim: 64)))
        // Masked rows are not fallbacks: they have nothing to recompute.
        let stats = checked(row("masked rows, no fallback", .init(qHeads: 2, qLen: 90, kvLen: 50, qkDim: 64, causal: true, qOffset: -70)))
        XCTAssertEqual(stats["fallback_rows"], 0)
    }

    func testPoisonInMaskedPositions() {
        for value in [Float.nan, .infinity, -.infinity, 1e10] {
            Harness.check(row("poison \(value) future keys", .init(qHeads: 2, qLen: 40, kvLen: 300, qkDim: 64, causal: true, qOffset: 100),
                              poison: value))
            Harness.check(row("poison \(value) outside window", .init(qHeads: 4, kvHeads: 2, qLen: 1, kvLen: 2000, qkDim: 64, window: 700),
                              poison: value))
        }
    }

    func testLargeScores() {
        // |scale q.k| ~ 1e4, far outside phi = 0's window: every row falls back to flash.
        Harness.check(row("scores ~1e4", .init(qHeads: 2, qLen: 64, kvLen: 200, qkDim: 64, causal: true),
                          maxAbs: 5e-3, lseRel: 1e-6, qScale: 35, kScale: 35))
        Harness.check(row("scores ~1e4 decode", .init(qHeads: 4, kvHeads: 1, qLen: 1, kvLen: 3000, qkDim: 128),
                          maxAbs: 5e-3, lseRel: 1e-6, qScale: 30, kScale: 30))
    }

    func testParameters() {
        let p = AttentionProblem(qHeads: 4, kvHeads: 2, qLen: 130, kvLen: 700, qkDim: 96, causal: true)
        for params: KernelParameters in [["block_kv": 32], ["block_kv": 512], ["kv_splits": 5], ["threads": 1],
                                         ["kv_splits": 3, "block_kv": 64], ["phi": 3.5], ["phi": -20]] {
            checked(row("params", p, params))
        }
        let decode = AttentionProblem(qHeads: 8, kvHeads: 8, qLen: 1, kvLen: 4099, qkDim: 128)
        for splits in [1.0, 2, 7, 16, 64] {
            checked(row("decode splits", decode, ["kv_splits": splits]))
        }
    }

    func testBatchAndScale() {
        Harness.check(row("batch 3 custom scale", .init(batch: 3, qHeads: 4, kvHeads: 2, qLen: 33, kvLen: 65, qkDim: 64, scale: 0.3, causal: true)))
        Harness.check(row("scale 0 is uniform", .init(qHeads: 1, qLen: 8, kvLen: 30, qkDim: 64, scale: 0)))
    }

    func testLongPrefill() {
        Harness.check(row("prefill 512", .init(qHeads: 2, qLen: 512, kvLen: 512, qkDim: 128, causal: true)))
    }

    // MARK: fixed max

    /// N(0, 1) inputs have row maxima of a few units: phi = 0 (the default) and nearby
    /// values keep every row in range.
    func testGoodPhiHasNoFallbacks() {
        let problems: [AttentionProblem] = [
            .init(qHeads: 32, kvHeads: 8, qLen: 1, kvLen: 4096, qkDim: 128),
            .init(qHeads: 8, qLen: 1, kvLen: 3000, qkDim: 128),
            .init(qHeads: 4, kvHeads: 2, qLen: 130, kvLen: 700, qkDim: 64, causal: true),
            .init(qHeads: 2, qLen: 150, kvLen: 400, qkDim: 64, causal: true, window: 37),
        ]
        for p in problems {
            for params: KernelParameters in [[:], ["phi": 4], ["phi": -30], ["phi": 40], ["kv_splits": 7]] {
                XCTAssertEqual(checked(row("good phi", p, params))["fallback_rows"], 0, "\(p) \(params)")
            }
        }
    }

    /// phi far above every score (the row's terms would underflow) or far below (they
    /// would overflow): every row falls back, and the result is still exact.
    func testWrongPhiFallsBackOnEveryRowAndStaysExact() {
        let problems: [AttentionProblem] = [
            .init(qHeads: 32, kvHeads: 8, qLen: 1, kvLen: 4096, qkDim: 128),
            .init(qHeads: 4, kvHeads: 2, qLen: 130, kvLen: 700, qkDim: 96, causal: true),
            .init(batch: 2, qHeads: 6, kvHeads: 2, qLen: 1, kvLen: 1031, qkDim: 64),
        ]
        for p in problems {
            let rows = Double(p.batch * p.qHeads * p.qLen)
            for phi in [1000.0, 80, -100, -1e30, 1e30] {
                for params: KernelParameters in [["phi": phi], ["phi": phi, "kv_splits": 4]] {
                    XCTAssertEqual(checked(row("wrong phi", p, params))["fallback_rows"], rows, "\(p) \(params)")
                }
            }
        }
        // Partly masked problems: only rows that see keys can fall back.
        let masked = AttentionProblem(qHeads: 2, qLen: 90, kvLen: 50, qkDim: 64, causal: true, qOffset: -70)
        XCTAssertEqual(checked(row("wrong phi, masked rows", masked, ["phi": 500]))["fallback_rows"], Double(2 * 20))
    }

    /// The window edges, with N(0, 1) inputs whose row maxima are about 1.5..4 (d = 64):
    /// phi ~ max - 61 (N = 4096: LO = 12 - 102 = -90 bits = -62.4) is just in range,
    /// phi ~ max - 70 is not; on the other side the high bound is per split.
    func testWindowEdges() {
        let p = AttentionProblem(qHeads: 4, qLen: 1, kvLen: 4096, qkDim: 64)
        XCTAssertEqual(checked(row("phi well inside", p, ["phi": 55]))["fallback_rows"], 0)
        XCTAssertEqual(checked(row("phi above the low bound", p, ["phi": 70]))["fallback_rows"], 4)
        XCTAssertEqual(checked(row("phi inside, high side", p, ["phi": -75]))["fallback_rows"], 0)
        XCTAssertEqual(checked(row("phi below the high bound", p, ["phi": -90]))["fallback_rows"], 4)
    }

    /// Precision does not depend on how far the scores sit from phi: the kernel never rounds
    /// t = S - phi to fp32 (that cost |t| 2^-25 per exponent, 4x flash's LSE error at phi = -40).
    /// Criterion of the FlashAttention tests: within 2x flash's own error against float64.
    func testPrecisionDoesNotDependOnPhi() throws {
        for p in [AttentionProblem(qHeads: 4, qLen: 128, kvLen: 300, qkDim: 64, causal: true),
                  AttentionProblem(qHeads: 8, kvHeads: 2, qLen: 1, kvLen: 3000, qkDim: 128)] {
            let x = AttentionInputs(p, seed: 31)
            let ref = try ReferenceBridge.softmax(p, x)
            func errors(_ out: AttentionOutput) -> (Double, Double) {
                (ErrorMetrics.compare(out.o.data, ref.o).maxAbs,
                 zip(out.lse.data, ref.lse).map { abs(Double($0) - $1) / max(1, abs($1)) }.max()!)
            }
            let (fo, fl) = errors(try FlashKernel().run(p, q: x.q, k: x.k, v: x.v))
            for phi in [-70.0, -40, -8, 0, 8, 45] {
                let out = try kernel.run(p, q: x.q, k: x.k, v: x.v, parameters: ["phi": phi])
                XCTAssertEqual(out.stats["fallback_rows"], 0, "\(p) phi \(phi)")
                let (o, l) = errors(out)
                XCTAssertLessThanOrEqual(o, 2 * fo + 1e-7, "\(p) phi \(phi): O error vs flash's \(fo)")
                XCTAssertLessThanOrEqual(l, 2 * fl + 1e-7, "\(p) phi \(phi): LSE error vs flash's \(fl)")
            }
        }
    }

    /// Scores of ~1e4 in some rows only: exactly those rows are recomputed.
    func testScoresFarAbovePhiFallBackRowByRow() throws {
        let p = AttentionProblem(qHeads: 8, kvHeads: 2, qLen: 1, kvLen: 3000, qkDim: 128)
        var x = AttentionInputs(p, seed: 5)
        for h in [1, 6] { for d in 0..<128 { x.q.data[h * 128 + d] *= 900 } } // |x| ~ 1e4 in heads 1 and 6
        let out = try kernel.run(p, q: x.q, k: x.k, v: x.v)
        XCTAssertEqual(out.stats["fallback_rows"], 2)
        let ref = try ReferenceBridge.softmax(p, x)
        XCTAssertLessThanOrEqual(ErrorMetrics.compare(out.o.data, ref.o).maxAbs, 5e-3)
        for h in 0..<8 where ![1, 6].contains(h) {
            let err = (0..<128).map { abs(Double(out.o.data[h * 128 + $0]) - ref.o[h * 128 + $0]) }.max()!
            XCTAssertLessThanOrEqual(err, 2e-5, "head \(h)")
        }
        // Prefill: a band of rows with large scores.
        let q = AttentionProblem(qHeads: 2, qLen: 100, kvLen: 300, qkDim: 64, causal: true)
        var y = AttentionInputs(q, seed: 6)
        for i in 40..<45 { for d in 0..<64 { y.q.data[(100 + i) * 64 + d] *= 400 } }
        let o2 = try kernel.run(q, q: y.q, k: y.k, v: y.v)
        XCTAssertEqual(o2.stats["fallback_rows"], 5)
        let ref2 = try ReferenceBridge.softmax(q, y)
        XCTAssertLessThanOrEqual(ErrorMetrics.compare(o2.o.data, ref2.o).maxAbs, 5e-3)
    }

    /// When every row falls back the kernel hands the whole problem to flash with the same
    /// block_kv and kv_splits: the bits are flash's.
    func testAllRowsFallingBackGivesFlashBits() throws {
        let p = AttentionProblem(qHeads: 32, kvHeads: 8, qLen: 1, kvLen: 5000, qkDim: 128)
        let x = AttentionInputs(p, seed: 7)
        let um = try kernel.run(p, q: x.q, k: x.k, v: x.v, parameters: ["phi": 1e6])
        let fl = try FlashKernel().run(p, q: x.q, k: x.k, v: x.v)
        XCTAssertEqual(um.o.data.map(\.bitPattern), fl.o.data.map(\.bitPattern))
        XCTAssertEqual(um.lse.data.map(\.bitPattern), fl.lse.data.map(\.bitPattern))
    }

    /// Splits and merges depend on the shape only and sum in a fixed order.
    func testThreadCountsGiveIdenticalBits() throws {
        for (p, params) in [(AttentionProblem(qHeads: 4, kvHeads: 2, qLen: 200, kvLen: 333, qkDim: 96, causal: true), KernelParameters()),
                            (AttentionProblem(qHeads: 8, kvHeads: 1, qLen: 1, kvLen: 9000, qkDim: 64), [:]),
                            (AttentionProblem(qHeads: 32, kvHeads: 8, qLen: 1, kvLen: 4096, qkDim: 128), ["kv_splits": 5]),
                            (AttentionProblem(qHeads: 4, kvHeads: 2, qLen: 1, kvLen: 3000, qkDim: 128), ["phi": 300])] {
            let x = AttentionInputs(p, seed: 8)
            var results: [AttentionOutput] = []
            for threads in [1.0, 2, 3] {
                var q = params; q["threads"] = threads
                results.append(try kernel.run(p, q: x.q, k: x.k, v: x.v, parameters: q))
            }
            for r in results.dropFirst() {
                XCTAssertEqual(r.o.data.map(\.bitPattern), results[0].o.data.map(\.bitPattern), "\(p)")
                XCTAssertEqual(r.lse.data.map(\.bitPattern), results[0].lse.data.map(\.bitPattern), "\(p)")
                XCTAssertEqual(r.stats, results[0].stats, "\(p)")
            }
            let again = try kernel.run(p, q: x.q, k: x.k, v: x.v, parameters: params)
            XCTAssertEqual(again.o.data.map(\.bitPattern), results[0].o.data.map(\.bitPattern), "repeat \(p)")
        }
    }

    /// NaN in what a row sees makes that row NaN (through the fallback), not 0 or finite.
    func testNaNInVisibleInputPropagates() throws {
        let p = AttentionProblem(qHeads: 2, qLen: 20, kvLen: 40, qkDim: 64, causal: true)
        var x = AttentionInputs(p, seed: 12)
        x.q.data[5 * 64 + 3] = .nan
        let o = try kernel.run(p, q: x.q, k: x.k, v: x.v).o
        XCTAssertTrue(o.data[5 * 64..<6 * 64].allSatisfy(\.isNaN))
        XCTAssertFalse(o.data[6 * 64..<7 * 64].contains(where: \.isNaN))
        let d = AttentionProblem(qHeads: 4, kvHeads: 2, qLen: 1, kvLen: 2000, qkDim: 64)
        var y = AttentionInputs(d, seed: 13)
        y.v.data[1500 * 64] = .nan  // kv head 0, key 1500: q heads 0 and 1
        let out = try kernel.run(d, q: y.q, k: y.k, v: y.v)
        XCTAssertTrue(out.o.data[0].isNaN && out.o.data[64].isNaN)
        XCTAssertFalse(out.o.data[128..<256].contains(where: \.isNaN))
        // +-Inf in a visible key: whatever flash makes of the row, unified_max makes too.
        for value in [Float.infinity, -.infinity] {
            var z = AttentionInputs(d, seed: 14)
            for i in 0..<64 { z.k.data[(2000 + 700) * 64 + i] = value } // kv head 1, key 700
            let um = try kernel.run(d, q: z.q, k: z.k, v: z.v), fl = try FlashKernel().run(d, q: z.q, k: z.k, v: z.v)
            XCTAssertEqual(um.o.data.map(\.isNaN), fl.o.data.map(\.isNaN), "\(value)")
            XCTAssertEqual(um.lse.data.map(\.isNaN), fl.lse.data.map(\.isNaN), "\(value)")
            XCTAssertEqual(um.stats["fallback_rows"], 2, "\(value)")
        }
    }

    // MARK: C ABI: per-head phi and validation

    func runC(_ p: AttentionProblem, _ x: AttentionInputs, phi: Float = 0, perHead: [Float]?, count: Int64? = nil,
              o: inout [Float], lse: inout [Float], fallback: inout Int64) -> (Int32, String) {
        var cp = p.cProblem
        var status = attune_status()
        let rc = x.q.data.withUnsafeBufferPointer { qb in x.k.data.withUnsafeBufferPointer { kb in x.v.data.withUnsafeBufferPointer { vb in
            o.withUnsafeMutableBufferPointer { ob in lse.withUnsafeMutableBufferPointer { lb in
                withUnsafeMutablePointer(to: &fallback) { fb in
                    (perHead ?? []).withUnsafeBufferPointer { hb in
                        var t = attune_attention_tensors(q: qb.baseAddress, k: kb.baseAddress, v: vb.baseAddress, o: ob.baseAddress, lse: lb.baseAddress)
                        var params = attune_unified_max_params()
                        params.phi = phi
                        params.phi_per_head = perHead == nil ? nil : hb.baseAddress
                        params.phi_per_head_count = count ?? Int64(perHead?.count ?? 0)
                        params.fallback_rows_out = fb
                        return attune_unified_max_attention(&cp, &t, &params, &status)
                    }
                }
            } }
        } } }
        return (rc, withUnsafeBytes(of: status.message) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) })
    }

    /// A calibrated per-head phi: one head's wrong value sends only that head's rows to flash.
    func testPerHeadPhi() throws {
        let p = AttentionProblem(qHeads: 8, kvHeads: 2, qLen: 3, kvLen: 2000, qkDim: 64, causal: true)
        let x = AttentionInputs(p, seed: 14)
        let ref = try ReferenceBridge.softmax(p, x)
        var o = [Float](repeating: .nan, count: p.oShape.reduce(1, *)), lse = [Float](repeating: .nan, count: p.lseShape.reduce(1, *))
        var fallback: Int64 = -1
        var phis: [Float] = [0, 1, 2, 3, 4, 5, 6, 7]
        XCTAssertEqual(runC(p, x, phi: 1e9, perHead: phis, o: &o, lse: &lse, fallback: &fallback).0, 0)
        XCTAssertEqual(fallback, 0, "per-head values override the scalar")
        XCTAssertLessThanOrEqual(ErrorMetrics.compare(o, ref.o).maxAbs, 2e-5)
        phis[5] = 400
        o = o.map { _ in .nan }
        XCTAssertEqual(runC(p, x, perHead: phis, o: &o, lse: &lse, fallback: &fallback).0, 0)
        XCTAssertEqual(fallback, 3)
        XCTAssertLessThanOrEqual(ErrorMetrics.compare(o, ref.o).maxAbs, 2e-5)
        let lseErr = zip(lse, ref.lse).map { abs(Double($0) - $1) / max(1, abs($1)) }.max()!
        XCTAssertLessThanOrEqual(lseErr, 2e-6)
    }

    /// Sequence-major [B, L, H, D] tensors read through strides, with and without fallback
    /// rows (the recompute builds strided sub-problems): same numbers as contiguous.
    func testSequenceMajorStrides() throws {
        let p = AttentionProblem(batch: 2, qHeads: 4, kvHeads: 2, qLen: 37, kvLen: 600, qkDim: 64, vDim: 32, causal: true)
        let x = AttentionInputs(p, seed: 21)
        let ref = try ReferenceBridge.softmax(p, x)
        func toBLHD(_ t: Tensor) -> [Float] {
            let (b, h, l, d) = (t.shape[0], t.shape[1], t.shape[2], t.shape[3])
            var out = [Float](repeating: 0, count: t.count)
            for bi in 0..<b { for hi in 0..<h { for li in 0..<l { for di in 0..<d {
                out[((bi * l + li) * h + hi) * d + di] = t.data[((bi * h + hi) * l + li) * d + di]
            } } } }
            return out
        }
        let q = toBLHD(x.q), k = toBLHD(x.k), v = toBLHD(x.v)
        let refBLHD = toBLHD(Tensor(shape: p.oShape, data: ref.o.map(Float.init)))
        func blhd(_ h: Int, _ l: Int, _ d: Int) -> attune_strides {
            attune_strides(batch: Int64(l * h * d), head: Int64(d), row: Int64(h * d))
        }
        for phis: [Float] in [[0, 0, 0, 0], [0, 0, 500, 0], [-500, -500, -500, -500]] {
            var cp = p.cProblem
            cp.q_stride = blhd(4, 37, 64)
            cp.k_stride = blhd(2, 600, 64)
            cp.v_stride = blhd(2, 600, 32)
            cp.o_stride = blhd(4, 37, 32)
            var o = [Float](repeating: .nan, count: p.oShape.reduce(1, *))
            var lse = [Float](repeating: .nan, count: p.lseShape.reduce(1, *))
            var fallback: Int64 = -1
            var status = attune_status()
            let rc = q.withUnsafeBufferPointer { qb in k.withUnsafeBufferPointer { kb in v.withUnsafeBufferPointer { vb in
                o.withUnsafeMutableBufferPointer { ob in lse.withUnsafeMutableBufferPointer { lb in phis.withUnsafeBufferPointer { hb in
                    withUnsafeMutablePointer(to: &fallback) { fb in
                    var t = attune_attention_tensors(q: qb.baseAddress, k: kb.baseAddress, v: vb.baseAddress,
                                                     o: ob.baseAddress, lse: lb.baseAddress)
                    var params = attune_unified_max_params()
                    params.phi_per_head = hb.baseAddress
                    params.phi_per_head_count = 4
                    params.kv_splits = 2
                    params.fallback_rows_out = fb
                    return attune_unified_max_attention(&cp, &t, &params, &status)
                    }
                } } }
            } } }
            XCTAssertEqual(rc, 0)
            XCTAssertEqual(fallback, Int64(phis.filter { $0 != 0 }.count * 2 * 37), "\(phis)")
            XCTAssertLessThanOrEqual(ErrorMetrics.compare(o, refBLHD.map(Double.init)).maxAbs, 2e-5, "\(phis)")
            let lseErr = zip(lse, ref.lse).map { abs(Double($0) - $1) / max(1, abs($1)) }.max()!
            XCTAssertLessThanOrEqual(lseErr, 2e-6, "\(phis)")
        }
    }

    func testInvalidPhiIsRejected() {
        let p = AttentionProblem(qHeads: 2, qLen: 4, kvLen: 40, qkDim: 16)
        let x = AttentionInputs(p, seed: 1)
        for bad in [Double.nan, .infinity, -.infinity, 1e39] {
            XCTAssertThrowsError(try kernel.run(p, q: x.q, k: x.k, v: x.v, parameters: ["phi": bad])) { error in
                XCTAssertTrue("\(error)".contains("phi"), "\(error)")
            }
        }
        XCTAssertThrowsError(try kernel.run(p, q: x.q, k: x.k, v: x.v, parameters: ["block_kv": -1]))
        XCTAssertThrowsError(try kernel.run(p, q: x.q, k: x.k, v: x.v, parameters: ["block_q": 64])) { error in
            XCTAssertTrue("\(error)".contains("no parameter 'block_q'"), "\(error)")
        }
        var o = [Float](repeating: 0, count: p.oShape.reduce(1, *)), lse = [Float](repeating: 0, count: p.lseShape.reduce(1, *))
        var fallback: Int64 = 0
        let cases: [(Float, [Float]?, Int64?, String)] = [
            (.nan, nil, nil, "phi must be finite"),
            (.infinity, nil, nil, "phi must be finite"),
            (0, [0, .nan], nil, "phi_per_head[1]"),
            (0, [0, -.infinity], nil, "phi_per_head[1]"),
            (0, [0, 0, 0], nil, "q heads"),
            (0, nil, 2, "NULL"),
        ]
        for (phi, perHead, count, needle) in cases {
            let (rc, message) = runC(p, x, phi: phi, perHead: perHead, count: count, o: &o, lse: &lse, fallback: &fallback)
            XCTAssertEqual(rc, Int32(ATTUNE_ERR_INVALID_ARGUMENT.rawValue), needle)
            XCTAssertTrue(message.contains(needle), "'\(message)' should mention \(needle)")
        }
    }

    /// Generated code calls the kernel with its parameters; phi keeps its value as a C literal.
    func testCInvocation() {
        let lines = kernel.cInvocation(["phi": -3.25, "block_kv": 128])!.joined(separator: "\n")
        XCTAssertTrue(lines.contains(".phi = -3.25"), lines)
        XCTAssertTrue(lines.contains(".block_kv = 128"), lines)
        XCTAssertTrue(lines.contains("attune_unified_max_attention(&p, &t, &params, &status)"), lines)
        XCTAssertTrue(kernel.cInvocation([:])!.joined().contains(".phi = 0.0"))
    }
}
