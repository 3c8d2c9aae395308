import XCTest
import AttuneIR
import AttuneNumerics
@testable import AttunePasses

final class AddRMSNormFusionTests: XCTestCase {
    /// `h = x + y; out = rms_norm(h) ; next = h + out` (the residual stream continues).
    func residual(broadcast: Bool = false, readBeforeNorm: Bool = false) throws -> Graph {
        var b = GraphBuilder(name: "residual")
        let x = b.input("x", .f32, ["seq", 8])
        let y = broadcast ? b.weight("bias", .f32, [8]) : b.input("y", .f32, ["seq", 8])
        b.label = "model.layers.0.residual"
        let h = try b.add(.add, [x, y])
        if readBeforeNorm { b.output("early", try b.add(.silu, [h])) }
        b.label = "model.layers.0.post_attention_layernorm"
        let normed = try b.add(.rmsNorm(eps: 1e-5), [h, b.weight("norm.weight", .f32, [8])])
        b.output("next", try b.add(.add, [h, normed]))
        return b.graph
    }

    func testFusesResidualAddIntoTheNorm() throws {
        let g = try residual()
        let outcome = try Pass.fuseAddRMSNorm.run(g)
        try Verifier.verify(outcome.graph)
        XCTAssertEqual(outcome.stats.matches, 1)
        XCTAssertEqual(opCounts(outcome.graph), ["input": 2, "weight": 1, "add_rms_norm": 1, "add": 1])
        let fused = try XCTUnwrap(outcome.graph.nodes.first { $0.op == .addRMSNorm(eps: 1e-5) })
        XCTAssertEqual(fused.label, "model.layers.0.post_attention_layernorm")
        let diff = try maxOutputDifference(g, outcome.graph, weights: randomWeights(for: g),
                                           inputs: ["x": randomTensor([3, 8], seed: 1), "y": randomTensor([3, 8], seed: 2)])
        XCTAssertLessThanOrEqual(diff, 1e-12)
    }

    func testRefusesBroadcastingAdd() throws {
        XCTAssertEqual(try refusals(.fuseAddRMSNorm, try residual(broadcast: true)),
                       ["the add broadcasts f32[8] over f32[seq, 8]; add_rms_norm needs equal shapes": 1])
    }

    func testRefusesSumReadBeforeTheNorm() throws {
        XCTAssertEqual(try refusals(.fuseAddRMSNorm, try residual(readBeforeNorm: true)),
                       ["the add result is read before the pattern completes": 1])
    }
}
