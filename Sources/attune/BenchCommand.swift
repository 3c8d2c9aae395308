import ArgumentParser
import AttuneBench
import AttuneKernels
import AttuneTensor
import Foundation

struct BenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Benchmarks with same-process baselines.",
        subcommands: [BenchAttention.self, BenchBatch.self, BenchModel.self, BenchLinear.self]
    )
}

struct BenchAttention: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "attention",
        abstract: "Time an attention kernel and compare it with SGEMM and memory bandwidth measured in the same run.",
        discussion: """
        Prints median/min/max ms after warm-up, GFLOP/s (4*d FLOPs per visible query-key pair \
        per head), GB/s of K/V read, and the same-process OpenBLAS SGEMM GFLOP/s and streaming \
        read GB/s with the kernel's ratio to each. Approximate softmax kernels (sparge, hybrid, \
        and any kernel with --precision bf16 or int8qk) also run dense f32 flash on the same inputs, alternating call by call: the median paired \
        speed ratio and the output's rel-L1, cosine and max-abs error against flash. \
        Masked problems (--document-lengths, --block-mask) also run the same kernel without \
        the masks, alternating: the share of tiles skipped and the paired speed-up. \
        --json prints one JSON object on the last line.

        \(kernelListHelp)
        """
    )

    @Option(help: "Kernel name.") var kernel: String = KernelRegistry.exactDefault.name
    @OptionGroup var shape: ShapeOptions
    @Flag(help: "Causal mask (bottom-right aligned).") var causal = false
    @Option(parsing: .unconditional, help: "Sliding window.") var window: Int?
    @Option(parsing: .unconditional, help: "Logit soft-cap C: scores s become C·tanh(s/C) (Gemma 2; flash only).") var softcap: Double?
    @OptionGroup var modifiers: ModifierOptions
    @Option(help: "Threads (0 = all cores).") var threads: Int = 0
    @Option(help: "Timed runs (at least; short runs repeat for 0.5 s).") var repeats: Int = 10
    @Option(name: .customLong("param"), help: "Kernel parameter name=value (repeatable).") var params: [String] = []
    @Option(help: "Prefill tiles' arithmetic, f32, bf16 or int8qk (flash): the kernel's `precision` parameter (kernels that have one).")
    var precision: String?
    @Option(help: "Inputs: random (uniform in [-1, 1)) or structured (recency, sinks, heavy hitters; Docs/WORKLOADS.md).")
    var inputs: String = "random"
    @Flag(help: "Print one JSON object on the last line.") var json = false
    @Option(help: "K/V stored as f32, bf16 or int8 (flash, unified_max, prefix_shared, kascade); GB/s counts the bytes stored.") var kv: String = "f32"

    func run() throws {
        let kernel = try KernelRegistry.kernel(named: self.kernel)
        guard (0...KernelParameter.maxThreads).contains(threads) else {
            throw CLIError("--threads must be in 0...\(KernelParameter.maxThreads) (0 = all cores), got \(threads)")
        }
        if repeats < 1 { throw CLIError("--repeats must be >= 1") }
        var problem = try shape.problem(causal: causal, window: window, softcap: softcap)
        try modifiers.apply(to: &problem, kernel: kernel)
        do { problem.kvFormat = try KVFormat(parsing: kv) } catch let error as KernelError { throw CLIError("--kv: " + error.message) }
        if let refusal = kernel.kvFormatRefusal(problem.kvFormat) { throw CLIError("--kv \(kv): " + refusal) }
        var parameters = try parseParameters(params, kernel: kernel)
        if let precision {
            guard kernel.parameters.contains(where: { $0.name == "precision" }) else {
                throw CLIError("--precision: kernel '\(kernel.name)' has no precision parameter")
            }
            do { parameters["precision"] = try kernel.parameterValue("precision", precision) } catch { throw CLIError("--precision: \(error)") }
        }
        var bench = AttentionBenchmark(kernel: kernel, problem: problem, parameters: parameters, threads: threads)
        bench.repeats = repeats
        guard let chosen = BenchInputs(rawValue: inputs) else {
            throw CLIError("--inputs must be one of \(BenchInputs.allCases.map(\.rawValue).joined(separator: ", ")), got '\(inputs)'")
        }
        bench.inputs = chosen
        let r = try bench.run()
        let params = describeParameters(r.parameters)
        print("kernel      \(r.kernel)  [\(params)]")
        print("problem     \(r.problem)  threads \(r.threads)  inputs \(r.inputs)")
        print("time        median \(fmt(r.ms_median, 3)) ms  min \(fmt(r.ms_min, 3))  max \(fmt(r.ms_max, 3))  (\(r.repeats) runs)")
        print("compute     \(fmt(r.gflops, 1)) GFLOP/s  = \(fmt(100 * r.ratio_to_sgemm, 1)) % of SGEMM \(r.sgemm_n)^3 (\(fmt(r.sgemm_gflops, 1)) GFLOP/s)")
        print("bandwidth   \(fmt(r.kv_gbps, 2)) GB/s K/V (\(problem.kvFormat.rawValue))  = \(fmt(100 * r.ratio_to_read, 1)) % of streaming read (\(fmt(r.read_gbps, 2)) GB/s)")
        if !r.kernel_stats.isEmpty {
            print("kernel      " + r.kernel_stats.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", "))
        }
        if let u = r.versus_unmasked {
            print("masks       \(fmt(100 * u.skipped_fraction, 1)) % of tiles skipped; \(fmt(u.speedup_paired, 2))x the unmasked run's speed (median of \(u.pairs) paired runs; unmasked median \(fmt(u.unmasked_ms_median, 3)) ms)")
        }
        if let f = r.versus_flash {
            print("vs flash    \(fmt(f.speedup_paired, 2))x flash's speed (median of \(f.pairs) paired runs; flash median \(fmt(f.flash_ms_median, 3)) ms)")
            print("accuracy    vs flash: rel-L1 \(String(format: "%.3e", f.rel_l1))  cosine \(String(format: "%.6f", f.cosine))  max-abs \(String(format: "%.3e", f.max_abs))")
        }
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys]
            print(String(decoding: try encoder.encode(r), as: UTF8.self))
        }
    }
}

/// The shape of an attention problem, as `bench attention` and `kernel generate` take it.
struct ShapeOptions: ParsableArguments {
    @Option var batch: Int = 1
    @Option(help: "Query heads.") var heads: Int = 8
    @Option(help: "KV heads (default: --heads).") var kvHeads: Int?
    @Option(help: "Query rows.") var qLen: Int = 2048
    @Option(help: "Keys (default: --q-len).") var kvLen: Int?
    @Option(help: "Head dim of Q and K.") var headDim: Int = 128
    @Option(help: "Head dim of V (default: --head-dim).") var vDim: Int?

    func problem(causal: Bool = false, window: Int? = nil, softcap: Double? = nil) throws -> AttentionProblem {
        let problem = AttentionProblem(batch: batch, qHeads: heads, kvHeads: kvHeads ?? heads, qLen: qLen,
                                       kvLen: kvLen ?? qLen, qkDim: headDim, vDim: vDim ?? headDim,
                                       causal: causal, window: window, softcap: softcap)
        if let error = problem.validationError() { throw CLIError(error) }
        // Every command taking a shape (bench, tune, kernel generate) allocates its tensors:
        // refuse up front what cannot fit, naming the sizes.
        try SystemMemory.require(problem.tensorBytes, for: "the problem \(problem)")
        return problem
    }
}

func fmt(_ x: Double, _ digits: Int) -> String { String(format: "%.\(digits)f", x) }
