// Error metrics for comparing a kernel's output against the float64
// reference. Depends on Foundation only.

import Foundation

/// Element-wise comparison of `actual` (kernel output) with `expected`
/// (reference), all arithmetic in Double.
///
/// Per-position rules:
/// - both sides NaN-free and finite: contributes to every numeric metric;
/// - both sides the same infinity (e.g. LSE = -inf on both): zero error,
///   not counted as non-finite, excluded from `relL1`/`cosine` sums;
/// - one side ±Inf and the other anything else (not NaN): `maxAbs` becomes
///   +Inf, counted in `nonFinite`, excluded from `relL1`/`cosine` sums;
/// - NaN on either side: counted in `nanCount` (and `nanMismatch` when only
///   one side is NaN) and in `nonFinite`; excluded from all numeric metrics.
///
/// **A harness must fail when `hasNaN` is true** (NaN on either side, even
/// NaN on both, is a failure), and also when `nonFinite > 0` or
/// `sizeMismatch`. `passes(maxAbs:)` applies all of these rules.
public struct ErrorMetrics: Sendable, Equatable, CustomStringConvertible {
    /// Max |actual - expected| over compared positions (0 if none).
    public var maxAbs: Double
    /// Σ|a - b| / Σ|b| over finite positions; 0 when both are all zero,
    /// +Inf when only `expected` is all zero.
    public var relL1: Double
    /// Cosine similarity over finite positions; 1 when both are all zero,
    /// 0 when exactly one side is all zero.
    public var cosine: Double
    /// Positions where exactly one side is NaN.
    public var nanMismatch: Int
    /// Positions where at least one side is NaN. `hasNaN` is `nanCount > 0`.
    public var nanCount: Int
    /// Positions where either side is NaN or ±Inf, except positions where
    /// both sides are the same infinity (those are a correct match).
    public var nonFinite: Int
    /// Number of positions compared (`min(actual.count, expected.count)`).
    public var count: Int
    /// True when the two arrays have different lengths (only the common
    /// prefix was compared). A harness must fail in that case.
    public var sizeMismatch: Bool

    public init(maxAbs: Double, relL1: Double, cosine: Double, nanMismatch: Int,
                nanCount: Int, nonFinite: Int, count: Int, sizeMismatch: Bool) {
        self.maxAbs = maxAbs
        self.relL1 = relL1
        self.cosine = cosine
        self.nanMismatch = nanMismatch
        self.nanCount = nanCount
        self.nonFinite = nonFinite
        self.count = count
        self.sizeMismatch = sizeMismatch
    }

    /// True when NaN appears on either side at any position.
    /// **A test harness must fail when this is true.**
    public var hasNaN: Bool { nanCount > 0 }

    /// The full pass rule: no NaN, no unmatched non-finite value, equal
    /// lengths, and `maxAbs <= tolerance`.
    public func passes(maxAbs tolerance: Double) -> Bool {
        !hasNaN && nonFinite == 0 && !sizeMismatch && maxAbs <= tolerance
    }

    public var description: String {
        func f(_ x: Double) -> String { String(format: "%.3e", x) }
        var s = "maxAbs=\(f(maxAbs)) relL1=\(f(relL1)) cosine=\(String(format: "%.9f", cosine))"
        s += " nan=\(nanCount) nanMismatch=\(nanMismatch) nonFinite=\(nonFinite) n=\(count)"
        if sizeMismatch { s += " SIZE-MISMATCH" }
        return s
    }

    /// Compares fp32 kernel output with the float64 reference.
    public static func compare(_ actual: [Float], _ expected: [Double]) -> ErrorMetrics {
        actual.withUnsafeBufferPointer { a in
            expected.withUnsafeBufferPointer { e in
                compute(count: min(a.count, e.count), sizeMismatch: a.count != e.count,
                        actual: { Double(a[$0]) }, expected: { e[$0] })
            }
        }
    }

    /// Compares two float64 arrays.
    public static func compare(_ actual: [Double], _ expected: [Double]) -> ErrorMetrics {
        actual.withUnsafeBufferPointer { a in
            expected.withUnsafeBufferPointer { e in
                compute(count: min(a.count, e.count), sizeMismatch: a.count != e.count,
                        actual: { a[$0] }, expected: { e[$0] })
            }
        }
    }

    private static func compute(count n: Int, sizeMismatch: Bool,
                                actual: (Int) -> Double, expected: (Int) -> Double) -> ErrorMetrics {
        var maxAbs = 0.0
        var sumAbsDiff = 0.0, sumAbsB = 0.0, sumAbsA = 0.0
        var dot = 0.0, normA = 0.0, normB = 0.0
        var nanMismatch = 0, nanCount = 0, nonFinite = 0
        var i = 0
        while i < n {
            let a = actual(i), b = expected(i)
            i += 1
            if a.isNaN || b.isNaN {
                nanCount += 1
                if a.isNaN != b.isNaN { nanMismatch += 1 }
                nonFinite += 1
                continue
            }
            if !a.isFinite || !b.isFinite {
                if a == b { continue }           // same infinity: exact match
                nonFinite += 1
                maxAbs = .infinity
                continue
            }
            let diff = abs(a - b)
            if diff > maxAbs { maxAbs = diff }
            sumAbsDiff += diff
            sumAbsA += abs(a)
            sumAbsB += abs(b)
            dot += a * b
            normA += a * a
            normB += b * b
        }
        let relL1: Double
        if sumAbsB > 0 {
            relL1 = sumAbsDiff / sumAbsB
        } else {
            relL1 = sumAbsA == 0 ? 0 : .infinity
        }
        let cosine: Double
        if normA == 0 && normB == 0 {
            cosine = 1
        } else if normA == 0 || normB == 0 {
            cosine = 0
        } else {
            cosine = min(1, max(-1, dot / (normA.squareRoot() * normB.squareRoot())))
        }
        return ErrorMetrics(maxAbs: maxAbs, relL1: relL1, cosine: cosine, nanMismatch: nanMismatch,
                            nanCount: nanCount, nonFinite: nonFinite, count: n, sizeMismatch: sizeMismatch)
    }
}
