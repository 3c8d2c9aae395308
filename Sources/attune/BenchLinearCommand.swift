import ArgumentParser
import AttuneBench
import AttuneKernels
import CAttuneKernels
import Foundation

struct BenchLinear: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "linear",
        abstract: "Time a linear layer with int8 or 4-bit weights against the f32 and bf16 paths, memory bandwidth and SGEMM, in one process.",
        discussion: """
        y = x·Wᵀ with x [--rows, --in] and W [--out, --in] stored as int8 or q4 (Kernels/include/attune_linear_q8.h, \
        attune_linear_q4.h). Rows up to \(ATTUNE_Q8_GEMV_MAX_ROWS) run the VNNI GEMV with int8 activations (decode), more the bf16 GEMM over \
        dequantised panels (prefill). The weights are cycled through copies totalling at least 256 MiB so every call \
        reads them from memory. In each of --rounds rounds: one pass of the quantised kernel, one pass of \
        attune_op_linear on f32 weights and one of attune_op_linear_bf16_blocks on bf16 weights (all threads), a streaming read (median of 3 passes over \
        256 MiB) and, for prefill, a 2048³ SGEMM; printed figures are medians over the rounds, ratios are per-round ratios' medians. \
        --model runs every matmul shape of qwen2.5-0.5b or tinyllama-1.1b instead of --in/--out.
        """
    )

    @Option(help: "Weight format (q8: int8 with per-group scales; q4: 4-bit codes with per-group scales).") var weights: String = "q8"
    @Option(help: "Activation rows (1-8: decode GEMV; more: prefill GEMM).") var rows: Int = 1
    @Option(name: .customLong("in"), help: "Input width.") var width: Int = 896
    @Option(help: "Output width.") var out: Int = 4864
    @Option(help: "Shapes of a model: \(LinearShapes.models.keys.sorted().joined(separator: ", ")).") var model: String?
    @Option(help: "Weights per scale: a multiple of 32 dividing --in that divides 512 or is a multiple of 512; 0 = per output channel.")
    var group: Int = 32
    @Option(help: "Scale type: f16 or f32.") var scale: String = "f16"
    @Option(help: "Threads (0 = all cores).") var threads: Int = 0
    @Option(help: "Rounds (medians are reported).") var rounds: Int = 7
    @Flag(help: "Print one JSON object per shape.") var json = false

    func run() throws {
        guard let bits = ["q8": 8, "q4": 4][weights] else { throw CLIError("--weights must be q8 or q4, got '\(weights)'") }
        guard let scaleKind = ["f32": Int32(ATTUNE_Q8_SCALE_F32), "f16": Int32(ATTUNE_Q8_SCALE_F16)][scale] else {
            throw CLIError("--scale must be f16 or f32, got '\(scale)'")
        }
        guard (0...KernelParameter.maxThreads).contains(threads) else { throw CLIError("--threads must be in 0...\(KernelParameter.maxThreads)") }
        guard rounds >= 1 else { throw CLIError("--rounds must be >= 1") }
        var shapes: [(name: String, width: Int, out: Int)] = [("", width, out)]
        if let model {
            guard let s = LinearShapes.models[model] else {
                throw CLIError("--model must be one of \(LinearShapes.models.keys.sorted().joined(separator: ", ")), got '\(model)'")
            }
            shapes = s
        }
        var benches: [LinearBenchmark] = []
        for s in shapes {
            var b = LinearBenchmark(rows: rows, width: s.width, out: s.out)
            (b.bits, b.group, b.scale, b.threads, b.rounds) = (bits, group == 0 ? s.width : group, scaleKind, threads, rounds)
            if let e = b.validationError() { throw CLIError("\(s.name.isEmpty ? "" : s.name + ": ")\(e)") }
            benches.append(b)
        }
        for (s, b) in zip(shapes, benches) {
            let r = try b.run()
            let label = s.name.isEmpty ? "" : "\(s.name)  "
            print("\(label)\(r.weights) g\(r.group) \(scale)  rows \(r.rows)  \(r.width) -> \(r.out)  threads \(r.threads)  (\(r.weight_bytes) weight bytes)")
            print("  time     \(fmt(r.ms_median, 3)) ms  = \(fmt(r.speedup_vs_f32, 2))x the f32 path (\(fmt(r.f32_ms_median, 3)) ms), "
                + "\(fmt(r.speedup_vs_bf16, 2))x the bf16 path (\(fmt(r.bf16_ms_median, 3)) ms)")
            if r.sgemm_gflops == 0 {
                print("  memory   \(fmt(r.gbps, 2)) GB/s of weights  = \(fmt(100 * r.ratio_to_read, 1)) % of streaming read (\(fmt(r.read_gbps, 2)) GB/s)")
            } else {
                print("  compute  \(fmt(r.gflops, 1)) GFLOP/s  = \(fmt(100 * r.ratio_to_sgemm, 1)) % of SGEMM 2048^3 (\(fmt(r.sgemm_gflops, 1)) GFLOP/s)")
            }
            if json {
                let encoder = JSONEncoder()
                encoder.outputFormatting = [.sortedKeys]
                print(String(decoding: try encoder.encode(r), as: UTF8.self))
            }
        }
    }
}
