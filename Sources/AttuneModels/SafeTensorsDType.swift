/// An element type of a safetensors file, named as in its header.
///
/// The set is the reference implementation's byte-sized types. Its sub-byte
/// types (`F4`, `F6_*`) are rejected as unknown: their tensors do not occupy
/// whole bytes and no Attune model uses them. All data is little endian.
public enum SafeTensorsDType: String, CaseIterable, Sendable {
    case bool = "BOOL"
    case u8 = "U8"
    case i8 = "I8"
    case f8e5m2 = "F8_E5M2"
    case f8e4m3 = "F8_E4M3"
    case i16 = "I16"
    case u16 = "U16"
    case f16 = "F16"
    case bf16 = "BF16"
    case i32 = "I32"
    case u32 = "U32"
    case f32 = "F32"
    case f64 = "F64"
    case i64 = "I64"
    case u64 = "U64"

    /// Bytes per element.
    public var size: Int {
        switch self {
        case .bool, .u8, .i8, .f8e5m2, .f8e4m3: return 1
        case .i16, .u16, .f16, .bf16: return 2
        case .i32, .u32, .f32: return 4
        case .f64, .i64, .u64: return 8
        }
    }

    /// True for the types `floats(_:)` converts: `F32`, `BF16` and `F16`,
    /// each exactly representable as `Float`.
    public var convertsToFloat: Bool {
        self == .f32 || self == .bf16 || self == .f16
    }
}

/// `Float` from bfloat16 bits: bf16 is the top half of an f32, so this is exact
/// for every input, NaN payloads included.
@inline(__always)
func floatFromBFloat16(_ bits: UInt16) -> Float {
    Float(bitPattern: UInt32(bits) << 16)
}

/// `Float` from IEEE 754 binary16 bits, exact for every input.
///
/// Written out rather than using `Float16`, which Swift does not offer on
/// macOS x86_64. Subnormals (exponent 0) are `mantissa × 2^-24`; exponent 31
/// is infinity (mantissa 0) or NaN, whose payload is kept in the high bits.
@inline(__always)
func floatFromFloat16(_ bits: UInt16) -> Float {
    let sign = UInt32(bits & 0x8000) << 16
    let exponent = UInt32(bits >> 10) & 0x1F
    let mantissa = UInt32(bits & 0x3FF)
    switch exponent {
    case 0:
        // ±0 and subnormals; `Float(mantissa) * 2^-24` is exact (≤ 10 bits).
        let magnitude = Float(mantissa) * 0x1p-24
        return Float(bitPattern: magnitude.bitPattern | sign)
    case 31:
        return Float(bitPattern: sign | 0x7F80_0000 | (mantissa << 13))
    default:
        // Rebias the exponent from 15 to 127.
        return Float(bitPattern: sign | ((exponent + 112) << 23) | (mantissa << 13))
    }
}

/// Decodes `count` little-endian elements of a float dtype from `raw`, which
/// must hold exactly `count * dtype.size` bytes (the caller has validated it).
/// `raw` need not be aligned: a header's length sets the data's alignment.
func decodeFloats(_ raw: UnsafeRawBufferPointer, dtype: SafeTensorsDType, count: Int) -> [Float] {
    precondition(dtype.convertsToFloat && raw.count == count * dtype.size)
    return [Float](unsafeUninitializedCapacity: count) { out, initialized in
        switch dtype {
        case .f32:
            #if _endian(little)
            UnsafeMutableRawBufferPointer(out).copyMemory(from: raw)
            #else
            for k in 0..<count {
                out[k] = Float(bitPattern: UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: 4 * k, as: UInt32.self)))
            }
            #endif
        case .bf16:
            for k in 0..<count {
                out[k] = floatFromBFloat16(UInt16(littleEndian: raw.loadUnaligned(fromByteOffset: 2 * k, as: UInt16.self)))
            }
        default:  // .f16, by the precondition
            for k in 0..<count {
                out[k] = floatFromFloat16(UInt16(littleEndian: raw.loadUnaligned(fromByteOffset: 2 * k, as: UInt16.self)))
            }
        }
        initialized = count
    }
}
