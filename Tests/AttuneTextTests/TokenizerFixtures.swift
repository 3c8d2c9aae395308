import AttuneText
import Foundation
import XCTest

/// The tokenizers under Tests/Fixtures/tokenizers (made by make_tokenizers.py).
enum TokenizerFixtures {
    static let names = ["gpt2_bpe", "llama3_bpe", "qwen2_bpe", "llama2_sp", "mistral_sp"]

    static func directory(_ name: String) -> URL {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Fixtures/tokenizers/\(name)")
    }

    static func load(_ name: String) throws -> Tokenizer { try Tokenizer(directory: directory(name)) }

    struct Case {
        var text: String
        var ids: [Int32]
        var idsNoSpecial: [Int32]
        var idsTransformers: [Int32]
        var decoded: String
        var decodedSkipSpecial: String
    }

    static func golden(_ name: String) throws -> [Case] {
        let data = try Data(contentsOf: directory(name).appendingPathComponent("golden.json"))
        let root = try XCTUnwrap(JSONSerialization.jsonObject(with: data) as? [String: Any])
        let cases = try XCTUnwrap(root["cases"] as? [[String: Any]])
        func ids(_ c: [String: Any], _ key: String) throws -> [Int32] {
            try XCTUnwrap(c[key] as? [Int]).map { Int32($0) }
        }
        return try cases.map { c in
            Case(text: try XCTUnwrap(c["text"] as? String), ids: try ids(c, "ids"), idsNoSpecial: try ids(c, "ids_no_special"),
                 idsTransformers: try ids(c, "ids_transformers"), decoded: try XCTUnwrap(c["decoded"] as? String),
                 decodedSkipSpecial: try XCTUnwrap(c["decoded_skip_special"] as? String))
        }
    }
}
