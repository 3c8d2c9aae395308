import Foundation

/// One prompt's generation, independent of how logits are computed: the caller gives the
/// prefill (prompt → last position's logits) and the decode step (token → its logits); a
/// `TextSequence` samples, stops and returns text, which is streamed through `emit`.
///
/// Every generated token is fed back through `step` (the KV cache then holds the whole
/// conversation, which chat needs), except when the context is full.
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
    /// chat's earlier turns, already in its KV cache); `stream` separates the sequences of a
    /// batch sampled from one seed.
    public func run(prompt: [Int32], history: [Int32] = [], tokenizer: Tokenizer?, stream: Int = 0,
                    prefill: ([Int32]) throws -> [Float], step: (Int32) throws -> [Float],
                    emit: (String) -> Void) throws -> Result {
        var sequence = try TextSequence(config: config, seed: seed, stream: stream, seen: history + prompt,
                                        contextLength: contextLength, ignoreEOS: ignoreEOS, tokenizer: tokenizer)
        let start = Date()
        var logits = try prefill(prompt)
        let prefillSeconds = Date().timeIntervalSince(start)
        var firstToken = 0.0
        var steps = 0, decodeSeconds = 0.0
        while !sequence.isFinished {
            let next = try sequence.next(logits: logits)
            if sequence.generated.count == 1 { firstToken = Date().timeIntervalSince(start) }
            if !next.text.isEmpty { emit(next.text) }
            if next.feed {
                let t = Date()
                logits = try step(next.token)
                decodeSeconds += Date().timeIntervalSince(t)
                steps += 1
            }
        }
        return Result(generated: sequence.generated, text: sequence.text, reason: sequence.reason!, prefillSeconds: prefillSeconds,
                      firstTokenSeconds: firstToken, decodeSteps: steps, decodeSeconds: decodeSeconds)
    }
}
