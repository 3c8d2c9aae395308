// The op kernels of the float64 reference interpreter: one plain function per op,
// written from the doc comments in AttuneIR/Op.swift. Shapes are trusted here: the
// interpreter only calls a kernel with inputs whose shapes match the node's verified
// types under the run's symbol bindings. Kernels throw `NodeFailure` for data errors
// (a token id outside the table); the interpreter adds the node's name.

import AttuneIR
import Foundation

/// A reason a node failed; the interpreter prefixes `node %i (op, label): `.
struct NodeFailure: Error {
    var reason: String
    init(_ reason: String) { self.reason = reason }
}

enum ReferenceKernels {

    // MARK: scalar functions (shared by the ops and elementwise programs)

    /// `1 / (1 + e^-z)`, evaluated without overflow on either side.
    static func sigmoid(_ z: Double) -> Double { ReferenceAttention.stableSigmoid(z) }

    /// `x * sigmoid(x)`.
    static func silu(_ x: Double) -> Double { x * sigmoid(x) }

    /// `cap * tanh(x / cap)`.
    static func softcap(_ x: Double, cap: Double) -> Double { cap * Foundation.tanh(x / cap) }

    /// `0.5 x (1 + tanh(√(2/π)(x + 0.044715 x³)))`.
    static func gelu(_ x: Double) -> Double {
        let c = (2.0 / Double.pi).squareRoot()
        return 0.5 * x * (1 + Foundation.tanh(c * (x + 0.044715 * x * x * x)))
    }

    // MARK: dense algebra

    /// Rows of `table[vocab, hidden]` picked by `ids` (any shape) -> `ids.shape + [hidden]`.
    static func embedding(table: F64Tensor, ids: F64Tensor) throws -> F64Tensor {
        let vocab = table.shape[0], hidden = table.shape[1]
        var out = [Double](repeating: 0, count: ids.data.count * hidden)
        for (r, id) in ids.data.enumerated() {
            guard id == id.rounded(), id >= 0, id < Double(vocab) else {
                let shown = id == id.rounded() && abs(id) < 1e18 ? String(Int(id)) : "\(id)"
                throw NodeFailure("token id \(shown) is outside the table of \(vocab) rows")
            }
            let row = Int(id)
            out.replaceSubrange(r * hidden ..< (r + 1) * hidden, with: table.data[row * hidden ..< (row + 1) * hidden])
        }
        return F64Tensor(shape: ids.shape + [hidden], data: out)
    }

    /// `x[..., in] · w[out, in]ᵀ (+ bias[out])` -> `[..., out]`.
    static func linear(_ x: F64Tensor, _ w: F64Tensor, bias: F64Tensor?) -> F64Tensor {
        let nOut = w.shape[0], nIn = w.shape[1]
        let rows = x.shape.dropLast().reduce(1, *)
        var out = [Double](repeating: 0, count: rows * nOut)
        x.data.withUnsafeBufferPointer { xb in
        w.data.withUnsafeBufferPointer { wb in
        out.withUnsafeMutableBufferPointer { ob in
            guard let xp = xb.baseAddress, let wp = wb.baseAddress, let op = ob.baseAddress else { return }
            for r in 0..<rows {
                for o in 0..<nOut {
                    var s = ReferenceAttention.dotProduct(xp + r * nIn, wp + o * nIn, nIn)
                    if let bias { s += bias.data[o] }
                    op[r * nOut + o] = s
                }
            }
        }}}
        return F64Tensor(shape: Array(x.shape.dropLast()) + [nOut], data: out)
    }

    /// Batched `a[..., m, k] · b[..., k, n]`, or `· bᵀ` with `b[..., n, k]`. Every
    /// output element sums over k in order 0, 1, ... in both layouts.
    static func matmul(_ a: F64Tensor, _ b: F64Tensor, transposeB: Bool) -> F64Tensor {
        let r = a.rank
        let m = a.shape[r - 2], k = a.shape[r - 1]
        let n = transposeB ? b.shape[r - 2] : b.shape[r - 1]
        let batch = a.shape.dropLast(2).reduce(1, *)
        var out = [Double](repeating: 0, count: batch * m * n)
        a.data.withUnsafeBufferPointer { ab in
        b.data.withUnsafeBufferPointer { bb in
        out.withUnsafeMutableBufferPointer { ob in
            guard let ap = ab.baseAddress, let bp = bb.baseAddress, let op = ob.baseAddress else { return }
            for t in 0..<batch {
                let aT = ap + t * m * k, bT = bp + t * k * n, oT = op + t * m * n
                for i in 0..<m {
                    if transposeB {
                        for j in 0..<n { oT[i * n + j] = ReferenceAttention.dotProduct(aT + i * k, bT + j * k, k) }
                    } else {
                        for kk in 0..<k { ReferenceAttention.accumulate(oT + i * n, aT[i * k + kk], bT + kk * n, n) }
                    }
                }
            }
        }}}
        return F64Tensor(shape: Array(a.shape.dropLast()) + [n], data: out)
    }

    // MARK: elementwise

    /// `f(a, b)` with `b` equal to `a`'s trailing dims, repeated over its leading dims.
    static func broadcast(_ a: F64Tensor, _ b: F64Tensor, _ f: (Double, Double) -> Double) -> F64Tensor {
        let nb = b.data.count
        var out = a.data
        for i in out.indices { out[i] = f(out[i], b.data[i % nb]) }
        return F64Tensor(shape: a.shape, data: out)
    }

    static func map(_ x: F64Tensor, _ f: (Double) -> Double) -> F64Tensor {
        F64Tensor(shape: x.shape, data: x.data.map(f))
    }

    /// Evaluates the program per element of `inputs[0]`; input k is broadcast like `add`.
    static func elementwise(_ program: ElementwiseProgram, _ inputs: [F64Tensor]) -> F64Tensor {
        let shape = inputs[0].shape
        var out = [Double](repeating: 0, count: inputs[0].data.count)
        for i in out.indices {
            out[i] = evaluate(program.expr) { k in inputs[k].data[i % inputs[k].data.count] }
        }
        return F64Tensor(shape: shape, data: out)
    }

    static func evaluate(_ e: ElementwiseExpr, _ input: (Int) -> Double) -> Double {
        switch e {
        case .input(let k): return input(k)
        case .constant(let c): return c
        case .add(let a, let b): return evaluate(a, input) + evaluate(b, input)
        case .mul(let a, let b): return evaluate(a, input) * evaluate(b, input)
        case .silu(let a): return silu(evaluate(a, input))
        case .gelu(let a): return gelu(evaluate(a, input))
        }
    }

    // MARK: normalisation

    /// Applies `f(row, out)` to each row of the last axis.
    private static func rows(_ x: F64Tensor, _ f: (ArraySlice<Double>, inout ArraySlice<Double>) -> Void) -> F64Tensor {
        let n = x.shape.last ?? 1
        var out = x.data
        if n > 0 {
            for start in stride(from: 0, to: x.data.count, by: n) {
                f(x.data[start ..< start + n], &out[start ..< start + n])
            }
        }
        return F64Tensor(shape: x.shape, data: out)
    }

    /// `x / sqrt(mean(x²) + eps) * weight` over the last axis.
    static func rmsNorm(_ x: F64Tensor, _ w: F64Tensor, eps: Double) -> F64Tensor {
        rows(x) { row, out in
            var ss = 0.0
            for v in row { ss += v * v }
            let inv = 1 / (ss / Double(row.count) + eps).squareRoot()
            for (j, i) in row.indices.enumerated() { out[i] = row[i] * inv * w.data[j] }
        }
    }

    /// RMSNorm of each group of `w.count` channels of `x`'s rows on its own, with one weight.
    static func headRMSNorm(_ x: F64Tensor, _ w: F64Tensor, eps: Double) -> F64Tensor {
        let d = w.shape[0]
        let heads = rmsNorm(F64Tensor(shape: [x.data.count / d, d], data: x.data), w, eps: eps)
        return F64Tensor(shape: x.shape, data: heads.data)
    }

    /// `(x - mean) / sqrt(var + eps) * weight + bias` over the last axis (population variance).
    static func layerNorm(_ x: F64Tensor, _ w: F64Tensor, _ b: F64Tensor, eps: Double) -> F64Tensor {
        rows(x) { row, out in
            let n = Double(row.count)
            var sum = 0.0
            for v in row { sum += v }
            let mean = sum / n
            var sq = 0.0
            for v in row { sq += (v - mean) * (v - mean) }
            let inv = 1 / (sq / n + eps).squareRoot()
            for (j, i) in row.indices.enumerated() { out[i] = (row[i] - mean) * inv * w.data[j] + b.data[j] }
        }
    }

    /// `exp(x - max) / Σ exp(x - max)` over the last axis. A row of all -inf gives NaN, as in PyTorch.
    static func softmax(_ x: F64Tensor) -> F64Tensor {
        rows(x) { row, out in
            let m = row.max() ?? 0
            var sum = 0.0
            for i in row.indices {
                let e = Foundation.exp(row[i] - m)
                out[i] = e
                sum += e
            }
            for i in row.indices { out[i] /= sum }
        }
    }

    // MARK: positions and attention

    /// RoPE in the rotate-half layout on `x[seq, heads*headDim]` at `positions[seq]`:
    /// within each head, for i < rotaryDim/2, angle = pos * invFreq[i], with invFreq the
    /// table for this pass's total length L = max(positions) + 1 (transformers' `seq_len`);
    /// c = cos(angle)·s, n = sin(angle)·s with s the attention scaling;
    /// `out[i] = x[i] c - x[i + rd/2] n`, `out[i + rd/2] = x[i + rd/2] c + x[i] n`;
    /// dims >= rotaryDim pass through.
    static func rope(_ x: F64Tensor, positions: F64Tensor, heads: Int, headDim: Int, rotaryDim: Int,
                     frequencies: RopeFrequencies) -> F64Tensor {
        let seq = x.shape[0], width = x.shape[1], half = rotaryDim / 2
        let length = Int(positions.data.max() ?? -1) + 1
        let invFreq = frequencies.inverseFrequencies(rotaryDim: rotaryDim, totalLength: length)
        let scaling = frequencies.attentionScaling
        var out = x.data
        for s in 0..<seq {
            let pos = positions.data[s]
            let cosines = invFreq.map { Foundation.cos(pos * $0) * scaling }
            let sines = invFreq.map { Foundation.sin(pos * $0) * scaling }
            for h in 0..<heads {
                let base = s * width + h * headDim
                for i in 0..<half {
                    let x1 = x.data[base + i], x2 = x.data[base + i + half]
                    out[base + i] = x1 * cosines[i] - x2 * sines[i]
                    out[base + i + half] = x2 * cosines[i] + x1 * sines[i]
                }
            }
        }
        return F64Tensor(shape: x.shape, data: out)
    }

    /// Additive mask `[seq, kv]`: query row i sits at position p = kv - seq + i and sees
    /// key j iff (!causal || j <= p) && (window == nil || j > p - window); 0 where it
    /// sees, -inf elsewhere.
    static func attentionMask(seq: Int, kv: Int, causal: Bool, window: Int?) -> F64Tensor {
        var out = [Double](repeating: 0, count: seq * kv)
        for i in 0..<seq {
            let p = kv - seq + i
            for j in 0..<kv {
                var sees = true
                if causal && j > p { sees = false }
                if let w = window, j <= p - w { sees = false }
                if !sees { out[i * kv + j] = -.infinity }
            }
        }
        return F64Tensor(shape: [seq, kv], data: out)
    }

    /// `attention(q[seq, H*D], k[kv, Hkv*D], v[kv, Hkv*Dv])` -> `[seq, H*Dv]` through
    /// `ReferenceAttention` (batch 1, q_offset = kv - seq); `sinks` the node's sink logits
    /// when it has them, ALiBi's slopes the reference's own standard ones.
    static func attention(_ q: F64Tensor, _ k: F64Tensor, _ v: F64Tensor, _ a: AttentionAttrs,
                          sinks: F64Tensor? = nil) throws -> F64Tensor {
        let seq = q.shape[0], kv = k.shape[0]
        let problem = ReferenceAttentionProblem(
            batch: 1, qHeads: a.heads, kvHeads: a.kvHeads, qLen: seq, kvLen: kv, qkDim: a.headDim,
            vDim: a.vHeadDim, scale: a.scale, causal: a.causal, qOffset: kv - seq, window: a.window, softcap: a.softcap,
            alibiSlopes: a.alibi ? ReferenceAttention.alibiSlopes(heads: a.heads) : nil, sinks: sinks?.data)
        let qh = splitHeads(q, heads: a.heads), kh = splitHeads(k, heads: a.kvHeads), vh = splitHeads(v, heads: a.kvHeads)
        let o: [Double]
        do {
            switch a.normalizer {
            case .softmax: o = try ReferenceAttention.softmax(problem, q: qh, k: kh, v: vh).o
            case .sigmoid(let bias): o = try ReferenceAttention.sigmoid(problem, bias: bias, q: qh, k: kh, v: vh)
            }
        } catch let e as ReferenceAttentionError {
            throw NodeFailure(e.message)
        }
        return mergeHeads(o, heads: a.heads, rows: seq, dim: a.vHeadDim)
    }

    /// `[rows, heads*dim]` -> `[heads, rows, dim]`, flat.
    static func splitHeads(_ x: F64Tensor, heads: Int) -> [Double] {
        let rows = x.shape[0], dim = x.shape[1] / heads
        var out = [Double](repeating: 0, count: x.data.count)
        for h in 0..<heads {
            for r in 0..<rows {
                for d in 0..<dim { out[(h * rows + r) * dim + d] = x.data[r * heads * dim + h * dim + d] }
            }
        }
        return out
    }

    /// `[heads, rows, dim]`, flat -> `[rows, heads*dim]`.
    static func mergeHeads(_ x: [Double], heads: Int, rows: Int, dim: Int) -> F64Tensor {
        var out = [Double](repeating: 0, count: x.count)
        for h in 0..<heads {
            for r in 0..<rows {
                for d in 0..<dim { out[r * heads * dim + h * dim + d] = x[(h * rows + r) * dim + d] }
            }
        }
        return F64Tensor(shape: [rows, heads * dim], data: out)
    }

    // MARK: fused projections

    /// `act(x W_gᵀ) * (x W_uᵀ)` with `w[2*inter, hidden]` = gate rows then up rows:
    /// SwiGLU with `silu` (the default), GeGLU with `gelu`.
    static func swiGLU(_ x: F64Tensor, _ w: F64Tensor, activation act: (Double) -> Double = silu) -> F64Tensor {
        let both = linear(x, w, bias: nil)
        let inter = w.shape[0] / 2
        let rows = x.shape.dropLast().reduce(1, *)
        var out = [Double](repeating: 0, count: rows * inter)
        for r in 0..<rows {
            for j in 0..<inter {
                out[r * inter + j] = act(both.data[r * 2 * inter + j]) * both.data[r * 2 * inter + inter + j]
            }
        }
        return F64Tensor(shape: Array(x.shape.dropLast()) + [inter], data: out)
    }

    /// `x Wᵀ (+ bias)` split by columns into q [H*D], k [Hkv*D], v [Hkv*D], with RoPE on q and k
    /// (after their per-head RMSNorm when `norms` = (q_norm, k_norm) are given).
    static func qkvRope(_ x: F64Tensor, _ w: F64Tensor, bias: F64Tensor?, norms: (F64Tensor, F64Tensor)?,
                        positions: F64Tensor, _ a: QKVRopeAttrs) -> [F64Tensor] {
        let y = linear(x, w, bias: bias)
        let qw = a.heads * a.headDim, kw = a.kvHeads * a.headDim
        var q = slice(y, axis: 1, start: 0, end: qw)
        var k = slice(y, axis: 1, start: qw, end: qw + kw)
        if let (qn, kn) = norms, let eps = a.qkNormEps {
            q = headRMSNorm(q, qn, eps: eps)
            k = headRMSNorm(k, kn, eps: eps)
        }
        let v = slice(y, axis: 1, start: qw + kw, end: qw + 2 * kw)
        return [
            rope(q, positions: positions, heads: a.heads, headDim: a.headDim, rotaryDim: a.rotaryDim, frequencies: a.frequencies),
            rope(k, positions: positions, heads: a.kvHeads, headDim: a.headDim, rotaryDim: a.rotaryDim, frequencies: a.frequencies),
            v,
        ]
    }

    // MARK: layout

    /// Splits a shape around `axis`: (product before, the axis, product after).
    private static func around(_ shape: [Int], _ axis: Int) -> (outer: Int, n: Int, inner: Int) {
        (shape[..<axis].reduce(1, *), shape[axis], shape[(axis + 1)...].reduce(1, *))
    }

    /// `out.shape[d] = x.shape[perm[d]]`.
    static func transpose(_ x: F64Tensor, perm: [Int]) -> F64Tensor {
        let shape = perm.map { x.shape[$0] }
        var inStrides = [Int](repeating: 1, count: x.rank)
        for d in stride(from: x.rank - 2, through: 0, by: -1) { inStrides[d] = inStrides[d + 1] * x.shape[d + 1] }
        let strides = perm.map { inStrides[$0] }   // input stride of each output axis
        var out = [Double](repeating: 0, count: x.data.count)
        var index = [Int](repeating: 0, count: shape.count)
        var offset = 0
        for o in out.indices {
            out[o] = x.data[offset]
            // Odometer over the output index, keeping the input offset in step.
            var d = shape.count - 1
            while d >= 0 {
                index[d] += 1
                offset += strides[d]
                if index[d] < shape[d] { break }
                offset -= strides[d] * index[d]
                index[d] = 0
                d -= 1
            }
        }
        return F64Tensor(shape: shape, data: out)
    }

    /// `[start, end)` along `axis`.
    static func slice(_ x: F64Tensor, axis: Int, start: Int, end: Int) -> F64Tensor {
        let (outer, n, inner) = around(x.shape, axis)
        var out: [Double] = []
        out.reserveCapacity(outer * (end - start) * inner)
        for o in 0..<outer {
            out.append(contentsOf: x.data[(o * n + start) * inner ..< (o * n + end) * inner])
        }
        var shape = x.shape
        shape[axis] = end - start
        return F64Tensor(shape: shape, data: out)
    }

    /// Inputs joined along `axis`.
    static func concat(_ xs: [F64Tensor], axis: Int) -> F64Tensor {
        let outer = xs[0].shape[..<axis].reduce(1, *)
        var out: [Double] = []
        out.reserveCapacity(xs.reduce(0) { $0 + $1.data.count })
        for o in 0..<outer {
            for x in xs {
                let chunk = x.shape[axis...].reduce(1, *)
                out.append(contentsOf: x.data[o * chunk ..< (o + 1) * chunk])
            }
        }
        var shape = xs[0].shape
        shape[axis] = xs.reduce(0) { $0 + $1.shape[axis] }
        return F64Tensor(shape: shape, data: out)
    }

    /// Each slice along `axis` repeated `repeats` times in place: [a, b] -> [a, a, b, b].
    static func repeatInterleave(_ x: F64Tensor, axis: Int, repeats: Int) -> F64Tensor {
        let (outer, n, inner) = around(x.shape, axis)
        var out: [Double] = []
        out.reserveCapacity(x.data.count * repeats)
        for o in 0..<outer {
            for i in 0..<n {
                let piece = x.data[(o * n + i) * inner ..< (o * n + i + 1) * inner]
                for _ in 0..<repeats { out.append(contentsOf: piece) }
            }
        }
        var shape = x.shape
        shape[axis] = n * repeats
        return F64Tensor(shape: shape, data: out)
    }
}
