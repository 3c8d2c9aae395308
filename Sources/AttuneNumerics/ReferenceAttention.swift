// Float64 reference attention: the ground truth the fp32 kernels are tested
// against. Written independently of every optimized kernel on purpose: plain
// loops, its own mask logic (`ReferenceAttention.isVisible`), no online
// softmax, no blocking. Depends on Foundation only.

import Foundation

/// Error thrown by the reference for an ill-formed problem or input arrays.
public struct ReferenceAttentionError: Error, Sendable, Equatable, CustomStringConvertible {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { "ReferenceAttentionError: \(message)" }
}

/// Shape and mask parameters of one attention problem (the project's
/// attention contract).
///
/// Layouts (contiguous, row-major):
/// - q `[batch, qHeads, qLen, qkDim]`
/// - k `[batch, kvHeads, kvLen, qkDim]`
/// - v `[batch, kvHeads, kvLen, vDim]`
/// - o `[batch, qHeads, qLen, vDim]`, lse `[batch, qHeads, qLen]`
///
/// Query head `h` reads kv head `h / (qHeads / kvHeads)`.
///
/// Mask (bottom-right aligned, KV-cache convention): query row `i` sits at
/// absolute position `p = qOffset + i` (`qOffset` defaults to
/// `kvLen - qLen` when nil). Key `j` is visible iff
/// `(!causal || j <= p) && (window == nil || j > p - window)`.
public struct ReferenceAttentionProblem: Sendable, Equatable, CustomStringConvertible {
    public var batch: Int
    public var qHeads: Int
    public var kvHeads: Int
    public var qLen: Int
    public var kvLen: Int
    public var qkDim: Int
    public var vDim: Int
    /// Multiplier applied to q·k before the normaliser.
    public var scale: Double
    public var causal: Bool
    /// Absolute position of query row 0; nil means `kvLen - qLen`.
    public var qOffset: Int?
    /// Sliding-window width (>= 1); nil means no window.
    public var window: Int?
    /// Logit soft-cap c > 0: softmax scores become `c * tanh(s / c)`; nil means none.
    public var softcap: Double?
    /// ALiBi slopes m_h, one per q head: the score of query position p and key j gains
    /// `m_h * (j - p)` (after the soft-cap); nil means none. `ReferenceAttention.alibiSlopes`
    /// gives the standard ones.
    public var alibiSlopes: [Double]?
    /// Sink logits z_h, one per q head: `e^(z_h)` joins the softmax denominator (and the
    /// LSE) with no value; nil means none.
    public var sinks: [Double]?
    /// Document id of every key position (`kvLen` of them): the query at position p sees
    /// key j only if `documentIDs[j] == documentIDs[p]`; nil means none.
    public var documentIDs: [Int]?
    /// Block visibility over positions: `blockMask[qb][kb] == false` hides keys
    /// `[kb·maskBlock, (kb+1)·maskBlock)` from the queries at positions
    /// `[qb·maskBlock, (qb+1)·maskBlock)`; nil means none.
    public var blockMask: [[Bool]]?
    public var maskBlock: Int = 0

    /// Defaults: `batch = 1`, `kvHeads = qHeads`, `vDim = qkDim`,
    /// `scale = 1 / sqrt(qkDim)`, no causal mask, `qOffset = kvLen - qLen`,
    /// no window.
    public init(batch: Int = 1, qHeads: Int, kvHeads: Int? = nil,
                qLen: Int, kvLen: Int, qkDim: Int, vDim: Int? = nil,
                scale: Double? = nil, causal: Bool = false,
                qOffset: Int? = nil, window: Int? = nil, softcap: Double? = nil,
                alibiSlopes: [Double]? = nil, sinks: [Double]? = nil) {
        self.batch = batch
        self.qHeads = qHeads
        self.kvHeads = kvHeads ?? qHeads
        self.qLen = qLen
        self.kvLen = kvLen
        self.qkDim = qkDim
        self.vDim = vDim ?? qkDim
        self.scale = scale ?? (qkDim > 0 ? 1.0 / Double(qkDim).squareRoot() : .nan)
        self.causal = causal
        self.qOffset = qOffset
        self.window = window
        self.softcap = softcap
        self.alibiSlopes = alibiSlopes
        self.sinks = sinks
    }

    /// `qOffset`, or `kvLen - qLen` when it is nil.
    public var resolvedQOffset: Int { qOffset ?? (kvLen - qLen) }

    /// Expected element counts (valid after `validate()` succeeds).
    public var qCount: Int { batch * qHeads * qLen * qkDim }
    public var kCount: Int { batch * kvHeads * kvLen * qkDim }
    public var vCount: Int { batch * kvHeads * kvLen * vDim }
    public var oCount: Int { batch * qHeads * qLen * vDim }
    public var lseCount: Int { batch * qHeads * qLen }

    public var description: String {
        var s = "B\(batch) Hq\(qHeads) Hkv\(kvHeads) Lq\(qLen) Lk\(kvLen) Dqk\(qkDim) Dv\(vDim) scale=\(scale)"
        if causal { s += " causal" }
        if let o = qOffset { s += " qOffset=\(o)" }
        if let w = window { s += " window=\(w)" }
        if let c = softcap { s += " softcap=\(c)" }
        if let a = alibiSlopes { s += " alibi=\(a)" }
        if let z = sinks { s += " sinks=\(z)" }
        if let d = documentIDs { s += " documents=\(Set(d).count)" }
        if blockMask != nil { s += " blockMask(\(maskBlock))" }
        return s
    }

    /// Checks the shape and mask parameters (not the arrays).
    /// Throws `ReferenceAttentionError` describing the first problem found.
    public func validate() throws {
        func fail(_ m: String) -> ReferenceAttentionError { ReferenceAttentionError("\(m) [\(self)]") }
        if batch < 0 { throw fail("batch must be >= 0, got \(batch)") }
        if qHeads < 1 { throw fail("qHeads must be >= 1, got \(qHeads)") }
        if kvHeads < 1 { throw fail("kvHeads must be >= 1, got \(kvHeads)") }
        if qHeads % kvHeads != 0 {
            throw fail("qHeads (\(qHeads)) must be a multiple of kvHeads (\(kvHeads))")
        }
        if qLen < 0 { throw fail("qLen must be >= 0, got \(qLen)") }
        if kvLen < 0 { throw fail("kvLen must be >= 0, got \(kvLen)") }
        if qkDim < 1 { throw fail("qkDim must be >= 1, got \(qkDim)") }
        if vDim < 1 { throw fail("vDim must be >= 1, got \(vDim)") }
        if !scale.isFinite { throw fail("scale must be finite, got \(scale)") }
        if let w = window, w < 1 { throw fail("window must be >= 1, got \(w)") }
        if let c = softcap, !(c > 0 && c.isFinite) { throw fail("softcap must be finite and > 0, got \(c)") }
        for (name, table) in [("alibiSlopes", alibiSlopes), ("sinks", sinks)] {
            guard let table else { continue }
            if table.count != qHeads { throw fail("\(name) has \(table.count) values for \(qHeads) q heads") }
            if let bad = table.first(where: { !$0.isFinite }) { throw fail("\(name) must be finite, got \(bad)") }
        }
        // Position arithmetic must not overflow: p ranges over
        // [qOffset, qOffset + qLen - 1], and the mask computes p - window.
        let off = resolvedQOffset
        if qOffset == nil, kvLen.subtractingReportingOverflow(qLen).overflow {
            throw fail("kvLen - qLen overflows")
        }
        if off.addingReportingOverflow(qLen).overflow {
            throw fail("qOffset + qLen overflows")
        }
        if let w = window, off.subtractingReportingOverflow(w).overflow {
            throw fail("qOffset - window overflows")
        }
        if documentIDs != nil || blockMask != nil {
            // Masks are keyed by position: every query's position must be a key's.
            if off < 0 || off + qLen > kvLen { throw fail("masks need query positions within the keys") }
        }
        if let d = documentIDs, d.count != kvLen { throw fail("documentIDs has \(d.count) ids for \(kvLen) keys") }
        if let m = blockMask {
            if maskBlock < 1 { throw fail("maskBlock must be >= 1, got \(maskBlock)") }
            let nb = (kvLen + maskBlock - 1) / maskBlock
            if m.count != nb || m.contains(where: { $0.count != nb }) { throw fail("blockMask must be \(nb) x \(nb)") }
        }
        for (name, dims) in [("q", [batch, qHeads, qLen, qkDim]), ("k", [batch, kvHeads, kvLen, qkDim]),
                             ("v", [batch, kvHeads, kvLen, vDim]), ("o", [batch, qHeads, qLen, vDim])] {
            var n = 1
            for d in dims {
                let (r, o) = n.multipliedReportingOverflow(by: d)
                if o { throw fail("\(name) element count overflows Int") }
                n = r
            }
        }
    }

    /// The document and block masks (causal and window aside): key `j` is hidden from the
    /// query at position `p` when their documents differ or their block's bit is cleared.
    @inline(__always)
    func masksAllow(key j: Int, queryPosition p: Int) -> Bool {
        if let d = documentIDs, d[j] != d[p] { return false }
        if let m = blockMask, !m[p / maskBlock][j / maskBlock] { return false }
        return true
    }

    fileprivate func validate(q: Int, k: Int, v: Int) throws {
        try validate()
        func check(_ name: String, _ got: Int, _ want: Int, _ shape: String) throws {
            if got != want {
                throw ReferenceAttentionError(
                    "\(name) has \(got) elements, expected \(want) = \(shape) [\(self)]")
            }
        }
        try check("q", q, qCount, "[\(batch), \(qHeads), \(qLen), \(qkDim)]")
        try check("k", k, kCount, "[\(batch), \(kvHeads), \(kvLen), \(qkDim)]")
        try check("v", v, vCount, "[\(batch), \(kvHeads), \(kvLen), \(vDim)]")
    }
}

/// Float64 reference implementations of attention.
///
/// Masked-out keys are never read: visibility is decided first (from
/// positions only) and only visible K/V rows enter the arithmetic, so
/// NaN/Inf stored in masked positions cannot affect the result. NaN in
/// visible inputs propagates to NaN in the output (nothing is sanitised).
/// Non-finite (±Inf) visible inputs generally yield NaN too.
public enum ReferenceAttention {

    /// Softmax attention. For each query row with visible key set S:
    /// `s_j = scale * q·k_j` (with `softcap` c: `c * tanh(scale * q·k_j / c)`), `O = Σ_{j∈S} softmax(s)_j * v_j`,
    /// `LSE = log Σ_{j∈S} exp(s_j)` (natural log, computed as
    /// `m + log Σ exp(s_j - m)` with `m = max s_j`).
    /// A row with no visible key (including `kvLen == 0`) gets `O = 0`,
    /// `LSE = -infinity`.
    /// ALiBi adds `m_h * (j - p)` to each `s_j` (p the query's absolute position). A sink
    /// z_h is one more logit in the max and the sum with no value:
    /// `O = Σ e^(s_j - m) v_j / (e^(z_h - m) + Σ e^(s_j - m))`, `LSE = m + log(that sum)`,
    /// `m = max(z_h, max s_j)`; with a sink a row that sees no key gets `O = 0`, `LSE = z_h`.
    ///
    /// - Returns: `o` `[batch, qHeads, qLen, vDim]` and `lse` `[batch, qHeads, qLen]`.
    /// - Throws: `ReferenceAttentionError` for invalid shapes, array sizes,
    ///   heads not divisible, `window < 1` or a non-finite scale.
    public static func softmax(_ p: ReferenceAttentionProblem,
                               q: [Double], k: [Double], v: [Double]) throws -> (o: [Double], lse: [Double]) {
        try p.validate(q: q.count, k: k.count, v: v.count)
        var o = [Double](repeating: 0, count: p.oCount)
        var lse = [Double](repeating: -.infinity, count: p.lseCount)
        if p.oCount == 0 && p.lseCount == 0 { return (o, lse) }
        var scores = [Double](repeating: 0, count: max(p.kvLen, 1))
        var visible = [Bool](repeating: false, count: max(p.kvLen, 1))
        var acc = [Double](repeating: 0, count: max(p.vDim, 1))
        let group = p.qHeads / p.kvHeads
        let off = p.resolvedQOffset
        let (Lq, Lk, D, Dv) = (p.qLen, p.kvLen, p.qkDim, p.vDim)
        let (scale, causal, window, softcap) = (p.scale, p.causal, p.window, p.softcap)
        let (alibi, sinks) = (p.alibiSlopes, p.sinks)

        q.withUnsafeBufferPointer { qb in
        k.withUnsafeBufferPointer { kb in
        v.withUnsafeBufferPointer { vb in
        o.withUnsafeMutableBufferPointer { ob in
        lse.withUnsafeMutableBufferPointer { lb in
        scores.withUnsafeMutableBufferPointer { sb in
        visible.withUnsafeMutableBufferPointer { visb in
        acc.withUnsafeMutableBufferPointer { ab in
            let qp = qb.baseAddress, kp = kb.baseAddress, vp = vb.baseAddress
            let op = ob.baseAddress, lp = lb.baseAddress
            let sp = sb.baseAddress!, visp = visb.baseAddress!, ap = ab.baseAddress!
            var b = 0
            while b < p.batch {
                var h = 0
                while h < p.qHeads {
                    let hk = h / group
                    let kvHeadBase = b * p.kvHeads + hk
                    var i = 0
                    while i < Lq {
                        let row = (b * p.qHeads + h) * Lq + i
                        let pos = off + i
                        // 1. Visibility first, from positions only.
                        var anyVisible = false
                        var j = 0
                        while j < Lk {
                            let vis = isVisible(key: j, queryPosition: pos, causal: causal, window: window)
                                && p.masksAllow(key: j, queryPosition: pos)
                            visp[j] = vis
                            if vis { anyVisible = true }
                            j += 1
                        }
                        let sink = sinks?[h]
                        if !anyVisible {
                            // o row already 0; lse -inf, or the sink alone.
                            if let z = sink { lp![row] = z }
                            i += 1
                            continue
                        }
                        // 2. Scores of visible keys only; running max (the sink's logit counts).
                        let qRow = qp! + row * D
                        var m = sink ?? -Double.infinity
                        j = 0
                        while j < Lk {
                            if visp[j] {
                                let kRow = kp! + (kvHeadBase * Lk + j) * D
                                let dot = dotProduct(qRow, kRow, D)
                                var s = scale * dot
                                if let c = softcap { s = c * Foundation.tanh(s / c) }
                                if let a = alibi { s += a[h] * Double(j - pos) }
                                sp[j] = s
                                if s > m { m = s }
                            }
                            j += 1
                        }
                        // 3. exp(s - m), sum, and Σ e_j v_j.
                        var d = 0
                        while d < Dv { ap[d] = 0; d += 1 }
                        var sum = sink.map { Foundation.exp($0 - m) } ?? 0.0
                        j = 0
                        while j < Lk {
                            if visp[j] {
                                let e = Foundation.exp(sp[j] - m)
                                sum += e
                                let vRow = vp! + (kvHeadBase * Lk + j) * Dv
                                accumulate(ap, e, vRow, Dv)
                            }
                            j += 1
                        }
                        let inv = 1.0 / sum
                        let oRow = op! + row * Dv
                        d = 0
                        while d < Dv { oRow[d] = ap[d] * inv; d += 1 }
                        lp![row] = m + Foundation.log(sum)
                        i += 1
                    }
                    h += 1
                }
                b += 1
            }
        }}}}}}}}
        return (o, lse)
    }

    /// Sigmoid-normaliser attention (no normalisation across keys, no LSE):
    /// `O = Σ_{j visible} sigmoid(scale * q·k_j + bias) * v_j`. Masked keys
    /// contribute 0; a row with no visible key gives `O = 0`. The sigmoid is
    /// evaluated stably: `1/(1+e^-z)` for `z >= 0`, else `e^z/(1+e^z)`.
    ///
    /// - Returns: `o` `[batch, qHeads, qLen, vDim]`.
    /// - Throws: as `softmax`, plus for a non-finite `bias`.
    public static func sigmoid(_ p: ReferenceAttentionProblem, bias: Double,
                               q: [Double], k: [Double], v: [Double]) throws -> [Double] {
        try p.validate(q: q.count, k: k.count, v: v.count)
        if !bias.isFinite { throw ReferenceAttentionError("bias must be finite, got \(bias) [\(p)]") }
        var o = [Double](repeating: 0, count: p.oCount)
        if p.oCount == 0 { return o }
        let group = p.qHeads / p.kvHeads
        let off = p.resolvedQOffset
        let (Lq, Lk, D, Dv) = (p.qLen, p.kvLen, p.qkDim, p.vDim)
        let (scale, causal, window, alibi) = (p.scale, p.causal, p.window, p.alibiSlopes)
        if p.sinks != nil { throw ReferenceAttentionError("sigmoid attention has no denominator for sinks [\(p)]") }
        if p.softcap != nil { throw ReferenceAttentionError("sigmoid attention is not soft-capped [\(p)]") }

        q.withUnsafeBufferPointer { qb in
        k.withUnsafeBufferPointer { kb in
        v.withUnsafeBufferPointer { vb in
        o.withUnsafeMutableBufferPointer { ob in
            let qp = qb.baseAddress, kp = kb.baseAddress, vp = vb.baseAddress
            let op = ob.baseAddress!
            var b = 0
            while b < p.batch {
                var h = 0
                while h < p.qHeads {
                    let kvHeadBase = b * p.kvHeads + h / group
                    var i = 0
                    while i < Lq {
                        let row = (b * p.qHeads + h) * Lq + i
                        let pos = off + i
                        let qRow = qp! + row * D
                        let oRow = op + row * Dv
                        var j = 0
                        while j < Lk {
                            if isVisible(key: j, queryPosition: pos, causal: causal, window: window)
                                && p.masksAllow(key: j, queryPosition: pos) {
                                let kRow = kp! + (kvHeadBase * Lk + j) * D
                                let dot = dotProduct(qRow, kRow, D)
                                let w = stableSigmoid(scale * dot + bias + (alibi.map { $0[h] * Double(j - pos) } ?? 0))
                                let vRow = vp! + (kvHeadBase * Lk + j) * Dv
                                accumulate(oRow, w, vRow, Dv)
                            }
                            j += 1
                        }
                        i += 1
                    }
                    h += 1
                }
                b += 1
            }
        }}}}
        return o
    }

    /// The standard ALiBi slopes of `heads` heads, written from the paper's rule (Press et
    /// al., as BLOOM's `_get_alibi_slopes` implements it): with n the largest power of two
    /// <= heads, slope h (h < n) is `(2^(-8/n))^(h+1)`; the other heads take the odd powers
    /// `(2^(-4/n))^(1, 3, 5, ...)` of the sequence for 2n heads.
    public static func alibiSlopes(heads: Int) -> [Double] {
        guard heads > 0 else { return [] }
        var n = 1
        while n * 2 <= heads { n *= 2 }
        let base = Foundation.pow(2.0, -8.0 / Double(n)), extra = Foundation.pow(2.0, -4.0 / Double(n))
        return (0..<heads).map { h in
            h < n ? Foundation.pow(base, Double(h + 1)) : Foundation.pow(extra, Double(2 * (h - n) + 1))
        }
    }

    // MARK: - Mask (the only place the reference's mask is defined)

    /// Key `j` is visible from the query at absolute position `p` iff
    /// `(!causal || j <= p) && (window == nil || j > p - window)`.
    /// Callers guarantee `p - window` does not overflow (see `validate`).
    @inline(__always)
    static func isVisible(key j: Int, queryPosition p: Int, causal: Bool, window: Int?) -> Bool {
        if causal && j > p { return false }
        if let w = window, j <= p - w { return false }
        return true
    }

    /// `Σ_d a[d] * b[d]`, summed strictly in order d = 0, 1, ... The
    /// 4-way unroll keeps that order (one accumulator); it only cuts loop
    /// overhead in debug builds.
    @inline(__always)
    static func dotProduct(_ a: UnsafePointer<Double>, _ b: UnsafePointer<Double>, _ n: Int) -> Double {
        var s = 0.0
        var d = 0
        while d + 4 <= n {
            s += a[d] * b[d]
            s += a[d + 1] * b[d + 1]
            s += a[d + 2] * b[d + 2]
            s += a[d + 3] * b[d + 3]
            d += 4
        }
        while d < n { s += a[d] * b[d]; d += 1 }
        return s
    }

    /// `acc[d] += w * x[d]` for d in 0..<n.
    @inline(__always)
    static func accumulate(_ acc: UnsafeMutablePointer<Double>, _ w: Double, _ x: UnsafePointer<Double>, _ n: Int) {
        var d = 0
        while d + 4 <= n {
            acc[d] += w * x[d]
            acc[d + 1] += w * x[d + 1]
            acc[d + 2] += w * x[d + 2]
            acc[d + 3] += w * x[d + 3]
            d += 4
        }
        while d < n { acc[d] += w * x[d]; d += 1 }
    }

    /// Numerically stable logistic function; NaN in gives NaN out.
    @inline(__always)
    static func stableSigmoid(_ z: Double) -> Double {
        if z >= 0 {
            return 1.0 / (1.0 + Foundation.exp(-z))
        } else {
            let e = Foundation.exp(z)
            return e / (1.0 + e)
        }
    }
}
