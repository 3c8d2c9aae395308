import XCTest
import AttuneIR
@testable import AttunePasses

/// The machinery every rewrite pass shares.
final class RewritePassTests: XCTestCase {
    func testMergedLabels() {
        XCTAssertEqual(mergedLabel(["a.b.q_proj", "a.b.k_proj", "a.b.v_proj"]), "a.b.{q_proj,k_proj,v_proj}")
        XCTAssertEqual(mergedLabel(["m.mlp", "m.mlp"]), "m.mlp")
        XCTAssertEqual(mergedLabel(["x", "y"]), "{x,y}")
        XCTAssertEqual(mergedLabel([nil, "a.b"]), "a.b")
        XCTAssertNil(mergedLabel([nil, nil]))
    }

    /// Two rms_norms of one residual add: the first fuses, the second would need the
    /// same add and is refused as overlapping.
    func testOverlappingMatchesAreRefused() throws {
        var b = GraphBuilder(name: "overlap")
        let x = b.input("x", .f32, ["seq", 4])
        let h = try b.add(.add, [x, b.input("y", .f32, ["seq", 4])])
        let w = b.weight("w", .f32, [4])
        b.output("a", try b.add(.rmsNorm(eps: 1e-6), [h, w]))
        b.output("b", try b.add(.rmsNorm(eps: 1e-5), [h, w]))
        let outcome = try Pass.fuseAddRMSNorm.run(b.graph)
        try Verifier.verify(outcome.graph)
        XCTAssertEqual(outcome.stats.matches, 1)
        XCTAssertEqual(outcome.stats.refusals, ["overlaps a pattern already rewritten": 1])
        XCTAssertEqual(opCounts(outcome.graph), ["input": 2, "weight": 1, "add_rms_norm": 1, "rms_norm": 1])
    }

    func testCustomRewritePassKeepsLabelsAndRemovesDeadNodes() throws {
        struct GeluMatch: RewriteMatch {
            var root: Int
            var nodes: [Int] { [root] }
            var replaced: [Value] { [Value(node: root)] }
        }
        // gelu → elementwise(gelu(in0)); a toy pass written against the public API.
        let pass = RewritePass<GeluMatch>(
            name: "gelu-to-program", summary: "toy",
            match: { g, i in g[i].op == .gelu ? GeluMatch(root: i) : nil },
            rewrite: { r, m in
                [try r.emit(.elementwise(ElementwiseProgram(.gelu(.input(0)))), [r.new(r.source.nodes[m.root].inputs[0])])]
            }).pass
        var b = GraphBuilder(name: "toy")
        let x = b.input("x", .f32, [4])
        b.label = "mlp.act"
        b.output("y", try b.add(.gelu, [x]))
        let outcome = try pass.run(b.graph)
        XCTAssertEqual(outcome.graph.nodes.map(\.op.mnemonic), ["input", "elementwise"])
        XCTAssertEqual(outcome.graph.nodes.last?.label, "mlp.act")
    }

    func testARewriteThatChangesAValueTypeIsAnError() throws {
        struct Match: RewriteMatch {
            var root: Int
            var nodes: [Int] { [root] }
            var replaced: [Value] { [Value(node: root)] }
        }
        let pass = RewritePass<Match>(
            name: "bad", summary: "replaces a value with one of another shape",
            match: { g, i in g[i].op == .silu ? Match(root: i) : nil },
            rewrite: { r, m in
                [try r.emit(.slice(axis: 0, start: 0, end: 2), [r.new(r.source.nodes[m.root].inputs[0])])]
            }).pass
        var b = GraphBuilder(name: "toy")
        b.output("y", try b.add(.silu, [b.input("x", .f32, [4])]))
        XCTAssertThrowsError(try pass.run(b.graph)) { error in
            XCTAssertTrue("\(error)".contains("bad: rewrite at silu %1 failed: replacing %1 (f32[4]) with a value of type f32[2]"), "\(error)")
        }
    }
}
