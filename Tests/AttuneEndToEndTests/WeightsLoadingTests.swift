import AttuneCodegen
import AttuneIR
import AttuneModels
import AttuneRuntime
import Foundation
import XCTest

/// Compiled modules take their weights through a manifest (Kernels/weights_loader.c):
/// checkpoint tensors mapped in place, damaged or changed files refused, NaN/Inf named.
final class WeightsLoadingTests: XCTestCase {
    var dir: URL!
    var toolchain: Toolchain!

    override func setUpWithError() throws {
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("attune-weights-\(UUID().uuidString)")
        try FileManager.default.copyItem(at: GoldenModel.root.appendingPathComponent("llama"), to: dir)
        toolchain = try Toolchain.detect()
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: dir) }

    var checkpoint: URL { dir.appendingPathComponent("model.safetensors") }

    func compile(_ options: CompileOptions = CompileOptions(maxChunk: 16, maxContext: 64)) throws -> CompiledArtifacts {
        try ModelCompiler.compile(try ModelSource.load(dir.path), options, toolchain: toolchain)
    }

    /// Overwrites element `index` of `tensor` (an f32 tensor) in the copied checkpoint.
    func plant(_ value: Float, in tensor: String, at index: Int) throws {
        let offset = try SafeTensorsFile(contentsOf: checkpoint).info(tensor).fileOffset + 4 * index
        let handle = try FileHandle(forUpdating: checkpoint)
        try handle.seek(toOffset: UInt64(offset))
        try handle.write(contentsOf: withUnsafeBytes(of: value.bitPattern.littleEndian) { Data($0) })
        try handle.close()
    }

    func testCheckpointTensorsAreMappedNotCopied() throws {
        let artifacts = try compile()
        let manifest = try String(contentsOf: artifacts.manifest, encoding: .utf8)
        XCTAssertTrue(manifest.contains("- \(checkpoint.standardizedFileURL.path)\n"), manifest)
        XCTAssertFalse(FileManager.default.fileExists(atPath: artifacts.manifest.deletingLastPathComponent()
            .appendingPathComponent(WeightsManifest.derivedFileName).path), "an f32 checkpoint needs no derived blob")
        XCTAssertTrue(artifacts.module.derived.isEmpty)
        // Merged QKV and gate/up are passed to the linear as blocks: every slot of an f32
        // checkpoint points into the file, nothing is materialised.
        XCTAssertTrue(artifacts.module.constants.allSatisfy(\.isMappedInPlace), manifest)
        XCTAssertTrue(artifacts.module.source.contains("attune_op_linear_blocks("))
        let golden = try GoldenModel("llama")
        let session = try CompiledModel(artifacts: artifacts)
        let ids = golden.golden.sequences[0].input_ids.map(Int32.init)
        let last = try session.prefillLast(ids)
        session.reset()
        let all = try session.prefill(ids)
        // One row goes through sgemv, all rows through sgemm: equal up to rounding.
        XCTAssertLessThanOrEqual(zip(last, all.suffix(session.vocab)).map { abs($0 - $1) }.max()!, 1e-5)
        let expected = try golden.logits("logits_0.npy").data.suffix(session.vocab)
        XCTAssertLessThanOrEqual(zip(last, expected).map { abs($0 - $1) }.max()!, 1e-4)
    }

    func testNaNWeightIsRefusedByName() throws {
        try plant(.nan, in: "model.layers.1.mlp.up_proj.weight", at: 7)
        let artifacts = try compile()
        XCTAssertThrowsError(try CompiledModel(artifacts: artifacts)) { error in
            XCTAssertEqual("\(error)", "weight 'model.layers.1.mlp.up_proj.weight' holds NaN at element 7 of 10240 (f32): the checkpoint is damaged; pass --allow-nonfinite to load it anyway")
        }
        var options = CompileOptions(maxChunk: 16, maxContext: 64)
        options.allowNonfinite = true
        let session = try CompiledModel(artifacts: try compile(options))
        XCTAssertTrue(try session.prefillLast([1, 2, 3]).contains { $0.isNaN }, "allowed NaN flows into the logits")
    }

    func testInfInAConcatenatedWeightIsNamed() throws {
        try plant(-.infinity, in: "model.layers.0.self_attn.k_proj.weight", at: 0)
        XCTAssertThrowsError(try CompiledModel(artifacts: try compile())) { error in
            XCTAssertTrue("\(error)".hasPrefix("weight 'model.layers.0.self_attn.k_proj.weight' holds -Inf at element 0 of 2048"), "\(error)")
        }
    }

    func testChangedCheckpointIsRefused() throws {
        let artifacts = try compile()
        let handle = try FileHandle(forWritingTo: checkpoint)
        try handle.seekToEnd()
        try handle.write(contentsOf: Data([0]))
        try handle.close()
        XCTAssertThrowsError(try CompiledModel(artifacts: artifacts)) { error in
            XCTAssertTrue("\(error)".contains("the file changed since the model was compiled; compile again"), "\(error)")
        }
    }

    func testDamagedCachedLibraryIsRebuilt() throws {
        let first = try compile()
        XCTAssertFalse(first.cached)
        XCTAssertTrue(try compile().cached)
        var bytes = try Data(contentsOf: first.library)
        bytes[bytes.count / 2] ^= 0xff
        try bytes.write(to: first.library)
        XCTAssertNotNil(Toolchain.damage(first.library, first.library.deletingLastPathComponent().appendingPathComponent("payload.sum")))
        let second = try compile()
        XCTAssertFalse(second.cached, "a damaged library is rebuilt, not served")
        XCTAssertNil(Toolchain.damage(second.library, second.library.deletingLastPathComponent().appendingPathComponent("payload.sum")))
        XCTAssertEqual(try CompiledModel(artifacts: second).prefillLast([1, 2, 3]).count, 128)
    }

    /// A model whose weights pass 2 GiB and 4 GiB: a tied embedding table of 16.8M rows
    /// (4.3 GB, a sparse file: zeros except three planted rows, one near the start, one past
    /// 2 GiB, one past 4 GiB). The last position's logits must be exactly those the planted
    /// rows give, computed here in float64, and zero everywhere else.
    func testModelOver4GiBRunsCorrectly() throws {
        let vocab = 16_800_000, width = 64
        let tableBytes = vocab * width * 4
        XCTAssertGreaterThan(tableBytes, 1 << 32)
        let header = #"{"embed":{"dtype":"F32","shape":[\#(vocab),\#(width)],"data_offsets":[0,\#(tableBytes)]},"#
            + #""norm":{"dtype":"F32","shape":[\#(width)],"data_offsets":[\#(tableBytes),\#(tableBytes + width * 4)]}}"#
        var headerBytes = Array(header.utf8)
        while headerBytes.count % 8 != 0 { headerBytes.append(0x20) }
        let dataStart = 8 + headerBytes.count
        let file = dir.appendingPathComponent("big.safetensors")
        _ = FileManager.default.createFile(atPath: file.path, contents: Data(le(UInt64(headerBytes.count)) + headerBytes))
        let handle = try FileHandle(forWritingTo: file)
        try handle.truncate(atOffset: UInt64(dataStart + tableBytes + width * 4))
        func row(_ r: Int) -> [Float] { (0..<width).map { Float(sin(Double(r % 1000 + 7 * $0))) * 0.5 } }
        let planted = [3, (1 << 31) / (width * 4) + 12_345, vocab - 1]
        XCTAssertGreaterThan(planted[1] * width * 4, 1 << 31)
        XCTAssertGreaterThan(planted[2] * width * 4, 1 << 32)
        let norm = (0..<width).map { 1 + Float($0) / 64 }
        for r in planted {
            try handle.seek(toOffset: UInt64(dataStart + r * width * 4))
            try handle.write(contentsOf: Data(row(r).flatMap { le($0.bitPattern) }))
        }
        try handle.seek(toOffset: UInt64(dataStart + tableBytes))
        try handle.write(contentsOf: Data(norm.flatMap { le($0.bitPattern) }))
        try handle.close()
        let graph = """
        graph big {
          %0 = input() {name = "tokens"} : i32[seq]
          %1 = weight() {name = "embed"} : f32[\(vocab), \(width)]
          %2 = embedding(%1, %0) : f32[seq, \(width)]
          %3 = weight() {name = "norm"} : f32[\(width)]
          %4 = rms_norm(%2, %3) {eps = 1e-05} : f32[seq, \(width)]
          %5 = linear(%4, %1) {bias = false} : f32[seq, \(vocab)]
          output logits = %5
        }
        """
        let attn = dir.appendingPathComponent("big.attn")
        try graph.write(to: attn, atomically: true, encoding: .utf8)
        let artifacts = try ModelCompiler.compile(try ModelSource.load(attn.path), CompileOptions(maxChunk: 4, maxContext: 8), toolchain: toolchain)
        let logits = try CompiledModel(artifacts: artifacts).prefillLast(planted.map(Int32.init))

        let e = row(planted[2]).map(Double.init)
        let rms = (e.map { $0 * $0 }.reduce(0, +) / Double(width) + 1e-5).squareRoot()
        let x = zip(e, norm).map { $0 / rms * Double($1) }
        for r in planted {
            let expected = zip(x, row(r)).map { $0 * Double($1) }.reduce(0, +)
            XCTAssertEqual(Double(logits[r]), expected, accuracy: 1e-4 * max(1, abs(expected)), "row \(r)")
        }
        var others = logits
        for r in planted { others[r] = 0 }
        XCTAssertEqual(others.firstIndex { $0 != 0 }, nil, "rows that are zero on disk give logit 0")
    }
}

/// Little-endian bytes of an integer.
private func le<T: FixedWidthInteger>(_ x: T) -> [UInt8] {
    withUnsafeBytes(of: x.littleEndian) { Array($0) }
}
