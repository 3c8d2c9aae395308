import Foundation

/// The inverse frequencies a `rope` or `qkv_rope` rotates by, and the factor that scales
/// its cos and sin, as transformers' rotary embeddings compute them:
/// `cos = cos(position · invFreq[i]) · attentionScaling` (same for sin), i < rotaryDim/2.
///
/// Static variants (plain, linear, YaRN, Llama 3) are a fixed table computed at import;
/// the length-dependent ones carry what is needed to pick or recompute the table from
/// the total length L = max(position) + 1 of each forward pass (transformers'
/// `dynamic_rope_update`: `seq_len = max(position_ids) + 1`).
public struct RopeFrequencies: Sendable, Hashable {
    public enum Source: Sendable, Hashable {
        /// `invFreq[i] = 1 / theta^(2i/rotaryDim)` (plain RoPE).
        case theta(Double)
        /// A fixed table of rotaryDim/2 inverse frequencies.
        case table([Double])
        /// LongRoPE: `short` while L ≤ `originalLength`, else `long`.
        case longrope(short: [Double], long: [Double], originalLength: Int)
        /// Dynamic NTK: plain RoPE with base
        /// `theta · (factor · L'/originalLength − (factor − 1))^(d/(d−2))`, L' = max(L, originalLength), d = rotaryDim.
        case dynamicNTK(theta: Double, factor: Double, originalLength: Int)
    }

    public var source: Source
    public var attentionScaling: Double

    public init(_ source: Source, attentionScaling: Double = 1) {
        self.source = source
        self.attentionScaling = attentionScaling
    }

    /// Plain RoPE with base `theta`.
    public static func theta(_ theta: Double) -> RopeFrequencies { RopeFrequencies(.theta(theta)) }

    /// True when the table depends on the forward pass's total length.
    public var dependsOnLength: Bool {
        switch source {
        case .theta, .table: return false
        case .longrope, .dynamicNTK: return true
        }
    }

    /// The rotaryDim/2 inverse frequencies for a forward pass whose positions end at
    /// `totalLength - 1`.
    public func inverseFrequencies(rotaryDim: Int, totalLength: Int) -> [Double] {
        switch source {
        case .theta(let theta):
            return Self.plain(base: theta, rotaryDim: rotaryDim)
        case .table(let table):
            return table
        case .longrope(let short, let long, let originalLength):
            return totalLength > originalLength ? long : short
        case .dynamicNTK(let theta, let factor, let originalLength):
            let length = Double(max(totalLength, originalLength)), d = Double(rotaryDim)
            let base = theta * Foundation.pow(factor * length / Double(originalLength) - (factor - 1), d / (d - 2))
            return Self.plain(base: base, rotaryDim: rotaryDim)
        }
    }

    /// `1 / base^(2i/rotaryDim)`, the order of operations of transformers' `inv_freq`.
    public static func plain(base: Double, rotaryDim: Int) -> [Double] {
        (0..<rotaryDim / 2).map { i in 1 / Foundation.pow(base, Double(2 * i) / Double(rotaryDim)) }
    }

    /// Checks the frequencies fit `rotaryDim`; the error names what is wrong.
    public func check(rotaryDim: Int) throws {
        let half = rotaryDim / 2
        func table(_ t: [Double], _ what: String) throws {
            guard t.count == half else { throw IRError("\(what) has \(t.count) entries, expected rotary_dim/2 = \(half)") }
            guard t.allSatisfy({ $0.isFinite && $0 >= 0 }) else { throw IRError("\(what) entries must be finite and >= 0") }
        }
        guard attentionScaling.isFinite, attentionScaling > 0 else {
            throw IRError("attention_scaling must be positive, got \(attentionScaling)")
        }
        switch source {
        case .theta(let theta):
            guard theta > 0, theta.isFinite else { throw IRError("theta must be positive, got \(theta)") }
        case .table(let t):
            try table(t, "inv_freq")
        case .longrope(let short, let long, let originalLength):
            try table(short, "inv_freq"); try table(long, "long_inv_freq")
            guard originalLength >= 1 else { throw IRError("original_length must be >= 1, got \(originalLength)") }
        case .dynamicNTK(let theta, let factor, let originalLength):
            guard theta > 0, theta.isFinite else { throw IRError("theta must be positive, got \(theta)") }
            guard factor > 0, factor.isFinite else { throw IRError("dynamic_factor must be positive, got \(factor)") }
            guard originalLength >= 1 else { throw IRError("original_length must be >= 1, got \(originalLength)") }
            // The base's exponent is rotary_dim / (rotary_dim - 2).
            guard rotaryDim > 2 else { throw IRError("dynamic NTK needs rotary_dim > 2, got \(rotaryDim)") }
        }
    }

    // MARK: text form

    /// The `.attn` attributes: `theta`; `inv_freq`; `inv_freq`, `long_inv_freq`,
    /// `original_length`; or `theta`, `dynamic_factor`, `original_length`; plus
    /// `attention_scaling` when not 1.
    public var attributes: [String: AttrValue] {
        func list(_ t: [Double]) -> AttrValue { .list(t.map(AttrValue.double)) }
        var d: [String: AttrValue]
        switch source {
        case .theta(let theta): d = ["theta": .double(theta)]
        case .table(let t): d = ["inv_freq": list(t)]
        case .longrope(let short, let long, let n):
            d = ["inv_freq": list(short), "long_inv_freq": list(long), "original_length": .int(n)]
        case .dynamicNTK(let theta, let factor, let n):
            d = ["theta": .double(theta), "dynamic_factor": .double(factor), "original_length": .int(n)]
        }
        if attentionScaling != 1 { d["attention_scaling"] = .double(attentionScaling) }
        return d
    }

    /// Builds the frequencies from the attributes `attributes` prints (already read).
    static func make(theta: Double?, invFreq: [Double]?, longInvFreq: [Double]?, dynamicFactor: Double?,
                     originalLength: Int?, attentionScaling: Double?, op: String) throws -> RopeFrequencies {
        let source: Source
        switch (theta, invFreq, longInvFreq, dynamicFactor, originalLength) {
        case (let t?, nil, nil, nil, nil): source = .theta(t)
        case (nil, let t?, nil, nil, nil): source = .table(t)
        case (nil, let s?, let l?, nil, let n?): source = .longrope(short: s, long: l, originalLength: n)
        case (let t?, nil, nil, let f?, let n?): source = .dynamicNTK(theta: t, factor: f, originalLength: n)
        default:
            throw IRError("\(op): give theta; or inv_freq; or inv_freq, long_inv_freq and original_length; "
                          + "or theta, dynamic_factor and original_length")
        }
        return RopeFrequencies(source, attentionScaling: attentionScaling ?? 1)
    }
}
