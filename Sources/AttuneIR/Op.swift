/// How attention turns scores into weights.
public enum AttentionNormalizer: Sendable, Hashable {
    /// softmax over visible keys.
    case softmax
    /// sigmoid(score + bias) per key, no row normalisation (FlashSigmoid). The model's
    /// semantics: never substituted for softmax by a compiler pass or the tuner.
    case sigmoid(bias: Double)
}

/// A kernel chosen for an attention node by kernel selection, with its parameters.
public struct KernelBinding: Sendable, Hashable {
    public var kernel: String
    public var parameters: [String: Double]
    /// Why this kernel was chosen (a rule's name or a tuning record), shown by `inspect`.
    public var reason: String
    /// Per-node arrays that do not fit a scalar parameter, by name: e.g. `phi`, one
    /// calibrated value per q head for `unified_max`. Compiled into the module as constants.
    public var tables: [String: [Double]]

    public init(kernel: String, parameters: [String: Double] = [:], reason: String = "", tables: [String: [Double]] = [:]) {
        self.kernel = kernel
        self.parameters = parameters
        self.reason = reason
        self.tables = tables
    }

    /// Who chose the kernel: a selection rule (tuning may replace its parameters) or
    /// someone (a user's choice, a policy, the tuner; kept as given). The IR carries only
    /// `reason`, so a rule's reason starts with `rulePrefix` and the origin survives
    /// printing and parsing.
    public enum Origin: Sendable { case rule, chosen }
    public static let rulePrefix = "rule: "
    public var origin: Origin { reason.hasPrefix(Self.rulePrefix) ? .rule : .chosen }

    /// A binding a selection rule made, `why` saying which rule.
    public static func rule(_ kernel: String, _ why: String) -> KernelBinding {
        KernelBinding(kernel: kernel, reason: rulePrefix + why)
    }
}

/// The part an attention node plays in top-k key selection shared between layers
/// (`kascade`): an anchor produces its selection as a second result, `i32[seq, width]`
/// (row s holds query tile s's selected key positions, `width / kv_heads` per kv head),
/// and each reuse node takes that value as a fourth input. The selection is a value in the
/// graph, so `inspect` shows which node's keys each layer attends.
public enum KeySelection: Sendable, Hashable {
    case produce(width: Int)
    case consume(width: Int)

    public var width: Int {
        switch self { case .produce(let w), .consume(let w): return w }
    }
}

/// Attributes of `attention`: q [seq, heads*headDim], k [kv, kvHeads*headDim],
/// v [kv, kvHeads*vHeadDim] -> [seq, heads*vHeadDim]. Causal masking is bottom-right
/// aligned: query row i sits at position kv - seq + i.
public struct AttentionAttrs: Sendable, Hashable {
    public var heads: Int
    public var kvHeads: Int
    public var headDim: Int
    public var vHeadDim: Int
    public var scale: Double
    public var causal: Bool
    public var window: Int?
    public var normalizer: AttentionNormalizer
    public var binding: KernelBinding?
    /// The kernel decode steps (one query row) run instead of `binding`, when the user
    /// chose a different one (`--decode-attention`); nil: `binding` runs every call.
    public var decodeBinding: KernelBinding?
    /// nil for ordinary attention; see `KeySelection`.
    public var selection: KeySelection?
    /// Logit soft-cap c: each score s = scale·q·k becomes c·tanh(s/c) before the mask
    /// (Gemma 2's `attn_logit_softcapping`); nil = none.
    public var softcap: Double?
    /// ALiBi with the standard slopes of `heads` (BLOOM's rule): the (capped) score of the
    /// query at position p and key j gains slope_h·(j − p).
    public var alibi: Bool
    /// Attention sinks: the node's last input is a weight f32[heads] of sink logits, each
    /// joining its head's softmax denominator with no value (gpt-oss).
    public var sinks: Bool

    public init(heads: Int, kvHeads: Int, headDim: Int, vHeadDim: Int? = nil, scale: Double? = nil,
                causal: Bool = true, window: Int? = nil, normalizer: AttentionNormalizer = .softmax,
                binding: KernelBinding? = nil, selection: KeySelection? = nil, softcap: Double? = nil,
                decodeBinding: KernelBinding? = nil, alibi: Bool = false, sinks: Bool = false) {
        self.heads = heads
        self.kvHeads = kvHeads
        self.headDim = headDim
        self.vHeadDim = vHeadDim ?? headDim
        self.scale = scale ?? 1 / Double(headDim).squareRoot()
        self.causal = causal
        self.window = window
        self.normalizer = normalizer
        self.binding = binding
        self.decodeBinding = decodeBinding
        self.selection = selection
        self.softcap = softcap
        self.alibi = alibi
        self.sinks = sinks
    }

    /// The input holding the sink logits (after a consumed key selection), or nil.
    public var sinksInput: Int? {
        guard sinks else { return nil }
        if case .consume = selection { return 4 }
        return 3
    }
}

/// Rotary position embedding in Hugging Face's "rotate half" layout: within each head,
/// element i < rotaryDim/2 pairs with i + rotaryDim/2; angle = position * invFreq[i], and
/// cos/sin are scaled by the attention scaling (see `RopeFrequencies`; plain RoPE:
/// invFreq[i] = theta^(-2i/rotaryDim), scaling 1). Elements >= rotaryDim pass through.
public struct RopeAttrs: Sendable, Hashable {
    public var heads: Int
    public var headDim: Int
    public var rotaryDim: Int
    public var frequencies: RopeFrequencies

    public init(heads: Int, headDim: Int, rotaryDim: Int? = nil, frequencies: RopeFrequencies) {
        self.heads = heads
        self.headDim = headDim
        self.rotaryDim = rotaryDim ?? headDim
        self.frequencies = frequencies
    }

    /// Plain RoPE with base `theta`.
    public init(heads: Int, headDim: Int, rotaryDim: Int? = nil, theta: Double) {
        self.init(heads: heads, headDim: headDim, rotaryDim: rotaryDim, frequencies: .theta(theta))
    }
}

/// Which half of a layer's KV cache a `kv_append` writes.
public enum KVKind: String, Sendable, Hashable {
    case key, value
}

/// Every operation of the IR. Adding a case means: its type rule (`Op+Types.swift`),
/// its text form (`Op+Text.swift`), the reference interpreter and the C emitter; the
/// tests enumerate `Op.mnemonics` so a forgotten table fails.
public enum Op: Sendable, Hashable {
    // MARK: sources

    /// A value fed at run time: token ids `i32[seq]`, positions `i32[seq]`.
    case input(name: String)
    /// A named parameter tensor from the model's weights, in its stored dtype.
    case weight(name: String)

    // MARK: dense algebra

    /// `table[vocab, hidden]`, `ids i32[seq]` -> `f32[seq, hidden]`: rows of the table.
    case embedding
    /// `x[..., in]`, `w[out, in]` (Hugging Face layout), optional `bias[out]` -> `x wᵀ + bias`.
    case linear(hasBias: Bool)
    /// Batched `a[..., m, k] · b[..., k, n]`, or `· bᵀ` with `b[..., n, k]` when `transposeB`.
    case matmul(transposeB: Bool)

    // MARK: elementwise

    /// `a + b`, with `b` broadcast over `a`'s leading dims when `b` has fewer.
    case add
    /// `a * b`, broadcast like `add`.
    case mul
    /// `x * factor`.
    case scale(factor: Double)
    /// `x * sigmoid(x)`.
    case silu
    /// `0.5 x (1 + tanh(√(2/π)(x + 0.044715 x³)))` (the tanh approximation, as GPT-2 / `gelu_new`).
    case gelu
    /// A chain of elementwise steps over the inputs, with no intermediate tensors (fused).
    case elementwise(ElementwiseProgram)
    /// `cap * tanh(x / cap)`, cap > 0: logit soft-capping (Gemma 2's scores and final logits).
    case softcap(cap: Double)

    // MARK: normalisation

    /// `x / sqrt(mean(x²) + eps) * weight` over the last axis; inputs `x`, `weight`.
    case rmsNorm(eps: Double)
    /// `(x - mean) / sqrt(var + eps) * weight + bias` over the last axis.
    case layerNorm(eps: Double)
    /// Fused residual add and RMSNorm: inputs `a`, `b`, `weight`; results `a + b` and its RMSNorm.
    case addRMSNorm(eps: Double)
    /// RMSNorm of each head on its own: `x[seq, heads*D]`, `weight[D]`; every group of D
    /// channels is `x / sqrt(mean(x²) + eps) * weight` (Qwen3's `q_norm`/`k_norm`, applied
    /// after the projection and before RoPE).
    case headRMSNorm(eps: Double)
    /// Softmax over the last axis.
    case softmax

    // MARK: positions and attention

    /// RoPE applied to `x[seq, heads*headDim]` at `positions i32[seq]`.
    case rope(RopeAttrs)
    /// Additive mask `f32[seq, kv]` (0 or -inf) for `scores[..., seq, kv]`: causal
    /// (bottom-right) and/or sliding window, matching `attention`'s convention.
    case attentionMask(causal: Bool, window: Int?)
    /// Multi-head attention over q, k, v (see `AttentionAttrs`).
    case attention(AttentionAttrs)
    /// Appends `new[seq, width]` to layer `layer`'s cache and returns all cached rows `[kv, width]`.
    case kvAppend(layer: Int, kind: KVKind)

    // MARK: fused projections

    /// `silu(x W_gᵀ) * (x W_uᵀ)` with `w[2*inter, hidden]` = gate rows then up rows.
    case swiGLU
    /// `gelu(x W_gᵀ) * (x W_uᵀ)` (gelu's tanh approximation, as `gelu`), weight as `swiGLU`:
    /// Gemma's GeGLU MLP.
    case geGLU
    /// One projection `x W_qkvᵀ (+ bias)` split into q, k, v with RoPE applied to q and k;
    /// with `qkNormEps`, q and k are first RMS-normalised per head (`head_rms_norm`, Qwen3).
    /// Inputs `x`, `w`, (`bias`), (`q_norm[D]`, `k_norm[D]`), `positions`; three results.
    case qkvRope(QKVRopeAttrs)

    // MARK: layout

    /// Same elements, new shape (element counts must agree).
    case reshape(shape: [Dim])
    /// Permuted axes.
    case transpose(perm: [Int])
    /// `[start, end)` along `axis` (end may be nil for "to the end").
    case slice(axis: Int, start: Int, end: Int?)
    /// Inputs joined along `axis`.
    case concat(axis: Int)
    /// Each slice along `axis` repeated `repeats` times in place (GQA's `repeat_kv`).
    case repeatInterleave(axis: Int, repeats: Int)
}

/// Attributes of the fused QKV projection with RoPE.
public struct QKVRopeAttrs: Sendable, Hashable {
    public var heads: Int
    public var kvHeads: Int
    public var headDim: Int
    public var rotaryDim: Int
    public var frequencies: RopeFrequencies
    public var hasBias: Bool
    /// The eps of q's and k's per-head RMSNorm before RoPE; nil = no norm.
    public var qkNormEps: Double?

    public init(heads: Int, kvHeads: Int, headDim: Int, rotaryDim: Int? = nil, frequencies: RopeFrequencies, hasBias: Bool,
                qkNormEps: Double? = nil) {
        self.heads = heads
        self.kvHeads = kvHeads
        self.headDim = headDim
        self.rotaryDim = rotaryDim ?? headDim
        self.frequencies = frequencies
        self.hasBias = hasBias
        self.qkNormEps = qkNormEps
    }

    /// Plain RoPE with base `theta`.
    public init(heads: Int, kvHeads: Int, headDim: Int, rotaryDim: Int? = nil, theta: Double, hasBias: Bool, qkNormEps: Double? = nil) {
        self.init(heads: heads, kvHeads: kvHeads, headDim: headDim, rotaryDim: rotaryDim, frequencies: .theta(theta), hasBias: hasBias,
                  qkNormEps: qkNormEps)
    }

    /// Where the optional inputs sit: `x`, `w`, then these.
    public var biasInput: Int? { hasBias ? 2 : nil }
    /// q's norm weight; k's follows it.
    public var qNormInput: Int? { qkNormEps == nil ? nil : (hasBias ? 3 : 2) }
    public var positionsInput: Int { 2 + (hasBias ? 1 : 0) + (qkNormEps == nil ? 0 : 2) }
}
