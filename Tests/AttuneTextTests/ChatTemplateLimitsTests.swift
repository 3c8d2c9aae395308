@testable import AttuneText
import XCTest

/// A chat template is untrusted input (it comes with a downloaded checkpoint). Each of
/// these once hung, crashed or exhausted memory; now each is refused with a message naming
/// the limit (JinjaLimits), and real templates stay far below every limit
/// (ChatTemplateGoldenTests).
final class ChatTemplateLimitsTests: XCTestCase {
    func render(_ source: String) throws -> String {
        try ChatTemplate(source: source).render(messages: [["role": "user", "content": "hi"]], addGenerationPrompt: true,
                                                bosToken: nil, eosToken: nil)
    }

    func assertRefused(_ source: String, _ message: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertThrowsError(try render(source), file: file, line: line) { error in
            XCTAssertEqual("\(error)", message, file: file, line: line)
        }
    }

    func testHostileTemplatesAreRefusedByName() {
        let deepParens = "{{ " + String(repeating: "(", count: 100_000) + "1" + String(repeating: ")", count: 100_000) + " }}"
        assertRefused(deepParens, "chat template line 1: expressions nest deeper than 64 levels (the limit for templates)")
        assertRefused("{{ " + String(repeating: "-", count: 100_000) + "1 }}",
                      "chat template line 1: expressions nest deeper than 64 levels (the limit for templates)")
        assertRefused("{{ " + String(repeating: "not ", count: 100_000) + "1 }}",
                      "chat template line 1: expressions nest deeper than 64 levels (the limit for templates)")
        let deepIfs = String(repeating: "{% if 1 %}", count: 50_000) + "x" + String(repeating: "{% endif %}", count: 50_000)
        assertRefused(deepIfs, "chat template line 1: blocks nest deeper than 64 levels (the limit for templates)")
        assertRefused("{{ 1" + String(repeating: " + 1", count: 100_000) + " }}",
                      "chat template line 1: more than 1000 operators in one tag (the limit for templates)")
        assertRefused("{{ 'x'" + String(repeating: "|trim", count: 100_000) + " }}",
                      "chat template line 1: more than 1000 operators in one tag (the limit for templates)")
        assertRefused("{% for i in range(100000000) %}x{% endfor %}",
                      "chat template line 1: range() of more than 100000 items (the limit for templates)")
        assertRefused("{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
                      "chat template line 1: more than 1000000 steps (the limit for templates; a loop that does not end?)")
        assertRefused("{{ 'x' * 1000000000000 }}", "chat template line 1: a string of more than 16 MiB (the limit for templates)")
        assertRefused("{{ [1] * 1000000000000 }}", "chat template line 1: a list of more than 1000000 items (the limit for templates)")
        assertRefused("{{ ('x' * 1000000)|replace('x', 'yyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyy') }}",
                      "chat template line 1: a string of more than 16 MiB (the limit for templates)")
        assertRefused("{% set ns = namespace(s='x') %}{% for i in range(40) %}{% set ns.s = ns.s + ns.s %}{% endfor %}",
                      "chat template line 1: a string of more than 16 MiB (the limit for templates)")
        assertRefused("{% set ns = namespace(x=[]) %}{% for i in range(1000) %}{% set ns.x = [ns.x] %}{% endfor %}",
                      "chat template line 1: a value nested more than 64 deep (the limit for templates)")
        assertRefused("{% set ns = namespace(a=1) %}{% set ns.a = ns %}{{ ns }}",
                      "chat template line 1: a namespace attribute cannot hold a namespace")
        assertRefused("{{ {'a': 1}|tojson(indent=1000000000000) }}", "chat template line 1: tojson indent of more than 64 spaces")
    }

    /// Python's ints do not overflow; Attune's are 64-bit, so what does not fit is an error,
    /// never a trap.
    func testIntegerOverflowIsAnError() {
        for (expr, op) in [("9223372036854775807 + 1", "+"), ("-9223372036854775807 - 2", "-"), ("4611686018427387904 * 2", "*"),
                           ("2 ** 64", "**"), ("3 ** 100000000000", "**"), ("(-9223372036854775807 - 1) // -1", "//"),
                           ("-(-9223372036854775807 - 1)", "-"), ("(-9223372036854775807 - 1)|abs", "abs")] {
            assertRefused("{{ \(expr) }}", "chat template line 1: integer overflow in '\(op)' (templates compute in 64-bit integers)")
        }
        XCTAssertEqual(try render("{{ 2 ** 62 }} {{ -7 // 2 }} {{ 9223372036854775807 }}"), "4611686018427387904 -4 9223372036854775807")
    }
}
