import CAttuneKernels
import Foundation

/// One two-tier KV cache (`Kernels/hybrid_kv.c`): a hot window (f32, bf16 or int8 as a KV
/// cache stores them) and a cold store
/// (f32, bf16 or int8, in memory or in a memory-mapped file). The Swift owner of an
/// `attune_hybrid_kv`; destroying it unmaps the store (a temporary cold file is unlinked at creation).
public final class HybridKVCache: @unchecked Sendable {
    public let handle: OpaquePointer
    public let coldPath: String?

    public struct Config: Sendable, Equatable {
        public var kvHeads: Int, qkDim: Int, vDim: Int
        public var window: Int = 1024
        /// 0 f32, 1 bf16, 2 int8 (`attune_hybrid_cold_dtype`).
        public var coldDType: Int = 1
        public var block: Int = 32
        public var maxTokens: Int = 0
        public var coldPath: String? = nil
        public var releaseWritten: Bool = false
        /// The hot tier's format (`--kv`).
        public var hotFormat: KVFormat = .f32
        public init(kvHeads: Int, qkDim: Int, vDim: Int, window: Int = 1024, coldDType: Int = 1, block: Int = 32,
                    maxTokens: Int = 0, coldPath: String? = nil, releaseWritten: Bool = false, hotFormat: KVFormat = .f32) {
            self.kvHeads = kvHeads; self.qkDim = qkDim; self.vDim = vDim; self.window = window
            self.coldDType = coldDType; self.block = block; self.maxTokens = maxTokens
            self.coldPath = coldPath; self.releaseWritten = releaseWritten; self.hotFormat = hotFormat
        }
    }

    public init(_ config: Config, removeFileOnDeinit: Bool = false) throws {
        var c = attune_hybrid_kv_config()
        c.kv_heads = Int64(config.kvHeads)
        c.qk_dim = Int64(config.qkDim)
        c.v_dim = Int64(config.vDim)
        c.window = Int64(config.window)
        c.cold_dtype = Int32(clamping: config.coldDType)
        c.block = Int32(clamping: config.block)
        c.max_tokens = Int64(config.maxTokens)
        c.release_written = config.releaseWritten ? 1 : 0
        c.hot_format = config.hotFormat.cValue
        var status = attune_status()
        var out: OpaquePointer?
        let rc: Int32 = config.coldPath.map { path in
            path.withCString { cs in
                c.cold_path = cs
                return attune_hybrid_kv_create(&c, &out, &status)
            }
        } ?? attune_hybrid_kv_create(&c, &out, &status)
        guard rc == 0, let out else { throw KernelError(AttentionProblem.message(of: status)) }
        handle = out
        coldPath = config.coldPath
        // A temporary file is unlinked at once: the open descriptor and the mapping keep it
        // alive, and it vanishes when the cache is destroyed or the process exits.
        if removeFileOnDeinit, let path = config.coldPath { unlink(path) }
    }

    deinit { attune_hybrid_kv_destroy(handle) }

    /// Appends `n` tokens of every kv head; K row (g, t) at `k + g * kHeadStride + t * kRowStride`.
    public func append(_ n: Int, k: UnsafePointer<Float>, kHeadStride: Int, kRowStride: Int,
                       v: UnsafePointer<Float>, vHeadStride: Int, vRowStride: Int) throws {
        var status = attune_status()
        let rc = attune_hybrid_kv_append(handle, Int64(n), k, Int64(kHeadStride), Int64(kRowStride),
                                         v, Int64(vHeadStride), Int64(vRowStride), &status)
        if rc != 0 { throw KernelError(AttentionProblem.message(of: status)) }
    }

    public func reset() { attune_hybrid_kv_reset(handle) }

    public var lengths: (total: Int, hot: Int, cold: Int) {
        var t: Int64 = 0, h: Int64 = 0, c: Int64 = 0
        attune_hybrid_kv_lengths(handle, &t, &h, &c)
        return (Int(t), Int(h), Int(c))
    }

    /// Bytes of the cold store (file size when file-backed) and of the block summaries.
    public var footprint: (cold: Int, summaries: Int) {
        var c: Int64 = 0, s: Int64 = 0
        attune_hybrid_kv_footprint(handle, &c, &s)
        return (Int(c), Int(s))
    }

    /// The stored (dequantised) K and V rows of one token.
    public func read(head: Int, position: Int, qkDim: Int, vDim: Int) throws -> (k: [Float], v: [Float]) {
        var k = [Float](repeating: 0, count: qkDim), v = [Float](repeating: 0, count: vDim)
        var status = attune_status()
        let rc = k.withUnsafeMutableBufferPointer { kb in
            v.withUnsafeMutableBufferPointer { vb in
                attune_hybrid_kv_read(handle, Int64(head), Int64(position), kb.baseAddress, vb.baseAddress, &status)
            }
        }
        if rc != 0 { throw KernelError(AttentionProblem.message(of: status)) }
        return (k, v)
    }
}

/// `hybrid`: two KV tiers merged by log-sum-exp (HGCA-style, ALGORITHMS.md §6;
/// Kernels/hybrid_kv.c, Kernels/hybrid.c). The most recent `window` (to `window + block - 1`)
/// keys stay fp32 and are attended exactly by `flash`; older keys move to a cold store
/// (f32, bf16 or int8) in blocks, and each kv head attends exactly over the top
/// `cold_budget` of its blocks by a min/max upper bound of q·k. Approximate: exact (to fp32
/// rounding) only with `cold_dtype=0` and `cold_budget=1` — the harness checks that.
///
/// `run` builds a cache per batch element from the problem's K/V (every key in order) and
/// attends: the build is part of the call. Stats separate `build_ms` and `attend_ms`; with
/// `reuse=1` (benchmarks only: the caller promises K/V are unchanged at the same addresses)
/// the last built caches are kept and later calls time the attention only.
public struct HybridKernel: KVStoreKernel, CParameterKernel {
    public init() {}

    public let name = "hybrid"
    public let summary = "two-tier KV: recent window (f32, or bf16/int8 with --kv) via flash + cold tier (f32/bf16/int8, optionally mmap'd) over top-budget blocks per head, LSE merge; exact only with cold_dtype=0 cold_budget=1"
    public let isExact = false
    public let normalizer = KernelNormalizer.softmax
    /// The hot tier stores K/V in the KV format; `run` takes packed K/V of that format.
    public let kvFormats: [KVFormat] = [.f32, .bf16, .int8]
    public let cSources = ["hybrid.c", "hybrid_kv.c", "kv_quant.c", "flash.c", "flash_tiles.c", "kv_tiles.c", "flash_bf16.c", "flash_int8qk.c"]

    public let parameters: [KernelParameter] = [
        KernelParameter(name: "window", summary: "hot tokens kept exactly, in the KV format (the hot tier holds window..window+block-1)",
                        defaultValue: 1024, candidates: [256, 512, 1024, 2048, 4096]),
        KernelParameter(name: "cold_dtype", summary: "cold store: 0 f32, 1 bf16, 2 int8 (K scale per block and dim, V per token)",
                        defaultValue: 1, candidates: [0, 1, 2]),
        KernelParameter(name: "cold_budget", summary: "cold blocks attended per kv head: fraction in (0, 1], or a whole number of blocks > 1; 1 = all",
                        defaultValue: 0.25, candidates: [0.0625, 0.125, 0.25, 0.5, 1], isInteger: false),
        KernelParameter(name: "block", summary: "cold keys per block (selection and int8 scale unit), multiple of 16 in [16, 1024]",
                        defaultValue: 32, candidates: [16, 32, 64, 128]),
        .threads,
        KernelParameter(name: "schedule", summary: "0: hot on one thread concurrently with cold items; 1: hot with all threads, then cold",
                        defaultValue: 0, candidates: [0, 1]),
        KernelParameter(name: "cold_file", summary: "1: cold tier in a memory-mapped temporary file (deleted afterwards)",
                        defaultValue: 0, candidates: [0, 1], isSwitch: true),
        KernelParameter(name: "release_written", summary: "with cold_file=1: drop written cold pages from the process (page cache keeps them)",
                        defaultValue: 0, candidates: [0, 1], isSwitch: true),
        KernelParameter(name: "reuse", summary: "1: keep the built caches across calls on the same K/V addresses (benchmarks only)",
                        defaultValue: 0, candidates: [0, 1], isSwitch: true),
    ]

    public func problemRefusals(_ problem: AttentionProblem) -> [String] {
        problem.window != nil ? ["hybrid does not support a sliding window (its hot tier is the window)"] : []
    }

    /// Over plain K/V pointers there is nothing to call: compiled graphs give hybrid a
    /// store per layer instead (`KVStoreKernel`).
    public func cInvocation(_ parameters: KernelParameters) -> [String]? { nil }

    /// The attention call's parameters in `attune_hybrid_params`; the others configure the store (`cStoreCreate`, `config`).
    public static let cFields = CParameterFields(attune_hybrid_params.init, [.double("cold_budget", \.cold_budget), .int32("threads", \.threads), .int32("schedule", \.schedule)],
                                                 passedApart: ["window", "cold_dtype", "block", "cold_file", "release_written", "reuse"])

    public let cCounters = ["hot_keys", "cold_keys", "cold_keys_selected"]
    public let cStoreReset = "attune_hybrid_kv_reset"
    public let cStoreDestroy = "attune_hybrid_kv_destroy"

    /// With `cold_file=1` the cold tier is a file in `$ATTUNE_HYBRID_COLD_DIR` (else
    /// `$TMPDIR`, else /tmp), named by process id and layer and unlinked once mapped, so
    /// it disappears with the process.
    public func cStoreCreate(_ parameters: KernelParameters, _ layout: KVStoreLayout) throws -> [String] {
        try checkStoreParameters(parameters)
        let int = { (name: String) in Int(value(name, in: parameters)) }
        var lines = ["attune_hybrid_kv_config config = {.kv_heads = \(layout.kvHeads), .qk_dim = \(layout.qkDim), .v_dim = \(layout.vDim), "
            + ".window = \(int("window")), .cold_dtype = \(int("cold_dtype")), .block = \(int("block")), "
            + ".max_tokens = \(layout.maxTokens), .cold_path = NULL, .release_written = \(int("release_written"))"
            + (layout.kvFormat == .f32 ? "" : ", .hot_format = \(layout.kvFormat.cName)") + "};"]
        let fileBacked = int("cold_file") != 0
        if fileBacked {
            lines += ["char path[4096];",
                      "const char *dir = getenv(\"ATTUNE_HYBRID_COLD_DIR\");",
                      "if (!dir || !*dir) dir = getenv(\"TMPDIR\");",
                      "if (!dir || !*dir) dir = \"/tmp\";",
                      "snprintf(path, sizeof path, \"%s/attune-%ld-layer\(layout.layer).cold\", dir, (long)getpid());",
                      "config.cold_path = path;"]
        }
        lines.append("int rc = attune_hybrid_kv_create(&config, (attune_hybrid_kv **)&store, &status);")
        if fileBacked { lines.append("if (rc == 0) unlink(path);") }
        return lines
    }

    public func cStoreAttention(_ parameters: KernelParameters, _ c: KVStoreCall) throws -> [String] {
        try checkStoreParameters(parameters)
        return [
            "int rc = attune_hybrid_kv_append(\(c.store), \(c.rows), \(c.k.pointer), \(c.qkDim), \(c.k.rowStride), \(c.v.pointer), \(c.vDim), \(c.v.rowStride), &status);",
            "if (rc == 0) {",
            "    attune_hybrid_params params = \(cInitializer(parameters));",
            "    attune_hybrid_stats stats;",
            "    rc = attune_hybrid_attention(\(c.store), \(c.heads), \(c.rows), \(c.q.pointer), \(c.qkDim), \(c.q.rowStride), "
                + "\(c.o.pointer), \(c.vDim), \(c.o.rowStride), NULL, \(Float(c.scale))f, \(c.causal ? 1 : 0), ATTUNE_Q_OFFSET_DEFAULT, &params, &stats, &status);",
            "    counters[0] += stats.hot_keys * \(c.kvHeads);",
            "    counters[1] += stats.cold_keys * \(c.kvHeads);",
            "    counters[2] += stats.selected_cold_keys;",
            "}",
        ]
    }

    /// fp32 copies of packed K/V rows of a bf16/int8 problem (nil for f32: use them as given).
    static func unpacked(_ packed: UnsafePointer<Float>, _ format: KVFormat, rows: Int, dim: Int) -> UnsafeMutablePointer<Float>? {
        guard format != .f32 else { return nil }
        let out = UnsafeMutablePointer<Float>.allocate(capacity: max(rows * dim, 1))
        let raw = UnsafeRawPointer(packed)
        let scales = format == .int8 ? (raw + format.scaleOffset(rows: rows, dim: dim)).assumingMemoryBound(to: Float.self) : nil
        attune_kv_dequantize(format.cValue, Int64(rows), 1, Int64(dim), raw, Int64(dim), scales, 1, out, Int64(dim))
        return out
    }

    /// `reuse` only makes sense for `run` on fixed buffers; the store itself is the reuse.
    private func checkStoreParameters(_ parameters: KernelParameters) throws {
        try checkParameters(parameters)
        if (parameters["reuse"] ?? 0) != 0 { throw KernelError("hybrid: reuse=1 is for benchmarks of `run`; compiled models keep their store anyway") }
        let budget = value("cold_budget", in: parameters)
        guard budget > 0 else { throw KernelError("hybrid: cold_budget must be > 0, got \(budget)") }
    }

    func config(_ problem: AttentionProblem, _ parameters: KernelParameters) -> HybridKVCache.Config {
        HybridKVCache.Config(kvHeads: problem.kvHeads, qkDim: problem.qkDim, vDim: problem.vDim,
                             window: Int(value("window", in: parameters)), coldDType: Int(value("cold_dtype", in: parameters)),
                             block: Int(value("block", in: parameters)), maxTokens: problem.kvLen + 64,
                             releaseWritten: value("release_written", in: parameters) != 0, hotFormat: problem.kvFormat)
    }

    public func run(_ problem: AttentionProblem, q: UnsafePointer<Float>, k: UnsafePointer<Float>,
                    v: UnsafePointer<Float>, o: UnsafeMutablePointer<Float>, lse: UnsafeMutablePointer<Float>?,
                    parameters: KernelParameters) throws -> KernelRunStats {
        try checkParameters(parameters)
        let reasons = unsupportedReasons(problem)
        if !reasons.isEmpty { throw KernelError("hybrid: " + reasons.joined(separator: "; ")) }
        let p = problem
        var cfg = config(p, parameters)
        let fileBacked = value("cold_file", in: parameters) != 0, reuse = value("reuse", in: parameters) != 0
        let key = HybridCacheStore.Key(k: UInt(bitPattern: k), v: UInt(bitPattern: v), problem: p.description,
                                       config: "\(cfg.window)/\(cfg.coldDType)/\(cfg.block)/\(fileBacked)/\(cfg.releaseWritten)/\(cfg.hotFormat)")
        var built: HybridCacheStore.Entry
        if reuse, let entry = HybridCacheStore.shared.get(key) {
            built = entry
        } else {
            let t0 = Date()
            // Packed bf16/int8 K/V (KVFormat) back to fp32: the hot tier stores them in the
            // format again (bf16 exactly; int8 with scales recomputed from q·s, within an ulp).
            let kRows = p.batch * p.kvHeads * p.kvLen, kF32 = Self.unpacked(k, p.kvFormat, rows: kRows, dim: p.qkDim)
            let vF32 = Self.unpacked(v, p.kvFormat, rows: kRows, dim: p.vDim)
            defer { kF32?.deallocate(); vF32?.deallocate() }
            let k = kF32.map { UnsafePointer($0) } ?? k, v = vF32.map { UnsafePointer($0) } ?? v
            var caches: [HybridKVCache] = []
            for b in 0..<p.batch {
                if fileBacked {
                    cfg.coldPath = FileManager.default.temporaryDirectory
                        .appendingPathComponent("attune-hybrid-\(getpid())-\(HybridCacheStore.shared.nextId())-b\(b).kv").path
                }
                let cache = try HybridKVCache(cfg, removeFileOnDeinit: fileBacked)
                let kHead = p.kvLen * p.qkDim, vHead = p.kvLen * p.vDim
                try cache.append(p.kvLen, k: k + b * p.kvHeads * kHead, kHeadStride: kHead, kRowStride: p.qkDim,
                                 v: v + b * p.kvHeads * vHead, vHeadStride: vHead, vRowStride: p.vDim)
                caches.append(cache)
            }
            built = HybridCacheStore.Entry(caches: caches, buildMs: Date().timeIntervalSince(t0) * 1e3)
            if reuse { HybridCacheStore.shared.put(key, built) } else { HybridCacheStore.shared.clear() }
        }

        var params = cStruct(parameters)
        var stats: KernelRunStats = ["build_ms": built.buildMs, "hot_keys": 0, "cold_keys": 0, "selected_cold_keys": 0,
                                     "attend_ms": 0, "select_ms": 0]
        var total = 0.0
        for b in 0..<p.batch {
            var st = attune_hybrid_stats()
            var status = attune_status()
            let qb = q + b * p.qHeads * p.qLen * p.qkDim
            let ob = o + b * p.qHeads * p.qLen * p.vDim
            let lb = lse.map { $0 + b * p.qHeads * p.qLen }
            let rc = attune_hybrid_attention(built.caches[b].handle, Int64(p.qHeads), Int64(p.qLen),
                                             qb, Int64(p.qLen * p.qkDim), Int64(p.qkDim),
                                             ob, Int64(p.qLen * p.vDim), Int64(p.vDim), lb,
                                             p.resolvedScale, p.causal ? 1 : 0,
                                             p.qOffset.map(Int64.init) ?? Int64.min,
                                             &params, &st, &status)
            if rc != 0 { throw KernelError("hybrid: " + AttentionProblem.message(of: status)) }
            stats["hot_keys"]! += Double(st.hot_keys)
            stats["cold_keys"]! += Double(st.cold_keys)
            stats["selected_cold_keys"]! += Double(st.selected_cold_keys)
            stats["attend_ms"]! += st.attend_ms
            stats["select_ms"]! += st.select_ms
            total += Double(st.cold_keys) * Double(p.kvHeads)
        }
        stats["selected_fraction"] = total > 0 ? stats["selected_cold_keys"]! / total : 0
        let fp = built.caches.reduce((0, 0)) { ($0.0 + $1.footprint.cold, $0.1 + $1.footprint.summaries) }
        stats["cold_mb"] = Double(fp.0) / 1048576
        stats["summary_mb"] = Double(fp.1) / 1048576
        if fileBacked, let s = ProcessMemory.read() {
            stats["vm_hwm_mb"] = s.hwm
            stats["vm_rss_mb"] = s.rss
            stats["rss_file_mb"] = s.rssFile
        }
        return stats
    }
}

/// Built caches kept for `reuse=1`, keyed by the K/V addresses, the problem and the store config.
final class HybridCacheStore: @unchecked Sendable {
    struct Key: Equatable { var k: UInt, v: UInt, problem: String, config: String }
    struct Entry { var caches: [HybridKVCache]; var buildMs: Double }
    static let shared = HybridCacheStore()
    private let lock = NSLock()
    private var entry: (Key, Entry)?
    private var counter = 0

    func get(_ key: Key) -> Entry? { lock.withLock { entry.flatMap { $0.0 == key ? $0.1 : nil } } }
    func put(_ key: Key, _ e: Entry) { lock.withLock { entry = (key, e) } }
    func clear() { lock.withLock { entry = nil } }
    func nextId() -> Int { lock.withLock { counter += 1; return counter } }
}

/// VmHWM / VmRSS / RssFile of this process in MiB, from /proc/self/status (Linux).
public enum ProcessMemory {
    public static func read() -> (hwm: Double, rss: Double, rssFile: Double)? {
        guard let text = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return nil }
        func field(_ name: String) -> Double {
            for line in text.split(separator: "\n") where line.hasPrefix(name + ":") {
                let digits = line.dropFirst(name.count + 1).split(whereSeparator: { $0 == " " || $0 == "\t" }).first.flatMap { Double($0) } ?? 0
                return digits / 1024 // kB -> MiB
            }
            return 0
        }
        return (field("VmHWM"), field("VmRSS"), field("RssFile"))
    }
}
