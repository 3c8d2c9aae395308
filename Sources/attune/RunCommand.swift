import ArgumentParser
import AttuneRuntime
import AttuneTensor
import Foundation

struct RunCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Compile (cached) and run a model: prefill the tokens, then greedy decode.",
        discussion: "--json prints one JSON object on the last line: generated, prefill_ms, decode_ms_per_token, compile_ms, build_cached, prompt_tokens, and with --stats a stats object (counter name → value). Counters cover the last timed prefill and the decode: the cache and the counters are reset before each prefill repeat."
    )

    @Argument(help: "Hugging Face model folder or .attn file.") var model: String
    @Option(help: "Prompt token ids, comma-separated.") var tokens: String
    @Option(help: "Tokens to generate greedily after the prompt.") var maxNewTokens: Int = 0
    @Option(help: "Write the prefill logits [tokens, vocab] as float32 .npy.") var logitsOut: String?
    @Option(help: "Time the prefill this many times (cache reset in between) and report the median.") var repeats: Int = 1
    @Flag(help: "Print the kernels' counters (e.g. unified_max fallback rows per layer) for the last prefill and the decode.") var stats = false
    @Flag(help: "Print one JSON object on the last line.") var json = false
    @OptionGroup var compile: CompileOptionsGroup

    func run() throws {
        let ids = try tokens.split(separator: ",").map { part -> Int32 in
            guard let v = Int32(part.trimmingCharacters(in: .whitespaces)) else { throw CLIError("--tokens: '\(part)' is not an integer") }
            return v
        }
        guard !ids.isEmpty else { throw CLIError("--tokens needs at least one token id") }
        guard maxNewTokens >= 0 else { throw CLIError("--max-new-tokens must be >= 0") }
        guard repeats >= 1 else { throw CLIError("--repeats must be >= 1") }
        let loaded = try ModelSource.load(model)
        let artifacts = try ModelCompiler.compile(loaded, try compile.options(), toolchain: try Toolchain.detect())
        let session = try CompiledModel(library: artifacts.library, weights: artifacts.weights)
        if ids.count + maxNewTokens > session.maxContext {
            throw CLIError("\(ids.count) prompt + \(maxNewTokens) new tokens exceed the context of \(session.maxContext) (see --max-context)")
        }
        var logits: [Float] = []
        var prefillTimes: [Double] = []
        for _ in 0..<repeats {
            session.reset()
            let t0 = Date()
            logits = try session.prefill(ids)
            prefillTimes.append(Date().timeIntervalSince(t0) * 1e3)
        }
        let prefillMs = prefillTimes.sorted()[prefillTimes.count / 2]
        if let logitsOut {
            try Npy.write(Tensor(shape: [ids.count, session.vocab], data: logits), to: URL(fileURLWithPath: logitsOut))
        }
        var last = Array(logits.suffix(session.vocab))
        var generated: [Int32] = []
        let t1 = Date()
        for _ in 0..<maxNewTokens {
            let next = Int32(last.indices.max { last[$0] < last[$1] }!)
            generated.append(next)
            // Every generated token goes through a decode step, the last one included,
            // so the timing is per decoded token and the cache ends consistent.
            last = try session.decodeStep(next)
        }
        let decodeMs = maxNewTokens > 0 ? Date().timeIntervalSince(t1) * 1e3 / Double(maxNewTokens) : 0
        print("prompt     \(ids.count) tokens, prefill \(fmt(prefillMs, 3)) ms")
        print("generated  \(generated.map(String.init).joined(separator: " "))")
        print("decode     \(fmt(decodeMs, 3)) ms/token; compile \(fmt(artifacts.seconds * 1e3, 0)) ms\(artifacts.cached ? " (build cache hit)" : "")")
        let counters = session.counters
        if stats {
            if counters.isEmpty { print("stats      the model's kernels count nothing") }
            let width = counters.map(\.name.count).max() ?? 0
            for c in counters { print("stats      \(c.name.padding(toLength: width, withPad: " ", startingAt: 0))  \(c.value)") }
        }
        if json {
            var object: [String: Any] = ["generated": generated.map(Int.init), "prefill_ms": prefillMs,
                                         "decode_ms_per_token": decodeMs, "compile_ms": artifacts.seconds * 1e3,
                                         "build_cached": artifacts.cached, "prompt_tokens": ids.count]
            if stats { object["stats"] = Dictionary(uniqueKeysWithValues: counters.map { ($0.name, $0.value) }) }
            let data = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])
            print(String(decoding: data, as: UTF8.self))
        }
    }
}
