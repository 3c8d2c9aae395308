@testable import AttuneIR
import XCTest

final class TextFormatTests: XCTestCase {
    func testEveryOpIsInTheTestGraph() throws {
        let g = try AllOpsGraph.build()
        XCTAssertEqual(Set(g.nodes.map(\.op.mnemonic)), Set(Op.mnemonics))
        XCTAssertEqual(Op.mnemonics.count, Set(Op.mnemonics).count)
    }

    func testWindowsLineEndingsParseLikeUnixOnes() throws {
        let g = try AllOpsGraph.build()
        let text = TextFormat.print(g)
        XCTAssertEqual(try TextFormat.parse(text.replacingOccurrences(of: "\n", with: "\r\n")), g)
    }

    func testPrintParseRoundTrip() throws {
        let g = try AllOpsGraph.build()
        try Verifier.verify(g)
        let text = TextFormat.print(g)
        let back = try TextFormat.parse(text)
        XCTAssertEqual(back, g)
        XCTAssertEqual(TextFormat.print(back), text, "printing is deterministic")
    }

    func testHandWrittenNamesAndComments() throws {
        let text = """
        # a hand-written graph
        graph toy {
          %x = input() {name = "x"} : f32[seq, 4]
          %w = weight() {name = "w"} : f32[2, 4]
          %y = linear(%x, %w) : f32[seq, 2]   # proj
          %n, %n2 = add_rms_norm(%y, %y, %w) {eps = 1e-5} : f32[seq, 2], f32[seq, 2]
          output y = %y
        }
        """
        XCTAssertThrowsError(try TextFormat.parse(text)) { error in
            // `%n, %n2 = ...` is not the syntax: results are %n and %n.1.
            XCTAssertTrue("\(error)".contains("line 6"), "\(error)")
        }
        let fixed = text.replacingOccurrences(of: "%n, %n2 =", with: "%n =").replacingOccurrences(of: "%w) {eps", with: "%g) {eps")
            .replacingOccurrences(of: "  %y = linear", with: "  %g = weight() {name = \"g\"} : f32[2]\n  %y = linear")
        let g = try TextFormat.parse(fixed)
        XCTAssertEqual(g.nodes.count, 5)
        XCTAssertEqual(g.nodes[3].label, "proj")
        XCTAssertEqual(g.nodes[4].types.count, 2)
        XCTAssertEqual(g.outputs[0].value, Value(node: 3))
    }

    func testParseErrorsNameTheLineAndProblem() {
        let cases: [(String, String)] = [
            ("graph g {\n  %0 = frobnicate() : f32[2]\n}", "line 2: unknown op 'frobnicate'"),
            ("graph g {\n  %0 = input() {name = \"x\"} : f32[2]\n  %1 = silu(%9) : f32[2]\n}", "line 3: %9 is not defined"),
            ("graph g {\n  %0 = input() {name = \"x\"} : f33[2]\n}", "line 2: expected a type"),
            ("graph g {\n  %0 = input() {name = \"x\"} : f32[2]\n", "missing '}'"),
            ("graph g {\n  %0 = input() {name = \"x\", colour = 3} : f32[2]\n}", "unknown attribute 'colour'"),
            ("graph g {\n  %0 = scale() {factor = \"big\"} : f32[2]\n}", "attribute 'factor' must be a number"),
            ("graph g {\n  %0 = input() {name = \"x\"} : f32[2]\n  %0 = silu(%0) : f32[2]\n}", "%0 is defined twice"),
            ("graph g {\n  %0 = input() {name = \"x\"} : f32[2]\n  %1 = silu(%0) : f32[3]\n}", "declared type f32[3] but the op produces f32[2]"),
            ("graph g {\n  %0 = input() {name = \"x\"} : f32[2, 4]\n  %1 = weight() {name = \"w\"} : f32[3, 5]\n  %2 = linear(%0, %1) : f32[2, 3]\n}",
             "node %2 (linear): x's last dim vs weight's in dim: 4 != 5"),
            ("graph g {\n  %0 = input() {name = \"x\"} : f32[2]\n  output y = %7\n}", "line 3: %7 is not defined"),
            // 60 000 nested lists once overflowed the parser's stack (SIGSEGV).
            ("graph g {\n  %0 = input() {name = \(String(repeating: "[", count: 60_000))1\(String(repeating: "]", count: 60_000))} : f32[2]\n}",
             "line 2: attributes nested deeper than 32 levels"),
        ]
        for (text, needle) in cases {
            XCTAssertThrowsError(try TextFormat.parse(text), needle) { error in
                XCTAssertTrue("\(error)".contains(needle), "'\(error)' should contain '\(needle)'")
            }
        }
    }

    func testElementwiseProgramsRoundTrip() throws {
        for text in ["silu(in0)", "(in0 * (in1 + -0.5))", "gelu((in0 + 1e-05))", "((in0 * in1) * in2)"] {
            let p = try ElementwiseProgram.parse(text)
            XCTAssertEqual(try ElementwiseProgram.parse(p.description), p, text)
        }
        XCTAssertThrowsError(try ElementwiseProgram.parse("tanh(in0)"))
        XCTAssertThrowsError(try ElementwiseProgram.parse("(in0 + in1"))
    }
}
