import AttuneTensor
import Foundation
import XCTest

/// `attune run --document-lengths`: several documents in one packed prefill, each seeing
/// only itself at positions from 0, must give every document the logits it has alone (the
/// separate runs are the ones `CompiledVsTransformersTests` holds to transformers).
final class PackedRunCLITests: XCTestCase {
    let fixtures = CompilerCLITests.fixtures
    /// A 1-token document among longer ones; 9 and 12 exceed the fixtures' window of 6.
    let documents: [[Int]] = [[1, 17, 42, 99, 3, 64, 127, 8, 55], [23], [77, 0, 91, 34, 110, 12, 5, 6, 7, 8, 9, 10], [40, 41, 42, 43, 44]]

    func lastJSON(_ r: CLIResult) throws -> [String: Any] {
        let last = r.stdout.split(separator: "\n").last.map(String.init) ?? ""
        return try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(last.utf8)) as? [String: Any], last)
    }

    func ids(_ tokens: [Int]) -> String { tokens.map(String.init).joined(separator: ",") }

    /// The packed run's logits at every position (and its report of each document's last
    /// row) against a run of each document alone with the same compile options.
    func checkPackedEqualsSeparate(_ model: String, _ options: [String] = [], file: StaticString = #filePath, line: UInt = #line) throws {
        let path = model.hasPrefix("/") ? model : fixtures.appendingPathComponent(model).standardizedFileURL.path
        let dir = try CLI.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let lengths = documents.map { String($0.count) }.joined(separator: ",")
        let all = documents.flatMap { $0 }
        let packedOut = dir.appendingPathComponent("packed.npy")
        let full = try CLI.run(["run", path, "--tokens", ids(all), "--document-lengths", lengths, "--logits-out", packedOut.path, "--json"] + options)
        XCTAssertEqual(full.status, 0, full.stderr, file: file, line: line)
        // Without --logits-out only each document's last row is projected to the vocabulary.
        let lastOnly = try CLI.run(["run", path, "--tokens", ids(all), "--document-lengths", lengths, "--json"] + options)
        XCTAssertEqual(lastOnly.status, 0, lastOnly.stderr, file: file, line: line)
        let packed = try Npy.read(contentsOf: packedOut)
        XCTAssertEqual(packed.shape, [all.count, 128], file: file, line: line)
        // Each document's report, from both packed prefills.
        let reports = try [full, lastOnly].map { try XCTUnwrap(try lastJSON($0)["documents"] as? [[String: Any]], file: file, line: line) }
        XCTAssertEqual(reports.map(\.count), [documents.count, documents.count], file: file, line: line)
        var at = 0
        for (d, doc) in documents.enumerated() {
            let aloneOut = dir.appendingPathComponent("alone\(d).npy")
            let alone = try CLI.run(["run", path, "--tokens", ids(doc), "--max-new-tokens", "1", "--logits-out", aloneOut.path, "--json"] + options)
            XCTAssertEqual(alone.status, 0, alone.stderr, file: file, line: line)
            let expected = try Npy.read(contentsOf: aloneOut)
            let got = Array(packed.data[at * 128..<(at + doc.count) * 128])
            let worst = zip(got, expected.data).map { abs($0 - $1) }.max() ?? .infinity
            XCTAssertLessThanOrEqual(worst, 1e-5, "\(model) document \(d): max |packed - alone| over its \(doc.count) positions", file: file, line: line)
            let generated = try XCTUnwrap(try lastJSON(alone)["generated"] as? [Int], file: file, line: line)
            let lastLogit = Double(expected.data[(doc.count - 1) * 128 + generated[0]])
            for report in reports.map({ $0[d] }) {
                XCTAssertEqual(report["next_token"] as? Int, generated.first, "\(model) document \(d)'s greedy next token", file: file, line: line)
                XCTAssertEqual(report["prompt_tokens"] as? Int, doc.count, file: file, line: line)
                XCTAssertEqual(report["next_logit"] as? Double ?? .nan, lastLogit, accuracy: 1e-5, file: file, line: line)
            }
            at += doc.count
        }
    }

    func testPackedDocumentsEqualSeparateRuns() throws {
        try checkPackedEqualsSeparate("llama")
        // Chunks of 3 rows cross the documents' boundaries, and the last chunk is one row.
        try checkPackedEqualsSeparate("llama", ["--max-chunk", "3"])
    }

    /// Sliding windows (mistral), soft-capping with alternating windows (Gemma 2), sigmoid
    /// attention: the masks compose with each, and a window counts positions within the document.
    func testPackedDocumentsWithWindowsSoftcapAndSigmoid() throws {
        for model in ["mistral", "gemma2", "llama_sigmoid"] { try checkPackedEqualsSeparate(model) }
    }

    /// Transformers' own logits: each fixture's golden sequences (computed one at a time, in
    /// float64) packed as documents of one prompt. Qwen3 (q/k norms), Phi-3 (fused QKV,
    /// window) and YaRN scaling besides llama. `--weights f32`: transformers upcasts the bf16
    /// checkpoints (qwen3) to f32, where `auto` would run the bf16 GEMM on them.
    func testPackedGoldenSequencesMatchTransformers() throws {
        for model in ["llama", "qwen3", "phi3", "llama_rope_yarn"] {
            let folder = fixtures.appendingPathComponent(model)
            let golden = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(contentsOf: folder.appendingPathComponent("golden.json"))) as? [String: Any])
            let sequences = try XCTUnwrap(golden["sequences"] as? [[String: Any]])
            let prompts = try sequences.map { try XCTUnwrap($0["input_ids"] as? [Int]) }
            let dir = try CLI.temporaryDirectory()
            defer { try? FileManager.default.removeItem(at: dir) }
            let out = dir.appendingPathComponent("packed.npy")
            let r = try CLI.run(["run", folder.path, "--tokens", ids(prompts.flatMap { $0 }),
                                 "--document-lengths", prompts.map { String($0.count) }.joined(separator: ","), "--logits-out", out.path,
                                 "--weights", "f32", "--json"])
            XCTAssertEqual(r.status, 0, r.stderr)
            let packed = try Npy.read(contentsOf: out), vocab = packed.shape[1]
            let reports = try XCTUnwrap(try lastJSON(r)["documents"] as? [[String: Any]])
            var at = 0
            for (d, sequence) in sequences.enumerated() {
                let expected = try Npy.read(contentsOf: folder.appendingPathComponent(try XCTUnwrap(sequence["logits_f64"] as? String)))
                let got = packed.data[at * vocab..<(at + prompts[d].count) * vocab]
                let worst = zip(got, expected.data).map { abs($0 - $1) }.max() ?? .infinity
                XCTAssertLessThanOrEqual(worst, 1e-4, "\(model) sequence \(d) packed against transformers")
                XCTAssertEqual(reports[d]["next_token"] as? Int, (sequence["greedy_new_ids"] as? [Int])?.first, "\(model) sequence \(d)")
                at += prompts[d].count
            }
        }
    }

    /// ALiBi (an IR fixture): its bias counts key distances within the document.
    func testPackedDocumentsWithALiBi() throws {
        try checkPackedEqualsSeparate("../ir/llama_alibi/model.attn")
    }

    /// RoPE only sees relative positions, so it cannot tell whether each document's positions
    /// restart at 0. Absolute position embeddings can: the tiny llama graph with its token
    /// table also embedding the positions (GPT-2's learned position embeddings, in shape).
    func testPositionsRestartInEachDocument() throws {
        let source = fixtures.appendingPathComponent("../ir/llama_alibi")
        var graph = try String(contentsOf: source.appendingPathComponent("model.attn"), encoding: .utf8)
        graph = graph.replacingOccurrences(of: "alibi = true, ", with: "")
            .replacingOccurrences(of: "rms_norm(%3, %4)", with: "rms_norm(%h, %4)")
            .replacingOccurrences(of: "add_rms_norm(%3, ", with: "add_rms_norm(%h, ")
            .replacingOccurrences(of: "  # model.embed_tokens\n  %4 =", with: "  # model.embed_tokens\n"
                + "  %pe = embedding(%2, %1) : f32[seq, 64]\n  %h = add(%3, %pe) : f32[seq, 64]\n  %4 =")
        XCTAssertTrue(graph.contains("%pe = embedding(%2, %1)") && !graph.contains("(%3, %4)"), "the edit applied")
        let dir = try CLI.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        try graph.replacingOccurrences(of: "graph llama_alibi", with: "graph llama_positions")
            .write(to: dir.appendingPathComponent("model.attn"), atomically: true, encoding: .utf8)
        try FileManager.default.copyItem(at: source.appendingPathComponent("model.safetensors"), to: dir.appendingPathComponent("model.safetensors"))
        try checkPackedEqualsSeparate(dir.appendingPathComponent("model.attn").path)
    }

    /// Every mistake in the lengths, or a run that cannot be packed, is one line before the
    /// model is even read (the model path does not exist).
    /// `--stats` reports what the document mask saved: the tiles it hid are exactly those the
    /// causal mask alone computes in excess (one document over the same tokens), and a
    /// packed run of long documents skips some.
    func testStatsReportTheTilesTheDocumentMaskSkipped() throws {
        let example = fixtures.appendingPathComponent("example").standardizedFileURL.path
        let tokens = ids((0..<600).map { $0 % 200 + 1 })
        func tiles(_ lengths: String) throws -> [String: Int] {
            let r = try CLI.run(["run", example, "--tokens", tokens, "--document-lengths", lengths, "--stats", "--json"])
            XCTAssertEqual(r.status, 0, r.stderr)
            XCTAssertTrue(r.stdout.contains("masks      "), r.stdout)
            return try XCTUnwrap(try lastJSON(r)["mask_tiles"] as? [String: Int], r.stdout)
        }
        let one = try tiles("600"), three = try tiles("200,200,200")
        XCTAssertEqual(one["skipped"], 0)
        XCTAssertGreaterThan(one["computed"] ?? 0, 0)
        XCTAssertGreaterThan(three["skipped"] ?? 0, 0)
        XCTAssertEqual((three["computed"] ?? 0) + (three["skipped"] ?? 0), one["computed"], "packed tiles computed + skipped = the causal mask's tiles")
        XCTAssertEqual(three["partial"], 0, "document ids keep each row's keys one interval: no tile needs the element mask")
    }

    func testBadDocumentLengthsAreOneLineErrorsBeforeCompiling() throws {
        let missing = "/nonexistent/model"
        let cases: [([String], String)] = [
            (["--tokens", "1,2,3", "--document-lengths", "2,x"], "--document-lengths: 'x' is not an integer"),
            (["--tokens", "1,2,3", "--document-lengths", "1.5,1.5"], "--document-lengths: '1.5' is not an integer"),
            (["--tokens", "1,2,3", "--document-lengths", "3,0"], "--document-lengths: lengths must be >= 1, got 0"),
            (["--tokens", "1,2,3", "--document-lengths", "4,-1"], "--document-lengths: lengths must be >= 1, got -1"),
            (["--tokens", "1,2,3", "--document-lengths", "2,,1"], "--document-lengths: '' is not an integer"),
            (["--tokens", "1,2,3", "--document-lengths", "2,2"], "--document-lengths: 2,2 sum to 4, but the prompt has 3 tokens"),
            (["--tokens", "1,2,3", "--document-lengths", "1,2", "--max-new-tokens", "4"], "generates nothing"),
            (["--tokens", "1,2,3", "--document-lengths", "1,2", "--temperature", "0.7"], "sampling flags need generation"),
            (["--tokens", "1,2", "--tokens", "3", "--document-lengths", "1,1"], "packs one prompt's tokens; 2 prompts were given"),
            (["--prompt", "hello", "--document-lengths", "1"], "give the documents' ids as one --tokens prompt"),
        ]
        for (args, message) in cases {
            let r = try CLI.run(["run", missing] + args)
            XCTAssertEqual(r.status, 1, "\(args)")
            XCTAssertTrue(r.stderr.contains(message), "\(args): \(r.stderr)")
            XCTAssertEqual(r.stderr.split(separator: "\n").count, 1, "one line: \(r.stderr)")
            XCTAssertEqual(r.stdout, "", "nothing ran: \(r.stdout)")
        }
    }

    /// A kernel that takes no document mask, forced by the user, and RoPE whose table
    /// depends on the pass's length are refused after code generation, before the build.
    func testModelsThatCannotPackAreRefusedBeforeTheBuild() throws {
        let llama = fixtures.appendingPathComponent("llama").path
        let kascade = try CLI.run(["run", llama, "--tokens", "1,2,3,4", "--document-lengths", "2,2", "--attention", "kascade"])
        XCTAssertEqual(kascade.status, 1)
        XCTAssertTrue(kascade.stderr.contains("this model cannot run packed documents: layer 1: kascade does not implement document or block masks (masks); flash, unified_max, sigmoid and sparge do"), kascade.stderr)
        XCTAssertFalse(kascade.stdout.contains("compile "), "no build: \(kascade.stdout)")
        let dynamic = try CLI.run(["run", fixtures.appendingPathComponent("llama_rope_dynamic").path, "--tokens", "1,2,3,4", "--document-lengths", "2,2"])
        XCTAssertEqual(dynamic.status, 1)
        XCTAssertTrue(dynamic.stderr.contains("this model cannot run packed documents: its RoPE table depends on each pass's length"), dynamic.stderr)
    }
}
