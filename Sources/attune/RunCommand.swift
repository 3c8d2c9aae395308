import ArgumentParser
import AttuneRuntime
import AttuneTensor
import AttuneText
import Foundation

struct RunCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Compile (cached) and run a model: prefill the tokens, then greedy decode.",
        discussion: """
        Several prompts (--tokens repeated, or --prompts FILE) run as a batch: the prefix they \
        share is computed once, each prompt's remaining tokens on their own, and every decode \
        step decodes all of them in one forward pass whose attention reads the shared prefix once \
        for all (Hydragen). Models that cannot batch (sliding windows, sigmoid attention, hybrid \
        stores) run the prompts one after another and say why.
        --json prints one JSON object on the last line: generated, prefill_ms, \
        decode_ms_per_token, import_ms, compile_ms, build_cached, load_ms, prompt_tokens (one prompt) or sequences, \
        shared_prefix, batched, prefill_ms, decode_ms_per_step (several), or documents (prompt_tokens, \
        next_token, next_logit, next_logprob each), prefill_ms, prompt_tokens (--document-lengths); with --stats \
        a stats object (counter name → value), and with --document-lengths mask_tiles (computed, skipped, \
        partial: the KV tiles the document mask left to compute, hid, cut through). Counters cover the last timed prefill and the decode: the \
        cache and the counters are reset before each prefill repeat.
        --document-lengths L1,L2,... packs documents: the one --tokens prompt is documents of those lengths, \
        computed in one prefill where each document attends only to itself and its positions start at 0, \
        as if each ran alone (to float rounding). Nothing is generated: each document's next greedy token is reported.
        """
    )

    @Argument(help: "Hugging Face model folder or .attn file.") var model: String
    @Option(help: "Prompt token ids, comma-separated; repeat for several prompts.") var tokens: [String] = []
    @Option(help: "Prompts from a file: .npy of integer ids ([n] or [prompts, n]) or text, one comma- or space-separated prompt per line.")
    var prompts: String?
    @Option(help: "Tokens to generate after the prompt (default: 0 after --tokens; until end of sequence or a full context after --prompt).")
    var maxNewTokens: Int?
    @Option(help: "Packed prefill: the --tokens prompt is documents of these lengths, comma-separated, summing to its tokens; each attends only to itself, at positions from 0, and its next greedy token is reported.")
    var documentLengths: String?
    @Option(help: "Write the prefill logits [tokens, vocab] as float32 .npy (one prompt).") var logitsOut: String?
    @Option(help: "Time the prefill this many times (cache reset in between) and report the median (one prompt).") var repeats: Int = 1
    @Flag(help: "Print the kernels' counters (e.g. unified_max fallback rows per layer) for the last prefill and the decode; with --document-lengths also the KV tiles the document mask skipped.") var stats = false
    @Flag(help: "Print one JSON object on the last line.") var json = false
    @OptionGroup var text: TextOptions
    @OptionGroup var compile: CompileOptionsGroup

    func run() throws {
        let all = try tokens.map { try parsePrompt($0, source: "--tokens") } + (try prompts.map(readPrompts) ?? [])
        if text.isText && !all.isEmpty { throw CLIError("give text (--prompt, --prompt-file) or token ids (--tokens, --prompts), not both") }
        guard text.isText || !all.isEmpty else {
            throw CLIError("give a prompt: --prompt TEXT, --prompt-file FILE, --tokens 1,2,3 (repeatable) or --prompts FILE")
        }
        if let maxNewTokens, maxNewTokens < 0 { throw CLIError("--max-new-tokens must be >= 0") }
        let documents = try documentLengths.map { try packedDocuments($0, prompts: all) }
        if text.isText && (logitsOut != nil || repeats > 1) { throw CLIError("--logits-out and --repeats take token ids (--tokens)") }
        if !text.isText, text.chat || text.system != nil || text.printIds || !text.stop.isEmpty {
            throw CLIError("--chat, --system, --stop and --print-ids work on text: give --prompt or --prompt-file")
        }
        // Text mode reads the tokenizer, the generation settings and the chat template first.
        let textSetup = text.isText ? try TextSetup(model: model, options: text, maxNewTokens: maxNewTokens) : nil
        guard repeats >= 1 else { throw CLIError("--repeats must be >= 1") }
        if all.count > 1 && (logitsOut != nil || repeats > 1) {
            throw CLIError("--logits-out and --repeats take one prompt; \(all.count) were given")
        }
        if let logitsOut { try OutputPath.requireWritableFile(logitsOut, option: "--logits-out") }
        var options = try compile.options()
        options.packedDocuments = documents != nil
        let started = Date()
        let loaded = try ModelSource.load(model)
        let importMs = Date().timeIntervalSince(started) * 1e3
        let artifacts = try ModelCompiler.compile(loaded, options, toolchain: try Toolchain.detect())
        for note in artifacts.notes { printNote(note) }
        let opening = Date()
        let session = try CompiledModel(artifacts: artifacts)
        let loadMs = Date().timeIntervalSince(opening) * 1e3
        // Every id is checked before anything runs (a bad id in the last prompt once failed
        // only after the shared prefix had been prefilled), and named as the user counts.
        for (p, prompt) in all.enumerated() {
            if let i = prompt.firstIndex(where: { $0 < 0 || Int($0) >= session.vocab }) {
                let which = all.count > 1 ? " of prompt \(p + 1)" : ""
                throw CLIError("token \(i + 1)\(which) is \(prompt[i]), outside the vocabulary of \(session.vocab) (ids 0...\(session.vocab - 1))")
            }
        }
        let newTokens = maxNewTokens ?? 0
        if let longest = all.map(\.count).max(), longest + newTokens > session.maxContext {
            throw CLIError("\(longest) prompt + \(newTokens) new tokens exceed the context of \(session.maxContext) (see --max-context)")
        }
        var object: [String: Any] = ["import_ms": importMs, "compile_ms": artifacts.seconds * 1e3, "build_cached": artifacts.cached,
                                     "load_ms": loadMs]
        if let textSetup {
            try runText(textSetup, session, &object)
        } else if let documents {
            try packed(session, all[0], documents, &object)
        } else if all.count == 1 {
            try single(session, all[0], &object)
        } else {
            try batch(session, all, &object)
        }
        // In text mode stdout is the text: the rest goes to stderr.
        let report: (String) -> Void = textSetup == nil ? { print($0) } : { FileHandle.standardError.write(Data(($0 + "\n").utf8)) }
        report("import     \(fmt(importMs, 0)) ms (config, checkpoint headers, graph)")
        report("compile    \(fmt(artifacts.seconds * 1e3, 0)) ms\(artifacts.cached ? " (build cache hit)" : "")")
        let materialised = artifacts.module.constants.filter { !$0.isMappedInPlace }.reduce(0) { $0 + $1.format.bytes(elements: $1.elements) }
        report("load       \(fmt(loadMs, 0)) ms (weights mapped; \(materialised >> 20) MiB materialised)")
        let counters = session.counters
        if stats {
            if counters.isEmpty { report("stats      the model's kernels count nothing") }
            let width = counters.map(\.name.count).max() ?? 0
            for c in counters { report("stats      \(c.name.padding(toLength: width, withPad: " ", startingAt: 0))  \(c.value)") }
            object["stats"] = Dictionary(uniqueKeysWithValues: counters.map { ($0.name, $0.value) })
        }
        if json {
            let data = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])
            print(String(decoding: data, as: UTF8.self))
        }
    }

    func single(_ session: CompiledModel, _ ids: [Int32], _ object: inout [String: Any]) throws {
        var logits: [Float] = []
        var prefillTimes: [Double] = []
        for _ in 0..<repeats {
            session.reset()
            let t0 = Date()
            // Only --logits-out needs every position's logits; generation needs the last.
            logits = logitsOut != nil ? try session.prefill(ids) : try session.prefillLast(ids)
            prefillTimes.append(Date().timeIntervalSince(t0) * 1e3)
        }
        let prefillMs = prefillTimes.sorted()[prefillTimes.count / 2]
        if let logitsOut {
            try Npy.write(Tensor(shape: [ids.count, session.vocab], data: logits), to: URL(fileURLWithPath: logitsOut))
        }
        var last = Array(logits.suffix(session.vocab))
        var generated: [Int32] = []
        let choose = try tokenChooser()
        let t1 = Date()
        for _ in 0..<(maxNewTokens ?? 0) {
            let next = try choose(0, ids + generated, last)
            generated.append(next)
            // Every generated token goes through a decode step, the last one included,
            // so the timing is per decoded token and the cache ends consistent.
            last = try session.decodeStep(next)
        }
        let decodeMs = (maxNewTokens ?? 0) > 0 ? Date().timeIntervalSince(t1) * 1e3 / Double(maxNewTokens ?? 0) : 0
        print("prompt     \(ids.count) tokens, prefill \(fmt(prefillMs, 3)) ms")
        print("generated  \(generated.map(String.init).joined(separator: " "))")
        print("decode     \(fmt(decodeMs, 3)) ms/token")
        object.merge(["generated": generated.map(Int.init), "prefill_ms": prefillMs, "decode_ms_per_token": decodeMs,
                      "prompt_tokens": ids.count]) { $1 }
    }

    func batch(_ session: CompiledModel, _ prompts: [[Int32]], _ object: inout [String: Any]) throws {
        let choose = try tokenChooser()
        var generated = prompts.map { _ in [Int32]() }
        let result = try BatchedGeneration.run(session, prompts: prompts, maxNewTokens: maxNewTokens ?? 0) { s, logits in
            let token = try choose(s, prompts[s] + generated[s], logits)
            generated[s].append(token)
            return .init(token: token)
        }
        if let reason = result.unbatchedReason {
            print("batch      \(prompts.count) prompts run one after another: \(reason)")
        } else {
            print("batch      \(prompts.count) prompts, shared prefix \(result.sharedPrefix) tokens run once")
        }
        for (s, sequence) in result.sequences.enumerated() {
            print("sequence \(s) prompt \(sequence.prompt.count) tokens, generated \(sequence.generated.map(String.init).joined(separator: " "))")
        }
        print("prefill    \(fmt(result.prefillMs, 3)) ms (all prompts)")
        print("decode     \(fmt(result.decodeMsPerStep, 3)) ms/step (\(prompts.count) tokens per step)")
        object.merge(["sequences": result.sequences.map { ["prompt_tokens": $0.prompt.count, "generated": $0.generated.map(Int.init)] },
                      "shared_prefix": result.sharedPrefix, "batched": result.unbatchedReason == nil,
                      "prefill_ms": result.prefillMs, "decode_ms_per_step": result.decodeMsPerStep]) { $1 }
    }

    /// Token-id runs decode greedily unless a sampling flag is given; then sequence s is
    /// sampled from stream s of the seed (the model's generation_config.json is not read:
    /// an .attn graph has none, and --tokens runs stay comparable across checkpoints).
    func tokenChooser() throws -> (Int, [Int32], [Float]) throws -> Int32 {
        guard text.sampling.isGiven else { return { _, _, logits in argmax(logits) } }
        let config = try GenerationConfig().merging(text.sampling.overrides(maxNewTokens: nil))
        let seed = text.sampling.resolvedSeed()
        var samplers: [Int: Sampler] = [:]
        return { s, seen, logits in
            var sampler = samplers[s] ?? Sampler(config: config, seed: seed, stream: s)
            defer { samplers[s] = sampler }
            return try sampler.next(logits: logits, history: seen)
        }
    }

    func parsePrompt(_ text: String, source: String) throws -> [Int32] {
        let parts = text.split(whereSeparator: { $0 == "," || $0 == " " || $0 == "\t" })
        let ids = try parts.map { part -> Int32 in
            guard let v = Int32(part) else { throw CLIError("\(source): '\(part)' is not an integer") }
            return v
        }
        guard !ids.isEmpty else { throw CLIError("\(source): a prompt needs at least one token id") }
        return ids
    }

    func readPrompts(_ path: String) throws -> [[Int32]] {
        if path.hasSuffix(".npy") {
            let (shape, values) = try Npy.readIntegers(contentsOf: URL(fileURLWithPath: path))
            guard shape.count == 1 || shape.count == 2, let n = shape.last, n > 0, shape.first! > 0 else {
                throw CLIError("\(path): prompts must have shape [n] or [prompts, n] with n >= 1, got \(shape)")
            }
            guard values.allSatisfy({ $0 >= 0 && $0 <= Int64(Int32.max) }) else { throw CLIError("\(path): token ids must be in [0, 2^31)") }
            return stride(from: 0, to: values.count, by: n).map { values[$0..<$0 + n].map { Int32($0) } }
        }
        let text: String
        do { text = try String(contentsOfFile: path, encoding: .utf8) } catch { throw CLIError("\(path): cannot read prompts: \(FileProblem.reading(path, error))") }
        let lines = text.split(whereSeparator: \.isNewline).filter { !$0.trimmingCharacters(in: .whitespaces).isEmpty }
        return try lines.enumerated().map { try parsePrompt(String($0.element), source: "\(path) line \($0.offset + 1)") }
    }
}
