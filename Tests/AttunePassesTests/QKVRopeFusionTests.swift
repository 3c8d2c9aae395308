import XCTest
import AttuneIR
import AttuneNumerics
@testable import AttunePasses

final class QKVRopeFusionTests: XCTestCase {
    /// A merged QKV projection (4 q heads, 2 kv heads, head_dim 4) sliced into q, k, v,
    /// with RoPE on q and k; `kTheta` lets k's rope differ.
    /// `qNormEps`/`kNormEps`: q/k pass through `head_rms_norm` before their rope (Qwen3).
    func epilogue(bias: Bool = true, kTheta: Double = 10000, rotateV: Bool = false,
                  qNormEps: Double? = nil, kNormEps: Double? = nil) throws -> Graph {
        var b = GraphBuilder(name: "qkv_rope")
        let x = b.input("x", .f32, ["seq", 12])
        let positions = b.input("positions", .i32, ["seq"])
        b.label = "model.layers.0.self_attn.qkv_proj"
        let w = b.weight("qkv.weight", .f32, [32, 12])
        let y = bias ? try b.add(.linear(hasBias: true), [x, w, b.weight("qkv.bias", .f32, [32])])
                     : try b.add(.linear(hasBias: false), [x, w])
        var q = try b.add(.slice(axis: 1, start: 0, end: 16), [y])
        var k = try b.add(.slice(axis: 1, start: 16, end: 24), [y])
        if let eps = qNormEps { q = try b.add(.headRMSNorm(eps: eps), [q, b.weight("q_norm.weight", .f32, [4])]) }
        if let eps = kNormEps { k = try b.add(.headRMSNorm(eps: eps), [k, b.weight("k_norm.weight", .bf16, [4])]) }
        var v = try b.add(.slice(axis: 1, start: 24, end: 32), [y])
        b.label = "model.layers.0.self_attn.rotary_emb"
        b.output("q", try b.add(.rope(RopeAttrs(heads: 4, headDim: 4, theta: 10000)), [q, positions]))
        b.output("k", try b.add(.rope(RopeAttrs(heads: 2, headDim: 4, theta: kTheta)), [k, positions]))
        if rotateV { v = try b.add(.rope(RopeAttrs(heads: 2, headDim: 4, theta: 10000)), [v, positions]) }
        b.output("v", v)
        return b.graph
    }

    func testFusesRopeIntoTheProjection() throws {
        for bias in [false, true] {
            let g = try epilogue(bias: bias)
            let outcome = try Pass.fuseQKVRope.run(g)
            try Verifier.verify(outcome.graph)
            XCTAssertEqual(outcome.stats.matches, 1)
            XCTAssertEqual(opCounts(outcome.graph), ["input": 2, "weight": bias ? 2 : 1, "qkv_rope": 1])
            let node = try XCTUnwrap(outcome.graph.nodes.last)
            XCTAssertEqual(node.op, .qkvRope(QKVRopeAttrs(heads: 4, kvHeads: 2, headDim: 4, theta: 10000, hasBias: bias)))
            XCTAssertEqual(node.label, "model.layers.0.self_attn.qkv_proj")
            let diff = try maxOutputDifference(g, outcome.graph, weights: randomWeights(for: g),
                                               inputs: ["x": randomTensor([5, 12], seed: 5), "positions": F64Tensor(ids: [3, 4, 5, 6, 7])])
            XCTAssertLessThanOrEqual(diff, 1e-12)
        }
    }

    func testRefusesDifferentRopeForQAndK() throws {
        XCTAssertEqual(try refusals(.fuseQKVRope, try epilogue(kTheta: 500000)),
                       ["rope attributes differ between q and k (theta 10000.0 vs 500000.0)": 1])
    }

    func testRefusesRotatedV() throws {
        XCTAssertEqual(try refusals(.fuseQKVRope, try epilogue(rotateV: true)), ["v (the third slice) is rotated by a rope": 1])
    }

    /// Qwen3: the per-head q/k norms between the slices and the ropes join the fused op.
    func testFusesPerHeadNormsBeforeRope() throws {
        let g = try epilogue(qNormEps: 1e-6, kNormEps: 1e-6)
        let outcome = try Pass.fuseQKVRope.run(g)
        try Verifier.verify(outcome.graph)
        XCTAssertEqual(outcome.stats.matches, 1)
        XCTAssertEqual(opCounts(outcome.graph), ["input": 2, "weight": 4, "qkv_rope": 1])
        let node = try XCTUnwrap(outcome.graph.nodes.last)
        XCTAssertEqual(node.op, .qkvRope(QKVRopeAttrs(heads: 4, kvHeads: 2, headDim: 4, theta: 10000, hasBias: true, qkNormEps: 1e-6)))
        XCTAssertEqual(node.inputs.map { outcome.graph.nodes[$0.node].op.mnemonic }, ["input", "weight", "weight", "weight", "weight", "input"])
        let diff = try maxOutputDifference(g, outcome.graph, weights: randomWeights(for: g),
                                           inputs: ["x": randomTensor([5, 12], seed: 5), "positions": F64Tensor(ids: [3, 4, 5, 6, 7])])
        XCTAssertLessThanOrEqual(diff, 1e-12)
    }

    func testRefusesANormOnOnlyOneOfQAndK() throws {
        XCTAssertEqual(try refusals(.fuseQKVRope, try epilogue(qNormEps: 1e-6)),
                       ["only one of q and k is normalised per head before RoPE": 1])
        XCTAssertEqual(try refusals(.fuseQKVRope, try epilogue(qNormEps: 1e-6, kNormEps: 1e-5)),
                       ["q and k are normalised with different eps (1e-06 vs 1e-05)": 1])
    }
}
