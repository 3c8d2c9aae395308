import ArgumentParser
import AttuneText
import Foundation

struct TokenizeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tokenize",
        abstract: "Encode text with a Hugging Face tokenizer (tokenizer.json), or decode ids.",
        discussion: "Prints the ids as a JSON array, or with --decode the text of the given ids. --timing reports the encoding speed on stderr (Bench/tokenizer_speed.py uses it)."
    )

    @Argument(help: "A folder with tokenizer.json (a Hugging Face model folder).") var directory: String
    @Option(help: "The text to encode.") var text: String?
    @Option(help: "A UTF-8 file whose whole content is encoded.") var textFile: String?
    @Option(help: "Decode these comma-separated ids instead of encoding.") var decode: String?
    @Flag(help: "Encode without the post-processor's special tokens (BOS...).") var noSpecialTokens = false
    @Flag(help: "With --decode: leave out special tokens.") var skipSpecialTokens = false
    @Flag(help: "Report on stderr the time to encode (best of 3, after loading).") var timing = false

    func run() throws {
        let tokenizer: Tokenizer
        do { tokenizer = try Tokenizer(directory: URL(fileURLWithPath: directory)) } catch let e as TextError { throw CLIError(e.message) }
        if let decode {
            let ids = try decode.split(separator: ",").map { part -> Int32 in
                guard let id = Int32(part.trimmingCharacters(in: .whitespaces)) else { throw CLIError("--decode expects comma-separated ids, got '\(part)'") }
                return id
            }
            print(tokenizer.decode(ids, skipSpecialTokens: skipSpecialTokens))
            return
        }
        let input: String
        switch (text, textFile) {
        case (let t?, nil): input = t
        case (nil, let f?):
            guard let data = FileManager.default.contents(atPath: f) else { throw CLIError("cannot read --text-file \(f)") }
            guard let s = String(data: data, encoding: .utf8) else { throw CLIError("--text-file \(f) is not UTF-8") }
            input = s
        default: throw CLIError("give exactly one of --text, --text-file or --decode")
        }
        var ids: [Int32] = []
        var best = Double.infinity
        for _ in 0..<(timing ? 3 : 1) {
            let start = DispatchTime.now().uptimeNanoseconds
            ids = tokenizer.encode(input, addSpecialTokens: !noSpecialTokens)
            best = min(best, Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9)
        }
        print("[" + ids.map(String.init).joined(separator: ",") + "]")
        if timing {
            let bytes = input.utf8.count
            FileHandle.standardError.write(Data(String(format: "encoded %d bytes into %d tokens in %.4f s (%.2f MB/s)\n",
                                                       bytes, ids.count, best, Double(bytes) / best / 1e6).utf8))
        }
    }
}
