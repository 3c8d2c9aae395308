import Foundation

/// A Hugging Face tokenizer read from tokenizer.json (+ tokenizer_config.json,
/// special_tokens_map.json, generation_config.json when present), reproducing the
/// `tokenizers` pipeline: added tokens → normalizer → pre-tokenizer → BPE → post-processor,
/// and the decoder. See Docs/TEXT.md for the supported components.
public struct Tokenizer: Sendable {
    private let normalizer: Normalizer?
    private let preTokenizer: PreTokenizer?
    private let model: BPEModel
    private let postProcessor: PostProcessor?
    private let decoder: Decoder?
    private let addedTokens: [Int32: AddedToken]
    /// The string an added token decodes as (its normalized form if it is matched normalized).
    private let addedTokenText: [Int32: String]
    private let addedByContent: [String: Int32]
    private let specialContents: Set<String>
    private let rawMatcher: AddedTokenMatcher
    private let normalizedMatcher: AddedTokenMatcher
    private let decoderHasByteFallback: Bool

    /// The id the model expects first, from tokenizer_config's bos_token; nil if none.
    public let bosTokenId: Int32?
    /// Ids that end generation: tokenizer_config's eos_token, then generation_config.json's eos_token_id.
    public let eosTokenIds: [Int32]
    /// One more than the largest id of the vocabulary and the added tokens.
    public let vocabSize: Int

    /// Reads the tokenizer files of a checkpoint folder.
    public init(directory: URL) throws {
        let file = directory.appendingPathComponent("tokenizer.json")
        guard FileManager.default.fileExists(atPath: file.path) else {
            throw TextError("\(directory.path): no tokenizer.json (Attune reads Hugging Face fast tokenizers only)")
        }
        func optional(_ name: String) throws -> Any? {
            let url = directory.appendingPathComponent(name)
            return FileManager.default.fileExists(atPath: url.path) ? try readJSONFile(url) : nil
        }
        try self.init(tokenizerJSON: try readJSONFile(file), config: try optional("tokenizer_config.json"),
                      specialTokensMap: try optional("special_tokens_map.json"),
                      generationConfig: try optional("generation_config.json"))
    }

    /// A tokenizer from the bytes of tokenizer.json (and tokenizer_config.json), as the
    /// folder initialiser reads them: for callers that hold the files in memory.
    public init(tokenizerJSON: Data, configJSON: Data? = nil) throws {
        try self.init(tokenizerJSON: try parseJSON(tokenizerJSON, name: "tokenizer.json"),
                      config: try configJSON.map { try parseJSON($0, name: "tokenizer_config.json") },
                      specialTokensMap: nil, generationConfig: nil)
    }

    /// Builds a tokenizer from already-parsed JSON values (Foundation objects).
    init(tokenizerJSON: Any, config: Any?, specialTokensMap: Any?, generationConfig: Any?) throws {
        let root = try JSONFields(tokenizerJSON, path: "tokenizer.json")
        model = try BPEModel(try root.fields("model"))
        normalizer = try root.optionalFields("normalizer").map(Normalizer.init)
        preTokenizer = try root.optionalFields("pre_tokenizer").map(PreTokenizer.init)
        postProcessor = try root.optionalFields("post_processor").map(PostProcessor.init)
        decoder = try root.optionalFields("decoder").map(Decoder.init)
        decoderHasByteFallback = decoder?.containsByteFallback ?? false

        var added: [Int32: AddedToken] = [:]
        var addedText: [Int32: String] = [:]
        var byContent: [String: Int32] = [:]
        var raw: [([Unicode.Scalar], AddedToken)] = [], normalized: [([Unicode.Scalar], AddedToken)] = []
        for (n, item) in (root.isNull("added_tokens") ? [] : try root.array("added_tokens")).enumerated() {
            let token = try AddedToken(JSONFields(item, path: "tokenizer.json.added_tokens[\(n)]"))
            added[token.id] = token
            byContent[token.content] = token.id
            let scalars = Array(token.content.unicodeScalars)
            if token.normalized {
                let form = normalizer?.normalize(scalars) ?? scalars
                normalized.append((form, token))
                addedText[token.id] = string(form)
            } else {
                raw.append((scalars, token))
                addedText[token.id] = token.content
            }
        }
        addedTokens = added
        addedTokenText = addedText
        addedByContent = byContent
        specialContents = Set(added.values.filter(\.special).map(\.content))
        rawMatcher = AddedTokenMatcher(raw.map { (pattern: $0.0, token: $0.1) })
        normalizedMatcher = AddedTokenMatcher(normalized.map { (pattern: $0.0, token: $0.1) })
        vocabSize = Int(max(model.tokens.keys.max() ?? -1, added.keys.max() ?? -1)) + 1
        // Foundation's JSON reader keys objects by String, which merges canonically
        // equivalent keys ("é" as one or as two code points): the token lost leaves a hole.
        let modelTokens = model.tokens
        if let hole = (0..<Int32(vocabSize)).first(where: { modelTokens[$0] == nil && added[$0] == nil }) {
            throw TextError("tokenizer.json: no token has id \(hole) (a vocabulary with gaps, or with canonically equivalent tokens such as \"é\" spelt with one and with two code points, is not supported)")
        }

        // Special token names: tokenizer_config first, special_tokens_map as a fallback.
        let configFields = try config.map { try JSONFields($0, path: "tokenizer_config.json") }
        let mapFields = try specialTokensMap.map { try JSONFields($0, path: "special_tokens_map.json") }
        func tokenName(_ key: String) -> String? {
            for f in [configFields, mapFields].compactMap({ $0 }) {
                if let s = f.object[key] as? String { return s }
                if let o = f.object[key] as? [String: Any], let s = o["content"] as? String { return s }
            }
            return nil
        }
        let modelVocab = model.vocab
        func id(of name: String, key: String) throws -> Int32 {
            guard let id = byContent[name] ?? modelVocab[name.unicodeScalars.map(\.value)] else {
                throw TextError("tokenizer_config.json: \(key) '\(name)' is not a token of tokenizer.json")
            }
            return id
        }
        let bos = try tokenName("bos_token").map { try id(of: $0, key: "bos_token") }
        var eos = try tokenName("eos_token").map { [try id(of: $0, key: "eos_token")] } ?? []
        if let g = generationConfig as? [String: Any] {
            let values: [Any] = (g["eos_token_id"] as? [Any]) ?? (g["eos_token_id"].map { [$0] } ?? [])
            for v in values {
                guard let i = v as? Int, let i32 = Int32(exactly: i) else {
                    throw TextError("generation_config.json: eos_token_id must be an id or a list of ids")
                }
                if !eos.contains(i32) { eos.append(i32) }
            }
        }
        bosTokenId = bos
        eosTokenIds = eos
    }

    /// The ids of `text`; with `addSpecialTokens` the post-processor adds its special tokens
    /// (e.g. BOS), as `tokenizer(text)` does in transformers.
    public func encode(_ text: String, addSpecialTokens: Bool = true) -> [Int32] {
        var ids: [Int32] = []
        var cache: [[UInt32]: [Int32]] = [:]
        for segment in rawMatcher.split(Piece(text: Array(text.unicodeScalars), atStart: true)) {
            guard case .text(let piece) = segment else {
                if case .token(let id) = segment { ids.append(id) }
                continue
            }
            let normal = Piece(text: normalizer?.normalize(piece.text) ?? piece.text, atStart: piece.atStart)
            for inner in normalizedMatcher.split(normal) {
                switch inner {
                case .token(let id): ids.append(id)
                case .text(let p):
                    if p.text.isEmpty { continue }
                    let words = preTokenizer?.apply([p]) ?? [p]
                    for word in words { model.tokenize(word.text, into: &ids, cache: &cache) }
                }
            }
        }
        guard addSpecialTokens, let post = postProcessor else { return ids }
        return post.process(ids)
    }

    /// The text of `ids`, through the tokenizer's decoder; unknown ids are skipped, and
    /// with `skipSpecialTokens` so are the special added tokens.
    public func decode(_ ids: [Int32], skipSpecialTokens: Bool = false) -> String {
        let tokens = ids.compactMap { id -> String? in
            guard decodes(id, skipSpecialTokens: skipSpecialTokens) else { return nil }
            return addedTokenText[id] ?? model.tokens[id]
        }
        guard let decoder else { return tokens.joined(separator: " ") }
        return decoder.decodeChain(tokens).joined()
    }

    /// The token string of an id (an added token's content, or the vocabulary entry).
    public func idToToken(_ id: Int32) -> String? { addedTokens[id]?.content ?? model.tokens[id] }

    /// The id of a token string, added tokens first.
    public func tokenToId(_ token: String) -> Int32? {
        addedByContent[token] ?? model.vocab[token.unicodeScalars.map(\.value)]
    }

    /// Whether `decode` keeps `id` (it is known, and not skipped as special).
    func decodes(_ id: Int32, skipSpecialTokens: Bool) -> Bool {
        // tokenizers tests the string it decodes (for a normalized added token, its normalized
        // form) against the special tokens' contents, so "▁<mask>" is not skipped.
        guard let t = addedTokenText[id] ?? model.tokens[id] else { return false }
        return !(skipSpecialTokens && specialContents.contains(t))
    }

    /// Whether `id` is a "<0xNN>" token that the decoder turns into its byte.
    func isFallbackByte(_ id: Int32) -> Bool {
        decoderHasByteFallback && addedTokens[id] == nil && model.tokens[id].flatMap(byteToken) != nil
    }

    /// Whether `id` is a special added token (skipped by `decode(_:skipSpecialTokens: true)`).
    public func isSpecial(_ id: Int32) -> Bool { addedTokens[id]?.special ?? false }
}
