import AttuneBench
import AttuneKernels
import AttuneNumerics
import AttuneTensor
import XCTest

/// flash with `precision=int8qk` (int8 Q·Kᵀ of smoothed K, bf16 P·V) against the float64
/// reference: every element of O and LSE inside the derived bound (Int8QKAttentionBound,
/// Docs/NUMERICS.md) on ragged lengths, GQA, masks, offsets and head dims; and the measured
/// accuracy (rel-L1, cosine: SageAttention's metrics) under the figures Docs/NUMERICS.md states.
final class FlashInt8QKTests: XCTestCase {
    static let int8qk: KernelParameters = ["precision": 2]

    struct Accuracy {
        var relL1: Double, cosine: Double, bf16RelL1: Double
    }

    /// Runs flash with int8qk and bf16 tiles; asserts the bound element by element and
    /// returns int8qk's rel-L1 and cosine and bf16's rel-L1 against the reference.
    @discardableResult
    func check(_ name: String, _ p: AttentionProblem, parameters: KernelParameters = [:], inputs: (q: Tensor, k: Tensor, v: Tensor)? = nil,
               seed: UInt64 = 7, poisonFuture: Bool = false, file: StaticString = #filePath, line: UInt = #line) throws -> Accuracy {
        var x = AttentionInputs(p, seed: seed)
        if let inputs { (x.q, x.k, x.v) = inputs }
        if poisonFuture { x.poison(keys: AttentionInputs.keysNoQuerySees(p), with: .nan, p) }
        let out = try FlashKernel().run(p, q: x.q, k: x.k, v: x.v, parameters: parameters.merging(Self.int8qk) { $1 })
        let bf16 = try FlashKernel().run(p, q: x.q, k: x.k, v: x.v, parameters: parameters.merging(["precision": 1]) { $1 })
        let r = ReferenceBridge.problem(p)
        let (q, k, v) = (x.q.data.map(Double.init), x.k.data.map(Double.init), x.v.data.map(Double.init))
        let exact = try ReferenceAttention.softmax(r, q: q, k: k, v: v)
        let bound = try Int8QKAttentionBound.bound(r, q: q, k: k, v: v)
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
        XCTAssertLessThanOrEqual(worst, 1, "\(name): error over the int8qk bound (worst ratio \(worst))", file: file, line: line)
        let m = ErrorMetrics.compare(out.o.data, exact.o)
        return Accuracy(relL1: m.relL1, cosine: m.cosine, bf16RelL1: ErrorMetrics.compare(bf16.o.data, exact.o).relL1)
    }

    func testPrefillShapesStayInsideTheBound() throws {
        for d in [64, 80, 128] {
            try check("d \(d) causal ragged", .init(qHeads: 2, qLen: 67, kvLen: 131, qkDim: d, causal: true))
        }
        try check("dv < dqk", .init(qHeads: 2, qLen: 40, kvLen: 97, qkDim: 128, vDim: 64))
        try check("odd dims", .init(qHeads: 1, qLen: 19, kvLen: 37, qkDim: 73, vDim: 40, causal: true))
        for (hq, hkv) in [(4, 2), (8, 1)] {
            try check("GQA \(hq)/\(hkv)", .init(qHeads: hq, kvHeads: hkv, qLen: 50, kvLen: 83, qkDim: 64, causal: true))
        }
        try check("batch 2 non-causal", .init(batch: 2, qHeads: 3, qLen: 77, kvLen: 77, qkDim: 64))
        // Large scores (|q·k| in the hundreds): the bound scales with them.
        try check("large scores", .init(qHeads: 2, qLen: 48, kvLen: 200, qkDim: 64, causal: true),
                  inputs: { let x = AttentionInputs(.init(qHeads: 2, qLen: 48, kvLen: 200, qkDim: 64, causal: true), seed: 3, qScale: 8, kScale: 4)
                      return (x.q, x.k, x.v) }())
    }

    func testTileEdgesMasksAndSplits() throws {
        for kv in [255, 257] {
            try check("kv \(kv) causal", .init(qHeads: 2, qLen: 70, kvLen: kv, qkDim: 64, causal: true))
        }
        try check("small tiles", .init(qHeads: 2, qLen: 33, kvLen: 127, qkDim: 64, causal: true), parameters: ["block_kv": 64, "block_q": 16])
        try check("window", .init(qHeads: 2, qLen: 150, kvLen: 400, qkDim: 64, causal: true, window: 37))
        try check("rows before the keys", .init(qHeads: 2, qLen: 90, kvLen: 50, qkDim: 64, causal: true, qOffset: -70),
                  parameters: ["block_q": 32])
        try check("rows past the window", .init(qHeads: 2, qLen: 60, kvLen: 40, qkDim: 64, causal: true, qOffset: 20, window: 30),
                  parameters: ["block_q": 16])
        try check("split KV", .init(qHeads: 1, qLen: 16, kvLen: 3000, qkDim: 64, causal: true), parameters: ["kv_splits": 3])
        try check("poison causal", .init(qHeads: 4, kvHeads: 2, qLen: 48, kvLen: 400, qkDim: 64, causal: true, qOffset: 151),
                  poisonFuture: true)
    }

    /// The measured accuracy Docs/NUMERICS.md states, on N(0, 1) inputs and on attention
    /// shaped like a trained model's (sinks, recency, heavy hitters; keys sharing an offset,
    /// which the smoothing removes): rel-L1 and cosine against float64.
    func testMeasuredAccuracyOnRandomAndStructuredInputs() throws {
        let p = AttentionProblem(qHeads: 8, kvHeads: 2, qLen: 256, kvLen: 256, qkDim: 128, causal: true)
        let random = try check("random H8 N256 d128", p)
        // Measured: rel-L1 8.4e-3, cosine 0.99997 (bf16 tiles: 2.9e-3).
        XCTAssertLessThan(random.relL1, 1.2e-2, "random: rel-L1 \(random.relL1)")
        XCTAssertGreaterThan(random.cosine, 0.99993, "random: cosine \(random.cosine)")
        let s = StructuredAttention(p, seed: 42)
        let structured = try check("structured H8 N256 d128", p,
                                   inputs: (Tensor(shape: p.qShape, data: s.q), Tensor(shape: p.kShape, data: s.k), Tensor(shape: p.vShape, data: s.v)))
        // Measured: rel-L1 1.85e-2, cosine 0.99978 (bf16 tiles: 5.3e-3).
        XCTAssertLessThan(structured.relL1, 2.5e-2, "structured: rel-L1 \(structured.relL1)")
        XCTAssertGreaterThan(structured.cosine, 0.9995, "structured: cosine \(structured.cosine)")
        // The int8 scores were used: their error is not bf16's.
        XCTAssertNotEqual(random.relL1, random.bf16RelL1)
    }

    /// Without the smoothing a shared key offset (structured keys have one) would set every
    /// key's scale; with it, int8qk stays within a few times bf16's error.
    func testSharedKeyOffsetIsSmoothedAway() throws {
        let p = AttentionProblem(qHeads: 2, qLen: 128, kvLen: 128, qkDim: 64, causal: true)
        var x = AttentionInputs(p, seed: 21)
        for i in x.k.data.indices { x.k.data[i] += Float(i % p.qkDim == 0 ? 40 : 10) }
        let a = try check("offset keys", p, inputs: (x.q, x.k, x.v))
        XCTAssertLessThan(a.relL1, 4 * a.bf16RelL1 + 1e-3, "offset keys: rel-L1 \(a.relL1) vs bf16 \(a.bf16RelL1)")
    }

    /// Decode and short chunks (< 16 rows) keep the f32 tiles: bitwise f32 flash.
    func testNarrowTilesStayF32() throws {
        let p = AttentionProblem(qHeads: 4, kvHeads: 4, qLen: 3, kvLen: 700, qkDim: 64, causal: true)
        let x = AttentionInputs(p, seed: 3)
        let a = try FlashKernel().run(p, q: x.q, k: x.k, v: x.v, parameters: Self.int8qk)
        let b = try FlashKernel().run(p, q: x.q, k: x.k, v: x.v)
        XCTAssertEqual(a.o.data, b.o.data)
    }

    func testThreadCountDoesNotChangeBits() throws {
        let p = AttentionProblem(qHeads: 4, kvHeads: 2, qLen: 200, kvLen: 333, qkDim: 64, causal: true)
        let x = AttentionInputs(p, seed: 5)
        let one = try FlashKernel().run(p, q: x.q, k: x.k, v: x.v, parameters: ["precision": 2, "threads": 1])
        let two = try FlashKernel().run(p, q: x.q, k: x.k, v: x.v, parameters: ["precision": 2, "threads": 2])
        XCTAssertEqual(one.o.data, two.o.data)
        XCTAssertEqual(one.lse.data, two.lse.data)
    }

    func testNamedApproximateAndRefusedByKernelsWithoutIt() throws {
        let flash = FlashKernel()
        XCTAssertEqual(try flash.parameterValue("precision", "int8qk"), 2)
        XCTAssertFalse(flash.isExact(with: Self.int8qk))
        XCTAssertTrue(flash.cInvocation(Self.int8qk)!.joined().contains(".precision = 2"))
        // sparge and sigmoid have bf16 tiles only.
        XCTAssertThrowsError(try SpargeKernel().checkParameters(Self.int8qk)) { error in
            XCTAssertTrue("\(error)".contains("must be in 0...1"), "\(error)")
        }
        XCTAssertThrowsError(try SigmoidKernel().parameterValue("precision", "int8qk"))
    }
}
