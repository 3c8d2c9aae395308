import Foundation
import XCTest

/// `attune perplexity` against transformers' logits in float64 over the same windows
/// (Tests/Fixtures/make_perplexity_goldens.py), and its comparison mode.
final class PerplexityCLITests: XCTestCase {
    struct Goldens: Decodable {
        struct Case: Decodable { var context: Int; var stride: Int; var tokens: Int; var nll_mean: Double }
        var text_tokens: Int
        var cases: [Case]
    }

    let fixtures = CompilerCLITests.fixtures.deletingLastPathComponent()
    var text: String { fixtures.appendingPathComponent("perplexity/text.txt").path }

    func json(_ stdout: String) throws -> [String: Any] {
        let line = try XCTUnwrap(stdout.split(separator: "\n").last.map(String.init))
        return try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any], line)
    }

    func testPerplexityMatchesTransformersOverTheSameWindows() throws {
        let all = try JSONDecoder().decode([String: Goldens].self,
                                           from: Data(contentsOf: fixtures.appendingPathComponent("perplexity/goldens.json")))
        XCTAssertFalse(all.isEmpty)
        for (name, goldens) in all.sorted(by: { $0.key < $1.key }) {
            let model = fixtures.appendingPathComponent("models/\(name)").path
            for c in goldens.cases {
                let r = try CLI.run(["perplexity", model, "--text", text, "--context", String(c.context), "--stride", String(c.stride), "--json"])
                XCTAssertEqual(r.status, 0, r.stderr)
                let out = try json(r.stdout)
                XCTAssertEqual(out["text_tokens"] as? Int, goldens.text_tokens, name)
                XCTAssertEqual(out["tokens"] as? Int, c.tokens, "\(name) \(c.context)/\(c.stride)")
                // Mean NLL in nats: f32 (or bf16-weight) logits against float64 ones.
                XCTAssertEqual(try XCTUnwrap(out["nll_mean"] as? Double), c.nll_mean, accuracy: 2e-3, "\(name) \(c.context)/\(c.stride)")
            }
        }
    }

    func testComparisonAndRefusals() throws {
        let model = fixtures.appendingPathComponent("models/llama_text").path
        // The same compile compared with itself: no divergence at all.
        let same = try CLI.run(["perplexity", model, "--text", text, "--context", "64", "--compare", "--attention flash", "--json"])
        XCTAssertEqual(same.status, 0, same.stderr)
        let s = try json(same.stdout)
        XCTAssertEqual(s["kl_max"] as? Double, 0)
        XCTAssertEqual(s["top1_agreement"] as? Double, 1)
        XCTAssertEqual(s["delta_perplexity"] as? Double, 0)
        // An approximate format diverges a little, and the report says how much.
        let int8 = try CLI.run(["perplexity", model, "--text", text, "--context", "64", "--compare", "--attention unified_max:phi=0", "--json"])
        XCTAssertEqual(int8.status, 0, int8.stderr)
        let q = try json(int8.stdout)
        XCTAssertGreaterThanOrEqual(try XCTUnwrap(q["kl_mean"] as? Double), 0)
        XCTAssertLessThanOrEqual(try XCTUnwrap(q["kl_p99"] as? Double), try XCTUnwrap(q["kl_max"] as? Double))
        XCTAssertEqual(try XCTUnwrap(q["compare_perplexity"] as? Double) - (q["perplexity"] as! Double),
                       try XCTUnwrap(q["delta_perplexity"] as? Double), accuracy: 1e-9)

        for (args, message) in [(["--context", "64", "--stride", "65"], "--stride must be in 1...64 (the context), got 65"),
                                (["--context", "1"], "--context must be >= 2, got 1"),
                                (["--compare", "--bogus"], "--compare \"--bogus\": Unknown option '--bogus'"),
                                (["--context", "64", "--max-context", "32"], "--context 64 exceeds the compiled context of 32 positions")] {
            let r = try CLI.run(["perplexity", model, "--text", text] + args)
            XCTAssertEqual(r.status, 1, "\(args)")
            XCTAssertTrue(r.stderr.contains(message), "\(args): \(r.stderr)")
        }
        let llama = fixtures.appendingPathComponent("models/llama").path
        let noTokenizer = try CLI.run(["perplexity", llama, "--text", text])
        XCTAssertTrue(noTokenizer.stderr.contains("--text needs the model folder's tokenizer.json"), noTokenizer.stderr)
    }
}
