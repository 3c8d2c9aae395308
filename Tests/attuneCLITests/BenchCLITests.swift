import Foundation
import XCTest

final class BenchCLITests: XCTestCase {
    func testJSONLastLineHasTheDocumentedKeys() throws {
        let r = try CLI.run(["bench", "attention", "--kernel", "flash", "--heads", "4", "--kv-heads", "2", "--q-len", "64",
                             "--kv-len", "256", "--head-dim", "64", "--causal", "--repeats", "3", "--json"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let last = r.stdout.split(separator: "\n").last.map(String.init) ?? ""
        let object = try JSONSerialization.jsonObject(with: Data(last.utf8)) as? [String: Any]
        let json = try XCTUnwrap(object, "last line is not a JSON object: \(last)")
        for key in ["ms_median", "ms_min", "ms_max", "gflops", "kv_gbps", "sgemm_gflops", "read_gbps"] {
            let value = try XCTUnwrap(json[key] as? Double, "missing \(key)")
            XCTAssertGreaterThan(value, 0, key)
        }
        let min = json["ms_min"] as! Double, median = json["ms_median"] as! Double, max = json["ms_max"] as! Double
        XCTAssertLessThanOrEqual(min, median)
        XCTAssertLessThanOrEqual(median, max)
    }

    /// --kv int8: GB/s counts the stored bytes (1 per element plus a 4-byte scale per key
    /// and kv head), so the same time gives a quarter-and-a-bit of f32's bytes.
    func testKVFormatCountsStoredBytes() throws {
        let r = try CLI.run(["bench", "attention", "--kernel", "flash", "--heads", "4", "--kv-heads", "2", "--q-len", "1",
                             "--kv-len", "1024", "--head-dim", "64", "--kv", "int8", "--repeats", "3", "--json"])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stdout.contains("K/V (int8)"), r.stdout)
        let last = r.stdout.split(separator: "\n").last.map(String.init) ?? ""
        let json = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(last.utf8)) as? [String: Any])
        XCTAssertTrue((json["problem"] as? String ?? "").contains("kv=int8"))
        let bytes = 2.0 * 2 * 1024 * (64 + 4)
        let ms = try XCTUnwrap(json["ms_median"] as? Double), gbps = try XCTUnwrap(json["kv_gbps"] as? Double)
        XCTAssertEqual(gbps, bytes / (ms * 1e-3) * 1e-9, accuracy: gbps * 1e-6)
    }

    /// --precision bf16: flash's bf16 prefill tiles, compared with f32 flash in the same run.
    func testPrecisionBF16IsComparedWithF32Flash() throws {
        let r = try CLI.run(["bench", "attention", "--kernel", "flash", "--heads", "2", "--q-len", "128", "--head-dim", "64",
                             "--causal", "--precision", "bf16", "--repeats", "2", "--json"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let last = r.stdout.split(separator: "\n").last.map(String.init) ?? ""
        let json = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(last.utf8)) as? [String: Any])
        XCTAssertEqual((json["parameters"] as? [String: Any])?["precision"] as? Double, 1)
        let versus = try XCTUnwrap(json["versus_flash"] as? [String: Any], "no versus_flash in \(last)")
        let relL1 = try XCTUnwrap(versus["rel_l1"] as? Double)
        XCTAssertGreaterThan(relL1, 1e-4, "bf16 tiles differ from f32 by about 2^-9")
        XCTAssertLessThan(relL1, 1e-2)
        let bad = try CLI.run(["bench", "attention", "--kernel", "kascade", "--q-len", "64", "--precision", "bf16"])
        XCTAssertNotEqual(bad.status, 0)
        XCTAssertTrue(bad.stderr.contains("has no precision parameter"), bad.stderr)
        let typo = try CLI.run(["bench", "attention", "--q-len", "64", "--precision", "bf8"])
        XCTAssertTrue(typo.stderr.contains("bf16, f32"), typo.stderr)
    }

    func testRejectsInvalidShapes() throws {
        let r = try CLI.run(["bench", "attention", "--heads", "6", "--kv-heads", "4"])
        XCTAssertNotEqual(r.status, 0)
        XCTAssertTrue(r.stderr.contains("multiple of kv_heads"), r.stderr)
    }

    /// An approximate kernel on structured inputs is compared with flash in the same run.
    func testSparseKernelReportsFlashComparison() throws {
        let r = try CLI.run(["bench", "attention", "--kernel", "sparge", "--heads", "4", "--kv-heads", "2", "--q-len", "512",
                             "--head-dim", "64", "--causal", "--inputs", "structured", "--repeats", "2", "--json"])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stdout.contains("vs flash"), r.stdout)
        let last = r.stdout.split(separator: "\n").last.map(String.init) ?? ""
        let json = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(last.utf8)) as? [String: Any])
        XCTAssertEqual(json["inputs"] as? String, "structured")
        let versus = try XCTUnwrap(json["versus_flash"] as? [String: Any], "no versus_flash in \(last)")
        for key in ["flash_ms_median", "speedup_paired", "rel_l1", "cosine"] { XCTAssertNotNil(versus[key] as? Double, key) }
        XCTAssertLessThan(versus["rel_l1"] as! Double, 0.2)
        let stats = try XCTUnwrap(json["kernel_stats"] as? [String: Any])
        XCTAssertLessThan(stats["kept_fraction"] as! Double, 1)
        let bad = try CLI.run(["bench", "attention", "--inputs", "gaussian"])
        XCTAssertNotEqual(bad.status, 0)
        XCTAssertTrue(bad.stderr.contains("--inputs"), bad.stderr)
    }

    func testKernelGenerateWritesInputsKernelRunReads() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("attune-gen-\(getpid())").path
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let g = try CLI.run(["kernel", "generate", "--heads", "4", "--kv-heads", "2", "--q-len", "256", "--head-dim", "64", "--out", dir])
        XCTAssertEqual(g.status, 0, g.stderr)
        let r = try CLI.run(["kernel", "run", "--kernel", "sparge", "--q", dir + "/q.npy", "--k", dir + "/k.npy", "--v", dir + "/v.npy",
                             "--causal", "--out", dir + "/o.npy"])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stderr.contains("kept_fraction="), r.stderr)
    }
}
