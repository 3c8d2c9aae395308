import AttuneIR
import AttuneNumerics
import XCTest

/// Errors name the node, input or weight at fault, and the reason.
final class ReferenceInterpreterErrorTests: XCTestCase {
    /// tokens -> embedding (128 x 4) -> rope at positions -> kv_append.
    func embedGraph() throws -> Graph {
        var b = GraphBuilder(name: "embed")
        let tokens = b.input("tokens", .i32, ["seq"])
        let table = b.weight("embed", .f32, [128, 4])
        b.label = "model.embed_tokens"
        let x = try b.add(.embedding, [table, tokens])
        b.label = nil
        let positions = b.input("positions", .i32, ["seq"])
        let r = try b.add(.rope(RopeAttrs(heads: 1, headDim: 4, theta: 10000)), [x, positions])
        b.output("cached", try b.add(.kvAppend(layer: 0, kind: .key), [r]))
        return b.graph
    }

    var table: DictionaryWeights { DictionaryWeights(["embed": (0..<512).map { Float($0) / 512 }]) }

    func feed(_ tokens: [Int], _ positions: [Int]? = nil) -> [String: F64Tensor] {
        ["tokens": F64Tensor(ids: tokens), "positions": F64Tensor(ids: positions ?? Array(tokens.indices))]
    }

    func testBadTokenIdNamesTheNodeAndId() throws {
        let interp = try ReferenceInterpreter(graph: try embedGraph(), weights: table)
        XCTAssertThrowsError(try interp.run(inputs: feed([3, 500]))) { error in
            XCTAssertEqual("\(error)", "node %2 (embedding, model.embed_tokens): token id 500 is outside the table of 128 rows")
            XCTAssertEqual((error as? InterpreterError)?.node, 2)
        }
        assertThrows(["node %2 (embedding", "token id -1 is outside"]) { _ = try interp.run(inputs: feed([-1])) }
    }

    func testAFailedRunLeavesTheCacheAlone() throws {
        var b = GraphBuilder(name: "cache_then_fail")
        let tokens = b.input("tokens", .i32, ["seq"])
        let x = b.input("x", .f32, ["seq", 4])
        let c = try b.add(.kvAppend(layer: 0, kind: .value), [x])
        b.output("c", c)
        b.output("e", try b.add(.embedding, [b.weight("embed", .f32, [128, 4]), tokens]))
        let interp = try ReferenceInterpreter(graph: b.graph, weights: table)
        _ = try interp.run(inputs: ["tokens": F64Tensor(ids: [1, 2]), "x": F64Tensor(shape: [2, 4], repeating: 1)])
        assertThrows(["token id 128"]) {
            _ = try interp.run(inputs: ["tokens": F64Tensor(ids: [128]), "x": F64Tensor(shape: [1, 4], repeating: 2)])
        }
        XCTAssertEqual(interp.cache(layer: 0, kind: .value), F64Tensor(shape: [2, 4], repeating: 1))
    }

    func testMissingAndUnknownInputs() throws {
        let interp = try ReferenceInterpreter(graph: try embedGraph(), weights: table)
        assertThrows(["node %3 (input)", "missing input 'positions' of type i32[seq]"]) {
            _ = try interp.run(inputs: ["tokens": F64Tensor(ids: [1])])
        }
        var inputs = feed([1])
        inputs["postions"] = F64Tensor(ids: [0])
        assertThrows(["unknown input 'postions'", "'tokens', 'positions'"]) { _ = try interp.run(inputs: inputs) }
    }

    func testWrongInputShapes() throws {
        let interp = try ReferenceInterpreter(graph: try embedGraph(), weights: table)
        // seq bound to 3 by tokens, positions has 4.
        assertThrows(["node %3 (input)", "input 'positions' has shape [4]", "i32[seq]", "seq = 3 (bound by input 'tokens')"]) {
            _ = try interp.run(inputs: self.feed([1, 2, 3], [0, 1, 2, 3]))
        }
        assertThrows(["node %0 (input)", "input 'tokens' has shape [1, 3]", "rank 2 instead of 1"]) {
            _ = try interp.run(inputs: ["tokens": F64Tensor(shape: [1, 3], data: [1, 2, 3]), "positions": F64Tensor(ids: [0, 1, 2])])
        }
        assertThrows(["input 'tokens' has 2 values for its shape [3]"]) {
            _ = try interp.run(inputs: ["tokens": F64Tensor(shape: [3], data: [1, 2]), "positions": F64Tensor(ids: [0, 1, 2])])
        }
        assertThrows(["input 'positions' is i32 but element 1 is 0.5"]) {
            _ = try interp.run(inputs: ["tokens": F64Tensor(ids: [1, 2]), "positions": F64Tensor(shape: [2], data: [0, 0.5])])
        }

        var b = GraphBuilder(name: "fixed")
        b.output("y", try b.add(.silu, [b.input("x", .f32, ["seq", 4])]))
        let fixed = try ReferenceInterpreter(graph: b.graph, weights: DictionaryWeights([:]))
        assertThrows(["node %0 (input)", "input 'x' has shape [2, 5], but its declared type is f32[seq, 4]: dim 1 is 5, not 4"]) {
            _ = try fixed.run(inputs: ["x": F64Tensor(shape: [2, 5], repeating: 0)])
        }
    }

    func testMissingAndWrongSizedWeights() throws {
        let graph = try embedGraph()
        assertThrows(["node %1 (weight)", "cannot load weight 'embed'", "missing weight 'embed'"]) {
            _ = try ReferenceInterpreter(graph: graph, weights: DictionaryWeights([:]))
        }
        assertThrows(["node %1 (weight)", "weight 'embed' has 500 values, but its type f32[128, 4] needs 512"]) {
            _ = try ReferenceInterpreter(graph: graph, weights: DictionaryWeights(["embed": [Float](repeating: 0, count: 500)]))
        }
    }

    func testGraphThatDoesNotVerify() throws {
        var g = try embedGraph()
        g.nodes[2].inputs = [Value(node: 9)]
        assertThrows(["graph 'embed' does not verify", "node %2"]) {
            _ = try ReferenceInterpreter(graph: g, weights: self.table)
        }
    }

    func testLayersWhoseCachesDisagreeOnKV() throws {
        var b = GraphBuilder(name: "two_caches")
        let x = b.input("x", .f32, ["seq", 4]), y = b.input("y", .f32, ["n", 4])
        b.output("a", try b.add(.kvAppend(layer: 0, kind: .key), [x]))
        b.label = "layers.1"
        b.output("b", try b.add(.kvAppend(layer: 1, kind: .key), [y]))
        let interp = try ReferenceInterpreter(graph: b.graph, weights: DictionaryWeights([:]))
        assertThrows(["node %3 (kv_append, layers.1)", "layer 1's key cache holds 2 rows", "kv = 3 (bound by node %2 (kv_append))"]) {
            _ = try interp.run(inputs: ["x": F64Tensor(shape: [3, 4], repeating: 0), "y": F64Tensor(shape: [2, 4], repeating: 0)])
        }
        XCTAssertNil(interp.cache(layer: 0, kind: .key), "nothing committed")
        _ = try interp.run(inputs: ["x": F64Tensor(shape: [2, 4], repeating: 0), "y": F64Tensor(shape: [2, 4], repeating: 0)])
        XCTAssertEqual(interp.cache(layer: 1, kind: .key)?.shape, [2, 4])
    }
}
