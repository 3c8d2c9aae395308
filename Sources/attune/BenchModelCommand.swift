import ArgumentParser
import AttunePasses
import AttuneRuntime
import AttuneTensor
import Foundation

struct BenchModel: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "model",
        abstract: "Compare a model compiled with some attention against the dense compile: speed and logits, in one process.",
        discussion: """
        Compiles MODEL twice — the baseline (--baseline, default flash everywhere) and the \
        candidate (the compile options: --attention, --layer-attention, --attention-policy, \
        --calibration) — and prefills every token sequence (--data .npy [n] or [sequences, n], \
        or --tokens) through both, alternating, --repeats times. Prints the median prefill \
        time of each and their ratio, and over every position: the largest logit difference, \
        the mean and largest KL(baseline ‖ candidate), and top-1 agreement. --json adds one \
        JSON object.
        """
    )

    @Argument(help: "Hugging Face model folder or .attn file.") var model: String
    @Option(help: "Token ids (.npy, integers, [n] or [sequences, n]).") var data: String?
    @Option(help: "Token ids, comma-separated (instead of --data).") var tokens: String?
    @Option(help: "Baseline attention (NAME[:k=v,...]).") var baseline: String = "flash"
    @Option(help: "Timed prefills per sequence and compile (medians are reported).") var repeats: Int = 3
    @Flag(help: "Print one JSON object on the last line.") var json = false
    @OptionGroup var compile: CompileOptionsGroup

    func run() throws {
        guard repeats >= 1 else { throw CLIError("--repeats must be >= 1") }
        let sequences = try readSequences()
        let loaded = try ModelSource.load(model)
        let toolchain = try Toolchain.detect()
        var candidateOptions = try compile.options()
        if candidateOptions.maxContext == nil { candidateOptions.maxContext = max(sequences.map(\.count).max()!, 16) }
        var baselineOptions = candidateOptions
        baselineOptions.kernels = KernelOverrides(global: try KernelChoice(parsing: baseline))
        baselineOptions.calibration = nil
        let base = try CompiledModel(artifacts: try ModelCompiler.compile(loaded, baselineOptions, toolchain: toolchain))
        let cand = try CompiledModel(artifacts: try ModelCompiler.compile(loaded, candidateOptions, toolchain: toolchain))
        var parts: [LogitComparison] = []
        var baseMs: [Double] = [], candMs: [Double] = []
        for tokens in sequences {
            var logits: (base: [Float], cand: [Float]) = ([], [])
            for _ in 0..<repeats {
                for (session, isBase) in [(base, true), (cand, false)] {
                    session.reset()
                    let t0 = Date()
                    let l = try session.prefill(tokens)
                    let ms = Date().timeIntervalSince(t0) * 1e3
                    if isBase { baseMs.append(ms); logits.base = l } else { candMs.append(ms); logits.cand = l }
                }
            }
            parts.append(LogitComparison(baseline: logits.base, candidate: logits.cand, vocab: base.vocab))
        }
        let c = LogitComparison.combine(parts)
        let b = median(baseMs), m = median(candMs)
        print("baseline   \(baseline): prefill median \(fmt(b, 3)) ms")
        print("candidate  prefill median \(fmt(m, 3)) ms: \(fmt(b / m, 2))x the baseline's speed")
        print("logits     \(c.positions) positions: max |diff| \(String(format: "%.3e", c.maxAbs)), KL mean \(String(format: "%.3e", c.meanKL)) max \(String(format: "%.3e", c.maxKL)), top-1 agreement \(fmt(100 * c.top1Agreement, 1)) %")
        if stats {
            for c in cand.counters { print("stats      \(c.name)  \(c.value)") }
        }
        if json {
            let object: [String: Any] = ["baseline_ms": b, "candidate_ms": m, "speedup": b / m, "positions": c.positions,
                                         "max_abs_logit_diff": c.maxAbs, "kl_mean": c.meanKL, "kl_max": c.maxKL,
                                         "top1_agreement": c.top1Agreement]
            print(String(decoding: try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]), as: UTF8.self))
        }
    }

    @Flag(help: "Print the candidate's kernel counters (summed over the last sequence's last prefill).") var stats = false

    func readSequences() throws -> [[Int32]] {
        switch (data, tokens) {
        case (let path?, nil):
            let (shape, values) = try Npy.readIntegers(contentsOf: URL(fileURLWithPath: path))
            guard shape.count == 1 || shape.count == 2, let n = shape.last, n > 0, shape.first! > 0 else {
                throw CLIError("\(path): token ids must have shape [n] or [sequences, n] with n >= 1, got \(shape)")
            }
            guard values.allSatisfy({ $0 >= 0 && $0 <= Int64(Int32.max) }) else { throw CLIError("\(path): token ids must be in [0, 2^31)") }
            return stride(from: 0, to: values.count, by: n).map { values[$0..<$0 + n].map { Int32($0) } }
        case (nil, let text?):
            let ids = try text.split(separator: ",").map { part -> Int32 in
                guard let v = Int32(part.trimmingCharacters(in: .whitespaces)) else { throw CLIError("--tokens: '\(part)' is not an integer") }
                return v
            }
            guard !ids.isEmpty else { throw CLIError("--tokens needs at least one token id") }
            return [ids]
        default:
            throw CLIError("give the tokens with exactly one of --data FILE.npy or --tokens 1,2,3")
        }
    }

    func median(_ xs: [Double]) -> Double { xs.sorted()[xs.count / 2] }
}
