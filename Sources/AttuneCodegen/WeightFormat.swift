import AttuneIR
import CAttuneKernels

/// How a constant slot's elements lie in memory for the generated code. Norm weights,
/// biases and every other constant are f32; matmul weights (linear weights, embedding
/// tables) take the format `WeightPolicy` chooses, and the lowering calls the kernel of
/// that format (f32: OpenBLAS; bf16: Kernels/linear_bf16.c; int8 and q4:
/// Kernels/linear_q8.c).
public enum WeightFormat: Hashable, Sendable {
    case f32, bf16
    /// Quantised rows (Kernels/include/attune_linear_q8.h, attune_linear_q4.h), made at
    /// compile time into the compile cache (AttuneRuntime.QuantizedWeights).
    case quantized(QuantizedLayout)

    /// The name the weights manifest and the generated code's format table use: f32,
    /// bf16, or int8_g<group>_<scale type> / q4_g<group>_<scale type> (so a manifest of
    /// another width or group is refused).
    public var name: String {
        switch self {
        case .f32: return "f32"
        case .bf16: return "bf16"
        case .quantized(let layout): return layout.name
        }
    }

    /// Bytes of `elements` weights in this format (quantised: codes plus scales).
    public func bytes(elements: Int) -> Int {
        switch self {
        case .f32: return 4 * elements
        case .bf16: return 2 * elements
        case .quantized(let layout): return layout.bytes(elements: elements)
        }
    }

    /// The C element type generated code reads the slot as.
    var cType: String {
        switch self {
        case .f32: return "float"
        case .bf16: return "uint16_t"
        case .quantized: return "void"
        }
    }
}

/// `--weights int8|q4[:group=N,scale=f16|f32]`: `bits`-bit codes (8 or 4) with a scale
/// per `group` consecutive weights of a row (a multiple of 32; 32 is llama.cpp's q8_0
/// and q4_0 block), stored as f16 (default: int8 1.0625 bytes a weight, q4 0.5625) or
/// f32. The two widths share one layout and one kernel file (Kernels/linear_q8.c).
public struct QuantizedLayout: Hashable, Sendable {
    public enum Scale: String, Sendable { case f16, f32 }
    public var bits: Int
    public var group: Int
    public var scale: Scale

    public init(bits: Int, group: Int = 32, scale: Scale = .f16) {
        precondition(bits == 8 || bits == 4, "quantised weights are 8- or 4-bit")
        self.bits = bits
        self.group = group
        self.scale = scale
    }

    /// The `--weights` word: int8 or q4.
    public var formatWord: String { bits == 4 ? "q4" : "int8" }
    public var name: String { "\(formatWord)_g\(group)_\(scale.rawValue)" }
    /// The C kernels' scale code (ATTUNE_Q8_SCALE_F16 / _F32).
    public var cScale: Int32 { Int32(scale == .f16 ? ATTUNE_Q8_SCALE_F16 : ATTUNE_Q8_SCALE_F32) }
    /// The prefix of this width's C entry points (attune_q8_linear, attune_q4_linear, …)
    /// and the header declaring them.
    public var cPrefix: String { bits == 4 ? "attune_q4" : "attune_q8" }
    public var cHeader: String { bits == 4 ? "attune_linear_q4.h" : "attune_linear_q8.h" }
    var scaleBytes: Int { scale == .f16 ? 2 : 4 }

    /// Bytes of `elements` weights: bits/8 bytes each plus a scale per group.
    public func bytes(elements: Int) -> Int { elements * bits / 8 + elements / group * scaleBytes }

    /// Why rows of `width` weights cannot be stored in this layout (the kernels' rule,
    /// `attune_q8_check` / `attune_q4_check`), or nil.
    public func refusal(width: Int) -> String? {
        let reason = bits == 4 ? attune_q4_check(Int64(width), Int64(group), cScale) : attune_q8_check(Int64(width), Int64(group), cScale)
        return reason.map { String(cString: $0) }
    }

    /// Quantises `rows` rows of `width` weights (f32, or bf16/f16 as raw bits) into
    /// `dst` with this width's kernel (`attune_q8_quantize_*` / `attune_q4_quantize_*`):
    /// -1 when done, else the first row that cannot be stored, or -2 out of memory.
    public func quantize(_ source: UnsafeRawPointer, dtype: DType, rows: Int, width: Int, into dst: UnsafeMutableRawPointer) -> Int64 {
        let (n, w, g) = (Int64(rows), Int64(width), Int64(group))
        switch (dtype, bits) {
        case (.bf16, 4): return attune_q4_quantize_bf16(source.assumingMemoryBound(to: UInt16.self), n, w, g, cScale, dst)
        case (.bf16, _): return attune_q8_quantize_bf16(source.assumingMemoryBound(to: UInt16.self), n, w, g, cScale, dst)
        case (.f16, 4): return attune_q4_quantize_f16(source.assumingMemoryBound(to: UInt16.self), n, w, g, cScale, dst)
        case (.f16, _): return attune_q8_quantize_f16(source.assumingMemoryBound(to: UInt16.self), n, w, g, cScale, dst)
        case (_, 4): return attune_q4_quantize_f32(source.assumingMemoryBound(to: Float.self), n, w, g, cScale, dst)
        default: return attune_q8_quantize_f32(source.assumingMemoryBound(to: Float.self), n, w, g, cScale, dst)
        }
    }
}

/// `--weights`: the format of the matmul weights.
public enum WeightPolicy: Hashable, Sendable {
    /// As stored: bf16 tensors stay bf16; f32 stay f32; f16 become f32 (exact: f16's
    /// 11 significant bits do not fit bf16's 8, and a rounding the checkpoint's authors
    /// did not choose is the user's call, `--weights bf16`).
    case auto
    case f32
    /// Every matmul weight bf16; f32 and f16 tensors are rounded (to nearest even) at
    /// compile time into the compile cache (AttuneRuntime.QuantizedWeights), values with
    /// no file behind them into the module's derived blob.
    case bf16
    /// Every matmul weight, embedding tables included (as llama.cpp's q8_0 and q4_0),
    /// quantised at compile time into the compile cache: `int8` or `q4`.
    case quantized(QuantizedLayout)

    public func format(stored: DType) -> WeightFormat {
        switch self {
        case .f32: return .f32
        case .bf16: return .bf16
        case .auto: return stored == .bf16 ? .bf16 : .f32
        case .quantized(let layout): return .quantized(layout)
        }
    }

    /// Parses `auto`, `f32`, `bf16`, `int8`, `q4`, or either quantised word followed by
    /// `:group=N,scale=f16|f32`; throws a one-line reason.
    public init(parsing text: String) throws {
        switch text {
        case "auto": self = .auto
        case "f32": self = .f32
        case "bf16": self = .bf16
        default:
            let word = String(text.prefix { $0 != ":" })
            guard let bits = ["int8": 8, "q4": 4][word] else {
                throw CodegenError("--weights expects auto, f32, bf16, int8 or q4 (int8 and q4 take [:group=N,scale=f16|f32]), got '\(text)'")
            }
            var layout = QuantizedLayout(bits: bits)
            for item in text.dropFirst(word.count + 1).split(separator: ",", omittingEmptySubsequences: false) where text != word {
                let kv = item.split(separator: "=", maxSplits: 1).map(String.init)
                switch (kv.first, kv.count) {
                case ("group", 2):
                    guard let g = Int(kv[1]), g > 0, g % 32 == 0 else {
                        throw CodegenError("--weights \(word): group must be a positive multiple of 32, got '\(kv[1])'")
                    }
                    layout.group = g
                case ("scale", 2):
                    guard let s = QuantizedLayout.Scale(rawValue: kv[1]) else {
                        throw CodegenError("--weights \(word): scale must be f16 or f32, got '\(kv[1])'")
                    }
                    layout.scale = s
                default:
                    throw CodegenError("--weights \(word) takes group=N and scale=f16|f32, got '\(item)'")
                }
            }
            self = .quantized(layout)
        }
    }

    /// The `--weights` text that parses back to this policy.
    public var description: String {
        switch self {
        case .auto: return "auto"
        case .f32: return "f32"
        case .bf16: return "bf16"
        case .quantized(let l):
            return l == QuantizedLayout(bits: l.bits) ? l.formatWord : "\(l.formatWord):group=\(l.group),scale=\(l.scale.rawValue)"
        }
    }
}

extension Float {
    /// The nearest bf16 (ties to even), as its 16 bits; NaN stays a (quiet) NaN.
    /// Kernels/linear_bf16.c rounds activations the same way (`attune_f32_to_bf16`).
    public var bf16Bits: UInt16 {
        let u = bitPattern
        if u & 0x7FFF_FFFF > 0x7F80_0000 { return UInt16(u >> 16) | 0x40 }
        return UInt16(truncatingIfNeeded: (u &+ 0x7FFF &+ ((u >> 16) & 1)) >> 16)
    }
}

/// `--weights-for PATTERN=FORMAT`: the matmul weights whose checkpoint name contains
/// `pattern` take `policy` instead of `--weights` (llama-quantize's per-tensor types:
/// e.g. `--weights q4 --weights-for embed_tokens=int8` keeps the vocabulary table at 8 bits).
public struct WeightOverride: Hashable, Sendable, CustomStringConvertible {
    public var pattern: String
    public var policy: WeightPolicy

    public init(pattern: String, policy: WeightPolicy) {
        self.pattern = pattern
        self.policy = policy
    }

    /// `PATTERN=FORMAT`, which parses back to this rule.
    public var description: String { "\(pattern)=\(policy.description)" }

    /// Parses `PATTERN=FORMAT` (FORMAT as `--weights` takes it); throws a one-line reason.
    public init(parsing text: String) throws {
        let parts = text.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false).map(String.init)
        guard parts.count == 2, !parts[0].isEmpty else {
            throw CodegenError("--weights-for expects PATTERN=FORMAT (e.g. lm_head=int8), got '\(text)'")
        }
        do { policy = try WeightPolicy(parsing: parts[1]) } catch let error as CodegenError {
            throw CodegenError("--weights-for \(parts[0]): " + error.message)
        }
        pattern = parts[0]
    }

    /// The policy for the weight named `name`: the first override whose pattern it contains,
    /// else `fallback`.
    public static func policy(for name: String?, in overrides: [WeightOverride], fallback: WeightPolicy) -> WeightPolicy {
        guard let name else { return fallback }
        return overrides.first { name.contains($0.pattern) }?.policy ?? fallback
    }
}
