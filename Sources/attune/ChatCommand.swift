import ArgumentParser
import AttuneRuntime
import AttuneText
import Foundation

/// `attune chat MODEL`: an interactive conversation with the checkpoint's chat template.
///
/// The KV cache keeps the conversation between turns. Each turn renders the whole
/// conversation again (templates may rewrite earlier turns) and runs only what differs
/// from what the cache holds: the cached positions that the new rendering shares are kept
/// (`CompiledModel.truncate`), the rest is prefilled. Usually that is the end-of-turn
/// tokens and the new message; when the assistant's text re-encodes to other ids than the
/// ones it was generated as, the cache is cut back to where they part.
struct ChatCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "chat",
        abstract: "Talk to a chat model: each line is a user message; the reply is streamed.",
        discussion: """
        Lines are read from standard input (a line ending in \\ continues on the next). \
        /reset starts a new conversation, /exit (or end of input) quits. The conversation \
        stays in the KV cache: a turn prefills only what its re-rendered conversation does not \
        share with the cache (--stats prints how many positions were reused).
        """
    )

    @Argument(help: "Hugging Face model folder with tokenizer.json and a chat template.") var model: String
    @Option(help: "System message, kept at the start of the conversation.") var system: String?
    @Option(help: "Chat template file (Jinja) instead of tokenizer_config.json's.") var chatTemplate: String?
    @Option(help: "Tokens to generate per reply at most (default: until end of sequence or a full context).")
    var maxNewTokens: Int?
    @Option(help: "Stop a reply when its text contains this string (repeatable; not printed).") var stop: [String] = []
    @Flag(help: "Print each turn's reused/prefilled positions and speeds on stderr.") var stats = false
    @Flag(help: "Print each turn's conversation ids and generated ids on stderr.") var printIds = false
    @OptionGroup var sampling: SamplingOptions
    @OptionGroup var compile: CompileOptionsGroup

    func run() throws {
        if let maxNewTokens, maxNewTokens < 1 { throw CLIError("--max-new-tokens must be >= 1") }
        let overrides = sampling.overrides(maxNewTokens: maxNewTokens, stopStrings: stop.isEmpty ? nil : stop)
        let (dir, tokenizer, config) = try TextSetup.load(model: model, overrides: overrides, purpose: "chat")
        let encoder = try ChatEncoder(directory: dir, templateFile: chatTemplate, tokenizer: tokenizer)
        let opening: [[String: String]] = system.map { [["role": "system", "content": $0]] } ?? []
        // A template that cannot render a turn fails here, before the model is compiled.
        _ = try encoder.encode(opening + [["role": "user", "content": "hello"]], addGenerationPrompt: true)

        let loaded = try ModelSource.load(model)
        let artifacts = try ModelCompiler.compile(loaded, try compile.options(), toolchain: try Toolchain.detect())
        for note in artifacts.notes { printNote(note) }
        let session = try CompiledModel(artifacts: artifacts)
        let seed = sampling.resolvedSeed()
        var conversation = ChatConversation(opening: opening)
        let interactive = isatty(STDIN_FILENO) != 0
        if interactive {
            printNote("chatting with \(model): type a message; /reset starts over, /exit or Ctrl-D quits")
        }
        var turn = 0
        while let line = readMessage(prompting: interactive) {
            switch line {
            case "": continue
            case "/exit", "/quit": return
            case "/reset":
                conversation.reset()
                session.reset()
                printNote("new conversation")
                continue
            default: break
            }
            let ids = try encoder.encode(conversation.messages + [["role": "user", "content": line]], addGenerationPrompt: true)
            guard ids.count < session.maxContext else {
                printNote("the conversation (\(ids.count) tokens) fills the context of \(session.maxContext): /reset to start over")
                continue
            }
            if let bad = ids.first(where: { Int($0) >= session.vocab }) {
                throw CLIError("the tokenizer produced id \(bad), outside the model's vocabulary of \(session.vocab): tokenizer.json does not belong to this model")
            }
            let reused = try conversation.reuse(ids, in: session)
            var turnConfig = config
            if maxNewTokens == nil { turnConfig.lengthLimit = .newTokens(session.maxContext - ids.count) }
            let generation = TextGeneration(config: turnConfig, seed: seed, contextLength: session.maxContext)
            let out = FileHandle.standardOutput
            let result = try generation.run(prompt: Array(ids[reused...]), history: Array(ids[..<reused]), tokenizer: tokenizer,
                                            stream: turn, prefill: { try session.prefillLast($0) },
                                            step: { try session.decodeStep($0) }, emit: { out.write(Data($0.utf8)) })
            out.write(Data("\n".utf8))
            conversation.record(user: line, prompt: ids, reply: result)
            turn += 1
            if printIds {
                printNote("turn \(turn) conversation ids \(ids.map(String.init).joined(separator: " "))")
                printNote("turn \(turn) generated ids \(result.generated.map(String.init).joined(separator: " "))")
            }
            if stats {
                let promptRate = Double(ids.count - reused) / max(result.prefillSeconds, 1e-9)
                let genRate = Double(result.decodeSteps) / max(result.decodeSeconds, 1e-9)
                printNote("turn \(turn): \(reused) cached positions reused, \(ids.count - reused) prefilled at \(fmt(promptRate, 1)) tok/s; "
                          + "generated \(result.generated.count) at \(fmt(genRate, 1)) tok/s; "
                          + "stopped: \(describe(result.reason, contextLength: session.maxContext))")
            }
        }
    }

    /// The next message: one line, or several joined where a line ends in a backslash; nil
    /// at the end of input.
    func readMessage(prompting: Bool) -> String? {
        if prompting { FileHandle.standardOutput.write(Data("> ".utf8)) }
        var parts: [String] = []
        while let line = readLine(strippingNewline: true) {
            if line.hasSuffix("\\") {
                parts.append(String(line.dropLast()))
                continue
            }
            parts.append(line)
            return parts.joined(separator: "\n").trimmingCharacters(in: .whitespaces)
        }
        return parts.isEmpty ? nil : parts.joined(separator: "\n")
    }
}

/// The messages so far and the ids the KV cache holds for them.
struct ChatConversation {
    let opening: [[String: String]]
    private(set) var messages: [[String: String]]
    /// Exactly the positions in the KV cache.
    private(set) var cached: [Int32] = []

    init(opening: [[String: String]]) {
        self.opening = opening
        messages = opening
    }

    mutating func reset() {
        messages = opening
        cached = []
    }

    /// Cuts the cache back to what it shares with `ids` (leaving at least one id to run,
    /// whose logits start the reply); returns how many positions are kept. Models whose
    /// kernels keep their own K/V store cannot cut back: they start again from nothing.
    mutating func reuse(_ ids: [Int32], in session: CompiledModel) throws -> Int {
        var shared = 0
        while shared < min(cached.count, ids.count - 1) && cached[shared] == ids[shared] { shared += 1 }
        if shared < cached.count {
            do { try session.truncate(to: shared) } catch {
                session.reset()
                shared = 0
            }
        }
        cached = Array(ids[..<shared])
        return shared
    }

    /// After a reply: the cache holds the prompt and every generated token that was fed.
    mutating func record(user: String, prompt: [Int32], reply: TextGeneration.Result) {
        messages.append(["role": "user", "content": user])
        messages.append(["role": "assistant", "content": reply.text])
        cached = prompt + (reply.reason == .contextFull ? reply.generated.dropLast() : reply.generated[...])
    }
}
