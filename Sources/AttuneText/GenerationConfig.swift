/// The settings that decide which token comes next and when generation ends, with the
/// meaning transformers' `GenerationConfig` and `generate` give them.
///
/// `GenerationConfig()` holds transformers' global defaults (`_get_default_generation_params`):
/// greedy, temperature 1, top-k 50, top-p 1, no min-p, no repetition penalty, 20 new
/// tokens. `init(directory:)` reads a checkpoint folder the way `from_pretrained` does, and
/// `merging(_:)` lays command-line choices on top. See Docs/TEXT.md, "Sampling and stopping".
public struct GenerationConfig: Equatable, Sendable {
    /// How many tokens generation may produce.
    public enum LengthLimit: Equatable, Sendable {
        /// At most this many generated tokens (`max_new_tokens`, or the default 20).
        case newTokens(Int)
        /// Prompt plus generated tokens at most this many (`max_length` written in a file).
        case totalTokens(Int)
    }

    /// `eos_token_id`: generating any of these ends the sequence. Empty: none.
    public var eosTokenIDs: [Int32] = []
    /// `bos_token_id`.
    public var bosTokenID: Int32?
    /// `pad_token_id` as written; see `effectivePadTokenID`.
    public var padTokenID: Int32?
    /// `do_sample`: false picks the most likely token; the sampling settings are then unused.
    public var doSample = false
    /// `temperature`; 0 means greedy (transformers refuses 0 when sampling; Attune reads it as
    /// "no randomness").
    public var temperature = 1.0
    /// `top_k`; 0 turns the filter off.
    public var topK = 50
    /// `top_p`; 1 turns the filter off.
    public var topP = 1.0
    /// `min_p`; nil turns the filter off.
    public var minP: Double?
    /// `repetition_penalty`; 1 turns it off. Applies in greedy mode too.
    public var repetitionPenalty = 1.0
    /// `max_new_tokens`, else `max_length`, else 20 new tokens.
    public var lengthLimit = LengthLimit.newTokens(20)
    /// `stop_strings`: generation ends when the text contains one (see `StopStringMatcher`).
    public var stopStrings: [String] = []
    /// Settings in the file that Attune does not implement but that change what transformers'
    /// `generate` does, as `key value` (`"num_beams 4"`), for a warning.
    public var unsupportedSettings: [String] = []

    /// transformers' global defaults.
    public init() {}

    /// The pad id `generate` uses: `pad_token_id`, else the first EOS id.
    public var effectivePadTokenID: Int32? { padTokenID ?? eosTokenIDs.first }

    /// True when the next token is the most likely one (after the repetition penalty).
    public var isGreedy: Bool { !doSample || temperature == 0 }

    /// The logits processors `generate` applies, in its order (`_get_logits_processor`): the
    /// repetition penalty always, then, only when sampling, temperature, top-k, top-p, min-p.
    /// A processor whose setting changes nothing (temperature 1, top-k 0, top-p 1) is absent.
    public var logitsSteps: [LogitsStep] {
        var steps: [LogitsStep] = []
        if repetitionPenalty != 1 { steps.append(.repetitionPenalty(Float(repetitionPenalty))) }
        guard !isGreedy else { return steps }
        if temperature != 1 { steps.append(.temperature(Float(temperature))) }
        if topK != 0 { steps.append(.topK(topK)) }
        if topP < 1 { steps.append(.topP(topP)) }
        if let minP { steps.append(.minP(minP)) }
        return steps
    }

    /// The number of tokens that may be generated after a prompt of `promptLength` tokens.
    /// Throws when `max_length` leaves no room (transformers raises the same).
    public func maxNewTokens(promptLength: Int) throws -> Int {
        switch lengthLimit {
        case .newTokens(let n):
            return n
        case .totalTokens(let n):
            guard n > promptLength else {
                throw TextError("max_length \(n) leaves no room after a prompt of \(promptLength) tokens; set max_new_tokens")
            }
            return n - promptLength
        }
    }
}

/// One logits processor of transformers' `generate`, as Attune's `Sampler` applies it.
public enum LogitsStep: Equatable, Sendable, CustomStringConvertible {
    /// `RepetitionPenaltyLogitsProcessor`: every token id present in the prompt or the
    /// generated ids gets its logit divided by the penalty if positive, multiplied if negative.
    case repetitionPenalty(Float)
    /// `TemperatureLogitsWarper`: logits divided by the temperature.
    case temperature(Float)
    /// `TopKLogitsWarper`: keeps the tokens whose logit is at least the k-th largest (ties kept).
    case topK(Int)
    /// `TopPLogitsWarper`: keeps the most likely tokens while the mass above each is below p.
    case topP(Double)
    /// `MinPLogitsWarper`: keeps the tokens with probability at least min_p times the top one.
    case minP(Double)

    public var description: String {
        switch self {
        case .repetitionPenalty(let p): return "repetition_penalty \(p)"
        case .temperature(let t): return "temperature \(t)"
        case .topK(let k): return "top_k \(k)"
        case .topP(let p): return "top_p \(p)"
        case .minP(let p): return "min_p \(p)"
        }
    }
}
