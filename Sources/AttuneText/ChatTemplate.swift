import AttuneTensor
import Foundation

/// A Hugging Face chat template (the jinja2 template in tokenizer_config.json's
/// `chat_template`), rendered the way transformers' `apply_chat_template(tokenize=False)`
/// renders it. The template is parsed once, up front: a construct outside the supported
/// subset (Docs/TEXT.md, "Chat templates") is refused here, naming it and its line.
public struct ChatTemplate {
    /// The template text.
    public let source: String
    /// Special tokens read from tokenizer_config.json (bos_token, eos_token, unk_token,
    /// sep_token, pad_token, cls_token, mask_token — the ones transformers passes), by name.
    public let specialTokens: [String: String]
    private let program: [JinjaStmt]

    /// The token attributes transformers' `special_tokens_map` passes to every template.
    static let specialTokenNames = ["bos_token", "eos_token", "unk_token", "sep_token", "pad_token", "cls_token", "mask_token"]

    public init(source: String) throws {
        try self.init(source: source, specialTokens: [:])
    }

    init(source: String, specialTokens: [String: String]) throws {
        self.source = source
        self.specialTokens = specialTokens
        program = try JinjaParser.parse(source)
    }

    /// Reads a model folder's chat template the way transformers' tokenizer loading does:
    /// `chat_template.jinja` (named "default") and `additional_chat_templates/NAME.jinja`
    /// when present, which take priority; otherwise tokenizer_config.json's `chat_template`
    /// (a string, or a list of `{name, template}`). With several templates, `name` picks
    /// one and nil means "default". Special tokens come from tokenizer_config.json.
    public init(tokenizerConfigAt directory: URL, name: String? = nil) throws {
        let fm = FileManager.default
        let configURL = directory.appendingPathComponent("tokenizer_config.json")
        var named: [String: String] = [:]
        let defaultFile = directory.appendingPathComponent("chat_template.jinja")
        if fm.fileExists(atPath: defaultFile.path) { named["default"] = try Self.read(defaultFile) }
        let extraDir = directory.appendingPathComponent("additional_chat_templates")
        for file in (try? fm.contentsOfDirectory(atPath: extraDir.path)) ?? [] where file.hasSuffix(".jinja") {
            named[String(file.dropLast(".jinja".count))] = try Self.read(extraDir.appendingPathComponent(file))
        }

        var config: [String: Any] = [:]
        if fm.fileExists(atPath: configURL.path) || named.isEmpty {
            let data: Data
            do { data = try Data(contentsOf: configURL) } catch {
                throw TextError("\(configURL.path): cannot read tokenizer_config.json (\(FileProblem.reading(configURL.path, error)))")
            }
            guard let object = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] else {
                throw TextError("\(configURL.path): not a JSON object")
            }
            config = object
        }
        var tokens: [String: String] = [:]
        for key in Self.specialTokenNames {
            if let token = config[key] as? String {
                tokens[key] = token
            } else if let added = config[key] as? [String: Any], let content = added["content"] as? String {
                tokens[key] = content
            }
        }

        var origin = configURL.path
        let source: String
        if !named.isEmpty {
            origin = directory.path
            source = try Self.pick(named, name, origin: origin)
        } else {
            switch config["chat_template"] {
            case let text as String:
                if let name { throw TextError("\(origin): chat_template is a single template, so there is no template named '\(name)'") }
                source = text
            case let list as [Any]:
                for entry in list {
                    guard let entry = entry as? [String: Any], let entryName = entry["name"] as? String,
                          let template = entry["template"] as? String
                    else { throw TextError("\(origin): chat_template list entries need string 'name' and 'template'") }
                    named[entryName] = template
                }
                source = try Self.pick(named, name, origin: origin)
            case nil, is NSNull:
                throw TextError("\(origin): no chat_template (the model ships no chat format)")
            default:
                throw TextError("\(origin): chat_template must be a string or a list of {name, template}")
            }
        }
        do {
            try self.init(source: source, specialTokens: tokens)
        } catch let error as TextError {
            throw TextError("\(origin): \(error.message)")
        }
    }

    private static func read(_ url: URL) throws -> String {
        do { return try String(contentsOf: url, encoding: .utf8) } catch {
            throw TextError("\(url.path): cannot read the chat template (\(FileProblem.reading(url.path, error)))")
        }
    }

    private static func pick(_ named: [String: String], _ name: String?, origin: String) throws -> String {
        let wanted = name ?? "default"
        guard let template = named[wanted] else {
            throw TextError("\(origin): chat_template has no template named '\(wanted)' (has \(named.keys.sorted().joined(separator: ", ")))")
        }
        return template
    }

    /// Renders a conversation. The template sees what transformers passes: `messages`,
    /// `add_generation_prompt`, `tools` and `documents` (None), the special tokens read from
    /// the tokenizer config, `bos_token` / `eos_token` when given (they override the
    /// config's), then `extra` (which overrides everything, as apply_chat_template's kwargs do).
    /// `raise_exception('msg')` in the template throws `TextError("msg")`.
    public func render(messages: [[String: String]], addGenerationPrompt: Bool, bosToken: String?, eosToken: String?,
                       extra: [String: Any] = [:]) throws -> String {
        var variables: [String: JinjaValue] = [
            "messages": .list(messages.map { message in
                .dict(JinjaDict(Self.orderedKeys(message).map { ($0, .string(message[$0]!)) }))
            }),
            "add_generation_prompt": .bool(addGenerationPrompt),
            "tools": .none,
            "documents": .none,
        ]
        for (key, token) in specialTokens { variables[key] = .string(token) }
        if let bosToken { variables["bos_token"] = .string(bosToken) }
        if let eosToken { variables["eos_token"] = .string(eosToken) }
        for (key, value) in extra { variables[key] = try JinjaValue.from(value, path: key) }
        return try JinjaInterpreter(variables: variables).render(program)
    }

    /// Message keys in a stable order ("role", "content", then the rest sorted), since a
    /// Swift dictionary has none and `tojson` / `items()` print keys in order.
    private static func orderedKeys(_ message: [String: String]) -> [String] {
        let first = ["role", "content"].filter { message[$0] != nil }
        return first + message.keys.filter { !first.contains($0) }.sorted()
    }
}
