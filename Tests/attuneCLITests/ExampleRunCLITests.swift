import Foundation
import XCTest

/// `attune run` on the trained example model (Tests/Fixtures/models/example) prints the text
/// transformers' greedy `generate` gives (Tests/Fixtures/train_example_model.py), for the
/// `make example` command of the Makefile itself, a Python prompt and a 1200-token held-out file.
final class ExampleRunCLITests: XCTestCase {
    struct Golden: Decodable {
        struct Case: Decodable {
            var name: String
            var prompt: String
            var prompt_ids: [Int]
            var max_new_tokens: Int
            var generated: [Int]
            var text: String
        }
        struct Chat: Decodable {
            var user: String
            var prompt_ids: [Int]
        }
        var cases: [Case]
        var chat: Chat
    }

    let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    var folder: URL { root.appendingPathComponent("Tests/Fixtures/models/example") }

    func golden() throws -> Golden {
        try JSONDecoder().decode(Golden.self, from: Data(contentsOf: folder.appendingPathComponent("golden_text.json")))
    }

    /// The recipe's `attune run` line, as a list of arguments (its one quoted argument is the prompt).
    func makeExampleArguments() throws -> [String] {
        let makefile = try String(contentsOf: root.appendingPathComponent("Makefile"), encoding: .utf8)
        let line = try XCTUnwrap(makefile.split(separator: "\n").first { $0.contains("attune run Tests/Fixtures/models/example") })
        let parts = line.split(separator: "\"", omittingEmptySubsequences: false).map(String.init)
        XCTAssertEqual(parts.count, 3, String(line))
        let before = parts[0].split(whereSeparator: \.isWhitespace).map(String.init)
        let after = parts[2].split(whereSeparator: \.isWhitespace).map(String.init)
        XCTAssertEqual(before.first, ".build/release/attune")
        return Array(before.dropFirst()) + [parts[1]] + after
    }

    func testMakeExamplePrintsTransformersGreedyText() throws {
        let args = try makeExampleArguments()
        let prompt = args[args.firstIndex(of: "--prompt")! + 1]
        let c = try XCTUnwrap(try golden().cases.first { $0.prompt == prompt }, "no golden for the Makefile's prompt \(prompt)")
        XCTAssertEqual(args.last, String(c.max_new_tokens), "make example generates as many tokens as the golden")
        let r = try CLI.run(args, directory: root)
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertEqual(r.stdout, c.text + "\n")
    }

    func testPromptsGenerateTransformersIdsAndText() throws {
        let golden = try golden()
        XCTAssertGreaterThanOrEqual(golden.cases.map(\.prompt_ids.count).max() ?? 0, 1000)
        for c in golden.cases {
            let r = try CLI.run(["run", folder.path, "--prompt", c.prompt, "--max-new-tokens", String(c.max_new_tokens), "--json"])
            XCTAssertEqual(r.status, 0, r.stderr)
            let line = try XCTUnwrap(r.stdout.split(separator: "\n").last)
            let json = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
            XCTAssertEqual(json["prompt_ids"] as? [Int], c.prompt_ids, c.name)
            XCTAssertEqual(json["generated"] as? [Int], c.generated, c.name)
            XCTAssertEqual(json["text"] as? String, c.text, c.name)
            XCTAssertTrue(r.stdout.hasPrefix(c.text + "\n"), "\(c.name): \(r.stdout)")
        }
    }

    /// `--chat` renders the checkpoint's own ChatML template as apply_chat_template does.
    func testChatPromptEqualsApplyChatTemplate() throws {
        let chat = try golden().chat
        let r = try CLI.run(["run", folder.path, "--chat", "--prompt", chat.user, "--max-new-tokens", "1", "--json"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let line = try XCTUnwrap(r.stdout.split(separator: "\n").last)
        let json = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
        XCTAssertEqual(json["prompt_ids"] as? [Int], chat.prompt_ids)
    }
}
