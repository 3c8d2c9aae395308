import CAttuneKernels

/// `unified_max`: split-KV attention in which every partial uses one fixed max `phi`
/// instead of a running max (FlashDecoding++, Kernels/unified_max.c): no per-tile rescale,
/// splits combine by plain sums. Exact: rows whose scores leave the safe range around `phi`
/// are recomputed by flash and counted in the run stats as `fallback_rows` (of `rows`).
public struct UnifiedMaxKernel: AttentionKernel {
    public init() {}

    public let name = "unified_max"
    public let summary = "split-KV softmax with a fixed max phi per head (FlashDecoding++), no rescaling; out-of-range rows recomputed exactly, counted as fallback_rows"
    public let isExact = true
    public let normalizer = KernelNormalizer.softmax
    public let cSources = ["unified_max.c", "flash.c", "flash_tiles.c"]

    public let parameters: [KernelParameter] = [
        KernelParameter(name: "phi", summary: "the fixed max, in units of scale*q.k (natural log); 0 when uncalibrated",
                        defaultValue: 0, candidates: [0], isInteger: false),
        KernelParameter(name: "block_kv", summary: "keys per tile (0 = default 256)",
                        defaultValue: 0, candidates: [128, 256, 512]),
        KernelParameter(name: "kv_splits", summary: "KV chunks per tile, summed (0 = auto from the shape)",
                        defaultValue: 0, candidates: [0, 1, 2, 4, 8, 16]),
        KernelParameter(name: "threads", summary: "OpenMP threads (0 = all)",
                        defaultValue: 0, candidates: [0]),
    ]

    public func unsupportedReasons(_ problem: AttentionProblem) -> [String] {
        // Every problem the ABI accepts (out-of-range rows fall back to flash).
        problem.validationError().map { [$0] } ?? []
    }

    public func cInvocation(_ parameters: KernelParameters) -> [String]? {
        let fields = ["block_kv", "kv_splits", "threads"].map { ".\($0) = \(Int(parameters[$0] ?? 0))" }
        // A Double's description ("0.0", "-3.5", "1e+20") is a valid C literal; phi is finite.
        let phi = Double(Float(parameters["phi"] ?? 0))
        return ["const attune_unified_max_params params = {\(fields.joined(separator: ", ")), .phi = \(phi)};",
                "int rc = attune_unified_max_attention(&p, &t, &params, &status);"]
    }

    public func run(_ problem: AttentionProblem, q: UnsafePointer<Float>, k: UnsafePointer<Float>,
                    v: UnsafePointer<Float>, o: UnsafeMutablePointer<Float>, lse: UnsafeMutablePointer<Float>?,
                    parameters: KernelParameters) throws -> KernelRunStats {
        try checkParameters(parameters)
        let phi = Float(parameters["phi"] ?? 0)
        if !phi.isFinite { throw KernelError("unified_max: phi must be finite in fp32, got \(parameters["phi"] ?? 0)") }
        var p = problem.cProblem
        var tensors = attune_attention_tensors(q: q, k: k, v: v, o: o, lse: lse)
        var fallback: Int64 = 0
        var status = attune_status()
        let rc = withUnsafeMutablePointer(to: &fallback) { out -> Int32 in
            var params = attune_unified_max_params()
            params.block_kv = Int32(clamping: Int(parameters["block_kv"] ?? 0))
            params.kv_splits = Int32(clamping: Int(parameters["kv_splits"] ?? 0))
            params.threads = Int32(clamping: Int(parameters["threads"] ?? 0))
            params.phi = phi
            params.fallback_rows_out = out
            return attune_unified_max_attention(&p, &tensors, &params, &status)
        }
        if rc != 0 { throw KernelError("unified_max: " + AttentionProblem.message(of: status)) }
        return ["fallback_rows": Double(fallback), "rows": Double(problem.batch * problem.qHeads * problem.qLen)]
    }
}
