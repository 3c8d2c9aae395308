import ArgumentParser
import AttuneRuntime
import Foundation

struct BenchBatch: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "batch",
        abstract: "Time batched decoding over a shared prefix against decoding each sequence alone, in one process.",
        discussion: """
        Compiles MODEL, prefills a --prefix-token prompt, forks it into --batch sequences with \
        --suffix own tokens each, then times decode steps two ways on the same compiled module: \
        one attune_model_decode_batch step for all sequences (the prefix read once per layer, \
        Hydragen); the same batched step with every sequence holding its own copy of the \
        prefix (no sharing: isolates the prefix decomposition); and --batch single-sequence \
        decode steps (no batching at all). Prints medians and speed-ups; --json adds one JSON object.
        """
    )

    @Argument(help: "Hugging Face model folder or .attn file.") var model: String
    @Option(help: "Sequences decoded together.") var batch: Int = 8
    @Option(help: "Shared prefix tokens.") var prefix: Int = 1024
    @Option(help: "Each sequence's own tokens after the prefix.") var suffix: Int = 16
    @Option(help: "Timed steps per method (medians are reported).") var steps: Int = 10
    @Flag(help: "Print one JSON object on the last line.") var json = false
    @OptionGroup var compile: CompileOptionsGroup

    func run() throws {
        guard batch >= 1, prefix >= 1, suffix >= 1, steps >= 1 else { throw CLIError("--batch, --prefix, --suffix and --steps must be >= 1") }
        let loaded = try ModelSource.load(model)
        var options = try compile.options()
        if options.maxContext == nil { options.maxContext = prefix + suffix + 2 * steps + batch + 2 }
        let artifacts = try ModelCompiler.compile(loaded, options, toolchain: try Toolchain.detect())
        let session = try CompiledModel(artifacts: artifacts)
        let vocab = session.vocab
        func token(_ i: Int) -> Int32 { Int32(i % vocab) }
        let shared = (0..<prefix).map { token($0 * 7) }
        var own: [[Int32]] = []
        for s in 0..<batch { own.append((0..<suffix).map { token($0 * 13 + s * 31 + 1) }) }

        // Batched: fork, prefill suffixes, then time one decode_batch per step.
        _ = try session.prefill(shared)
        try session.fork(batch)
        for s in 0..<batch { _ = try session.prefill(sequence: s, own[s]) }
        var batched: [Double] = []
        for step in 0..<steps + 1 {
            let t0 = Date()
            _ = try session.decodeBatch((0..<batch).map { token($0 + step) })
            if step > 0 { batched.append(Date().timeIntervalSince(t0) * 1e3) }   // step 0 warms up
        }

        // Batched without sharing: every sequence holds the prefix in its own rows (fork at
        // length 0), so only the prefix decomposition differs from the shared run.
        session.reset()
        try session.fork(batch)
        for s in 0..<batch { _ = try session.prefill(sequence: s, shared + own[s]) }
        var unshared: [Double] = []
        for step in 0..<steps + 1 {
            let t0 = Date()
            _ = try session.decodeBatch((0..<batch).map { token($0 + step) })
            if step > 0 { unshared.append(Date().timeIntervalSince(t0) * 1e3) }
        }

        // Alone: `batch` single-sequence decode steps, starting from a cache as long as a
        // batched sequence's at the same step (rebuilt, untimed, before each step; within a
        // step it grows by batch - 1 tokens, a few percent of the prefix at most).
        var alone: [Double] = []
        for step in 0..<steps + 1 {
            session.reset()
            _ = try session.prefill(shared + own[0] + (0..<step).map { token($0) })
            let t0 = Date()
            for s in 0..<batch { _ = try session.decodeStep(token(s + step)) }
            if step > 0 { alone.append(Date().timeIntervalSince(t0) * 1e3) }
        }
        let b = median(batched), a = median(alone), u = median(unshared)
        print("model      \(loaded.name), batch \(batch), prefix \(prefix), own tokens \(suffix)")
        print("batched    \(fmt(b, 3)) ms per step of \(batch) tokens (decode_batch, median of \(batched.count))")
        print("unshared   \(fmt(u, 3)) ms per step of \(batch) tokens, each sequence with its own copy of the prefix")
        print("alone      \(fmt(a, 3)) ms per \(batch) single-sequence decode steps (median of \(alone.count))")
        print("speed-up   \(fmt(u / b, 2))x over unshared (the prefix read once), \(fmt(a / b, 2))x over alone")
        if json {
            let object: [String: Any] = ["batch": batch, "prefix": prefix, "suffix": suffix, "batched_ms": b, "unshared_ms": u,
                                         "alone_ms": a, "speedup_vs_unshared": u / b, "speedup_vs_alone": a / b]
            print(String(decoding: try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]), as: UTF8.self))
        }
    }

    func median(_ xs: [Double]) -> Double { xs.sorted()[xs.count / 2] }
}
