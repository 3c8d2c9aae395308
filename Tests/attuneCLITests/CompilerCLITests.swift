import AttuneTensor
import Foundation
import XCTest

/// `attune compile`, `run` and `inspect` on the bundled fixture models, as a user runs them.
final class CompilerCLITests: XCTestCase {
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures/models")
    let llama = fixtures.appendingPathComponent("llama").path
    let prompt = "1,17,42,99,3,64,127,8,55,23,77,0,91,34,110,12"

    func testRunGeneratesLikeTransformersAndWritesLogits() throws {
        let dir = try CLI.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let logits = dir.appendingPathComponent("logits.npy")
        let r = try CLI.run(["run", llama, "--tokens", prompt, "--max-new-tokens", "8", "--logits-out", logits.path, "--json"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let last = r.stdout.split(separator: "\n").last.map(String.init) ?? ""
        let json = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(last.utf8)) as? [String: Any], last)
        XCTAssertEqual(json["generated"] as? [Int], [60, 28, 27, 83, 88, 13, 115, 82])  // transformers' greedy ids (golden.json)
        for key in ["prefill_ms", "decode_ms_per_token"] { XCTAssertGreaterThan(json[key] as? Double ?? 0, 0, key) }
        let written = try Npy.read(contentsOf: logits)
        XCTAssertEqual(written.shape, [16, 128])
        let golden = try Npy.read(contentsOf: Self.fixtures.appendingPathComponent("llama/logits_0.npy"))
        XCTAssertLessThanOrEqual(zip(written.data, golden.data).map { abs($0 - $1) }.max()!, 1e-4)
    }

    /// Gemma 2 (soft-capped attention and logits, alternating windows) through `attune run`:
    /// transformers' greedy ids and logits.
    func testRunGeneratesGemma2LikeTransformers() throws {
        let dir = try CLI.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let logits = dir.appendingPathComponent("logits.npy")
        let gemma = Self.fixtures.appendingPathComponent("gemma2")
        let r = try CLI.run(["run", gemma.path, "--tokens", prompt, "--max-new-tokens", "8", "--logits-out", logits.path, "--json"])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stdout.contains("\"generated\":[1,115,12,120,120,120,120,120]"), r.stdout)  // golden.json
        let golden = try Npy.read(contentsOf: gemma.appendingPathComponent("logits_0.npy"))
        XCTAssertLessThanOrEqual(zip(try Npy.read(contentsOf: logits).data, golden.data).map { abs($0 - $1) }.max()!, 1e-4)
    }

    /// `--weights int8`: the logits stay within int8's bound of transformers' float64 ones
    /// (32/254 of the largest |logit|, NUMERICS.md), the greedy ids are transformers' where
    /// the float64 margins allow it, and layouts the widths cannot hold are refused.
    func testRunWithInt8Weights() throws {
        let dir = try CLI.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let logits = dir.appendingPathComponent("logits.npy")
        let r = try CLI.run(["run", llama, "--tokens", prompt, "--max-new-tokens", "8", "--logits-out", logits.path, "--weights", "int8", "--json"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let last = r.stdout.split(separator: "\n").last.map(String.init) ?? ""
        let json = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(last.utf8)) as? [String: Any], last)
        let golden = try Npy.read(contentsOf: Self.fixtures.appendingPathComponent("llama/logits_0_f64.npy"))
        let written = try Npy.read(contentsOf: logits)
        let scale = Double(golden.data.map(abs).max()!)
        let err = Double(zip(written.data, golden.data).map { abs($0 - $1) }.max()!)
        XCTAssertLessThanOrEqual(err, 32.0 / 254 * scale)
        XCTAssertGreaterThan(err, 1e-4, "int8 weights are not the f32 model")
        // transformers' first greedy id (golden.json) comes from the prompt's last logits row:
        // asserted when that row's float64 top-2 margin exceeds twice its error (it does here).
        let row = golden.data.suffix(128).map(Double.init).sorted(by: >)
        let rowErr = Double(zip(written.data.suffix(128), golden.data.suffix(128)).map { abs($0 - $1) }.max()!)
        XCTAssertGreaterThan(row[0] - row[1], 2 * rowErr)
        XCTAssertEqual((json["generated"] as? [Int])?.first, 60)

        let group = try CLI.run(["run", llama, "--tokens", "1,2", "--weights", "int8:group=96"])
        XCTAssertNotEqual(group.status, 0)
        XCTAssertEqual(group.stderr.trimmingCharacters(in: .whitespacesAndNewlines),
                       "error: --weights int8:group=96,scale=f16: weight 'model.embed_tokens.weight' has rows of 64 weights: int8 weights: the group size must be a multiple of 32 that divides the input width")
        for (value, message) in [("int8:group=40", "--weights int8: group must be a positive multiple of 32, got '40'"),
                                 ("int4", "--weights expects auto, f32, bf16, int8 or q4 (int8 and q4 take [:group=N,scale=f16|f32]), got 'int4'"),
                                 ("q4:group=33", "--weights q4: group must be a positive multiple of 32, got '33'")] {
            let bad = try CLI.run(["run", llama, "--tokens", "1,2", "--weights", value])
            XCTAssertNotEqual(bad.status, 0)
            XCTAssertEqual(bad.stderr.trimmingCharacters(in: .whitespacesAndNewlines), "error: " + message)
        }
    }

    /// `--weights q4` against the f32 run of the same prompt: per position, the KL
    /// divergence of the q4 next-token distribution from the f32 one, and top-1 agreement
    /// (NUMERICS.md "4-bit weights": bounds about 1.5x the measured figures on this random
    /// fixture, whose near-flat logits make 4-bit rounding show more than a trained model's).
    func testRunWithQ4WeightsAgainstTheF32Run() throws {
        let dir = try CLI.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        var rows: [String: [[Double]]] = [:]
        for weights in ["f32", "q4"] {
            let logits = dir.appendingPathComponent("\(weights).npy")
            let r = try CLI.run(["run", llama, "--tokens", prompt, "--max-new-tokens", "1", "--logits-out", logits.path, "--weights", weights])
            XCTAssertEqual(r.status, 0, r.stderr)
            let t = try Npy.read(contentsOf: logits)
            rows[weights] = (0..<t.shape[0]).map { i in t.data[(i * t.shape[1])..<((i + 1) * t.shape[1])].map(Double.init) }
        }
        let (f32, q4) = (rows["f32"]!, rows["q4"]!)
        var kls: [Double] = [], agree = 0
        for (p, q) in zip(f32, q4) {
            func logSoftmax(_ z: [Double]) -> [Double] {
                let m = z.max()!
                let l = log(z.reduce(0) { $0 + exp($1 - m) }) + m
                return z.map { $0 - l }
            }
            let (lp, lq) = (logSoftmax(p), logSoftmax(q))
            kls.append(zip(lp, lq).reduce(0) { $0 + exp($1.0) * ($1.0 - $1.1) })
            if q.indices.max(by: { q[$0] < q[$1] }) == p.indices.max(by: { p[$0] < p[$1] }) { agree += 1 }
        }
        let meanKL = kls.reduce(0, +) / Double(kls.count)
        print("q4 vs f32 (llama fixture): KL mean \(meanKL), max \(kls.max()!) nats; top-1 equal at \(agree) of \(f32.count) positions")
        // Measured 0.28 mean, 0.65 max, 6 of 16 (int8 on the same prompt: 0.0014, 0.0056, 16 of 16).
        XCTAssertLessThanOrEqual(meanKL, 0.45)
        XCTAssertLessThanOrEqual(kls.max()!, 1.0)
        XCTAssertGreaterThanOrEqual(agree, 4)
        XCTAssertGreaterThan(meanKL, 0, "q4 weights are not the f32 model")
    }

    func testCompileWritesLibraryAndStandaloneFolder() throws {
        let dir = try CLI.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let so = try CLI.run(["compile", llama, "-o", dir.appendingPathComponent("so").path])
        XCTAssertEqual(so.status, 0, so.stderr)
        for file in ["libllama.so", "weights.manifest", "llama.h", "llama.c"] {
            XCTAssertTrue(FileManager.default.fileExists(atPath: dir.appendingPathComponent("so/\(file)").path), file)
        }
        let c = try CLI.run(["compile", llama, "-o", dir.appendingPathComponent("c").path, "--emit", "c"])
        XCTAssertEqual(c.status, 0, c.stderr)
        for file in ["llama.c", "llama.h", "weights.manifest", "Makefile", "run-model.c", "kernels/flash.c", "kernels/include/attune_attention.h"] {
            XCTAssertTrue(FileManager.default.fileExists(atPath: dir.appendingPathComponent("c/\(file)").path), file)
        }
    }

    func testInspectShowsPassesKernelsAndC() throws {
        let summary = try CLI.run(["inspect", llama])
        XCTAssertEqual(summary.status, 0, summary.stderr)
        XCTAssertTrue(summary.stdout.contains("fuse-attention"), summary.stdout)
        XCTAssertTrue(summary.stdout.contains("qkv_rope("), summary.stdout)

        let before = try CLI.run(["inspect", llama, "--after", "import"])
        XCTAssertTrue(before.stdout.contains("softmax("), "the imported graph is unfused")
        let after = try CLI.run(["inspect", llama, "--after", "fuse-attention"])
        XCTAssertFalse(after.stdout.contains("softmax("), "attention recognised")
        XCTAssertTrue(after.stdout.contains("attention("))

        let kernels = try CLI.run(["inspect", llama, "--kernels", "--attention", "flash:block_kv=64"])
        XCTAssertEqual(kernels.status, 0, kernels.stderr)
        let lines = kernels.stdout.split(separator: "\n")
        XCTAssertEqual(lines.count, 2, "one line per attention node")
        XCTAssertTrue(lines.allSatisfy { $0.contains("flash block_kv=64") }, kernels.stdout)

        let c = try CLI.run(["inspect", llama, "--c"])
        XCTAssertTrue(c.stdout.contains("attune_flash_attention(&p, &t, &params, &status)"))
    }

    /// An `.attn` graph (here: the llama fixture as printed after the pipeline) runs with
    /// the weights of the `.safetensors` file of the same name.
    func testAttnTextGraphRunsWithSiblingWeights() throws {
        let dir = try CLI.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let snapshots = Self.fixtures.deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("Snapshots")
        try FileManager.default.copyItem(at: snapshots.appendingPathComponent("llama.attn"), to: dir.appendingPathComponent("tiny.attn"))
        let r0 = try CLI.run(["run", dir.appendingPathComponent("tiny.attn").path, "--tokens", prompt])
        XCTAssertNotEqual(r0.status, 0)
        XCTAssertTrue(r0.stderr.contains("tiny.safetensors"), r0.stderr)
        try FileManager.default.copyItem(at: Self.fixtures.appendingPathComponent("llama/model.safetensors"),
                                         to: dir.appendingPathComponent("tiny.safetensors"))
        let r = try CLI.run(["run", dir.appendingPathComponent("tiny.attn").path, "--tokens", prompt, "--max-new-tokens", "8", "--json"])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stdout.contains("\"generated\":[60,28,27,83,88,13,115,82]"), r.stdout)
    }

    func testErrorsAreOneClearLine() throws {
        let bad: [([String], String)] = [
            (["run", "/nonexistent", "--tokens", "1"], "no such file or folder"),
            (["run", llama, "--tokens", "1,x"], "'x' is not an integer"),
            (["run", llama, "--tokens", "1,500"], "token 2 is 500, outside the vocabulary of 128 (ids 0...127)"),
            (["run", llama, "--tokens", "1,2,3", "--tokens", "1,2,-4"], "token 3 of prompt 2 is -4, outside the vocabulary of 128"),
            (["run", llama, "--tokens", "1", "--attention", "nope"], "nope"),
            (["inspect", llama, "--after", "no-such-pass"], "no pass named 'no-such-pass'"),
            (["compile", llama, "-o", "/tmp/x", "--emit", "exe"], "--emit must be so or c"),
            (["run", llama, "--tokens", "1,2,3", "--max-new-tokens", "10", "--max-context", "8"], "exceed the context of 8"),
            // Values the C kernels receive as float or int32 must fit them (1e300 became `inf` in the C).
            (["compile", llama, "-o", "/tmp/attune-never-written", "--emit", "c", "--attention", "unified_max:phi=1e300"],
             "parameter 'phi' of kernel 'unified_max' must be finite in fp32"),
            (["run", llama, "--tokens", "1", "--attention", "flash:block_kv=1e12"], "must be an integer of at most 2147483647"),
            // OpenMP tries to start as many threads as asked: 100 000 hung the machine.
            (["run", llama, "--tokens", "1", "--attention", "flash:threads=100000"], "parameter 'threads' of kernel 'flash' must be in 0...1024, got 100000"),
            (["bench", "attention", "--kernel", "flash", "--threads", "100000"], "--threads must be in 0...1024"),
            // A negative number is a value to check, not an unknown flag ("Missing value for '--window'").
            (["bench", "attention", "--kernel", "flash", "--q-len", "64", "--window", "-2"], "window must be >= 1 (or 0 for none), got -2"),
            // Shapes that cannot fit are refused before allocating (this one ended in a Swift trap).
            (["bench", "attention", "--kernel", "flash", "--q-len", "10000000"], "Lq10000000 Lk10000000 d128 needs 152.9 GiB;"),
            (["tune", "--kernel", "flash", "--heads", "64", "--q-len", "100000000"], "of memory is available"),
            // Found by CLIFuzzTests: a mistyped head dim started minutes of work.
            (["bench", "attention", "--kernel", "flash", "--head-dim", "100000"], "qk_dim = 100000 is above 4096, the largest head dim Attune's kernels take"),
            (["run", llama, "--tokens", "1", "--max-context", "1000000000"], "--max-context 1000000000 (the f32 KV cache) needs 476.8 GiB"),
            // Output paths are checked before the work (the data file here does not even exist).
            (["calibrate", llama, "--data", "/nonexistent.npy", "-o", "/etc/hostname/c.json"], "-o /etc/hostname/c.json: /etc/hostname is a file, not a folder"),
            (["compile", llama, "-o", "/etc/hostname/out"], "-o /etc/hostname/out: /etc/hostname is a file, not a folder"),
            // Found by CLIFuzzTests: an empty path wrote the model into the current folder.
            (["compile", llama, "-o", "", "--emit", "c"], "-o: an empty path; give a folder"),
            (["run", llama, "--tokens", "1", "--logits-out", ""], "--logits-out: an empty path; give a file"),
            (["check", "--report", "/etc/hostname/r.html"], "--report /etc/hostname/r.html: /etc/hostname is a file"),
            (["tune", "--export", "/etc/hostname/x.json"], "--export /etc/hostname/x.json: /etc/hostname is a file"),
            (["run", llama, "--tokens", "1", "--logits-out", "/tmp"], "--logits-out /tmp: is a folder"),
            (["run", llama, "--tokens", "1", "--layer-attention", "7=flash"], "names layer 7, but the model has layers 0...1"),
        ]
        for (args, needle) in bad {
            let r = try CLI.run(args)
            XCTAssertNotEqual(r.status, 0, "\(args)")
            XCTAssertTrue(r.stderr.contains(needle), "\(args): '\(r.stderr)' should mention '\(needle)'")
            XCTAssertFalse(r.stderr.contains("Fatal error"), "\(args) crashed")
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: "/tmp/attune-never-written"), "refused before any output")
    }
}
