import AttuneTensor
import Foundation
import XCTest

/// `attune run` with several prompts: one batch over their shared prefix.
final class BatchedRunCLITests: XCTestCase {
    let fixtures = CompilerCLITests.fixtures
    let prompt = "1,17,42,99,3,64,127,8,55,23,77,0,91,34,110,12"  // golden.json sequence 0

    func lastJSON(_ r: CLIResult) throws -> [String: Any] {
        let last = r.stdout.split(separator: "\n").last.map(String.init) ?? ""
        return try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(last.utf8)) as? [String: Any], last)
    }

    func testSeveralPromptsShareTheirPrefixAndGenerateAsAlone() throws {
        let llama = fixtures.appendingPathComponent("llama").path
        let other = "1,17,42,99,3,64,127,8,5,6"
        let r = try CLI.run(["run", llama, "--tokens", prompt, "--tokens", other, "--max-new-tokens", "8", "--json"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let json = try lastJSON(r)
        XCTAssertEqual(json["batched"] as? Bool, true)
        XCTAssertEqual(json["shared_prefix"] as? Int, 8)
        let sequences = try XCTUnwrap(json["sequences"] as? [[String: Any]])
        XCTAssertEqual(sequences[0]["generated"] as? [Int], [60, 28, 27, 83, 88, 13, 115, 82])  // transformers' greedy ids
        let alone = try lastJSON(try CLI.run(["run", llama, "--tokens", other, "--max-new-tokens", "8", "--json"]))
        XCTAssertEqual(sequences[1]["generated"] as? [Int], alone["generated"] as? [Int])

        // The same prompts from files: text lines and an .npy of ids.
        let dir = try CLI.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let text = dir.appendingPathComponent("prompts.txt")
        try "\(prompt)\n\n\(other.replacingOccurrences(of: ",", with: " "))\n".write(to: text, atomically: true, encoding: .utf8)
        let fromText = try lastJSON(try CLI.run(["run", llama, "--prompts", text.path, "--max-new-tokens", "8", "--json"]))
        XCTAssertEqual((fromText["sequences"] as? [[String: Any]])?.compactMap { $0["generated"] as? [Int] },
                       sequences.compactMap { $0["generated"] as? [Int] })
        let npy = dir.appendingPathComponent("prompts.npy")
        try Npy.writeIntegers([5, 6, 7, 8, 5, 6, 7, 9], shape: [2, 4], to: npy)
        let fromNpy = try lastJSON(try CLI.run(["run", llama, "--prompts", npy.path, "--json"]))
        XCTAssertEqual(fromNpy["shared_prefix"] as? Int, 3)
    }

    func testModelsThatCannotBatchRunPromptsAloneAndSayWhy() throws {
        let mistral = fixtures.appendingPathComponent("mistral").path
        let r = try CLI.run(["run", mistral, "--tokens", "1,2,3,4", "--tokens", "1,2,3,5", "--max-new-tokens", "2", "--json"])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stdout.contains("run one after another: this model cannot run batched sequences: layer 0 has a sliding window"), r.stdout)
        XCTAssertEqual(try lastJSON(r)["batched"] as? Bool, false)
        let bad = try CLI.run(["run", mistral, "--tokens", "1,2", "--tokens", "3", "--logits-out", "/tmp/x.npy"])
        XCTAssertNotEqual(bad.status, 0)
        XCTAssertTrue(bad.stderr.contains("take one prompt"), bad.stderr)
        let none = try CLI.run(["run", mistral])
        XCTAssertTrue(none.stderr.contains("give a prompt"), none.stderr)
    }
}

/// `attune bench model`: a candidate compile against the dense one, same process.
final class BenchModelCLITests: XCTestCase {
    func testReportsSpeedAndLogitErrors() throws {
        let deep = CompilerCLITests.fixtures.appendingPathComponent("llama_deep")
        let data = deep.appendingPathComponent("calibration_tokens.npy").path
        let same = try CLI.run(["bench", "model", deep.path, "--data", data, "--attention", "unified_max", "--repeats", "1", "--json"])
        XCTAssertEqual(same.status, 0, same.stderr)
        let last = same.stdout.split(separator: "\n").last.map(String.init) ?? ""
        let json = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(last.utf8)) as? [String: Any], last)
        XCTAssertEqual(json["positions"] as? Int, 4 * 96)
        XCTAssertEqual(json["top1_agreement"] as? Double, 1)
        XCTAssertLessThanOrEqual(json["max_abs_logit_diff"] as? Double ?? 1, 1e-4)
        let sparse = try CLI.run(["bench", "model", deep.path, "--tokens", "1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20",
                                  "--attention", "kascade:fraction=0.25,min_k=2,tile=4", "--repeats", "1", "--json"])
        XCTAssertEqual(sparse.status, 0, sparse.stderr)
        let s = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data((sparse.stdout.split(separator: "\n").last.map(String.init) ?? "").utf8)) as? [String: Any])
        XCTAssertGreaterThan(s["kl_mean"] as? Double ?? 0, 0, "dropping keys moves the distribution")
        let bad = try CLI.run(["bench", "model", deep.path])
        XCTAssertTrue(bad.stderr.contains("exactly one of --data"), bad.stderr)
    }

    /// --decode N: the last N tokens go through decode steps, and the baseline keeps the
    /// default formats, so a --kv int8 candidate differs (by the format's small error) on
    /// exactly the positions both paths score.
    func testDecodeStepsAndFormatsAgainstTheDefaultCompile() throws {
        let deep = CompilerCLITests.fixtures.appendingPathComponent("llama_deep")
        let tokens = (1...24).map(String.init).joined(separator: ",")
        let r = try CLI.run(["bench", "model", deep.path, "--tokens", tokens, "--decode", "8", "--kv", "int8", "--repeats", "1", "--json"])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stdout.contains("decode     8 steps per sequence"), r.stdout)
        let json = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data((r.stdout.split(separator: "\n").last.map(String.init) ?? "").utf8)) as? [String: Any])
        XCTAssertEqual(json["positions"] as? Int, 24)
        XCTAssertEqual(json["decode_steps"] as? Int, 8)
        let kl = try XCTUnwrap(json["decode_kl_mean"] as? Double)
        XCTAssertGreaterThan(kl, 0, "int8 KV against the f32 baseline is not bit-identical")
        XCTAssertLessThan(kl, 1e-2, "measured 1.2e-3")
        XCTAssertGreaterThan(json["baseline_decode_ms"] as? Double ?? 0, 0)
        XCTAssertEqual(json["scored_tokens"] as? Int, 23)
        let pb = try XCTUnwrap(json["baseline_perplexity"] as? Double), pc = try XCTUnwrap(json["candidate_perplexity"] as? Double)
        XCTAssertNotEqual(pb, pc)
        XCTAssertEqual(pc / pb, 1, accuracy: 0.05)
        let long = try CLI.run(["bench", "model", deep.path, "--tokens", "1,2,3", "--decode", "3"])
        XCTAssertEqual(long.status, 1)
        XCTAssertTrue(long.stderr.contains("--decode 3 needs sequences longer than that"), long.stderr)
    }
}
