import AttuneIR
import CAttuneKernels

/// How a constant slot's elements lie in memory for the generated code. Norm weights,
/// biases and every other constant are f32; matmul weights (linear weights, embedding
/// tables) take the format `WeightPolicy` chooses, and the lowering calls the kernel of
/// that format (f32: OpenBLAS; bf16: Kernels/linear_bf16.c; int8: Kernels/linear_q8.c).
public enum WeightFormat: Hashable, Sendable {
    case f32, bf16
    /// Quantised rows (Kernels/include/attune_linear_q8.h), made at compile time into
    /// the compile cache (AttuneRuntime.QuantizedWeights).
    case int8(Int8Layout)

    /// The name the weights manifest and the generated code's format table use: f32,
    /// bf16, or int8_g<group>_<scale type> (so a manifest of another group is refused).
    public var name: String {
        switch self {
        case .f32: return "f32"
        case .bf16: return "bf16"
        case .int8(let layout): return layout.name
        }
    }

    /// Bytes of `elements` weights in this format (int8: quants plus scales).
    public func bytes(elements: Int) -> Int {
        switch self {
        case .f32: return 4 * elements
        case .bf16: return 2 * elements
        case .int8(let layout): return layout.bytes(elements: elements)
        }
    }

    /// The C element type generated code reads the slot as.
    var cType: String {
        switch self {
        case .f32: return "float"
        case .bf16: return "uint16_t"
        case .int8: return "void"
        }
    }
}

/// `--weights int8[:group=N,scale=f16|f32]`: a scale per `group` consecutive weights of
/// a row (a multiple of 32; 32 is llama.cpp's q8_0 block), stored as f16 (default:
/// 1.0625 bytes a weight) or f32 (1.125).
public struct Int8Layout: Hashable, Sendable {
    public enum Scale: String, Sendable { case f16, f32 }
    public var group: Int
    public var scale: Scale

    public init(group: Int = 32, scale: Scale = .f16) {
        self.group = group
        self.scale = scale
    }

    public var name: String { "int8_g\(group)_\(scale.rawValue)" }
    /// The C kernels' scale code (ATTUNE_Q8_SCALE_F16 / _F32).
    public var cScale: Int32 { Int32(scale == .f16 ? ATTUNE_Q8_SCALE_F16 : ATTUNE_Q8_SCALE_F32) }
    var scaleBytes: Int { scale == .f16 ? 2 : 4 }

    /// Bytes of `elements` weights: one byte each plus a scale per group.
    public func bytes(elements: Int) -> Int { elements + elements / group * scaleBytes }

    /// Why rows of `width` weights cannot be stored in this layout (the kernels' rule,
    /// `attune_q8_check`), or nil.
    public func refusal(width: Int) -> String? {
        attune_q8_check(Int64(width), Int64(group), cScale).map { String(cString: $0) }
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
    /// Every matmul weight, embedding tables included (as llama.cpp's q8_0), quantised
    /// at compile time into the compile cache.
    case int8(Int8Layout)

    public func format(stored: DType) -> WeightFormat {
        switch self {
        case .f32: return .f32
        case .bf16: return .bf16
        case .auto: return stored == .bf16 ? .bf16 : .f32
        case .int8(let layout): return .int8(layout)
        }
    }

    /// Parses `auto`, `f32`, `bf16`, `int8` or `int8:group=N,scale=f16|f32`; throws a
    /// one-line reason.
    public init(parsing text: String) throws {
        switch text {
        case "auto": self = .auto
        case "f32": self = .f32
        case "bf16": self = .bf16
        default:
            guard text == "int8" || text.hasPrefix("int8:") else {
                throw CodegenError("--weights expects auto, f32, bf16 or int8[:group=N,scale=f16|f32], got '\(text)'")
            }
            var layout = Int8Layout()
            for item in text.dropFirst(5).split(separator: ",", omittingEmptySubsequences: false) where text != "int8" {
                let kv = item.split(separator: "=", maxSplits: 1).map(String.init)
                switch (kv.first, kv.count) {
                case ("group", 2):
                    guard let g = Int(kv[1]), g > 0, g % 32 == 0 else {
                        throw CodegenError("--weights int8: group must be a positive multiple of 32, got '\(kv[1])'")
                    }
                    layout.group = g
                case ("scale", 2):
                    guard let s = Int8Layout.Scale(rawValue: kv[1]) else {
                        throw CodegenError("--weights int8: scale must be f16 or f32, got '\(kv[1])'")
                    }
                    layout.scale = s
                default:
                    throw CodegenError("--weights int8 takes group=N and scale=f16|f32, got '\(item)'")
                }
            }
            self = .int8(layout)
        }
    }

    /// The `--weights` text that parses back to this policy.
    public var description: String {
        switch self {
        case .auto: return "auto"
        case .f32: return "f32"
        case .bf16: return "bf16"
        case .int8(let l): return l == Int8Layout() ? "int8" : "int8:group=\(l.group),scale=\(l.scale.rawValue)"
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
