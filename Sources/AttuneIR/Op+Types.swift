/// The type rule of every op: given its input types, the types of its results, or an
/// `IRError` whose message says which input is wrong and why.
extension Op {
    /// Number of inputs the op takes.
    public var inputCount: Int {
        switch self {
        case .input, .weight: return 0
        case .scale, .silu, .gelu, .softcap, .softmax, .attentionMask, .kvAppend, .reshape, .transpose, .slice,
             .repeatInterleave: return 1
        case .embedding, .add, .mul, .matmul, .rmsNorm, .headRMSNorm, .rope, .swiGLU, .geGLU: return 2
        case .linear(let bias): return bias ? 3 : 2
        case .layerNorm, .addRMSNorm: return 3
        case .attention(let a):
            if let s = a.sinksInput { return s + 1 }
            if case .consume = a.selection { return 4 }
            return 3
        case .qkvRope(let a): return a.positionsInput + 1
        case .elementwise(let p): return p.expr.arity
        case .concat: return -1  // one or more
        }
    }

    public func resultTypes(_ t: [TensorType]) throws -> [TensorType] {
        if inputCount >= 0 && t.count != inputCount {
            throw IRError("expects \(inputCount) inputs, got \(t.count)")
        }
        func float(_ i: Int, _ what: String) throws {
            guard t[i].dtype.isFloat else { throw IRError("\(what) must be a float tensor, got \(t[i])") }
        }
        func rank(_ i: Int, _ r: Int, _ what: String) throws {
            guard t[i].rank == r else { throw IRError("\(what) must have rank \(r), got \(t[i])") }
        }
        func same(_ a: Dim, _ b: Dim, _ what: String) throws {
            guard a == b else { throw IRError("\(what): \(a) != \(b)") }
        }
        func suffixBroadcast(_ what: String) throws {
            let a = t[0].shape, b = t[1].shape
            guard b.count <= a.count, Array(a.suffix(b.count)) == b else {
                throw IRError("\(what): \(t[1]) does not broadcast to \(t[0]) (must equal its trailing dims)")
            }
        }
        let f32 = { (shape: [Dim]) in TensorType(.f32, shape) }

        switch self {
        case .input, .weight:
            throw IRError("sources have declared types")

        case .embedding:
            try float(0, "embedding table"); try rank(0, 2, "embedding table")
            guard t[1].dtype == .i32 else { throw IRError("token ids must be i32, got \(t[1])") }
            return [f32(t[1].shape + [t[0].shape[1]])]

        case .linear(let hasBias):
            try float(0, "x"); try float(1, "weight"); try rank(1, 2, "weight [out, in]")
            guard let inner = t[0].shape.last else { throw IRError("x must have rank >= 1") }
            try same(inner, t[1].shape[1], "x's last dim vs weight's in dim")
            if hasBias {
                try float(2, "bias"); try rank(2, 1, "bias")
                try same(t[2].shape[0], t[1].shape[0], "bias length vs weight's out dim")
            }
            return [f32(Array(t[0].shape.dropLast()) + [t[1].shape[0]])]

        case .matmul(let transposeB):
            try float(0, "a"); try float(1, "b")
            guard t[0].rank >= 2, t[0].rank == t[1].rank else {
                throw IRError("a and b must have the same rank >= 2, got \(t[0]) and \(t[1])")
            }
            let a = t[0].shape, b = t[1].shape
            guard a.dropLast(2) == b.dropLast(2) else { throw IRError("batch dims differ: \(t[0]) vs \(t[1])") }
            let (k2, n) = transposeB ? (b[b.count - 1], b[b.count - 2]) : (b[b.count - 2], b[b.count - 1])
            try same(a[a.count - 1], k2, "contraction dims")
            return [f32(Array(a.dropLast()) + [n])]

        case .add, .mul:
            try float(0, "a"); try float(1, "b"); try suffixBroadcast("b")
            return [f32(t[0].shape)]

        case .scale(let factor):
            guard factor.isFinite else { throw IRError("scale factor must be finite, got \(factor)") }
            try float(0, "x")
            return [f32(t[0].shape)]

        case .softcap(let cap):
            guard cap > 0, Float(cap).isNormal else { throw IRError("softcap cap must be a positive normal float, got \(cap)") }
            try float(0, "x")
            return [f32(t[0].shape)]

        case .silu, .gelu, .softmax:
            try float(0, "x")
            if case .softmax = self, t[0].rank == 0 { throw IRError("softmax needs rank >= 1") }
            return [f32(t[0].shape)]

        case .elementwise:
            guard !t.isEmpty else { throw IRError("elementwise needs at least one input") }
            for i in t.indices {
                try float(i, "in\(i)")
                let a = t[0].shape, b = t[i].shape
                guard b.count <= a.count, Array(a.suffix(b.count)) == b else {
                    throw IRError("in\(i) \(t[i]) does not broadcast to in0 \(t[0])")
                }
            }
            return [f32(t[0].shape)]

        case .rmsNorm(let eps), .addRMSNorm(let eps):
            guard eps >= 0, eps.isFinite else { throw IRError("eps must be finite and >= 0, got \(eps)") }
            let fused: Bool = { if case .addRMSNorm = self { return true } else { return false } }()
            let w = fused ? 2 : 1
            try float(0, "x"); try float(w, "weight"); try rank(w, 1, "weight")
            if fused {
                try float(1, "b")
                guard t[0].shape == t[1].shape else { throw IRError("a \(t[0]) and b \(t[1]) must have the same shape") }
            }
            guard let last = t[0].shape.last else { throw IRError("x must have rank >= 1") }
            try same(last, t[w].shape[0], "x's last dim vs weight length")
            return fused ? [f32(t[0].shape), f32(t[0].shape)] : [f32(t[0].shape)]

        case .headRMSNorm(let eps):
            guard eps >= 0, eps.isFinite else { throw IRError("eps must be finite and >= 0, got \(eps)") }
            try float(0, "x"); try rank(0, 2, "x [seq, heads*head_dim]"); try float(1, "weight"); try rank(1, 1, "weight")
            guard let width = t[0].shape[1].fixedValue, let d = t[1].shape[0].fixedValue, d > 0, width % d == 0 else {
                throw IRError("x's width \(t[0].shape[1]) must be a fixed multiple of the weight length \(t[1].shape[0]) (the head dim)")
            }
            return [f32(t[0].shape)]

        case .layerNorm(let eps):
            guard eps >= 0, eps.isFinite else { throw IRError("eps must be finite and >= 0, got \(eps)") }
            try float(0, "x"); try rank(1, 1, "weight"); try rank(2, 1, "bias")
            guard let last = t[0].shape.last else { throw IRError("x must have rank >= 1") }
            try same(last, t[1].shape[0], "x's last dim vs weight length")
            try same(last, t[2].shape[0], "x's last dim vs bias length")
            return [f32(t[0].shape)]

        case .rope(let a):
            try checkRope(heads: a.heads, headDim: a.headDim, rotaryDim: a.rotaryDim, frequencies: a.frequencies)
            try float(0, "x"); try rank(0, 2, "x [seq, heads*head_dim]")
            try same(t[0].shape[1], .fixed(a.heads * a.headDim), "x's width vs heads*head_dim")
            try positions(t[1], seq: t[0].shape[0])
            return [f32(t[0].shape)]

        case .attentionMask(_, let window):
            if let window, window < 1 { throw IRError("window must be >= 1, got \(window)") }
            guard t[0].rank >= 2 else { throw IRError("scores must have rank >= 2, got \(t[0])") }
            return [f32(Array(t[0].shape.suffix(2)))]

        case .attention(let a):
            guard a.heads > 0, a.kvHeads > 0, a.heads % a.kvHeads == 0 else {
                throw IRError("heads (\(a.heads)) must be a positive multiple of kv_heads (\(a.kvHeads))")
            }
            guard a.headDim > 0, a.vHeadDim > 0 else { throw IRError("head dims must be positive") }
            guard a.scale.isFinite else { throw IRError("scale must be finite, got \(a.scale)") }
            if let w = a.window, w < 1 { throw IRError("window must be >= 1, got \(w)") }
            if case .sigmoid(let bias) = a.normalizer, !bias.isFinite { throw IRError("sigmoid bias must be finite") }
            if let c = a.softcap {
                guard c > 0, Float(c).isNormal else { throw IRError("softcap must be a positive normal float, got \(c)") }
                guard case .softmax = a.normalizer else { throw IRError("softcap applies to softmax attention only") }
            }
            if a.sinks, case .sigmoid = a.normalizer {
                throw IRError("sinks apply to softmax attention only (a sink logit joins the softmax denominator)")
            }
            if let s = a.sinksInput {
                guard t[s] == TensorType(.f32, [.fixed(a.heads)]) else { throw IRError("sinks input must be f32[\(a.heads)] (one logit per head), got \(t[s])") }
            }
            for i in 0..<3 { try float(i, ["q", "k", "v"][i]); try rank(i, 2, ["q", "k", "v"][i]) }
            try same(t[0].shape[1], .fixed(a.heads * a.headDim), "q width vs heads*head_dim")
            try same(t[1].shape[1], .fixed(a.kvHeads * a.headDim), "k width vs kv_heads*head_dim")
            try same(t[2].shape[1], .fixed(a.kvHeads * a.vHeadDim), "v width vs kv_heads*v_head_dim")
            try same(t[1].shape[0], t[2].shape[0], "k rows vs v rows")
            let out = f32([t[0].shape[0], .fixed(a.heads * a.vHeadDim)])
            let selection = { (w: Int) in TensorType(.i32, [t[0].shape[0], .fixed(w)]) }
            switch a.selection {
            case nil: return [out]
            case .produce(let w):
                guard w > 0, w % a.kvHeads == 0 else { throw IRError("selection width \(w) must be a positive multiple of kv_heads (\(a.kvHeads))") }
                return [out, selection(w)]
            case .consume(let w):
                guard t[3] == selection(w) else { throw IRError("selection input must be \(selection(w)) (an anchor's keys), got \(t[3])") }
                return [out]
            }

        case .kvAppend(let layer, _):
            guard layer >= 0 else { throw IRError("layer must be >= 0") }
            try float(0, "new rows"); try rank(0, 2, "new rows [seq, width]")
            return [f32([.symbol("kv"), t[0].shape[1]])]

        case .swiGLU, .geGLU:
            try float(0, "x"); try float(1, "weight"); try rank(1, 2, "weight [2*inter, hidden]")
            guard let last = t[0].shape.last else { throw IRError("x must have rank >= 1") }
            try same(last, t[1].shape[1], "x's last dim vs weight's in dim")
            guard let rows = t[1].shape[0].fixedValue, rows % 2 == 0 else {
                throw IRError("weight rows must be a fixed even number (gate rows then up rows), got \(t[1].shape[0])")
            }
            return [f32(Array(t[0].shape.dropLast()) + [.fixed(rows / 2)])]

        case .qkvRope(let a):
            try checkRope(heads: a.heads, headDim: a.headDim, rotaryDim: a.rotaryDim, frequencies: a.frequencies)
            guard a.kvHeads > 0, a.heads % a.kvHeads == 0 else {
                throw IRError("heads (\(a.heads)) must be a multiple of kv_heads (\(a.kvHeads))")
            }
            try float(0, "x"); try rank(0, 2, "x [seq, hidden]"); try rank(1, 2, "weight")
            let width = (a.heads + 2 * a.kvHeads) * a.headDim
            try same(t[1].shape[0], .fixed(width), "weight rows vs (heads + 2*kv_heads)*head_dim")
            try same(t[1].shape[1], t[0].shape[1], "weight's in dim vs x's width")
            if let b = a.biasInput { try rank(b, 1, "bias"); try same(t[b].shape[0], .fixed(width), "bias length") }
            if let n = a.qNormInput {
                guard let eps = a.qkNormEps, eps >= 0, eps.isFinite else { throw IRError("qk_norm_eps must be finite and >= 0") }
                for (i, what) in [(n, "q_norm"), (n + 1, "k_norm")] {
                    try float(i, what); try rank(i, 1, what)
                    try same(t[i].shape[0], .fixed(a.headDim), "\(what) length vs head_dim")
                }
            }
            try positions(t[a.positionsInput], seq: t[0].shape[0])
            let s = t[0].shape[0]
            return [f32([s, .fixed(a.heads * a.headDim)]), f32([s, .fixed(a.kvHeads * a.headDim)]),
                    f32([s, .fixed(a.kvHeads * a.headDim)])]

        case .reshape(let shape):
            let from = TensorType.elementCount(t[0].shape), to = TensorType.elementCount(shape)
            guard from == to, !shape.contains(where: { ($0.fixedValue ?? 1) < 0 }) else {
                throw IRError("cannot reshape \(t[0]) to [\(shape.map(\.description).joined(separator: ", "))]: element counts differ")
            }
            return [TensorType(t[0].dtype, shape)]

        case .transpose(let perm):
            guard perm.sorted() == Array(0..<t[0].rank) else {
                throw IRError("perm \(perm) is not a permutation of the \(t[0].rank) axes of \(t[0])")
            }
            return [TensorType(t[0].dtype, perm.map { t[0].shape[$0] })]

        case .slice(let axis, let start, let end):
            guard axis >= 0, axis < t[0].rank else { throw IRError("axis \(axis) out of range for \(t[0])") }
            guard let n = t[0].shape[axis].fixedValue else {
                throw IRError("cannot slice the symbolic dim \(t[0].shape[axis]) of \(t[0])")
            }
            let e = end ?? n
            guard start >= 0, start <= e, e <= n else { throw IRError("slice [\(start), \(e)) out of range 0..<\(n)") }
            var shape = t[0].shape
            shape[axis] = .fixed(e - start)
            return [TensorType(t[0].dtype, shape)]

        case .concat(let axis):
            guard let first = t.first else { throw IRError("concat needs at least one input") }
            guard axis >= 0, axis < first.rank else { throw IRError("axis \(axis) out of range for \(first)") }
            var total = 0
            for (i, x) in t.enumerated() {
                guard x.dtype == first.dtype, x.rank == first.rank else {
                    throw IRError("input \(i) \(x) does not match \(first) in dtype and rank")
                }
                for d in 0..<x.rank where d != axis && x.shape[d] != first.shape[d] {
                    throw IRError("input \(i) \(x) differs from \(first) on axis \(d)")
                }
                guard let n = x.shape[axis].fixedValue else { throw IRError("cannot concat along symbolic dim of \(x)") }
                total += n
            }
            var shape = first.shape
            shape[axis] = .fixed(total)
            return [TensorType(first.dtype, shape)]

        case .repeatInterleave(let axis, let repeats):
            guard axis >= 0, axis < t[0].rank else { throw IRError("axis \(axis) out of range for \(t[0])") }
            guard repeats >= 1 else { throw IRError("repeats must be >= 1, got \(repeats)") }
            guard let n = t[0].shape[axis].fixedValue else { throw IRError("cannot repeat the symbolic dim of \(t[0])") }
            var shape = t[0].shape
            shape[axis] = .fixed(n * repeats)
            return [TensorType(t[0].dtype, shape)]
        }
    }

    private func checkRope(heads: Int, headDim: Int, rotaryDim: Int, frequencies: RopeFrequencies) throws {
        guard heads > 0, headDim > 0 else { throw IRError("heads and head_dim must be positive") }
        guard rotaryDim > 0, rotaryDim % 2 == 0, rotaryDim <= headDim else {
            throw IRError("rotary_dim must be even and in 2...\(headDim), got \(rotaryDim)")
        }
        try frequencies.check(rotaryDim: rotaryDim)
    }

    private func positions(_ p: TensorType, seq: Dim) throws {
        guard p.dtype == .i32, p.rank == 1 else { throw IRError("positions must be i32[seq], got \(p)") }
        guard p.shape[0] == seq else { throw IRError("positions length \(p.shape[0]) != seq \(seq)") }
    }
}
