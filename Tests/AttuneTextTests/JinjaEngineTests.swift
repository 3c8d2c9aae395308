@testable import AttuneText
import Foundation
import XCTest

/// The jinja2 subset, construct by construct. Every expected string below was produced by
/// transformers' own jinja2 environment (trim_blocks, lstrip_blocks, its tojson and globals).
final class JinjaEngineTests: XCTestCase {
    /// Dicts whose key order matters (Swift dictionary literals have none).
    enum JinjaDictLiteral {
        static var ordered: JinjaValue { JinjaValue.dict(JinjaDict([("b", .int(1)), ("a", .int(2))])) }
        static var tuples: JinjaValue { .dict(JinjaDict([("b", .list([.int(1), .int(2)])), ("a", .none)])) }
        static var toolCall: JinjaValue {
            JinjaValue.dict(JinjaDict([
            ("name", .string("f")), ("args", .list([.int(1), .double(2.5), .bool(true), .none])), ("nested", .dict(JinjaDict())),
            ]))
        }
    }

    static var cases: [(String, [String: Any], String)] { [
        ("{% for m in ms %}{{ loop.index0 }}{{ loop.index }}{{ loop.first }}{{ loop.last }}{{ loop.length }}|{% endfor %}", ["ms": ["a", "b", "c"]], "01TrueFalse3|12FalseFalse3|23FalseTrue3|"),
        ("{% for m in ms if m != 'b' %}{{ m }}{{ loop.index }}{% else %}none{% endfor %}", ["ms": ["a", "b", "c"]], "a1c2"),
        ("{% for m in ms %}x{% else %}empty{% endfor %}", ["ms": [String]()], "empty"),
        ("{% for k, v in d.items() %}{{ k }}={{ v }};{% endfor %}", ["d": JinjaDictLiteral.ordered], "b=1;a=2;"),
        ("{% for m in ms %}{% if m == 2 %}{% continue %}{% endif %}{% if m == 4 %}{% break %}{% endif %}{{ m }}{% endfor %}", ["ms": [1, 2, 3, 4, 5]], "13"),
        ("{% if x > 2 %}big{% elif x > 1 %}mid{% else %}small{% endif %}", ["x": 2], "mid"),
        ("{% set ns = namespace(n=0, s='') %}{% for i in range(4) %}{% set ns.n = ns.n + i %}{% endfor %}{{ ns.n }}", [:], "6"),
        ("{% set x = 1 %}{% for i in [1, 2] %}{% set x = i * 10 %}{{ x }}{% endfor %}{{ x }}", [:], "10201"),
        ("{% set greeting %}Hi {{ name }}!{% endset %}[{{ greeting }}]", ["name": "Ann"], "[Hi Ann!]"),
        ("{{ 'a' ~ 1 ~ none }} {{ 'a' + 'b' }} {{ [1] + [2] }} {{ 7 // 2 }} {{ -7 // 2 }} {{ 7 / 2 }} {{ -7 % 3 }} {{ 2 ** 10 }} {{ 1 + 2.5 }} {{ 3 * 'ab' }}", [:], "a1None ab [1, 2] 3 -4 3.5 2 1024 3.5 ababab"),
        ("{{ 1 == 1.0 }} {{ 'a' != 'b' }} {{ 1 < 2 <= 2 }} {{ 'b' > 'a' }} {{ 'ell' in 'hello' }} {{ 3 not in [1, 2] }} {{ 'k' in {'k': 1} }}", [:], "True True True True True True True"),
        ("{{ x or 'fallback' }} {{ x and 'yes' }} {{ not x }} {{ 'y' if x else 'n' }} {{ 'y' if x }}|", ["x": ""], "fallback  True n |"),
        ("{{ m['role'] }} {{ m.content }} {{ m.missing }}|{{ m['missing'] is defined }}|{{ ms[-1] }} {{ ms[1:] }} {{ ms[::-1] }} {{ ms[:-1] }} {{ 'hello'[1:3] }}", ["m": ["role": "user", "content": "hi"], "ms": [1, 2, 3]], "user hi |False|3 [2, 3] [3, 2, 1] [1, 2] el"),
        ("{{ none }} {{ true }} {{ False }} {{ [1, 'a', none, 2.5] }} {{ {'a': 'it\\'s', 'b': [true]} }} {{ 1.0 }} {{ 0.1 }}", [:], "None True False [1, 'a', None, 2.5] {'a': \"it's\", 'b': [True]} 1.0 0.1"),
        ("{{ '  pad  ' | trim }}|{{ 'x' | length }}{{ [1,2] | length }}|{{ 'MiXed' | lower }}{{ 'MiXed' | upper }}|{{ 'hELLO wORLD' | capitalize }}|{{ u | default('dflt') }}|{{ '' | default('e', true) }}|{{ [3,4] | first }}{{ [3,4] | last }}|{{ [1,2,3] | join(', ') }}|{{ 'aaa' | replace('a', 'b', 2) }}|{{ 5 | string }}|{{ 'ab' | list }}", [:], "pad|12|mixedMIXED|Hello world|dflt|e|34|1, 2, 3|bba|5|['a', 'b']"),
        ("{{ x | tojson }}|{{ x | tojson(indent=2) }}|{{ 'café \"q\" <b>\\n' | tojson }}|{{ [] | tojson(indent=4) }}", ["x": JinjaDictLiteral.toolCall], "{\"name\": \"f\", \"args\": [1, 2.5, true, null], \"nested\": {}}|{\n  \"name\": \"f\",\n  \"args\": [\n    1,\n    2.5,\n    true,\n    null\n  ],\n  \"nested\": {}\n}|\"café \\\"q\\\" <b>\\n\"|[]"),
        ("{{ ms | selectattr('role', 'equalto', 'user') | list | length }} {{ ms | rejectattr('role', 'equalto', 'user') | map(attribute='content') | join(',') }} {{ [1, 2, 3, 4] | select('odd') | list }} {{ ['a', 'b', 'c'] | reject('equalto', 'b') | list }}", ["ms": [["role": "user", "content": "u1"], ["role": "assistant", "content": "a1"], ["role": "user", "content": "u2"]]], "2 a1 [1, 3] ['a', 'c']"),
        ("{{ x is defined }}{{ y is undefined }}{{ n is none }}{{ s is string }}{{ 1 is number }}{{ d is mapping }}{{ s is iterable }}{{ 3 is odd }}{{ 4 is even }}{{ 1 is integer }}{{ 1.5 is float }}{{ true is boolean }}{{ s is not string }}{{ 6 is divisibleby 3 }}", ["x": 1, "n": NSNull(), "s": "str", "d": [String: String]()], "TrueTrueTrueTrueTrueTrueTrueTrueTrueTrueTrueTrueFalseTrue"),
        ("{{ '  hi  '.strip() }}|{{ 'xxhixx'.strip('x') }}|{{ ' hi '.lstrip() }}|{{ ' hi '.rstrip() }}|{{ 'hello'.startswith('he') }}{{ 'hello'.endswith('lo') }}|{{ 'a b  c'.split() }}|{{ 'a,b,c'.split(',', 1) }}|{{ 'Hi'.upper() }}{{ 'Hi'.lower() }}|{{ 'hello world'.title() }}|{{ 'aXbX'.replace('X', '-') }}|{{ d.get('k') }} {{ d.get('z', 'dz') }} {{ d.keys() | list }} {{ d.values() | list }}|{{ '-'.join(['a', 'b']) }}", ["d": ["k": "v"]], "hi|hi|hi | hi|TrueTrue|['a', 'b', 'c']|['a', 'b,c']|HIhi|Hello World|a-b-|v dz ['k'] ['v']|a-b"),
        ("  {% if true %}\n  x\n  {% endif %}\n  y", [:], "  x\n  y"),
        ("{{ 'a' }}  \n  {{- 'b' -}}  \n {{ 'c' }}", [:], "abc"),
        ("<{%- if true -%}>\n  x  \n<{%- endif -%}>", [:], "<>\n  x  \n<>"),
        ("line\n    {# comment #}\nnext {#- trimmed -#}   after", [:], "line\nnextafter"),
        ("{% for i in [1,2] %}\n    {{ i }}\n{% endfor %}\nend\n", [:], "    1\n    2\nend"),
        ("a {% if true %}b{% endif %}\n  {{ 'c' }}\n", [:], "a b  c"),
        ("{%+ if true %}keep{% endif +%}\nnext", [:], "keep\nnext"),
        ("{{ strftime_now('%Y') | length }}", [:], "4"),
        ("a\n  {{ 'x' }}\n  {# c #}\n  {%- set y = 1 -%}\n  b {{ y }}", [:], "a\n  x\nb 1"),
        ("{% for o in [1, 2] %}{% for i in 'ab' %}{{ loop.index }}{{ i }}{{ o }}{% if loop.previtem is defined %}<{{ loop.previtem }}{% endif %} {% endfor %}{{ loop.index }}|{% endfor %}", [:], "1a1 2b1<a 1|1a2 2b2<a 2|"),
        ("{{ 'hello'[::-1] }} {{ 'hello'[-3:] }} {{ [1,2,3,4,5][1::2] }} {{ [1,2,3][5:] }} {{ 'y' if false }}| {{ n | default('d') }} {% for k, v in {'a': 1, 'b': [none]} | items %}{{ k }}{{ v }}{% endfor %}", ["n": NSNull()], "olleh llo [2, 4] [] | None a1b[None]"),
        ("{% for k in {'z': 1, 'a': 2} %}{{ k }}{% endfor %} {{ '}}' }} {{ \"{%\" }} {{ 1e16 }} {{ 1.5e-5 }} {{ 10 / 4 }} {{ 2 ** -1 }} {{ 'café' | length }} {{ 'straße' | upper }}", [:], "za }} {% 1e+16 1.5e-05 2.5 0.5 4 STRASSE"),
        ("{% if messages %}{{ messages[0]['content'] if messages else '' }}{% endif %}{% for m in messages %}{% if m.role == 'user' %}{% set last = m.content %}{% endif %}{% endfor %}[{{ last }}]", ["messages": [["role": "user", "content": "q"]]], "q[]"),
        ("{{- ' lead' }}\n\n   {%- if true %}\n   kept   \n   {%- endif %}   \ntail", [:], " lead   kept   \ntail"),
        ("{{ (1, 'a') }} {{ (1,) }} {{ () }} {{ 'b' in ('a', 'b') }} {{ {'k': 1}.items() | list }} {{ {'k': 1} | items | list }} {{ (1, 2) + (3,) }} {{ (1, 2) == [1, 2] }} {{ d | tojson(separators=(',', ':')) }} {{ d | tojson(indent=2, sort_keys=true) }}", ["d": JinjaDictLiteral.tuples], "(1, 'a') (1,) () True [('k', 1)] [('k', 1)] (1, 2, 3) False {\"b\":[1,2],\"a\":null} {\n  \"a\": null,\n  \"b\": [\n    1,\n    2\n  ]\n}"),
        ("{{ s | trim }}|{{ s.split() }}|{{ s.strip() | length }}", ["s": "\u{1C} a\u{1F}b\u{3000}\u{A0}"], "a\u{1F}b|['a', 'b']|3"),
    ] }

    func render(_ source: String, _ variables: [String: Any] = [:]) throws -> String {
        try ChatTemplate(source: source).render(messages: [], addGenerationPrompt: false, bosToken: nil, eosToken: nil, extra: variables)
    }

    func testConstructsRenderAsJinja2Does() throws {
        for (source, variables, expected) in Self.cases {
            XCTAssertEqual(try render(source, variables), expected, source)
        }
    }

    func assertFails(_ source: String, vars variables: [String: Any] = [:], _ message: String, line: UInt = #line) {
        XCTAssertThrowsError(try render(source, variables), line: line) { error in
            XCTAssertEqual((error as? TextError)?.message, message, line: line)
        }
    }

    func testRaiseExceptionThrowsItsMessage() {
        assertFails("{{ raise_exception('Bad role: ' + r) }}", vars: ["r": "robot"], "Bad role: robot")
    }

    func testRefusalsNameTheConstructAndLine() {
        assertFails("a\nb\n{{ x | wordcount }}", "chat template line 3: filter 'wordcount' is not supported")
        assertFails("{% if x is divisible %}{% endif %}", "chat template line 1: test 'divisible' is not supported")
        assertFails("\n{{ lipsum() }}", "chat template line 2: function 'lipsum' is not supported")
        assertFails("{{ messages.append(1) }}", "chat template line 1: method '.append()' is not supported")
        assertFails("{% macro f() %}{% endmacro %}", "chat template line 1: tag 'macro' is not supported")
        assertFails("{% include 'x' %}", "chat template line 1: tag 'include' is not supported")
        assertFails("{% set a, b = 1, 2 %}", "chat template line 1: unexpected ','")
        assertFails("{{ '%s' % x }}", vars: ["x": 1], "chat template line 1: string formatting with '%' is not supported")
        assertFails("{{ xs | map('wordcount') }}", vars: ["xs": ["a"]], "chat template line 1: filter 'wordcount' is not supported")
    }

    func testSyntaxErrorsNameTheLine() {
        assertFails("{% if x %}\nnever closed", "chat template line 1: 'if' is never closed (expected 'elif' or 'else' or 'endif')")
        assertFails("ok\n{% endfor %}", "chat template line 2: unexpected 'endfor'")
        assertFails("{{ 'open }}", "chat template line 1: string literal is not closed")
        assertFails("{# no end", "chat template line 1: comment is not closed with '#}'")
        assertFails("{{ x + }}", "chat template line 1: unexpected end of tag")
        assertFails("{% for x in xs %}{% endfor %}\n{% break %}", "chat template line 2: 'break' outside a loop")
    }

    func testRuntimeErrorsFollowJinja() {
        assertFails("{{ 'x' + 1 }}", "chat template line 1: unsupported operand types for +: 'str' and 'int'")
        assertFails("\n{{ u.attr }}", "chat template line 2: 'u' is undefined")
        assertFails("{{ m.missing + 'x' }}", vars: ["m": ["role": "user"]], "chat template line 1: 'dict object' has no attribute 'missing'")
        assertFails("{{ u | tojson }}", "chat template line 1: Object of type Undefined is not JSON serializable")
        assertFails("{% set x.y = 1 %}", vars: ["x": 1], "chat template line 1: cannot assign attribute on non-namespace object 'x'")
    }

    func testStrftimeNowUsesTodaysLocalDate() throws {
        let c = Calendar(identifier: .gregorian).dateComponents(in: TimeZone.current, from: Date())
        XCTAssertEqual(try render("{{ strftime_now('%Y-%m') }}"), String(format: "%04d-%02d", c.year!, c.month!))
        XCTAssertEqual(try JinjaBuiltins.strftime("%d %b %Y|%A %B %j %H:%M:%S %p %%", Date(timeIntervalSince1970: 1_721_995_200 - Double(TimeZone.current.secondsFromGMT())), line: 1),
                       "26 Jul 2024|Friday July 208 12:00:00 PM %")
        assertFails("{{ strftime_now('%Q') }}", "chat template line 1: strftime_now format code %Q is not supported")
    }

    func testNamespaceSurvivesLoopScopeAndSetIsLoopLocal() throws {
        let source = "{% set ns = namespace(found=false) %}{% set plain = false %}{% for m in messages %}{% if m.role == 'system' %}{% set ns.found = true %}{% set plain = true %}{% endif %}{% endfor %}{{ ns.found }} {{ plain }}"
        let rendered = try ChatTemplate(source: source).render(messages: [["role": "system", "content": "s"]], addGenerationPrompt: false, bosToken: nil, eosToken: nil)
        XCTAssertEqual(rendered, "True False")
    }

    func testTemplateSeesTransformersVariables() throws {
        let source = "{{ messages | length }} {{ add_generation_prompt }} {{ tools is none }} {{ documents is none }} {{ bos_token is defined }} {{ eos_token }}"
        XCTAssertEqual(try ChatTemplate(source: source).render(messages: [["role": "user", "content": "x"]], addGenerationPrompt: true, bosToken: nil, eosToken: "</s>"),
                       "1 True True True False </s>")
    }
}
