import AttuneModels
import AttuneTensor
import Foundation

extension GenerationConfig {
    /// Reads the generation settings of a checkpoint folder as transformers'
    /// `from_pretrained` does (generation/utils.py, `adjust_generation_fn`):
    ///
    /// - `generation_config.json`, if present, is the whole story: `config.json` is not
    ///   consulted, not even for `eos_token_id`.
    /// - Otherwise the same keys are read from `config.json` (`from_model_config`); a key
    ///   missing or null there is taken from the first non-empty `decoder`, `generator` or
    ///   `text_config` object.
    /// - Neither file: the defaults.
    ///
    /// Unset or null keys keep the defaults. A value of the wrong type or out of range is
    /// refused with a one-line message naming the file and key.
    public init(directory: URL) throws {
        self.init()
        let generation = directory.appendingPathComponent("generation_config.json")
        let model = directory.appendingPathComponent("config.json")
        let file: String
        let lookup: (String) -> Setting?
        if FileManager.default.fileExists(atPath: generation.path) {
            let root = try Self.readObject(generation)
            file = "generation_config.json"
            lookup = { key in root[key].flatMap { Setting(key: key, value: $0) } }
        } else if FileManager.default.fileExists(atPath: model.path) {
            let root = try Self.readObject(model)
            let nested = ["decoder", "generator", "text_config"].lazy.compactMap { name -> (String, JSONObject)? in
                if case .object(let o)? = root[name], o.isNonEmpty { return (name, o) }
                return nil
            }.first
            file = "config.json"
            lookup = { key in
                if let v = root[key], !v.isNull { return Setting(key: key, value: v) }
                if let (name, object) = nested, let v = object[key] { return Setting(key: key, path: "\(name).\(key)", value: v) }
                return nil
            }
        } else {
            return
        }
        try apply(Self.keys.compactMap(lookup), file: file)
        unsupportedSettings = Self.unsupportedKeys.compactMap(lookup).filter { $0.value.changesGeneration(Self.inactive[$0.key]) }
            .map { "\($0.path) \($0.value.shown)" }
    }

    /// The keys read; transformers' other generation keys are reported in
    /// `unsupportedSettings` when their value would change what `generate` does.
    static let keys = ["eos_token_id", "bos_token_id", "pad_token_id", "do_sample", "temperature", "top_k", "top_p",
                       "min_p", "repetition_penalty", "max_new_tokens", "max_length", "stop_strings"]

    fileprivate struct Setting {
        var key: String
        var path: String
        var value: JSON
        init?(key: String, path: String? = nil, value: JSON) {
            if value.isNull { return nil }
            self.key = key
            self.path = path ?? key
            self.value = value
        }
    }

    private static func readObject(_ url: URL) throws -> JSONObject {
        let name = url.lastPathComponent
        let data: Data
        do { data = try Data(contentsOf: url) } catch { throw TextError("\(name): cannot read (\(FileProblem.reading(url.path, error)))") }
        let root: JSON
        do { root = try JSONParser.parse(data) } catch {
            throw TextError("\(name): not valid JSON: \(error.reason) at byte \(error.offset)")
        }
        guard case .object(let object) = root else { throw TextError("\(name): not a JSON object (it is \(root.kind))") }
        return object
    }

    private mutating func apply(_ settings: [Setting], file: String) throws {
        var maxNewTokens: Int?
        var maxLength: Int?
        for s in settings {
            let fail = { (requirement: String) in TextError("\(file): \(s.path) must be \(requirement), got \(s.value.shown)") }
            switch s.key {
            case "eos_token_id":
                switch s.value {
                case .array(let items): eosTokenIDs = try items.map { try $0.tokenID(or: fail("an integer or a list of integers")) }
                default: eosTokenIDs = [try s.value.tokenID(or: fail("an integer or a list of integers"))]
                }
            case "bos_token_id": bosTokenID = try s.value.tokenID(or: fail("an integer"))
            case "pad_token_id": padTokenID = try s.value.tokenID(or: fail("an integer"))
            case "do_sample":
                guard case .bool(let b) = s.value else { throw fail("true or false") }
                doSample = b
            case "stop_strings":
                switch s.value {
                case .string(let t) where !t.isEmpty: stopStrings = [t]
                case .array(let items):
                    stopStrings = try items.map {
                        guard case .string(let t) = $0, !t.isEmpty else { throw fail("a string or a list of non-empty strings") }
                        return t
                    }
                default: throw fail("a string or a list of non-empty strings")
                }
            case "top_k", "max_new_tokens", "max_length":
                guard case .number(let n) = s.value, let v = n.int, Self.intRequirement(s.key, v) == nil else {
                    throw fail(Self.intRequirement(s.key, .min) ?? "")
                }
                switch s.key {
                case "top_k": topK = v
                case "max_new_tokens": maxNewTokens = v
                default: maxLength = v
                }
            default:  // temperature, top_p, min_p, repetition_penalty
                guard case .number(let n) = s.value, Self.realRequirement(s.key, n.double) == nil else {
                    throw fail(Self.realRequirement(s.key, .nan) ?? "")
                }
                switch s.key {
                case "temperature": temperature = n.double
                case "top_p": topP = n.double
                case "min_p": minP = n.double
                default: repetitionPenalty = n.double
                }
            }
        }
        // transformers: max_new_tokens takes precedence over max_length.
        if let maxNewTokens { lengthLimit = .newTokens(maxNewTokens) } else if let maxLength { lengthLimit = .totalTokens(maxLength) }
    }

    /// What an integer setting must be, or nil if `value` is acceptable (`Int.min` never is).
    static func intRequirement(_ key: String, _ value: Int) -> String? {
        switch key {
        case "top_k": return value >= 0 ? nil : "an integer ≥ 0"
        default: return value >= 1 ? nil : "an integer ≥ 1"  // max_new_tokens, max_length
        }
    }

    /// What a real-valued setting must be, or nil if `value` is acceptable (NaN never is).
    static func realRequirement(_ key: String, _ value: Double) -> String? {
        switch key {
        case "temperature": return value >= 0 && value.isFinite ? nil : "a number ≥ 0"
        case "repetition_penalty": return value > 0 && value.isFinite ? nil : "a number > 0"
        default: return value >= 0 && value <= 1 ? nil : "a number in [0, 1]"  // top_p, min_p
        }
    }
}

extension JSON {
    /// False if this is null, or the value that leaves the processor out (`inactive`:
    /// equal to it; nil: an empty array or object, or false, is inactive too).
    fileprivate func changesGeneration(_ inactive: Double?) -> Bool {
        switch self {
        case .null: return false
        case .bool(let b): return b
        case .number(let n): return inactive.map { n.double != $0 } ?? true
        case .array(let items): return !items.isEmpty
        case .object(let o): return o.isNonEmpty
        case .string: return true
        }
    }

    fileprivate var isNull: Bool {
        if case .null = self { return true }
        return false
    }

    /// The value for a message: numbers and strings as written, anything else by kind.
    fileprivate var shown: String {
        switch self {
        case .number(let n): return n.literal
        case .string(let s): return "\"\(s)\""
        case .bool(let b): return b ? "true" : "false"
        default: return kind
        }
    }

    /// An integer literal that fits a token id (`Int32`; negative ids are kept: transformers
    /// only warns about them, and they never match a generated token).
    fileprivate func tokenID(or error: TextError) throws -> Int32 {
        guard case .number(let n) = self, let v = n.int, let id = Int32(exactly: v) else { throw error }
        return id
    }
}

extension JSONObject {
    fileprivate var isNonEmpty: Bool { !entries.isEmpty }
}
