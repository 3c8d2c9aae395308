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

    func testRejectsInvalidShapes() throws {
        let r = try CLI.run(["bench", "attention", "--heads", "6", "--kv-heads", "4"])
        XCTAssertNotEqual(r.status, 0)
        XCTAssertTrue(r.stderr.contains("multiple of kv_heads"), r.stderr)
    }
}
