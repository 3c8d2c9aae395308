import CAttuneKernels
import AttuneTensor

/// How K and V are stored for the kernels that read a KV cache (`attune_kv_format`,
/// Kernels/include/attune_attention.h): fp32, bf16 (round to nearest even) or int8 with one
/// fp32 scale per (batch, kv head, key). Kernels compute over the stored values exactly;
/// the formats' error bounds against fp32 K/V are in Docs/NUMERICS.md.
public enum KVFormat: String, CaseIterable, Sendable {
    case f32, bf16, int8

    public var cValue: Int32 {
        switch self {
        case .f32: return Int32(ATTUNE_KV_F32.rawValue)
        case .bf16: return Int32(ATTUNE_KV_BF16.rawValue)
        case .int8: return Int32(ATTUNE_KV_INT8.rawValue)
        }
    }

    public var elementBytes: Int { Int(attune_kv_element_bytes(cValue)) }

    /// The C enumerator name, for generated code.
    public var cName: String { "ATTUNE_KV_\(rawValue.uppercased())" }

    /// `f32`, `bf16` or `int8`, or an error naming the choices.
    public init(parsing text: String) throws {
        guard let f = KVFormat(rawValue: text) else {
            throw KernelError("KV format must be one of \(KVFormat.allCases.map(\.rawValue).joined(separator: ", ")), got '\(text)'")
        }
        self = f
    }

    // A packed K or V buffer, as `AttentionKernel.run` takes it for a problem whose
    // `kvFormat` is not f32: `rows` rows of `dim` elements of the format (rows = batch x kv
    // heads x keys, contiguous), then for int8 one Float scale per row, 4-byte aligned.

    /// Byte offset of the scales in a packed buffer.
    public func scaleOffset(rows: Int, dim: Int) -> Int { (rows * dim * elementBytes + 3) / 4 * 4 }

    public func packedBytes(rows: Int, dim: Int) -> Int {
        scaleOffset(rows: rows, dim: dim) + (self == .int8 ? 4 * rows : 0)
    }

    /// `x` (rows x dim floats) stored in this format, packed as above.
    public func pack(_ x: [Float], dim: Int) -> [UInt8] {
        precondition(dim > 0 && x.count % dim == 0, "pack: \(x.count) values are not rows of \(dim)")
        let rows = x.count / dim
        var out = [UInt8](repeating: 0, count: max(packedBytes(rows: rows, dim: dim), 1))
        let offset = scaleOffset(rows: rows, dim: dim)
        x.withUnsafeBufferPointer { src in
            out.withUnsafeMutableBytes { raw in
                let scales = self == .int8 ? (raw.baseAddress! + offset).assumingMemoryBound(to: Float.self) : nil
                attune_kv_quantize(cValue, Int64(rows), 1, Int64(dim), src.baseAddress, Int64(dim),
                                   raw.baseAddress, Int64(dim), scales, 1)
            }
        }
        return out
    }

    /// The values a kernel computes with, in float64 (exact: bf16 widens exactly, int8 is
    /// q * s formed in double).
    public func unpack(_ packed: [UInt8], rows: Int, dim: Int) -> [Double] {
        let offset = scaleOffset(rows: rows, dim: dim)
        return packed.withUnsafeBytes { raw -> [Double] in
            switch self {
            case .f32:
                return (0..<rows * dim).map { Double(raw.load(fromByteOffset: 4 * $0, as: Float.self)) }
            case .bf16:
                return (0..<rows * dim).map {
                    Double(Float(bitPattern: UInt32(raw.load(fromByteOffset: 2 * $0, as: UInt16.self)) << 16))
                }
            case .int8:
                return (0..<rows * dim).map { i in
                    let s = raw.load(fromByteOffset: offset + 4 * (i / dim), as: Float.self)
                    return Double(raw.load(fromByteOffset: i, as: Int8.self)) * Double(s)
                }
            }
        }
    }
}

extension AttentionProblem {
    /// `cProblem` with the K/V format's scale pointers for packed K and V buffers (`KVFormat`).
    public func cProblem(k: UnsafeRawPointer, v: UnsafeRawPointer) -> attune_attention_problem {
        var p = cProblem
        if kvFormat == .int8 {
            let rows = batch * kvHeads * kvLen
            p.kv.k_scale = (k + kvFormat.scaleOffset(rows: rows, dim: qkDim)).assumingMemoryBound(to: Float.self)
            p.kv.v_scale = (v + kvFormat.scaleOffset(rows: rows, dim: vDim)).assumingMemoryBound(to: Float.self)
        }
        return p
    }

    /// Bytes of K and V as stored (elements and scales), what a kernel reads once.
    public var kvBytes: Int {
        let rows = batch * kvHeads * kvLen
        return kvFormat.packedBytes(rows: rows, dim: qkDim) + kvFormat.packedBytes(rows: rows, dim: vDim)
    }
}

extension AttentionKernel {
    /// Why this kernel cannot read `problem`'s K/V format, or nil.
    public func kvFormatRefusal(_ format: KVFormat) -> String? {
        kvFormats.contains(format) ? nil
            : "kernel '\(name)' reads K/V as \(kvFormats.map(\.rawValue).joined(separator: "/")) only, not \(format.rawValue) (flash, unified_max, prefix_shared, kascade and hybrid's hot tier read bf16 and int8)"
    }
}

extension AttentionKernel {
    /// `run` with K and V first stored as `problem.kvFormat` (quantised from the fp32 tensors
    /// and packed): what the kernel computes over a KV cache in that format.
    public func runStored(_ problem: AttentionProblem, q: Tensor, k: Tensor, v: Tensor,
                          parameters: KernelParameters = [:]) throws -> AttentionOutput {
        if problem.kvFormat == .f32 {
            var plain = problem
            plain.kvFormat = .f32
            return try run(plain, q: q, k: k, v: v, parameters: parameters)
        }
        if let refusal = kvFormatRefusal(problem.kvFormat) { throw KernelError(refusal) }
        if let error = problem.validationError() { throw KernelError(error) }
        for (label, tensor, shape) in [("q", q, problem.qShape), ("k", k, problem.kShape), ("v", v, problem.vShape)]
        where tensor.shape != shape {
            throw KernelError("\(label) has shape \(tensor.shape), expected \(shape) for \(problem)")
        }
        let reasons = unsupportedReasons(problem)
        if !reasons.isEmpty {
            throw KernelError("kernel '\(name)' cannot run \(problem): " + reasons.joined(separator: "; "))
        }
        try checkParameters(parameters)
        let kp = problem.kvFormat.pack(k.data, dim: problem.qkDim), vp = problem.kvFormat.pack(v.data, dim: problem.vDim)
        var o = Tensor(zeros: problem.oShape)
        var lse = Tensor(zeros: problem.lseShape)
        var stats: KernelRunStats = [:]
        try q.data.withUnsafeBufferPointer { qb in
            try kp.withUnsafeBytes { kb in
                try vp.withUnsafeBytes { vb in
                    try o.data.withUnsafeMutableBufferPointer { ob in
                        try lse.data.withUnsafeMutableBufferPointer { lb in
                            stats = try run(problem, q: qb.baseAddress!, k: kb.baseAddress!.assumingMemoryBound(to: Float.self),
                                            v: vb.baseAddress!.assumingMemoryBound(to: Float.self), o: ob.baseAddress!,
                                            lse: lb.baseAddress, parameters: parameters)
                        }
                    }
                }
            }
        }
        return AttentionOutput(o: o, lse: lse, stats: stats)
    }
}
