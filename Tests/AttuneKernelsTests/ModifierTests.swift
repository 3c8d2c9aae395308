import AttuneKernels
import AttuneNumerics
import AttuneTensor
import CAttuneKernels
import XCTest

/// ALiBi (`AttentionProblem.alibiSlopes`) and attention sinks (`sinks`) against the float64
/// reference, on every path of every kernel that takes them (flash: wide, sgemm, narrow,
/// split KV, bf16 tiles; unified_max; sparge; sigmoid for ALiBi), and the refusals of the
/// kernels that do not.
final class ModifierTests: XCTestCase {
    /// Sink logits near the log of a row's mass (hundreds of keys, scores of a few units):
    /// a sink takes a real share of each row without drowning it.
    static func sinks(_ heads: Int) -> [Float] { (0..<heads).map { Float($0 % 4) * 1.5 + 3 } }

    static func modified(_ name: String, _ p: AttentionProblem, alibi: Bool, sinks: Bool, kernel: String = "flash",
                         _ parameters: KernelParameters = [:], maxAbs: Double = 2e-5) -> HarnessCase {
        var p = p
        if alibi { p.alibiSlopes = AttentionProblem.standardALiBiSlopes(heads: p.qHeads) }
        if sinks { p.sinks = Self.sinks(p.qHeads) }
        return HarnessCase(name: name, problem: p, kernel: kernel, parameters: parameters, maxAbs: maxAbs, lseRel: 2e-6,
                           qScale: 2, kScale: 2)
    }

    /// flash's paths; q heads 6 and 12 are not powers of two (the slopes' second rule).
    static let flashShapes: [(String, AttentionProblem, KernelParameters)] = [
        ("prefill GQA 6/2, wide tiles", .init(qHeads: 6, kvHeads: 2, qLen: 67, kvLen: 131, qkDim: 64, causal: true), [:]),
        ("prefill, sgemm tiles", .init(qHeads: 3, qLen: 40, kvLen: 300, qkDim: 32, causal: true), ["gemm": 2]),
        ("sliding window", .init(qHeads: 2, qLen: 50, kvLen: 80, qkDim: 16, causal: true, window: 7), [:]),
        ("decode MHA (narrow, 1 row), q_offset", .init(qHeads: 5, qLen: 1, kvLen: 700, qkDim: 64, causal: true, qOffset: 650), [:]),
        ("decode GQA 2 (narrow, 2 rows)", .init(qHeads: 6, kvHeads: 3, qLen: 1, kvLen: 333, qkDim: 16, causal: true), [:]),
        ("decode GQA 4 (narrow, 4 rows), split KV", .init(qHeads: 12, kvHeads: 3, qLen: 1, kvLen: 2100, qkDim: 32, causal: true),
         ["kv_splits": 3]),
        ("prefill, split KV", .init(qHeads: 2, qLen: 20, kvLen: 1500, qkDim: 16, causal: true), ["kv_splits": 4]),
        ("short q tile (narrow rows)", .init(qHeads: 2, qLen: 3, kvLen: 90, qkDim: 24, vDim: 8, causal: true), [:]),
        ("non-causal, q_offset past the keys", .init(qHeads: 3, qLen: 9, kvLen: 40, qkDim: 16, qOffset: 100), [:]),
    ]

    func testFlashALiBiOnEveryPath() {
        for (name, p, params) in Self.flashShapes {
            let c = Self.modified(name, p, alibi: true, sinks: false, params)
            Harness.check(c)
            assertModifierMatters(c) { $0.alibiSlopes = nil }
        }
    }

    func testFlashSinksOnEveryPath() throws {
        for (name, p, params) in Self.flashShapes {
            var c = Self.modified(name, p, alibi: false, sinks: true, params)
            // Each head's sink at the mean LSE of its rows: half the mass of a typical row.
            let x = AttentionInputs(p, seed: c.seed, qScale: c.qScale, kScale: c.kScale)
            let lse = try ReferenceBridge.softmax(p, x).lse
            c.problem.sinks = (0..<p.qHeads).map { h in
                Float(lse[h * p.qLen..<(h + 1) * p.qLen].reduce(0, +) / Double(p.qLen))
            }
            Harness.check(c)
            assertModifierMatters(c) { $0.sinks = nil }
        }
    }

    /// Soft-cap, ALiBi and sinks at once, in the documented order (cap, then bias).
    func testFlashComposesAllThree() {
        for (name, p, params) in Self.flashShapes.prefix(6) {
            var c = Self.modified(name, p, alibi: true, sinks: true, params)
            c.problem.softcap = 3
            Harness.check(c)
        }
    }

    /// A split merge counts the sink once: the same decode row with 1, 2 and 7 splits.
    func testSinkCountedOnceAcrossSplits() throws {
        var p = AttentionProblem(qHeads: 4, qLen: 1, kvLen: 3000, qkDim: 32, causal: true)
        p.sinks = [2, 3, 4, 5]
        for splits in [1, 2, 7] {
            Harness.check(HarnessCase(name: "splits \(splits)", problem: p, parameters: ["kv_splits": Double(splits)],
                                      qScale: 2, kScale: 2))
        }
    }

    /// Rows that see no key: with a sink, O = 0 and LSE = the sink (not -inf).
    func testRowsWithoutKeysGiveTheSink() throws {
        var p = AttentionProblem(qHeads: 2, qLen: 8, kvLen: 8, qkDim: 16, causal: true, qOffset: -3)
        p.sinks = [1.5, -2]
        for kernel in ["flash", "unified_max", "sparge"] {
            let x = AttentionInputs(p, seed: 4)
            let out = try KernelRegistry.kernel(named: kernel).run(p, q: x.q, k: x.k, v: x.v, parameters: [:])
            for h in 0..<2 {
                for i in 0..<3 {
                    XCTAssertEqual(out.lse.data[h * 8 + i], p.sinks![h], accuracy: 1e-5, "\(kernel) head \(h) row \(i)")
                    XCTAssertEqual(out.o.data[(h * 8 + i) * 16], 0, "\(kernel)")
                }
            }
            Harness.check(HarnessCase(name: "no keys", problem: p, kernel: kernel))
        }
    }

    /// NaN/Inf in keys no query sees never reach a biased row.
    func testMaskedPoisonStaysOut() {
        for poison in [Float.nan, .infinity] {
            var c = Self.modified("poisoned window", .init(qHeads: 3, qLen: 40, kvLen: 120, qkDim: 16, causal: true, window: 9),
                                  alibi: true, sinks: true)
            c.poison = poison
            Harness.check(c)
        }
    }

    func testOtherSoftmaxKernels() {
        let shapes: [(String, AttentionProblem)] = [
            ("prefill GQA 6/2", .init(qHeads: 6, kvHeads: 2, qLen: 67, kvLen: 131, qkDim: 64, causal: true)),
            ("decode GQA 4, q_offset", .init(qHeads: 12, kvHeads: 3, qLen: 1, kvLen: 2100, qkDim: 32, causal: true, qOffset: 2000)),
            ("sliding window", .init(qHeads: 2, qLen: 50, kvLen: 80, qkDim: 16, causal: true, window: 7)),
        ]
        for (name, p) in shapes {
            for (alibi, sinks) in [(true, false), (false, true), (true, true)] {
                Harness.check(Self.modified("unified_max " + name, p, alibi: alibi, sinks: sinks, kernel: "unified_max"))
                Harness.check(Self.modified("unified_max split " + name, p, alibi: alibi, sinks: sinks, kernel: "unified_max",
                                            ["kv_splits": 3]))
                // sparge with every block kept and no skipping is flash to fp32 rounding.
                Harness.check(Self.modified("sparge " + name, p, alibi: alibi, sinks: sinks, kernel: "sparge",
                                            ["cdfthreshd": 1, "pvthreshd": 200]))
            }
        }
    }

    /// unified_max far from its fixed max (sink 80 above phi = 0) falls back to flash,
    /// which must see the same head's slopes and sink in its sub-problem.
    func testUnifiedMaxFallbackKeepsTheModifiers() throws {
        var p = AttentionProblem(qHeads: 4, kvHeads: 2, qLen: 5, kvLen: 60, qkDim: 16, causal: true)
        p.alibiSlopes = AttentionProblem.standardALiBiSlopes(heads: 4)
        p.sinks = [0, 0, 150, 0]
        let x = AttentionInputs(p, seed: 2)
        let out = try UnifiedMaxKernel().run(p, q: x.q, k: x.k, v: x.v, parameters: [:])
        XCTAssertEqual(out.stats["fallback_rows"], 5)
        Harness.check(HarnessCase(name: "fallback", problem: p, kernel: "unified_max"))
    }

    func testSigmoidTakesALiBi() {
        for (name, p, params) in Self.flashShapes.prefix(8) {
            var params = params
            params["gemm"] = nil
            params["bias"] = -1
            let c = Self.modified("sigmoid " + name, p, alibi: true, sinks: false, kernel: "sigmoid", params, maxAbs: 1e-4)
            Harness.check(c)
        }
        var p = AttentionProblem(qHeads: 4, kvHeads: 2, qLen: 64, kvLen: 128, qkDim: 64, causal: true)
        p.alibiSlopes = AttentionProblem.standardALiBiSlopes(heads: 4)
        Harness.check(HarnessCase(name: "sigmoid bf16 tiles", problem: p, kernel: "sigmoid", parameters: ["precision": 1],
                                  maxAbs: 0.1, lseRel: 1))
    }

    func testFlashBF16TilesTakeModifiers() throws {
        var p = AttentionProblem(qHeads: 6, kvHeads: 2, qLen: 64, kvLen: 128, qkDim: 64, causal: true)
        p.alibiSlopes = AttentionProblem.standardALiBiSlopes(heads: 6)
        p.sinks = Self.sinks(6)
        let x = AttentionInputs(p, seed: 3, qScale: 2, kScale: 2)
        let out = try FlashKernel().run(p, q: x.q, k: x.k, v: x.v, parameters: ["precision": 1])
        let ref = try ReferenceBridge.softmax(p, x)
        XCTAssertLessThanOrEqual(ErrorMetrics.compare(out.o.data, ref.o).maxAbs, 5e-2)
        var plain = p
        plain.alibiSlopes = nil
        plain.sinks = nil
        XCTAssertGreaterThan(ErrorMetrics.compare(out.o.data, try ReferenceBridge.softmax(plain, x).o).maxAbs, 0.1)
    }

    func testRefusals() {
        var p = AttentionProblem(qHeads: 2, qLen: 8, kvLen: 8, qkDim: 16, causal: true)
        p.alibiSlopes = [0.5, 0.25]
        p.sinks = [1, 2]
        for kernel in ["flash", "unified_max", "sparge"] {
            XCTAssertEqual(try KernelRegistry.kernel(named: kernel).unsupportedReasons(p), [], kernel)
        }
        XCTAssertEqual(SigmoidKernel().unsupportedReasons(p),
                       ["sigmoid does not take attention sinks: a sink logit joins a softmax denominator, and sigmoid has none"])
        for kernel in KernelRegistry.all where ["kascade", "hybrid", "prefix_shared"].contains(kernel.name) {
            let reasons = kernel.unsupportedReasons(p)
            XCTAssertTrue(reasons.contains("\(kernel.name) does not implement ALiBi (alibi); flash, unified_max, sigmoid and sparge do"),
                          "\(kernel.name): \(reasons)")
            XCTAssertTrue(reasons.contains("\(kernel.name) does not implement attention sinks (sinks); flash, unified_max and sparge do"),
                          "\(kernel.name): \(reasons)")
        }
        // In C: validation without the ATTUNE_ACCEPTS_* bit refuses, naming the kernel.
        var c = p.cProblem
        var status = attune_status()
        let message = { withUnsafeBytes(of: status.message) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) } }
        p.withModifiers(&c) { c in
            XCTAssertEqual(attune_attention_validate_kv(&c, nil, 1 | ATTUNE_ACCEPTS_SINKS, "kascade", &status),
                           Int32(ATTUNE_ERR_UNSUPPORTED.rawValue))
            XCTAssertEqual(message(), "kascade does not implement ALiBi (alibi_slopes)")
            XCTAssertEqual(attune_attention_validate_kv(&c, nil, 1 | ATTUNE_ACCEPTS_ALIBI, "sigmoid", &status),
                           Int32(ATTUNE_ERR_UNSUPPORTED.rawValue))
            XCTAssertEqual(message(), "sigmoid does not implement attention sinks (sinks)")
        }
        // Tables: one finite value per q head.
        p.sinks = [1]
        XCTAssertEqual(p.validationError(), "sinks has 1 values but the problem has 2 q heads")
        p.sinks = [1, .nan]
        XCTAssertEqual(p.validationError(), "sinks[1] must be finite, got nan")
        p.sinks = nil
        p.alibiSlopes = [.infinity, 1]
        XCTAssertEqual(p.validationError(), "alibi_slopes[0] must be finite, got inf")
        p.alibiSlopes = [1, 1]
        p.kvLen = 1 << 25
        XCTAssertEqual(p.validationError()?.hasPrefix("alibi needs query positions and keys within 2^24"), true)
    }

    /// The C slopes (used by kernels and compiled models) equal the reference's own rule,
    /// and BLOOM's published values: 8 heads 2^-1 ... 2^-8; 12 heads add 2^-0.5, 2^-1.5, ...
    func testStandardSlopes() {
        for heads in 1...80 {
            let c = AttentionProblem.standardALiBiSlopes(heads: heads)
            let ref = ReferenceAttention.alibiSlopes(heads: heads)
            XCTAssertEqual(c, ref.map { Float($0) }, "\(heads) heads")
        }
        XCTAssertEqual(AttentionProblem.standardALiBiSlopes(heads: 8), (1...8).map { Float(pow(2.0, -Double($0))) })
        XCTAssertEqual(AttentionProblem.standardALiBiSlopes(heads: 12).suffix(4),
                       [-0.5, -1.5, -2.5, -3.5].map { Float(pow(2.0, $0)) })
        XCTAssertEqual(AttentionProblem.standardALiBiSlopes(heads: 1), [Float(pow(2.0, -8.0))])
    }

    /// ALiBi's distance form m·(j − p) and BLOOM's m·j differ by m·p per row: the same O
    /// (softmax is shift-invariant), an LSE lower by m·p.
    func testBLOOMFormAgrees() throws {
        let p = ReferenceAttentionProblem(qHeads: 2, qLen: 4, kvLen: 10, qkDim: 8, causal: true, alibiSlopes: [0.5, 0.125])
        let q = (0..<64).map { Foundation.sin(Double($0) * 1.3) }
        let k = (0..<160).map { Foundation.sin(Double($0) * 0.7 + 1) * 2 }
        let v = (0..<160).map { Foundation.cos(Double($0) * 0.9) }
        let ours = try ReferenceAttention.softmax(p, q: q, k: k, v: v)
        // BLOOM: scores + m·j, written out here by hand.
        for h in 0..<2 {
            for i in 0..<4 {
                let pos = 6 + i
                let s = (0...pos).map { j in
                    zip(q[(h * 4 + i) * 8..<(h * 4 + i + 1) * 8], k[(h * 10 + j) * 8..<(h * 10 + j + 1) * 8]).map(*).reduce(0, +)
                        / 8.0.squareRoot() + p.alibiSlopes![h] * Double(j)
                }
                let m = s.max()!, e = s.map { Foundation.exp($0 - m) }, z = e.reduce(0, +)
                for d in 0..<8 {
                    let o = (0...pos).map { e[$0] * v[(h * 10 + $0) * 8 + d] }.reduce(0, +) / z
                    XCTAssertEqual(ours.o[(h * 4 + i) * 8 + d], o, accuracy: 1e-12)
                }
                XCTAssertEqual(ours.lse[h * 4 + i], m + Foundation.log(z) - p.alibiSlopes![h] * Double(pos), accuracy: 1e-12)
            }
        }
    }

    /// The un-modified reference differs from the modified one on these inputs (the test
    /// above it would catch a kernel that ignored the modifier).
    private func assertModifierMatters(_ c: HarnessCase, file: StaticString = #filePath, line: UInt = #line,
                                       _ strip: (inout AttentionProblem) -> Void) {
        let x = AttentionInputs(c.problem, seed: c.seed, qScale: c.qScale, kScale: c.kScale)
        var plain = c.problem
        strip(&plain)
        let (a, b) = (try? ReferenceBridge.softmax(c.problem, x), try? ReferenceBridge.softmax(plain, x))
        let o = zip(a?.o ?? [], b?.o ?? []).map { abs($0 - $1) }.max() ?? 0
        let lse = zip(a?.lse ?? [], b?.lse ?? []).map { abs($0 - $1) }.max() ?? 0
        XCTAssertGreaterThan(o, 1e-3, c.name, file: file, line: line)
        XCTAssertGreaterThan(lse, 1e-2, c.name, file: file, line: line)
    }
}
