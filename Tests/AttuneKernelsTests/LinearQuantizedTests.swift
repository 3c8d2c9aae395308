import AttuneBench
import CAttuneKernels
import XCTest

/// Quantised-weight linear layers (Kernels/linear_q8.c), int8 and q4 alike: the stored
/// format read back through the layout the headers document, the rounding bound, and
/// both kernels (VNNI GEMV with int8 activations for rows ≤ 8, bf16 panels above)
/// against float64 references.
final class LinearQuantizedTests: XCTestCase {
    static let f32 = Int32(ATTUNE_Q8_SCALE_F32), f16 = Int32(ATTUNE_Q8_SCALE_F16)

    /// One code width's C entry points (attune_q8_* or attune_q4_*).
    struct Width {
        var bits: Int
        var check: (Int64, Int64, Int32) -> UnsafePointer<CChar>?
        var rowBytes: (Int64, Int64, Int32) -> Int64
        var quantizeF32: (UnsafePointer<Float>?, Int64, Int64, Int64, Int32, UnsafeMutableRawPointer?) -> Int64
        var quantizeBF16: (UnsafePointer<UInt16>?, Int64, Int64, Int64, Int32, UnsafeMutableRawPointer?) -> Int64
        var dequantize: (UnsafeRawPointer?, Int64, Int64, Int64, Int32, UnsafeMutablePointer<Float>?) -> Void
        var linear: (UnsafePointer<Float>?, Int64, Int64, UnsafeRawPointer?, Int64, Int64, Int32, UnsafePointer<Float>?,
                     UnsafeMutablePointer<Float>?, Int32) -> Int32
        var linearBlocks: (UnsafePointer<Float>?, Int64, Int64, UnsafePointer<UnsafeRawPointer?>?, UnsafePointer<Int64>?, Int64, Int64,
                           Int32, UnsafePointer<Float>?, UnsafeMutablePointer<Float>?, Int32) -> Int32
        var linearGated: (UnsafePointer<Float>?, Int64, Int64, UnsafeRawPointer?, UnsafeRawPointer?, Int64, Int64, Int32, Int32,
                          UnsafeMutablePointer<Float>?, Int32) -> Int32
        var linearConsuming: (UnsafeMutablePointer<Float>?, Int64, Int64, UnsafeRawPointer?, Int64, Int64, Int32, UnsafePointer<Float>?,
                              UnsafeMutablePointer<Float>?, Int32) -> Int32
        /// Codes lie in [-qmax, qmax].
        var qmax: Int { bits == 4 ? 7 : 127 }

        static var int8: Width { Width(bits: 8, check: attune_q8_check, rowBytes: attune_q8_row_bytes, quantizeF32: attune_q8_quantize_f32,
                                quantizeBF16: attune_q8_quantize_bf16, dequantize: attune_q8_dequantize, linear: attune_q8_linear,
                                linearBlocks: attune_q8_linear_blocks, linearGated: attune_q8_linear_gated,
                                linearConsuming: attune_q8_linear_consuming) }
        static var q4: Width { Width(bits: 4, check: attune_q4_check, rowBytes: attune_q4_row_bytes, quantizeF32: attune_q4_quantize_f32,
                              quantizeBF16: attune_q4_quantize_bf16, dequantize: attune_q4_dequantize, linear: attune_q4_linear,
                              linearBlocks: attune_q4_linear_blocks, linearGated: attune_q4_linear_gated,
                              linearConsuming: attune_q4_linear_consuming) }
    }
    static var widths: [Width] { [.int8, .q4] }

    /// One quantised weight and what the documented layout says it holds.
    struct Quantised {
        var kernels: Width
        var rows: Int, width: Int, group: Int, scale: Int32
        var bytes: [UInt8]
        /// q[r][i] and the scale of each group, decoded from `bytes` by the header's layout.
        var q: [[Int]] = [], scales: [[Float]] = []

        init(_ w: [Float], _ kernels: Width, rows: Int, width: Int, group: Int, scale: Int32) throws {
            (self.kernels, self.rows, self.width, self.group, self.scale) = (kernels, rows, width, group, scale)
            let rowBytes = Int(kernels.rowBytes(Int64(width), Int64(group), scale))
            guard rowBytes > 0 else { throw XCTSkip("format refused") }
            bytes = [UInt8](repeating: 0xAB, count: rows * rowBytes)
            let bad = bytes.withUnsafeMutableBytes { kernels.quantizeF32(w, Int64(rows), Int64(width), Int64(group), scale, $0.baseAddress) }
            XCTAssertEqual(bad, -1)
            decode(rowBytes: rowBytes)
        }

        /// The headers' layout, independently of the C code: superblocks of 512 weights,
        /// each the scales of the groups starting in it, then int8: 8 vectors of 4·lanes
        /// bytes; q4: 4 such vectors, vector u's low nibbles being int8's vector 2u and its
        /// high nibbles vector 2u + 1, each code stored as q + 8.
        mutating func decode(rowBytes: Int) {
            let sb = scale == LinearQuantizedTests.f16 ? 2 : 4
            func scaleAt(_ o: Int) -> Float {
                if sb == 2 { return Float(Float16(bitPattern: UInt16(bytes[o]) | UInt16(bytes[o + 1]) << 8)) }
                return Float(bitPattern: (0..<4).reduce(UInt32(0)) { $0 | UInt32(bytes[o + $1]) << (8 * $1) })
            }
            for r in 0..<rows {
                var o = r * rowBytes, rowQ = [Int](repeating: 0, count: width), rowS: [Float] = []
                for s0 in stride(from: 0, to: width, by: 512) {
                    let lanes = min(16, (width - s0) / 32)
                    for g in 0..<(width / group) where (s0..<(s0 + lanes * 32)).contains(g * group) {
                        rowS.append(scaleAt(o))
                        o += sb
                    }
                    for v in 0..<8 { for l in 0..<lanes { for b in 0..<4 {
                        if kernels.bits == 8 {
                            rowQ[s0 + l * 32 + 4 * v + b] = Int(Int8(bitPattern: bytes[o + v * 4 * lanes + l * 4 + b]))
                        } else {
                            let code = Int(bytes[o + v / 2 * 4 * lanes + l * 4 + b] >> (4 * (v % 2)) & 15)
                            XCTAssertNotEqual(code, 0, "q4 codes are q + 8 with |q| ≤ 7")
                            rowQ[s0 + l * 32 + 4 * v + b] = code - 8
                        }
                    } } }
                    o += lanes * 32 * kernels.bits / 8
                }
                XCTAssertEqual(o, (r + 1) * rowBytes, "row \(r) does not end where the next starts")
                q.append(rowQ)
                scales.append(rowS)
            }
        }

        /// ŵ in natural order from the C dequantiser.
        var dequantised: [Float] {
            var w = [Float](repeating: .nan, count: rows * width)
            bytes.withUnsafeBytes { kernels.dequantize($0.baseAddress, Int64(rows), Int64(width), Int64(group), scale, &w) }
            return w
        }

        func linear(_ x: [Float], rows n: Int, bias: [Float]? = nil, threads: Int32 = 0) -> [Float] {
            var y = [Float](repeating: .nan, count: n * rows)
            let b = bias ?? []
            let rc = bytes.withUnsafeBytes { w in b.withUnsafeBufferPointer {
                kernels.linear(x, Int64(n), Int64(width), w.baseAddress, Int64(rows), Int64(group), scale, bias == nil ? nil : $0.baseAddress, &y, threads)
            } }
            XCTAssertEqual(rc, 0)
            return y
        }
    }

    func normals(_ n: Int, seed: UInt64, scale: Float = 1) -> [Float] {
        var rng = SeededNormal(seed: seed)
        return (0..<n).map { _ in Float(rng.next()) * scale }
    }

    func roundedActivations(_ x: [Float], rows: Int, width: Int) -> [Float] {
        var xh = [Float](repeating: .nan, count: x.count)
        attune_q8_round_activations(x, Int64(rows), Int64(width), &xh)
        return xh
    }

    /// Formats the tests sweep: per-group (32, 64, 128, 512, 1024) and per-channel, both
    /// scale types, widths with and without a short last superblock (896 = 512 + 384 is
    /// Qwen2.5-0.5B's).
    static let formats: [(width: Int, group: Int)] = [(1088, 32), (1088, 64), (1088, 1088), (1024, 512), (96, 32), (96, 96), (3072, 1024), (896, 128)]

    func testStoredLayoutRoundsEachWeightWithinHalfItsScale() throws {
        for k in Self.widths {
            for (width, group) in Self.formats {
                for scale in [Self.f32, Self.f16] {
                    let rows = 5
                    var w = normals(rows * width, seed: 7, scale: 0.05)
                    // One group with an outlier, one all-zero row (scale 0).
                    w[3] = 2.5
                    for i in 0..<width { w[2 * width + i] = 0 }
                    let qw = try Quantised(w, k, rows: rows, width: width, group: group, scale: scale)
                    let wh = qw.dequantised
                    let what = "\(k.bits) bits width \(width) group \(group) scale \(scale == Self.f16 ? "f16" : "f32")"
                    let qmax = Float(k.qmax)
                    for r in 0..<rows {
                        for g in 0..<(width / group) {
                            let s = qw.scales[r][g]
                            let amax = (g * group..<(g + 1) * group).map { abs(w[r * width + $0]) }.max()!
                            // s = max|w|/qmax rounded to the stored precision, at most one unit up.
                            let unit: Float = scale == Self.f16 ? 1.0 / 1024 : 1.0 / 8_388_608
                            XCTAssertGreaterThanOrEqual(s * (qmax + 0.5), amax, what)
                            XCTAssertLessThanOrEqual(s, amax / qmax * (1 + 2 * unit), what)
                            for i in g * group..<(g + 1) * group {
                                let q = qw.q[r][i]
                                XCTAssert((-k.qmax...k.qmax).contains(q), what)
                                XCTAssertEqual(wh[r * width + i], Float(q) * s, "\(what): dequantiser disagrees with the layout")
                                // The float64 error of the stored ŵ against w.
                                XCTAssertLessThanOrEqual(abs(Double(w[r * width + i]) - Double(q) * Double(s)), Double(s) / 2 * (1 + 1e-6), what)
                            }
                        }
                    }
                    XCTAssertEqual(qw.scales[2], [Float](repeating: 0, count: width / group), "zero row: scale 0")
                    XCTAssert(wh[(2 * width)..<(3 * width)].allSatisfy { $0 == 0 })
                }
            }
        }
    }

    func testBF16SourceStoresTheSameBytesAsItsF32Value() throws {
        let (rows, width) = (3, 1088)
        let w = normals(rows * width, seed: 8)
        let bits = w.map { UInt16($0.bitPattern >> 16) }
        let asF32 = bits.map { Float(bitPattern: UInt32($0) << 16) }
        for k in Self.widths {
            for scale in [Self.f32, Self.f16] {
                let want = try Quantised(asF32, k, rows: rows, width: width, group: 32, scale: scale)
                var got = [UInt8](repeating: 0, count: want.bytes.count)
                let bad = got.withUnsafeMutableBytes { k.quantizeBF16(bits, Int64(rows), Int64(width), 32, scale, $0.baseAddress) }
                XCTAssertEqual(bad, -1)
                XCTAssertEqual(got, want.bytes)
            }
        }
    }

    func testFormatsThatCannotBeStoredAreRefusedBeforeWriting() {
        for k in Self.widths {
            let prefix = k.bits == 4 ? "q4 weights: " : "int8 weights: "
            for (width, group, why) in [(100, 32, "multiple of 32"), (96, 64, "divides the input width"), (0, 32, "multiple of 32"),
                                        (192, 96, "divide 512"), (1536, 768, "divide 512"), (64, 48, "multiple of 32"), (1088, 33, "multiple of 32")] {
                let reason = k.check(Int64(width), Int64(group), Self.f32).map { String(cString: $0) }
                XCTAssert(reason.map { $0.hasPrefix(prefix) && $0.contains(why) } ?? false, "width \(width) group \(group): \(reason ?? "accepted")")
                XCTAssertEqual(k.rowBytes(Int64(width), Int64(group), Self.f32), -1)
                var dst = [UInt8](repeating: 7, count: 64)
                let w = [Float](repeating: 1, count: max(width, 1))
                XCTAssertEqual(dst.withUnsafeMutableBytes { k.quantizeF32(w, 1, Int64(width), Int64(group), Self.f32, $0.baseAddress) }, 0)
                XCTAssertEqual(dst, [UInt8](repeating: 7, count: 64), "nothing written")
            }
            XCTAssertNotNil(k.check(64, 32, 2))
            XCTAssertNil(k.check(96, 96, Self.f16), "per-channel is any width that is a multiple of 32")
        }
        XCTAssertEqual(attune_q8_row_bytes(896, 32, Self.f16), 896 + 28 * 2)
        XCTAssertEqual(attune_q4_row_bytes(896, 32, Self.f16), 448 + 28 * 2, "Q4_0's 18 bytes per 32 weights")
    }

    func testUnstorableWeightsNameTheirRow() {
        for k in Self.widths {
            var w = [Float](repeating: 0.5, count: 4 * 64)
            w[2 * 64 + 5] = .nan
            var dst = [UInt8](repeating: 0, count: 4 * 72)
            XCTAssertEqual(dst.withUnsafeMutableBytes { k.quantizeF32(w, 4, 64, 32, Self.f32, $0.baseAddress) }, 2)
            w[2 * 64 + 5] = 0.5
            w[3 * 64] = -.infinity
            XCTAssertEqual(dst.withUnsafeMutableBytes { k.quantizeF32(w, 4, 64, 32, Self.f32, $0.baseAddress) }, 3)
            // f16 scales stop at 65504, so |w| > qmax · 65504 cannot be stored with them, but can with f32.
            w[3 * 64] = Float(k.qmax) * 65504 * 1.01
            XCTAssertEqual(dst.withUnsafeMutableBytes { k.quantizeF32(w, 4, 64, 32, Self.f16, $0.baseAddress) }, 3, "\(k.bits) bits")
            XCTAssertEqual(dst.withUnsafeMutableBytes { k.quantizeF32(w, 4, 64, 32, Self.f32, $0.baseAddress) }, -1, "\(k.bits) bits")
            w[3 * 64] = Float(k.qmax) * 65504 * 0.99
            XCTAssertEqual(dst.withUnsafeMutableBytes { k.quantizeF32(w, 4, 64, 32, Self.f16, $0.baseAddress) }, -1, "\(k.bits) bits")
        }
    }

    /// Decode rows (VNNI GEMV): exact integer run sums, so the result is the float64 dot
    /// product of ŵ and x̂ up to f32 accumulation of the scaled sums, and within the
    /// format's bound of the f32 weights and activations.
    func testGEMVMatchesFloat64OverQuantisedOperandsAndTheFormatBound() throws {
        for k in Self.widths {
            for (width, group) in Self.formats {
                for scale in [Self.f32, Self.f16] {
                    for n in [1, 2, 3, 8] {
                        let out = 37
                        let w = normals(out * width, seed: 11, scale: 0.05)
                        var x = normals(n * width, seed: 12)
                        x[1] = 30 // an outlier: its run's other activations lose precision, the bound says how much
                        let bias = normals(out, seed: 13)
                        let qw = try Quantised(w, k, rows: out, width: width, group: group, scale: scale)
                        let wh = qw.dequantised, xh = roundedActivations(x, rows: n, width: width)
                        let y = qw.linear(x, rows: n, bias: bias, threads: Int32(n % 2 + 1))
                        let what = "\(k.bits) bits width \(width) group \(group) rows \(n)"
                        for r in 0..<n {
                            for o in 0..<out {
                                var ref = Double(bias[o]), mag = abs(Double(bias[o])), exact = Double(bias[o]), bound = 0.0
                                for i in 0..<width {
                                    let (a, b) = (Double(xh[r * width + i]), Double(wh[o * width + i]))
                                    ref += a * b
                                    mag += abs(a * b)
                                    exact += Double(x[r * width + i]) * Double(w[o * width + i])
                                }
                                for g in 0..<(width / 32) {
                                    let run = (r * width + g * 32)..<(r * width + g * 32 + 32)
                                    let sx = Double(x[run].map(abs).max()!) / 127
                                    let sw = Double(qw.scales[o][(g * 32) / group])
                                    bound += sw / 2 * x[run].reduce(0) { $0 + Double(abs($1)) }
                                        + sx * (1 + 1e-6) / 2 * (0..<32).reduce(0) { $0 + abs(Double(wh[o * width + g * 32 + $1])) }
                                }
                                let tight = (Double(width / 32) + 8) * 0x1p-23 * mag
                                let got = Double(y[r * 37 + o])
                                XCTAssertLessThanOrEqual(abs(got - ref), tight, "\(what) [\(r), \(o)] vs float64 over ŵ, x̂")
                                XCTAssertLessThanOrEqual(abs(got - exact), bound + tight, "\(what) [\(r), \(o)] vs the f32 operands")
                            }
                        }
                    }
                }
            }
        }
    }

    /// Prefill rows (bf16 panels of ŵ, vdpbf16ps): activations are rounded to bf16, not
    /// int8, so besides the weights' rounding only bf16's 2^-9 per operand separates the
    /// result from the f32 operands.
    func testGEMMMatchesFloat64OverDequantisedWeightsAndTheFormatBound() throws {
        for k in Self.widths {
            for (width, group, n, out) in [(1088, 32, 9, 37), (896, 64, 33, 70), (96, 96, 40, 17), (3072, 1024, 12, 100), (896, 128, 17, 50), (1088, 1088, 10, 16)] {
                for scale in [Self.f32, Self.f16] {
                    let w = normals(out * width, seed: 21, scale: 0.05), x = normals(n * width, seed: 22)
                    let qw = try Quantised(w, k, rows: out, width: width, group: group, scale: scale)
                    let wh = qw.dequantised
                    let y1 = qw.linear(x, rows: n, threads: 1), y2 = qw.linear(x, rows: n, threads: 2)
                    for r in 0..<n {
                        for o in 0..<out {
                            var ref = 0.0, mag = 0.0, exact = 0.0, bound = 0.0
                            for i in 0..<width {
                                let a = Double(x[r * width + i])
                                ref += a * Double(wh[o * width + i])
                                mag += abs(a * Double(wh[o * width + i]))
                                exact += a * Double(w[o * width + i])
                                bound += abs(a) * Double(qw.scales[o][i / group]) / 2
                            }
                            // x and ŵ are rounded to bf16 (2^-9 relative each) for vdpbf16ps; f32 sums.
                            let tight = (0x1p-8 + 0x1p-18 + Double(width + 8) * 0x1p-23) * mag
                            for (t, y) in [(1, y1), (2, y2)] {
                                let got = Double(y[r * out + o])
                                let what = "\(k.bits) bits width \(width) rows \(n) threads \(t) [\(r), \(o)]"
                                XCTAssertLessThanOrEqual(abs(got - ref), tight, what)
                                XCTAssertLessThanOrEqual(abs(got - exact), bound + tight, what)
                            }
                        }
                    }
                }
            }
        }
    }

    func testThreadCountAndRowBlocksDoNotChangeTheBits() throws {
        let (width, out) = (1088, 301)
        let w = normals(out * width, seed: 31, scale: 0.1)
        for k in Self.widths {
            let qw = try Quantised(w, k, rows: out, width: width, group: 32, scale: Self.f16)
            // The same rows as three blocks (one empty), as a merged projection passes them.
            let rowBytes = qw.bytes.count / out
            let parts = [Array(qw.bytes[0..<(100 * rowBytes)]), [UInt8](), Array(qw.bytes[(100 * rowBytes)...])]
            let blockRows: [Int64] = [100, 0, Int64(out - 100)]
            for n in [1, 5, 12] { // GEMV (one row: four weight rows at a time where a block allows), GEMV, GEMM
                let x = normals(n * width, seed: 32)
                let one = qw.linear(x, rows: n, threads: 1)
                XCTAssertEqual(qw.linear(x, rows: n, threads: 2).map(\.bitPattern), one.map(\.bitPattern), "\(k.bits) bits rows \(n)")
                var y = [Float](repeating: .nan, count: n * out)
                let rc = parts[0].withUnsafeBytes { a in parts[1].withUnsafeBytes { b in parts[2].withUnsafeBytes { c in
                    let ptrs: [UnsafeRawPointer?] = [a.baseAddress, b.baseAddress ?? a.baseAddress, c.baseAddress]
                    return k.linearBlocks(x, Int64(n), Int64(width), ptrs, blockRows, 3, 32, Self.f16, nil, &y, 2)
                } } }
                XCTAssertEqual(rc, 0)
                XCTAssertEqual(y.map(\.bitPattern), one.map(\.bitPattern), "\(k.bits) bits rows \(n): blocks")
            }
        }
    }

    /// The gated call (SwiGLU/GeGLU's first matmul with its product) gives, bit for bit,
    /// the matmul over [gate; up] followed by the model's epilogue, on the GEMV (1, 5 rows)
    /// and the paired-panel GEMM (9, 40 rows) paths, with an intermediate width that ends
    /// in a partial panel (75 = 32 + 32 + 11), on one and two threads; and the product is
    /// act(g)·u of the ungated values by a float64 evaluation.
    func testGatedMatmulEqualsTheMatmulThenItsEpilogue() throws {
        let (width, inter) = (96, 75)
        let w = normals(2 * inter * width, seed: 41, scale: 0.2)
        for k in Self.widths {
            let qw = try Quantised(w, k, rows: 2 * inter, width: width, group: 32, scale: Self.f16)
            let rowBytes = qw.bytes.count / (2 * inter)
            let gate = Array(qw.bytes[0..<(inter * rowBytes)]), up = Array(qw.bytes[(inter * rowBytes)...])
            for n in [1, 5, 9, 40] {
                let x = normals(n * width, seed: 42 + UInt64(n))
                let both = qw.linear(x, rows: n)
                for gelu: Int32 in [0, 1] {
                    var epilogue = [Float](repeating: .nan, count: n * inter)
                    if gelu == 1 { attune_op_geglu_epilogue(both, Int64(n), Int64(inter), &epilogue) }
                    else { attune_op_swiglu_epilogue(both, Int64(n), Int64(inter), &epilogue) }
                    for threads: Int32 in [1, 2] {
                        var y = [Float](repeating: .nan, count: n * inter)
                        let rc = gate.withUnsafeBytes { g in up.withUnsafeBytes { u in
                            k.linearGated(x, Int64(n), Int64(width), g.baseAddress, u.baseAddress, Int64(inter), 32, Self.f16, gelu, &y, threads)
                        } }
                        XCTAssertEqual(rc, 0)
                        XCTAssertEqual(y.map(\.bitPattern), epilogue.map(\.bitPattern), "\(k.bits) bits rows \(n) gelu \(gelu) threads \(threads)")
                    }
                    for r in 0..<n { for j in 0..<inter {
                        let g = Double(both[r * 2 * inter + j]), u = Double(both[r * 2 * inter + inter + j])
                        let act = gelu == 1 ? 0.5 * g * (1 + tanh(0.7978845608028654 * (g + 0.044715 * g * g * g))) : g / (1 + exp(-g))
                        XCTAssertEqual(Double(epilogue[r * inter + j]), act * u, accuracy: 1e-5 * max(1, abs(act * u)), "\(k.bits) bits [\(r), \(j)]")
                    } }
                }
            }
        }
    }

    /// The consuming call (a down projection whose input is dead after it) gives the linear
    /// call's bits, with a bias, on the GEMV (1, 8 rows: x left alone) and the GEMM (9, 40
    /// rows: with AVX512-BF16, x's rows overwritten by their bf16 copies while the panels
    /// read them) on one and two threads.
    func testConsumingCallEqualsTheLinearCall() throws {
        let (width, out) = (1088, 70)
        let w = normals(out * width, seed: 51, scale: 0.1), bias = normals(out, seed: 52)
        for k in Self.widths {
            let qw = try Quantised(w, k, rows: out, width: width, group: 32, scale: Self.f16)
            for n in [1, 8, 9, 40] {
                let x = normals(n * width, seed: 53 + UInt64(n))
                var want = [Float](repeating: .nan, count: n * out)
                XCTAssertEqual(qw.bytes.withUnsafeBytes { k.linear(x, Int64(n), Int64(width), $0.baseAddress, Int64(out), 32, Self.f16, bias, &want, 2) }, 0)
                for threads: Int32 in [1, 2] {
                    var consumed = x, y = [Float](repeating: .nan, count: n * out)
                    let rc = qw.bytes.withUnsafeBytes {
                        k.linearConsuming(&consumed, Int64(n), Int64(width), $0.baseAddress, Int64(out), 32, Self.f16, bias, &y, threads)
                    }
                    XCTAssertEqual(rc, 0)
                    XCTAssertEqual(y.map(\.bitPattern), want.map(\.bitPattern), "\(k.bits) bits rows \(n) threads \(threads)")
                    if n <= Int(ATTUNE_Q8_GEMV_MAX_ROWS) { XCTAssertEqual(consumed, x, "\(k.bits) bits rows \(n): the GEMV keeps x") }
                }
            }
        }
    }

    func testZeroWeightsOrActivationsGiveTheBiasAndNaNActivationsPropagate() throws {
        let (width, out) = (1088, 9)
        var w = normals(out * width, seed: 41)
        for i in 0..<width { w[4 * width + i] = 0 }
        let bias = normals(out, seed: 42)
        for k in Self.widths {
            let qw = try Quantised(w, k, rows: out, width: width, group: 32, scale: Self.f32)
            for n in [3, 12] {
                var x = normals(n * width, seed: 43)
                for i in 0..<width { x[i] = 0 }
                x[width + 600] = .nan
                let y = qw.linear(x, rows: n, bias: bias)
                XCTAssertEqual(Array(y[0..<out]), bias, "\(k.bits) bits rows \(n): a zero activation row gives the bias")
                XCTAssert(y[out..<(2 * out)].allSatisfy(\.isNaN), "\(k.bits) bits rows \(n): a NaN activation reaches every output of its row")
                XCTAssertEqual(y[2 * out + 4], bias[4], "\(k.bits) bits rows \(n): a zero weight row gives the bias")
            }
        }
    }

    /// The q4 embedding gather reads the same ŵ the matmuls multiply by, and refuses ids
    /// outside the vocabulary before writing.
    func testQ4EmbeddingGathersTheDequantisedRows() throws {
        let (vocab, width) = (11, 896)
        let w = normals(vocab * width, seed: 51, scale: 0.2)
        let qw = try Quantised(w, .q4, rows: vocab, width: width, group: 32, scale: Self.f16)
        let wh = qw.dequantised
        let ids: [Int32] = [3, 0, 10, 3]
        var out = [Float](repeating: .nan, count: ids.count * width)
        let bad = qw.bytes.withUnsafeBytes { attune_q4_embedding($0.baseAddress, Int64(vocab), Int64(width), 32, Self.f16, ids, Int64(ids.count), &out) }
        XCTAssertEqual(bad, -1)
        for (r, id) in ids.enumerated() {
            XCTAssertEqual(Array(out[(r * width)..<((r + 1) * width)]), Array(wh[(Int(id) * width)..<((Int(id) + 1) * width)]))
        }
        var untouched = [Float](repeating: 7, count: 2 * width)
        let refused = qw.bytes.withUnsafeBytes { attune_q4_embedding($0.baseAddress, Int64(vocab), Int64(width), 32, Self.f16, [1, 11], 2, &untouched) }
        XCTAssertEqual(refused, 1)
        XCTAssert(untouched.allSatisfy { $0 == 7 })
    }
}
