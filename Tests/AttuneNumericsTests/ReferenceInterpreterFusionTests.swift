import AttuneIR
import AttuneNumerics
import XCTest

/// Fused ops against the unfused graphs they replace, on random inputs.
final class ReferenceInterpreterFusionTests: XCTestCase {
    /// Builds a graph with `build`, runs it on `inputs` with `weights`, returns the outputs.
    func run(_ build: (inout GraphBuilder) throws -> Void, weights: [String: [Float]] = [:],
             _ inputs: [String: F64Tensor]) throws -> [String: F64Tensor] {
        var b = GraphBuilder(name: "fusion")
        try build(&b)
        return try ReferenceInterpreter(graph: b.graph, weights: DictionaryWeights(weights)).run(inputs: inputs)
    }

    func testSwiGLUEqualsItsUnfusedDefinition() throws {
        var rng = SeededRandom(seed: 1)
        let out = try run({ b in
            let x = b.input("x", .f32, ["seq", 16])
            let w = b.weight("wgu", .f32, [24, 16])
            b.output("fused", try b.add(.swiGLU, [x, w]))
            let both = try b.add(.linear(hasBias: false), [x, w])
            let gate = try b.add(.slice(axis: 1, start: 0, end: 12), [both])
            let up = try b.add(.slice(axis: 1, start: 12, end: nil), [both])
            b.output("unfused", try b.add(.mul, [try b.add(.silu, [gate]), up]))
        }, weights: ["wgu": rng.floats(24 * 16)], ["x": rng.tensor([5, 16])])
        assertClose(out["fused"], out["unfused"])
        XCTAssertEqual(out["fused"]?.shape, [5, 12])
    }

    func testQKVRopeEqualsLinearSliceRope() throws {
        var rng = SeededRandom(seed: 2)
        let (heads, kvHeads, headDim) = (4, 2, 8)
        let width = (heads + 2 * kvHeads) * headDim
        let out = try run({ b in
            let x = b.input("x", .f32, ["seq", 32]), pos = b.input("positions", .i32, ["seq"])
            let w = b.weight("wqkv", .f32, [.fixed(width), 32]), bias = b.weight("bqkv", .f32, [.fixed(width)])
            let attrs = QKVRopeAttrs(heads: heads, kvHeads: kvHeads, headDim: headDim, rotaryDim: 6, theta: 10000, hasBias: true)
            let fused = try b.addMulti(.qkvRope(attrs), [x, w, bias, pos])
            b.output("q", fused[0]); b.output("k", fused[1]); b.output("v", fused[2])
            let y = try b.add(.linear(hasBias: true), [x, w, bias])
            let q = try b.add(.slice(axis: 1, start: 0, end: 32), [y])
            let k = try b.add(.slice(axis: 1, start: 32, end: 48), [y])
            let v = try b.add(.slice(axis: 1, start: 48, end: 64), [y])
            b.output("q_ref", try b.add(.rope(RopeAttrs(heads: heads, headDim: headDim, rotaryDim: 6, theta: 10000)), [q, pos]))
            b.output("k_ref", try b.add(.rope(RopeAttrs(heads: kvHeads, headDim: headDim, rotaryDim: 6, theta: 10000)), [k, pos]))
            b.output("v_ref", v)
        }, weights: ["wqkv": rng.floats(width * 32), "bqkv": rng.floats(width)],
           ["x": rng.tensor([4, 32]), "positions": F64Tensor(ids: [7, 8, 9, 10])])
        for name in ["q", "k", "v"] { assertClose(out[name], out[name + "_ref"], name) }
        XCTAssertEqual(out["q"]?.shape, [4, 32])
        XCTAssertEqual(out["k"]?.shape, [4, 16])
    }

    func testAddRMSNormEqualsAddThenRMSNorm() throws {
        var rng = SeededRandom(seed: 3)
        let out = try run({ b in
            let a = b.input("a", .f32, ["seq", 16]), c = b.input("b", .f32, ["seq", 16])
            let w = b.weight("ln", .f32, [16])
            let fused = try b.addMulti(.addRMSNorm(eps: 1e-6), [a, c, w])
            b.output("sum", fused[0]); b.output("norm", fused[1])
            let sum = try b.add(.add, [a, c])
            b.output("sum_ref", sum)
            b.output("norm_ref", try b.add(.rmsNorm(eps: 1e-6), [sum, w]))
        }, weights: ["ln": rng.floats(16)], ["a": rng.tensor([3, 16]), "b": rng.tensor([3, 16])])
        assertClose(out["sum"], out["sum_ref"], "sum")
        assertClose(out["norm"], out["norm_ref"], "norm")
    }

    func testElementwiseProgramsEqualTheOpsTheyFuse() throws {
        var rng = SeededRandom(seed: 4)
        let out = try run({ b in
            let x = b.input("x", .f32, ["seq", 8]), y = b.input("y", .f32, ["seq", 8]), z = b.input("z", .f32, [8])
            // silu(in0) * (in1 + in2), in2 broadcast over rows.
            let p1 = ElementwiseProgram(.mul(.silu(.input(0)), .add(.input(1), .input(2))))
            b.output("p1", try b.add(.elementwise(p1), [x, y, z]))
            b.output("p1_ref", try b.add(.mul, [try b.add(.silu, [x]), try b.add(.add, [y, z])]))
            // gelu(in0 * 0.5)
            let p2 = try ElementwiseProgram.parse("gelu((in0 * 0.5))")
            b.output("p2", try b.add(.elementwise(p2), [x]))
            b.output("p2_ref", try b.add(.gelu, [try b.add(.scale(factor: 0.5), [x])]))
            // (in0 * in1) * in2 + -1: constants add like `add`.
            let p3 = ElementwiseProgram(.add(.mul(.mul(.input(0), .input(1)), .input(2)), .constant(-1)))
            b.output("p3", try b.add(.elementwise(p3), [x, y, z]))
            let ones = b.input("minus_one", .f32, [8])
            b.output("p3_ref", try b.add(.add, [try b.add(.mul, [try b.add(.mul, [x, y]), z]), ones]))
        }, ["x": rng.tensor([3, 8], scale: 2), "y": rng.tensor([3, 8]), "z": rng.tensor([8]),
            "minus_one": F64Tensor(shape: [8], repeating: -1)])
        for name in ["p1", "p2", "p3"] { assertClose(out[name], out[name + "_ref"], name) }
    }
}
