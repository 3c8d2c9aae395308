import AttuneCodegen
import AttuneIR
import AttuneRuntime
import CAttuneKernels
import Foundation
import XCTest

/// Constants with no file behind them (weights held in memory, or values computed from
/// weights) are stored in constants.bin next to the weights manifest, with a checksum of
/// the whole payload that the module checks before use.
final class DerivedConstantsTests: XCTestCase {
    func testDamagedDerivedBlobIsRefused() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("attune-derived-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let graph = try FusedDecoder.graph()
        let module = try CEmitter.emit(graph, weights: FusedDecoder.weights(for: graph), options: CodegenOptions(maxChunk: 8, maxContext: 64))
        XCTAssertTrue(module.constants.allSatisfy { $0.parts.allSatisfy { if case .derived = $0.source { true } else { false } } },
                      "weights held in memory have no file to map")
        let manifest = try WeightsManifest.write(module, to: dir)
        let built = try Toolchain.detect().build(module)
        XCTAssertEqual(try CompiledModel(library: built.library, manifest: manifest).prefillLast([1, 2]).count, module.vocab)
        let blob = dir.appendingPathComponent(WeightsManifest.derivedFileName)
        var bytes = try Data(contentsOf: blob)
        bytes[bytes.count - 3] ^= 0x01
        try bytes.write(to: blob)
        XCTAssertThrowsError(try CompiledModel(library: built.library, manifest: manifest)) { error in
            XCTAssertTrue("\(error)".contains("constants.bin is damaged: checksum"), "\(error)")
        }
    }

    func testSwiftAndCPayloadHashesAgree() throws {
        // The C loader verifies what Swift recorded: the same function, every tail length and
        // every number of words past the four chains.
        for n in [0, 1, 7, 8, 9, 16, 24, 31, 32, 33, 40, 57, 4096 + 5] {
            let bytes = (0..<n).map { UInt8(truncatingIfNeeded: $0 &* 131 &+ 7) }
            let swift = bytes.withUnsafeBytes { PayloadFile.hash($0) }
            let c = bytes.withUnsafeBytes { attune_payload_hash($0.baseAddress, $0.count) }
            XCTAssertEqual(swift, c, "\(n) bytes")
        }
        XCTAssertNotEqual([UInt8](repeating: 0, count: 9).withUnsafeBytes { PayloadFile.hash($0) },
                          [UInt8](repeating: 0, count: 8).withUnsafeBytes { PayloadFile.hash($0) }, "length matters")
    }

    /// Files over 2 GiB (a single write(2) moves at most 0x7ffff000 bytes) are written
    /// whole: the checksum read back from disk equals the one of the buffer.
    func testWritesOver2GiBCompletely() throws {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("attune-large-\(UUID().uuidString).bin")
        defer { try? FileManager.default.removeItem(at: url) }
        let count = (1 << 31) + 4096 + 3
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: count, alignment: 64)
        defer { buffer.deallocate() }
        // Distinct words everywhere, so a tail that repeats the head cannot hash the same.
        let words = buffer.bindMemory(to: UInt64.self)
        for i in 0..<words.count { words[i] = UInt64(i) &* 0x9e37_79b9_7f4a_7c15 }
        let raw = UnsafeRawBufferPointer(buffer)
        try PayloadFile.write(raw, to: url)
        let (size, hash) = try PayloadFile.hash(ofFileAt: url)
        XCTAssertEqual(size, count)
        XCTAssertEqual(hash, PayloadFile.hash(raw))
    }
}
