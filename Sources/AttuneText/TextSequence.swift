/// One sequence's generation state, independent of how its logits are computed: give it
/// each row of logits, it samples the next token, applies the stopping rules and returns
/// the text that became complete. A single prompt (`TextGeneration`), a batch of prompts
/// decoded together and a chat's turns all drive it the same way.
///
/// Text is returned as it becomes complete: the incremental decoder never splits a
/// character, and the stop-string matcher holds back what could still become a stop
/// string, so the returned text never contains one. An EOS id ends generation and is not
/// text.
public struct TextSequence {
    /// What one token did.
    public struct Step: Sendable {
        public var token: Int32
        /// Text completed by this token (often empty: part of a character or of a
        /// possible stop string is held back).
        public var text: String
        /// Why generation ends with this token, if it does.
        public var ending: StopReason?
        /// Whether the token must be run through the model: always, except when the context
        /// is full (there is no room for it). A caller that feeds it keeps the KV cache equal
        /// to everything the sequence has seen, which a chat's next turn builds on.
        public var feed: Bool { ending != .contextFull }
    }

    public private(set) var generated: [Int32] = []
    /// Everything returned as text so far (`Step.text` and `finish()`).
    public private(set) var text = ""
    public private(set) var reason: StopReason?
    private var stop: StopConditions
    private var sampler: Sampler
    private var matcher: StopStringMatcher
    private var decoder: IncrementalDecoder?
    private var seen: [Int32]

    /// `seen` is every id the model has been given for this sequence (earlier chat turns
    /// and the prompt: the repetition penalty reads them, and the context limit counts
    /// them); `stream` separates the sequences of a batch sampled from one seed. Throws
    /// before any work when the settings or the prompt's length leave nothing to generate.
    public init(config: GenerationConfig, seed: UInt64, stream: Int = 0, seen: [Int32], contextLength: Int,
                ignoreEOS: Bool = false, tokenizer: Tokenizer?) throws {
        stop = try StopConditions(config: config, promptLength: seen.count, contextLength: contextLength, ignoreEOS: ignoreEOS)
        sampler = Sampler(config: config, seed: seed, stream: stream)
        matcher = try StopStringMatcher(stops: config.stopStrings)
        decoder = tokenizer.map { IncrementalDecoder(tokenizer: $0, skipSpecialTokens: true) }
        self.seen = seen
    }

    public var isFinished: Bool { reason != nil }

    /// Samples the token that follows `logits`; call only while not finished.
    public mutating func next(logits: [Float]) throws -> Step {
        precondition(reason == nil, "TextSequence.next after the sequence finished")
        let token = try sampler.next(logits: logits, history: seen)
        generated.append(token)
        seen.append(token)
        var ending = stop.append(token)
        var out = ""
        if case .eos? = ending {
            // The end-of-sequence token is not text.
        } else if let chunk = decoder?.push(token) {
            let (emit, stopped) = matcher.push(chunk)
            out = emit
            if stopped { ending = .stopString(matcher.matched ?? "") }
        }
        if let ending {
            reason = ending
            // Held-back text is complete now, unless a stop string ended it (then what the
            // matcher holds is the stop string itself).
            if case .stopString = ending {} else {
                if let rest = decoder?.flush() { out += matcher.push(rest).emit }
                out += matcher.flush()
            }
        }
        text += out
        return Step(token: token, text: out, ending: ending)
    }
}
