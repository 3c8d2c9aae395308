import XCTest
import AttuneIR
import AttuneNumerics
@testable import AttunePasses

final class CanonicalizeTests: XCTestCase {
    func testDropsIdentitiesAndMergesLayoutChains() throws {
        var b = GraphBuilder(name: "layout")
        let x = b.input("x", .f32, ["seq", 12])
        var y = try b.add(.scale(factor: 1), [x])
        y = try b.add(.reshape(shape: ["seq", 3, 4]), [y])
        y = try b.add(.reshape(shape: ["seq", 2, 6]), [y])
        y = try b.add(.reshape(shape: ["seq", 12]), [y])                     // back to x's shape
        y = try b.add(.reshape(shape: ["seq", 3, 4]), [y])
        y = try b.add(.transpose(perm: [1, 0, 2]), [y])
        y = try b.add(.transpose(perm: [0, 2, 1]), [y])                      // composes to [1, 2, 0]
        y = try b.add(.transpose(perm: [0, 1, 2]), [y])                      // identity
        y = try b.add(.slice(axis: 0, start: 0, end: 3), [y])               // whole axis
        y = try b.add(.concat(axis: 0), [y])
        y = try b.add(.repeatInterleave(axis: 1, repeats: 1), [y])
        b.output("y", y)
        let g = b.graph

        let outcome = try Pass.canonicalize.run(g)
        try Verifier.verify(outcome.graph)
        XCTAssertEqual(opCounts(outcome.graph), ["input": 1, "reshape": 1, "transpose": 1])
        XCTAssertEqual(outcome.graph.nodes.last?.op, .transpose(perm: [1, 2, 0]))
        XCTAssertEqual(outcome.stats.refusals, [:])
        let diff = try maxOutputDifference(g, outcome.graph, weights: DictionaryWeights([:]),
                                           inputs: ["x": randomTensor([2, 12], seed: 1)])
        XCTAssertEqual(diff, 0)
    }

    func testLeavesMeaningfulOpsAlone() throws {
        // A scale by 1 of a bf16 weight converts it to f32 and stays; scale 2 stays;
        // a partial slice stays; repeat 2 stays. Canonicalize never refuses, it just does not apply.
        var b = GraphBuilder(name: "kept")
        let w = b.weight("w", .bf16, [4, 4])
        b.output("a", try b.add(.scale(factor: 1), [w]))
        b.output("b", try b.add(.scale(factor: 2), [w]))
        b.output("c", try b.add(.slice(axis: 0, start: 1, end: nil), [w]))
        b.output("d", try b.add(.repeatInterleave(axis: 0, repeats: 2), [w]))
        let outcome = try Pass.canonicalize.run(b.graph)
        XCTAssertEqual(outcome.stats.matches, 0)
        XCTAssertEqual(outcome.stats.refusals, [:])
        XCTAssertEqual(outcome.graph, b.graph)
    }
}
