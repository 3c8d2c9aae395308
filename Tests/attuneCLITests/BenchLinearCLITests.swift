import Foundation
import XCTest

final class BenchLinearCLITests: XCTestCase {
    func testJSONHasTheDocumentedKeysForDecodeAndPrefill() throws {
        for rows in ["1", "12"] {
            let r = try CLI.run(["bench", "linear", "--rows", rows, "--in", "64", "--out", "48", "--rounds", "1", "--json"])
            XCTAssertEqual(r.status, 0, r.stderr)
            let last = r.stdout.split(separator: "\n").last.map(String.init) ?? ""
            let json = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(last.utf8)) as? [String: Any], last)
            for key in ["ms_median", "gbps", "gflops", "f32_ms_median", "speedup_vs_f32", "bf16_ms_median", "speedup_vs_bf16", "read_gbps", "ratio_to_read"] {
                XCTAssertGreaterThan(try XCTUnwrap(json[key] as? Double, "missing \(key)"), 0, key)
            }
            XCTAssertEqual(json["weight_bytes"] as? Int, 48 * (64 + 2 * 2), "int8 quants + two f16 scales per row")
            XCTAssertEqual((json["sgemm_gflops"] as? Double ?? 0) > 0, rows == "12", "SGEMM baseline for prefill only")
        }
    }

    func testRejectsWidthsTheFormatCannotStore() throws {
        let r = try CLI.run(["bench", "linear", "--in", "100"])
        XCTAssertNotEqual(r.status, 0)
        XCTAssertTrue(r.stderr.contains("multiple of 32"), r.stderr)
        let g = try CLI.run(["bench", "linear", "--model", "qwen2.5-0.5b", "--group", "96"])
        XCTAssertNotEqual(g.status, 0)
        XCTAssertTrue(g.stderr.contains("qkv: int8 weights: the group size"), g.stderr)
    }
}
