import Foundation

/// Picks the next token from one row of logits, as transformers' `generate` does with the
/// same settings: the logits processors of `config.logitsSteps` in transformers' order, then
/// the most likely token (greedy) or a draw from the softmax of what is left.
///
/// Greedy picks the lowest id among equal maxima (as `torch.argmax`). A draw takes one
/// number from a `RandomStream(seed:stream:)`: the same seed and stream give the same ids.
/// Probabilities are computed in Double from Float logits (`exp(score − max)`, so no
/// overflow). Greedy steps consume no random numbers.
public struct Sampler {
    public let config: GenerationConfig
    private var filter: LogitsFilter
    private var random: RandomStream

    /// `stream` separates the sequences of a batch: sequence i uses stream i.
    public init(config: GenerationConfig, seed: UInt64, stream: Int = 0) {
        self.config = config
        self.filter = LogitsFilter(steps: config.logitsSteps)
        self.random = RandomStream(seed: seed, stream: stream)
    }

    /// The next token id. `history` is every id the model has seen for this sequence (prompt
    /// and generated); the repetition penalty reads it. Throws if `logits` is empty or holds
    /// NaN or +inf, or if every logit is -inf.
    public mutating func next(logits: [Float], history: [Int32]) throws -> Int32 {
        try filter.run(logits: logits, history: history)
        let scores = filter.scores
        if config.isGreedy {
            var best = -1
            filter.forEachAllowed { i in if best < 0 || scores[i] > scores[best] { best = i } }
            return Int32(best)
        }
        let top = Double(filter.maxScore())
        var total = 0.0
        filter.forEachAllowed { total += exp(Double(scores[$0]) - top) }
        let u = random.nextUnitInterval() * total
        var cumulative = 0.0
        var chosen = -1
        filter.forEachAllowed { i in
            guard chosen < 0 else { return }
            cumulative += exp(Double(scores[i]) - top)
            if cumulative > u { chosen = i }
        }
        if chosen < 0 {  // rounding left u at the total: the last token with any weight
            filter.forEachAllowed { i in if exp(Double(scores[i]) - top) > 0 { chosen = i } }
        }
        return Int32(chosen)
    }

    /// The scores transformers' logits processors would output for this row: -inf for every
    /// token a filter removed. For tests and diagnostics; consumes no random numbers.
    public mutating func processedLogits(_ logits: [Float], history: [Int32]) throws -> [Float] {
        try filter.run(logits: logits, history: history)
        return filter.maskedScores
    }
}
