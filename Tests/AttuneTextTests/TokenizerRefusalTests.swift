import AttuneText
import Foundation
import XCTest

/// Components Attune does not implement are refused by name, before any text is encoded.
final class TokenizerRefusalTests: XCTestCase {
    /// Loads the gpt2_bpe fixture's tokenizer.json after `edit`, from a temporary folder.
    func load(_ edit: (inout [String: Any]) -> Void, config: [String: Any]? = nil) throws -> Tokenizer {
        let source = TokenizerFixtures.directory("gpt2_bpe").appendingPathComponent("tokenizer.json")
        var root = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: source)) as? [String: Any])
        edit(&root)
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("attune-tok-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(at: dir) }
        try JSONSerialization.data(withJSONObject: root).write(to: dir.appendingPathComponent("tokenizer.json"))
        if let config {
            try JSONSerialization.data(withJSONObject: config).write(to: dir.appendingPathComponent("tokenizer_config.json"))
        }
        return try Tokenizer(directory: dir)
    }

    func assertRefused(_ message: String, config: [String: Any]? = nil, _ edit: (inout [String: Any]) -> Void,
                       file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertThrowsError(try load(edit, config: config), file: file, line: line) { error in
            XCTAssertEqual("\(error)", message, file: file, line: line)
        }
    }

    func testUnmodifiedCopyLoads() throws {
        XCTAssertEqual(try load { _ in }.encode("Hello world"), try TokenizerFixtures.load("gpt2_bpe").encode("Hello world"))
    }

    /// Found by FuzzTokenizer: a vocabulary key holding a newline made a two-line message.
    func testQuotedFileTextStaysOnOneLine() throws {
        let json = Data(#"{"model": {"type": "BPE", "vocab": {"a\nb\u0007": -1}, "merges": []}}"#.utf8)
        XCTAssertThrowsError(try Tokenizer(tokenizerJSON: json)) { error in
            XCTAssertEqual("\(error)", #"tokenizer.json.model.vocab['a\nb\u{7}'] must be a non-negative integer id"#)
        }
    }

    func testModelTypes() {
        for type in ["WordPiece", "Unigram", "WordLevel"] {
            assertRefused("tokenizer.json: model type '\(type)' is not supported") { root in
                var model = root["model"] as! [String: Any]
                model["type"] = type
                root["model"] = model
            }
        }
    }

    func testNormalizerPreTokenizerDecoderAndPostProcessorTypes() {
        assertRefused("tokenizer.json: normalizer type 'BertNormalizer' is not supported") {
            $0["normalizer"] = ["type": "Sequence", "normalizers": [["type": "NFC"], ["type": "BertNormalizer"]]]
        }
        assertRefused("tokenizer.json: pre-tokenizer type 'Whitespace' is not supported") {
            $0["pre_tokenizer"] = ["type": "Whitespace"]
        }
        assertRefused("tokenizer.json: decoder type 'WordPiece' is not supported") {
            $0["decoder"] = ["type": "WordPiece", "prefix": "##", "cleanup": true]
        }
        assertRefused("tokenizer.json: post-processor type 'Custom' is not supported") {
            $0["post_processor"] = ["type": "Custom"]
        }
    }

    func testUnknownSplitRegex() {
        assertRefused(#"tokenizer.json: Split pre-tokenizer regex '\w+' is not supported (known: the GPT-2, Llama 3 and Qwen2 patterns)"#) {
            $0["pre_tokenizer"] = ["type": "Split", "pattern": ["Regex": #"\w+"#], "behavior": "Isolated", "invert": false]
        }
    }

    func testRegexReplaceAndDropout() {
        assertRefused("tokenizer.json.normalizer: Replace with a Regex pattern is not supported") {
            $0["normalizer"] = ["type": "Replace", "pattern": ["Regex": " +"], "content": " "]
        }
        assertRefused("tokenizer.json: BPE dropout 0.1 is not supported (encoding would be random)") { root in
            var model = root["model"] as! [String: Any]
            model["dropout"] = 0.1
            root["model"] = model
        }
    }

    func testBadMergeAndUnknownSpecialToken() {
        assertRefused("tokenizer.json: merge 'Ġ nosuchtoken' uses a token missing from the vocabulary") { root in
            var model = root["model"] as! [String: Any]
            model["merges"] = [["Ġ", "nosuchtoken"]]
            root["model"] = model
        }
        assertRefused("tokenizer_config.json: eos_token '<|nope|>' is not a token of tokenizer.json", config: ["eos_token": "<|nope|>"]) { _ in }
    }

    /// Two vocabulary keys that differ only in Unicode normalization would be merged by the
    /// JSON reader; the hole this leaves is reported instead of mis-encoding.
    func testCanonicallyEquivalentTokensAreRefused() throws {
        let source = TokenizerFixtures.directory("gpt2_bpe").appendingPathComponent("tokenizer.json")
        let text = try String(contentsOf: source, encoding: .utf8)
        // Written as JSON text: a Swift dictionary would itself merge the two keys.
        let patched = text.replacingOccurrences(of: #""vocab":{"#, with: #""vocab":{"\u00e9\u00e9\u00e9":4005,"e\u0301\u00e9\u00e9":4006,"#)
        XCTAssertNotEqual(patched, text)
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("attune-tok-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        try patched.write(to: dir.appendingPathComponent("tokenizer.json"), atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try Tokenizer(directory: dir)) { error in
            XCTAssertEqual("\(error)", #"tokenizer.json: no token has id 4005 (a vocabulary with gaps, or with canonically equivalent tokens such as "é" spelt with one and with two code points, is not supported)"#)
        }
    }

    func testMissingFolder() {
        XCTAssertThrowsError(try Tokenizer(directory: URL(fileURLWithPath: "/nonexistent/model"))) { error in
            XCTAssertEqual("\(error)", "/nonexistent/model: no tokenizer.json (Attune reads Hugging Face fast tokenizers only)")
        }
    }
}
