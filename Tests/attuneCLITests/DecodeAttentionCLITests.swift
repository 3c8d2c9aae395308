import AttuneTensor
import Foundation
import XCTest

/// `--decode-attention`, `--layer-decode-attention` and a policy file's "decode" object:
/// decode steps (one query row) run their own kernel, prefill chunks the `--attention` one.
final class DecodeAttentionCLITests: XCTestCase {
    let llama = CompilerCLITests.fixtures.appendingPathComponent("llama").path
    let deep = CompilerCLITests.fixtures.appendingPathComponent("llama_deep").path

    func lastJSON(_ r: CLIResult) throws -> [String: Any] {
        let last = r.stdout.split(separator: "\n").last.map(String.init) ?? ""
        return try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(last.utf8)) as? [String: Any], last)
    }

    /// unified_max counts the q rows it attends: with a decode kernel apart, the prefill
    /// kernel sees the prompt's rows only and the decode kernel one row per step.
    func testEachPhaseRunsItsOwnKernel() throws {
        let args = ["run", llama, "--tokens", "1,17,42,99,3", "--max-new-tokens", "3", "--stats", "--json"]
        // 5 prompt rows, 4 q heads; alone, unified_max also counts the 3 decode steps (32).
        let prefill = try CLI.run(args + ["--attention", "unified_max", "--decode-attention", "flash"])
        XCTAssertEqual(prefill.status, 0, prefill.stderr)
        let p = try XCTUnwrap(try lastJSON(prefill)["stats"] as? [String: Int])
        XCTAssertEqual(p["layer0.unified_max.rows"], 20)
        XCTAssertEqual(p["layer1.unified_max.rows"], 20)
        XCTAssertNil(p["layer0.decode.unified_max.rows"])

        let decode = try CLI.run(args + ["--decode-attention", "unified_max"])
        XCTAssertEqual(decode.status, 0, decode.stderr)
        let d = try XCTUnwrap(try lastJSON(decode)["stats"] as? [String: Int])
        XCTAssertEqual(d["layer0.decode.unified_max.rows"], 12)
        XCTAssertNil(d["layer0.unified_max.rows"])
        // Exact kernels on both phases generate what flash alone generates.
        let flash = try CLI.run(["run", llama, "--tokens", "1,17,42,99,3", "--max-new-tokens", "3", "--json"])
        XCTAssertEqual(try lastJSON(decode)["generated"] as? [Int], try lastJSON(flash)["generated"] as? [Int])

        let layer = try CLI.run(args + ["--layer-decode-attention", "1=unified_max"])
        XCTAssertEqual(layer.status, 0, layer.stderr)
        let l = try XCTUnwrap(try lastJSON(layer)["stats"] as? [String: Int])
        XCTAssertEqual(l["layer1.decode.unified_max.rows"], 12)
        XCTAssertNil(l["layer0.decode.unified_max.rows"])
    }

    /// `bench model --decode 8` compiles its candidate with the decode kernel: an exact pair
    /// scores the decode steps as the default (flash) compile does.
    func testBenchModelDecodeStepsWithAnExactDecodeKernel() throws {
        let tokens = (1...24).map(String.init).joined(separator: ",")
        let r = try CLI.run(["bench", "model", deep, "--tokens", tokens, "--decode", "8", "--attention", "flash",
                             "--decode-attention", "unified_max:phi=0", "--repeats", "1", "--json"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let json = try lastJSON(r)
        XCTAssertEqual(json["top1_agreement"] as? Double, 1)
        // Exact, not bitwise: the baseline's rule-chosen tiling rounds differently from the
        // candidate's (1.2e-5 on logits of about 10 on one machine, under 1e-5 on another).
        XCTAssertLessThanOrEqual(json["max_abs_logit_diff"] as? Double ?? 1, 1e-4)
        let sparge = try CLI.run(["bench", "model", deep, "--tokens", tokens, "--decode", "8", "--attention", "sparge",
                                  "--decode-attention", "flash", "--repeats", "1", "--json"])
        XCTAssertEqual(sparge.status, 0, sparge.stderr)
    }

    func testInspectShowsTheDecodeKernel() throws {
        let r = try CLI.run(["inspect", llama, "--kernels", "--attention", "sparge", "--layer-decode-attention", "1=flash:block_kv=64"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let lines = r.stdout.split(separator: "\n").map(String.init)
        XCTAssertEqual(lines.count, 2)
        XCTAssertFalse(lines[0].contains("decode"), lines[0])
        XCTAssertTrue(lines[1].hasSuffix("; decode: flash block_kv=64  (decode override for layer 1: flash:block_kv=64)"), lines[1])
        let c = try CLI.run(["inspect", llama, "--c", "--attention", "sparge", "--decode-attention", "flash"])
        XCTAssertTrue(c.stdout.contains("    if (pp->q_len == 1) {\n        const attune_flash_params params"), c.stdout)
    }

    /// Pairs that cannot share the KV cache or state, and bad choices, are one line each, before any work.
    func testRefusals() throws {
        let sigmoid = CompilerCLITests.fixtures.appendingPathComponent("llama_sigmoid").path
        let cases: [([String], String)] = [
            (["run", llama, "--tokens", "1", "--attention", "hybrid", "--decode-attention", "flash"],
             "prefill 'hybrid' and decode 'flash' differ, but 'hybrid' keeps its own K/V store"),
            (["run", llama, "--tokens", "1", "--attention", "kascade", "--decode-attention", "flash"],
             "'kascade' links key selections across layers"),
            (["run", llama, "--tokens", "1", "--decode-attention", "sparge", "--kv", "int8"],
             "kernel 'sparge' reads K/V as f32 only, not int8"),
            (["run", llama, "--tokens", "1", "--decode-attention", "sigmoid"], "'sigmoid' computes sigmoid attention, this node softmax"),
            (["run", llama, "--tokens", "1", "--decode-attention", "flash:blok_kv=1"], "kernel 'flash' has no parameter 'blok_kv'"),
            (["run", llama, "--tokens", "1", "--layer-decode-attention", "x=flash"], "--layer-decode-attention expects LAYER=NAME[:k=v,...], got 'x=flash'"),
            (["run", llama, "--tokens", "1", "--layer-decode-attention", "7=flash"], "(--layer-decode-attention or a policy file) names layer 7, but the model has layers 0...1"),
            (["run", sigmoid, "--tokens", "1", "--decode-attention", "flash"], "'flash' is not a sigmoid-attention kernel"),
        ]
        for (args, fragment) in cases {
            let r = try CLI.run(args)
            XCTAssertNotEqual(r.status, 0, args.joined(separator: " "))
            XCTAssertTrue(r.stderr.contains(fragment), "\(args): \(r.stderr)")
            XCTAssertEqual(r.stderr.split(separator: "\n").count, 1, r.stderr)
        }
    }

    func testPolicyFileDecodeObject() throws {
        let dir = try CLI.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let policy = dir.appendingPathComponent("policy.json")
        try Data(#"{"default": "unified_max", "decode": {"default": "flash", "layers": {"1": "unified_max"}}}"#.utf8).write(to: policy)
        let r = try CLI.run(["run", llama, "--tokens", "1,17,42,99,3", "--max-new-tokens", "3", "--attention-policy", policy.path, "--stats", "--json"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let s = try XCTUnwrap(try lastJSON(r)["stats"] as? [String: Int])
        XCTAssertEqual(s["layer0.unified_max.rows"], 20, "layer 0 decodes with flash")
        XCTAssertEqual(s["layer1.unified_max.rows"], 32, "layer 1 decodes with unified_max: the same binding, counted once")

        for (text, fragment) in [
            (#"{"decode": "flash"}"#, "'decode' must be an object"),
            (#"{"decode": {"default": 3}}"#, "'decode.default' must be a string"),
            (#"{"decode": {"layers": {"a": "flash"}}}"#, "decode.layer 'a' is not a layer number"),
            (#"{"decode": {"layers": {"1": "turbo"}}}"#, "decode.layer 1: --attention 'turbo': unknown kernel 'turbo'"),
            (#"{"decode": {"defaults": "flash"}}"#, "unknown key 'decode.defaults'"),
        ] {
            try Data(text.utf8).write(to: policy)
            let bad = try CLI.run(["run", llama, "--tokens", "1", "--attention-policy", policy.path])
            XCTAssertNotEqual(bad.status, 0, text)
            XCTAssertTrue(bad.stderr.contains(fragment), "\(text): \(bad.stderr)")
        }
    }
}
