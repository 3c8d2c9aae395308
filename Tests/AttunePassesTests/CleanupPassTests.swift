import XCTest
import AttuneIR
@testable import AttunePasses

/// verify, dce, cse.
final class CleanupPassTests: XCTestCase {
    func testVerifyPassesAWellFormedGraphThrough() throws {
        let g = try decoder(try TinyConfigs.llamaMHA())
        let outcome = try Pass.verify.run(g)
        XCTAssertEqual(outcome.graph, g)
    }

    func testVerifyRejectsAnIllTypedGraph() throws {
        var g = try decoder(try TinyConfigs.llamaMHA())
        g.nodes[3].types = [TensorType(.f32, ["seq", 7])]
        XCTAssertThrowsError(try Pass.verify.run(g)) { error in
            XCTAssertTrue("\(error)".hasPrefix("verify: graph 'tiny' is ill-formed: node %3 (embedding"), "\(error)")
        }
    }

    func testDCERemovesDeadNodesButKeepsInputsAndCacheWrites() throws {
        var b = GraphBuilder(name: "dead")
        let x = b.input("x", .f32, ["seq", 4])
        _ = b.input("unused", .i32, ["seq"])
        let w = b.weight("dead.weight", .f32, [4, 4])
        _ = try b.add(.linear(hasBias: false), [x, w])                       // dead
        _ = try b.add(.kvAppend(layer: 0, kind: .key), [try b.add(.silu, [x])])   // side effect: kept
        b.output("y", try b.add(.gelu, [x]))
        let outcome = try Pass.dce.run(b.graph)
        try Verifier.verify(outcome.graph)
        XCTAssertEqual(outcome.stats.matches, 2)
        XCTAssertEqual(opCounts(outcome.graph), ["input": 2, "silu": 1, "kv_append": 1, "gelu": 1])
        XCTAssertEqual(outcome.stats.notes, ["removed 2 of 7 nodes"])
    }

    func testDCEKeepsALiveGraph() throws {
        let g = try decoder(try TinyConfigs.llamaMHA())
        XCTAssertEqual(try Pass.dce.run(g).graph, g)
    }

    func testCSEMergesDuplicateWeightsAndComputations() throws {
        var b = GraphBuilder(name: "dup")
        let x = b.input("x", .f32, ["seq", 4])
        let w1 = b.weight("w", .f32, [4, 4])
        let w2 = b.weight("w", .f32, [4, 4])
        let y1 = try b.add(.linear(hasBias: false), [x, w1])
        let y2 = try b.add(.linear(hasBias: false), [x, w2])
        b.output("y", try b.add(.add, [y1, y2]))
        let outcome = try Pass.cse.run(b.graph)
        try Verifier.verify(outcome.graph)
        XCTAssertEqual(outcome.stats.matches, 2)
        XCTAssertEqual(opCounts(outcome.graph), ["input": 1, "weight": 1, "linear": 1, "add": 1])
        XCTAssertEqual(outcome.graph.nodes.last?.inputs, [Value(node: 2), Value(node: 2)])
    }

    func testCSEKeepsDifferentOpsAndCacheWrites() throws {
        var b = GraphBuilder(name: "distinct")
        let x = b.input("x", .f32, ["seq", 4])
        b.output("a", try b.add(.scale(factor: 2), [x]))
        b.output("b", try b.add(.scale(factor: 3), [x]))
        b.output("k", try b.add(.kvAppend(layer: 0, kind: .key), [x]))
        b.output("v", try b.add(.kvAppend(layer: 0, kind: .value), [x]))
        let outcome = try Pass.cse.run(b.graph)
        XCTAssertEqual(outcome.stats.matches, 0)
        XCTAssertEqual(outcome.graph, b.graph)
    }
}
