import CAttuneKernels

/// `sigmoid`: tiled sigmoid attention, FlashSigmoid style (Kernels/sigmoid.c).
///
/// `O = Σ_{j visible} sigmoid(scale · q·k_j + bias) · v_j`, with no normalisation across
/// keys. This is its own attention (the model's normaliser), never a substitute for
/// softmax: `isExact` means exact for these semantics (fp32 against the float64
/// `ReferenceAttention.sigmoid`), and `normalizer == .sigmoid` keeps kernel selection and
/// codegen from binding it to softmax nodes. The bias is the model's (`sigmoid_bias`),
/// passed as the parameter `bias`; 0 when absent. LSE is written as 0.
public struct SigmoidKernel: CParameterKernel {
    public init() {}

    public let name = "sigmoid"
    public let summary = "tiled sigmoid attention (FlashSigmoid): sum_j sigmoid(scale q.k + bias) v_j, no normalisation; exact fp32 for sigmoid attention (not softmax), LSE = 0; needs the model's bias"
    public let isExact = true
    public let normalizer = KernelNormalizer.sigmoid
    /// A bias like a model's own (usually -ln(training length)) rather than 0.
    public func suiteParameters(_ problem: AttentionProblem) -> KernelParameters? { ["bias": -4] }
    public let cSources = ["sigmoid.c", "flash_bf16.c"]

    public let parameters: [KernelParameter] = [
        KernelParameter(name: "block_q", summary: "query rows per tile (0 = default 64)",
                        defaultValue: 0, candidates: [32, 64, 96, 128]),
        KernelParameter(name: "block_kv", summary: "keys per tile (0 = default 256)",
                        defaultValue: 0, candidates: [64, 128, 256, 512]),
        KernelParameter(name: "kv_splits", summary: "KV chunks per tile, partial sums added (0 = auto from the shape)",
                        defaultValue: 0, candidates: [0, 1, 2, 4, 8, 16]),
        .threads,
        KernelParameter(name: "bias", summary: "the model's sigmoid bias b (finite; usually -ln(training length)); not a tuning knob",
                        defaultValue: 0, candidates: [], isInteger: false, isSwitch: true),
        .precision,
    ]

    /// sigmoid accepts every problem the ABI accepts, with ALiBi (a bias); uncapped, and no sinks.
    public let modifiers: Set<ScoreModifier> = [.alibi, .masks]

    public func modifierRefusal(_ m: ScoreModifier) -> String? {
        m == .sinks ? "sigmoid does not take attention sinks: a sink logit joins a softmax denominator, and sigmoid has none" : nil
    }

    /// Where the parameters go in `attune_sigmoid_params`; precision only when set, so the
    /// default C stays as it was before the parameter existed. The bias is a float literal
    /// that reads back exactly.
    public static let cFields = CParameterFields(attune_sigmoid_params.init, [
        .int32("block_q", \.block_q), .int32("block_kv", \.block_kv), .int32("kv_splits", \.kv_splits),
        .int32("threads", \.threads), .int32("precision", \.precision, writtenWhenZero: false), .float("bias", \.bias),
    ])

    public func cInvocation(_ parameters: KernelParameters) -> [String]? {
        ["const attune_sigmoid_params params = \(cInitializer(parameters));",
         "int rc = attune_sigmoid_attention(&p, &t, &params, &status);"]
    }

    public func run(_ problem: AttentionProblem, q: UnsafePointer<Float>, k: UnsafePointer<Float>,
                    v: UnsafePointer<Float>, o: UnsafeMutablePointer<Float>, lse: UnsafeMutablePointer<Float>?,
                    parameters: KernelParameters) throws -> KernelRunStats {
        try checkParameters(parameters)
        return try callC(attune_sigmoid_attention, problem, q: q, k: k, v: v, o: o, lse: lse, params: cStruct(parameters))
    }
}
