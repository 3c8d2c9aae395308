import AttuneIR
import Foundation

/// The rotary embedding a `config.json` asks for, read and computed the way transformers
/// does (`modeling_rope_utils.py`, `ROPE_INIT_FUNCTIONS` and `dynamic_rope_update`).
///
/// Spellings: transformers 5's `rope_parameters`, or the published `rope_theta` +
/// `rope_scaling` (type under `rope_type` or the legacy `type`). As in transformers'
/// `convert_rope_params_to_dict`, a non-empty `rope_scaling` wins over
/// `rope_parameters`, the object's own `rope_theta` and `partial_rotary_factor` win over
/// the top-level keys, and `original_max_position_embeddings` defaults to
/// `max_position_embeddings`.
///
/// Frequencies are computed in Double with transformers' formulas and order of
/// operations; transformers computes the same in float32 (see Docs/COMPILER.md, RoPE).
public struct RopeScaling: Sendable, Equatable {
    public enum Kind: Sendable, Equatable {
        /// Plain RoPE (`default`).
        case plain
        /// `inv_freq / factor` (`_compute_linear_scaling_rope_parameters`).
        case linear(factor: Double)
        /// NTK base recomputed from the length of each forward pass
        /// (`_compute_dynamic_ntk_parameters`), switching at `max_position_embeddings`.
        case dynamic(factor: Double)
        /// `_compute_yarn_parameters`; `factor` nil means max / original positions.
        case yarn(factor: Double?, originalMaxPositions: Int, attentionFactor: Double?, betaFast: Double,
                  betaSlow: Double, mscale: Double?, mscaleAllDim: Double?, truncate: Bool)
        /// `_compute_longrope_parameters`: short factors up to `originalMaxPositions`, then long.
        case longrope(shortFactor: [Double], longFactor: [Double], factor: Double?, originalMaxPositions: Int,
                      attentionFactor: Double?)
        /// `_compute_llama3_parameters`.
        case llama3(factor: Double, lowFreqFactor: Double, highFreqFactor: Double, originalMaxPositions: Int)
    }

    /// The `rope_type` names accepted, in transformers' spelling.
    public static let types = ["default", "linear", "dynamic", "yarn", "longrope", "llama3"]

    public let kind: Kind
    public let theta: Double
    /// Channels rotated per head: `int(head_dim * partial_rotary_factor)` where the
    /// architecture applies that factor, else the head dim.
    public let rotaryDim: Int
    public let maxPositionEmbeddings: Int

    public init(kind: Kind, theta: Double, rotaryDim: Int, maxPositionEmbeddings: Int) {
        self.kind = kind
        self.theta = theta
        self.rotaryDim = rotaryDim
        self.maxPositionEmbeddings = maxPositionEmbeddings
    }

    /// What the IR's rope ops rotate by.
    public var frequencies: RopeFrequencies {
        let d = rotaryDim, plain = RopeFrequencies.plain(base: theta, rotaryDim: d)
        switch kind {
        case .plain:
            return .theta(theta)
        case .linear(let factor):
            return RopeFrequencies(.table(plain.map { $0 / factor }))
        case .dynamic(let factor):
            return RopeFrequencies(.dynamicNTK(theta: theta, factor: factor, originalLength: maxPositionEmbeddings))
        case .yarn(let factor, let original, let attentionFactor, let betaFast, let betaSlow, let mscale, let mscaleAllDim, let truncate):
            return Self.yarn(plainBase: theta, d: d, factor: factor ?? Double(maxPositionEmbeddings) / Double(original),
                             original: original, attentionFactor: attentionFactor, betaFast: betaFast, betaSlow: betaSlow,
                             mscale: mscale, mscaleAllDim: mscaleAllDim, truncate: truncate)
        case .longrope(let short, let long, let factor, let original, let attentionFactor):
            let f = factor ?? Double(maxPositionEmbeddings) / Double(original)
            let scaling = attentionFactor ?? (f <= 1 ? 1 : (1 + Foundation.log(f) / Foundation.log(Double(original))).squareRoot())
            // 1 / (ext_factor * base^(2i/d)), as transformers writes it.
            let shape = (0..<d / 2).map { i in Foundation.pow(theta, Double(2 * i) / Double(d)) }
            return RopeFrequencies(.longrope(short: zip(short, shape).map { 1 / ($0 * $1) },
                                             long: zip(long, shape).map { 1 / ($0 * $1) }, originalLength: original),
                                   attentionScaling: scaling)
        case .llama3(let factor, let low, let high, let original):
            let lowWavelength = Double(original) / low, highWavelength = Double(original) / high
            return RopeFrequencies(.table(plain.map { f in
                let wavelength = 2 * Double.pi / f
                let scaled = wavelength > lowWavelength ? f / factor : f
                guard !(wavelength < highWavelength) && !(wavelength > lowWavelength) else { return scaled }
                let smooth = (Double(original) / wavelength - low) / (high - low)
                return (1 - smooth) * scaled / factor + smooth * scaled
            }))
        }
    }

    private static func yarn(plainBase base: Double, d: Int, factor: Double, original: Int, attentionFactor: Double?,
                             betaFast: Double, betaSlow: Double, mscale: Double?, mscaleAllDim: Double?,
                             truncate: Bool) -> RopeFrequencies {
        func getMscale(_ scale: Double, _ m: Double = 1) -> Double { scale <= 1 ? 1 : 0.1 * m * Foundation.log(scale) + 1 }
        var scaling = getMscale(factor)
        if let attentionFactor {
            scaling = attentionFactor
        } else if let mscale, let mscaleAllDim, mscale != 0, mscaleAllDim != 0 {
            scaling = getMscale(factor, mscale) / getMscale(factor, mscaleAllDim)
        }
        let dim = Double(d)
        func correctionDim(_ rotations: Double) -> Double {
            dim * Foundation.log(Double(original) / (rotations * 2 * Double.pi)) / (2 * Foundation.log(base))
        }
        var low = correctionDim(betaFast), high = correctionDim(betaSlow)
        if truncate { low = low.rounded(.down); high = high.rounded(.up) }
        low = max(low, 0)
        high = min(high, dim - 1)
        if low == high { high += 0.001 }  // transformers' guard against a zero-width ramp
        let table = (0..<d / 2).map { i -> Double in
            let posFreq = Foundation.pow(base, Double(2 * i) / dim)
            let extrapolation = 1 / posFreq, interpolation = 1 / (factor * posFreq)
            let ramp = min(max((Double(i) - low) / (high - low), 0), 1)
            let extrapolationFactor = 1 - ramp
            return interpolation * (1 - extrapolationFactor) + extrapolation * extrapolationFactor
        }
        return RopeFrequencies(.table(table), attentionScaling: scaling)
    }
}

extension RopeScaling {
    /// Reads the RoPE keys of a config whose head dim and `max_position_embeddings` are
    /// already known. `appliesPartialRotary`: the architecture's attention rotates only
    /// the first `int(head_dim * partial_rotary_factor)` channels (Llama, Qwen2 and
    /// Mistral rotate whole heads: their plain RoPE ignores the factor and their scaled
    /// types fail on it in transformers, so Attune refuses that combination).
    /// `topLevelOriginal`: the architecture's config declares `original_max_position_embeddings`
    /// itself (Phi-3, default 4096), and transformers' standardisation then gives that value
    /// priority over the one in the RoPE object for llama3, yarn and longrope.
    init(_ r: ConfigReader, headDim: Int, maxPositionEmbeddings: Int, appliesPartialRotary: Bool,
         topLevelOriginal: Int? = nil) throws {
        typealias Problem = ConfigReader.Problem
        func object(_ key: String) throws -> JSONObject? {
            guard let v = r[key], !v.isNull else { return nil }
            guard case .object(let o) = v else { throw Problem("\(key) is \(v.kind), expected an object or null") }
            return o
        }
        let scaling = try object("rope_scaling"), parameters = try object("rope_parameters")
        // transformers: `rope_scaling or rope_parameters` (an empty object counts as absent).
        let (key, dict): (String, JSONObject) = if let scaling, !scaling.entries.isEmpty { ("rope_scaling", scaling) }
            else if let parameters { ("rope_parameters", parameters) } else { ("rope_parameters", JSONObject()) }
        let p = ConfigReader(dict)

        let type: String
        switch dict["rope_type"] ?? dict["type"] {
        case .string(let s)?: type = s
        case nil, .null?: type = "default"
        case let other?: throw Problem("\(key) type is \(other.kind), expected a string")
        }
        guard Self.types.contains(type) else {
            throw Problem("\(key) of type \(quoted(type)) is not supported (supported: \(Self.types.joined(separator: ", ")))")
        }
        func problem(_ what: String) -> Problem { Problem("\(key) of type \(quoted(type)): \(what)") }
        func required(_ k: String) throws -> Double {
            guard p.has(k) else { throw problem("missing key \(quoted(k))") }
            return try positive(k)!
        }
        func positive(_ k: String) throws -> Double? {
            do { return try p.positiveDouble(k) } catch let e as Problem { throw problem(e.reason) }
        }
        func original() throws -> Int {
            if let topLevelOriginal { return topLevelOriginal }
            do { return try p.size("original_max_position_embeddings", default: maxPositionEmbeddings) } catch let e as Problem {
                throw problem(e.reason)
            }
        }

        let top = try r.positiveDouble("rope_theta")
        let nested: Double?
        do { nested = try p.positiveDouble("rope_theta") } catch let e as Problem { throw Problem("\(key).\(e.reason)") }
        if let top, let nested, top != nested {
            throw Problem("rope_theta \(top) and \(key).rope_theta \(nested) disagree")
        }
        theta = nested ?? top ?? 10000
        self.maxPositionEmbeddings = maxPositionEmbeddings

        let partial: Double, rotary: Int
        partial = try p.positiveDouble("partial_rotary_factor") ?? r.positiveDouble("partial_rotary_factor") ?? 1
        guard partial <= 1 else { throw Problem("partial_rotary_factor is \(partial), expected a number in (0, 1]") }
        if appliesPartialRotary {
            // Python's int(): truncation toward zero.
            rotary = Int(Double(headDim) * partial)
            guard rotary >= 2, rotary % 2 == 0 else {
                throw Problem("partial_rotary_factor \(partial) gives rotary dim \(rotary) for head_dim \(headDim); it must be even and >= 2")
            }
        } else {
            if partial != 1 && type != "default" {
                throw problem("partial_rotary_factor \(partial) is not supported: this architecture rotates whole heads "
                              + "(transformers ignores the factor for plain RoPE and fails with scaled types)")
            }
            rotary = headDim
        }

        let k: Kind
        switch type {
        case "default":
            k = .plain
        case "linear":
            k = .linear(factor: try required("factor"))
        case "dynamic":
            k = .dynamic(factor: try required("factor"))
            guard rotary > 2 else { throw problem("needs a rotary dim > 2, got \(rotary)") }
        case "yarn":
            // The key must be there (transformers' validation), but null means max / original positions.
            guard dict["factor"] != nil else { throw problem("missing key 'factor'") }
            let truncate: Bool
            switch dict["truncate"] {
            case nil: truncate = true
            case .null?: truncate = false  // `rope_parameters.get("truncate", True)` is None: falsy
            case .bool(let b)?: truncate = b
            case let other?: throw problem("truncate must be true or false, found \(other.kind)")
            }
            // `get("beta_fast") or 32`: absent, null and 0 all mean the default.
            let betaFast = try p.finiteDouble("beta_fast").flatMap { $0 == 0 ? nil : $0 } ?? 32
            let betaSlow = try p.finiteDouble("beta_slow").flatMap { $0 == 0 ? nil : $0 } ?? 1
            k = .yarn(factor: try positive("factor"), originalMaxPositions: try original(),
                         attentionFactor: try positive("attention_factor"), betaFast: betaFast, betaSlow: betaSlow,
                         mscale: try p.finiteDouble("mscale"), mscaleAllDim: try p.finiteDouble("mscale_all_dim"),
                         truncate: truncate)
        case "longrope":
            func factors(_ k: String) throws -> [Double] {
                guard let v = dict[k], !v.isNull else { throw problem("missing key \(quoted(k))") }
                guard case .array(let xs) = v else { throw problem("\(k) must be an array of numbers") }
                let values: [Double] = try xs.map { x in
                    guard case .number(let n) = x, n.double.isFinite, n.double > 0 else {
                        throw problem("\(k) must hold positive numbers, found \(x.describe)")
                    }
                    return n.double
                }
                guard values.count == rotary / 2 else {
                    throw problem("\(k) has \(values.count) entries, expected rotary dim / 2 = \(rotary / 2)")
                }
                return values
            }
            k = .longrope(shortFactor: try factors("short_factor"), longFactor: try factors("long_factor"),
                             factor: try positive("factor"), originalMaxPositions: try original(),
                             attentionFactor: try positive("attention_factor"))
        case "llama3":
            let low = try required("low_freq_factor"), high = try required("high_freq_factor")
            guard low != high else { throw problem("low_freq_factor and high_freq_factor are both \(low)") }
            k = .llama3(factor: try required("factor"), lowFreqFactor: low, highFreqFactor: high,
                           originalMaxPositions: try original())
        default:
            preconditionFailure("type list and switch disagree")
        }
        kind = k
        rotaryDim = rotary
    }
}
