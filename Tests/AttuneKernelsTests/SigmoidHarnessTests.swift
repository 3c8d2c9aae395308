import AttuneKernels
import AttuneNumerics
import AttuneTensor
import CAttuneKernels
import Foundation
import XCTest

/// Bounds for the sigmoid rows: what fp32 can promise against the float64 reference.
///
/// O = Σ_j σ_j v_j has no normalisation, so its size and its rounding grow with the number
/// of visible keys n and with σ, i.e. with the bias. With N(0, 1) inputs the score
/// z = scale·q·k is about N(0, 1), so σ_j ≤ σ(b + 3) for all but a few keys, and |v| ≲ 4.
/// The fp32 error has three parts, each ≈ u = 2⁻²⁴ relative:
///   - rounding of the running sum over n keys: a random walk, ≲ u·√n·max|partial sum|,
///     with |partial sum| ≲ 4·√n·σ(b + 3) for random-sign v;
///   - σ_j itself (exp2 polynomial, reciprocal + Newton, blend): a few u relative per term,
///     summed with random signs: ≲ u·√n·4·σ(b + 3);
///   - the score: fp32 q·k carries ≈ u·√D·|q||k|·scale ≈ u·D in z, which moves σ_j by
///     σ_j(1 − σ_j)·Δz ≤ σ_j·Δz, again summed with random signs.
/// All three are ≲ c·u·n·σ(b + 3) with c of order 4–D/8 (the kernel sums each KV tile from
/// zero before adding it to the row, which keeps the first part well inside this). `bound`
/// takes 16·u·max(n, D)·σ(b + 3·spread), floored at 1e-6 (the reference's own float32 view
/// of the outputs). Measured (print with ATTUNE_PRINT_ERRORS=1): every row sits at least
/// 12x below its bound; the ~1e4-score rows have explicit bounds, 6x and 45x above.
enum SigmoidBounds {
    static let u = 0x1p-24

    static func sigma(_ z: Double) -> Double { z >= 0 ? 1 / (1 + exp(-z)) : exp(z) / (1 + exp(z)) }

    /// `spread` is the standard deviation of z = scale·q·k (1 for N(0, 1) inputs and the
    /// default scale): the large weights sit at σ(b + 3·spread).
    static func bound(keys n: Int, headDim d: Int, bias: Double, spread: Double = 1) -> Double {
        max(1e-6, 16 * u * Double(max(n, d)) * sigma(bias + 3 * spread))
    }

    static func row(_ name: String, _ problem: AttentionProblem, bias: Double, parameters: KernelParameters = [:],
                    maxAbs: Double? = nil, seed: UInt64 = 1, qScale: Float = 1, kScale: Float = 1,
                    poison: Float? = nil) -> HarnessCase {
        var params = parameters
        params["bias"] = bias
        // Visible keys per row are at most min(kv_len, window).
        let n = min(problem.kvLen, problem.window ?? problem.kvLen)
        let spread = Double(problem.resolvedScale) * Double(problem.qkDim).squareRoot() * Double(qScale * kScale)
        return HarnessCase(name: name, problem: problem, kernel: "sigmoid", parameters: params,
                           maxAbs: maxAbs ?? bound(keys: n, headDim: problem.qkDim, bias: bias, spread: spread),
                           seed: seed, qScale: qScale, kScale: kScale, poison: poison)
    }

    /// Harness.check, printing the measured error and the bound when ATTUNE_PRINT_ERRORS is set.
    static func check(_ c: HarnessCase, file: StaticString = #filePath, line: UInt = #line) {
        if ProcessInfo.processInfo.environment["ATTUNE_PRINT_ERRORS"] != nil, let r = try? Harness.run(c) {
            print(String(format: "sigmoid-error %.3e bound %.3e ratio %6.1f  %@", r.o.maxAbs, c.maxAbs,
                         c.maxAbs / max(r.o.maxAbs, 1e-300), "\(c) bias=\(c.parameters["bias"] ?? 0)"))
        }
        Harness.check(c, file: file, line: line)
    }
}

/// The table of sigmoid rows: the edge cases of FlashHarnessTests, against the float64
/// sigmoid reference (`ReferenceAttention.sigmoid`, via HarnessCase's sigmoid branch).
final class SigmoidHarnessTests: XCTestCase {
    typealias B = SigmoidBounds
    static let defaultTile = 256

    func testHeadDims() {
        for d in [64, 80, 96, 128, 256] {
            B.check(B.row("head dim \(d)", .init(qHeads: 2, qLen: 67, kvLen: 131, qkDim: d, causal: true), bias: -2))
        }
        B.check(B.row("dv < dqk", .init(qHeads: 2, qLen: 40, kvLen: 97, qkDim: 128, vDim: 64), bias: -1))
        B.check(B.row("dv > dqk", .init(qHeads: 2, qLen: 40, kvLen: 97, qkDim: 64, vDim: 128, causal: true), bias: -3))
        B.check(B.row("odd dims", .init(qHeads: 1, qLen: 19, kvLen: 37, qkDim: 72, vDim: 40, causal: true), bias: 0.5))
    }

    func testGroupedQueryAttention() {
        for (hq, hkv) in [(4, 4), (4, 2), (6, 2), (8, 2), (8, 1), (16, 2)] {
            B.check(B.row("GQA \(hq)/\(hkv) prefill", .init(qHeads: hq, kvHeads: hkv, qLen: 50, kvLen: 83, qkDim: 64, causal: true),
                          bias: -log(83)))
            B.check(B.row("GQA \(hq)/\(hkv) decode", .init(qHeads: hq, kvHeads: hkv, qLen: 1, kvLen: 1031, qkDim: 128),
                          bias: -log(1031)))
        }
    }

    func testKVLengthsAroundTiles() {
        let t = Self.defaultTile
        for kv in [1, 2, t - 1, t, t + 1, 509, 2 * t + 3] {
            B.check(B.row("kv \(kv) causal", .init(qHeads: 2, qLen: min(kv, 70), kvLen: kv, qkDim: 64, causal: true), bias: -1))
            B.check(B.row("kv \(kv) decode", .init(qHeads: 4, kvHeads: 2, qLen: 1, kvLen: kv, qkDim: 128), bias: -1))
        }
        for kv in [63, 64, 65, 127] {
            B.check(B.row("kv \(kv) small tiles", .init(qHeads: 2, qLen: 33, kvLen: kv, qkDim: 64, causal: true), bias: -1,
                          parameters: ["block_kv": 64, "block_q": 16]))
        }
    }

    func testQueryLengths() {
        for ql in [1, 2, 15, 16, 17, 64, 65, 200] {
            B.check(B.row("q_len \(ql) < kv", .init(qHeads: 2, qLen: ql, kvLen: 300, qkDim: 64, causal: true), bias: -log(300)))
        }
        B.check(B.row("q_len = kv non-causal", .init(batch: 2, qHeads: 3, qLen: 77, kvLen: 77, qkDim: 64), bias: -log(77)))
    }

    func testDecodeSplits() {
        let decode = AttentionProblem(qHeads: 8, kvHeads: 8, qLen: 1, kvLen: 4099, qkDim: 128)
        for splits in [1.0, 2, 7, 16] {
            B.check(B.row("decode splits \(Int(splits))", decode, bias: -log(4099), parameters: ["kv_splits": splits]))
        }
        // auto: 8 items < 16, so the kernel splits by itself.
        B.check(B.row("decode auto splits GQA", .init(qHeads: 32, kvHeads: 8, qLen: 1, kvLen: 5000, qkDim: 128), bias: -log(5000)))
        B.check(B.row("decode MQA splits", .init(qHeads: 8, kvHeads: 1, qLen: 1, kvLen: 3001, qkDim: 64), bias: -2,
                      parameters: ["kv_splits": 5]))
    }

    func testMasks() {
        B.check(B.row("window", .init(qHeads: 2, qLen: 150, kvLen: 400, qkDim: 64, causal: true, window: 37), bias: -log(37)))
        B.check(B.row("window 1", .init(qHeads: 2, qLen: 20, kvLen: 20, qkDim: 64, causal: true, window: 1), bias: 0))
        B.check(B.row("window without causal", .init(qHeads: 1, qLen: 30, kvLen: 90, qkDim: 64, window: 25), bias: -1))
        B.check(B.row("window decode split", .init(qHeads: 8, kvHeads: 1, qLen: 1, kvLen: 5000, qkDim: 64, window: 3000),
                      bias: -log(3000)))
        B.check(B.row("explicit q_offset", .init(qHeads: 2, qLen: 40, kvLen: 100, qkDim: 64, causal: true, qOffset: 10), bias: -2))
        // Rows at negative positions see nothing: the whole first tile and part of the second are empty.
        B.check(B.row("fully masked first rows", .init(qHeads: 2, qLen: 90, kvLen: 50, qkDim: 64, causal: true, qOffset: -70),
                      bias: -1, parameters: ["block_q": 32]))
        // Rows past the window's reach see nothing: the last rows are empty.
        B.check(B.row("fully masked last rows", .init(qHeads: 2, qLen: 60, kvLen: 40, qkDim: 64, causal: true, qOffset: 20, window: 30),
                      bias: -1, parameters: ["block_q": 16]))
        B.check(B.row("every row masked", .init(qHeads: 2, qLen: 5, kvLen: 40, qkDim: 64, causal: true, qOffset: -10), bias: 2))
        B.check(B.row("kv_len 0", .init(qHeads: 2, qLen: 3, kvLen: 0, qkDim: 64), bias: 2))
        B.check(B.row("fully masked rows, decode-shaped tile", .init(qHeads: 4, kvHeads: 1, qLen: 3, kvLen: 600, qkDim: 64, causal: true,
                                                                     qOffset: -1, window: 400), bias: -1))
    }

    func testPoisonInMaskedPositions() {
        for value in [Float.nan, .infinity, -.infinity, 1e10] {
            B.check(B.row("poison \(value) future keys", .init(qHeads: 2, qLen: 40, kvLen: 300, qkDim: 64, causal: true, qOffset: 100),
                          bias: -log(140), poison: value))
            B.check(B.row("poison \(value) outside window", .init(qHeads: 4, kvHeads: 2, qLen: 1, kvLen: 2000, qkDim: 64, window: 700),
                          bias: -log(700), poison: value))
            B.check(B.row("poison \(value) before window, prefill", .init(qHeads: 2, qLen: 64, kvLen: 900, qkDim: 64, causal: true, window: 300),
                          bias: -log(300), poison: value))
        }
    }

    func testLargeScores() {
        // |scale·q·k| around 1e4: σ saturates to 0 or 1 for almost every key and nothing may
        // overflow. The fp32 score carries ≈ 1e4·6e-8 = 6e-4 of rounding, which moves σ by up
        // to 1.5e-4 for the few keys near z = 0; hence the looser, explicit bounds.
        B.check(B.row("scores ~1e4", .init(qHeads: 2, qLen: 64, kvLen: 200, qkDim: 64, causal: true), bias: -3,
                      maxAbs: 2e-3, qScale: 35, kScale: 35))
        B.check(B.row("scores ~1e4 decode", .init(qHeads: 4, kvHeads: 1, qLen: 1, kvLen: 3000, qkDim: 128), bias: -3,
                      maxAbs: 5e-3, qScale: 30, kScale: 30))
    }

    func testParameters() {
        let p = AttentionProblem(qHeads: 4, kvHeads: 2, qLen: 130, kvLen: 700, qkDim: 96, causal: true)
        for params: KernelParameters in [["block_q": 16, "block_kv": 32], ["block_q": 96, "block_kv": 512], ["kv_splits": 5],
                                         ["threads": 1], ["kv_splits": 3, "block_kv": 64], ["block_q": 8]] {
            B.check(B.row("params", p, bias: -log(700), parameters: params))
        }
    }

    func testBatchAndScale() {
        B.check(B.row("batch 3 custom scale", .init(batch: 3, qHeads: 4, kvHeads: 2, qLen: 33, kvLen: 65, qkDim: 64, scale: 0.3, causal: true),
                      bias: -log(65)))
        // scale 0: every weight is σ(b), O = σ(b) Σ v.
        B.check(B.row("scale 0 is σ(b) Σ v", .init(qHeads: 1, qLen: 8, kvLen: 30, qkDim: 64, scale: 0), bias: -1.5))
    }

    /// The bias across its practical range, on a tile boundary-heavy prefill and a decode.
    func testBiasRange() {
        for bias in [-10.0, -7.62, -5, -3, -1, 0, 1, 2] {
            B.check(B.row("bias \(bias) prefill", .init(qHeads: 4, kvHeads: 2, qLen: 100, kvLen: 700, qkDim: 128, causal: true), bias: bias))
            B.check(B.row("bias \(bias) decode", .init(qHeads: 8, kvHeads: 2, qLen: 1, kvLen: 2500, qkDim: 128), bias: bias))
        }
    }

    /// 4096 keys with the bias at its realistic value -ln(4096), and at the top of the range.
    func testLongSequences() {
        let n = 4096
        B.check(B.row("prefill 4096 bias -ln n", .init(qHeads: 2, qLen: 256, kvLen: n, qkDim: 128, causal: true), bias: -log(Double(n))))
        B.check(B.row("decode 4096 bias -ln n", .init(qHeads: 8, kvHeads: 2, qLen: 1, kvLen: n, qkDim: 128), bias: -log(Double(n))))
        B.check(B.row("decode 4096 bias 2", .init(qHeads: 4, kvHeads: 4, qLen: 1, kvLen: n, qkDim: 128), bias: 2))
        B.check(B.row("prefill 4096 bias -10", .init(qHeads: 1, qLen: 64, kvLen: n, qkDim: 64, causal: true), bias: -10))
    }

    func testLongPrefill() {
        B.check(B.row("prefill 512", .init(qHeads: 2, qLen: 512, kvLen: 512, qkDim: 128, causal: true), bias: -log(512)))
    }
}

/// Properties of `sigmoid` beyond the table: determinism, thread counts, the bias, LSE,
/// splits, decode = prefill, NaN propagation and validation.
final class SigmoidPropertyTests: XCTestCase {
    let kernel = SigmoidKernel()

    func run(_ p: AttentionProblem, _ x: AttentionInputs, _ params: KernelParameters = [:]) throws -> AttentionOutput {
        try kernel.run(p, q: x.q, k: x.k, v: x.v, parameters: params)
    }

    func bits(_ t: Tensor) -> [UInt32] { t.data.map(\.bitPattern) }

    func maxDiff(_ a: Tensor, _ b: Tensor) -> Float { zip(a.data, b.data).map { abs($0 - $1) }.max() ?? 0 }

    func testRegisteredAsSigmoidAttention() throws {
        let k = try KernelRegistry.kernel(named: "sigmoid")
        XCTAssertEqual(k.normalizer, .sigmoid)
        XCTAssertTrue(k.isExact)
        XCTAssertEqual(k.parameters.map(\.name), ["block_q", "block_kv", "kv_splits", "threads", "bias", "precision"])
        XCTAssertFalse(k.parameters.first { $0.name == "bias" }!.isInteger)
    }

    func testRepeatedRunsAreBitwiseIdentical() throws {
        for p in [AttentionProblem(qHeads: 8, qLen: 300, kvLen: 300, qkDim: 128, causal: true),
                  AttentionProblem(qHeads: 32, kvHeads: 8, qLen: 1, kvLen: 5000, qkDim: 128)] {
            let x = AttentionInputs(p, seed: 7)
            let a = try run(p, x, ["bias": -5]), b = try run(p, x, ["bias": -5])
            XCTAssertEqual(bits(a.o), bits(b.o), "\(p)")
        }
    }

    /// Work is split by the problem's shape only and partials are added in split order,
    /// so the thread count cannot change a bit.
    func testThreadCountsGiveIdenticalBits() throws {
        for (p, extra) in [(AttentionProblem(qHeads: 4, kvHeads: 2, qLen: 200, kvLen: 333, qkDim: 96, causal: true), [:] as KernelParameters),
                           (AttentionProblem(qHeads: 8, kvHeads: 1, qLen: 1, kvLen: 9000, qkDim: 64), [:]),
                           (AttentionProblem(qHeads: 4, kvHeads: 2, qLen: 70, kvLen: 2000, qkDim: 64, causal: true), ["kv_splits": 3])] {
            let x = AttentionInputs(p, seed: 8)
            var params = extra
            params["bias"] = -log(Double(p.kvLen))
            var outs: [AttentionOutput] = []
            for threads in [1.0, 2, 3] {
                params["threads"] = threads
                outs.append(try run(p, x, params))
            }
            XCTAssertEqual(bits(outs[0].o), bits(outs[1].o), "\(p)")
            XCTAssertEqual(bits(outs[0].o), bits(outs[2].o), "\(p)")
        }
    }

    func testInputsAreNotModified() throws {
        let p = AttentionProblem(qHeads: 4, kvHeads: 2, qLen: 70, kvLen: 500, qkDim: 64, causal: true)
        let x = AttentionInputs(p, seed: 9)
        let copy = x
        _ = try run(p, x, ["kv_splits": 3, "bias": -3])
        XCTAssertEqual(bits(x.q), bits(copy.q))
        XCTAssertEqual(bits(x.k), bits(copy.k))
        XCTAssertEqual(bits(x.v), bits(copy.v))
    }

    /// The bias must reach the arithmetic: each change of b changes O, by the amount the
    /// reference says; and no bias means bias 0.
    func testBiasChangesTheOutput() throws {
        for p in [AttentionProblem(qHeads: 2, qLen: 50, kvLen: 120, qkDim: 64, causal: true),
                  AttentionProblem(qHeads: 4, kvHeads: 2, qLen: 1, kvLen: 1500, qkDim: 128)] {
            let x = AttentionInputs(p, seed: 10)
            let zero = try run(p, x, ["bias": 0])
            XCTAssertEqual(bits(try run(p, x).o), bits(zero.o), "absent bias must mean 0")
            var previous = zero.o
            for bias in [-7.62, -2, 1] {
                let o = try run(p, x, ["bias": bias]).o
                XCTAssertGreaterThan(maxDiff(o, previous), 1e-3, "bias \(bias) did not change the output")
                previous = o
                let ref = try ReferenceBridge.sigmoid(p, bias: bias, x)
                XCTAssertLessThanOrEqual(ErrorMetrics.compare(o.data, ref).maxAbs, 1e-4)
            }
        }
    }

    /// Masking options still matter, as for flash.
    func testEveryOptionChangesTheOutput() throws {
        let base = AttentionProblem(qHeads: 2, qLen: 50, kvLen: 120, qkDim: 64)
        let x = AttentionInputs(base, seed: 10)
        let plain = try run(base, x, ["bias": -2]).o
        var variants: [(String, AttentionProblem)] = []
        var p = base; p.scale = 0.05; variants.append(("scale", p))
        p = base; p.causal = true; variants.append(("causal", p))
        p = base; p.causal = true; p.qOffset = 20; variants.append(("q_offset", p))
        p = base; p.window = 30; variants.append(("window", p))
        for (name, v) in variants {
            XCTAssertGreaterThan(maxDiff(try run(v, x, ["bias": -2]).o, plain), 1e-3, "\(name) did not change the output")
        }
    }

    func testInvalidBiasIsRejected() throws {
        let p = AttentionProblem(qHeads: 2, qLen: 4, kvLen: 4, qkDim: 8)
        let x = AttentionInputs(p, seed: 2)
        for bad in [Double.nan, .infinity, -.infinity] {
            XCTAssertThrowsError(try run(p, x, ["bias": bad])) { error in
                XCTAssertTrue("\(error)".contains("bias") && "\(error)".contains("finite"), "\(error)")
            }
        }
        // Finite as a Double, infinite as the kernel's fp32.
        XCTAssertThrowsError(try run(p, x, ["bias": 1e39])) { error in
            XCTAssertTrue("\(error)".contains("bias"), "\(error)")
        }
        // The C entry point checks on its own: NaN and Inf biases are invalid arguments.
        for bad in [Float.nan, .infinity, -.infinity] {
            var cp = p.cProblem
            var params = attune_sigmoid_params(block_q: 0, block_kv: 0, kv_splits: 0, threads: 0, bias: bad, precision: 0)
            var status = attune_status()
            var o = [Float](repeating: 0, count: p.oShape.reduce(1, *))
            let rc = x.q.data.withUnsafeBufferPointer { q in x.k.data.withUnsafeBufferPointer { k in x.v.data.withUnsafeBufferPointer { v in
                o.withUnsafeMutableBufferPointer { ob -> Int32 in
                    var t = attune_attention_tensors(q: q.baseAddress, k: k.baseAddress, v: v.baseAddress, o: ob.baseAddress, lse: nil)
                    return attune_sigmoid_attention(&cp, &t, &params, &status)
                }
            }}}
            XCTAssertEqual(rc, Int32(ATTUNE_ERR_INVALID_ARGUMENT.rawValue))
            let message = withUnsafeBytes(of: status.message) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            XCTAssertTrue(message.contains("bias must be finite"), message)
        }
        // Other parameters are validated as for flash.
        XCTAssertThrowsError(try run(p, x, ["block_kv": -1]))
        XCTAssertThrowsError(try run(p, x, ["block_kv": 64.5]))
        XCTAssertThrowsError(try run(p, x, ["gemm": 1])) { XCTAssertTrue("\($0)".contains("no parameter 'gemm'"), "\($0)") }
    }

    /// LSE has no meaning without a softmax denominator: the kernel writes 0 everywhere,
    /// for rows that see keys and rows that see none, split or not.
    func testLSEIsZero() throws {
        for (p, params) in [(AttentionProblem(qHeads: 2, qLen: 30, kvLen: 40, qkDim: 64, causal: true, qOffset: -5), [:] as KernelParameters),
                            (AttentionProblem(qHeads: 4, kvHeads: 1, qLen: 1, kvLen: 3000, qkDim: 64), ["kv_splits": 4])] {
            let x = AttentionInputs(p, seed: 3)
            var cp = p.cProblem
            var params = attune_sigmoid_params(block_q: 0, block_kv: 0, kv_splits: Int32(params["kv_splits"] ?? 0), threads: 0, bias: -3, precision: 0)
            var status = attune_status()
            var o = [Float](repeating: .nan, count: p.oShape.reduce(1, *))
            var lse = [Float](repeating: .nan, count: p.lseShape.reduce(1, *))
            let rc = x.q.data.withUnsafeBufferPointer { q in x.k.data.withUnsafeBufferPointer { k in x.v.data.withUnsafeBufferPointer { v in
                o.withUnsafeMutableBufferPointer { ob in lse.withUnsafeMutableBufferPointer { lb -> Int32 in
                    var t = attune_attention_tensors(q: q.baseAddress, k: k.baseAddress, v: v.baseAddress, o: ob.baseAddress, lse: lb.baseAddress)
                    return attune_sigmoid_attention(&cp, &t, &params, &status)
                }}
            }}}
            XCTAssertEqual(rc, 0)
            XCTAssertTrue(lse.allSatisfy { $0 == 0 && $0.sign == .plus }, "\(p): \(lse.prefix(8))")
            XCTAssertFalse(o.contains(where: \.isNaN))
        }
    }

    /// Rows that see no key are exactly +0, never NaN, however large σ(b) is.
    func testFullyMaskedRowsAreExactlyZero() throws {
        let p = AttentionProblem(qHeads: 2, qLen: 40, kvLen: 30, qkDim: 64, causal: true, qOffset: -20)
        var x = AttentionInputs(p, seed: 4)
        // Head 0's key 0 (seen by rows 20...) is NaN: rows 0..<20 must stay exactly 0 nonetheless.
        for d in 0..<64 { x.k.data[d] = .nan; x.v.data[d] = .nan }
        let o = try run(p, x, ["bias": 2, "block_q": 16]).o
        for h in 0..<2 {
            for i in 0..<40 {
                let row = o.data[(h * 40 + i) * 64..<(h * 40 + i + 1) * 64]
                if i < 20 { XCTAssertTrue(row.allSatisfy { $0 == 0 && $0.sign == .plus }, "head \(h) row \(i)") }
                else if h == 0 { XCTAssertTrue(row.allSatisfy(\.isNaN), "head 0 row \(i) sees the NaN key") }
                else { XCTAssertFalse(row.contains { $0.isNaN || $0 == 0 }, "head 1 row \(i) has no NaN key") }
            }
        }
    }

    /// Split-KV partials add up: every split count meets the harness bound against the
    /// float64 reference (one chunk and many differ only by where fp32 rounds), and the
    /// parameter does change the summation.
    func testSplitsAgreeWithTheReference() throws {
        let p = AttentionProblem(qHeads: 4, kvHeads: 2, qLen: 1, kvLen: 6000, qkDim: 128)
        let x = AttentionInputs(p, seed: 5)
        let ref = try ReferenceBridge.sigmoid(p, bias: 0, x)
        let bound = SigmoidBounds.bound(keys: 6000, headDim: 128, bias: 0)
        var outs: [Tensor] = []
        for s in [1.0, 2, 3, 11, 64] {
            let o = try run(p, x, ["kv_splits": s, "bias": 0]).o
            XCTAssertLessThanOrEqual(ErrorMetrics.compare(o.data, ref).maxAbs, bound, "splits \(s)")
            outs.append(o)
        }
        XCTAssertNotEqual(bits(outs[0]), bits(outs[1]), "kv_splits=2 was ignored")
    }

    /// Decoding one token at a time over a growing cache equals causal prefill, row by row.
    func testStepwiseDecodeEqualsPrefill() throws {
        let n = 40
        let p = AttentionProblem(qHeads: 4, kvHeads: 2, qLen: n, kvLen: n, qkDim: 64, causal: true)
        let x = AttentionInputs(p, seed: 11)
        let prefill = try run(p, x, ["bias": -log(40)])
        func slice(_ t: Tensor, heads: Int, rows: Range<Int>, dim: Int, len: Int) -> Tensor {
            var data: [Float] = []
            for h in 0..<heads { for r in rows { data += t.data[((h * len) + r) * dim..<((h * len) + r + 1) * dim] } }
            return Tensor(shape: [1, heads, rows.count, dim], data: data)
        }
        for i in [0, 1, 17, n - 1] {
            let step = AttentionProblem(qHeads: 4, kvHeads: 2, qLen: 1, kvLen: i + 1, qkDim: 64, causal: true)
            let q = slice(x.q, heads: 4, rows: i..<(i + 1), dim: 64, len: n)
            let k = slice(x.k, heads: 2, rows: 0..<(i + 1), dim: 64, len: n)
            let v = slice(x.v, heads: 2, rows: 0..<(i + 1), dim: 64, len: n)
            let out = try kernel.run(step, q: q, k: k, v: v, parameters: ["bias": -log(40)])
            let expected = slice(prefill.o, heads: 4, rows: i..<(i + 1), dim: 64, len: n)
            XCTAssertLessThanOrEqual(maxDiff(out.o, expected), 2e-6, "row \(i)")
        }
    }

    func testNaNInVisibleInputPropagates() throws {
        let p = AttentionProblem(qHeads: 2, qLen: 20, kvLen: 40, qkDim: 64, causal: true)
        var x = AttentionInputs(p, seed: 12)
        x.q.data[5 * 64 + 3] = .nan  // head 0, row 5
        let o = try run(p, x, ["bias": -1]).o
        XCTAssertTrue(o.data[5 * 64..<6 * 64].allSatisfy(\.isNaN), "row with NaN query must be NaN")
        XCTAssertFalse(o.data[6 * 64..<7 * 64].contains(where: \.isNaN), "other rows stay finite")

        var y = AttentionInputs(p, seed: 12)
        y.v.data[0] = .nan  // key 0 is visible to every row of head 0
        let o2 = try run(p, y, ["bias": -1]).o
        XCTAssertTrue(o2.data[0 * 64].isNaN && o2.data[19 * 64].isNaN)
    }

    /// A NaN key visible to some rows of a tile but not others reaches exactly the rows that
    /// see it: prefill (wide tiles) and short q tiles (the narrow path).
    func testPoisonVisibleToSomeRowsOnly() throws {
        for (qLen, heads, kvHeads) in [(64, 1, 1), (3, 4, 1)] {
            let p = AttentionProblem(qHeads: heads, kvHeads: kvHeads, qLen: qLen, kvLen: 64, qkDim: 64, causal: true, qOffset: 64 - qLen - 2)
            var x = AttentionInputs(p, seed: 13)
            let j = qLen == 64 ? 30 : 60  // visible to the later rows only
            for d in 0..<64 { x.k.data[j * 64 + d] = .nan; x.v.data[j * 64 + d] = .nan }
            let o = try run(p, x, ["bias": -2]).o
            let ref = try ReferenceBridge.sigmoid(p, bias: -2, x)
            let off = p.resolvedQOffset
            for h in 0..<heads {
                for i in 0..<qLen {
                    let base = (h * qLen + i) * 64
                    let row = o.data[base..<base + 64]
                    if off + i < j {
                        XCTAssertFalse(row.contains(where: \.isNaN), "q_len \(qLen) head \(h) row \(i) cannot see key \(j)")
                        let err = zip(row, ref[base..<base + 64]).map { abs(Double($0) - $1) }.max() ?? 0
                        XCTAssertLessThanOrEqual(err, 1e-5)
                    } else {
                        XCTAssertTrue(row.allSatisfy(\.isNaN), "q_len \(qLen) head \(h) row \(i) sees key \(j)")
                    }
                }
            }
        }
    }

    /// Codegen's call: the bias appears as a C float literal that reads back exactly.
    func testCInvocationCarriesTheBias() throws {
        let lines = try XCTUnwrap(kernel.cInvocation(["bias": -log(256), "block_kv": 128]))
        XCTAssertEqual(lines.count, 2)
        XCTAssertTrue(lines[0].contains(".block_kv = 128"), lines[0])
        XCTAssertTrue(lines[1].contains("attune_sigmoid_attention(&p, &t, &params, &status)"), lines[1])
        let literal = try XCTUnwrap(lines[0].range(of: ".bias = ").map { String(lines[0][$0.upperBound...].prefix { $0 != "}" }) })
        XCTAssertTrue(literal.hasSuffix("f"), literal)
        XCTAssertEqual(Float(String(literal.dropLast())), Float(-log(256.0)))
        for x in [0.0, -5, 1e-5, 2.5e20, -7.62] {
            let line = try XCTUnwrap(kernel.cInvocation(["bias": x])?.first)
            let s = try XCTUnwrap(line.range(of: ".bias = ").map { String(line[$0.upperBound...].prefix { $0 != "}" }) })
            XCTAssertTrue(s.hasSuffix("f"), s)
            XCTAssertEqual(Float(String(s.dropLast())), Float(x), s)
        }
    }
}
