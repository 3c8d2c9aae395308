import AttuneIR

/// How a constant slot's elements lie in memory for the generated code. Norm weights,
/// biases and every other constant are f32; matmul weights (linear weights, embedding
/// tables) take the format `WeightPolicy` chooses, and the lowering calls the kernel of
/// that format (f32: OpenBLAS; bf16: Kernels/linear_bf16.c).
public enum WeightFormat: String, Sendable, CaseIterable {
    case f32, bf16

    public var byteSize: Int { self == .f32 ? 4 : 2 }
    /// The C element type generated code reads the slot as.
    var cType: String { self == .f32 ? "float" : "uint16_t" }
}

/// `--weights`: the format of the matmul weights.
public enum WeightPolicy: String, Sendable, CaseIterable {
    /// As stored: bf16 tensors stay bf16; f32 stay f32; f16 become f32 (exact: f16's
    /// 11 significant bits do not fit bf16's 8, and a rounding the checkpoint's authors
    /// did not choose is the user's call, `--weights bf16`).
    case auto
    case f32
    /// Every matmul weight bf16; f32 and f16 tensors are rounded (to nearest even) at
    /// compile time into the module's derived blob.
    case bf16

    public func format(stored: DType) -> WeightFormat {
        switch self {
        case .f32: return .f32
        case .bf16: return .bf16
        case .auto: return stored == .bf16 ? .bf16 : .f32
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
