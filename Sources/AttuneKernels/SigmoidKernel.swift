import CAttuneKernels

/// `sigmoid`: tiled sigmoid attention, FlashSigmoid style (Kernels/sigmoid.c).
///
/// `O = Σ_{j visible} sigmoid(scale · q·k_j + bias) · v_j`, with no normalisation across
/// keys. This is its own attention (the model's normaliser), never a substitute for
/// softmax: `isExact` means exact for these semantics (fp32 against the float64
/// `ReferenceAttention.sigmoid`), and `normalizer == .sigmoid` keeps kernel selection and
/// codegen from binding it to softmax nodes. The bias is the model's (`sigmoid_bias`),
/// passed as the parameter `bias`; 0 when absent. LSE is written as 0.
public struct SigmoidKernel: AttentionKernel {
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
                        defaultValue: 0, candidates: [], isInteger: false),
        .precision,
    ]

    /// sigmoid accepts every problem the ABI accepts, with ALiBi (a bias); uncapped, and no sinks.
    public let modifiers: Set<ScoreModifier> = [.alibi, .masks]

    public func modifierRefusal(_ m: ScoreModifier) -> String? {
        m == .sinks ? "sigmoid does not take attention sinks: a sink logit joins a softmax denominator, and sigmoid has none" : nil
    }

    public func cInvocation(_ parameters: KernelParameters) -> [String]? {
        // precision only when set: the default C stays as it was before the parameter existed.
        let names = ["block_q", "block_kv", "kv_splits", "threads"] + ((parameters["precision"] ?? 0) != 0 ? ["precision"] : [])
        let fields = names.map { ".\($0) = \(Int(parameters[$0] ?? 0))" }
            + [".bias = \(Self.cFloat(parameters["bias"] ?? 0))"]
        return ["const attune_sigmoid_params params = {\(fields.joined(separator: ", "))};",
                "int rc = attune_sigmoid_attention(&p, &t, &params, &status);"]
    }

    /// A C float literal that reads back as `Float(x)`; non-finite values become
    /// expressions the kernel rejects at run time with a message.
    static func cFloat(_ x: Double) -> String {
        let f = Float(x)
        if f.isNaN { return "__builtin_nanf(\"\")" }
        if f.isInfinite { return f < 0 ? "(-__builtin_inff())" : "__builtin_inff()" }
        let text = "\(f)"  // shortest round-trip form, e.g. -5.5451775 or 1e-05
        return text + (text.contains(where: { $0 == "." || $0 == "e" }) ? "f" : ".0f")
    }

    func cParams(_ parameters: KernelParameters) -> attune_sigmoid_params {
        var params = attune_sigmoid_params()
        params.block_q = Int32(clamping: Int(parameters["block_q"] ?? 0))
        params.block_kv = Int32(clamping: Int(parameters["block_kv"] ?? 0))
        params.kv_splits = Int32(clamping: Int(parameters["kv_splits"] ?? 0))
        params.threads = Int32(clamping: Int(parameters["threads"] ?? 0))
        params.bias = Float(parameters["bias"] ?? 0)
        params.precision = Int32(clamping: Int(parameters["precision"] ?? 0))
        return params
    }

    public func run(_ problem: AttentionProblem, q: UnsafePointer<Float>, k: UnsafePointer<Float>,
                    v: UnsafePointer<Float>, o: UnsafeMutablePointer<Float>, lse: UnsafeMutablePointer<Float>?,
                    parameters: KernelParameters) throws -> KernelRunStats {
        try checkParameters(parameters)
        if let bias = parameters["bias"], !Float(bias).isFinite {
            throw KernelError("sigmoid: bias \(bias) does not fit a finite fp32 value")
        }
        var p = problem.cProblem
        var tensors = attune_attention_tensors(q: q, k: k, v: v, o: o, lse: lse)
        var params = cParams(parameters)
        var status = attune_status()
        var maskStats = attune_mask_stats()
        let rc = problem.withModifiers(&p, maskStats: &maskStats) { attune_sigmoid_attention(&$0, &tensors, &params, &status) }
        if rc != 0 { throw KernelError("sigmoid: " + AttentionProblem.message(of: status)) }
        return problem.maskRunStats(maskStats)
    }
}
