import CAttuneKernels

/// One attention problem in the terms of the C ABI (`Kernels/include/attune_attention.h`):
/// q [B, Hq, Lq, Dqk], k [B, Hkv, Lk, Dqk], v [B, Hkv, Lk, Dv] -> o [B, Hq, Lq, Dv], lse [B, Hq, Lq].
///
/// Masking is bottom-right aligned: query row `i` sits at absolute position
/// `qOffset + i` (default `kvLen - qLen`) and sees key `j` iff
/// `(!causal || j <= qOffset + i) && (window == nil || j > qOffset + i - window)`.
/// With `softcap` c, every score s = scale·q·k becomes c·tanh(s/c) before the mask
/// (Gemma 2's logit soft-capping); only kernels that say so accept it.
/// With `alibiSlopes` m (one per q head), the (capped) score of query row `i` and key `j`
/// gains `m_h·(j − (qOffset + i))` (ALiBi); with `sinks` z (one per q head), a term e^(z_h)
/// joins each row's softmax denominator with no value (gpt-oss), and the LSE includes it.
/// `documentIDs` and `blockMask` hide more keys (AttentionMask.swift, the ABI's masks).
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
    /// ALiBi slopes, one per q head (`AttentionProblem.standardALiBiSlopes`); `nil` means none.
    public var alibiSlopes: [Float]?
    /// Sink logits, one per q head; `nil` means none.
    public var sinks: [Float]?
    /// Document ids, one per key (`kvLen`), shared by every batch and head: the query at
    /// position p sees key j only if `documentIDs[j] == documentIDs[p]` (packed sequences;
    /// `AttentionProblem.documentIDs(lengths:kvLen:)`). `nil` means none.
    public var documentIDs: [Int32]?
    /// A block bitmask over positions (`BlockMask`); `nil` means none.
    public var blockMask: BlockMask?

    public init(batch: Int = 1, qHeads: Int, kvHeads: Int? = nil, qLen: Int, kvLen: Int,
                qkDim: Int, vDim: Int? = nil, scale: Float? = nil, causal: Bool = false,
                qOffset: Int? = nil, window: Int? = nil, softcap: Double? = nil,
                alibiSlopes: [Float]? = nil, sinks: [Float]? = nil) {
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
        self.alibiSlopes = alibiSlopes
        self.sinks = sinks
    }

    /// The standard ALiBi slopes of `heads` heads, from the C kernels' own function
    /// (`attune_alibi_slopes`: BLOOM's `_get_alibi_slopes`, non-power-of-two rule included).
    public static func standardALiBiSlopes(heads: Int) -> [Float] {
        guard heads > 0 else { return [] }
        var out = [Float](repeating: 0, count: heads)
        out.withUnsafeMutableBufferPointer { attune_alibi_slopes(Int64(heads), $0.baseAddress!) }
        return out
    }

    /// Sets `p`'s ALiBi, sink and mask pointers to this problem's tables for the duration of
    /// `body`; with `maskStats` the kernel writes its tile counts there (`attune_mask_stats`).
    public func withModifiers<R>(_ p: inout attune_attention_problem,
                                 maskStats: UnsafeMutablePointer<attune_mask_stats>? = nil,
                                 _ body: (inout attune_attention_problem) throws -> R) rethrows -> R {
        try Self.withTable(alibiSlopes) { slopes in
            try Self.withTable(sinks) { sinks in
                try Self.withTable(documentIDs) { docs in
                    try Self.withTable(blockMask?.bits) { bits in
                        p.alibi_slopes = slopes
                        p.sinks = sinks
                        p.doc_ids = docs
                        p.block_mask = bits
                        p.mask_block = Int64(blockMask?.block ?? 0)
                        p.mask_stats = maskStats
                        defer {
                            p.alibi_slopes = nil; p.sinks = nil; p.doc_ids = nil; p.block_mask = nil
                            p.mask_block = 0; p.mask_stats = nil
                        }
                        return try body(&p)
                    }
                }
            }
        }
    }

    private static func withTable<T, R>(_ table: [T]?, _ body: (UnsafePointer<T>?) throws -> R) rethrows -> R {
        guard let table else { return try body(nil) }
        return try table.withUnsafeBufferPointer { try body($0.baseAddress) }
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
        return withModifiers(&p) { Int(attune_attention_visible_pairs(&$0)) }
    }

    /// Problems the ABI rejects outright, independent of any kernel.
    public func validationError() -> String? {
        // The C problem holds the cap as a float, where 0 means none: a cap that rounds to
        // 0 (or overflows) must not silently become "no cap".
        if let c = softcap, c > 0, Float(c) == 0 || !Float(c).isFinite {
            return "softcap \(c) is not representable as a float (\(Float.leastNormalMagnitude) ... \(Float.greatestFiniteMagnitude))"
        }
        for (name, table) in [("alibi", alibiSlopes), ("sinks", sinks)] {
            if let table, table.count != qHeads {
                return "\(name) has \(table.count) values but the problem has \(qHeads) q heads"
            }
        }
        if let error = maskValidationError() { return error }
        var p = cProblem
        var status = attune_status()
        // Structure only: whether a kernel reads the K/V format is the kernel's question.
        let modifiers = UInt32(ATTUNE_ACCEPTS_SOFTCAP) | UInt32(ATTUNE_ACCEPTS_ALIBI) | UInt32(ATTUNE_ACCEPTS_SINKS)
            | UInt32(ATTUNE_ACCEPTS_MASKS)
        let formats = KVFormat.allCases.reduce(modifiers) { $0 | (1 << UInt32($1.cValue)) }
        let rc = withModifiers(&p) { attune_attention_validate_kv(&$0, nil, formats, "the ABI", &status) }
        return rc == 0 ? nil : AttentionProblem.message(of: status)
    }

    static func message(of status: attune_status) -> String {
        withUnsafeBytes(of: status.message) { raw in
            String(decoding: raw.prefix(while: { $0 != 0 }), as: UTF8.self)
        }
    }

    /// A table entry as typed: integers without a fraction, others in Float's shortest form.
    static func describe(_ x: Float) -> String {
        x.rounded() == x && abs(x) < 1e7 ? String(Int(x)) : "\(x)"
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
        if let alibiSlopes {
            s += alibiSlopes == Self.standardALiBiSlopes(heads: qHeads) ? " alibi" : " alibi=\(alibiSlopes.map(Self.describe).joined(separator: ","))"
        }
        if let sinks { s += " sinks=\(sinks.map(Self.describe).joined(separator: ","))" }
        return s + maskDescription
    }
}
