import AttuneText
import Foundation
import XCTest

/// Options the five fixtures do not use (ByteLevel add_prefix_space, Lowercase/NFKC/NFD,
/// added tokens matched after a Prepend normalizer,
/// Split behaviors and invert, unk with and without fuse_unk, Metaspace schemes, no decoder,
/// RobertaProcessing): each variant patches a fixture's tokenizer.json, and Attune must
/// equal the `tokenizers` encodings recorded in variants.json.
final class TokenizerVariantTests: XCTestCase {
    func testVariantsMatchTokenizers() throws {
        let url = TokenizerFixtures.directory("variants.json")
        let variants = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: url)) as? [[String: Any]])
        XCTAssertEqual(variants.count, 13)
        for variant in variants {
            let base = try XCTUnwrap(variant["base"] as? String), name = try XCTUnwrap(variant["name"] as? String)
            let patch = try XCTUnwrap(variant["patch"] as? [String: Any])
            let source = TokenizerFixtures.directory(base).appendingPathComponent("tokenizer.json")
            var root = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: source)) as? [String: Any])
            for (key, value) in patch {
                if key == "model", var model = root["model"] as? [String: Any], let changes = value as? [String: Any] {
                    model.merge(changes) { $1 }
                    root["model"] = model
                } else {
                    root[key] = value
                }
            }
            let dir = FileManager.default.temporaryDirectory.appendingPathComponent("attune-variant-\(UUID().uuidString)")
            try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(at: dir) }
            try JSONSerialization.data(withJSONObject: root).write(to: dir.appendingPathComponent("tokenizer.json"))
            let tokenizer = try Tokenizer(directory: dir)
            let cases = try XCTUnwrap(variant["cases"] as? [[String: Any]])
            for c in cases {
                let text = try XCTUnwrap(c["text"] as? String)
                let label = "\(name): \(text.debugDescription.prefix(60))"
                let ids = try XCTUnwrap(c["ids"] as? [Int]).map(Int32.init)
                XCTAssertEqual(tokenizer.encode(text), ids, label)
                XCTAssertEqual(tokenizer.encode(text, addSpecialTokens: false), try XCTUnwrap(c["ids_no_special"] as? [Int]).map(Int32.init), label)
                XCTAssertEqual(tokenizer.decode(ids, skipSpecialTokens: false), c["decoded"] as? String, label)
                XCTAssertEqual(tokenizer.decode(ids, skipSpecialTokens: true), c["decoded_skip_special"] as? String, label)
            }
        }
    }
}
