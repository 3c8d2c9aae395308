import AttuneIR
import AttuneNumerics
import Foundation
import XCTest

/// Each op alone, against values computed by hand.
final class ReferenceInterpreterOpTests: XCTestCase {
    let inf = Double.infinity

    func testEmbeddingPicksRows() throws {
        let table = F64Tensor(shape: [3, 2], data: [1, 2, 3, 4, 5, 6])
        let out = try runOp(.embedding, [table, F64Tensor(ids: [2, 0, 2])], dtypes: [.f32, .i32])
        assertClose(out[0], shape: [3, 2], [5, 6, 1, 2, 5, 6])
    }

    func testLinearWithBias() throws {
        let x = F64Tensor(shape: [2, 3], data: [1, 2, 3, 4, 5, 6])
        let w = F64Tensor(shape: [2, 3], data: [1, 0, -1, 0.5, 0.5, 0.5])
        let b = F64Tensor(shape: [2], data: [10, -1])
        assertClose(try runOp(.linear(hasBias: true), [x, w, b])[0], shape: [2, 2], [8, 2, 8, 6.5])
        assertClose(try runOp(.linear(hasBias: false), [x, w])[0], shape: [2, 2], [-2, 3, -2, 7.5])
        // Rank 3 x: the leading dims are rows.
        let x3 = F64Tensor(shape: [2, 1, 3], data: x.data)
        assertClose(try runOp(.linear(hasBias: true), [x3, w, b])[0], shape: [2, 1, 2], [8, 2, 8, 6.5])
    }

    func testMatmulPlainAndTransposeB() throws {
        // Two batches: [[1,2],[3,4]] and [[0,1],[1,0]].
        let a = F64Tensor(shape: [2, 2, 2], data: [1, 2, 3, 4, 0, 1, 1, 0])
        // bᵀ layout [batch, n=3, k=2].
        let bt = F64Tensor(shape: [2, 3, 2], data: [1, 0, 0, 1, 1, 1, 2, 0, 0, 2, 1, -1])
        let expected: [Double] = [1, 2, 3, 3, 4, 7,   0, 2, -1, 2, 0, 1]
        assertClose(try runOp(.matmul(transposeB: true), [a, bt])[0], shape: [2, 2, 3], expected)
        // The same b in [batch, k=2, n=3] layout.
        let b = F64Tensor(shape: [2, 2, 3], data: [1, 0, 1, 0, 1, 1, 2, 0, 1, 0, 2, -1])
        assertClose(try runOp(.matmul(transposeB: false), [a, b])[0], shape: [2, 2, 3], expected)
    }

    func testBroadcastAddAndMul() throws {
        let a = F64Tensor(shape: [2, 2, 3], data: (0..<12).map(Double.init))
        let b1 = F64Tensor(shape: [3], data: [10, 20, 30])
        assertClose(try runOp(.add, [a, b1])[0], shape: [2, 2, 3], [10, 21, 32, 13, 24, 35, 16, 27, 38, 19, 30, 41])
        let b2 = F64Tensor(shape: [2, 3], data: [1, 1, 1, -1, -1, -1])
        assertClose(try runOp(.mul, [a, b2])[0], shape: [2, 2, 3], [0, 1, 2, -3, -4, -5, 6, 7, 8, -9, -10, -11])
        assertClose(try runOp(.add, [a, a])[0], shape: [2, 2, 3], (0..<12).map { 2 * Double($0) })
    }

    func testScaleSiluGelu() throws {
        let x = F64Tensor(shape: [4], data: [0, 1, -1, 2])
        assertClose(try runOp(.scale(factor: -0.5), [x])[0], shape: [4], [0, -0.5, 0.5, -1])
        assertClose(try runOp(.silu, [x])[0], shape: [4], [0, 0.7310585786300049, -0.2689414213699951, 2 / (1 + exp(-2))])
        assertClose(try runOp(.gelu, [F64Tensor(shape: [5], data: [0, 1, -1, 2, -3])])[0], shape: [5],
                    [0, 0.8411919906082768, -0.15880800939172324, 1.954597694087775, -0.0036373920817729943], tol: 1e-15)
        // Large |x| saturates without NaN.
        assertClose(try runOp(.silu, [F64Tensor(shape: [2], data: [-1000, 1000])])[0], shape: [2], [0, 1000])
    }

    func testRMSNorm() throws {
        let x = F64Tensor(shape: [2, 4], data: [1, 2, 3, 4, 0, 0, 0, 2])
        let w = F64Tensor(shape: [4], data: [1, 1, 2, 0.5])
        let eps = 1e-5
        let r0 = 1 / (7.5 + eps).squareRoot(), r1 = 1 / (1 + eps).squareRoot()
        assertClose(try runOp(.rmsNorm(eps: eps), [x, w])[0], shape: [2, 4],
                    [1 * r0, 2 * r0, 6 * r0, 2 * r0, 0, 0, 0, 1 * r1])
    }

    func testHeadRMSNormNormalisesEachHeadAlone() throws {
        // Two heads of 2: [3, 4] and [0, 2] in row 0; one weight [1, 2] for both.
        let x = F64Tensor(shape: [2, 4], data: [3, 4, 0, 2, 1, 1, 5, 5])
        let w = F64Tensor(shape: [2], data: [1, 2])
        let eps = 1e-6
        let a = 1 / (12.5 + eps).squareRoot(), b = 1 / (2 + eps).squareRoot(), c = 1 / (1 + eps).squareRoot()
        let d = 1 / (25 + eps).squareRoot()
        assertClose(try runOp(.headRMSNorm(eps: eps), [x, w])[0], shape: [2, 4],
                    [3 * a, 8 * a, 0, 4 * b, c, 2 * c, 5 * d, 10 * d])
    }

    func testLayerNorm() throws {
        let x = F64Tensor(shape: [1, 4], data: [1, 2, 3, 4])
        let w = F64Tensor(shape: [4], data: [1, 2, 1, 1])
        let b = F64Tensor(shape: [4], data: [0, 0, 1, -1])
        let eps = 1e-5
        let inv = 1 / (1.25 + eps).squareRoot()   // mean 2.5, population variance 1.25
        assertClose(try runOp(.layerNorm(eps: eps), [x, w, b])[0], shape: [1, 4],
                    [-1.5 * inv, -0.5 * inv * 2, 0.5 * inv + 1, 1.5 * inv - 1])
    }

    func testSoftmaxLastAxis() throws {
        let x = F64Tensor(shape: [3, 3], data: [1, 2, 3, 0, -inf, -inf, 1000, 1000, 999])
        let e = [exp(-2.0), exp(-1.0), 1.0], s = e.reduce(0, +)
        let t = 2 + exp(-1.0)
        assertClose(try runOp(.softmax, [x])[0], shape: [3, 3],
                    [e[0] / s, e[1] / s, e[2] / s, 1, 0, 0, 1 / t, 1 / t, exp(-1.0) / t])
    }

    func testRopeOneHeadAtAKnownPosition() throws {
        // head_dim 4, theta 100: inverse frequencies 1 and 100^(-1/2) = 0.1; position 3.
        let x = F64Tensor(shape: [2, 4], data: [1, 2, 3, 4, 1, 2, 3, 4])
        let pos = F64Tensor(ids: [0, 3])
        let out = try runOp(.rope(RopeAttrs(heads: 1, headDim: 4, theta: 100)), [x, pos], dtypes: [.f32, .i32])[0]
        let (a, b) = (3.0, 0.3)
        assertClose(out, shape: [2, 4], [1, 2, 3, 4,
                                         1 * cos(a) - 3 * sin(a), 2 * cos(b) - 4 * sin(b),
                                         3 * cos(a) + 1 * sin(a), 4 * cos(b) + 2 * sin(b)])
        // Partial rotary (rotary_dim 2), two heads: dims 2 and 3 of each head pass through.
        let x2 = F64Tensor(shape: [1, 8], data: [1, 2, 3, 4, 5, 6, 7, 8])
        let out2 = try runOp(.rope(RopeAttrs(heads: 2, headDim: 4, rotaryDim: 2, theta: 100)),
                             [x2, F64Tensor(ids: [3])], dtypes: [.f32, .i32])[0]
        assertClose(out2, shape: [1, 8], [1 * cos(a) - 2 * sin(a), 2 * cos(a) + 1 * sin(a), 3, 4,
                                          5 * cos(a) - 6 * sin(a), 6 * cos(a) + 5 * sin(a), 7, 8])
    }

    func testAttentionMaskCausalAndWindowWithSeqBelowKV() throws {
        let scores = F64Tensor(shape: [3, 2, 5], repeating: 7)   // [heads, seq = 2, kv = 5]
        // Row 0 sits at position 3, row 1 at 4.
        let causal = try runOp(.attentionMask(causal: true, window: nil), [scores])[0]
        assertClose(causal, shape: [2, 5], [0, 0, 0, 0, -inf, 0, 0, 0, 0, 0])
        let windowed = try runOp(.attentionMask(causal: true, window: 2), [scores])[0]
        assertClose(windowed, shape: [2, 5], [-inf, -inf, 0, 0, -inf, -inf, -inf, -inf, 0, 0])
        let windowOnly = try runOp(.attentionMask(causal: false, window: 2), [scores])[0]
        assertClose(windowOnly, shape: [2, 5], [-inf, -inf, 0, 0, 0, -inf, -inf, -inf, 0, 0])
        let none = try runOp(.attentionMask(causal: false, window: nil), [scores])[0]
        assertClose(none, shape: [2, 5], [Double](repeating: 0, count: 10))
    }

    func testSigmoidAttentionOneKey() throws {
        let q = F64Tensor(shape: [1, 2], data: [1, 2]), k = F64Tensor(shape: [1, 2], data: [0.5, -1])
        let v = F64Tensor(shape: [1, 2], data: [3, 4])
        let out = try runOp(.attention(AttentionAttrs(heads: 1, kvHeads: 1, headDim: 2, scale: 0.5,
                                                      normalizer: .sigmoid(bias: -1))), [q, k, v])[0]
        let w = 1 / (1 + exp(-(0.5 * (0.5 - 2) - 1)))
        assertClose(out, shape: [1, 2], [3 * w, 4 * w])
    }

    func testRepeatInterleave() throws {
        let x = F64Tensor(shape: [2, 2], data: [1, 2, 3, 4])
        assertClose(try runOp(.repeatInterleave(axis: 0, repeats: 2), [x])[0], shape: [4, 2], [1, 2, 1, 2, 3, 4, 3, 4])
        assertClose(try runOp(.repeatInterleave(axis: 1, repeats: 3), [x])[0], shape: [2, 6], [1, 1, 1, 2, 2, 2, 3, 3, 3, 4, 4, 4])
    }

    func testTranspose3D() throws {
        let x = F64Tensor(shape: [2, 3, 4], data: (0..<24).map(Double.init))
        let out = try runOp(.transpose(perm: [2, 0, 1]), [x])[0]
        var expected: [Double] = []
        for a in 0..<4 { for b in 0..<2 { for c in 0..<3 { expected.append(Double(b * 12 + c * 4 + a)) } } }
        assertClose(out, shape: [4, 2, 3], expected)
        let swap = try runOp(.transpose(perm: [1, 0, 2]), [x])[0]
        expected = []
        for b in 0..<3 { for a in 0..<2 { for c in 0..<4 { expected.append(Double(a * 12 + b * 4 + c)) } } }
        assertClose(swap, shape: [3, 2, 4], expected)
    }

    func testSliceAndConcat() throws {
        let x = F64Tensor(shape: [3, 4], data: (0..<12).map(Double.init))
        assertClose(try runOp(.slice(axis: 1, start: 1, end: 3), [x])[0], shape: [3, 2], [1, 2, 5, 6, 9, 10])
        assertClose(try runOp(.slice(axis: 0, start: 1, end: nil), [x])[0], shape: [2, 4], (4..<12).map(Double.init))
        let a = F64Tensor(shape: [2, 2], data: [1, 2, 3, 4]), b = F64Tensor(shape: [2, 1], data: [5, 6])
        assertClose(try runOp(.concat(axis: 1), [a, b])[0], shape: [2, 3], [1, 2, 5, 3, 4, 6])
        assertClose(try runOp(.concat(axis: 0), [a, a, a])[0], shape: [6, 2], [1, 2, 3, 4, 1, 2, 3, 4, 1, 2, 3, 4])
    }

    func testReshapeKeepsData() throws {
        let x = F64Tensor(shape: [2, 6], data: (0..<12).map(Double.init))
        assertClose(try runOp(.reshape(shape: [3, 2, 2]), [x])[0], shape: [3, 2, 2], x.data)
    }

    func testSwiGLUHandComputed() throws {
        let x = F64Tensor(shape: [1, 2], data: [1, 2])
        let w = F64Tensor(shape: [4, 2], data: [1, 0, 0, 1, 1, 1, -1, 0.5])   // gate rows, then up rows
        // gate = [1, 2], up = [3, 0]
        assertClose(try runOp(.swiGLU, [x, w])[0], shape: [1, 2], [0.7310585786300049 * 3, 0])
    }

    func testKVAppendGrowsAcrossRuns() throws {
        var b = GraphBuilder(name: "cache")
        let x = b.input("x", .f32, ["seq", 2])
        b.output("all", try b.add(.kvAppend(layer: 3, kind: .value), [x]))
        let interp = try ReferenceInterpreter(graph: b.graph, weights: DictionaryWeights([:]))
        assertClose(try interp.run(inputs: ["x": F64Tensor(shape: [2, 2], data: [1, 2, 3, 4])])["all"], shape: [2, 2], [1, 2, 3, 4])
        assertClose(try interp.run(inputs: ["x": F64Tensor(shape: [1, 2], data: [5, 6])])["all"], shape: [3, 2], [1, 2, 3, 4, 5, 6])
        XCTAssertEqual(interp.cache(layer: 3, kind: .value)?.shape, [3, 2])
        XCTAssertNil(interp.cache(layer: 3, kind: .key))
        interp.reset()
        XCTAssertNil(interp.cache(layer: 3, kind: .value))
        assertClose(try interp.run(inputs: ["x": F64Tensor(shape: [1, 2], data: [7, 8])])["all"], shape: [1, 2], [7, 8])
    }
}
