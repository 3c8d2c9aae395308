import ArgumentParser
import AttuneKernels
import AttunePasses
import AttuneRuntime
import AttuneTensor
import Foundation

struct BenchModel: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "model",
        abstract: "Compare a model compiled with some attention against the dense compile: speed and logits, in one process.",
        discussion: """
        Compiles MODEL twice — the baseline (--baseline, default flash everywhere, f32 KV, the \
        stored weights) and the candidate (the compile options: --attention, --layer-attention, \
        --attention-policy, --calibration, --kv, --weights) — and prefills every token sequence \
        (--data .npy [n] or [sequences, n], or --tokens) through both, alternating, --repeats \
        times. With --decode N the last N tokens of each sequence are fed one at a time instead \
        (decode steps, teacher-forced), so decode kernels and their settings are measured at the \
        context the prefix builds. Prints the median prefill time (and decode time per token) of \
        each and their ratio, and over every position: the largest logit difference, the mean \
        and largest KL(baseline ‖ candidate), and top-1 agreement. --json adds one JSON object.
        """
    )

    @Argument(help: "Hugging Face model folder or .attn file.") var model: String
    @Option(help: "Token ids (.npy, integers, [n] or [sequences, n]).") var data: String?
    @Option(help: "Token ids, comma-separated (instead of --data).") var tokens: String?
    @Option(help: "Baseline attention (NAME[:k=v,...]).") var baseline: String = KernelRegistry.exactDefault.name
    @Option(help: "Timed prefills per sequence and compile (medians are reported).") var repeats: Int = 3
    @Option(help: "Feed the last N tokens of each sequence as decode steps (teacher-forced).") var decode: Int = 0
    @Flag(help: "Print one JSON object on the last line.") var json = false
    @OptionGroup var compile: CompileOptionsGroup

    func run() throws {
        guard repeats >= 1 else { throw CLIError("--repeats must be >= 1") }
        guard decode >= 0 else { throw CLIError("--decode must be >= 0, got \(decode)") }
        let sequences = try readSequences()
        if decode > 0, let short = sequences.first(where: { $0.count <= decode }) {
            throw CLIError("--decode \(decode) needs sequences longer than that (one has \(short.count) tokens): the rest is the prefilled prefix")
        }
        let loaded = try ModelSource.load(model)
        let toolchain = try Toolchain.detect()
        var candidateOptions = try compile.options()
        if candidateOptions.maxContext == nil { candidateOptions.maxContext = max(sequences.map(\.count).max()!, 16) }
        // The baseline shares only the shape limits: its kernels, KV and weight formats are the defaults.
        var baselineOptions = CompileOptions()
        baselineOptions.maxContext = candidateOptions.maxContext
        baselineOptions.maxChunk = candidateOptions.maxChunk
        baselineOptions.kernels = KernelOverrides(global: try KernelChoice(parsing: baseline))
        let base = try CompiledModel(artifacts: try ModelCompiler.compile(loaded, baselineOptions, toolchain: toolchain))
        let cand = try CompiledModel(artifacts: try ModelCompiler.compile(loaded, candidateOptions, toolchain: toolchain))
        var parts: [LogitComparison] = []
        var decodeParts: [LogitComparison] = []
        var timings = (base: Timings(), cand: Timings())
        var nll = (base: 0.0, cand: 0.0), scored = 0
        for tokens in sequences {
            var runs: (base: Run, cand: Run) = (Run(), Run())
            for _ in 0..<repeats {
                let b = try timed(base, tokens), c = try timed(cand, tokens)
                timings.base.add(b); timings.cand.add(c)
                runs = (b, c)
            }
            parts.append(LogitComparison(baseline: runs.base.logits, candidate: runs.cand.logits, vocab: base.vocab))
            // Each position predicts the next token of the sequence.
            for row in 0..<tokens.count - 1 {
                let target = Int(tokens[row + 1])
                guard target < base.vocab else { continue }
                nll.base -= LogSoftmaxRow(runs.base.logits, row: row, vocab: base.vocab).logProbability(target)
                nll.cand -= LogSoftmaxRow(runs.cand.logits, row: row, vocab: base.vocab).logProbability(target)
                scored += 1
            }
            if decode > 0 {
                let from = (tokens.count - decode) * base.vocab
                decodeParts.append(LogitComparison(baseline: Array(runs.base.logits[from...]), candidate: Array(runs.cand.logits[from...]),
                                                   vocab: base.vocab))
            }
        }
        let c = LogitComparison.combine(parts)
        let b = median(timings.base.prefillMs), m = median(timings.cand.prefillMs)
        print("baseline   \(baseline): prefill median \(fmt(b, 3)) ms")
        print("candidate  prefill median \(fmt(m, 3)) ms: \(fmt(b / m, 2))x the baseline's speed")
        var object: [String: Any] = ["baseline_ms": b, "candidate_ms": m, "speedup": b / m]
        if decode > 0 {
            let bd = median(timings.base.decodeMs), md = median(timings.cand.decodeMs)
            let d = LogitComparison.combine(decodeParts)
            print("decode     \(decode) steps per sequence: baseline \(fmt(bd, 3)) ms/token, candidate \(fmt(md, 3)) ms/token: "
                  + "\(fmt(bd / md, 2))x the baseline's speed")
            print("decoded    \(d.positions) positions: KL mean \(String(format: "%.3e", d.meanKL)) max \(String(format: "%.3e", d.maxKL)), "
                  + "top-1 agreement \(fmt(100 * d.top1Agreement, 1)) %")
            object.merge(["decode_steps": decode, "baseline_decode_ms": bd, "candidate_decode_ms": md, "decode_speedup": bd / md,
                          "decode_kl_mean": d.meanKL, "decode_kl_max": d.maxKL, "decode_top1_agreement": d.top1Agreement]) { $1 }
        }
        print("logits     \(c.positions) positions: max |diff| \(String(format: "%.3e", c.maxAbs)), KL mean \(String(format: "%.3e", c.meanKL)) max \(String(format: "%.3e", c.maxKL)), top-1 agreement \(fmt(100 * c.top1Agreement, 1)) %")
        if scored > 0 {
            let pb = exp(nll.base / Double(scored)), pc = exp(nll.cand / Double(scored))
            print("perplexity \(scored) next tokens: baseline \(fmt(pb, 4)), candidate \(fmt(pc, 4)) (\(pc >= pb ? "+" : "")\(fmt(100 * (pc - pb) / pb, 3)) %)")
            object.merge(["scored_tokens": scored, "baseline_perplexity": pb, "candidate_perplexity": pc]) { $1 }
        }
        if stats {
            for c in cand.counters { print("stats      \(c.name)  \(c.value)") }
        }
        if json {
            object.merge(["positions": c.positions, "max_abs_logit_diff": c.maxAbs, "kl_mean": c.meanKL, "kl_max": c.maxKL,
                          "top1_agreement": c.top1Agreement]) { $1 }
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

    /// One pass of a sequence: the logits of every position, the prefill time and — with
    /// --decode — the mean time of one decode step.
    struct Run {
        var logits: [Float] = []
        var prefillMs = 0.0
        var decodeMs = 0.0
    }

    struct Timings {
        var prefillMs: [Double] = []
        var decodeMs: [Double] = []
        mutating func add(_ run: Run) {
            prefillMs.append(run.prefillMs)
            decodeMs.append(run.decodeMs)
        }
    }

    func timed(_ session: CompiledModel, _ tokens: [Int32]) throws -> Run {
        session.reset()
        var run = Run()
        let prefix = Array(tokens.prefix(tokens.count - decode))
        let t0 = Date()
        run.logits = try session.prefill(prefix)
        run.prefillMs = Date().timeIntervalSince(t0) * 1e3
        guard decode > 0 else { return run }
        let t1 = Date()
        for token in tokens.suffix(decode) { run.logits += try session.decodeStep(token) }
        run.decodeMs = Date().timeIntervalSince(t1) * 1e3 / Double(decode)
        return run
    }
}
