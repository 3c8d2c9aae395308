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
    public let calibratedTable: String? = "phi"
    public let normalizer = KernelNormalizer.softmax
    public let kvFormats: [KVFormat] = [.f32, .bf16, .int8]
    public let cSources = ["unified_max.c", "flash.c", "flash_tiles.c", "kv_tiles.c", "flash_bf16.c", "flash_int8qk.c"]

    public let parameters: [KernelParameter] = [
        KernelParameter(name: "phi", summary: "the fixed max, in units of scale*q.k (natural log); 0 when uncalibrated",
                        defaultValue: 0, candidates: [0], isInteger: false),
        KernelParameter(name: "block_kv", summary: "keys per tile (0 = default 256)",
                        defaultValue: 0, candidates: [128, 256, 512]),
        KernelParameter(name: "kv_splits", summary: "KV chunks per tile, summed (0 = auto from the shape)",
                        defaultValue: 0, candidates: [0, 1, 2, 4, 8, 16]),
        .threads,
    ]

    /// Every problem the ABI accepts (out-of-range rows fall back to flash), with ALiBi and sinks, uncapped.
    public let modifiers: Set<ScoreModifier> = [.alibi, .sinks, .masks]

    public let cCounters = ["fallback_rows", "rows"]

    public func cInvocation(_ parameters: KernelParameters) -> [String]? {
        try? cInvocation(parameters, tables: [:], qHeads: 0)
    }

    /// Table `phi`: one calibrated value per q head (`attune calibrate`), used instead of
    /// the scalar parameter.
    public func cInvocation(_ parameters: KernelParameters, tables: [String: [Double]], qHeads: Int) throws -> [String]? {
        for (name, values) in tables.sorted(by: { $0.key < $1.key }) {
            guard name == "phi" else { throw KernelError("kernel 'unified_max' takes only the table 'phi', not '\(name)'") }
            guard values.count == qHeads, values.allSatisfy({ Float($0).isFinite }) else {
                throw KernelError("unified_max: table phi needs \(qHeads) finite values (one per q head), got \(values.count)")
            }
        }
        var fields = ["block_kv", "kv_splits", "threads"].map { ".\($0) = \(Int(parameters[$0] ?? 0))" }
        // A Double's description ("0.0", "-3.5", "1e+20") is a valid C literal; phi is finite.
        fields.append(".phi = \(Double(Float(parameters["phi"] ?? 0)))")
        if tables["phi"] != nil { fields += [".phi_per_head = table_phi", ".phi_per_head_count = \(qHeads)"] }
        fields.append(".fallback_rows_out = &fallback_rows")
        return ["int64_t fallback_rows = 0;",
                "const attune_unified_max_params params = {\(fields.joined(separator: ", "))};",
                "int rc = attune_unified_max_attention(&p, &t, &params, &status);",
                "counters[0] += fallback_rows;",
                "counters[1] += p.batch * p.q_heads * p.q_len;"]
    }

    public func run(_ problem: AttentionProblem, q: UnsafePointer<Float>, k: UnsafePointer<Float>,
                    v: UnsafePointer<Float>, o: UnsafeMutablePointer<Float>, lse: UnsafeMutablePointer<Float>?,
                    parameters: KernelParameters) throws -> KernelRunStats {
        try checkParameters(parameters)
        let phi = Float(parameters["phi"] ?? 0)
        if !phi.isFinite { throw KernelError("unified_max: phi must be finite in fp32, got \(parameters["phi"] ?? 0)") }
        var p = problem.cProblem(k: k, v: v)
        var tensors = attune_attention_tensors(q: q, k: k, v: v, o: o, lse: lse)
        var fallback: Int64 = 0
        var status = attune_status()
        var maskStats = attune_mask_stats()
        let rc = withUnsafeMutablePointer(to: &fallback) { out -> Int32 in
            var params = attune_unified_max_params()
            params.block_kv = Int32(clamping: Int(parameters["block_kv"] ?? 0))
            params.kv_splits = Int32(clamping: Int(parameters["kv_splits"] ?? 0))
            params.threads = Int32(clamping: Int(parameters["threads"] ?? 0))
            params.phi = phi
            params.fallback_rows_out = out
            return problem.withModifiers(&p, maskStats: &maskStats) { attune_unified_max_attention(&$0, &tensors, &params, &status) }
        }
        if rc != 0 { throw KernelError("unified_max: " + AttentionProblem.message(of: status)) }
        return problem.maskRunStats(maskStats).merging(["fallback_rows": Double(fallback), "rows": Double(problem.batch * problem.qHeads * problem.qLen)]) { $1 }
    }
}
