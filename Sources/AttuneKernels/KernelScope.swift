import AttuneTensor

/// Which kernels accept which problems: the scope half of the kernel contracts (the
/// accuracy half is `attune check`'s `KernelContracts`). One row per problem feature a
/// kernel may refuse, naming the kernels that refuse it with a phrase of their reason;
/// every other registered kernel accepts it. The kernel tests (`KernelScopeTests`) and
/// `attune check` (cases `kernel/NAME/scope/ROW`) both hold every kernel to this one table:
/// what the kernel declares (`refusals`) must agree with its row, and so must running it
/// (an accepted problem runs).
public enum KernelScope {
    public struct Row: Sendable {
        public var name: String
        public var problem: AttentionProblem
        /// Kernel name → a phrase its refusal contains.
        public var refused: [String: String]
    }

    static func problem(qLen: Int = 8, causal: Bool = true, window: Int? = nil, softcap: Double? = nil, kv: KVFormat = .f32,
                        alibiSlopes: [Float]? = nil, sinks: [Float]? = nil) -> AttentionProblem {
        var p = AttentionProblem(qHeads: 4, kvHeads: 2, qLen: qLen, kvLen: 40, qkDim: 16, causal: causal, window: window, softcap: softcap,
                                 alibiSlopes: alibiSlopes, sinks: sinks)
        p.kvFormat = kv
        return p
    }

    static let softcapRefused = "does not implement logit soft-capping"
    static let f32Only = "reads K/V as f32 only"
    static let alibiRefused = "does not implement ALiBi"
    static let sinksRefused = "does not implement attention sinks"
    static let masksRefused = "does not implement document or block masks"

    /// Three packed documents (15, 17 and 8 keys: the queries, at 32..<40, are the third's),
    /// and a bitmask of blocks of 8 with holes (bit (qb, kb) cleared when qb + kb is odd).
    static func masked(documents: Bool) -> AttentionProblem {
        var p = problem(causal: false)
        if documents { p.documentIDs = try? AttentionProblem.documentIDs(lengths: [15, 17, 8], kvLen: 40) }
        else { p.blockMask = BlockMask(block: 8, kvLen: 40) { ($0 + $1) % 2 == 0 } }
        return p
    }

    public static let table: [Row] = [
        Row(name: "causal", problem: problem(), refused: [:]),
        Row(name: "decode", problem: problem(qLen: 1), refused: [:]),
        Row(name: "non-causal", problem: problem(causal: false), refused: ["kascade": "needs a causal mask"]),
        Row(name: "queries-before-keys", problem: AttentionProblem(qHeads: 2, qLen: 48, kvLen: 40, qkDim: 16, causal: true),
            refused: ["kascade": "needs every query at a position >= 0"]),
        Row(name: "sliding-window", problem: problem(window: 8),
            refused: ["kascade": "sliding window", "hybrid": "sliding window", "prefix_shared": "sliding window"]),
        Row(name: "softcap", problem: problem(softcap: 30),
            refused: ["unified_max": softcapRefused, "sigmoid": softcapRefused, "sparge": softcapRefused, "kascade": softcapRefused,
                      "hybrid": softcapRefused, "prefix_shared": softcapRefused]),
        // The standard slopes of 4 heads (2^(-8/4 · h)) and one sink logit per head.
        Row(name: "alibi", problem: problem(alibiSlopes: [0.25, 0.0625, 0.015625, 0.00390625]),
            refused: ["kascade": alibiRefused, "hybrid": alibiRefused, "prefix_shared": alibiRefused]),
        Row(name: "sinks", problem: problem(sinks: [0.5, -1, 2, 0]),
            refused: ["sigmoid": "a sink logit joins a softmax denominator", "kascade": sinksRefused, "hybrid": sinksRefused,
                      "prefix_shared": sinksRefused]),
        Row(name: "documents", problem: masked(documents: true),
            refused: ["kascade": masksRefused, "hybrid": masksRefused, "prefix_shared": masksRefused]),
        Row(name: "block-mask", problem: masked(documents: false),
            refused: ["kascade": masksRefused, "hybrid": masksRefused, "prefix_shared": masksRefused]),
        Row(name: "kv-bf16", problem: problem(kv: .bf16), refused: ["sigmoid": f32Only, "sparge": f32Only]),
        Row(name: "kv-int8", problem: problem(kv: .int8), refused: ["sigmoid": f32Only, "sparge": f32Only]),
    ]

    /// Every reason `kernel` gives for refusing `problem`: a K/V format it does not read,
    /// then its own (`unsupportedReasons`).
    public static func refusals(_ kernel: any AttentionKernel, _ problem: AttentionProblem) -> [String] {
        [kernel.kvFormatRefusal(problem.kvFormat)].compactMap { $0 } + kernel.unsupportedReasons(problem)
    }

    /// How `kernel` disagrees with `row`, or nil. An accepted problem is also run (zero
    /// inputs, the parameters `suiteParameters` chooses) and must not throw.
    public static func mismatch(_ kernel: any AttentionKernel, _ row: Row) -> String? {
        let declared = refusals(kernel, row.problem)
        if let phrase = row.refused[kernel.name] {
            if declared.contains(where: { $0.contains(phrase) }) { return nil }
            return "the table says refused (\"\(phrase)\"), the kernel says " + (declared.isEmpty ? "accepted" : declared.joined(separator: "; "))
        }
        if !declared.isEmpty { return "the table says accepted, the kernel refuses: " + declared.joined(separator: "; ") }
        guard let parameters = kernel.suiteParameters(row.problem) else { return nil }
        let p = row.problem
        do {
            _ = try kernel.runStored(p, q: Tensor(zeros: p.qShape), k: Tensor(zeros: p.kShape), v: Tensor(zeros: p.vShape), parameters: parameters)
            return nil
        } catch {
            return "the table says accepted, running it failed: \(error)"
        }
    }
}
