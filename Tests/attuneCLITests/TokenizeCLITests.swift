import Foundation
import XCTest

/// `attune tokenize`: encodes like the tokenizers package, decodes, reports bad folders in one line.
final class TokenizeCLITests: XCTestCase {
    let llama3 = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures/tokenizers/llama3_bpe").path

    func testEncodeAndDecode() throws {
        // Ids from tokenizers (llama3_bpe/golden.json, "Hello world").
        let encoded = try CLI.run(["tokenize", llama3, "--text", "Hello world"])
        XCTAssertEqual(encoded.status, 0, encoded.stderr)
        XCTAssertEqual(encoded.stdout, "[5000,3138,335,1286,1396]\n")
        let plain = try CLI.run(["tokenize", llama3, "--text", "Hello world", "--no-special-tokens"])
        XCTAssertEqual(plain.stdout, "[3138,335,1286,1396]\n")
        let decoded = try CLI.run(["tokenize", llama3, "--decode", "5000,3138,335,1286,1396", "--skip-special-tokens"])
        XCTAssertEqual(decoded.stdout, "Hello world\n")
    }

    func testFolderWithoutTokenizerIsOneLineError() throws {
        let dir = try CLI.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let result = try CLI.run(["tokenize", dir.path, "--text", "x"])
        XCTAssertNotEqual(result.status, 0)
        XCTAssertEqual(result.stderr, "error: \(dir.path): no tokenizer.json (Attune reads Hugging Face fast tokenizers only)\n")
    }
}
