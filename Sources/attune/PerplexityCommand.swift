import ArgumentParser
import AttuneRuntime
import AttuneTensor
import AttuneText
import Foundation

/// `attune perplexity MODEL --text FILE [--compare "FLAGS"]`.
struct PerplexityCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "perplexity",
        abstract: "Perplexity over a text, and what another compile (kernels, weight or KV format) costs: KL divergence, top-1 agreement, Δppl.",
        discussion: """
        Windows of --context tokens advance by --stride (default: the context, so windows do \
        not overlap); each window runs from an empty KV cache and scores the tokens no \
        earlier window scored, each predicted from the tokens before it in its window \
        (transformers' sliding-window convention; the first token of a window that follows \
        no earlier window has no context and is not scored). \
        --compare "--attention sparge --kv int8" compiles the model a second time with those \
        flags and runs it on the same windows: per-token KL(model ‖ compared) (mean, p99, \
        max), top-1 agreement and both perplexities, in one pass.
        """
    )

    @Argument(help: "Hugging Face model folder (with tokenizer.json for --text) or .attn file.") var model: String
    @Option(help: "Text file to score (the model's tokenizer encodes it).") var text: String?
    @Option(help: "Token ids to score (.npy of integers, [n]).") var tokens: String?
    @Option(help: "Tokens per window (default 512, as llama-perplexity).") var context: Int = 512
    @Option(help: "Tokens a window advances (default: the context).") var stride: Int?
    @Option(help: "Score at most this many tokens of the text (its beginning).") var maxTokens: Int?
    @Option(parsing: .unconditional, help: "Compile flags of a second compile to compare with, in one string, e.g. \"--attention sparge --kv int8\".")
    var compare: String?
    @Flag(help: "Print one JSON object on the last line.") var json = false
    @OptionGroup var compile: CompileOptionsGroup

    func run() throws {
        guard (text == nil) != (tokens == nil) else { throw CLIError("give --text FILE or --tokens FILE.npy") }
        let stride = self.stride ?? context
        guard context >= 2 else { throw CLIError("--context must be >= 2, got \(context)") }
        guard (1...context).contains(stride) else { throw CLIError("--stride must be in 1...\(context) (the context), got \(stride)") }
        if let maxTokens, maxTokens < 2 { throw CLIError("--max-tokens must be >= 2, got \(maxTokens)") }
        let compared = try compare.map { flags -> CompileOptions in
            let words = flags.split(whereSeparator: \.isWhitespace).map(String.init)
            do { return try CompileOptionsGroup.parse(words).options() } catch let e as CLIError { throw e } catch {
                throw CLIError("--compare \"\(flags)\": \(CompileOptionsGroup.message(for: error))")
            }
        }
        var ids = try readTokens()
        if let maxTokens { ids = Array(ids.prefix(maxTokens)) }
        guard ids.count >= 2 else { throw CLIError("the text has \(ids.count) token(s); perplexity needs at least 2") }

        // Both compiles hold the whole window: the KV cache needs `context` positions.
        var options = try compile.options()
        if options.maxContext == nil { options.maxContext = context }
        let loaded = try ModelSource.load(model)
        let toolchain = try Toolchain.detect()
        let artifacts = try ModelCompiler.compile(loaded, options, toolchain: toolchain)
        for note in artifacts.notes { printNote(note) }
        let session = try CompiledModel(artifacts: artifacts)
        if let bad = ids.first(where: { Int($0) >= session.vocab }) {
            throw CLIError("token id \(bad) is outside the model's vocabulary of \(session.vocab)")
        }
        let other = try compared.map { flags -> CompiledModel in
            var flags = flags
            if flags.maxContext == nil { flags.maxContext = options.maxContext }
            let built = try ModelCompiler.compile(loaded, flags, toolchain: toolchain)
            for note in built.notes { printNote("compared: \(note)") }
            return try CompiledModel(artifacts: built)
        }
        let bar = ProgressBar(enabled: isatty(STDERR_FILENO) != 0 && !json)
        let report = try Perplexity.run(session, compare: other, tokens: ids, context: context, stride: stride) { done, total in
            bar.show(done, of: total)
        }
        bar.finish()

        var object: [String: Any] = ["tokens": report.tokens, "text_tokens": ids.count, "context": context, "stride": stride,
                                     "nll_mean": report.nll / Double(report.tokens), "perplexity": report.perplexity,
                                     "seconds": report.seconds]
        print("scored     \(report.tokens) of \(ids.count) tokens, context \(context), stride \(stride), \(fmt(report.seconds, 1)) s "
              + "(\(fmt(Double(report.tokens) / max(report.seconds, 1e-9), 1)) tok/s)")
        print("perplexity \(fmt(report.perplexity, 4)) (mean NLL \(fmt(report.nll / Double(report.tokens), 5)))")
        if other != nil {
            let kl = report.kl.sorted()
            let mean = kl.reduce(0, +) / Double(kl.count)
            let p99 = kl[min(kl.count - 1, Int((Double(kl.count) * 0.99).rounded(.up)) - 1)]
            let top1 = Double(report.top1Agreements) / Double(report.tokens)
            let delta = report.comparePerplexity - report.perplexity
            print("compared   \(compare ?? "") → perplexity \(fmt(report.comparePerplexity, 4)) "
                  + "(Δ \(delta >= 0 ? "+" : "")\(fmt(delta, 4)), \(delta >= 0 ? "+" : "")\(fmt(100 * delta / report.perplexity, 3)) %)")
            print("KL         mean \(sci(mean)), p99 \(sci(p99)), max \(sci(kl.last!)); top-1 agreement \(fmt(100 * top1, 2)) %")
            object.merge(["compare": compare ?? "", "compare_perplexity": report.comparePerplexity, "delta_perplexity": delta,
                          "kl_mean": mean, "kl_p99": p99, "kl_max": kl.last!, "top1_agreement": top1]) { $1 }
        }
        if json {
            print(String(decoding: try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]), as: UTF8.self))
        }
    }

    func readTokens() throws -> [Int32] {
        if let tokens {
            let (shape, values) = try Npy.readIntegers(contentsOf: URL(fileURLWithPath: tokens))
            guard shape.count == 1 else { throw CLIError("\(tokens): token ids must have shape [n], got \(shape)") }
            if let bad = values.first(where: { $0 < 0 || $0 > Int64(Int32.max) }) { throw CLIError("\(tokens): token id \(bad) is not a valid id") }
            return values.map { Int32($0) }
        }
        let path = text!
        let content: String
        do { content = try String(contentsOfFile: path, encoding: .utf8) } catch {
            throw CLIError("--text \(path): cannot read it as UTF-8 text (\(FileProblem.reading(path, error)))")
        }
        let dir = URL(fileURLWithPath: model)
        guard FileManager.default.fileExists(atPath: dir.appendingPathComponent("tokenizer.json").path) else {
            throw CLIError("--text needs the model folder's tokenizer.json; \(model) has none (give --tokens FILE.npy)")
        }
        return try Tokenizer(directory: dir).encode(content)
    }

    func sci(_ x: Double) -> String { String(format: "%.3e", x) }
}

/// A one-line progress bar on stderr, redrawn in place (only on a terminal).
final class ProgressBar {
    let enabled: Bool
    private var last = -1

    init(enabled: Bool) { self.enabled = enabled }

    func show(_ done: Int, of total: Int) {
        guard enabled, total > 0 else { return }
        let percent = 100 * done / total
        guard percent != last else { return }
        last = percent
        let width = 30, filled = width * done / total
        let bar = String(repeating: "=", count: filled) + String(repeating: " ", count: width - filled)
        FileHandle.standardError.write(Data("\r[\(bar)] \(percent)% \(done)/\(total) tokens".utf8))
    }

    func finish() {
        if enabled && last >= 0 { FileHandle.standardError.write(Data("\n".utf8)) }
    }
}
