import XCTest
import AttuneIR
import AttuneNumerics
@testable import AttunePasses

final class SwiGLUFusionTests: XCTestCase {
    /// `down(silu(gate(x)) * up(x))` with optional gate bias and an extra use of the gate.
    func mlp(gateBias: Bool = false, exposeGate: Bool = false, upFirst: Bool = false, gelu: Bool = false) throws -> Graph {
        var b = GraphBuilder(name: "mlp")
        b.label = "model.layers.0.mlp"
        let x = b.input("x", .f32, ["seq", 16])
        let wg = b.weight("gate.weight", .bf16, [24, 16])
        let gate = gateBias ? try b.add(.linear(hasBias: true), [x, wg, b.weight("gate.bias", .f32, [24])])
                            : try b.add(.linear(hasBias: false), [x, wg])
        let up = try b.add(.linear(hasBias: false), [x, b.weight("up.weight", .bf16, [24, 16])])
        let act = try b.add(gelu ? .gelu : .silu, [gate])
        let h = try b.add(.mul, upFirst ? [up, act] : [act, up])
        b.output("y", try b.add(.linear(hasBias: false), [h, b.weight("down.weight", .f32, [16, 24])]))
        if exposeGate { b.output("gate", gate) }
        return b.graph
    }

    func testFusesGatedMLPInEitherOperandOrder() throws {
        for upFirst in [false, true] {
            let g = try mlp(upFirst: upFirst)
            let outcome = try Pass.fuseSwiGLU.run(g)
            try Verifier.verify(outcome.graph)
            XCTAssertEqual(outcome.stats.matches, 1)
            XCTAssertEqual(opCounts(outcome.graph), ["input": 1, "weight": 3, "concat": 1, "swiglu": 1, "linear": 1])
            let swiglu = try XCTUnwrap(outcome.graph.nodes.first { $0.op == .swiGLU })
            XCTAssertEqual(swiglu.label, "model.layers.0.mlp")
            XCTAssertEqual(outcome.graph.type(of: swiglu.inputs[1]), TensorType(.bf16, [48, 16]))
            let weights = randomWeights(for: g)
            let diff = try maxOutputDifference(g, outcome.graph, weights: weights, inputs: ["x": randomTensor([5, 16], seed: 3)])
            XCTAssertLessThanOrEqual(diff, 1e-12)
        }
    }

    /// Gemma's GeGLU: the same pattern with gelu becomes `geglu`, never `swiglu`.
    func testFusesGeGLU() throws {
        let g = try mlp(gelu: true)
        let outcome = try Pass.fuseSwiGLU.run(g)
        try Verifier.verify(outcome.graph)
        XCTAssertEqual(opCounts(outcome.graph), ["input": 1, "weight": 3, "concat": 1, "geglu": 1, "linear": 1])
        let diff = try maxOutputDifference(g, outcome.graph, weights: randomWeights(for: g), inputs: ["x": randomTensor([5, 16], seed: 3)])
        XCTAssertLessThanOrEqual(diff, 1e-12)
        let silu = try Pass.fuseSwiGLU.run(try mlp())
        XCTAssertEqual(opCounts(silu.graph)["geglu"], nil)
    }

    func testRefusesGateWithBias() throws {
        XCTAssertEqual(try refusals(.fuseSwiGLU, try mlp(gateBias: true)), ["the gate projection has a bias": 1])
    }

    func testRefusesGateWithOtherUsers() throws {
        XCTAssertEqual(try refusals(.fuseSwiGLU, try mlp(exposeGate: true)), ["the linear result is a graph output": 1])
    }
}
