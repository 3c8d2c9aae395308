/// Why generation of a sequence ended.
public enum StopReason: Equatable, Sendable {
    /// The model generated this end-of-sequence id (kept in the ids, not printed).
    case eos(Int32)
    /// The new-token limit was reached.
    case maxNewTokens
    /// Prompt plus generated tokens fill the context; no further token can be fed.
    case contextFull
    /// The decoded text contains this stop string (see `StopStringMatcher`).
    case stopString(String)
}

/// The token-level stopping rules of one sequence, checked after each generated token, as
/// transformers' stopping criteria are (any one ends the sequence): an EOS id, the new-token
/// limit and the context length. Stop strings work on text: see `StopStringMatcher`.
public struct StopConditions: Sendable {
    /// The ids that end generation; empty when EOS is ignored or the model names none.
    public let eosTokenIDs: Set<Int32>
    public let maxNewTokens: Int
    /// The most tokens (prompt plus generated) the model can hold, if bounded.
    public let contextLength: Int?
    public let promptLength: Int
    public private(set) var generated = 0

    /// Throws before any work when the prompt leaves no room: it fills the context, or
    /// `max_length` is not above it.
    public init(config: GenerationConfig, promptLength: Int, contextLength: Int?, ignoreEOS: Bool = false) throws {
        if let contextLength, promptLength >= contextLength {
            throw TextError("the prompt has \(promptLength) tokens, which fills the context of \(contextLength) tokens")
        }
        self.eosTokenIDs = ignoreEOS ? [] : Set(config.eosTokenIDs)
        self.maxNewTokens = try config.maxNewTokens(promptLength: promptLength)
        self.contextLength = contextLength
        self.promptLength = promptLength
    }

    /// Records one generated token; returns why generation ends with it, if it does. The
    /// reasons are checked in this order: EOS, new-token limit, context.
    public mutating func append(_ token: Int32) -> StopReason? {
        generated += 1
        if eosTokenIDs.contains(token) { return .eos(token) }
        if generated >= maxNewTokens { return .maxNewTokens }
        if let contextLength, promptLength + generated >= contextLength { return .contextFull }
        return nil
    }
}
