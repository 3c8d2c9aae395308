import CAttuneKernels

/// `unified_max`: split-KV attention in which every partial uses one fixed max `phi`
/// instead of a running max (FlashDecoding++, Kernels/unified_max.c): no per-tile rescale,
/// splits combine by plain sums. Exact: rows whose scores leave the safe range around `phi`
/// are recomputed by flash and counted in the run stats as `fallback_rows` (of `rows`).
public struct UnifiedMaxKernel: CParameterKernel {
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
                        defaultValue: 0, candidates: [0], isInteger: false, isSwitch: true),
        KernelParameter(name: "block_kv", summary: "keys per tile (0 = default 256)",
                        defaultValue: 0, candidates: [128, 256, 512]),
        KernelParameter(name: "kv_splits", summary: "KV chunks per tile, summed (0 = auto from the shape)",
                        defaultValue: 0, candidates: [0, 1, 2, 4, 8, 16]),
        .threads,
    ]

    /// Every problem the ABI accepts (out-of-range rows fall back to flash), with ALiBi and sinks, uncapped.
    public let modifiers: Set<ScoreModifier> = [.alibi, .sinks, .masks]

    public let cCounters = ["fallback_rows", "rows"]

    /// Where the parameters go in `attune_unified_max_params`. phi is spelled as generated
    /// C always has (a double literal of the float value); the out-pointer and the
    /// calibrated table are added per call.
    public static let cFields = CParameterFields(attune_unified_max_params.init, [
        .int32("block_kv", \.block_kv), .int32("kv_splits", \.kv_splits), .int32("threads", \.threads),
        .float("phi", \.phi, spelled: .double),
    ])

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
        let table = tables["phi"] != nil ? [".phi_per_head = table_phi", ".phi_per_head_count = \(qHeads)"] : []
        let fields = cInitializer(parameters, extra: table + [".fallback_rows_out = &fallback_rows"])
        return ["int64_t fallback_rows = 0;",
                "const attune_unified_max_params params = \(fields);",
                "int rc = attune_unified_max_attention(&p, &t, &params, &status);",
                "counters[0] += fallback_rows;",
                "counters[1] += p.batch * p.q_heads * p.q_len;"]
    }

    public func run(_ problem: AttentionProblem, q: UnsafePointer<Float>, k: UnsafePointer<Float>,
                    v: UnsafePointer<Float>, o: UnsafeMutablePointer<Float>, lse: UnsafeMutablePointer<Float>?,
                    parameters: KernelParameters) throws -> KernelRunStats {
        try checkParameters(parameters)
        var fallback: Int64 = 0
        let stats = try withUnsafeMutablePointer(to: &fallback) { out in
            var params = cStruct(parameters)
            params.fallback_rows_out = out
            return try callC(attune_unified_max_attention, problem, q: q, k: k, v: v, o: o, lse: lse, params: params)
        }
        return stats.merging(["fallback_rows": Double(fallback), "rows": Double(problem.batch * problem.qHeads * problem.qLen)]) { $1 }
    }
}
