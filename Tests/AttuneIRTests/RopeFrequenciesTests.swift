@testable import AttuneIR
import Foundation
import XCTest

/// Every RoPE frequency source on `rope` and `qkv_rope`: text round trip, type checks,
/// and the tables the length-dependent sources give.
final class RopeFrequenciesTests: XCTestCase {
    static let variants: [RopeFrequencies] = [
        .theta(10000),
        RopeFrequencies(.theta(500), attentionScaling: 1.25),
        RopeFrequencies(.table([1, 0.25, 0.0625, 0.015625])),
        RopeFrequencies(.longrope(short: [1, 0.5, 0.2, 0.1], long: [0.5, 0.1, 0.01, 0.001], originalLength: 8),
                        attentionScaling: 1.0 / 3),
        RopeFrequencies(.dynamicNTK(theta: 10000, factor: 2.5, originalLength: 8)),
    ]

    func graph(_ f: RopeFrequencies) throws -> Graph {
        var b = GraphBuilder(name: "rope")
        let x = b.input("x", .f32, ["seq", 16])
        let positions = b.input("positions", .i32, ["seq"])
        let w = b.weight("w", .f32, [32, 16])
        b.output("q", try b.add(.rope(RopeAttrs(heads: 2, headDim: 8, frequencies: f)), [x, positions]))
        let qkv = try b.addMulti(.qkvRope(QKVRopeAttrs(heads: 2, kvHeads: 1, headDim: 8, frequencies: f, hasBias: false)), [x, w, positions])
        b.output("k", qkv[1])
        return b.graph
    }

    func testEverySourcePrintsAndParsesBack() throws {
        for f in Self.variants {
            let g = try graph(f)
            try Verifier.verify(g)
            let text = TextFormat.print(g)
            XCTAssertEqual(try TextFormat.parse(text), g, text)
        }
        let longrope = TextFormat.print(try graph(Self.variants[3]))
        XCTAssertTrue(longrope.contains("attention_scaling = 0.3333333333333333"), longrope)
        XCTAssertTrue(longrope.contains("long_inv_freq = [0.5, 0.1, 0.01, 0.001]"), longrope)
        XCTAssertTrue(longrope.contains("original_length = 8"), longrope)
        XCTAssertFalse(TextFormat.print(try graph(.theta(10000))).contains("attention_scaling"))
    }

    func testMixedOrIncompleteAttributesAreRefused() {
        let head = "graph g {\n  %0 = input() {name = \"x\"} : f32[seq, 8]\n  %1 = input() {name = \"p\"} : i32[seq]\n"
        let cases: [(String, String)] = [
            ("{head_dim = 8, heads = 1}", "give theta; or inv_freq"),
            ("{head_dim = 8, heads = 1, theta = 1e4, inv_freq = [1.0, 0.5, 0.25, 0.125]}", "give theta; or inv_freq"),
            ("{head_dim = 8, heads = 1, theta = 1e4, dynamic_factor = 2.0}", "give theta; or inv_freq"),
            ("{head_dim = 8, heads = 1, inv_freq = [1.0, 0.5]}", "inv_freq has 2 entries, expected rotary_dim/2 = 4"),
            ("{head_dim = 8, heads = 1, inv_freq = [1.0, 0.5, 0.25, \"x\"]}", "attribute 'inv_freq' must be a list of numbers"),
            ("{head_dim = 8, heads = 1, theta = 1e4, attention_scaling = 0.0}", "attention_scaling must be positive"),
            ("{head_dim = 8, heads = 1, rotary_dim = 2, theta = 1e4, dynamic_factor = 2.0, original_length = 4}",
             "dynamic NTK needs rotary_dim > 2"),
            ("{head_dim = 8, heads = 1, inv_freq = [1.0, 0.5, 0.25, 0.125], long_inv_freq = [1.0, 0.5, 0.25, 0.125], original_length = 0}",
             "original_length must be >= 1"),
        ]
        for (attrs, needle) in cases {
            let text = head + "  %2 = rope(%0, %1) \(attrs) : f32[seq, 8]\n}"
            XCTAssertThrowsError(try TextFormat.parse(text), needle) { error in
                XCTAssertTrue("\(error)".contains(needle), "'\(error)' should contain '\(needle)'")
            }
        }
    }

    func testLengthDependentTables() {
        let longrope = Self.variants[3]
        XCTAssertEqual(longrope.inverseFrequencies(rotaryDim: 8, totalLength: 8), [1, 0.5, 0.2, 0.1])
        XCTAssertEqual(longrope.inverseFrequencies(rotaryDim: 8, totalLength: 9), [0.5, 0.1, 0.01, 0.001])
        let dynamic = Self.variants[4]
        // Up to the original length: plain RoPE.
        XCTAssertEqual(dynamic.inverseFrequencies(rotaryDim: 8, totalLength: 3), RopeFrequencies.plain(base: 10000, rotaryDim: 8))
        XCTAssertEqual(dynamic.inverseFrequencies(rotaryDim: 8, totalLength: 8), RopeFrequencies.plain(base: 10000, rotaryDim: 8))
        // At 16: base 10000 · (2.5 · 16/8 − 1.5)^(8/6) = 10000 · 3.5^(4/3).
        let base = 10000 * Foundation.pow(3.5, 4.0 / 3)
        for (got, want) in zip(dynamic.inverseFrequencies(rotaryDim: 8, totalLength: 16), RopeFrequencies.plain(base: base, rotaryDim: 8)) {
            XCTAssertEqual(got, want, accuracy: 1e-15 * want)
        }
        XCTAssertTrue(dynamic.dependsOnLength && longrope.dependsOnLength)
        XCTAssertFalse(Self.variants[2].dependsOnLength)
    }
}
