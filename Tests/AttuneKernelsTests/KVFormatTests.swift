import AttuneBench
import AttuneKernels
import AttuneNumerics
import AttuneTensor
import CAttuneKernels
import XCTest

/// K/V stored as bf16 or int8 (`KVFormat`): flash and unified_max against the float64
/// reference over the stored values (exact for the format: fp32 rounding only), and
/// against the reference over the fp32 values within the format's bound
/// (Docs/NUMERICS.md, "KV cache formats"); kernels that read f32 only refuse.
final class KVFormatTests: XCTestCase {
    static let kernels = ["flash", "unified_max"]
    static let formats: [KVFormat] = [.bf16, .int8]

    /// Ragged lengths around the 256-key tile, GQA and MHA, decode and prefill (narrow and
    /// wide q tiles), windows, dv != dqk, batches, split KV.
    static let problems: [(String, AttentionProblem, KernelParameters)] = [
        ("decode MHA", .init(qHeads: 4, qLen: 1, kvLen: 777, qkDim: 128, causal: true), [:]),
        ("decode GQA 8/2", .init(qHeads: 8, kvHeads: 2, qLen: 1, kvLen: 1031, qkDim: 64, causal: true), [:]),
        ("decode GQA 6/2 ragged", .init(qHeads: 6, kvHeads: 2, qLen: 1, kvLen: 257, qkDim: 80, causal: true), [:]),
        ("decode MQA split", .init(qHeads: 8, kvHeads: 1, qLen: 1, kvLen: 5000, qkDim: 64, causal: true), ["kv_splits": 4]),
        ("decode window", .init(qHeads: 8, kvHeads: 2, qLen: 1, kvLen: 3000, qkDim: 128, causal: true, window: 700), [:]),
        ("short chunk (narrow)", .init(qHeads: 4, kvHeads: 2, qLen: 3, kvLen: 509, qkDim: 64, causal: true), [:]),
        ("prefill chunk (wide)", .init(qHeads: 4, kvHeads: 2, qLen: 70, kvLen: 300, qkDim: 64, causal: true), [:]),
        ("prefill window", .init(qHeads: 2, qLen: 150, kvLen: 400, qkDim: 64, causal: true, window: 37), [:]),
        ("dv < dqk batch 2", .init(batch: 2, qHeads: 2, qLen: 17, kvLen: 255, qkDim: 96, vDim: 48, causal: true), [:]),
        ("one key", .init(qHeads: 2, qLen: 1, kvLen: 1, qkDim: 64, causal: true), [:]),
        ("small tiles", .init(qHeads: 4, kvHeads: 2, qLen: 33, kvLen: 129, qkDim: 64, causal: true), ["block_kv": 64]),
    ]

    func testExactOverStoredValuesAndWithinFormatBound() throws {
        for kernelName in Self.kernels {
            let kernel = try KernelRegistry.kernel(named: kernelName)
            for format in Self.formats {
                for (name, base, params) in Self.problems {
                    var problem = base
                    problem.kvFormat = format
                    let x = AttentionInputs(base, seed: 7)
                    let label = "\(kernelName) \(format.rawValue) \(name) \(problem)"
                    let out = try kernel.runStored(problem, q: x.q, k: x.k, v: x.v, parameters: params)
                    let rows = problem.batch * problem.kvHeads * problem.kvLen
                    let kStored = format.unpack(format.pack(x.k.data, dim: problem.qkDim), rows: rows, dim: problem.qkDim)
                    let vStored = format.unpack(format.pack(x.v.data, dim: problem.vDim), rows: rows, dim: problem.vDim)
                    let rp = ReferenceBridge.problem(base)
                    let exact = try ReferenceAttention.softmax(rp, q: x.q.data.map(Double.init), k: kStored, v: vStored)
                    let m = ErrorMetrics.compare(out.o.data, exact.o)
                    XCTAssertEqual(m.nanCount, 0, label)
                    XCTAssertLessThanOrEqual(m.maxAbs, 2e-5, "\(label): vs the reference over the stored K/V")
                    for (a, b) in zip(out.lse.data, exact.lse) where Double(a) != b {
                        XCTAssertLessThanOrEqual(abs(Double(a) - b) / max(1, abs(b)), 2e-6, "\(label): LSE")
                    }
                    // Against the fp32 data: the format's own bound, row by row.
                    let fp32 = try ReferenceBridge.softmax(base, x)
                    let bound = Self.formatBound(base, format, x, kStored, vStored)
                    var worst = 0.0
                    for i in 0..<out.o.data.count {
                        let err = abs(Double(out.o.data[i]) - fp32.o[i])
                        XCTAssertLessThanOrEqual(err, bound[i] + 2e-5, "\(label): element \(i) vs fp32 K/V")
                        worst = max(worst, err / (bound[i] + 2e-5))
                    }
                    // The bound is not vacuous: the error uses a visible share of it.
                    XCTAssertGreaterThan(worst, 0.001, "\(label): the format's error should show")
                }
            }
        }
    }

    /// bf16 tiles (`precision=bf16`) over a bf16/int8 cache widen the stored values while
    /// packing them to bf16: the same bits as the bf16 tiles over fp32 K/V holding those
    /// values (an int8 element times its scale is one fp32 rounding either way), on wide
    /// (≥ 16-row) problems, with NaN in a V row's visible keys too (the per-row fallback).
    func testBF16TilesReadTheStoredFormats() throws {
        let flash = FlashKernel()
        let problems: [AttentionProblem] = [
            .init(qHeads: 4, kvHeads: 2, qLen: 70, kvLen: 300, qkDim: 64, causal: true),
            .init(qHeads: 2, qLen: 150, kvLen: 400, qkDim: 64, causal: true, window: 37),
            .init(batch: 2, qHeads: 2, qLen: 17, kvLen: 255, qkDim: 96, vDim: 48, causal: true),
        ]
        for format in Self.formats {
            for (n, base) in problems.enumerated() {
                var x = AttentionInputs(base, seed: 13)
                if n == 0 { x.v.data[5 * base.vDim + 3] = .nan } // head 0, key 5: every row from 235 on sees it
                var problem = base
                problem.kvFormat = format
                let rows = base.batch * base.kvHeads * base.kvLen
                let kStored = format.unpack(format.pack(x.k.data, dim: base.qkDim), rows: rows, dim: base.qkDim).map { Float($0) }
                let vStored = format.unpack(format.pack(x.v.data, dim: base.vDim), rows: rows, dim: base.vDim).map { Float($0) }
                let got = try flash.runStored(problem, q: x.q, k: x.k, v: x.v, parameters: ["precision": 1])
                let want = try flash.run(base, q: x.q, k: Tensor(shape: x.k.shape, data: kStored), v: Tensor(shape: x.v.shape, data: vStored),
                                         parameters: ["precision": 1])
                XCTAssertEqual(got.o.data.map(\.bitPattern), want.o.data.map(\.bitPattern), "\(format) \(base)")
                XCTAssertEqual(got.lse.data.map(\.bitPattern), want.lse.data.map(\.bitPattern), "\(format) \(base)")
            }
        }
    }

    /// int8 Q·Kᵀ tiles (`precision=int8qk`) over a bf16/int8 cache smooth and quantise K
    /// from the stored values (an int8 element times its row's scale) and take V through
    /// the bf16 tiles' packing: the same bits as int8qk over fp32 K/V holding those values,
    /// on wide problems (GQA, MHA, windows, dv ≠ dqk, batches, more than 512 keys so the
    /// key mean samples, small tiles), with NaN in visible V (the per-row fallback) and in
    /// a visible K row. Each problem runs twice, so the second call reuses the K buffer
    /// kept from the first (and from the larger problems before it).
    func testInt8QKTilesReadTheStoredFormats() throws {
        let flash = FlashKernel()
        let problems: [(AttentionProblem, KernelParameters)] = [
            (.init(qHeads: 4, kvHeads: 2, qLen: 70, kvLen: 300, qkDim: 64, causal: true), [:]),
            (.init(qHeads: 8, kvHeads: 2, qLen: 96, kvLen: 1300, qkDim: 128, causal: true), [:]),
            (.init(qHeads: 2, qLen: 150, kvLen: 400, qkDim: 64, causal: true, window: 37), [:]),
            (.init(batch: 2, qHeads: 2, qLen: 17, kvLen: 255, qkDim: 96, vDim: 48, causal: true), [:]),
            (.init(qHeads: 4, kvHeads: 1, qLen: 40, kvLen: 200, qkDim: 80, causal: false), ["block_kv": 64]),
        ]
        for format in Self.formats {
            for (n, (base, params)) in problems.enumerated() {
                var x = AttentionInputs(base, seed: 17)
                if n == 0 { x.v.data[5 * base.vDim + 3] = .nan }      // head 0, key 5: every row from 235 on sees it
                if n == 2 { x.k.data[390 * base.qkDim + 7] = .nan }   // key 390: the last rows' windows see it
                var problem = base
                problem.kvFormat = format
                let rows = base.batch * base.kvHeads * base.kvLen
                let kStored = format.unpack(format.pack(x.k.data, dim: base.qkDim), rows: rows, dim: base.qkDim).map { Float($0) }
                let vStored = format.unpack(format.pack(x.v.data, dim: base.vDim), rows: rows, dim: base.vDim).map { Float($0) }
                let parameters = params.merging(["precision": 2]) { $1 }
                let want = try flash.run(base, q: x.q, k: Tensor(shape: x.k.shape, data: kStored), v: Tensor(shape: x.v.shape, data: vStored),
                                         parameters: parameters)
                if n == 0 { XCTAssertTrue(want.o.data.contains { $0.isNaN } && want.o.data.contains { !$0.isNaN }, "the NaN reaches some rows only") }
                for round in 0..<2 {
                    let got = try flash.runStored(problem, q: x.q, k: x.k, v: x.v, parameters: parameters)
                    XCTAssertEqual(got.o.data.map(\.bitPattern), want.o.data.map(\.bitPattern), "\(format) \(base) call \(round)")
                    XCTAssertEqual(got.lse.data.map(\.bitPattern), want.lse.data.map(\.bitPattern), "\(format) \(base) call \(round)")
                }
            }
        }
    }

    /// |O' - O| <= (e^(2 D) - 1) max_j |v'_jd| + max_j |v'_jd - v_jd| per row and column, with
    /// D = scale max_j sum_d |q_d| |k'_jd - k_jd| over the row's visible keys: the stored
    /// scores move by at most D, so each probability by a factor within e^(+-2D).
    static func formatBound(_ p: AttentionProblem, _ format: KVFormat, _ x: AttentionInputs,
                            _ kStored: [Double], _ vStored: [Double]) -> [Double] {
        var bound = [Double](repeating: 0, count: p.oShape.reduce(1, *))
        let scale = Double(p.resolvedScale), off = p.resolvedQOffset, group = p.qHeads / p.kvHeads
        for b in 0..<p.batch {
            for h in 0..<p.qHeads {
                let g = h / group
                for i in 0..<p.qLen {
                    let q = (0..<p.qkDim).map { abs(Double(x.q.data[((b * p.qHeads + h) * p.qLen + i) * p.qkDim + $0])) }
                    let pos = off + i
                    let keys = (0..<p.kvLen).filter { j in (!p.causal || j <= pos) && (p.window.map { j > pos - $0 } ?? true) }
                    var d = 0.0
                    var vMax = [Double](repeating: 0, count: p.vDim), vErr = vMax
                    for j in keys {
                        let kr = ((b * p.kvHeads + g) * p.kvLen + j) * p.qkDim, vr = ((b * p.kvHeads + g) * p.kvLen + j) * p.vDim
                        var s = 0.0
                        for e in 0..<p.qkDim { s += q[e] * abs(kStored[kr + e] - Double(x.k.data[kr + e])) }
                        d = max(d, scale * s)
                        for e in 0..<p.vDim {
                            vMax[e] = max(vMax[e], abs(vStored[vr + e]))
                            vErr[e] = max(vErr[e], abs(vStored[vr + e] - Double(x.v.data[vr + e])))
                        }
                    }
                    let o = ((b * p.qHeads + h) * p.qLen + i) * p.vDim
                    for e in 0..<p.vDim { bound[o + e] = (exp(2 * d) - 1) * vMax[e] + vErr[e] }
                }
            }
        }
        return bound
    }

    /// The per-element storage error each format promises (Docs/NUMERICS.md): bf16 within
    /// 2^-8 relative, int8 within max|row| / 254.
    func testQuantisationErrorPerElement() {
        var rng = SeededNormal(seed: 3)
        let dim = 64, rows = 50
        let x = (0..<rows * dim).map { _ in Float(rng.next()) * 3 }
        let bf = KVFormat.bf16.unpack(KVFormat.bf16.pack(x, dim: dim), rows: rows, dim: dim)
        for (a, b) in zip(x, bf) { XCTAssertLessThanOrEqual(abs(Double(a) - b), abs(Double(a)) * 0x1p-8) }
        let i8 = KVFormat.int8.unpack(KVFormat.int8.pack(x, dim: dim), rows: rows, dim: dim)
        for r in 0..<rows {
            let row = x[r * dim..<(r + 1) * dim].map { abs(Double($0)) }
            let step: Double = row.max()! / 254 * (1 + 1e-6)
            for e in 0..<dim {
                let err: Double = abs(Double(x[r * dim + e]) - i8[r * dim + e])
                XCTAssertLessThanOrEqual(err, step, "row \(r)")
            }
        }
        // Zero rows store zero; non-finite rows read back as NaN, never as plausible numbers.
        let special: [Float] = [0, 0, 0, 0, 1, .nan, 2, 3]
        let back = KVFormat.int8.unpack(KVFormat.int8.pack(special, dim: 4), rows: 2, dim: 4)
        XCTAssertEqual(Array(back[0..<4]), [0, 0, 0, 0])
        XCTAssertTrue(back[4..<8].allSatisfy { $0.isNaN })
        XCTAssertTrue(KVFormat.bf16.unpack(KVFormat.bf16.pack([.infinity, .nan], dim: 2), rows: 1, dim: 2)[1].isNaN)
    }

    /// prefix_shared runs both passes through flash: exact over the stored values too, with the
    /// suffix's keys (and int8 scales) addressed past the prefix.
    func testPrefixSharedReadsTheFormats() throws {
        let base = AttentionProblem(batch: 3, qHeads: 4, kvHeads: 2, qLen: 1, kvLen: 300, qkDim: 64, causal: true)
        var x = AttentionInputs(base, seed: 5)
        x.sharePrefix(200, base)
        for format in Self.formats {
            var problem = base
            problem.kvFormat = format
            let out = try KernelRegistry.kernel(named: "prefix_shared").runStored(problem, q: x.q, k: x.k, v: x.v, parameters: ["prefix_len": 200])
            let rows = base.batch * base.kvHeads * base.kvLen
            let k = format.unpack(format.pack(x.k.data, dim: 64), rows: rows, dim: 64)
            let v = format.unpack(format.pack(x.v.data, dim: 64), rows: rows, dim: 64)
            let exact = try ReferenceAttention.softmax(ReferenceBridge.problem(base), q: x.q.data.map(Double.init), k: k, v: v)
            XCTAssertLessThanOrEqual(ErrorMetrics.compare(out.o.data, exact.o).maxAbs, 2e-5, format.rawValue)
        }
    }

    /// kascade gathers its selected keys row by row, widening each block's rows: with
    /// fraction=1 (every key kept) it is exact over the stored values, and at its default it
    /// matches its own run over fp32 copies of the stored values (same selection, same sums).
    func testKascadeReadsTheFormats() throws {
        let base = AttentionProblem(qHeads: 8, kvHeads: 2, qLen: 40, kvLen: 600, qkDim: 64, causal: true)
        let x = AttentionInputs(base, seed: 9)
        let kernel = try KernelRegistry.kernel(named: "kascade")
        for format in Self.formats {
            var problem = base
            problem.kvFormat = format
            let rows = base.batch * base.kvHeads * base.kvLen
            let k = format.unpack(format.pack(x.k.data, dim: 64), rows: rows, dim: 64)
            let v = format.unpack(format.pack(x.v.data, dim: 64), rows: rows, dim: 64)
            let exact = try ReferenceAttention.softmax(ReferenceBridge.problem(base), q: x.q.data.map(Double.init), k: k, v: v)
            let all = try kernel.runStored(problem, q: x.q, k: x.k, v: x.v, parameters: ["fraction": 1])
            XCTAssertLessThanOrEqual(ErrorMetrics.compare(all.o.data, exact.o).maxAbs, 2e-5, format.rawValue)
            let sparse = try kernel.runStored(problem, q: x.q, k: x.k, v: x.v, parameters: ["fraction": 0.1, "min_k": 16, "tile": 16])
            let widened = try kernel.run(base, q: x.q, k: Tensor(shape: base.kShape, data: k.map(Float.init)),
                                         v: Tensor(shape: base.vShape, data: v.map(Float.init)),
                                         parameters: ["fraction": 0.1, "min_k": 16, "tile": 16])
            XCTAssertLessThanOrEqual(ErrorMetrics.compare(sparse.o.data, widened.o.data.map(Double.init)).maxAbs, 1e-5, format.rawValue)
        }
    }

    /// Non-finite values in keys no query sees never reach the output (as with f32 K/V).
    func testPoisonedMaskedKeysStayOut() throws {
        let base = AttentionProblem(qHeads: 4, kvHeads: 2, qLen: 1, kvLen: 600, qkDim: 64, causal: true, window: 300)
        var x = AttentionInputs(base, seed: 11)
        x.poison(keys: AttentionInputs.keysNoQuerySees(base), with: .nan, base)
        for kernelName in Self.kernels {
            for format in Self.formats {
                var problem = base
                problem.kvFormat = format
                let out = try KernelRegistry.kernel(named: kernelName).runStored(problem, q: x.q, k: x.k, v: x.v)
                XCTAssertTrue(out.o.data.allSatisfy(\.isFinite), "\(kernelName) \(format.rawValue)")
            }
        }
    }

    private func message(_ status: attune_status) -> String {
        withUnsafeBytes(of: status.message) { String(decoding: $0.prefix(while: { $0 != 0 }), as: UTF8.self) }
    }

    /// Kernels reading f32 K/V only refuse other formats: in Swift with a message naming the
    /// kernel, and at the C ABI with ATTUNE_ERR_UNSUPPORTED (never reading the bytes as floats).
    func testOtherKernelsRefuse() throws {
        var problem = AttentionProblem(qHeads: 2, qLen: 1, kvLen: 64, qkDim: 64, causal: true)
        problem.kvFormat = .bf16
        // Which kernels refuse it in Swift is KernelScope's "kv-bf16" row (KernelScopeTests); here, in C.
        var p = problem.cProblem
        let data = [Float](repeating: 0, count: 64 * 64 * 2)
        var o = [Float](repeating: 0, count: 128)
        var status = attune_status()
        data.withUnsafeBufferPointer { d in
            o.withUnsafeMutableBufferPointer { ob in
                var t = attune_attention_tensors(q: d.baseAddress, k: d.baseAddress, v: d.baseAddress, o: ob.baseAddress, lse: nil)
                XCTAssertEqual(attune_sigmoid_attention(&p, &t, nil, &status), Int32(ATTUNE_ERR_UNSUPPORTED.rawValue))
                XCTAssertEqual(attune_sparge_attention(&p, &t, nil, &status), Int32(ATTUNE_ERR_UNSUPPORTED.rawValue))
                XCTAssertTrue(message(status).contains("bf16"))
                // flash checks int8's scales before reading anything.
                p.kv.format = Int32(ATTUNE_KV_INT8.rawValue)
                XCTAssertEqual(attune_flash_attention(&p, &t, nil, &status), Int32(ATTUNE_ERR_INVALID_ARGUMENT.rawValue))
                XCTAssertTrue(message(status).contains("scale"), message(status))
                p.kv.format = 7
                XCTAssertEqual(attune_flash_attention(&p, &t, nil, &status), Int32(ATTUNE_ERR_INVALID_ARGUMENT.rawValue))
            }
        }
    }
}
