import CAttuneKernels

/// `sparge`: block-sparse softmax attention, SpargeAttn style (Kernels/sparge.c,
/// ALGORITHMS.md §4). A cheap prediction from block means keeps, per (batch, q head,
/// q block), the key blocks holding `cdfthreshd` of the pooled attention (plus blocks
/// whose rows are not self-similar, the sink block and each row's own diagonal block);
/// flash's online softmax then runs over the kept blocks only and skips a 16-row
/// micro-tile's exp and P·V when its scores trail the running max by `pvthreshd`
/// (base-2 units). Approximate: exact (= flash to fp32 rounding) with `cdfthreshd=1`
/// and `pvthreshd>=200`. Run stats: `kept_fraction` (kept / visible blocks) and
/// `skipped_pv_fraction` (skipped / visited micro-tile × tile pairs).
public struct SpargeKernel: CParameterKernel {
    public init() {}

    public let name = "sparge"
    public let summary = "block-sparse softmax (SpargeAttn): block-mean prediction keeps cdfthreshd of the pooled attention per q block, flash over kept blocks, P.V skipped below pvthreshd; exact with cdfthreshd=1 pvthreshd=200"
    public let isExact = false
    public let normalizer = KernelNormalizer.softmax
    public let cSources = ["sparge.c", "flash_tiles.c", "flash_bf16.c"]

    public let parameters: [KernelParameter] = [
        KernelParameter(name: "block_q", summary: "query rows per block (prediction and work item), multiple of 16 in [16, 512]",
                        defaultValue: 64, candidates: [32, 64, 128]),
        KernelParameter(name: "block_kv", summary: "keys per block (the selection unit), multiple of 16 in [16, 1024]",
                        defaultValue: 64, candidates: [32, 64, 128]),
        KernelParameter(name: "simthreshd1", summary: "theta in [-1, 1]: blocks whose mean cosine self-similarity is <= theta are attended densely",
                        defaultValue: 0.6, candidates: [0.3, 0.45, 0.6], isInteger: false),
        KernelParameter(name: "cdfthreshd", summary: "tau in (0, 1]: pooled attention mass each q block keeps; 1 keeps every block",
                        defaultValue: 0.98, candidates: [0.9, 0.95, 0.98, 0.99], isInteger: false),
        KernelParameter(name: "pvthreshd", summary: "lambda >= 0, base-2 units: skip a micro-tile's exp and P.V when its scores trail the running max by lambda; >= 200 never",
                        defaultValue: 50, candidates: [20, 50, 200], isInteger: false),
        KernelParameter(name: "sink", summary: "1: always keep key block 0 (attention sinks)",
                        defaultValue: 1, candidates: [0, 1]),
        .threads,
        .precision,
    ]

    /// Every problem the ABI accepts (decode rows run through the wide tiles, padded to 16), with ALiBi, sinks and
    /// document or block masks (blocks they hide are not visible to the prediction), uncapped.
    public let modifiers: Set<ScoreModifier> = [.alibi, .sinks, .masks]

    /// Where the parameters go in `attune_sparge_params`, in the order generated C has
    /// always named them; precision only when set, so the default C stays as it was before
    /// the parameter existed.
    public static let cFields = CParameterFields(attune_sparge_params.init, [
        .int32("block_q", \.block_q), .int32("block_kv", \.block_kv), .int32("sink", \.sink), .int32("threads", \.threads),
        .int32("precision", \.precision, writtenWhenZero: false),
        .float("simthreshd1", \.simthreshd1), .float("cdfthreshd", \.cdfthreshd), .float("pvthreshd", \.pvthreshd),
    ])

    public func cInvocation(_ parameters: KernelParameters) -> [String]? {
        ["const attune_sparge_params params = \(cInitializer(parameters));",
         "int rc = attune_sparge_attention(&p, &t, &params, &status);"]
    }

    public func run(_ problem: AttentionProblem, q: UnsafePointer<Float>, k: UnsafePointer<Float>,
                    v: UnsafePointer<Float>, o: UnsafeMutablePointer<Float>, lse: UnsafeMutablePointer<Float>?,
                    parameters: KernelParameters) throws -> KernelRunStats {
        try checkParameters(parameters)
        var stats = attune_sparge_stats()
        // With masks, callC's tile counts (in sparge's blocks) join the kernel's own.
        let maskStats = try withUnsafeMutablePointer(to: &stats) { out in
            var params = cStruct(parameters)
            params.stats_out = out
            return try callC(attune_sparge_attention, problem, q: q, k: k, v: v, o: o, lse: lse, params: params)
        }
        let own: KernelRunStats = ["kept_fraction": stats.kept_fraction, "skipped_pv_fraction": stats.skipped_pv_fraction,
                                   "kept_blocks": Double(stats.kept_blocks), "visible_blocks": Double(stats.visible_blocks),
                                   "predict_ms": stats.predict_ms, "total_ms": stats.total_ms]
        return own.merging(maskStats) { a, _ in a }
    }
}
