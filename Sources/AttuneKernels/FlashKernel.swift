import CAttuneKernels

/// `flash`: tiled online-softmax attention, FlashAttention-2 style (Kernels/flash.c).
public struct FlashKernel: AttentionKernel {
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

    public func cInvocation(_ parameters: KernelParameters) -> [String]? {
        // precision only when set: the default C stays as it was before the parameter existed.
        let names = ["block_q", "block_kv", "kv_splits", "threads", "gemm"] + ((parameters["precision"] ?? 0) != 0 ? ["precision"] : [])
        let fields = names.map { ".\($0) = \(Int(parameters[$0] ?? 0))" }
        return ["const attune_flash_params params = {\(fields.joined(separator: ", "))};",
                "int rc = attune_flash_attention(&p, &t, &params, &status);"]
    }

    func cParams(_ parameters: KernelParameters) -> attune_flash_params {
        var params = attune_flash_params()
        params.block_q = Int32(clamping: Int(parameters["block_q"] ?? 0))
        params.block_kv = Int32(clamping: Int(parameters["block_kv"] ?? 0))
        params.kv_splits = Int32(clamping: Int(parameters["kv_splits"] ?? 0))
        params.threads = Int32(clamping: Int(parameters["threads"] ?? 0))
        params.gemm = Int32(clamping: Int(parameters["gemm"] ?? 0))
        params.precision = Int32(clamping: Int(parameters["precision"] ?? 0))
        return params
    }

    /// The parameter values the kernel will actually use for `problem` (zeros resolved).
    public func resolvedParameters(_ problem: AttentionProblem, _ parameters: KernelParameters) -> KernelParameters {
        var p = problem.cProblem
        var given = cParams(parameters)
        var out = attune_flash_params()
        attune_flash_resolve_params(&p, &given, &out)
        return ["block_q": Double(out.block_q), "block_kv": Double(out.block_kv),
                "kv_splits": Double(out.kv_splits), "threads": Double(out.threads), "gemm": Double(out.gemm),
                "precision": Double(out.precision)]
    }

    public func run(_ problem: AttentionProblem, q: UnsafePointer<Float>, k: UnsafePointer<Float>,
                    v: UnsafePointer<Float>, o: UnsafeMutablePointer<Float>, lse: UnsafeMutablePointer<Float>?,
                    parameters: KernelParameters) throws -> KernelRunStats {
        try checkParameters(parameters)
        var p = problem.cProblem(k: k, v: v)
        var tensors = attune_attention_tensors(q: q, k: k, v: v, o: o, lse: lse)
        var params = cParams(parameters)
        var status = attune_status()
        var maskStats = attune_mask_stats()
        let rc = problem.withModifiers(&p, maskStats: &maskStats) { attune_flash_attention(&$0, &tensors, &params, &status) }
        if rc != 0 { throw KernelError("flash: " + AttentionProblem.message(of: status)) }
        return problem.maskRunStats(maskStats)
    }
}
