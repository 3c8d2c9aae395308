import AttuneText
import Foundation
import FuzzSupport

// libFuzzer entry point for tokenizer.json. Each input is the file's bytes: it is either
// refused with a one-line `TextError`, or it builds a tokenizer that must encode fixed
// texts (and the input itself, as text) to ids inside its vocabulary, decode them, and
// decode incrementally (token by token, as streaming does) to exactly the text decoding
// all ids at once gives. Anything else is a crash, so libFuzzer keeps the input.

let texts = ["", "hello world", "  two  spaces\tand\ttabs\n\nnewlines", "Grüße, ça va? 漢字 🙂🙃", "1234567890 3.14",
             "<|endoftext|><s></s>[INST]", " leading space", "a\u{0}b"]

@_cdecl("FuzzTokenizer_main")
public func entry(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    runLibFuzzer(argc, argv, fuzz)
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let bytes = Data(UnsafeBufferPointer(start: data, count: size))
    let tokenizer: Tokenizer
    do {
        tokenizer = try Tokenizer(tokenizerJSON: bytes)
    } catch let e as TextError {
        if e.message.contains("\n") { fatalError("multi-line message: \(e.message)") }
        return 0
    } catch {
        fatalError("unexpected error type \(type(of: error)): \(error)")
    }
    for text in texts + [String(decoding: bytes.prefix(256), as: UTF8.self)] {
        let ids = tokenizer.encode(text)
        if let bad = ids.first(where: { $0 < 0 || Int($0) >= tokenizer.vocabSize }) {
            fatalError("id \(bad) outside the vocabulary of \(tokenizer.vocabSize) for \(String(reflecting: text))")
        }
        let whole = tokenizer.decode(ids, skipSpecialTokens: true)
        var streaming = IncrementalDecoder(tokenizer: tokenizer, skipSpecialTokens: true)
        var streamed = ""
        for id in ids { streamed += streaming.push(id) }
        streamed += streaming.flush()
        if streamed != whole {
            fatalError("incremental decoding \(String(reflecting: streamed)) != \(String(reflecting: whole)) for ids \(ids)")
        }
    }
    return 0
}
