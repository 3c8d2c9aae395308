import AttuneCodegen
import AttuneIR
import AttuneRuntime
import Foundation
import XCTest

/// `--weights q4`: every matmul weight, embedding table included, in 4-bit codes with an
/// f16 scale per group of 32 (Kernels/include/attune_linear_q4.h), through the same
/// compile-cache path and kernels as int8 (Int8WeightsTests holds the shared helpers).
final class Q4WeightsTests: XCTestCase {
    static let layout = QuantizedLayout(bits: 4)

    /// Every matmul slot is q4 (the tied qwen2 table once), the generated code calls the
    /// q4 entry points, and the compile cache keeps q4 and int8 files apart.
    func testMatmulWeightsAreQ4SlotsInTheirOwnCacheFile() throws {
        let fixture = try GoldenModel("qwen2")
        let model = try ModelSource.load(fixture.folder.path)
        let toolchain = try Toolchain.detect()
        let artifacts = try ModelCompiler.compile(model, Int8WeightsTests.quantizedOptions(chunk: 8, Self.layout), toolchain: toolchain)
        let q4 = artifacts.module.constants.filter { $0.format == .quantized(Self.layout) }
        XCTAssertEqual(q4.count, 1 + 2 * 7, "the embedding (tied: also the vocabulary projection), q, k, v, o, gate, up, down per layer")
        XCTAssertTrue(artifacts.module.source.contains("#include \"attune_linear_q4.h\""))
        XCTAssertTrue(artifacts.module.source.contains("attune_q4_linear_blocks("))
        XCTAssertTrue(artifacts.module.source.contains("attune_q4_embedding("))
        XCTAssertFalse(artifacts.module.source.contains("attune_q8_"))
        let manifest = try String(contentsOf: artifacts.manifest, encoding: .utf8)
        XCTAssertTrue(manifest.contains("slot 0 8192 1 q4_g32_f16\npart "), manifest)
        let blob = try XCTUnwrap(QuantizedWeights.prepare(artifacts.module, cacheDirectory: toolchain.cacheDirectory))
        XCTAssertEqual(blob.size, q4.reduce(0) { ($0 + Self.layout.bytes(elements: $1.elements) + 63) / 64 * 64 })
        XCTAssertEqual(Self.layout.bytes(elements: 8192), 8192 / 2 + 256 * 2, "4.5 bits a weight, as Q4_0")
        let int8 = try XCTUnwrap(QuantizedWeights.prepare(try ModelCompiler.emit(model, Int8WeightsTests.quantizedOptions(chunk: 8)).1,
                                                          cacheDirectory: toolchain.cacheDirectory))
        XCTAssertNotEqual(int8.url, blob.url, "same checkpoint, same group: the width is part of the key")
    }

    /// Against the float64 interpreter on ŵ: what is left is the kernels' arithmetic, the
    /// same activation roundings as int8 (int8 activations in decode, bf16 in prefill), so
    /// int8's bounds (Int8WeightsTests) hold unchanged.
    func testKernelArithmeticAgainstFloat64OnQuantisedWeights() throws {
        try Int8WeightsTests.checkKernelArithmetic(Self.layout)
    }

    /// The whole error against transformers' float64 logits of the unquantised weights,
    /// decode path: the weights' rounding, max|w_group|/14 per element, is 254/14 ≈ 18× int8's
    /// and dominates. int8's bound (32/254 of max|logit|) is 16/254 for the activations plus
    /// 16/254 for the weights; scaling the weights' share gives 16/254 + 16/14 ≈ 1.21
    /// (NUMERICS.md "4-bit weights"; measured at most 0.83, mistral — on these random
    /// fixtures 4-bit rounding moves logits by a large part of their own size).
    func testFixturesAgainstTransformers() throws {
        let toolchain = try Toolchain.detect()
        var worst = 0.0
        for name in GoldenModel.names {
            let fixture = try GoldenModel(name)
            let session = try CompiledModel(artifacts: try ModelCompiler.compile(try ModelSource.load(fixture.folder.path),
                                                                                 Int8WeightsTests.quantizedOptions(chunk: 8, Self.layout), toolchain: toolchain))
            for (i, seq) in fixture.golden.sequences.enumerated() {
                session.reset()
                let logits = try session.prefill(seq.input_ids.map(Int32.init))
                let want = try fixture.logits(seq.logits_f64).data.map(Double.init)
                let scale = want.map(abs).max()!
                let err = Int8WeightsTests.maxError(logits, want)
                worst = max(worst, err / scale)
                print("q4 \(name) seq \(i): max error \(err / scale) of max |logit|")
                XCTAssertLessThanOrEqual(err, (16.0 / 254 + 16.0 / 14) * scale, "\(name) seq \(i)")
            }
        }
        print("q4: worst max error \(worst) of max |logit|")
    }

    func testParseErrorsAndLayoutsTheWidthsCannotHold() throws {
        XCTAssertEqual(try WeightPolicy(parsing: "q4"), .quantized(QuantizedLayout(bits: 4, group: 32, scale: .f16)))
        XCTAssertEqual(try WeightPolicy(parsing: "q4:group=64,scale=f32"), .quantized(QuantizedLayout(bits: 4, group: 64, scale: .f32)))
        XCTAssertEqual(WeightPolicy.quantized(QuantizedLayout(bits: 4)).description, "q4")
        XCTAssertEqual(WeightPolicy.quantized(QuantizedLayout(bits: 4, group: 64)).description, "q4:group=64,scale=f16")
        XCTAssertThrowsError(try WeightPolicy(parsing: "q4:group=33")) { XCTAssertEqual("\($0)", "--weights q4: group must be a positive multiple of 32, got '33'") }
        XCTAssertThrowsError(try WeightPolicy(parsing: "q4:scale=bf16")) { XCTAssertEqual("\($0)", "--weights q4: scale must be f16 or f32, got 'bf16'") }
        XCTAssertThrowsError(try WeightPolicy(parsing: "q4:bits=4")) { XCTAssertEqual("\($0)", "--weights q4 takes group=N and scale=f16|f32, got 'bits=4'") }
        XCTAssertThrowsError(try WeightPolicy(parsing: "q4x")) {
            XCTAssertEqual("\($0)", "--weights expects auto, f32, bf16, int8 or q4 (int8 and q4 take [:group=N,scale=f16|f32]), got 'q4x'")
        }
        let model = try ModelSource.load(GoldenModel.root.appendingPathComponent("llama").path)
        XCTAssertThrowsError(try ModelCompiler.emit(model, Int8WeightsTests.quantizedOptions(chunk: 8, QuantizedLayout(bits: 4, group: 96)))) { error in
            XCTAssertEqual("\(error)", "--weights q4:group=96,scale=f16: weight 'model.embed_tokens.weight' has rows of 64 weights: q4 weights: the group size must be a multiple of 32 that divides the input width")
        }
    }
}
