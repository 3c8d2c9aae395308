import AttuneKernels
import AttuneNumerics
import AttuneTensor
import CAttuneKernels
import XCTest

/// Properties of flash beyond the reference table: determinism, thread counts,
/// options that must matter, decode = prefill, NaN propagation, input validation.
final class FlashPropertyTests: XCTestCase {
    let flash = FlashKernel()

    func run(_ p: AttentionProblem, _ x: AttentionInputs, _ params: KernelParameters = [:]) throws -> AttentionOutput {
        try flash.run(p, q: x.q, k: x.k, v: x.v, parameters: params)
    }

    func bits(_ t: Tensor) -> [UInt32] { t.data.map(\.bitPattern) }

    func testRepeatedRunsAreBitwiseIdentical() throws {
        for p in [AttentionProblem(qHeads: 8, qLen: 300, kvLen: 300, qkDim: 128, causal: true),
                  AttentionProblem(qHeads: 32, kvHeads: 8, qLen: 1, kvLen: 5000, qkDim: 128)] {
            let x = AttentionInputs(p, seed: 7)
            let a = try run(p, x), b = try run(p, x)
            XCTAssertEqual(bits(a.o), bits(b.o), "\(p)")
            XCTAssertEqual(bits(a.lse), bits(b.lse), "\(p)")
        }
    }

    /// Work is split by the problem's shape only, so the thread count cannot change a bit.
    func testThreadCountsGiveIdenticalBits() throws {
        for p in [AttentionProblem(qHeads: 4, kvHeads: 2, qLen: 200, kvLen: 333, qkDim: 96, causal: true),
                  AttentionProblem(qHeads: 8, kvHeads: 1, qLen: 1, kvLen: 9000, qkDim: 64)] {
            let x = AttentionInputs(p, seed: 8)
            let one = try run(p, x, ["threads": 1]), two = try run(p, x, ["threads": 2]), three = try run(p, x, ["threads": 3])
            XCTAssertEqual(bits(one.o), bits(two.o), "\(p)")
            XCTAssertEqual(bits(one.o), bits(three.o), "\(p)")
            XCTAssertEqual(bits(one.lse), bits(two.lse), "\(p)")
        }
    }

    func testInputsAreNotModified() throws {
        let p = AttentionProblem(qHeads: 4, kvHeads: 2, qLen: 70, kvLen: 500, qkDim: 64, causal: true)
        let x = AttentionInputs(p, seed: 9)
        let copy = x
        _ = try run(p, x, ["kv_splits": 3])
        XCTAssertEqual(bits(x.q), bits(copy.q))
        XCTAssertEqual(bits(x.k), bits(copy.k))
        XCTAssertEqual(bits(x.v), bits(copy.v))
    }

    /// Each option must change the output compared with leaving it out.
    func testEveryOptionChangesTheOutput() throws {
        let base = AttentionProblem(qHeads: 2, qLen: 50, kvLen: 120, qkDim: 64)
        let x = AttentionInputs(base, seed: 10)
        let plain = try run(base, x).o
        var variants: [(String, AttentionProblem)] = []
        var p = base; p.scale = 0.05; variants.append(("scale", p))
        p = base; p.causal = true; variants.append(("causal", p))
        p = base; p.causal = true; p.qOffset = 20; variants.append(("q_offset", p))
        p = base; p.window = 30; variants.append(("window", p))
        for (name, v) in variants {
            let o = try run(v, x).o
            let diff = zip(o.data, plain.data).map { abs($0 - $1) }.max() ?? 0
            XCTAssertGreaterThan(diff, 1e-3, "\(name) did not change the output")
        }
        var causal = base; causal.causal = true
        var offset = causal; offset.qOffset = 20
        let a = try run(causal, x).o, b = try run(offset, x).o
        XCTAssertGreaterThan(zip(a.data, b.data).map { abs($0 - $1) }.max() ?? 0, 1e-3, "q_offset ignored under causal")
    }

    /// Decoding one token at a time over a growing cache equals causal prefill, row by row.
    func testStepwiseDecodeEqualsPrefill() throws {
        let n = 40
        let p = AttentionProblem(qHeads: 4, kvHeads: 2, qLen: n, kvLen: n, qkDim: 64, causal: true)
        let x = AttentionInputs(p, seed: 11)
        let prefill = try run(p, x)
        for i in [0, 1, 17, n - 1] {
            let step = AttentionProblem(qHeads: 4, kvHeads: 2, qLen: 1, kvLen: i + 1, qkDim: 64, causal: true)
            func slice(_ t: Tensor, heads: Int, rows: Range<Int>, dim: Int, len: Int) -> Tensor {
                var data: [Float] = []
                for h in 0..<heads { for r in rows { data += t.data[((h * len) + r) * dim..<((h * len) + r + 1) * dim] } }
                return Tensor(shape: [1, heads, rows.count, dim], data: data)
            }
            let q = slice(x.q, heads: 4, rows: i..<(i + 1), dim: 64, len: n)
            let k = slice(x.k, heads: 2, rows: 0..<(i + 1), dim: 64, len: n)
            let v = slice(x.v, heads: 2, rows: 0..<(i + 1), dim: 64, len: n)
            let out = try flash.run(step, q: q, k: k, v: v)
            let expected = slice(prefill.o, heads: 4, rows: i..<(i + 1), dim: 64, len: n)
            let err = zip(out.o.data, expected.data).map { abs($0 - $1) }.max() ?? 0
            XCTAssertLessThanOrEqual(err, 2e-6, "row \(i)")
        }
    }

    func testNaNInVisibleInputPropagates() throws {
        let p = AttentionProblem(qHeads: 2, qLen: 20, kvLen: 40, qkDim: 64, causal: true)
        var x = AttentionInputs(p, seed: 12)
        x.q.data[5 * 64 + 3] = .nan  // head 0, row 5
        let o = try run(p, x).o
        XCTAssertTrue(o.data[5 * 64..<6 * 64].allSatisfy(\.isNaN), "row with NaN query must be NaN")
        XCTAssertFalse(o.data[6 * 64..<7 * 64].contains(where: \.isNaN), "other rows stay finite")

        var y = AttentionInputs(p, seed: 12)
        y.v.data[0] = .nan  // key 0 is visible to every row of head 0
        let o2 = try run(p, y).o
        XCTAssertTrue(o2.data[0 * 64].isNaN && o2.data[19 * 64].isNaN)
    }

    /// A NaN key visible to some rows of a tile but not others reaches exactly the rows that see it.
    func testPoisonVisibleToSomeRowsOnly() throws {
        let p = AttentionProblem(qHeads: 1, qLen: 64, kvLen: 64, qkDim: 64, causal: true)
        var x = AttentionInputs(p, seed: 13)
        let j = 30
        for d in 0..<64 { x.k.data[j * 64 + d] = .nan; x.v.data[j * 64 + d] = .nan }
        let o = try run(p, x).o
        let ref = try ReferenceBridge.softmax(p, x)
        for i in 0..<64 {
            let row = o.data[i * 64..<(i + 1) * 64]
            if i < j {
                XCTAssertFalse(row.contains(where: \.isNaN), "row \(i) cannot see key \(j)")
                let err = zip(row, ref.o[i * 64..<(i + 1) * 64]).map { abs(Double($0) - $1) }.max() ?? 0
                XCTAssertLessThanOrEqual(err, 2e-5)
            } else {
                XCTAssertTrue(row.allSatisfy(\.isNaN), "row \(i) sees key \(j)")
            }
        }
    }

    func testInvalidProblemsAreRejectedWithAMessage() {
        let x = AttentionInputs(AttentionProblem(qHeads: 3, kvHeads: 2, qLen: 4, kvLen: 4, qkDim: 8), seed: 1)
        let cases: [(AttentionProblem, String)] = [
            (AttentionProblem(qHeads: 3, kvHeads: 2, qLen: 4, kvLen: 4, qkDim: 8), "multiple of kv_heads"),
            (AttentionProblem(qHeads: 2, qLen: 4, kvLen: 4, qkDim: 8, window: -1), "window"),
            (AttentionProblem(qHeads: 2, qLen: 4, kvLen: 4, qkDim: 8, scale: .nan), "scale"),
            (AttentionProblem(qHeads: 2, qLen: 0, kvLen: 4, qkDim: 8), "q_len"),
            (AttentionProblem(qHeads: 2, qLen: 4, kvLen: 4, qkDim: 0), "qk_dim"),
        ]
        for (p, needle) in cases {
            XCTAssertThrowsError(try flash.run(p, q: x.q, k: x.k, v: x.v)) { error in
                XCTAssertTrue("\(error)".contains(needle), "'\(error)' should mention \(needle)")
            }
        }
        let ok = AttentionProblem(qHeads: 2, qLen: 4, kvLen: 4, qkDim: 8)
        let y = AttentionInputs(ok, seed: 2)
        XCTAssertThrowsError(try flash.run(ok, q: y.q, k: y.k, v: y.v, parameters: ["blok_kv": 64])) { error in
            XCTAssertTrue("\(error)".contains("no parameter 'blok_kv'"), "\(error)")
        }
        XCTAssertThrowsError(try flash.run(ok, q: y.q, k: y.k, v: y.v, parameters: ["block_kv": 64.5]))
        XCTAssertThrowsError(try flash.run(ok, q: y.q, k: y.k, v: y.v, parameters: ["block_kv": -1]))
        XCTAssertThrowsError(try flash.run(ok, q: Tensor(zeros: [1, 2, 5, 8]), k: y.k, v: y.v)) { error in
            XCTAssertTrue("\(error)".contains("q has shape"), "\(error)")
        }
    }

    /// The ABI refuses an output that overlaps its inputs instead of corrupting them.
    func testAliasedOutputIsRejected() {
        var p = attune_attention_problem()
        attune_attention_problem_init(&p, 1, 2, 2, 8, 8, 16, 16)
        var buffer = [Float](repeating: 1, count: 2 * 8 * 16)
        var status = attune_status()
        let rc = buffer.withUnsafeMutableBufferPointer { b -> Int32 in
            var t = attune_attention_tensors(q: b.baseAddress, k: b.baseAddress, v: b.baseAddress, o: b.baseAddress, lse: nil)
            return attune_flash_attention(&p, &t, nil, &status)
        }
        XCTAssertEqual(rc, Int32(ATTUNE_ERR_INVALID_ARGUMENT.rawValue))
        let message = withUnsafeBytes(of: status.message) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        XCTAssertTrue(message.contains("overlaps"), message)
    }
}
