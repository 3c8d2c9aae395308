import AttuneRuntime
import Foundation
import XCTest

/// Broken model folders give one clear error naming the problem, never a crash.
final class BadCheckpointTests: XCTestCase {
    var dir: URL!

    override func setUpWithError() throws {
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("attune-bad-\(UUID().uuidString)")
        try FileManager.default.copyItem(at: GoldenModel.root.appendingPathComponent("llama"), to: dir)
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: dir) }

    var weights: URL { dir.appendingPathComponent("model.safetensors") }

    func assertLoadFails(_ needle: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertThrowsError(try ModelSource.load(dir.path), file: file, line: line) { error in
            XCTAssertTrue("\(error)".contains(needle), "'\(error)' should mention '\(needle)'", file: file, line: line)
        }
    }

    func header() throws -> (json: [String: Any], length: Int, data: Data) {
        let data = try Data(contentsOf: weights)
        let n = Int(data.prefix(8).withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) })
        let json = try JSONSerialization.jsonObject(with: data.subdata(in: 8..<(8 + n))) as! [String: Any]
        return (json, n, data)
    }

    func rewrite(_ json: [String: Any], payload: Data) throws {
        var text = String(decoding: try JSONSerialization.data(withJSONObject: json, options: [.sortedKeys]), as: UTF8.self)
        while (8 + text.utf8.count) % 8 != 0 { text += " " }
        var out = Data()
        withUnsafeBytes(of: UInt64(text.utf8.count).littleEndian) { out += Data($0) }
        out += Data(text.utf8) + payload
        try out.write(to: weights)
    }

    func testTruncatedFile() throws {
        let data = try Data(contentsOf: weights)
        try data.prefix(data.count - 100).write(to: weights)
        assertLoadFails("model.safetensors")
    }

    func testHeaderThatLiesAboutOffsets() throws {
        var (json, n, data) = try header()
        var entry = json["model.norm.weight"] as! [String: Any]
        let offsets = entry["data_offsets"] as! [Int]
        entry["data_offsets"] = [offsets[0] + 1_000_000, offsets[1] + 1_000_000]
        json["model.norm.weight"] = entry
        try rewrite(json, payload: data.subdata(in: (8 + n)..<data.count))
        assertLoadFails("model.norm.weight")
    }

    func testMissingTensor() throws {
        var (json, n, data) = try header()
        // Drop the last tensor in the data section, and its bytes, so the file stays consistent.
        let last = json.filter { $0.key != "__metadata__" }.max { (($0.value as! [String: Any])["data_offsets"] as! [Int])[0] < (($1.value as! [String: Any])["data_offsets"] as! [Int])[0] }!
        let begin = ((last.value as! [String: Any])["data_offsets"] as! [Int])[0]
        json.removeValue(forKey: last.key)
        try rewrite(json, payload: data.subdata(in: (8 + n)..<(8 + n + begin)))
        assertLoadFails("missing tensor '\(last.key)'")
    }

    func testWrongShape() throws {
        var config = try JSONSerialization.jsonObject(with: Data(contentsOf: dir.appendingPathComponent("config.json"))) as! [String: Any]
        config["intermediate_size"] = 96
        try JSONSerialization.data(withJSONObject: config).write(to: dir.appendingPathComponent("config.json"))
        assertLoadFails("mlp.gate_proj.weight")
    }

    func testUnknownArchitecture() throws {
        var config = try JSONSerialization.jsonObject(with: Data(contentsOf: dir.appendingPathComponent("config.json"))) as! [String: Any]
        config["architectures"] = ["GPTNeoXForCausalLM"]
        try JSONSerialization.data(withJSONObject: config).write(to: dir.appendingPathComponent("config.json"))
        assertLoadFails("LlamaForCausalLM")
    }
}
