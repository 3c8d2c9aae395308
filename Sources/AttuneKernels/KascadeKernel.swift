import CAttuneKernels
import Foundation

/// `kascade`: attention over the top-k history keys of each (kv head, query tile), chosen
/// by an anchor layer from its exact probabilities summed over the kv head's q heads and
/// the tile's queries, plus the tile's own keys (Kascade, ALGORITHMS.md §5;
/// Kernels/kascade.c). Approximate; exact when `fraction=1` or the history is at most
/// `min_k` keys.
///
/// One call is one layer. `role=0` (anchor) selects and attends; `role=1` (reuse) attends
/// over a selection an anchor made on the same inputs — `run` makes it first (its time is
/// `select_ms`) and, with `keep=1` (benchmarks only: the caller promises Q/K/V unchanged at
/// the same addresses), keeps it so later calls time the reuse pass alone.
public struct KascadeKernel: CParameterKernel {
    public init() {}

    public let name = "kascade"
    public let summary = "top-k history keys per (kv head, 32-query tile) chosen by an anchor layer (head- and tile-summed probabilities) and reused by later layers, plus the tile's own keys; exact only with fraction=1"
    public let isExact = false
    public let linksLayers = true
    public let normalizer = KernelNormalizer.softmax
    public let kvFormats: [KVFormat] = [.f32, .bf16, .int8]
    public let cSources = ["kascade.c", "kv_tiles.c"]

    public let parameters: [KernelParameter] = [
        KernelParameter(name: "fraction", summary: "k%: share of each tile's history kept, in (0, 1]; 1 = every key (exact)",
                        defaultValue: 0.10, candidates: [0.025, 0.05, 0.1, 0.2], isInteger: false, validRange: 0...1),
        KernelParameter(name: "min_k", summary: "keep at least this many history keys (all when the history is shorter)",
                        defaultValue: 128, candidates: [64, 128, 256], validRange: 1...Double(Int32.max)),
        KernelParameter(name: "tile", summary: "query positions per tile (one selection per kv head and tile)",
                        defaultValue: 32, candidates: [16, 32, 64], validRange: 1...256),
        .threads,
        KernelParameter(name: "role", summary: "0: anchor (select, then attend); 1: reuse an anchor's selection (run makes one first)",
                        defaultValue: 0, candidates: [0, 1], isSwitch: true),
        KernelParameter(name: "anchor", summary: "compiled graphs, role=1: the layer whose selection to reuse (-1 = the nearest earlier anchor)",
                        defaultValue: -1, candidates: [-1], isSwitch: true),
        KernelParameter(name: "keep", summary: "with role=1: keep the selection across calls on the same Q/K addresses (benchmarks only)",
                        defaultValue: 0, candidates: [0, 1], isSwitch: true),
    ]

    public func problemRefusals(_ problem: AttentionProblem) -> [String] {
        var reasons: [String] = []
        if !problem.causal { reasons.append("kascade needs a causal mask (its tiles are query positions)") }
        if problem.window != nil { reasons.append("kascade does not support a sliding window") }
        if problem.resolvedQOffset < 0 { reasons.append("kascade needs every query at a position >= 0 (q_len <= kv_len)") }
        return reasons
    }

    public func cInvocation(_ parameters: KernelParameters) -> [String]? {
        try? cInvocation(parameters, tables: [:], qHeads: 0)
    }

    public let cCounters = ["attended_keys", "dense_keys"]

    /// Compiled graphs: the generated code declares `attune_kascade_indices sel` (the node's
    /// `KeySelection` value: its own result for an anchor, its fourth input for a reuse
    /// node). Table `head_map`: per kv head, the anchor's kv head to read (calibrated).
    public func cInvocation(_ parameters: KernelParameters, tables: [String: [Double]], qHeads: Int) throws -> [String]? {
        for name in tables.keys.sorted() where name != "head_map" {
            throw KernelError("kernel 'kascade' takes only the table 'head_map', not '\(name)'")
        }
        let role = Int(parameters["role"] ?? 0)
        var lines = ["int64_t attended = 0, dense = 0;",
                     "const attune_kascade_params params = "
                        + cInitializer(parameters, extra: [".attended_keys_out = &attended", ".dense_keys_out = &dense"]) + ";"]
        if role == 0 {
            lines.append("int rc = attune_kascade_anchor(&p, &t, &params, &sel, &status);")
        } else if let map = tables["head_map"] {
            lines += ["int32_t head_map[\(map.count)];",
                      "for (int g = 0; g < \(map.count); g++) head_map[g] = (int32_t)table_head_map[g];",
                      "int rc = attune_kascade_reuse(&p, &t, &params, &sel, head_map, &status);"]
        } else {
            lines.append("int rc = attune_kascade_reuse(&p, &t, &params, &sel, NULL, &status);")
        }
        lines += ["counters[0] += attended;", "counters[1] += dense;"]
        return lines
    }

    /// Where the parameters go in `attune_kascade_params`; `role`, `anchor` and `keep`
    /// choose the call, and the counters' out-pointers are added per call.
    public static let cFields = CParameterFields(attune_kascade_params.init, [
        .double("fraction", \.fraction), .int32("min_k", \.min_k), .int32("tile", \.tile), .int32("threads", \.threads),
    ], passedApart: ["role", "anchor", "keep"])

    /// Selected history keys for a history of `history` keys (`attune_kascade_budget`).
    public static func budget(history: Int, _ parameters: KernelParameters) -> Int {
        var k = KascadeKernel().cStruct(parameters)
        return Int(attune_kascade_budget(Int64(history), &k))
    }

    /// Selected keys per kv head a compiled model must hold room for: the budget of the
    /// longest history its context allows.
    public static func capacity(context: Int, _ parameters: KernelParameters) -> Int {
        max(1, budget(history: context, parameters))
    }

    public func run(_ problem: AttentionProblem, q: UnsafePointer<Float>, k: UnsafePointer<Float>,
                    v: UnsafePointer<Float>, o: UnsafeMutablePointer<Float>, lse: UnsafeMutablePointer<Float>?,
                    parameters: KernelParameters) throws -> KernelRunStats {
        try checkParameters(parameters)
        let reasons = unsupportedReasons(problem)
        if !reasons.isEmpty { throw KernelError("kascade: " + reasons.joined(separator: "; ")) }
        // C reads 0 as "the default"; a user's explicit 0 is a mistake, said here (the
        // declared range 0...1 refuses the rest).
        if parameters["fraction"] == 0 { throw KernelError("kascade: fraction must be in (0, 1], got 0") }
        var p = problem.cProblem(k: k, v: v)
        var tensors = attune_attention_tensors(q: q, k: k, v: v, o: o, lse: lse)
        // The C call writes its counts here; stable storage, since `kp` keeps the pointers.
        let counts = UnsafeMutablePointer<Int64>.allocate(capacity: 2)
        counts.initialize(repeating: 0, count: 2)
        defer { counts.deallocate() }
        var kp = cStruct(parameters)
        kp.attended_keys_out = counts
        kp.dense_keys_out = counts + 1
        var capacity: Int64 = 0, slots: Int64 = 0
        attune_kascade_capacity(&p, &kp, &capacity, &slots)
        let role = Int(parameters["role"] ?? 0), keep = (parameters["keep"] ?? 0) != 0
        let key = "\(UInt(bitPattern: q))/\(UInt(bitPattern: k))/\(problem)/\(describeParameters(parameters))"
        var selection: [Int32]
        var selectMs = 0.0
        var status = attune_status()
        if role == 1, keep, let kept = KascadeSelectionStore.shared.get(key) {
            selection = kept
        } else {
            selection = [Int32](repeating: -1, count: Int(Int64(problem.batch) * slots * Int64(problem.kvHeads) * capacity))
            if role == 1 {
                // The anchor's selection on the same inputs; its output goes to scratch.
                var scratch = [Float](repeating: 0, count: problem.batch * problem.qHeads * problem.qLen * problem.vDim)
                var anchorProblem = p
                anchorProblem.o_stride = attune_strides(batch: Int64(problem.qHeads * problem.qLen * problem.vDim),
                                                        head: Int64(problem.qLen * problem.vDim), row: Int64(problem.vDim))
                let t0 = Date()
                let rc = scratch.withUnsafeMutableBufferPointer { sb in
                    selection.withUnsafeMutableBufferPointer { ib in
                        var anchorTensors = attune_attention_tensors(q: q, k: k, v: v, o: sb.baseAddress, lse: nil)
                        var table = attune_kascade_indices(idx: ib.baseAddress, k_cap: capacity, slots: slots)
                        return attune_kascade_anchor(&anchorProblem, &anchorTensors, &kp, &table, &status)
                    }
                }
                selectMs = Date().timeIntervalSince(t0) * 1e3
                if rc != 0 { throw KernelError("kascade: " + AttentionProblem.message(of: status)) }
                if keep { KascadeSelectionStore.shared.put(key, selection) } else { KascadeSelectionStore.shared.clear() }
            }
        }
        let t1 = Date()
        let rc = selection.withUnsafeMutableBufferPointer { ib -> Int32 in
            var table = attune_kascade_indices(idx: ib.baseAddress, k_cap: capacity, slots: slots)
            return role == 1
                ? attune_kascade_reuse(&p, &tensors, &kp, &table, nil, &status)
                : attune_kascade_anchor(&p, &tensors, &kp, &table, &status)
        }
        let attendMs = Date().timeIntervalSince(t1) * 1e3
        if rc != 0 { throw KernelError("kascade: " + AttentionProblem.message(of: status)) }
        let attended = Double(counts[0]), dense = Double(counts[1])
        return ["attended_keys": attended, "dense_keys": dense,
                "attended_fraction": dense > 0 ? attended / dense : 0,
                "k": Double(capacity), "select_ms": selectMs, "attend_ms": attendMs]
    }
}

/// The selection kept for `keep=1`, keyed by input addresses, problem and parameters.
final class KascadeSelectionStore: @unchecked Sendable {
    static let shared = KascadeSelectionStore()
    private let lock = NSLock()
    private var entry: (String, [Int32])?

    func get(_ key: String) -> [Int32]? { lock.withLock { entry.flatMap { $0.0 == key ? $0.1 : nil } } }
    func put(_ key: String, _ value: [Int32]) { lock.withLock { entry = (key, value) } }
    func clear() { lock.withLock { entry = nil } }
}
