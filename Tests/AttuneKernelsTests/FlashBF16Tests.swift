import AttuneKernels
import AttuneNumerics
import AttuneTensor
import XCTest

/// flash with `precision=bf16` (bf16 prefill tiles) against the float64 reference: every
/// element of O and LSE inside the bf16 bound (BF16AttentionBound, Docs/NUMERICS.md), on
/// ragged lengths, GQA, masks, offsets and head dims; and evidence that the bf16 path ran.
final class FlashBF16Tests: XCTestCase {
    static let bf16: KernelParameters = ["precision": 1]

    /// Runs flash in bf16 and f32; asserts the bound element by element and returns
    /// (rel-L1 of bf16, rel-L1 of f32) against the reference.
    @discardableResult
    func check(_ name: String, _ p: AttentionProblem, kernel: any AttentionKernel = FlashKernel(), parameters: KernelParameters = [:],
               seed: UInt64 = 7, poisonFuture: Bool = false, file: StaticString = #filePath, line: UInt = #line) throws -> (Double, Double) {
        var x = AttentionInputs(p, seed: seed)
        if poisonFuture { x.poison(keys: AttentionInputs.keysNoQuerySees(p), with: .nan, p) }
        let out = try kernel.run(p, q: x.q, k: x.k, v: x.v, parameters: parameters.merging(Self.bf16) { $1 })
        let f32 = try kernel.run(p, q: x.q, k: x.k, v: x.v, parameters: parameters)
        let r = ReferenceBridge.problem(p)
        let (q, k, v) = (x.q.data.map(Double.init), x.k.data.map(Double.init), x.v.data.map(Double.init))
        let exact = try ReferenceAttention.softmax(r, q: q, k: k, v: v)
        let bound = try BF16AttentionBound.bound(r, q: q, k: k, v: v)
        var worst = 0.0
        for i in exact.o.indices {
            let e = abs(Double(out.o.data[i]) - exact.o[i])
            XCTAssertFalse(e.isNaN, "\(name): NaN at \(i)", file: file, line: line)
            worst = max(worst, e / bound.o[i])
        }
        for i in exact.lse.indices where exact.lse[i] == -.infinity {
            XCTAssertEqual(out.lse.data[i], -.infinity, "\(name): a row that sees nothing has LSE -inf", file: file, line: line)
        }
        for i in exact.lse.indices where exact.lse[i].isFinite {
            worst = max(worst, abs(Double(out.lse.data[i]) - exact.lse[i]) / bound.lse[i])
        }
        XCTAssertLessThanOrEqual(worst, 1, "\(name): error over the bf16 bound (worst ratio \(worst))", file: file, line: line)
        return (ErrorMetrics.compare(out.o.data, exact.o).relL1, ErrorMetrics.compare(f32.o.data, exact.o).relL1)
    }

    func testPrefillShapesStayInsideTheBound() throws {
        for d in [64, 80, 128] {
            try check("d \(d) causal ragged", .init(qHeads: 2, qLen: 67, kvLen: 131, qkDim: d, causal: true))
        }
        try check("dv < dqk", .init(qHeads: 2, qLen: 40, kvLen: 97, qkDim: 128, vDim: 64))
        try check("dv > dqk", .init(qHeads: 2, qLen: 40, kvLen: 97, qkDim: 64, vDim: 128, causal: true))
        try check("odd dims", .init(qHeads: 1, qLen: 19, kvLen: 37, qkDim: 73, vDim: 40, causal: true))
        for (hq, hkv) in [(4, 2), (8, 1), (6, 2)] {
            try check("GQA \(hq)/\(hkv)", .init(qHeads: hq, kvHeads: hkv, qLen: 50, kvLen: 83, qkDim: 64, causal: true))
        }
        try check("batch 2 non-causal", .init(batch: 2, qHeads: 3, qLen: 77, kvLen: 77, qkDim: 64))
    }

    func testTileEdgesAndMasks() throws {
        for kv in [255, 256, 257, 509] {
            try check("kv \(kv) causal", .init(qHeads: 2, qLen: 70, kvLen: kv, qkDim: 64, causal: true))
        }
        for kv in [63, 64, 65, 127] {
            try check("kv \(kv) small tiles", .init(qHeads: 2, qLen: 33, kvLen: kv, qkDim: 64, causal: true),
                      parameters: ["block_kv": 64, "block_q": 16])
        }
        // Odd window and offsets: tiles and pairs start at odd keys.
        try check("window", .init(qHeads: 2, qLen: 150, kvLen: 400, qkDim: 64, causal: true, window: 37))
        try check("window without causal", .init(qHeads: 1, qLen: 30, kvLen: 90, qkDim: 64, window: 25))
        try check("q_offset", .init(qHeads: 2, qLen: 40, kvLen: 100, qkDim: 64, causal: true, qOffset: 11))
        try check("rows before the keys", .init(qHeads: 2, qLen: 90, kvLen: 50, qkDim: 64, causal: true, qOffset: -70),
                  parameters: ["block_q": 32])
        try check("rows past the window", .init(qHeads: 2, qLen: 60, kvLen: 40, qkDim: 64, causal: true, qOffset: 20, window: 30),
                  parameters: ["block_q": 16])
        try check("split KV", .init(qHeads: 1, qLen: 16, kvLen: 3000, qkDim: 64, causal: true), parameters: ["kv_splits": 3])
    }

    /// sparge runs flash's tiles: with every block kept and no P.V skipped (its exact
    /// setting) its bf16 tiles keep the same bound, tiles starting at odd keys included.
    func testSpargeExactSettingKeepsTheBound() throws {
        let exact: KernelParameters = ["cdfthreshd": 1, "pvthreshd": 200]
        try check("sparge causal", .init(qHeads: 4, kvHeads: 2, qLen: 200, kvLen: 200, qkDim: 64, causal: true), kernel: SpargeKernel(),
                  parameters: exact)
        try check("sparge window", .init(qHeads: 2, qLen: 130, kvLen: 300, qkDim: 128, causal: true, window: 41), kernel: SpargeKernel(),
                  parameters: exact.merging(["block_kv": 32]) { $1 })
    }

    /// sigmoid's wide tiles in bf16 (blocked sums, bias added after the bf16 dot
    /// products) keep the sigmoid bound; decode stays f32.
    func testSigmoidKeepsItsBound() throws {
        let cases: [(String, AttentionProblem, Bool)] = [
            ("causal ragged", .init(qHeads: 4, kvHeads: 2, qLen: 150, kvLen: 150, qkDim: 64, causal: true), false),
            ("window odd dims", .init(qHeads: 2, qLen: 70, kvLen: 301, qkDim: 80, vDim: 48, causal: true, window: 45), false),
            ("poison", .init(qHeads: 2, qLen: 40, kvLen: 300, qkDim: 128, causal: true, qOffset: 201), true),
        ]
        for (name, p, poison) in cases {
            var x = AttentionInputs(p, seed: 11)
            if poison { x.poison(keys: AttentionInputs.keysNoQuerySees(p), with: .nan, p) }
            let params: KernelParameters = ["bias": -4, "precision": 1]
            let out = try SigmoidKernel().run(p, q: x.q, k: x.k, v: x.v, parameters: params)
            let f32 = try SigmoidKernel().run(p, q: x.q, k: x.k, v: x.v, parameters: ["bias": -4])
            let r = ReferenceBridge.problem(p)
            let (q, k, v) = (x.q.data.map(Double.init), x.k.data.map(Double.init), x.v.data.map(Double.init))
            let exact = try ReferenceAttention.sigmoid(r, bias: -4, q: q, k: k, v: v)
            let bound = try BF16AttentionBound.sigmoid(r, bias: -4, q: q, k: k, v: v)
            for i in exact.indices {
                XCTAssertLessThanOrEqual(abs(Double(out.o.data[i]) - exact[i]), bound[i], "\(name) at \(i)")
            }
            let e16 = ErrorMetrics.compare(out.o.data, exact).relL1, e32 = ErrorMetrics.compare(f32.o.data, exact).relL1
            XCTAssertGreaterThan(e16, 50 * e32, "\(name): bf16 tiles not used")
        }
    }

    /// NaN stored where no query looks never reaches an output, although the bf16 pair
    /// kernel reads V two keys at a time (those heads fall back to row-exact P.V).
    func testPoisonedFutureStaysUnread() throws {
        try check("poison causal", .init(qHeads: 4, kvHeads: 2, qLen: 48, kvLen: 400, qkDim: 64, causal: true, qOffset: 151),
                  poisonFuture: true)
        try check("poison window", .init(qHeads: 2, qLen: 40, kvLen: 300, qkDim: 64, causal: true, qOffset: 201, window: 33),
                  poisonFuture: true)
    }

    /// Inf in a V row some rows see: the head takes the row-exact P.V, so the rows that do
    /// not see that key stay finite and inside the bound (0 * Inf would make them NaN).
    func testInfInAVisibleValueReachesOnlyItsRows() throws {
        let p = AttentionProblem(qHeads: 2, qLen: 120, kvLen: 120, qkDim: 64, causal: true)
        var x = AttentionInputs(p, seed: 9)
        let key = 61
        for h in 0..<p.kvHeads { x.v.data[(h * p.kvLen + key) * p.vDim + 5] = .infinity }
        let out = try FlashKernel().run(p, q: x.q, k: x.k, v: x.v, parameters: Self.bf16)
        let r = ReferenceBridge.problem(p)
        let (q, k, v) = (x.q.data.map(Double.init), x.k.data.map(Double.init), x.v.data.map(Double.init))
        let exact = try ReferenceAttention.softmax(r, q: q, k: k, v: v)
        let bound = try BF16AttentionBound.bound(r, q: q, k: k, v: v)
        for h in 0..<p.qHeads {
            for i in 0..<p.qLen {
                for c in 0..<p.vDim {
                    let at = (h * p.qLen + i) * p.vDim + c
                    if i < key {
                        XCTAssertLessThanOrEqual(abs(Double(out.o.data[at]) - exact.o[at]), bound.o[at], "row \(i) col \(c)")
                    } else if c == 5 {
                        XCTAssertEqual(out.o.data[at], .infinity, "row \(i) sees the Inf")
                    }
                }
            }
        }
    }

    /// The parameter takes effect: bf16 errors are those of 8-bit operands (about 2^-9
    /// relative), far above f32's, yet well inside the bound's worst case.
    func testBF16PathRunsAndIsAccurate() throws {
        let (bf16, f32) = try check("H8 N256 d128", .init(qHeads: 8, kvHeads: 2, qLen: 256, kvLen: 256, qkDim: 128, causal: true))
        XCTAssertGreaterThan(bf16, 50 * f32, "bf16 tiles were not used (rel-L1 \(bf16) vs f32 \(f32))")
        XCTAssertLessThan(bf16, 0x1p-7, "rel-L1 \(bf16) is more than bf16 operands explain")
    }

    /// Decode and short chunks (< 16 rows) keep the f32 tiles: bitwise f32 flash.
    func testNarrowTilesStayF32() throws {
        let p = AttentionProblem(qHeads: 4, kvHeads: 4, qLen: 3, kvLen: 700, qkDim: 64, causal: true)
        let x = AttentionInputs(p, seed: 3)
        let a = try FlashKernel().run(p, q: x.q, k: x.k, v: x.v, parameters: Self.bf16)
        let b = try FlashKernel().run(p, q: x.q, k: x.k, v: x.v)
        XCTAssertEqual(a.o.data, b.o.data)
    }

    func testThreadCountDoesNotChangeBits() throws {
        let p = AttentionProblem(qHeads: 4, kvHeads: 2, qLen: 200, kvLen: 333, qkDim: 64, causal: true)
        let x = AttentionInputs(p, seed: 5)
        let one = try FlashKernel().run(p, q: x.q, k: x.k, v: x.v, parameters: ["precision": 1, "threads": 1])
        let two = try FlashKernel().run(p, q: x.q, k: x.k, v: x.v, parameters: ["precision": 1, "threads": 2])
        XCTAssertEqual(one.o.data, two.o.data)
        XCTAssertEqual(one.lse.data, two.lse.data)
    }

    func testDeclaredApproximateAndNamed() throws {
        let flash = FlashKernel()
        XCTAssertTrue(flash.isExact(with: [:]))
        XCTAssertFalse(flash.isExact(with: Self.bf16))
        XCTAssertEqual(try flash.parameterValue("precision", "bf16"), 1)
        XCTAssertEqual(try flash.parameterValue("precision", "f32"), 0)
        XCTAssertThrowsError(try flash.parameterValue("precision", "fp8")) { error in
            XCTAssertTrue("\(error)".contains("bf16, f32, int8qk"), "\(error)")
        }
        // Compiled models: the C call sets precision only when asked, so default C is unchanged.
        XCTAssertTrue(flash.cInvocation(Self.bf16)!.joined().contains(".precision = 1"))
        XCTAssertFalse(flash.cInvocation([:])!.joined().contains("precision"))
        XCTAssertTrue(SigmoidKernel().cInvocation(["bias": -1, "precision": 1])!.joined().contains(".precision = 1"))
        XCTAssertTrue(SpargeKernel().cInvocation(Self.bf16)!.joined().contains(".precision = 1"))
        XCTAssertThrowsError(try flash.checkParameters(["precision": 3])) { error in
            XCTAssertTrue("\(error)".contains("must be in 0...2"), "\(error)")
        }
    }
}
