import Foundation

/// One prompt's generation, independent of how logits are computed: the caller gives the
/// prefill (prompt → last position's logits) and the decode step (token → its logits), this
/// samples, stops and streams text.
///
/// Every generated token is fed back through `step` (the KV cache then holds the whole
/// conversation, which chat needs), except when the context is full. Text is streamed
/// through `emit` as it becomes complete: the incremental decoder never splits a character,
/// and the stop-string matcher holds back what could still become a stop string, so the
/// printed text never contains one. An EOS id ends generation and is not printed.
public struct TextGeneration {
    public struct Result: Sendable {
        public var generated: [Int32]
        /// Everything `emit` received.
        public var text: String
        public var reason: StopReason
        public var prefillSeconds: Double
        /// Time from the start to the first generated token (prefill plus one sampling).
        public var firstTokenSeconds: Double
        /// Decode steps run, and their total time.
        public var decodeSteps: Int
        public var decodeSeconds: Double
    }

    public var config: GenerationConfig
    public var seed: UInt64
    /// The most positions the model holds (prompt plus generated).
    public var contextLength: Int
    public var ignoreEOS: Bool

    public init(config: GenerationConfig, seed: UInt64, contextLength: Int, ignoreEOS: Bool = false) {
        self.config = config
        self.seed = seed
        self.contextLength = contextLength
        self.ignoreEOS = ignoreEOS
    }

    /// Runs one prompt. `history` is what the model has already seen before `prompt` (a
    /// chat's earlier turns, for the repetition penalty); `stream` separates the sequences
    /// of a batch sampled from one seed.
    public func run(prompt: [Int32], history: [Int32] = [], tokenizer: Tokenizer?, stream: Int = 0,
                    prefill: ([Int32]) throws -> [Float], step: (Int32) throws -> [Float],
                    emit: (String) -> Void) throws -> Result {
        var stop = try StopConditions(config: config, promptLength: history.count + prompt.count,
                                      contextLength: contextLength, ignoreEOS: ignoreEOS)
        var sampler = Sampler(config: config, seed: seed, stream: stream)
        var matcher = try StopStringMatcher(stops: config.stopStrings)
        var decoder = tokenizer.map { IncrementalDecoder(tokenizer: $0, skipSpecialTokens: true) }
        var text = ""
        func send(_ chunk: String) {
            guard !chunk.isEmpty else { return }
            text += chunk
            emit(chunk)
        }

        let start = Date()
        var logits = try prefill(prompt)
        let prefillSeconds = Date().timeIntervalSince(start)
        var seen = history + prompt
        var generated: [Int32] = []
        var firstToken = 0.0
        var steps = 0, decodeSeconds = 0.0
        var reason: StopReason
        while true {
            let next = try sampler.next(logits: logits, history: seen)
            if generated.isEmpty { firstToken = Date().timeIntervalSince(start) }
            generated.append(next)
            seen.append(next)
            var ending = stop.append(next)
            if case .eos? = ending {
                // The end-of-sequence token is not text.
            } else if let chunk = decoder?.push(next) {
                let (out, stopped) = matcher.push(chunk)
                send(out)
                if stopped { ending = .stopString(matcher.matched ?? "") }
            }
            if ending != .contextFull {
                let t = Date()
                logits = try step(next)
                decodeSeconds += Date().timeIntervalSince(t)
                steps += 1
            }
            if let ending {
                reason = ending
                break
            }
        }
        if case .stopString = reason {} else {
            if let rest = decoder?.flush() { send(matcher.push(rest).emit) }
            send(matcher.flush())
        }
        return Result(generated: generated, text: text, reason: reason, prefillSeconds: prefillSeconds,
                      firstTokenSeconds: firstToken, decodeSteps: steps, decodeSeconds: decodeSeconds)
    }
}
