import Foundation

/// Perplexity of a compiled model over a token sequence, and — given a second compile of
/// the same model (another kernel policy, weight or KV format) — what the second costs in
/// quality: per-token KL divergence from the first, top-1 agreement and Δperplexity, in one
/// pass over the text (llama.cpp's `--kl-divergence` is the reference point).
///
/// Windowing follows transformers' perplexity guide (sliding window with a stride): window
/// w covers tokens [w·stride, w·stride + context), and scores the tokens no earlier window
/// scored, each predicted from the tokens before it in the window. A token at position 0 of
/// the text, and of every window when stride = context, has nothing before it and is not
/// scored. Each window runs from an empty KV cache.
public enum Perplexity {
    /// One window: tokens [start, end) run through the model; positions [firstTarget, end)
    /// are scored.
    public struct Window: Equatable, Sendable {
        public var start: Int
        public var end: Int
        public var firstTarget: Int
    }

    public static func windows(tokens: Int, context: Int, stride: Int) -> [Window] {
        var out: [Window] = []
        var previousEnd = 0
        var start = 0
        while start < tokens {
            let end = min(start + context, tokens)
            out.append(Window(start: start, end: end, firstTarget: max(start + 1, previousEnd)))
            previousEnd = end
            if end == tokens { break }
            start += stride
        }
        return out
    }

    public struct Report: Sendable {
        /// Tokens scored.
        public var tokens = 0
        public var nll = 0.0
        public var perplexity: Double { exp(nll / Double(max(tokens, 1))) }
        /// With a comparison: the second compile's NLL, KL(first ‖ second) per token, and how
        /// often both pick the same most likely token.
        public var compareNLL = 0.0
        public var kl: [Double] = []
        public var top1Agreements = 0
        public var comparePerplexity: Double { exp(compareNLL / Double(max(tokens, 1))) }
        public var seconds = 0.0
    }

    /// Scores `tokens` with `model` (and `compare`, run on the same windows). `chunk` bounds
    /// the rows of logits held at once (rows × vocab floats). `progress(scored, total)`.
    public static func run(_ model: CompiledModel, compare: CompiledModel? = nil, tokens: [Int32], context: Int, stride: Int,
                           chunk: Int = 128, progress: ((Int, Int) -> Void)? = nil) throws -> Report {
        guard tokens.count >= 2 else { throw RuntimeError("perplexity needs at least 2 tokens, got \(tokens.count)") }
        guard context >= 2 else { throw RuntimeError("--context must be >= 2, got \(context)") }
        guard stride >= 1, stride <= context else { throw RuntimeError("--stride must be in 1...\(context) (the context), got \(stride)") }
        guard context <= model.maxContext else {
            throw RuntimeError("--context \(context) exceeds the compiled context of \(model.maxContext) positions (see --max-context)")
        }
        if let compare, compare.vocab != model.vocab {
            throw RuntimeError("the compared compile has a vocabulary of \(compare.vocab), the model \(model.vocab)")
        }
        let windows = windows(tokens: tokens.count, context: context, stride: stride)
        let total = windows.reduce(0) { $0 + $1.end - $1.firstTarget }
        var report = Report()
        let started = Date()
        for w in windows {
            model.reset()
            compare?.reset()
            var at = w.start
            while at < w.end - 1 {
                // Rows at..<upper predict tokens at+1...upper; only targets are scored.
                let upper = min(at + chunk, w.end - 1)
                let ids = Array(tokens[at..<upper])
                let logits = try model.prefill(ids)
                let other = try compare?.prefill(ids)
                for row in 0..<(upper - at) where at + row + 1 >= w.firstTarget {
                    let target = Int(tokens[at + row + 1])
                    let base = LogSoftmaxRow(logits, row: row, vocab: model.vocab)
                    report.nll -= base.logProbability(target)
                    report.tokens += 1
                    if let other {
                        let cmp = LogSoftmaxRow(other, row: row, vocab: model.vocab)
                        report.compareNLL -= cmp.logProbability(target)
                        report.kl.append(base.kl(to: cmp))
                        if base.argmax == cmp.argmax { report.top1Agreements += 1 }
                    }
                }
                at = upper
                progress?(report.tokens, total)
            }
        }
        report.seconds = Date().timeIntervalSince(started)
        return report
    }
}

/// One row of logits as log-probabilities, computed in Double (perplexity, and the model
/// tuner's perplexity budget).
public struct LogSoftmaxRow {
    let logits: ArraySlice<Float>
    let logSum: Double
    public let argmax: Int

    public init(_ all: [Float], row: Int, vocab: Int) {
        logits = all[row * vocab..<(row + 1) * vocab]
        var top = -Double.infinity, best = 0
        for (i, v) in logits.enumerated() where Double(v) > top { top = Double(v); best = i }
        var sum = 0.0
        for v in logits { sum += exp(Double(v) - top) }
        logSum = top + log(sum)
        argmax = best
    }

    public func logProbability(_ id: Int) -> Double { Double(logits[logits.startIndex + id]) - logSum }

    /// KL(self ‖ other) = Σ p (log p − log q).
    func kl(to other: LogSoftmaxRow) -> Double {
        var total = 0.0
        for (a, b) in zip(logits, other.logits) {
            let lp = Double(a) - logSum
            total += exp(lp) * (lp - (Double(b) - other.logSum))
        }
        return max(0, total)
    }
}
