import Foundation

/// A conversation → the token ids a chat model sees: the chat template rendered with the
/// tokenizer's special tokens (as transformers' `apply_chat_template` passes them), then
/// encoded without adding special tokens again (the template writes them itself).
public struct ChatEncoder {
    public let template: ChatTemplate
    public let tokenizer: Tokenizer

    public init(template: ChatTemplate, tokenizer: Tokenizer) {
        self.template = template
        self.tokenizer = tokenizer
    }

    /// The template of `templateFile`, or else the one in the folder's tokenizer_config.json.
    public init(directory: URL, templateFile: String?, tokenizer: Tokenizer) throws {
        let template = try templateFile.map { path -> ChatTemplate in
            guard let source = try? String(contentsOfFile: path, encoding: .utf8) else {
                throw TextError("--chat-template \(path): cannot read it as UTF-8 text")
            }
            return try ChatTemplate(source: source)
        } ?? ChatTemplate(tokenizerConfigAt: directory)
        self.init(template: template, tokenizer: tokenizer)
    }

    /// Messages are `["role": ..., "content": ...]`.
    public func render(_ messages: [[String: String]], addGenerationPrompt: Bool) throws -> String {
        // A template from --chat-template has no tokenizer_config.json of its own to read the
        // special tokens from: the tokenizer's are passed.
        let bos = tokenizer.bosTokenId.flatMap(tokenizer.idToToken)
        let eos = tokenizer.eosTokenIds.first.flatMap(tokenizer.idToToken)
        return try template.render(messages: messages, addGenerationPrompt: addGenerationPrompt, bosToken: bos, eosToken: eos)
    }

    public func encode(_ messages: [[String: String]], addGenerationPrompt: Bool) throws -> [Int32] {
        tokenizer.encode(try render(messages, addGenerationPrompt: addGenerationPrompt), addSpecialTokens: false)
    }
}
