import ArgumentParser
import AttuneRuntime
import AttuneText
import Foundation

/// `attune run MODEL --prompt TEXT`: text in, streamed text out, with the checkpoint's
/// tokenizer, generation settings and (with --chat) chat template.
/// Numeric options parse `.unconditional`ly: `--temperature -1` is a value to check (and
/// refuse with its rule), not an unknown flag `-1`.
struct TextOptions: ParsableArguments {
    @Option(help: "Prompt text (the model's tokenizer encodes it); the continuation is printed as it is generated.")
    var prompt: String?
    @Option(help: "Read the prompt text from a file.") var promptFile: String?
    @Flag(help: "Wrap the prompt in the checkpoint's chat template as a user message (with --system).") var chat = false
    @Option(help: "System message for --chat.") var system: String?
    @Option(help: "Chat template file (Jinja) instead of tokenizer_config.json's.") var chatTemplate: String?
    @Flag(help: "Also print the prompt's and the generated token ids (on stderr).") var printIds = false
    @Flag(help: "Keep generating past end-of-sequence tokens.") var ignoreEos = false
    @Option(help: "Stop when the generated text contains this string (repeatable; not printed).") var stop: [String] = []
    @Option(parsing: .unconditional, help: "Sampling temperature (0 = greedy; default: the model's generation_config.json).") var temperature: Double?
    @Option(parsing: .unconditional, help: "Keep the k most likely tokens (0 = off).") var topK: Int?
    @Option(parsing: .unconditional, help: "Keep the most likely tokens up to this cumulative probability.") var topP: Double?
    @Option(parsing: .unconditional, help: "Drop tokens below this fraction of the top probability.") var minP: Double?
    @Option(parsing: .unconditional, help: "Divide (multiply, if negative) the logits of tokens already seen by this.") var repetitionPenalty: Double?
    @Option(parsing: .unconditional, help: "Random seed for sampling (default: a random one, printed with --json).") var seed: UInt64?

    var isText: Bool { prompt != nil || promptFile != nil }

    /// The prompt text, checked before any work.
    func promptText() throws -> String {
        if prompt != nil && promptFile != nil { throw CLIError("give --prompt or --prompt-file, not both") }
        if let prompt { return prompt }
        guard let promptFile else { throw CLIError("give --prompt TEXT or --prompt-file FILE") }
        do { return try String(contentsOfFile: promptFile, encoding: .utf8) } catch {
            throw CLIError("--prompt-file \(promptFile): cannot read it as UTF-8 text")
        }
    }

    func overrides(maxNewTokens: Int?) -> GenerationOverrides {
        GenerationOverrides(temperature: temperature, topK: topK, topP: topP, minP: minP, repetitionPenalty: repetitionPenalty,
                            maxNewTokens: maxNewTokens, stopStrings: stop.isEmpty ? nil : stop)
    }
}

/// What text mode needs from the checkpoint folder, read (and so checked) before compiling.
struct TextSetup {
    var tokenizer: Tokenizer
    var config: GenerationConfig
    var promptIds: [Int32]

    init(model: String, options: TextOptions, maxNewTokens: Int?) throws {
        let dir = URL(fileURLWithPath: model)
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: dir.path, isDirectory: &isDir), isDir.boolValue else {
            throw CLIError("--prompt needs a Hugging Face model folder with tokenizer.json; \(model) is not a folder")
        }
        let text = try options.promptText()
        tokenizer = try Tokenizer(directory: dir)
        var config = try GenerationConfig(directory: dir).merging(options.overrides(maxNewTokens: maxNewTokens))
        // The tokenizer's end-of-sequence ids count too (chat models end turns with them).
        for id in tokenizer.eosTokenIds where !config.eosTokenIDs.contains(id) { config.eosTokenIDs.append(id) }
        if options.chat {
            let template = try options.chatTemplate.map { path -> ChatTemplate in
                guard let source = try? String(contentsOfFile: path, encoding: .utf8) else {
                    throw CLIError("--chat-template \(path): cannot read it as UTF-8 text")
                }
                return try ChatTemplate(source: source)
            } ?? ChatTemplate(tokenizerConfigAt: dir)
            var messages: [[String: String]] = []
            if let system = options.system { messages.append(["role": "system", "content": system]) }
            messages.append(["role": "user", "content": text])
            // The tokenizer's special tokens, as apply_chat_template passes them (a template
            // from --chat-template has no tokenizer_config.json of its own to read them from).
            let bos = tokenizer.bosTokenId.flatMap(tokenizer.idToToken)
            let eos = tokenizer.eosTokenIds.first.flatMap(tokenizer.idToToken)
            let rendered = try template.render(messages: messages, addGenerationPrompt: true, bosToken: bos, eosToken: eos)
            // The template writes the special tokens itself, as apply_chat_template does.
            promptIds = tokenizer.encode(rendered, addSpecialTokens: false)
        } else {
            if options.system != nil || options.chatTemplate != nil { throw CLIError("--system and --chat-template need --chat") }
            promptIds = tokenizer.encode(text)
        }
        guard !promptIds.isEmpty else { throw CLIError("the prompt encodes to no tokens; give some text") }
        self.config = config
    }
}

extension RunCommand {
    func runText(_ setup: TextSetup, _ session: CompiledModel, _ object: inout [String: Any]) throws {
        if let bad = setup.promptIds.first(where: { Int($0) >= session.vocab }) {
            throw CLIError("the tokenizer produced id \(bad), outside the model's vocabulary of \(session.vocab): tokenizer.json does not belong to this model")
        }
        var config = setup.config
        if maxNewTokens == nil {
            // Until EOS or a full context, as llama.cpp does (transformers' default is 20).
            config.lengthLimit = .newTokens(max(1, session.maxContext - setup.promptIds.count))
        }
        let seed = text.seed ?? UInt64.random(in: 0...UInt64(UInt32.max))
        let generation = TextGeneration(config: config, seed: seed, contextLength: session.maxContext, ignoreEOS: text.ignoreEos)
        let out = FileHandle.standardOutput
        let result = try generation.run(prompt: setup.promptIds, tokenizer: setup.tokenizer,
                                        prefill: { try session.prefillLast($0) }, step: { try session.decodeStep($0) },
                                        emit: { out.write(Data($0.utf8)) })
        out.write(Data("\n".utf8))
        let promptRate = Double(setup.promptIds.count) / max(result.prefillSeconds, 1e-9)
        let genRate = Double(result.decodeSteps) / max(result.decodeSeconds, 1e-9)
        let reason: String
        switch result.reason {
        case .eos(let id): reason = "end of sequence (id \(id))"
        case .maxNewTokens: reason = "--max-new-tokens reached"
        case .contextFull: reason = "context full (\(session.maxContext) positions)"
        case .stopString(let s): reason = "stop string \(String(reflecting: s))"
        }
        if text.printIds {
            printNote("prompt ids \(setup.promptIds.map(String.init).joined(separator: " "))")
            printNote("generated ids \(result.generated.map(String.init).joined(separator: " "))")
        }
        // The figures llama.cpp users read: prompt and generation speed, time to first token.
        printNote("prompt \(setup.promptIds.count) tokens at \(fmt(promptRate, 1)) tok/s; generated \(result.generated.count) tokens "
                  + "at \(fmt(genRate, 1)) tok/s; first token after \(fmt(result.firstTokenSeconds * 1e3, 0)) ms; stopped: \(reason)")
        object.merge(["text": result.text, "prompt_ids": setup.promptIds.map(Int.init), "generated": result.generated.map(Int.init),
                      "prompt_tokens": setup.promptIds.count, "prompt_tokens_per_s": promptRate,
                      "generation_tokens_per_s": genRate, "time_to_first_token_ms": result.firstTokenSeconds * 1e3,
                      "prefill_ms": result.prefillSeconds * 1e3,
                      "decode_ms_per_token": result.decodeSteps > 0 ? result.decodeSeconds * 1e3 / Double(result.decodeSteps) : 0,
                      "stop_reason": reason, "seed": seed]) { $1 }
    }
}
