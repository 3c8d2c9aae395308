@testable import AttuneText
import Foundation
import XCTest

/// Every case of Tests/Fixtures/chat_template_goldens.json (rendered by transformers'
/// render_jinja_template, see make_chat_goldens.py) must come out byte for byte, and every
/// raise_exception as a TextError carrying exactly its message.
final class ChatTemplateGoldenTests: XCTestCase {
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures")

    struct Case: Decodable {
        var template: String
        var conversation: String
        var messages: [[String: String]]
        var add_generation_prompt: Bool
        var bos_token: String?
        var eos_token: String?
        var extra: [String: JSONValue]
        var output: String?
        var error: String?
    }

    /// Any JSON value, decoded so that booleans stay Bool and integers Int (which
    /// JSONSerialization's NSNumbers do not guarantee), then handed over as plain Swift values.
    enum JSONValue: Decodable {
        case bool(Bool), int(Int), double(Double), string(String), array([JSONValue]), object([String: JSONValue]), null

        init(from decoder: any Swift.Decoder) throws {
            let c = try decoder.singleValueContainer()
            if c.decodeNil() { self = .null }
            else if let b = try? c.decode(Bool.self) { self = .bool(b) }
            else if let i = try? c.decode(Int.self) { self = .int(i) }
            else if let d = try? c.decode(Double.self) { self = .double(d) }
            else if let s = try? c.decode(String.self) { self = .string(s) }
            else if let a = try? c.decode([JSONValue].self) { self = .array(a) }
            else { self = .object(try c.decode([String: JSONValue].self)) }
        }

        var plain: Any {
            switch self {
            case .bool(let b): return b
            case .int(let i): return i
            case .double(let d): return d
            case .string(let s): return s
            case .array(let a): return a.map(\.plain)
            case .object(let o): return o.mapValues(\.plain)
            case .null: return NSNull()
            }
        }
    }

    func testGoldensMatchTransformers() throws {
        let data = try Data(contentsOf: Self.fixtures.appendingPathComponent("chat_template_goldens.json"))
        let cases = try JSONDecoder().decode([String: [Case]].self, from: data)["cases"]!
        XCTAssertEqual(cases.count, 142)
        var templates: [String: ChatTemplate] = [:]
        var checked = Set<String>()
        for c in cases {
            let template: ChatTemplate
            if let cached = templates[c.template] {
                template = cached
            } else {
                let source = try String(contentsOf: Self.fixtures.appendingPathComponent("chat_templates/\(c.template).jinja"), encoding: .utf8)
                template = try ChatTemplate(source: source)
                templates[c.template] = template
            }
            let label = "\(c.template) / \(c.conversation) / add_generation_prompt=\(c.add_generation_prompt)"
            do {
                let rendered = try template.render(messages: c.messages, addGenerationPrompt: c.add_generation_prompt,
                                                   bosToken: c.bos_token, eosToken: c.eos_token, extra: c.extra.mapValues(\.plain))
                XCTAssertNil(c.error, "\(label): rendered, but transformers raised \(c.error ?? "")")
                XCTAssertEqual(rendered, c.output, label)
            } catch let error as TextError {
                XCTAssertEqual(error.message, c.error, label)
            }
            checked.insert(c.template)
        }
        XCTAssertEqual(checked, ["llama3", "llama3_1", "llama3_2", "qwen2_5", "mistral_7b_v0_1", "mixtral_8x7b_v0_1", "mistral_7b_v0_3", "zephyr"])
    }

    struct WhitespaceCase: Decodable {
        var source: String
        var variables: [String: JSONValue]
        var output: String
    }

    /// 400 random mixes of text, tags, comments and every whitespace-control marker
    /// (`-`, `+`, trim_blocks, lstrip_blocks), rendered by transformers' jinja2 environment.
    func testRandomWhitespaceControlMatchesJinja2() throws {
        let data = try Data(contentsOf: Self.fixtures.appendingPathComponent("jinja_whitespace_goldens.json"))
        let cases = try JSONDecoder().decode([String: [WhitespaceCase]].self, from: data)["cases"]!
        XCTAssertEqual(cases.count, 400)
        var failures = 0
        for c in cases {
            let rendered = try ChatTemplate(source: c.source).render(messages: [], addGenerationPrompt: false, bosToken: nil, eosToken: nil,
                                                                     extra: c.variables.mapValues(\.plain))
            if rendered != c.output { failures += 1 }
            XCTAssertEqual(rendered, c.output, c.source)
            if failures > 5 { break }
        }
    }

    struct ExpressionCase: Decodable {
        var source: String
        var output: String?
        var error: String?
    }

    /// 600 random expressions (operators, subscripts, slices, filters, tests, literals over
    /// str / int / float / bool / None / list / tuple / dict / Undefined) rendered by jinja2:
    /// Attune must print the same text, or fail where jinja2 fails.
    func testRandomExpressionsMatchJinja2() throws {
        let data = try Data(contentsOf: Self.fixtures.appendingPathComponent("jinja_expression_goldens.json"))
        let cases = try JSONDecoder().decode([String: [ExpressionCase]].self, from: data)["cases"]!
        XCTAssertEqual(cases.count, 600)
        let variables: [String: Any] = ["x": "X", "n": 3, "ls": [3, 1, 2],
                                        "d": JinjaValue.dict(JinjaDict([("b", .int(1)), ("a", .list([.int(1), .string("z")]))]))]
        for c in cases {
            do {
                let rendered = try ChatTemplate(source: c.source).render(messages: [], addGenerationPrompt: false, bosToken: nil, eosToken: nil,
                                                                         extra: variables)
                XCTAssertEqual(rendered, c.output, "\(c.source) (jinja2: \(c.error ?? "rendered"))")
            } catch {
                XCTAssertNotNil(c.error, "\(c.source): Attune failed (\(error)) where jinja2 rendered \(c.output ?? "")")
            }
        }
    }

    func testTokenizerConfigSingleTemplateAndSpecialTokens() throws {
        let dir = try Self.temporaryDirectory()
        let config: [String: Any] = [
            "bos_token": ["content": "<s>", "lstrip": false],
            "eos_token": "</s>",
            "unk_token": "<unk>",
            "chat_template": "{{ bos_token }}|{{ eos_token }}|{{ unk_token }}|{{ pad_token is defined }}|{{ messages[0].content }}",
        ]
        try JSONSerialization.data(withJSONObject: config).write(to: dir.appendingPathComponent("tokenizer_config.json"))
        let template = try ChatTemplate(tokenizerConfigAt: dir)
        XCTAssertEqual(template.specialTokens, ["bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>"])
        let hi = [["role": "user", "content": "hi"]]
        XCTAssertEqual(try template.render(messages: hi, addGenerationPrompt: false, bosToken: nil, eosToken: nil), "<s>|</s>|<unk>|False|hi")
        XCTAssertEqual(try template.render(messages: hi, addGenerationPrompt: false, bosToken: "B", eosToken: "E", extra: ["unk_token": "U"]),
                       "B|E|U|False|hi")
    }

    func testTokenizerConfigNamedTemplates() throws {
        let dir = try Self.temporaryDirectory()
        let config: [String: Any] = [
            "chat_template": [["name": "default", "template": "D{{ messages|length }}"], ["name": "tool_use", "template": "T"]],
        ]
        try JSONSerialization.data(withJSONObject: config).write(to: dir.appendingPathComponent("tokenizer_config.json"))
        let hi = [["role": "user", "content": "hi"]]
        XCTAssertEqual(try ChatTemplate(tokenizerConfigAt: dir).render(messages: hi, addGenerationPrompt: false, bosToken: nil, eosToken: nil), "D1")
        XCTAssertEqual(try ChatTemplate(tokenizerConfigAt: dir, name: "tool_use").render(messages: hi, addGenerationPrompt: false, bosToken: nil, eosToken: nil), "T")
        XCTAssertThrowsError(try ChatTemplate(tokenizerConfigAt: dir, name: "rag")) { error in
            XCTAssertEqual((error as? TextError)?.message,
                           "\(dir.appendingPathComponent("tokenizer_config.json").path): chat_template has no template named 'rag' (has default, tool_use)")
        }
    }

    func testTokenizerConfigWithoutTemplateOrWithBadTemplate() throws {
        let dir = try Self.temporaryDirectory()
        let path = dir.appendingPathComponent("tokenizer_config.json")
        try JSONSerialization.data(withJSONObject: ["eos_token": "</s>"]).write(to: path)
        XCTAssertThrowsError(try ChatTemplate(tokenizerConfigAt: dir)) { error in
            XCTAssertEqual((error as? TextError)?.message, "\(path.path): no chat_template (the model ships no chat format)")
        }
        try JSONSerialization.data(withJSONObject: ["chat_template": "ok\n{{ x|wordcount }}"]).write(to: path)
        XCTAssertThrowsError(try ChatTemplate(tokenizerConfigAt: dir)) { error in
            XCTAssertEqual((error as? TextError)?.message, "\(path.path): chat template line 2: filter 'wordcount' is not supported")
        }
    }

    /// transformers' newer layout: chat_template.jinja and additional_chat_templates/ win
    /// over tokenizer_config.json's chat_template, whose special tokens still apply.
    func testJinjaFilesTakePriorityOverTheConfig() throws {
        let dir = try Self.temporaryDirectory()
        try JSONSerialization.data(withJSONObject: ["eos_token": "</s>", "chat_template": "config"])
            .write(to: dir.appendingPathComponent("tokenizer_config.json"))
        try "file {{ eos_token }}\n".write(to: dir.appendingPathComponent("chat_template.jinja"), atomically: true, encoding: .utf8)
        try FileManager.default.createDirectory(at: dir.appendingPathComponent("additional_chat_templates"), withIntermediateDirectories: true)
        try "tools".write(to: dir.appendingPathComponent("additional_chat_templates/tool_use.jinja"), atomically: true, encoding: .utf8)
        let hi = [["role": "user", "content": "hi"]]
        XCTAssertEqual(try ChatTemplate(tokenizerConfigAt: dir).render(messages: hi, addGenerationPrompt: false, bosToken: nil, eosToken: nil), "file </s>")
        XCTAssertEqual(try ChatTemplate(tokenizerConfigAt: dir, name: "tool_use").render(messages: hi, addGenerationPrompt: false, bosToken: nil, eosToken: nil), "tools")
    }

    static func temporaryDirectory() throws -> URL {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("attune-chat-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        return dir
    }
}
