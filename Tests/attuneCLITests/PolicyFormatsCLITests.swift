import AttuneTensor
import Foundation
import XCTest

/// A policy file's "kv" and "weights" (what `attune tune --kv-candidates / --weights-candidates`
/// writes) choose the formats as `--kv` and `--weights` do; the flags win over the file.
final class PolicyFormatsCLITests: XCTestCase {
    let deep = CompilerCLITests.fixtures.appendingPathComponent("llama_deep").path

    func lastJSON(_ r: CLIResult) throws -> [String: Any] {
        let last = r.stdout.split(separator: "\n").last.map(String.init) ?? ""
        return try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(last.utf8)) as? [String: Any], last)
    }

    func testPolicyFormatsApplyAndFlagsWin() throws {
        let dir = try CLI.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let policy = dir.appendingPathComponent("policy.json")
        try Data(#"{"default": "flash", "kv": "int8"}"#.utf8).write(to: policy)
        let tokens = (1...24).map(String.init).joined(separator: ",")
        // bench model's baseline is flash with the default formats: an int8 cache differs by its rounding.
        let args = ["bench", "model", deep, "--tokens", tokens, "--decode", "4", "--attention-policy", policy.path, "--repeats", "1", "--json"]
        let int8 = try CLI.run(args)
        XCTAssertEqual(int8.status, 0, int8.stderr)
        let diff = try XCTUnwrap(try lastJSON(int8)["max_abs_logit_diff"] as? Double)
        XCTAssertGreaterThan(diff, 0, "the policy's int8 KV cache is used")
        let flag = try CLI.run(args.filter { $0 != policy.path && $0 != "--attention-policy" } + ["--kv", "int8"])
        XCTAssertEqual(try lastJSON(flag)["max_abs_logit_diff"] as? Double, diff, "the same compile as --kv int8")
        let f32 = try CLI.run(args + ["--kv", "f32"])
        XCTAssertEqual(f32.status, 0, f32.stderr)
        XCTAssertEqual(try lastJSON(f32)["max_abs_logit_diff"] as? Double, 0, "--kv f32 wins over the file: flash against flash")

        for (text, fragment) in [
            (#"{"kv": "fp8"}"#, "kv: KV format must be one of f32, bf16, int8, got 'fp8'"),
            (#"{"kv": 8}"#, "'kv' must be a string"),
            (#"{"weights": "int4"}"#, "weights: --weights expects auto, f32, bf16, int8 or q4"),
        ] {
            try Data(text.utf8).write(to: policy)
            let bad = try CLI.run(["run", deep, "--tokens", "1", "--attention-policy", policy.path])
            XCTAssertNotEqual(bad.status, 0, text)
            XCTAssertTrue(bad.stderr.contains(fragment), "\(text): \(bad.stderr)")
            XCTAssertEqual(bad.stderr.split(separator: "\n").count, 1, bad.stderr)
        }
    }

    /// `bench model` with the policy `text` and with `flags` instead: the same compile, so the
    /// same difference to the dense one (> 0). Returns the bench arguments, the policy file
    /// and that difference.
    func benchPolicyAsFlags(_ text: String, _ flags: [String], in dir: URL) throws -> (bench: [String], policy: URL, diff: Double) {
        let policy = dir.appendingPathComponent("policy.json")
        try Data(text.utf8).write(to: policy)
        let tokens = (1...24).map(String.init).joined(separator: ",")
        let bench = ["bench", "model", deep, "--tokens", tokens, "--decode", "4", "--repeats", "1", "--json"]
        let fromFile = try CLI.run(bench + ["--attention-policy", policy.path])
        XCTAssertEqual(fromFile.status, 0, fromFile.stderr)
        let diff = try XCTUnwrap(try lastJSON(fromFile)["max_abs_logit_diff"] as? Double)
        XCTAssertGreaterThan(diff, 0, "the policy's formats are used")
        XCTAssertEqual(try lastJSON(try CLI.run(bench + flags))["max_abs_logit_diff"] as? Double, diff, "the same compile as \(flags)")
        return (bench, policy, diff)
    }

    /// A policy's "weights_for" rules (what the tuner's group search writes) compile as the
    /// same `--weights-for` flags do; `--weights` or `--weights-for` replaces them.
    func testPolicyWeightRulesApplyUnlessWeightFlagsAreGiven() throws {
        let dir = try CLI.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let (bench, policy, diff) = try benchPolicyAsFlags(#"{"default": "flash", "weights_for": ["model.layers.1.=int8", "lm_head.weight=q4"]}"#,
                                                           ["--weights-for", "model.layers.1.=int8", "--weights-for", "lm_head.weight=q4"], in: dir)
        let oneFlag = try CLI.run(bench + ["--attention-policy", policy.path, "--weights-for", "model.layers.1.=int8"])
        let layerOnly = try XCTUnwrap(try lastJSON(oneFlag)["max_abs_logit_diff"] as? Double)
        XCTAssertGreaterThan(layerOnly, 0)
        XCTAssertNotEqual(layerOnly, diff, "--weights-for replaces the file's rules, lm_head stays f32")
        let stored = try CLI.run(bench + ["--attention-policy", policy.path, "--weights", "auto"])
        XCTAssertEqual(try lastJSON(stored)["max_abs_logit_diff"] as? Double, 0, "--weights replaces them: the dense compile")

        try Data(#"{"weights_for": "lm_head=int8"}"#.utf8).write(to: policy)
        let bad = try CLI.run(["run", deep, "--tokens", "1", "--attention-policy", policy.path])
        XCTAssertNotEqual(bad.status, 0)
        XCTAssertTrue(bad.stderr.contains("'weights_for' must be a list of \"PATTERN=FORMAT\" strings"), bad.stderr)
    }

    /// A policy's "kv_layers" compile as the same `--layer-kv` flags do; `--kv` replaces them.
    func testPolicyKVLayersApplyUnlessKVFlagsAreGiven() throws {
        let dir = try CLI.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let (bench, policy, _) = try benchPolicyAsFlags(#"{"kv_layers": {"3": "int8", "5": "bf16"}}"#,
                                                        ["--layer-kv", "3=int8", "--layer-kv", "5=bf16"], in: dir)
        let f32 = try CLI.run(bench + ["--attention-policy", policy.path, "--kv", "f32"])
        XCTAssertEqual(try lastJSON(f32)["max_abs_logit_diff"] as? Double, 0, "--kv replaces them")

        for (text, fragment) in [(#"{"kv_layers": {"x": "int8"}}"#, "kv_layers: 'x' is not a layer number"),
                                 (#"{"kv_layers": {"3": "fp8"}}"#, "kv_layers: layer 3: KV format must be one of f32, bf16, int8, got 'fp8'")] {
            try Data(text.utf8).write(to: policy)
            let bad = try CLI.run(["run", deep, "--tokens", "1", "--attention-policy", policy.path])
            XCTAssertNotEqual(bad.status, 0)
            XCTAssertTrue(bad.stderr.contains(fragment), "\(text): \(bad.stderr)")
        }
        let badFlag = try CLI.run(["run", deep, "--tokens", "1", "--layer-kv", "3:int8"])
        XCTAssertTrue(badFlag.stderr.contains("--layer-kv expects LAYER=FORMAT, got '3:int8'"), badFlag.stderr)
    }

    /// `attune tune` prints the group search step by step and writes its rules; the policy runs.
    func testTunePrintsTheGroupSearchAndWritesItsRules() throws {
        let dir = try CLI.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let llama = CompilerCLITests.fixtures.appendingPathComponent("llama").path
        let data = dir.appendingPathComponent("tokens.npy"), out = dir.appendingPathComponent("p.json")
        try Npy.writeIntegers((0..<96).map { Int64($0 * 37 % 128) }, shape: [2, 48], to: data)
        let tune = ["tune", llama, "--data", data.path, "-o", out.path, "--candidate", "flash", "--error-budget", "kl=0.001",
                    "--weights-candidates", "int8", "--format-gain", "bytes"]
        let r = try CLI.run(tune)
        XCTAssertEqual(r.status, 0, r.stderr)
        let lines = r.stdout.split(separator: "\n").map(String.init)
        XCTAssertTrue(lines.contains { $0.hasPrefix("format     weights=int8: over kl=0.001 (KL ") }, r.stdout)
        XCTAssertEqual(lines.filter { $0.hasPrefix("weights    int8 alone on ") }.count, 10, r.stdout)
        let chosen = try XCTUnwrap(lines.first { $0.hasPrefix("format     weights=int8 on ") }, r.stdout)
        XCTAssertTrue(chosen.contains("of 10 groups: chosen: 377.1 kB → "), chosen)
        let policy = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(contentsOf: out)) as? [String: Any])
        let rules = try XCTUnwrap(policy["weights_for"] as? [String])
        XCTAssertEqual(lines.first { $0.hasPrefix("weights_for ") }, "weights_for " + rules.joined(separator: " "))
        let run = try CLI.run(["run", llama, "--tokens", "1,2,3", "--attention-policy", out.path])
        XCTAssertEqual(run.status, 0, run.stderr)
        // Compiled from the policy, every matmul weight a rule names is int8 in the manifest, the others f32.
        let compiled = dir.appendingPathComponent("compiled")
        let compile = try CLI.run(["compile", llama, "-o", compiled.path, "--attention-policy", out.path, "--max-context", "64"])
        XCTAssertEqual(compile.status, 0, compile.stderr)
        let manifest = try String(contentsOf: compiled.appendingPathComponent("weights.manifest"), encoding: .utf8)
        let patterns = rules.map { String($0.prefix { $0 != "=" }) }
        var int8 = 0
        for line in manifest.split(separator: "\n") where line.hasPrefix("part ") && !line.contains("norm") {
            let fields = line.split(separator: " ").map(String.init)   // part FILE OFFSET FORMAT COUNT NAME
            let named = patterns.contains { fields[5].contains($0) }
            XCTAssertEqual(fields[3], named ? "int8_g32_f16" : "f32", String(line))
            if named { int8 += 1 }
        }
        XCTAssertGreaterThan(int8, 0)

        let whole = try CLI.run(tune + ["--no-format-groups"])
        XCTAssertEqual(whole.status, 0, whole.stderr)
        XCTAssertFalse(whole.stdout.contains("weights    "), whole.stdout)
        XCTAssertNil((try JSONSerialization.jsonObject(with: Data(contentsOf: out)) as? [String: Any])?["weights_for"])
    }

    /// Format candidates need an end-to-end budget, and bad ones are named before any work.
    func testTuneFormatCandidateRefusals() throws {
        let dir = try CLI.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let data = URL(fileURLWithPath: deep).appendingPathComponent("calibration_tokens.npy").path
        let out = dir.appendingPathComponent("p.json").path
        for (extra, fragment) in [
            (["--kv-candidates", "int8"], "--kv-candidates / --weights-candidates need an end-to-end --error-budget (kl=, ppl= or top1=)"),
            (["--kv-candidates", "int8,fp8", "--error-budget", "kl=0.01"], "--kv-candidates: KV format must be one of f32, bf16, int8, got 'fp8'"),
            (["--weights-candidates", "int8:group=48", "--error-budget", "kl=0.01"], "--weights-candidates: --weights int8: group must be a positive multiple of 32, got '48'"),
            (["--weights-candidates", "int8", "--error-budget", "kl=0.01", "--format-gain", "fast"], "--format-gain must be speed or bytes, got 'fast'"),
        ] {
            let r = try CLI.run(["tune", deep, "--data", data, "-o", out] + extra)
            XCTAssertNotEqual(r.status, 0, extra.joined(separator: " "))
            XCTAssertTrue(r.stderr.contains(fragment), "\(extra): \(r.stderr)")
            XCTAssertEqual(r.stderr.split(separator: "\n").count, 1, r.stderr)
            XCTAssertFalse(FileManager.default.fileExists(atPath: out))
        }
    }
}
