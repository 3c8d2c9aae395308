/// What one Hugging Face decoder family changes in the shared pre-norm decoder
/// (embedding, N × [RMSNorm, attention with RoPE, residual, RMSNorm, gated SiLU MLP,
/// residual], final RMSNorm, output projection): tensor layout, biases, norms,
/// sliding-window rule, Gemma 2's differences and the defaults of its `configuration_*.py`.
///
/// `HFConfig` reads a config through this description, `expectedTensors` lists the
/// checkpoint's tensors from it and `DecoderGraph` builds the graph from it, so a new
/// family that fits the shared decoder is one entry in `ArchitectureSpec.of`.
public struct ArchitectureSpec: Sendable, Equatable {
    /// How the checkpoint stores a group of projections that read the same input.
    public enum Projections: Sendable, Equatable {
        /// One `nn.Linear` per projection (`q_proj`, `k_proj`, `v_proj`; `gate_proj`, `up_proj`).
        case separate
        /// One `nn.Linear` whose output rows are the projections in order (`qkv_proj`
        /// = q, k, v rows; `gate_up_proj` = gate rows, then up rows).
        case fused
    }

    /// Which linears have biases.
    public enum Biases: Sendable, Equatable {
        case none
        /// q, k and v always; o never (Qwen2).
        case qkvAlways
        /// q, k, v and o iff `attention_bias` (default false).
        case attentionBiasKey
    }

    /// Which layers attend through a sliding window.
    public enum SlidingWindow: Sendable, Equatable {
        case none
        /// Every layer, with `sliding_window` (absent: `default`, null: no window).
        case everyLayer(default: Int?)
        /// Qwen's rule: only if `use_sliding_window`, then the layers `layer_types` marks
        /// `"sliding_attention"`, or if that is absent layers `>= max_window_layers` (28).
        case qwen
        /// Gemma 2's rule: the layers `layer_types` marks `"sliding_attention"`, or if that
        /// is absent the even layers (0, 2, …), with `sliding_window` (absent: 4096, null: none).
        case alternating
    }

    /// What Gemma 2 (`modeling_gemma2.py`) changes beyond the fields above, with its
    /// config defaults: every layer is
    /// `x += post_attention_norm(attn(input_norm(x)))`, `x += post_feedforward_norm(mlp(pre_feedforward_norm(x)))`
    /// with RMSNorms computing `x̂ · (1 + w)`; the embedding is scaled by √hidden (in the
    /// table's dtype); the MLP is GeGLU (`hidden_activation`); attention scores are
    /// scaled by `query_pre_attn_scalar^-0.5` and soft-capped (`attn_logit_softcapping`),
    /// the logits too (`final_logit_softcapping`).
    public struct Gemma: Sendable, Equatable {
        public var defaultQueryPreAttnScalar: Double = 256
        public var defaultAttnSoftcap: Double = 50
        public var defaultFinalSoftcap: Double = 30
    }

    public var attention: Projections
    public var mlp: Projections
    public var biases: Biases
    /// `mlp_bias: true` is a key of this family (and refused: the gated MLP has no biases here).
    public var hasMLPBiasKey: Bool
    /// RMSNorm over each head of q and k after the projections, before RoPE (`q_norm`, `k_norm`, weight `[head_dim]`).
    public var qkNorm: Bool
    /// Attention rotates only the first `int(head_dim · partial_rotary_factor)` channels
    /// (Phi-3); the other families' attention rotates whole heads whatever the key says.
    public var partialRotary = false
    /// The config declares `original_max_position_embeddings` at top level with this
    /// default (Phi-3: 4096); it then wins over the RoPE object's for scaled RoPE.
    public var topLevelOriginalMaxPositions: Int?
    public var slidingWindow: SlidingWindow
    /// `head_dim` when the key is absent; nil = `hidden_size / num_attention_heads`.
    public var defaultHeadDim: Int?
    public var defaultMaxPositions: Int
    public var defaultRMSNormEps: Double
    /// `tie_word_embeddings` when the key is absent.
    public var defaultTiedEmbeddings = false
    /// Gemma 2's decoder; nil for the Llama-shaped families.
    public var gemma: Gemma?

    /// The description of `architecture`, from transformers' `configuration_<arch>.py`
    /// and `modeling_<arch>.py`.
    public static func of(_ architecture: HFConfig.Architecture) -> ArchitectureSpec {
        let llama = ArchitectureSpec(attention: .separate, mlp: .separate, biases: .attentionBiasKey, hasMLPBiasKey: true,
                                     qkNorm: false, slidingWindow: .none, defaultHeadDim: nil,
                                     defaultMaxPositions: 2048, defaultRMSNormEps: 1e-6)
        switch architecture {
        case .llama:
            return llama
        case .qwen2:
            var s = llama
            s.biases = .qkvAlways
            s.hasMLPBiasKey = false
            s.slidingWindow = .qwen
            s.defaultMaxPositions = 32768
            return s
        case .qwen3:
            var s = llama
            s.hasMLPBiasKey = false
            s.qkNorm = true
            s.slidingWindow = .qwen
            s.defaultHeadDim = 128
            s.defaultMaxPositions = 32768
            return s
        case .mistral:
            var s = llama
            s.biases = .none
            s.hasMLPBiasKey = false
            s.slidingWindow = .everyLayer(default: 4096)
            s.defaultMaxPositions = 131_072
            return s
        case .phi3:
            var s = llama
            s.attention = .fused
            s.mlp = .fused
            s.biases = .none
            s.hasMLPBiasKey = false
            s.slidingWindow = .everyLayer(default: nil)
            s.defaultMaxPositions = 4096
            s.defaultRMSNormEps = 1e-5
            s.partialRotary = true
            s.topLevelOriginalMaxPositions = 4096
            return s
        case .gemma2:
            var s = llama
            s.hasMLPBiasKey = false
            s.slidingWindow = .alternating
            s.defaultHeadDim = 256
            s.defaultMaxPositions = 8192
            s.defaultTiedEmbeddings = true
            s.gemma = Gemma()
            return s
        }
    }
}
