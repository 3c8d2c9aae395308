import ArgumentParser
import AttuneRuntime
import AttuneText
import Foundation

/// `attune run MODEL --prompt TEXT`: text in, streamed text out, with the checkpoint's
/// tokenizer, generation settings and (with --chat) chat template.
/// Numeric options parse `.unconditional`ly: `--temperature -1` is a value to check (and
/// refuse with its rule), not an unknown flag `-1`.
struct TextOptions: ParsableArguments {
    @Option(help: "Prompt text (the model's tokenizer encodes it); the continuation is printed as it is generated. Repeat for a batch.")
    var prompt: [String] = []
    @Option(help: "Read the prompt text from a file.") var promptFile: String?
    @Flag(help: "Wrap the prompt in the checkpoint's chat template as a user message (with --system).") var chat = false
    @Option(help: "System message for --chat.") var system: String?
    @Option(help: "Chat template file (Jinja) instead of tokenizer_config.json's.") var chatTemplate: String?
    @Flag(help: "Also print the prompt's and the generated token ids (on stderr).") var printIds = false
    @Flag(help: "Keep generating past end-of-sequence tokens.") var ignoreEos = false
    @Option(help: "Stop when the generated text contains this string (repeatable; not printed).") var stop: [String] = []
    @OptionGroup var sampling: SamplingOptions

    var isText: Bool { !prompt.isEmpty || promptFile != nil }

    /// The prompt texts, checked before any work.
    func promptTexts() throws -> [String] {
        if !prompt.isEmpty && promptFile != nil { throw CLIError("give --prompt or --prompt-file, not both") }
        if !prompt.isEmpty { return prompt }
        guard let promptFile else { throw CLIError("give --prompt TEXT or --prompt-file FILE") }
        do { return [try String(contentsOfFile: promptFile, encoding: .utf8)] } catch {
            throw CLIError("--prompt-file \(promptFile): cannot read it as UTF-8 text")
        }
    }

    func overrides(maxNewTokens: Int?) -> GenerationOverrides {
        sampling.overrides(maxNewTokens: maxNewTokens, stopStrings: stop.isEmpty ? nil : stop)
    }
}

/// The sampling flags `run` and `chat` share. Numbers parse `.unconditional`ly: `--temperature
/// -1` is a value to check (and refuse with its rule), not an unknown flag `-1`.
struct SamplingOptions: ParsableArguments {
    @Option(parsing: .unconditional, help: "Sampling temperature (0 = greedy; default: the model's generation_config.json).") var temperature: Double?
    @Option(parsing: .unconditional, help: "Keep the k most likely tokens (0 = off).") var topK: Int?
    @Option(parsing: .unconditional, help: "Keep the most likely tokens up to this cumulative probability.") var topP: Double?
    @Option(parsing: .unconditional, help: "Drop tokens below this fraction of the top probability.") var minP: Double?
    @Option(parsing: .unconditional, help: "Divide (multiply, if negative) the logits of tokens already seen by this.") var repetitionPenalty: Double?
    @Option(parsing: .unconditional, help: "Random seed for sampling (default: a random one, printed with --json).") var seed: UInt64?

    /// Whether any sampling flag was given (token-id runs are greedy unless one is).
    var isGiven: Bool { temperature != nil || topK != nil || topP != nil || minP != nil || repetitionPenalty != nil || seed != nil }

    func overrides(maxNewTokens: Int?, stopStrings: [String]? = nil) -> GenerationOverrides {
        GenerationOverrides(temperature: temperature, topK: topK, topP: topP, minP: minP, repetitionPenalty: repetitionPenalty,
                            maxNewTokens: maxNewTokens, stopStrings: stopStrings)
    }

    /// The seed in force: the given one or a random one (reported so a run can be repeated).
    func resolvedSeed() -> UInt64 { seed ?? UInt64.random(in: 0...UInt64(UInt32.max)) }
}

/// What text mode needs from the checkpoint folder, read (and so checked) before compiling.
struct TextSetup {
    var tokenizer: Tokenizer
    var config: GenerationConfig
    /// One prompt, or several run as a batch.
    var promptIds: [[Int32]]

    /// The folder's tokenizer and generation settings with the user's on top; the
    /// tokenizer's end-of-sequence ids count too (chat models end turns with them).
    static func load(model: String, overrides: GenerationOverrides, purpose: String) throws -> (URL, Tokenizer, GenerationConfig) {
        let dir = URL(fileURLWithPath: model)
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: dir.path, isDirectory: &isDir), isDir.boolValue else {
            throw CLIError("\(purpose) needs a Hugging Face model folder with tokenizer.json; \(model) is not a folder")
        }
        let tokenizer = try Tokenizer(directory: dir)
        var config = try GenerationConfig(directory: dir).merging(overrides)
        for id in tokenizer.eosTokenIds where !config.eosTokenIDs.contains(id) { config.eosTokenIDs.append(id) }
        return (dir, tokenizer, config)
    }

    init(model: String, options: TextOptions, maxNewTokens: Int?) throws {
        let texts = try options.promptTexts()
        let (dir, tokenizer, config) = try Self.load(model: model, overrides: options.overrides(maxNewTokens: maxNewTokens), purpose: "--prompt")
        if options.chat {
            let encoder = try ChatEncoder(directory: dir, templateFile: options.chatTemplate, tokenizer: tokenizer)
            promptIds = try texts.map { text in
                var messages: [[String: String]] = []
                if let system = options.system { messages.append(["role": "system", "content": system]) }
                messages.append(["role": "user", "content": text])
                return try encoder.encode(messages, addGenerationPrompt: true)
            }
        } else {
            if options.system != nil || options.chatTemplate != nil { throw CLIError("--system and --chat-template need --chat") }
            promptIds = texts.map { tokenizer.encode($0) }
        }
        if let empty = promptIds.firstIndex(where: \.isEmpty) {
            throw CLIError(promptIds.count > 1 ? "prompt \(empty + 1) encodes to no tokens; give some text" : "the prompt encodes to no tokens; give some text")
        }
        self.tokenizer = tokenizer
        self.config = config
    }
}

/// How a generation ended, in words.
func describe(_ reason: StopReason, contextLength: Int) -> String {
    switch reason {
    case .eos(let id): return "end of sequence (id \(id))"
    case .maxNewTokens: return "--max-new-tokens reached"
    case .contextFull: return "context full (\(contextLength) positions)"
    case .stopString(let s): return "stop string \(String(reflecting: s))"
    }
}

extension RunCommand {
    func runText(_ setup: TextSetup, _ session: CompiledModel, _ object: inout [String: Any]) throws {
        for (p, prompt) in setup.promptIds.enumerated() {
            if let bad = prompt.first(where: { Int($0) >= session.vocab }) {
                let which = setup.promptIds.count > 1 ? " (prompt \(p + 1))" : ""
                throw CLIError("the tokenizer produced id \(bad)\(which), outside the model's vocabulary of \(session.vocab): tokenizer.json does not belong to this model")
            }
        }
        var config = setup.config
        if maxNewTokens == nil {
            // Until EOS or a full context, as llama.cpp does (transformers' default is 20).
            let longest = setup.promptIds.map(\.count).max()!
            config.lengthLimit = .newTokens(max(1, session.maxContext - longest))
        }
        let seed = text.sampling.resolvedSeed()
        if setup.promptIds.count == 1 {
            try runOne(setup, config, seed, session, &object)
        } else {
            try runBatch(setup, config, seed, session, &object)
        }
    }

    /// One prompt, its text streamed as it is generated.
    private func runOne(_ setup: TextSetup, _ config: GenerationConfig, _ seed: UInt64, _ session: CompiledModel,
                        _ object: inout [String: Any]) throws {
        let prompt = setup.promptIds[0]
        let generation = TextGeneration(config: config, seed: seed, contextLength: session.maxContext, ignoreEOS: text.ignoreEos)
        let out = FileHandle.standardOutput
        let result = try generation.run(prompt: prompt, tokenizer: setup.tokenizer,
                                        prefill: { try session.prefillLast($0) }, step: { try session.decodeStep($0) },
                                        emit: { out.write(Data($0.utf8)) })
        out.write(Data("\n".utf8))
        let promptRate = Double(prompt.count) / max(result.prefillSeconds, 1e-9)
        let genRate = Double(result.decodeSteps) / max(result.decodeSeconds, 1e-9)
        let reason = describe(result.reason, contextLength: session.maxContext)
        if text.printIds {
            printNote("prompt ids \(prompt.map(String.init).joined(separator: " "))")
            printNote("generated ids \(result.generated.map(String.init).joined(separator: " "))")
        }
        // The figures llama.cpp users read: prompt and generation speed, time to first token.
        printNote("prompt \(prompt.count) tokens at \(fmt(promptRate, 1)) tok/s; generated \(result.generated.count) tokens "
                  + "at \(fmt(genRate, 1)) tok/s; first token after \(fmt(result.firstTokenSeconds * 1e3, 0)) ms; stopped: \(reason)")
        object.merge(["text": result.text, "prompt_ids": prompt.map(Int.init), "generated": result.generated.map(Int.init),
                      "prompt_tokens": prompt.count, "prompt_tokens_per_s": promptRate,
                      "generation_tokens_per_s": genRate, "time_to_first_token_ms": result.firstTokenSeconds * 1e3,
                      "prefill_ms": result.prefillSeconds * 1e3,
                      "decode_ms_per_token": result.decodeSteps > 0 ? result.decodeSeconds * 1e3 / Double(result.decodeSteps) : 0,
                      "stop_reason": reason, "seed": seed]) { $1 }
    }

    /// Several prompts decoded together (one token of each per step over their shared
    /// prefix), each sampled independently: sequence s draws from stream s of the seed, so
    /// its text does not depend on the others. Texts are printed when all have finished.
    private func runBatch(_ setup: TextSetup, _ config: GenerationConfig, _ seed: UInt64, _ session: CompiledModel,
                          _ object: inout [String: Any]) throws {
        // Every sequence takes a token each step, so the batch ends when the longest prompt
        // fills the context: each sequence's limit is set so they all reach it together.
        let longest = setup.promptIds.map(\.count).max()!
        var sequences = try setup.promptIds.enumerated().map { s, prompt in
            try TextSequence(config: config, seed: seed, stream: s, seen: prompt,
                             contextLength: session.maxContext - (longest - prompt.count),
                             ignoreEOS: text.ignoreEos, tokenizer: setup.tokenizer)
        }
        let result = try BatchedGeneration.run(session, prompts: setup.promptIds, maxNewTokens: Int.max) { s, logits in
            let step = try sequences[s].next(logits: logits)
            return .init(token: step.token, finished: step.ending != nil, fits: step.feed)
        }
        let out = FileHandle.standardOutput
        for (s, sequence) in sequences.enumerated() {
            out.write(Data("=== prompt \(s + 1) ===\n\(sequence.text)\n".utf8))
            if text.printIds {
                printNote("prompt \(s + 1) ids \(setup.promptIds[s].map(String.init).joined(separator: " "))")
                printNote("prompt \(s + 1) generated ids \(sequence.generated.map(String.init).joined(separator: " "))")
            }
        }
        printNote(result.unbatchedReason.map { "\(sequences.count) prompts run one after another: \($0)" }
                  ?? "\(sequences.count) prompts batched, shared prefix \(result.sharedPrefix) tokens run once")
        let promptTokens = setup.promptIds.map(\.count).reduce(0, +)
        let steps = sequences.map(\.generated.count).max()!
        printNote("prompts \(promptTokens) tokens at \(fmt(Double(promptTokens) / max(result.prefillMs / 1e3, 1e-9), 1)) tok/s; "
                  + "\(steps) steps at \(fmt(result.decodeMsPerStep, 1)) ms/step (\(sequences.count) sequences)")
        object.merge(["sequences": sequences.enumerated().map { s, seq -> [String: Any] in
                          ["text": seq.text, "prompt_ids": setup.promptIds[s].map(Int.init), "generated": seq.generated.map(Int.init),
                           "stop_reason": describe(seq.reason!, contextLength: session.maxContext)]
                      },
                      "shared_prefix": result.sharedPrefix, "batched": result.unbatchedReason == nil,
                      "prefill_ms": result.prefillMs, "decode_ms_per_step": result.decodeMsPerStep, "seed": seed]) { $1 }
    }
}
