import AttuneCodegen
import AttuneIR
import AttuneRuntime
import Foundation
import XCTest

/// `--weights bf16` on checkpoints stored in f32 (llama) or f16 (mistral): the matmul
/// weights are rounded once, at compile time, into the compile cache (the file
/// `--weights int8` quantises into, keyed by the checkpoint's identity) and mapped from
/// there by every later run; nothing is rounded in memory or kept in the derived blob.
final class BF16RoundedWeightsTests: XCTestCase {
    static func options() -> CompileOptions {
        var o = CompileOptions(maxChunk: 8, maxContext: 64)
        o.weights = .bf16
        return o
    }

    /// A copy of fixture `name` in a fresh folder (the test may rewrite its checkpoint).
    static func copy(_ name: String) throws -> URL {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("attune-bf16w-\(name)-\(UUID().uuidString)")
        try FileManager.default.copyItem(at: GoldenModel.root.appendingPathComponent(name), to: dir)
        return dir
    }

    /// The bf16 bits every converted slot should hold: its parts read from the checkpoint
    /// and rounded with Swift's `Float.bf16Bits` (the reference rounding).
    static func expectedBits(_ slot: ConstantSlot) throws -> [UInt16] {
        var out: [UInt16] = []
        for part in slot.parts {
            guard case .file(let at) = part.source else { XCTFail("\(part.name) has no file"); continue }
            let handle = try FileHandle(forReadingFrom: URL(fileURLWithPath: at.path))
            defer { try? handle.close() }
            try handle.seek(toOffset: UInt64(at.offset))
            let data = try XCTUnwrap(handle.read(upToCount: at.count * at.dtype.byteSize))
            data.withUnsafeBytes { raw in
                for i in 0..<at.count {
                    switch at.dtype {
                    case .f32: out.append(Float(bitPattern: raw.loadUnaligned(fromByteOffset: 4 * i, as: UInt32.self)).bf16Bits)
                    case .f16: out.append(Float(Float16(bitPattern: raw.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self))).bf16Bits)
                    default: out.append(raw.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self))
                    }
                }
            }
        }
        return out
    }

    /// Every converted slot's bytes in the blob equal the reference rounding of its parts.
    static func assertBlobHoldsRoundedWeights(_ module: EmittedModule, _ blob: QuantizedWeights.Blob,
                                              file: StaticString = #filePath, line: UInt = #line) throws {
        let data = try Data(contentsOf: blob.url)
        XCTAssertEqual(data.count, blob.size, file: file, line: line)
        for (s, slot) in module.constants.enumerated() where slot.format == .bf16 {
            let offset = try XCTUnwrap(blob.offsets[s], "slot \(s) is not in the blob", file: file, line: line)
            let stored = data.withUnsafeBytes { raw in (0..<slot.elements).map { raw.loadUnaligned(fromByteOffset: offset + 2 * $0, as: UInt16.self) } }
            XCTAssertEqual(stored, try expectedBits(slot), "slot \(s) (\(slot.parts.map(\.name)))", file: file, line: line)
        }
    }

    func prefillAndDecode(_ session: CompiledModel, _ prompt: [Int]) throws -> [Float] {
        session.reset()
        var out = try session.prefill(prompt.map(Int32.init))
        out += try session.decodeStep(3)
        return out
    }

    /// The first compile rounds into the cache; a second compile maps the same file (not
    /// made again) and gives bit-identical logits; the f32 checkpoint's module has no
    /// derived bf16 values, and its blob holds exactly the reference rounding.
    func testWeightsAreRoundedOnceIntoTheCacheAndReused() throws {
        let toolchain = try Toolchain.detect()
        for name in ["llama", "mistral"] {
            let dir = try Self.copy(name)
            defer { try? FileManager.default.removeItem(at: dir) }
            let model = try ModelSource.load(dir.path)
            let artifacts = try ModelCompiler.compile(model, Self.options(), toolchain: toolchain)
            let module = artifacts.module
            let bf16 = module.constants.filter { $0.format == .bf16 }
            XCTAssertFalse(bf16.isEmpty, name)
            XCTAssertTrue(bf16.allSatisfy { $0.isConvertedAtCompile && $0.isMappedInPlace }, name)
            XCTAssertTrue(bf16.allSatisfy { $0.parts.allSatisfy { if case .file = $0.source { true } else { false } } },
                          "\(name): rounded from the checkpoint, not from values held in memory")
            XCTAssertTrue(module.derived.count < 4096, "\(name): no weight in the derived blob (\(module.derived.count) bytes)")

            let blob = try XCTUnwrap(QuantizedWeights.prepare(module, cacheDirectory: toolchain.cacheDirectory))
            XCTAssertFalse(blob.created, "\(name): the compile made it; this call finds it")
            let manifest = try String(contentsOf: artifacts.manifest, encoding: .utf8)
            XCTAssertTrue(manifest.contains(blob.url.path), name)
            try Self.assertBlobHoldsRoundedWeights(module, blob)
            let made = try FileManager.default.attributesOfItem(atPath: blob.url.path)[.modificationDate] as? Date

            let prompt = [1, 5, 9, 2, 7, 3, 8, 4, 6, 11, 12]
            let first = try prefillAndDecode(CompiledModel(artifacts: artifacts), prompt)
            let again = try ModelCompiler.compile(try ModelSource.load(dir.path), Self.options(), toolchain: toolchain)
            XCTAssertEqual(again.manifest, artifacts.manifest, name)
            XCTAssertEqual(try FileManager.default.attributesOfItem(atPath: blob.url.path)[.modificationDate] as? Date, made,
                           "\(name): the cached file is mapped, not written again")
            let second = try prefillAndDecode(CompiledModel(artifacts: again), prompt)
            XCTAssertEqual(first.map(\.bitPattern), second.map(\.bitPattern), "\(name): cached bf16 weights, same logits")
        }
    }

    /// A checkpoint rewritten in place (same size, other values, later modification time)
    /// is rounded again into another file, and the module computes with the new values.
    func testAChangedCheckpointIsRoundedAgain() throws {
        let toolchain = try Toolchain.detect()
        let dir = try Self.copy("llama")
        defer { try? FileManager.default.removeItem(at: dir) }
        let prompt = [1, 5, 9, 2, 7]
        let model = try ModelSource.load(dir.path)
        let artifacts = try ModelCompiler.compile(model, Self.options(), toolchain: toolchain)
        let before = try XCTUnwrap(QuantizedWeights.prepare(artifacts.module, cacheDirectory: toolchain.cacheDirectory))
        let first = try prefillAndDecode(CompiledModel(artifacts: artifacts), prompt)

        // Halve the down projection of layer 0 in place.
        let at = try XCTUnwrap(try model.weights.location("model.layers.0.mlp.down_proj.weight"))
        XCTAssertEqual(at.dtype, .f32)
        let handle = try FileHandle(forUpdating: URL(fileURLWithPath: at.path))
        try handle.seek(toOffset: UInt64(at.offset))
        var values = try XCTUnwrap(handle.read(upToCount: 4 * at.count)).withUnsafeBytes { raw in
            (0..<at.count).map { Float(bitPattern: raw.loadUnaligned(fromByteOffset: 4 * $0, as: UInt32.self)) }
        }
        values = values.map { $0 * 0.5 }
        try handle.seek(toOffset: UInt64(at.offset))
        try handle.write(contentsOf: values.withUnsafeBytes { Data($0) })
        try handle.close()
        try FileManager.default.setAttributes([.modificationDate: Date(timeIntervalSinceNow: 60)], ofItemAtPath: at.path)

        let changed = try ModelCompiler.compile(try ModelSource.load(dir.path), Self.options(), toolchain: toolchain)
        let after = try XCTUnwrap(QuantizedWeights.prepare(changed.module, cacheDirectory: toolchain.cacheDirectory))
        XCTAssertNotEqual(after.url, before.url, "another checkpoint, another file")
        XCTAssertNotEqual(after.hash, before.hash)
        try Self.assertBlobHoldsRoundedWeights(changed.module, after)
        let second = try prefillAndDecode(CompiledModel(artifacts: changed), prompt)
        XCTAssertNotEqual(first, second, "the module reads the new weights")
    }

    /// A finite f32 weight beyond bf16's largest finite value would round to infinity:
    /// refused at compile time naming the weight and the element.
    func testAWeightBeyondBF16RangeIsRefused() throws {
        let toolchain = try Toolchain.detect()
        let dir = try Self.copy("llama")
        defer { try? FileManager.default.removeItem(at: dir) }
        let model = try ModelSource.load(dir.path)
        let at = try XCTUnwrap(try model.weights.location("model.layers.0.self_attn.o_proj.weight"))
        let handle = try FileHandle(forUpdating: URL(fileURLWithPath: at.path))
        try handle.seek(toOffset: UInt64(at.offset + 4 * 7))
        try handle.write(contentsOf: withUnsafeBytes(of: Float.greatestFiniteMagnitude.bitPattern) { Data($0) })
        try handle.close()
        try FileManager.default.setAttributes([.modificationDate: Date(timeIntervalSinceNow: 120)], ofItemAtPath: at.path)
        XCTAssertThrowsError(try ModelCompiler.compile(try ModelSource.load(dir.path), Self.options(), toolchain: toolchain)) { error in
            let message = "\(error)"
            XCTAssertTrue(message.contains("model.layers.0.self_attn.o_proj.weight") && message.contains("element 7")
                          && message.contains("beyond bf16's range"), message)
        }
    }
}
