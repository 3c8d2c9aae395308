import CAttuneKernels

/// `prefix_shared`: Hydragen-style attention for a batch whose sequences share their first
/// `prefix_len` keys (Kernels/prefix_shared.c). Exact: it is softmax attention split into
/// a prefix part (all sequences' queries stacked, one pass) and per-sequence suffixes,
/// merged by log-sum-exp. Only batch 0's prefix K/V are read.
public struct PrefixSharedKernel: CParameterKernel {
    public init() {}

    public let name = "prefix_shared"
    public let summary = "batch sharing a prefix: prefix attended once for all queries (Hydragen), suffixes per sequence, LSE merge; needs prefix_len"
    public let isExact = true
    public let isComposition = true
    public let normalizer = KernelNormalizer.softmax
    public let kvFormats: [KVFormat] = [.f32, .bf16, .int8]
    public let cSources = ["prefix_shared.c", "flash.c", "flash_tiles.c", "kv_tiles.c", "flash_bf16.c", "flash_int8qk.c"]

    public let parameters: [KernelParameter] = [
        KernelParameter(name: "prefix_len", summary: "keys shared by every sequence (required, >= 1); only batch 0's are read",
                        defaultValue: 0, candidates: [], isSwitch: true),
        KernelParameter(name: "block_q", summary: "flash query rows per tile (0 = default)", defaultValue: 0, candidates: [32, 64, 128]),
        KernelParameter(name: "block_kv", summary: "flash keys per tile (0 = default)", defaultValue: 0, candidates: [128, 256]),
        KernelParameter(name: "kv_splits", summary: "flash KV splits (0 = auto)", defaultValue: 0, candidates: [0]),
        .threads,
    ]

    public func problemRefusals(_ problem: AttentionProblem) -> [String] {
        problem.window != nil ? ["prefix_shared does not support a sliding window"] : []
    }

    /// A prefix of half the keys, at most what the first query sees; none when no query
    /// sees a key or there is no key after the first.
    public func suiteParameters(_ problem: AttentionProblem) -> KernelParameters? {
        guard problem.resolvedQOffset >= 0, problem.kvLen >= 2 else { return nil }
        return ["prefix_len": Double(max(1, min(problem.kvLen / 2, problem.resolvedQOffset + 1)))]
    }

    /// Compiled graphs run one sequence; prefix sharing is a property of a batch.
    /// A single sequence has no prefix to share: compiled models use this decomposition
    /// for batched sequences instead (`attune_prefix_batch_attention`, `attune run` with
    /// several prompts), whatever kernel their nodes are bound to.
    public func cInvocation(_ parameters: KernelParameters) -> [String]? { nil }

    public let cUnavailableReason = "a node attends for one sequence, which has no prefix to share; compiled models run every softmax attention this way for batched sequences (attune run with several prompts), with the node's own kernel for both passes"

    /// The parameters in `attune_prefix_shared_params`: flash's tiles serve both passes.
    public static let cFields = CParameterFields(attune_prefix_shared_params.init, [
        .int64("prefix_len", \.prefix_len), .int32("block_q", \.flash.block_q, c: "flash.block_q"), .int32("block_kv", \.flash.block_kv, c: "flash.block_kv"),
        .int32("kv_splits", \.flash.kv_splits, c: "flash.kv_splits"), .int32("threads", \.flash.threads, c: "flash.threads")])

    public func run(_ problem: AttentionProblem, q: UnsafePointer<Float>, k: UnsafePointer<Float>,
                    v: UnsafePointer<Float>, o: UnsafeMutablePointer<Float>, lse: UnsafeMutablePointer<Float>?,
                    parameters: KernelParameters) throws -> KernelRunStats {
        try checkParameters(parameters)
        guard let prefix = parameters["prefix_len"], prefix >= 1 else {
            throw KernelError("prefix_shared needs --param prefix_len=P (the number of keys every sequence shares)")
        }
        try callC(attune_prefix_shared_attention, problem, q: q, k: k, v: v, o: o, lse: lse, params: cStruct(parameters))
        return ["prefix_len": prefix]
    }
}
