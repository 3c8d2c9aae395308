import AttuneIR
import AttuneKernels
import AttuneNumerics
import AttunePasses
@testable import AttuneRuntime
import XCTest

/// `attune calibrate` end to end on the tiny llama: statistics from the reference, phi
/// per head compiled into `unified_max`, kernel counters from the compiled module, and a
/// calibration refused for another model or when corrupt.
final class CalibrationTests: XCTestCase {
    static let sequences: [[Int32]] = (0..<3).map { s in (0..<40).map { Int32((s * 37 + $0 * 11) % 128) } }

    func temporaryFile(_ name: String) -> URL {
        FileManager.default.temporaryDirectory.appendingPathComponent("attune-\(UUID().uuidString)-\(name)")
    }

    func testRowMaximaFollowTheMaskByHand() {
        // One head, d = 1, scale 1: scores are q_i * k_j; causal rows see keys 0...i,
        // a window of 2 only keys i-1 and i.
        let q = F64Tensor(shape: [3, 1], data: [1, -1, 2])
        let k = F64Tensor(shape: [3, 1], data: [5, -3, 1])
        let causal = Calibrator.rowMaxima(q: q, k: k, AttentionAttrs(heads: 1, kvHeads: 1, headDim: 1, scale: 1))
        XCTAssertEqual(causal, [[5, 3, 10]])
        let windowed = Calibrator.rowMaxima(q: q, k: k, AttentionAttrs(heads: 1, kvHeads: 1, headDim: 1, scale: 1, window: 2))
        XCTAssertEqual(windowed, [[5, 3, 2]])
    }

    func testCalibrationStatisticsAndPhiReachTheCompiledModel() throws {
        let model = try ModelSource.load(try GoldenModel("llama").folder.path)
        let calibration = try Calibrator.calibrate(model, sequences: Self.sequences)
        XCTAssertEqual(calibration.tokens, 120)
        XCTAssertEqual(calibration.layers.map(\.layer), [0, 1])
        for layer in calibration.layers {
            XCTAssertEqual(layer.heads.count, 4)
            for head in layer.heads {
                XCTAssertEqual(head.rows, 120)
                XCTAssertLessThan(head.rowMaxMin, head.phi)
                XCTAssertLessThan(head.phi, head.rowMaxMax)
                XCTAssertLessThanOrEqual(head.rowMaxP01, head.rowMaxP99)
                XCTAssertEqual(head.rowsOutsideWindow, 0)
            }
        }
        // Same model, same data: same file; the hash is the model's, stable.
        XCTAssertEqual(try Calibrator.calibrate(model, sequences: Self.sequences), calibration)
        XCTAssertEqual(calibration.modelHash, try ModelFingerprint.of(model))

        let file = temporaryFile("calibration.json")
        defer { try? FileManager.default.removeItem(at: file) }
        try calibration.encoded().write(to: file)
        let loaded = try Calibration.load(file.path)
        XCTAssertEqual(loaded, calibration)

        // Compiled with the calibrated phi: the table is in the binding and the C, logits
        // equal flash's, and no row falls back.
        let toolchain = try Toolchain.detect()
        func run(_ kernel: String, calibration: (Calibration, String)?) throws -> (logits: [Float], counters: [String: Int64], c: String) {
            let options = CompileOptions(kernels: KernelOverrides(global: try KernelChoice(parsing: kernel)), maxChunk: 16, maxContext: 64,
                                         calibration: calibration)
            let artifacts = try ModelCompiler.compile(model, options, toolchain: toolchain)
            let session = try CompiledModel(artifacts: artifacts)
            var logits = try session.prefill(Self.sequences[0])
            logits += try session.decodeStep(7)
            return (logits, Dictionary(uniqueKeysWithValues: session.counters.map { ($0.name, $0.value) }), artifacts.module.source)
        }
        let flash = try run("flash", calibration: nil)
        XCTAssertTrue(flash.counters.isEmpty)
        let calibrated = try run("unified_max", calibration: (loaded, file.path))
        XCTAssertTrue(calibrated.c.contains("static const float table_phi[4]"))
        XCTAssertTrue(calibrated.c.contains(".phi_per_head = table_phi"))
        XCTAssertLessThanOrEqual(zip(calibrated.logits, flash.logits).map { abs($0 - $1) }.max()!, 1e-4)
        // 40 prompt rows + 1 decode row, 4 heads, per layer.
        XCTAssertEqual(calibrated.counters["layer0.unified_max.rows"], 164)
        XCTAssertEqual(calibrated.counters["layer1.unified_max.fallback_rows"], 0)

        // phi far above every score: every row is recomputed, the logits do not change.
        var wrong = loaded
        for l in wrong.layers.indices { for h in wrong.layers[l].heads.indices { wrong.layers[l].heads[h].phi = 1000 } }
        let fallback = try run("unified_max", calibration: (wrong, file.path))
        XCTAssertEqual(fallback.counters["layer0.unified_max.fallback_rows"], 164)
        XCTAssertEqual(fallback.counters["layer1.unified_max.fallback_rows"], 164)
        XCTAssertLessThanOrEqual(zip(fallback.logits, flash.logits).map { abs($0 - $1) }.max()!, 1e-4)
        // An explicit phi in the choice wins over the calibration.
        let explicit = try run("unified_max:phi=0", calibration: (loaded, file.path))
        XCTAssertFalse(explicit.c.contains("table_phi"))
    }

    func testCalibrationIsRefusedForAnotherModelAndWhenCorrupt() throws {
        let llama = try ModelSource.load(try GoldenModel("llama").folder.path)
        let calibration = try Calibrator.calibrate(llama, sequences: [Array(Self.sequences[0].prefix(8))])
        let file = temporaryFile("calibration.json")
        defer { try? FileManager.default.removeItem(at: file) }
        try calibration.encoded().write(to: file)
        let qwen = try ModelSource.load(try GoldenModel("qwen2").folder.path)
        let options = CompileOptions(kernels: KernelOverrides(global: KernelChoice(kernel: "unified_max")),
                                     calibration: (calibration, file.path))
        XCTAssertThrowsError(try ModelCompiler.lower(qwen, options)) { error in
            XCTAssertTrue("\(error)".contains("was calibrated on model 'llama'"), "\(error)")
        }
        for (text, needle) in [("{", "not an Attune calibration file"),
                               (#"{"format": "x"}"#, "missing key"),
                               (String(decoding: try calibration.encoded(), as: UTF8.self).replacingOccurrences(of: "\"version\" : 1", with: "\"version\" : 9"), "version 9")] {
            try text.write(to: file, atomically: true, encoding: .utf8)
            XCTAssertThrowsError(try Calibration.load(file.path)) { XCTAssertTrue("\($0)".contains(needle), "\($0)") }
        }
        XCTAssertThrowsError(try Calibrator.calibrate(llama, sequences: [[]]))
        XCTAssertThrowsError(try Calibrator.calibrate(llama, sequences: [[1, 999]])) { XCTAssertTrue("\($0)".contains("999"), "\($0)") }
    }
}
