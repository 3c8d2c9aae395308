import XCTest
import AttuneIR
import AttuneNumerics
@testable import AttunePasses

final class AttentionFusionTests: XCTestCase {
    func inputs(_ a: EagerAttentionGraph, seq: Int = 3, kv: Int = 6) -> [String: F64Tensor] {
        var x = ["q": randomTensor([seq, a.heads * a.headDim], seed: 1),
                 "k": randomTensor([kv, a.kvHeads * a.headDim], seed: 2),
                 "v": randomTensor([kv, a.kvHeads * a.vHeadDim], seed: 3)]
        if a.addPlainBias { x["bias"] = randomTensor([seq, kv], seed: 4) }
        return x
    }

    func attrs(_ g: Graph) throws -> AttentionAttrs {
        let node = try XCTUnwrap(g.nodes.first { if case .attention = $0.op { true } else { false } })
        guard case .attention(let a) = node.op else { throw PassError("not attention") }
        XCTAssertEqual(node.label, "layers.0.self_attn")
        return a
    }

    func assertFuses(_ a: EagerAttentionGraph, file: StaticString = #filePath, line: UInt = #line) throws -> AttentionAttrs {
        let g = try a.build()
        let outcome = try Pass.fuseAttention.run(g)
        try Verifier.verify(outcome.graph)
        XCTAssertEqual(outcome.stats.matches, 1, file: file, line: line)
        XCTAssertEqual(outcome.stats.refusals, [:], file: file, line: line)
        XCTAssertEqual(opCounts(outcome.graph), ["input": 3, "attention": 1], file: file, line: line)
        let diff = try maxOutputDifference(g, outcome.graph, weights: DictionaryWeights([:]), inputs: inputs(a))
        XCTAssertLessThanOrEqual(diff, 1e-12, file: file, line: line)
        return try attrs(outcome.graph)
    }

    func testFusesGQAWithCausalMask() throws {
        let a = try assertFuses(EagerAttentionGraph())
        XCTAssertEqual([a.heads, a.kvHeads, a.headDim, a.vHeadDim], [4, 2, 8, 8])
        XCTAssertEqual(a.scale, 0.25)
        XCTAssertTrue(a.causal)
        XCTAssertNil(a.window)
        XCTAssertEqual(a.normalizer, .softmax)
        XCTAssertNil(a.binding)
    }

    func testFusesSlidingWindowAndDistinctValueHeadDim() throws {
        let a = try assertFuses(EagerAttentionGraph(heads: 2, kvHeads: 2, vHeadDim: 4, mask: .init(causal: true, window: 2)))
        XCTAssertEqual([a.heads, a.kvHeads, a.vHeadDim], [2, 2, 4])
        XCTAssertEqual(a.window, 2)
    }

    /// Gemma 2: softcap(scale(q·kᵀ)) + mask; the cap (small, so tanh bites on these scores)
    /// becomes the node's, and the fused graph computes the same.
    func testFusesSoftCappedScores() throws {
        let a = try assertFuses(EagerAttentionGraph(mask: .init(causal: true, window: 3), softcap: 0.5))
        XCTAssertEqual(a.softcap, 0.5)
        XCTAssertEqual(a.scale, 0.25)
        XCTAssertEqual(a.window, 3)
        XCTAssertNil(try assertFuses(EagerAttentionGraph()).softcap)
    }

    func testNoMaskMeansNotCausal() throws {
        let a = try assertFuses(EagerAttentionGraph(mask: nil))
        XCTAssertFalse(a.causal)
        XCTAssertNil(a.window)
    }

    func assertRefuses(_ a: EagerAttentionGraph, _ reason: String, file: StaticString = #filePath, line: UInt = #line) throws {
        let g = try a.build()
        let outcome = try Pass.fuseAttention.run(g)
        XCTAssertEqual(outcome.stats.matches, 0, file: file, line: line)
        XCTAssertEqual(outcome.stats.refusals, [reason: 1], file: file, line: line)
        XCTAssertEqual(outcome.stats.refusedAt.first?.label, "layers.0.self_attn", file: file, line: line)
        XCTAssertEqual(outcome.graph, g, "a refused pattern is left exactly as it was", file: file, line: line)
    }

    func testRefusesWhenSoftmaxHasOtherUsers() throws {
        try assertRefuses(EagerAttentionGraph(exposeSoftmax: true), "the softmax result is a graph output")
    }

    func testRefusesWithoutScale() throws {
        try assertRefuses(EagerAttentionGraph(scale: nil), "the scale is missing: q·kᵀ goes to the softmax unscaled")
    }

    func testRefusesMismatchedHeadSplit() throws {
        try assertRefuses(EagerAttentionGraph(heads: 4, kvHeads: 2, vHeads: 4),
                          "the head split does not match: k has 2 heads ×2, v 4 ×1")
    }

    func testRefusesAnAddedTensorThatIsNotAMask() throws {
        try assertRefuses(EagerAttentionGraph(addPlainBias: true), "the tensor added to the scores is not an attention_mask")
    }

    func testRefusesWhenSoftmaxFeedsAnotherNode() throws {
        // The probabilities are also scaled and output: the softmax must stay materialised.
        var g = try EagerAttentionGraph().build()
        let softmax = try XCTUnwrap(g.nodes.firstIndex { if case .softmax = $0.op { true } else { false } })
        g.nodes.append(Node(op: .scale(factor: 2), inputs: [Value(node: softmax)], types: g.nodes[softmax].types))
        g.outputs.append(Graph.Output(name: "scaled_probs", value: Value(node: g.nodes.count - 1)))
        try Verifier.verify(g)
        let outcome = try Pass.fuseAttention.run(g)
        XCTAssertEqual(outcome.stats.refusals, ["the softmax result has other users outside the pattern": 1])
        XCTAssertEqual(outcome.stats.refusedAt.map(\.node), [g.nodes.count - 2], "the refusal names the root (the head merge)")
    }
}
