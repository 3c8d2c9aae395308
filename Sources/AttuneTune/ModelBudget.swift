import Foundation

/// An end-to-end error budget for `attune tune MODEL`, measured on the user's data
/// against the dense (flash) compile of the same model: what a user can relate to output
/// quality, unlike the per-layer rel-L1 that stays the fast inner criterion.
public enum ModelBudget: Equatable, Sendable, CustomStringConvertible {
    /// Mean over positions of KL(dense ‖ tuned) in nats (llama.cpp's KL divergence).
    case kl(Double)
    /// Perplexity of the tuned compile at most (1 + x) times the dense one's, on the data.
    case perplexity(relativeIncrease: Double)
    /// Share of positions whose most likely token agrees with the dense compile's, at least.
    case top1(Double)

    /// `kl=0.01`, `ppl=+1%` (or `ppl=0.01`), `top1=0.99`; nil for `rel_l1=` (the per-layer budget).
    public static func parse(_ text: String) throws -> ModelBudget? {
        let parts = text.split(separator: "=", maxSplits: 1).map(String.init)
        guard parts.count == 2 else { throw TuneError("--error-budget expects NAME=VALUE (rel_l1, kl, ppl, top1), got '\(text)'") }
        let (name, raw) = (parts[0], parts[1])
        var value = raw.hasPrefix("+") ? String(raw.dropFirst()) : raw
        let percent = value.hasSuffix("%")
        if percent { value.removeLast() }
        guard var number = Double(value), number.isFinite else { throw TuneError("--error-budget \(name): '\(raw)' is not a number") }
        if percent { number /= 100 }
        switch name {
        case "rel_l1":
            guard number > 0, !percent else { throw TuneError("--error-budget rel_l1 must be > 0, got '\(raw)'") }
            return nil
        case "kl":
            guard number >= 0, !percent else { throw TuneError("--error-budget kl must be >= 0 (nats), got '\(raw)'") }
            return .kl(number)
        case "ppl":
            guard number >= 0 else { throw TuneError("--error-budget ppl must be an increase >= 0 such as +1%, got '\(raw)'") }
            return .perplexity(relativeIncrease: number)
        case "top1":
            guard (0...1).contains(number) else { throw TuneError("--error-budget top1 must be in 0...1 (or a percentage), got '\(raw)'") }
            return .top1(number)
        default:
            throw TuneError("--error-budget: unknown measure '\(name)' (rel_l1, kl, ppl, top1)")
        }
    }

    public var description: String {
        switch self {
        case .kl(let x): return "kl=\(x)"
        case .perplexity(let x): return "ppl=+\(x * 100)%"
        case .top1(let x): return "top1=\(x)"
        }
    }

    /// How much of this budget `m` uses: 0 for no error, 1 at the limit, above 1 over it.
    /// The per-group weight search orders groups by it (GroupSearch.swift).
    public func share(of m: ModelQuality) -> Double {
        func ratio(_ used: Double, _ limit: Double) -> Double { used <= 0 ? 0 : (limit > 0 ? used / limit : .infinity) }
        switch self {
        case .kl(let x): return ratio(m.meanKL, x)
        case .perplexity(let x): return ratio(m.perplexityRatio - 1, x)
        case .top1(let x): return ratio(1 - m.top1Agreement, 1 - x)
        }
    }

    /// Whether `m` is within this budget.
    public func holds(_ m: ModelQuality) -> Bool {
        switch self {
        case .kl(let x): return m.meanKL <= x
        case .perplexity(let x): return m.perplexityRatio <= 1 + x
        case .top1(let x): return m.top1Agreement >= x
        }
    }
}

/// The tuned compile against the dense one on the data, end to end.
public struct ModelQuality: Sendable, Equatable {
    public var meanKL: Double
    public var maxKL: Double
    public var top1Agreement: Double
    public var maxAbs: Double
    /// exp(mean NLL tuned − mean NLL dense) over the data's next-token predictions.
    public var perplexityRatio: Double
    public var positions: Int
}
