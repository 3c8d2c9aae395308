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
    private var drawIDs: [Int32] = []
    private var drawWeights: [Double] = []

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
        // One pass for the weights, one for the draw (the ids and weights are reused buffers).
        let top = Double(filter.maxScore())
        var ids: [Int32] = [], weights: [Double] = []
        swap(&ids, &drawIDs)  // take the buffers without a copy
        swap(&weights, &drawWeights)
        ids.removeAll(keepingCapacity: true)
        weights.removeAll(keepingCapacity: true)
        var total = 0.0
        filter.forEachAllowed { i in
            let w = exp(Double(scores[i]) - top)
            ids.append(Int32(i))
            weights.append(w)
            total += w
        }
        defer { (drawIDs, drawWeights) = (ids, weights) }
        let u = random.nextUnitInterval() * total
        var cumulative = 0.0
        for (j, w) in weights.enumerated() {
            cumulative += w
            if cumulative > u { return ids[j] }
        }
        // Rounding left u at the total: the last token with any weight (the top one has 1).
        return ids[weights.lastIndex { $0 > 0 }!]
    }

    /// The scores transformers' logits processors would output for this row: -inf for every
    /// token a filter removed. For tests and diagnostics; consumes no random numbers.
    public mutating func processedLogits(_ logits: [Float], history: [Int32]) throws -> [Float] {
        try filter.run(logits: logits, history: history)
        return filter.maskedScores
    }
}
