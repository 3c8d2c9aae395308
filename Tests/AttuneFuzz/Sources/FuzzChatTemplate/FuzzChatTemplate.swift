import AttuneText
import Foundation
import FuzzSupport

// libFuzzer entry point for chat templates (tokenizer_config.json's `chat_template`, or
// --chat-template). Each input, as UTF-8 text, is either refused with a
// `TextError`, or renders three conversations, each refused the same way or rendered;
// the limits of JinjaLimits keep every render bounded in time and memory, so a timeout
// or an out-of-memory report is a finding too.

let conversations: [[[String: String]]] = [
    [["role": "user", "content": "hi"]],
    [["role": "system", "content": "Be brief."], ["role": "user", "content": "2+2?"], ["role": "assistant", "content": "4"],
     ["role": "user", "content": "and 3+3?"]],
    [["role": "assistant", "content": ""], ["role": "tool", "content": "{\"x\": 1}"]],
]

@_cdecl("FuzzChatTemplate_main")
public func entry(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    runLibFuzzer(argc, argv, fuzz)
}

func refusedCleanly(_ body: () throws -> Void) {
    do {
        try body()
    } catch is TextError {
        // A refusal (raise_exception's message is the template's own text, so its form is not checked).
    } catch {
        fatalError("unexpected error type \(type(of: error)): \(error)")
    }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let source = String(decoding: UnsafeBufferPointer(start: data, count: size), as: UTF8.self)
    refusedCleanly {
        let template = try ChatTemplate(source: source)
        for messages in conversations {
            refusedCleanly {
                _ = try template.render(messages: messages, addGenerationPrompt: true, bosToken: "<s>", eosToken: "</s>")
            }
        }
    }
    return 0
}
