import XCTest
import AttuneIR
import AttuneKernels
import AttuneModels
@testable import AttunePasses

/// `link-kascade`: anchors produce their key selection as a value, reuse layers consume it.
final class KeySelectionLinkingTests: XCTestCase {
    struct Attention {
        var index: Int
        var attrs: AttentionAttrs
        var inputs: [Value]
    }

    func lowered(_ overrides: KernelOverrides) throws -> Graph {
        try Pipeline.standard(kernels: overrides).run(try decoder(try TinyConfigs.llamaDeep())).output
    }

    func attentions(_ g: Graph) -> [Attention] {
        g.nodes.enumerated().compactMap { i, n in
            if case .attention(let a) = n.op { Attention(index: i, attrs: a, inputs: n.inputs) } else { nil }
        }
    }

    func testDefaultRolesLayerZeroDenseFirstKascadeLayerAnchors() throws {
        var overrides = KernelOverrides(global: try KernelChoice(parsing: "kascade:fraction=0.2"))
        overrides.selectionContext = 1000
        let g = try lowered(overrides)
        try Verifier.verify(g)
        let a = attentions(g)
        XCTAssertEqual(a.count, 5)
        XCTAssertEqual(a[0].attrs.binding?.kernel, "flash")
        XCTAssertNil(a[0].attrs.selection)
        // 2 kv heads x max(128, 0.2 * 1000) keys.
        XCTAssertEqual(a[1].attrs.selection, .produce(width: 2 * 200))
        XCTAssertEqual(a[1].attrs.binding?.parameters["role"], 0)
        XCTAssertEqual(g.nodes[a[1].index].types.last, TensorType(.i32, [.symbol("seq"), .fixed(400)]))
        for r in a[2...] {
            XCTAssertEqual(r.attrs.selection, .consume(width: 400))
            XCTAssertEqual(r.inputs.last, Value(node: a[1].index, result: 1), "reuse reads the anchor's selection")
            XCTAssertEqual(r.attrs.binding?.parameters["role"], 1)
        }
        // The reference ignores selections: the linked graph computes the unfused decoder.
        let unfused = try decoder(try TinyConfigs.llamaDeep())
        XCTAssertLessThanOrEqual(try maxLogitDifference(unfused, g, weights: randomWeights(for: unfused), prompt: [1, 5, 9, 2], decode: [3]), 1e-9)
        // The text format keeps it.
        XCTAssertEqual(try TextFormat.parse(TextFormat.print(g)), g)
    }

    func testCalibratedAnchorsAndHeadMaps() throws {
        var overrides = KernelOverrides(global: KernelChoice(kernel: "kascade"))
        overrides.kascadeAnchors = [1, 3]
        overrides.kascadeHeadMaps = [2: [1, 0], 4: [0, 0]]
        let a = attentions(try lowered(overrides))
        XCTAssertEqual(a.map { $0.attrs.selection.map { if case .produce = $0 { "P" } else { "C" } } ?? "-" }, ["-", "P", "C", "P", "C"])
        XCTAssertEqual(a[2].inputs.last, Value(node: a[1].index, result: 1))
        XCTAssertEqual(a[4].inputs.last, Value(node: a[3].index, result: 1))
        XCTAssertEqual(a[2].attrs.binding?.tables["head_map"], [1, 0])
        XCTAssertEqual(a[4].attrs.binding?.tables["head_map"], [0, 0])
        overrides.kascadeHeadMaps = [2: [2, 0]]
        XCTAssertThrowsError(try lowered(overrides)) { XCTAssertTrue("\($0)".contains("head map"), "\($0)") }
    }

    func testExplicitRolesAndTheirErrors() throws {
        // Layer 3 names layer 2 as its anchor; layer 4 takes the nearest (also 2).
        let overrides = KernelOverrides(global: KernelChoice(kernel: "flash"), byLayer: [
            2: try KernelChoice(parsing: "kascade:role=0"), 3: try KernelChoice(parsing: "kascade:role=1,anchor=2"),
            4: try KernelChoice(parsing: "kascade:role=1"),
        ])
        let a = attentions(try lowered(overrides))
        XCTAssertEqual(a[3].inputs.last, Value(node: a[2].index, result: 1))
        XCTAssertEqual(a[4].inputs.last, Value(node: a[2].index, result: 1))

        let orphan = KernelOverrides(global: KernelChoice(kernel: "flash"), byLayer: [2: try KernelChoice(parsing: "kascade:role=1")])
        XCTAssertThrowsError(try lowered(orphan)) { XCTAssertTrue("\($0)".contains("no anchor layer comes before it"), "\($0)") }
        let mismatch = KernelOverrides(global: KernelChoice(kernel: "flash"), byLayer: [
            1: try KernelChoice(parsing: "kascade:role=0"), 2: try KernelChoice(parsing: "kascade:role=1,fraction=0.3"),
        ])
        XCTAssertThrowsError(try lowered(mismatch)) { XCTAssertTrue("\($0)".contains("'fraction' differs"), "\($0)") }
    }
}
