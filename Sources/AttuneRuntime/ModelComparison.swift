import Foundation

/// How far a compiled model's logits move from a baseline compile of the same model on
/// the same tokens: what an approximate kernel costs end to end.
public struct LogitComparison: Sendable, Equatable {
    /// max |logit - baseline logit| over every position and vocabulary entry.
    public var maxAbs: Double = 0
    /// Mean over positions of KL(baseline softmax ‖ candidate softmax), natural log.
    public var meanKL: Double = 0
    /// Largest KL of a single position.
    public var maxKL: Double = 0
    /// Share of positions whose argmax agrees.
    public var top1Agreement: Double = 1
    public var positions: Int = 0

    public init() {}

    /// Rows of `vocab` logits, baseline first; computed in float64.
    public init(baseline: [Float], candidate: [Float], vocab: Int) {
        precondition(baseline.count == candidate.count && baseline.count % vocab == 0)
        positions = baseline.count / vocab
        var klSum = 0.0, agree = 0
        for r in 0..<positions {
            let a = baseline[r * vocab..<(r + 1) * vocab].map(Double.init)
            let b = candidate[r * vocab..<(r + 1) * vocab].map(Double.init)
            maxAbs = max(maxAbs, zip(a, b).map { abs($0 - $1) }.max() ?? 0)
            let la = Self.logSoftmax(a), lb = Self.logSoftmax(b)
            let kl = zip(la, lb).reduce(0.0) { $0 + exp($1.0) * ($1.0 - $1.1) }
            klSum += kl
            maxKL = max(maxKL, kl)
            if a.indices.max(by: { a[$0] < a[$1] }) == b.indices.max(by: { b[$0] < b[$1] }) { agree += 1 }
        }
        meanKL = positions > 0 ? klSum / Double(positions) : 0
        top1Agreement = positions > 0 ? Double(agree) / Double(positions) : 1
    }

    static func logSoftmax(_ x: [Double]) -> [Double] {
        let m = x.max() ?? 0
        let lse = m + log(x.reduce(0) { $0 + exp($1 - m) })
        return x.map { $0 - lse }
    }

    /// Several sequences' comparisons as one (position-weighted means, maxima of maxima).
    public static func combine(_ parts: [LogitComparison]) -> LogitComparison {
        var out = LogitComparison()
        out.positions = parts.reduce(0) { $0 + $1.positions }
        guard out.positions > 0 else { return out }
        out.maxAbs = parts.map(\.maxAbs).max() ?? 0
        out.maxKL = parts.map(\.maxKL).max() ?? 0
        out.meanKL = parts.reduce(0) { $0 + $1.meanKL * Double($1.positions) } / Double(out.positions)
        out.top1Agreement = parts.reduce(0) { $0 + $1.top1Agreement * Double($1.positions) } / Double(out.positions)
        return out
    }
}
