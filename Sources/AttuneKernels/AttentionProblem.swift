import CAttuneKernels

/// One attention problem in the terms of the C ABI (`Kernels/include/attune_attention.h`):
/// q [B, Hq, Lq, Dqk], k [B, Hkv, Lk, Dqk], v [B, Hkv, Lk, Dv] -> o [B, Hq, Lq, Dv], lse [B, Hq, Lq].
///
/// Masking is bottom-right aligned: query row `i` sits at absolute position
/// `qOffset + i` (default `kvLen - qLen`) and sees key `j` iff
/// `(!causal || j <= qOffset + i) && (window == nil || j > qOffset + i - window)`.
/// With `softcap` c, every score s = scale·q·k becomes c·tanh(s/c) before the mask
/// (Gemma 2's logit soft-capping); only kernels that say so accept it.
/// Tensors described by this value are contiguous; strided views are an ABI feature
/// reached through `AttentionStrides`.
public struct AttentionProblem: Sendable, Equatable, CustomStringConvertible {
    public var batch: Int
    public var qHeads: Int
    public var kvHeads: Int
    public var qLen: Int
    public var kvLen: Int
    public var qkDim: Int
    public var vDim: Int
    /// Softmax temperature; `nil` means 1/sqrt(qkDim).
    public var scale: Float?
    public var causal: Bool
    /// Absolute position of query row 0; `nil` means `kvLen - qLen`.
    public var qOffset: Int?
    /// Sliding window length in keys (>= 1); `nil` means none.
    public var window: Int?
    /// How K and V are stored (`KVFormat`); kernels given another format than f32 take
    /// packed buffers (`KVFormat.pack`).
    public var kvFormat: KVFormat = .f32
    /// Logit soft-cap c > 0 (scores become c·tanh(s/c)); `nil` means none.
    public var softcap: Double?

    public init(batch: Int = 1, qHeads: Int, kvHeads: Int? = nil, qLen: Int, kvLen: Int,
                qkDim: Int, vDim: Int? = nil, scale: Float? = nil, causal: Bool = false,
                qOffset: Int? = nil, window: Int? = nil, softcap: Double? = nil) {
        self.batch = batch
        self.qHeads = qHeads
        self.kvHeads = kvHeads ?? qHeads
        self.qLen = qLen
        self.kvLen = kvLen
        self.qkDim = qkDim
        self.vDim = vDim ?? qkDim
        self.scale = scale
        self.causal = causal
        self.qOffset = qOffset
        self.window = window
        self.softcap = softcap
    }

    /// The refusal of a kernel that does not implement soft-capping, or nil when the
    /// problem has no soft-cap.
    public func softcapRefusal(kernel: String) -> String? {
        softcap.map { "\(kernel) does not implement logit soft-capping (softcap=\(describeParameterValue($0))); flash does" }
    }

    /// Bytes of q, k, v, o and the LSE as fp32; nil when the count overflows.
    public var tensorBytes: Int? {
        var total = 0
        for shape in [qShape, kShape, vShape, oShape, lseShape] {
            var n = 4
            for d in shape {
                let (m, o) = n.multipliedReportingOverflow(by: max(d, 0))
                if o { return nil }
                n = m
            }
            let (t, o) = total.addingReportingOverflow(n)
            if o { return nil }
            total = t
        }
        return total
    }

    public var qShape: [Int] { [batch, qHeads, qLen, qkDim] }
    public var kShape: [Int] { [batch, kvHeads, kvLen, qkDim] }
    public var vShape: [Int] { [batch, kvHeads, kvLen, vDim] }
    public var oShape: [Int] { [batch, qHeads, qLen, vDim] }
    public var lseShape: [Int] { [batch, qHeads, qLen] }

    public var resolvedScale: Float { scale ?? Float(1.0 / Double(qkDim).squareRoot()) }
    public var resolvedQOffset: Int { qOffset ?? (kvLen - qLen) }

    /// The C problem for contiguous tensors of this shape.
    public var cProblem: attune_attention_problem {
        var p = attune_attention_problem()
        attune_attention_problem_init(&p, Int64(batch), Int64(qHeads), Int64(kvHeads),
                                      Int64(qLen), Int64(kvLen), Int64(qkDim), Int64(vDim))
        if let scale { p.scale = scale }
        p.causal = causal ? 1 : 0
        if let qOffset { p.q_offset = Int64(qOffset) }
        p.window = Int64(window ?? 0)
        p.kv.format = kvFormat.cValue
        p.softcap = Float(softcap ?? 0)
        // int8 scales: one per (batch, kv head, key), contiguous (KVFormat's packed buffers).
        let scaleStrides = attune_strides(batch: Int64(kvHeads * kvLen), head: Int64(kvLen), row: 1)
        p.kv.k_scale_stride = scaleStrides
        p.kv.v_scale_stride = scaleStrides
        return p
    }

    /// Visible (query, key) pairs per (batch, q head), counted by the ABI's own mask.
    public var visiblePairs: Int {
        var p = cProblem
        return Int(attune_attention_visible_pairs(&p))
    }

    /// Problems the ABI rejects outright, independent of any kernel.
    public func validationError() -> String? {
        // The C problem holds the cap as a float, where 0 means none: a cap that rounds to
        // 0 (or overflows) must not silently become "no cap".
        if let c = softcap, c > 0, Float(c) == 0 || !Float(c).isFinite {
            return "softcap \(c) is not representable as a float (\(Float.leastNormalMagnitude) ... \(Float.greatestFiniteMagnitude))"
        }
        var p = cProblem
        var status = attune_status()
        // Structure only: whether a kernel reads the K/V format is the kernel's question.
        let formats = KVFormat.allCases.reduce(UInt32(ATTUNE_ACCEPTS_SOFTCAP)) { $0 | (1 << UInt32($1.cValue)) }
        let rc = attune_attention_validate_kv(&p, nil, formats, "the ABI", &status)
        return rc == 0 ? nil : AttentionProblem.message(of: status)
    }

    static func message(of status: attune_status) -> String {
        withUnsafeBytes(of: status.message) { raw in
            String(decoding: raw.prefix(while: { $0 != 0 }), as: UTF8.self)
        }
    }

    public var description: String {
        var s = "B\(batch) Hq\(qHeads) Hkv\(kvHeads) Lq\(qLen) Lk\(kvLen) d\(qkDim)"
        if vDim != qkDim { s += " dv\(vDim)" }
        if causal { s += " causal" }
        if let qOffset { s += " q_offset=\(qOffset)" }
        if let window { s += " window=\(window)" }
        if let scale { s += " scale=\(scale)" }
        if kvFormat != .f32 { s += " kv=\(kvFormat.rawValue)" }
        if let softcap { s += " softcap=\(describeParameterValue(softcap))" }
        return s
    }
}
