import Foundation
import XCTest
import AttuneModels

final class CheckpointTests: XCTestCase {
    static let q = "model.layers.0.self_attn.q_proj.weight"
    static let k = "model.layers.0.self_attn.k_proj.weight"
    static let norm = "model.norm.weight"

    func index(_ map: [String: String]) -> String {
        let entries = map.keys.sorted().map { "\(SafeTensorsWriter.jsonString($0)):\(SafeTensorsWriter.jsonString(map[$0]!))" }
        return "{\"metadata\":{\"total_size\":0},\"weight_map\":{\(entries.joined(separator: ","))}}"
    }

    func testSingleFile() throws {
        let dir = try TempDir()
        try dir.write("model.safetensors", SafeTensorsWriter.encode([.f32(Self.q, [2], [1, 2]), .bf16(Self.norm, [1], bits: [0x3F80])]))
        let c = try Checkpoint(directory: dir.url)
        XCTAssertEqual(c.path, dir.url.path)
        XCTAssertEqual(c.tensorNames, [Self.q, Self.norm])
        XCTAssertEqual(try c.floats(Self.q), [1, 2])
        XCTAssertEqual(try c.tensor(Self.norm).data, [1])
        XCTAssertEqual(try c.info(Self.norm).dtype, .bf16)
        XCTAssertEqual(try c.withRawBytes(of: Self.norm) { Array($0) }, [0x80, 0x3F])
        assertImportError(try c.floats(Self.k), prefix: dir.url.path, "missing tensor '\(Self.k)'")
    }

    func testShardedIndex() throws {
        let dir = try TempDir()
        let s1 = "model-00001-of-00002.safetensors", s2 = "model-00002-of-00002.safetensors"
        try dir.write(s1, SafeTensorsWriter.encode([.f32(Self.q, [2], [1, 2]), .f32(Self.k, [1], [3])]))
        // A tensor in a shard but not in the index is not part of the checkpoint.
        try dir.write(s2, SafeTensorsWriter.encode([.f16(Self.norm, [1], bits: [0x4000]), .f32("stray", [1], [0])]))
        try dir.write("model.safetensors.index.json", text: index([Self.q: s1, Self.k: s1, Self.norm: s2]))
        let c = try Checkpoint(directory: dir.url)
        XCTAssertEqual(c.tensorNames, [Self.k, Self.q, Self.norm])
        XCTAssertEqual(try c.floats(Self.q), [1, 2])
        XCTAssertEqual(try c.floats(Self.k), [3])
        XCTAssertEqual(try c.floats(Self.norm), [2])
        XCTAssertEqual(try c.info(Self.norm).file, dir.url.appendingPathComponent(s2).path)
        assertImportError(try c.info("stray"), prefix: dir.url.path, "missing tensor 'stray'")
    }

    func testSingleFileWinsOverIndex() throws {
        let dir = try TempDir()
        try dir.write("model.safetensors", SafeTensorsWriter.encode([.f32(Self.q, [1], [9])]))
        try dir.write("model.safetensors.index.json", text: "not even JSON")
        XCTAssertEqual(try Checkpoint(directory: dir.url).floats(Self.q), [9])
    }

    func testEmptyFolder() throws {
        let dir = try TempDir()
        assertImportError(try Checkpoint(directory: dir.url), prefix: dir.url.path, "no model.safetensors or model.safetensors.index.json")
    }

    func testMissingShard() throws {
        let dir = try TempDir()
        try dir.write("a.safetensors", SafeTensorsWriter.encode([.f32(Self.q, [1], [1])]))
        let idx = try dir.write("model.safetensors.index.json", text: index([Self.q: "a.safetensors", Self.norm: "b.safetensors"]))
        assertImportError(try Checkpoint(directory: dir.url), prefix: idx.path,
                          "shard 'b.safetensors' listed for tensor '\(Self.norm)' does not exist")
    }

    func testTensorMissingFromItsShard() throws {
        let dir = try TempDir()
        try dir.write("a.safetensors", SafeTensorsWriter.encode([.f32(Self.q, [1], [1])]))
        try dir.write("b.safetensors", SafeTensorsWriter.encode([.f32(Self.k, [1], [1])]))
        // Listed in b, but it lives in a.
        let idx = try dir.write("model.safetensors.index.json", text: index([Self.q: "b.safetensors", Self.k: "b.safetensors"]))
        assertImportError(try Checkpoint(directory: dir.url), prefix: idx.path,
                          "tensor '\(Self.q)' is listed in shard 'b.safetensors', which does not contain it")
    }

    func testInvalidShardIsReportedByItsOwnPath() throws {
        let dir = try TempDir()
        var bad = SafeTensorsWriter.encode([.f32(Self.q, [2], [1, 2])])
        bad.removeLast()
        let shard = try dir.write("a.safetensors", bad)
        try dir.write("model.safetensors.index.json", text: index([Self.q: "a.safetensors"]))
        assertImportError(try Checkpoint(directory: dir.url), prefix: shard.path, "tensor '\(Self.q)'", "outside the data section")
    }

    func testMalformedIndex() throws {
        let dir = try TempDir()
        try dir.write("a.safetensors", SafeTensorsWriter.encode([.f32(Self.q, [1], [1])]))
        let cases: [(String, String)] = [
            ("{\"weight_map\": ", "not valid JSON"),
            ("[]", "not a JSON object"),
            ("{\"metadata\":{}}", "missing key 'weight_map'"),
            ("{\"weight_map\":[]}", "weight_map is an array, expected an object"),
            ("{\"weight_map\":{\"\(Self.q)\":3}}", "weight_map entry for tensor '\(Self.q)' is a number"),
            ("{\"weight_map\":{\"\(Self.q)\":\"../a.safetensors\"}}", "tensor '\(Self.q)': shard name '../a.safetensors' is not a plain file name"),
            ("{\"weight_map\":{\"\(Self.q)\":\"..\"}}", "is not a plain file name"),
            ("{\"weight_map\":{\"\(Self.q)\":\"a.safetensors\",\"\(Self.q)\":\"a.safetensors\"}}", "duplicate key '\(Self.q)'"),
        ]
        for (text, fragment) in cases {
            let idx = try dir.write("model.safetensors.index.json", text: text)
            assertImportError(try Checkpoint(directory: dir.url), prefix: idx.path, fragment)
        }
    }
}
