import XCTest
import AttuneIR
import AttuneNumerics
@testable import AttunePasses

final class QKVMergeTests: XCTestCase {
    /// q/k/v projections of one input; `biases` says which of them have a bias.
    func projections(biases: [Bool]) throws -> Graph {
        var b = GraphBuilder(name: "qkv")
        let x = b.input("x", .f32, ["seq", 16])
        for (name, (out, bias)) in zip(["q", "k", "v"], zip([16, 8, 8], biases)) {
            b.label = "model.layers.0.self_attn.\(name)_proj"
            let w = b.weight("\(name).weight", .f32, [.fixed(out), 16])
            let y = bias ? try b.add(.linear(hasBias: true), [x, w, b.weight("\(name).bias", .f32, [.fixed(out)])])
                         : try b.add(.linear(hasBias: false), [x, w])
            b.output(name, y)
        }
        return b.graph
    }

    func testMergesProjectionsWithAndWithoutBiases() throws {
        for hasBias in [false, true] {
            let g = try projections(biases: [hasBias, hasBias, hasBias])
            let outcome = try Pass.mergeQKV.run(g)
            try Verifier.verify(outcome.graph)
            XCTAssertEqual(outcome.stats.matches, 1)
            let counts = opCounts(outcome.graph)
            XCTAssertEqual(counts["linear"], 1)
            XCTAssertEqual(counts["slice"], 3)
            XCTAssertEqual(counts["concat"], hasBias ? 2 : 1)
            let linear = try XCTUnwrap(outcome.graph.nodes.first { if case .linear = $0.op { true } else { false } })
            XCTAssertEqual(linear.label, "model.layers.0.self_attn.{q_proj,k_proj,v_proj}")
            XCTAssertEqual(outcome.graph.nodes.filter { if case .slice = $0.op { true } else { false } }.map(\.label),
                           ["q", "k", "v"].map { "model.layers.0.self_attn.\($0)_proj" })
            let diff = try maxOutputDifference(g, outcome.graph, weights: randomWeights(for: g),
                                               inputs: ["x": randomTensor([4, 16], seed: 9)])
            XCTAssertLessThanOrEqual(diff, 1e-12)
        }
    }

    func testRefusesMixedBiases() throws {
        XCTAssertEqual(try refusals(.mergeQKV, try projections(biases: [true, true, false])),
                       ["some projections have a bias and some do not": 1])
    }
}
