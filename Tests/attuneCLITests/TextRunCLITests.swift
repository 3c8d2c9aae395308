import Foundation
import XCTest

/// `attune run MODEL --prompt TEXT` on the llama_text fixture (a llama3-style tokenizer, an
/// EOS list in generation_config.json) against transformers' greedy `generate`
/// (Tests/Fixtures/make_text_model.py).
final class TextRunCLITests: XCTestCase {
    struct Golden: Decodable {
        struct Case: Decodable {
            var prompt: String
            var ignore_eos: Bool
            var prompt_ids: [Int]
            var generated: [Int]
            var text: String
        }
        struct Chat: Decodable {
            var system: String?
            var user: String
            var prompt_ids: [Int]
        }
        var max_new_tokens: Int
        var cases: [Case]
        var chat: [Chat]
    }

    let folder = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures/models/llama_text")

    func lastJSON(_ stdout: String) throws -> [String: Any] {
        let line = try XCTUnwrap(stdout.split(separator: "\n").last)
        return try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
    }

    func testPromptsGenerateLikeTransformersAndStopAtAnEOSOfTheList() throws {
        let golden = try JSONDecoder().decode(Golden.self, from: Data(contentsOf: folder.appendingPathComponent("golden_text.json")))
        for c in golden.cases {
            var args = ["run", folder.path, "--prompt", c.prompt, "--max-new-tokens", String(golden.max_new_tokens), "--json"]
            if c.ignore_eos { args.append("--ignore-eos") }
            let r = try CLI.run(args)
            XCTAssertEqual(r.status, 0, r.stderr)
            let json = try lastJSON(r.stdout)
            XCTAssertEqual(json["prompt_ids"] as? [Int], c.prompt_ids, c.prompt)
            XCTAssertEqual(json["generated"] as? [Int], c.generated, "\(c.prompt) ignore_eos \(c.ignore_eos)")
            XCTAssertEqual(json["text"] as? String, c.text, c.prompt)
            // The streamed text is what stdout shows before the JSON line.
            XCTAssertTrue(r.stdout.hasPrefix(c.text + "\n"), r.stdout)
            if !c.ignore_eos && c.generated.count < golden.max_new_tokens {
                XCTAssertTrue((json["stop_reason"] as? String)?.hasPrefix("end of sequence") == true, "\(json)")
            }
        }
    }

    func testStopStringsSeedsAndRefusals() throws {
        let golden = try JSONDecoder().decode(Golden.self, from: Data(contentsOf: folder.appendingPathComponent("golden_text.json")))
        let full = try XCTUnwrap(golden.cases.first { $0.ignore_eos })
        // A stop string in the middle of the text: printed up to it, not including it.
        let words = full.text.split(separator: " ")
        let stop = String(words[words.count / 2])
        let r = try CLI.run(["run", folder.path, "--prompt", full.prompt, "--ignore-eos", "--max-new-tokens", "12", "--stop", stop, "--json"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let text = try XCTUnwrap(try lastJSON(r.stdout)["text"] as? String)
        XCTAssertEqual(text, String(full.text[..<full.text.range(of: stop)!.lowerBound]))
        // Sampling: the same seed gives the same ids, another seed other ids.
        func sample(_ seed: String) throws -> [Int] {
            let r = try CLI.run(["run", folder.path, "--prompt", full.prompt, "--ignore-eos", "--max-new-tokens", "12",
                                 "--temperature", "1.5", "--top-k", "0", "--seed", seed, "--json"])
            XCTAssertEqual(r.status, 0, r.stderr)
            return try XCTUnwrap(try lastJSON(r.stdout)["generated"] as? [Int])
        }
        XCTAssertEqual(try sample("7"), try sample("7"))
        XCTAssertNotEqual(try sample("7"), try sample("8"))
        for (args, message) in [(["--prompt", "x", "--tokens", "1"], "not both"),
                                (["--prompt", "x", "--temperature", "-1"], "temperature must be"),
                                (["--tokens", "1", "--chat"], "work on text")] {
            let bad = try CLI.run(["run", folder.path] + args)
            XCTAssertNotEqual(bad.status, 0)
            XCTAssertTrue(bad.stderr.contains(message), "\(args): \(bad.stderr)")
        }
    }

    /// --chat renders the prompt (and --system) with the template, as apply_chat_template
    /// does with the same template and tokenizer: the same prompt ids.
    func testChatPromptsEqualApplyChatTemplate() throws {
        let golden = try JSONDecoder().decode(Golden.self, from: Data(contentsOf: folder.appendingPathComponent("golden_text.json")))
        let template = folder.deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("chat_templates/llama3.jinja")
        for c in golden.chat {
            var args = ["run", folder.path, "--prompt", c.user, "--chat", "--chat-template", template.path, "--max-new-tokens", "1", "--json"]
            if let system = c.system { args += ["--system", system] }
            let r = try CLI.run(args)
            XCTAssertEqual(r.status, 0, r.stderr)
            XCTAssertEqual(try lastJSON(r.stdout)["prompt_ids"] as? [Int], c.prompt_ids, c.user)
        }
        let none = try CLI.run(["run", folder.path, "--prompt", "hi", "--chat"])
        XCTAssertTrue(none.stderr.contains("no chat_template"), none.stderr)
    }
}
