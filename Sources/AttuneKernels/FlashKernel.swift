import CAttuneKernels

/// `flash`: tiled online-softmax attention, FlashAttention-2 style (Kernels/flash.c).
public struct FlashKernel: CParameterKernel {
    public init() {}

    public let name = "flash"
    public let summary = "tiled online-softmax attention (FlashAttention-2 style), exact fp32, any mask/GQA/head dim; precision=bf16|int8qk: bf16 or int8 Q.K^T prefill tiles (approximate)"
    public let isExact = true
    public let normalizer = KernelNormalizer.softmax
    public let kvFormats: [KVFormat] = [.f32, .bf16, .int8]
    public let cSources = ["flash.c", "flash_tiles.c", "kv_tiles.c", "flash_bf16.c", "flash_int8qk.c"]

    public let parameters: [KernelParameter] = [
        KernelParameter(name: "block_q", summary: "query rows per tile (0 = default 64)",
                        defaultValue: 0, candidates: [32, 64, 96, 128]),
        KernelParameter(name: "block_kv", summary: "keys per tile (0 = default 256)",
                        defaultValue: 0, candidates: [64, 128, 256, 512]),
        KernelParameter(name: "kv_splits", summary: "KV chunks per tile merged by log-sum-exp (0 = auto from the shape)",
                        defaultValue: 0, candidates: [0, 1, 2, 4, 8, 16]),
        .threads,
        KernelParameter(name: "gemm", summary: "inner products: 0 auto, 1 AVX-512 micro-kernels, 2 OpenBLAS for full tiles",
                        defaultValue: 0, candidates: [1, 2]),
        .precisionWithInt8QK,
    ]

    /// flash accepts every problem the ABI accepts, with every score modifier.
    public let modifiers: Set<ScoreModifier> = [.softcap, .alibi, .sinks, .masks]

    /// Where the parameters go in `attune_flash_params`; precision only when set, so the
    /// default C stays as it was before the parameter existed.
    public static let cFields = CParameterFields(attune_flash_params.init, [
        .int32("block_q", \.block_q), .int32("block_kv", \.block_kv), .int32("kv_splits", \.kv_splits),
        .int32("threads", \.threads), .int32("gemm", \.gemm), .int32("precision", \.precision, writtenWhenZero: false),
    ])

    public func cInvocation(_ parameters: KernelParameters) -> [String]? {
        ["const attune_flash_params params = \(cInitializer(parameters));",
         "int rc = attune_flash_attention(&p, &t, &params, &status);"]
    }

    /// The parameter values the kernel will actually use for `problem` (zeros resolved).
    public func resolvedParameters(_ problem: AttentionProblem, _ parameters: KernelParameters) -> KernelParameters {
        var p = problem.cProblem
        var given = cStruct(parameters)
        var out = attune_flash_params()
        attune_flash_resolve_params(&p, &given, &out)
        return Self.cFields.values(of: out)
    }

    public func run(_ problem: AttentionProblem, q: UnsafePointer<Float>, k: UnsafePointer<Float>,
                    v: UnsafePointer<Float>, o: UnsafeMutablePointer<Float>, lse: UnsafeMutablePointer<Float>?,
                    parameters: KernelParameters) throws -> KernelRunStats {
        try checkParameters(parameters)
        return try callC(attune_flash_attention, problem, q: q, k: k, v: v, o: o, lse: lse, params: cStruct(parameters))
    }
}
