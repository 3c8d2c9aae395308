import AttuneIR
import XCTest

final class VerifierTests: XCTestCase {
    func assertRejects(_ build: (inout GraphBuilder) throws -> Void, _ needle: String, file: StaticString = #filePath, line: UInt = #line) {
        var b = GraphBuilder(name: "t")
        XCTAssertThrowsError(try build(&b), file: file, line: line) { error in
            XCTAssertTrue("\(error)".contains(needle), "'\(error)' should contain '\(needle)'", file: file, line: line)
        }
    }

    func testBuilderRejectsIllTypedNodesNamingNodeAndReason() {
        assertRejects({ b in
            let x = b.input("x", .f32, ["seq", 64])
            let w = b.weight("w", .f32, [32, 48])
            b.label = "layers.0.q_proj"
            try b.add(.linear(hasBias: false), [x, w])
        }, "linear (node %2, layers.0.q_proj): x's last dim vs weight's in dim: 64 != 48")
        assertRejects({ b in
            let q = b.input("q", .f32, ["seq", 64]), k = b.input("k", .f32, ["kv", 48]), v = b.input("v", .f32, ["kv", 48])
            try b.add(.attention(AttentionAttrs(heads: 4, kvHeads: 3, headDim: 16)), [q, k, v])
        }, "multiple of kv_heads")
        // Sinks: one f32 logit per q head, as the node's last input, and softmax only.
        assertRejects({ b in
            let q = b.input("q", .f32, ["seq", 64]), k = b.input("k", .f32, ["kv", 32]), v = b.input("v", .f32, ["kv", 32])
            try b.add(.attention(AttentionAttrs(heads: 4, kvHeads: 2, headDim: 16, sinks: true)), [q, k, v, b.weight("s", .f32, [2])])
        }, "sinks input must be f32[4] (one logit per head), got f32[2]")
        assertRejects({ b in
            let q = b.input("q", .f32, ["seq", 64]), k = b.input("k", .f32, ["kv", 32]), v = b.input("v", .f32, ["kv", 32])
            try b.add(.attention(AttentionAttrs(heads: 4, kvHeads: 2, headDim: 16, normalizer: .sigmoid(bias: -4), sinks: true)),
                      [q, k, v, b.weight("s", .f32, [4])])
        }, "sinks apply to softmax attention only")
        assertRejects({ b in
            let x = b.input("x", .f32, ["seq", 64])
            try b.add(.reshape(shape: ["seq", 7, 9]), [x])
        }, "element counts differ")
        assertRejects({ b in
            let x = b.input("x", .f32, ["seq", 64]), p = b.input("p", .f32, ["seq"])
            try b.add(.rope(RopeAttrs(heads: 4, headDim: 16, theta: 1e4)), [x, p])
        }, "positions must be i32[seq]")
        assertRejects({ b in
            let x = b.input("x", .f32, ["seq", 64])
            try b.add(.rope(RopeAttrs(heads: 4, headDim: 16, rotaryDim: 5, theta: 1e4)), [x, b.input("p", .i32, ["seq"])])
        }, "rotary_dim must be even")
        assertRejects({ b in
            let x = b.input("x", .f32, ["seq", 64])
            try b.add(.slice(axis: 0, start: 0, end: 3), [x])
        }, "cannot slice the symbolic dim")
        assertRejects({ b in
            let x = b.input("x", .f32, ["seq", 64])
            try b.add(.headRMSNorm(eps: 1e-6), [x, b.weight("n", .f32, [24])])
        }, "x's width 64 must be a fixed multiple of the weight length 24 (the head dim)")
        assertRejects({ b in
            let x = b.input("x", .f32, ["seq", 12]), w = b.weight("w", .f32, [32, 12])
            try b.addMulti(.qkvRope(QKVRopeAttrs(heads: 4, kvHeads: 2, headDim: 4, theta: 1e4, hasBias: false, qkNormEps: 1e-6)),
                           [x, w, b.weight("qn", .f32, [4]), b.weight("kn", .f32, [8]), b.input("p", .i32, ["seq"])])
        }, "k_norm length vs head_dim: 8 != 4")
        assertRejects({ b in
            let ids = b.input("ids", .f32, ["seq"]), t = b.weight("t", .f32, [10, 4])
            try b.add(.embedding, [t, ids])
        }, "token ids must be i32")
        assertRejects({ b in
            let x = b.input("x", .f32, ["seq", 64])
            try b.add(.add, [x, b.input("y", .f32, [32])])
        }, "does not broadcast")
    }

    func testVerifierRejectsMalformedGraphs() throws {
        var g = try AllOpsGraph.build()
        g.nodes[5].inputs = [Value(node: 40)]
        XCTAssertThrowsError(try Verifier.verify(g)) { XCTAssertTrue("\($0)".contains("node %5"), "\($0)") }

        var b = GraphBuilder(name: "twice")
        let x = b.input("x", .f32, ["seq", 8])
        try b.add(.kvAppend(layer: 0, kind: .key), [x])
        try b.add(.kvAppend(layer: 0, kind: .key), [x])
        XCTAssertThrowsError(try Verifier.verify(b.graph)) { XCTAssertTrue("\($0)".contains("appended twice"), "\($0)") }

        var c = GraphBuilder(name: "inputs")
        _ = c.input("x", .f32, [2])
        _ = c.input("x", .f32, [2])
        XCTAssertThrowsError(try Verifier.verify(c.graph)) { XCTAssertTrue("\($0)".contains("already defined"), "\($0)") }
    }
}
