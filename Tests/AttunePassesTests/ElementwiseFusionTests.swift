import XCTest
import AttuneIR
import AttuneNumerics
@testable import AttunePasses

final class ElementwiseFusionTests: XCTestCase {
    func testFusesAChainWithBroadcastAndConstants() throws {
        // out = gelu((x + bias) * 0.5) * silu(y): five ops, bias broadcast over rows.
        var b = GraphBuilder(name: "chain")
        b.label = "block"
        let x = b.input("x", .f32, ["seq", 8])
        let y = b.input("y", .f32, ["seq", 8])
        let bias = b.weight("bias", .f32, [8])
        let s = try b.add(.scale(factor: 0.5), [try b.add(.add, [x, bias])])
        b.output("out", try b.add(.mul, [try b.add(.gelu, [s]), try b.add(.silu, [y])]))
        let g = b.graph

        let outcome = try Pass.fuseElementwise.run(g)
        try Verifier.verify(outcome.graph)
        XCTAssertEqual(outcome.stats.matches, 1)
        XCTAssertEqual(outcome.stats.notes, ["chain of 5 ops: 1"])
        XCTAssertEqual(opCounts(outcome.graph), ["input": 2, "weight": 1, "elementwise": 1])
        let node = try XCTUnwrap(outcome.graph.nodes.last)
        XCTAssertEqual(node.op, .elementwise(try ElementwiseProgram.parse("gelu((in0 + in1) * 0.5) * silu(in2)")))
        XCTAssertEqual(node.label, "block")
        let diff = try maxOutputDifference(g, outcome.graph, weights: randomWeights(for: g),
                                           inputs: ["x": randomTensor([3, 8], seed: 1), "y": randomTensor([3, 8], seed: 2)])
        XCTAssertLessThanOrEqual(diff, 1e-12)
    }

    func testFullShapeInputBecomesIn0() throws {
        // An existing program reads its small input first; after inlining, the input with
        // the output's shape must still be in0 (it defines the program's shape).
        var b = GraphBuilder(name: "reorder")
        let x = b.input("x", .f32, ["seq", 4])
        let w = b.weight("w", .f32, [4])
        let e = try b.add(.elementwise(try ElementwiseProgram.parse("in0 * in1")), [x, w])
        let inner = try b.add(.elementwise(try ElementwiseProgram.parse("in1 + silu(in0)")), [e, w])
        b.output("out", try b.add(.mul, [inner, x]))
        let g = b.graph
        let outcome = try Pass.fuseElementwise.run(g)
        try Verifier.verify(outcome.graph)
        XCTAssertEqual(opCounts(outcome.graph)["elementwise"], 1)
        let node = try XCTUnwrap(outcome.graph.nodes.last)
        XCTAssertEqual(node.inputs.map(outcome.graph.type(of:)).first?.shape, ["seq", 4])
        let diff = try maxOutputDifference(g, outcome.graph, weights: randomWeights(for: g),
                                           inputs: ["x": randomTensor([2, 4], seed: 4)])
        XCTAssertLessThanOrEqual(diff, 1e-12)
    }

    func testRefusesWhenTheProducerHasOtherUsers() throws {
        // a = x + y is used twice, so silu(a) cannot absorb it.
        var b = GraphBuilder(name: "shared")
        let x = b.input("x", .f32, ["seq", 8])
        let a = try b.add(.add, [x, b.input("y", .f32, ["seq", 8])])
        b.output("s", try b.add(.silu, [a]))
        b.output("a", a)
        XCTAssertEqual(try refusals(.fuseElementwise, b.graph), ["every elementwise producer of the silu has other users": 1])
    }
}
