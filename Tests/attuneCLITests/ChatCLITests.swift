import Foundation
import XCTest

/// `attune chat` on the llama_text fixture with a committed chat template, and batched and
/// sampled `attune run`: what the KV cache keeps between turns must give the same ids as
/// running the whole conversation from nothing.
final class ChatCLITests: XCTestCase {
    let folder = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures/models/llama_text")
    var template: String {
        folder.deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("chat_templates/qwen2_5.jinja").path
    }

    /// The ids of the `note: turn N <what> ids ...` lines.
    func ids(_ stderr: String, turn: Int, _ what: String) throws -> [Int] {
        let prefix = "note: turn \(turn) \(what) ids "
        let line = try XCTUnwrap(stderr.split(separator: "\n").first { $0.hasPrefix(prefix) }, stderr)
        return line.dropFirst(prefix.count).split(separator: " ").map { Int($0)! }
    }

    func lastJSON(_ stdout: String) throws -> [String: Any] {
        let line = try XCTUnwrap(stdout.split(separator: "\n").last)
        return try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
    }

    func testTurnsReuseTheCacheAndGenerateWhatAFreshRunGenerates() throws {
        let r = try CLI.run(["chat", folder.path, "--chat-template", template, "--max-new-tokens", "12", "--stats", "--print-ids"],
                            input: "hello there\nwhat is \\\ntwo\n/reset\nhello there\n")
        XCTAssertEqual(r.status, 0, r.stderr)
        let replies = r.stdout.split(separator: "\n", omittingEmptySubsequences: false)
        // Turn 2 prefills only what follows the cached turn 1 (its prompt and 12 generated ids).
        let first = try ids(r.stderr, turn: 1, "conversation"), firstReply = try ids(r.stderr, turn: 1, "generated")
        XCTAssertEqual(firstReply.count, 12)
        let second = try ids(r.stderr, turn: 2, "conversation"), secondReply = try ids(r.stderr, turn: 2, "generated")
        let kept = zip(first + firstReply, second).prefix { $0 == $1 }.count
        XCTAssertGreaterThan(kept, first.count, "turn 2's rendering starts with turn 1's")
        XCTAssertTrue(r.stderr.contains("turn 2: \(kept) cached positions reused, \(second.count - kept) prefilled"), r.stderr)
        // A line ending in a backslash continues the message.
        XCTAssertTrue(second.count > first.count + firstReply.count)
        // The reply equals greedy decoding of the whole conversation from an empty cache.
        let fresh = try CLI.run(["run", folder.path, "--tokens", second.map(String.init).joined(separator: ","),
                                 "--max-new-tokens", "12", "--json"])
        XCTAssertEqual(fresh.status, 0, fresh.stderr)
        XCTAssertEqual(try lastJSON(fresh.stdout)["generated"] as? [Int], secondReply)
        // /reset: turn 3 is turn 1 again, from an empty cache.
        XCTAssertEqual(try ids(r.stderr, turn: 3, "generated"), firstReply)
        XCTAssertTrue(r.stderr.contains("turn 3: 0 cached positions reused"), r.stderr)
        XCTAssertEqual(replies[0], replies[2], r.stdout)

        let none = try CLI.run(["chat", folder.path], input: "hi\n")
        XCTAssertNotEqual(none.status, 0)
        XCTAssertTrue(none.stderr.contains("no chat_template"), none.stderr)
    }

    /// A batch of text prompts: sequence s is sampled from stream s of the seed, so sequence
    /// 0 is what the prompt gives alone, and equal prompts still get their own draws.
    func testBatchedPromptsAreSampledIndependently() throws {
        let sampling = ["--max-new-tokens", "10", "--ignore-eos", "--temperature", "1.2", "--top-k", "0", "--seed", "11", "--json"]
        let alone = try CLI.run(["run", folder.path, "--prompt", "def main"] + sampling)
        XCTAssertEqual(alone.status, 0, alone.stderr)
        let batch = try CLI.run(["run", folder.path, "--prompt", "def main", "--prompt", "def main", "--prompt", "import os"] + sampling)
        XCTAssertEqual(batch.status, 0, batch.stderr)
        let sequences = try XCTUnwrap(try lastJSON(batch.stdout)["sequences"] as? [[String: Any]])
        XCTAssertEqual(sequences.count, 3)
        let generated = sequences.map { $0["generated"] as! [Int] }
        XCTAssertEqual(generated[0], try lastJSON(alone.stdout)["generated"] as? [Int])
        XCTAssertNotEqual(generated[0], generated[1], "equal prompts, different streams")
        XCTAssertEqual(sequences[0]["text"] as? String, try lastJSON(alone.stdout)["text"] as? String)
        XCTAssertTrue(batch.stdout.contains("=== prompt 3 ===\n\(sequences[2]["text"] as! String)\n"), batch.stdout)
        let again = try CLI.run(["run", folder.path, "--prompt", "def main", "--prompt", "def main", "--prompt", "import os"] + sampling)
        XCTAssertEqual(try XCTUnwrap(try lastJSON(again.stdout)["sequences"] as? [[String: Any]]).map { $0["generated"] as! [Int] }, generated)

        // Token-id batches sample too when asked, one stream per sequence; greedy otherwise.
        let tokens = ["run", folder.path, "--tokens", "5,6,7", "--tokens", "5,6,7", "--max-new-tokens", "8", "--json"]
        let sampled = try CLI.run(tokens + ["--temperature", "1.5", "--top-k", "0", "--seed", "3"])
        XCTAssertEqual(sampled.status, 0, sampled.stderr)
        let ids = try XCTUnwrap(try lastJSON(sampled.stdout)["sequences"] as? [[String: Any]]).map { $0["generated"] as! [Int] }
        XCTAssertNotEqual(ids[0], ids[1])
        let greedy = try XCTUnwrap(try lastJSON(try CLI.run(tokens).stdout)["sequences"] as? [[String: Any]]).map { $0["generated"] as! [Int] }
        XCTAssertEqual(greedy[0], greedy[1])
    }

    /// A batch in which one sequence reaches its end-of-sequence id while the other still
    /// generates (issue 15 item 5): the finished one stops there, the other goes on, and
    /// each writes exactly what it writes alone. On the trained example model two chat
    /// questions end after 16 and 12 tokens.
    func testABatchedSequenceThatEndsEarlyLeavesTheOthersAsAlone() throws {
        let example = folder.deletingLastPathComponent().appendingPathComponent("example")
        let prompts = ["What does os.path.join do?", "What does json.dumps do?"]
        let flags = ["--chat", "--max-new-tokens", "40", "--json"]
        let batch = try CLI.run(["run", example.path, "--prompt", prompts[0], "--prompt", prompts[1]] + flags)
        XCTAssertEqual(batch.status, 0, batch.stderr)
        let sequences = try XCTUnwrap(try lastJSON(batch.stdout)["sequences"] as? [[String: Any]])
        XCTAssertEqual(try lastJSON(batch.stdout)["batched"] as? Bool, true)
        let lengths = sequences.map { ($0["generated"] as? [Int])?.count ?? 0 }
        XCTAssertEqual(lengths, [16, 12])
        for (s, prompt) in zip(sequences, prompts) {
            XCTAssertEqual(s["stop_reason"] as? String, "end of sequence (id 2)")
            let alone = try CLI.run(["run", example.path, "--prompt", prompt] + flags)
            XCTAssertEqual(alone.status, 0, alone.stderr)
            XCTAssertEqual(s["generated"] as? [Int], try lastJSON(alone.stdout)["generated"] as? [Int], prompt)
            XCTAssertEqual(s["text"] as? String, try lastJSON(alone.stdout)["text"] as? String, prompt)
        }
    }
}
