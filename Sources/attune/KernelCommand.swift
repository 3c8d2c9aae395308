import ArgumentParser
import AttuneBench
import AttuneKernels
import AttuneTensor
import Foundation

struct KernelCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "kernel",
        abstract: "Run attention kernels on your own tensors.",
        subcommands: [KernelRun.self, KernelList.self, KernelGenerate.self]
    )
}

struct KernelList: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "list", abstract: "List kernels and their parameters.")

    func run() throws {
        for kernel in KernelRegistry.all {
            print("\(kernel.name)\(kernel.isExact ? "" : " (approximate)"): \(kernel.summary)")
            for p in kernel.parameters {
                print("  " + describeParameters([p.name: p.defaultValue]) + ": \(p.summary)")
            }
        }
    }
}

struct KernelRun: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Run one attention kernel on .npy tensors.",
        discussion: """
        Layout: q [B, Hq, Lq, D], k [B, Hkv, Lk, D], v [B, Hkv, Lk, Dv]; float32 or float64 .npy \
        (float64 is converted to float32 on load). Writes o [B, Hq, Lq, Dv] and optionally \
        lse [B, Hq, Lq] (natural log; -inf for rows that see no key) as float32 .npy.
        Causal masking is bottom-right aligned: query row i sits at position q_offset + i \
        (default q_offset = Lk - Lq) and sees key j iff j <= q_offset + i.

        \(kernelListHelp)
        """
    )

    @Option(help: "Kernel name (see the list below).") var kernel: String = KernelRegistry.exactDefault.name
    @Option(help: "Queries, .npy [B, Hq, Lq, D].") var q: String
    @Option(help: "Keys, .npy [B, Hkv, Lk, D].") var k: String
    @Option(help: "Values, .npy [B, Hkv, Lk, Dv].") var v: String
    @Flag(help: "Causal mask (bottom-right aligned).") var causal = false
    @Option(parsing: .unconditional, help: "Absolute position of query row 0 (default Lk - Lq).") var qOffset: Int?
    @Option(parsing: .unconditional, help: "Sliding window: query at position p sees keys j > p - W.") var window: Int?
    @Option(parsing: .unconditional, help: "Score scale (default 1/sqrt(D)).") var scale: Float?
    @Option(parsing: .unconditional, help: "Logit soft-cap C: scores s become C·tanh(s/C) before the mask (Gemma 2; flash only).")
    var softcap: Double?
    @OptionGroup var modifiers: ModifierOptions
    @Option(help: "Output file for O.") var out: String
    @Option(help: "Output file for the per-row log-sum-exp.") var lse: String?
    @Option(name: .customLong("param"), help: "Kernel parameter name=value (repeatable).") var params: [String] = []
    @Option(help: "Threads (0 = all cores).") var threads: Int = 0
    @Option(help: "Store K and V as f32, bf16 or int8 (per key and head scale) before attending, as a KV cache in that format would.")
    var kv: String = "f32"

    func run() throws {
        let kernel = try KernelRegistry.kernel(named: self.kernel)
        let format: KVFormat
        do { format = try KVFormat(parsing: kv) } catch let error as KernelError { throw CLIError("--kv: " + error.message) }
        if let refusal = kernel.kvFormatRefusal(format) { throw CLIError("--kv \(kv): " + refusal) }
        let qt = try Npy.read(contentsOf: URL(fileURLWithPath: q))
        let kt = try Npy.read(contentsOf: URL(fileURLWithPath: k))
        let vt = try Npy.read(contentsOf: URL(fileURLWithPath: v))
        var problem = try problemFromShapes(q: qt.shape, k: kt.shape, v: vt.shape)
        problem.kvFormat = format
        try modifiers.apply(to: &problem, kernel: kernel)
        var parameters = try parseParameters(params, kernel: kernel)
        guard (0...KernelParameter.maxThreads).contains(threads) else {
            throw CLIError("--threads must be in 0...\(KernelParameter.maxThreads) (0 = all cores), got \(threads)")
        }
        if threads > 0 { parameters["threads"] = Double(threads) }
        let output = try kernel.runStored(problem, q: qt, k: kt, v: vt, parameters: parameters)
        try Npy.write(output.o, to: URL(fileURLWithPath: out))
        if let lse { try Npy.write(output.lse, to: URL(fileURLWithPath: lse)) }
        // What the kernel counted (fallback rows, selected fraction, ...), one line on stderr
        // so stdout stays clean for scripts.
        if !output.stats.isEmpty {
            FileHandle.standardError.write(Data("stats: \(describeParameters(output.stats))\n".utf8))
        }
    }

    func problemFromShapes(q: [Int], k: [Int], v: [Int]) throws -> AttentionProblem {
        for (name, shape) in [("q", q), ("k", k), ("v", v)] where shape.count != 4 {
            throw CLIError("\(name) must have rank 4 [B, H, L, D], got shape \(shape)")
        }
        if k[0] != q[0] || v[0] != q[0] {
            throw CLIError("batch sizes differ: q \(q[0]), k \(k[0]), v \(v[0])")
        }
        if k[1] != v[1] { throw CLIError("k has \(k[1]) heads but v has \(v[1])") }
        if k[2] != v[2] { throw CLIError("k has \(k[2]) keys but v has \(v[2])") }
        if k[3] != q[3] { throw CLIError("q head dim \(q[3]) differs from k head dim \(k[3])") }
        if k[1] == 0 || q[1] % k[1] != 0 {
            throw CLIError("q heads (\(q[1])) must be a multiple of kv heads (\(k[1]))")
        }
        if let window, window < 1 { throw CLIError("--window must be >= 1, got \(window)") }
        if let scale, !scale.isFinite { throw CLIError("--scale must be finite, got \(scale)") }
        let problem = AttentionProblem(batch: q[0], qHeads: q[1], kvHeads: k[1], qLen: q[2], kvLen: k[2],
                                       qkDim: q[3], vDim: v[3], scale: scale, causal: causal,
                                       qOffset: qOffset, window: window, softcap: softcap)
        if let error = problem.validationError() { throw CLIError(error) }
        return problem
    }
}

struct KernelGenerate: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "generate",
        abstract: "Write structured attention inputs (q.npy, k.npy, v.npy) for `kernel run`.",
        discussion: """
        Seeded Q/K/V whose attention has recency, sinks and heavy-hitter stripes, with head \
        kinds (local, sink, heavy, diffuse) cycled over the q heads: the inputs `bench attention \
        --inputs structured` uses (Docs/WORKLOADS.md). float32, q [B, Hq, Lq, D], \
        k [B, Hkv, Lk, D], v [B, Hkv, Lk, Dv]; positions as a causal `kernel run` with the \
        default q_offset (Lk - Lq) reads them.
        """
    )

    @OptionGroup var shape: ShapeOptions
    @Option(help: "Seed.") var seed: UInt64 = 42
    @Option(help: "Output directory (created if missing).") var out: String

    func run() throws {
        let problem = try shape.problem()
        let x = StructuredAttention(problem, seed: seed)
        let dir = URL(fileURLWithPath: out)
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        for (name, data, shape) in [("q", x.q, problem.qShape), ("k", x.k, problem.kShape), ("v", x.v, problem.vShape)] {
            try Npy.write(Tensor(shape: shape, data: data), to: dir.appendingPathComponent("\(name).npy"))
        }
        print("wrote q.npy \(problem.qShape), k.npy \(problem.kShape), v.npy \(problem.vShape) to \(dir.path)")
    }
}
