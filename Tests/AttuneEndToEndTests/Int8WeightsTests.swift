import AttuneCodegen
import AttuneIR
import AttuneNumerics
import AttuneRuntime
import CAttuneKernels
import Foundation
import XCTest

/// `--weights int8`: every matmul weight (linear weights, the vocabulary projection, the
/// embedding table) quantised at compile time into the compile cache and read by the int8
/// kernels. Checked against the float64 interpreter given the same quantised weights ŵ
/// (what is left is the kernels' arithmetic: int8 activations in decode, bf16 ones in
/// prefill) and against transformers' float64 logits of the unquantised checkpoint (the
/// whole error, NUMERICS.md "int8 weights in compiled models").
final class Int8WeightsTests: XCTestCase {
    static let layout = QuantizedLayout(bits: 8)

    /// `base`'s weights with the matmul weights replaced by ŵ = q·s as the kernels store them.
    struct QuantisedWeights: WeightSource {
        var base: WeightSource
        /// Row width of every matmul weight, by name.
        var widths: [String: Int]
        var layout: QuantizedLayout
        func floats(_ name: String) throws -> [Float] {
            let w = try base.floats(name)
            guard let width = widths[name] else { return w }
            let rows = w.count / width
            var q = [UInt8](repeating: 0, count: layout.bytes(elements: w.count))
            XCTAssertEqual(w.withUnsafeBytes { layout.quantize($0.baseAddress!, dtype: .f32, rows: rows, width: width, into: &q) }, -1)
            var out = [Float](repeating: 0, count: w.count)
            (layout.bits == 4 ? attune_q4_dequantize : attune_q8_dequantize)(q, Int64(rows), Int64(width), Int64(layout.group), layout.cScale, &out)
            return out
        }
    }

    /// Row widths of the weights the importer's graph multiplies by (linear) or gathers
    /// from (embedding).
    static func matmulWidths(_ g: Graph) -> [String: Int] {
        var out: [String: Int] = [:]
        for node in g.nodes {
            let v: Value
            switch node.op {
            case .linear: v = node.inputs[1]
            case .embedding: v = node.inputs[0]
            default: continue
            }
            if case .weight(let name) = g.nodes[v.node].op { out[name] = g.type(of: v).shape.last!.fixedValue! }
        }
        return out
    }

    static func quantizedOptions(chunk: Int, _ layout: QuantizedLayout = layout) -> CompileOptions {
        var o = CompileOptions(maxChunk: chunk, maxContext: 64)
        o.weights = .quantized(layout)
        return o
    }

    static func maxError(_ a: [Float], _ b: [Double]) -> Double { zip(a, b).map { abs(Double($0) - $1) }.max() ?? .infinity }

    /// Every matmul weight is an int8 slot (the tied qwen2 table once, serving the gather
    /// and the vocabulary projection), norms stay f32; the manifest maps the quantised rows
    /// from the compile cache, nothing is written into the checkpoint's folder, and the
    /// next compile finds them there.
    func testMatmulWeightsAreQuantisedOnceIntoTheCache() throws {
        let fixture = try GoldenModel("qwen2")
        let before = try FileManager.default.contentsOfDirectory(atPath: fixture.folder.path).sorted()
        let model = try ModelSource.load(fixture.folder.path)
        let toolchain = try Toolchain.detect()
        let artifacts = try ModelCompiler.compile(model, Self.quantizedOptions(chunk: 8), toolchain: toolchain)
        let int8 = artifacts.module.constants.filter { $0.format == .quantized(Self.layout) }
        // Embedding (tied: also the vocabulary projection), and per layer q, k, v, o, gate, up, down.
        XCTAssertEqual(int8.count, 1 + 2 * 7)
        XCTAssertTrue(artifacts.module.constants.filter { $0.format == .f32 }.allSatisfy { $0.elements == $0.width },
                      "norm weights and biases (vectors) stay f32")
        XCTAssertTrue(artifacts.module.kernelSources.contains("linear_q8.c"))
        XCTAssertTrue(artifacts.module.source.contains("attune_q8_linear_blocks("))
        XCTAssertTrue(artifacts.module.source.contains("attune_q8_embedding("))
        let manifest = try String(contentsOf: artifacts.manifest, encoding: .utf8)
        XCTAssertTrue(manifest.contains("slot 0 8192 1 int8_g32_f16\npart "), manifest)
        let blob = try XCTUnwrap(QuantizedWeights.prepare(artifacts.module, cacheDirectory: toolchain.cacheDirectory))
        XCTAssertFalse(blob.created, "the compile made it; this call finds it")
        XCTAssertTrue(blob.url.path.hasPrefix(toolchain.cacheDirectory.path))
        XCTAssertTrue(manifest.contains(blob.url.path))
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: fixture.folder.path).sorted(), before)
        // Each slot starts on a 64-byte boundary.
        XCTAssertEqual(blob.size, int8.reduce(0) { ($0 + Self.layout.bytes(elements: $1.elements) + 63) / 64 * 64 })

        // Another group is another file; the same group, the same file.
        let g64 = try ModelCompiler.emit(model, Self.quantizedOptions(chunk: 8, QuantizedLayout(bits: 8, group: 64))).1
        let other = try XCTUnwrap(QuantizedWeights.prepare(g64, cacheDirectory: toolchain.cacheDirectory))
        XCTAssertNotEqual(other.url, blob.url)
        let again = try XCTUnwrap(QuantizedWeights.prepare(try ModelCompiler.emit(model, Self.quantizedOptions(chunk: 16)).1,
                                                           cacheDirectory: toolchain.cacheDirectory))
        XCTAssertEqual(again.url, blob.url, "a different chunk size quantises nothing again")
        XCTAssertFalse(again.created)
    }

    /// A checkpoint rewritten in place (same size, new values) is quantised again.
    func testAChangedCheckpointIsQuantisedAgain() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("attune-int8-\(UUID().uuidString)")
        try FileManager.default.copyItem(at: GoldenModel.root.appendingPathComponent("llama"), to: dir)
        let cache = FileManager.default.temporaryDirectory.appendingPathComponent("attune-int8-cache-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: dir); try? FileManager.default.removeItem(at: cache) }
        let first = try XCTUnwrap(QuantizedWeights.prepare(try ModelCompiler.emit(try ModelSource.load(dir.path), Self.quantizedOptions(chunk: 8)).1,
                                                           cacheDirectory: cache))
        XCTAssertTrue(first.created)
        let checkpoint = dir.appendingPathComponent("model.safetensors")
        try FileManager.default.setAttributes([.modificationDate: Date(timeIntervalSinceNow: 60)], ofItemAtPath: checkpoint.path)
        let second = try XCTUnwrap(QuantizedWeights.prepare(try ModelCompiler.emit(try ModelSource.load(dir.path), Self.quantizedOptions(chunk: 8)).1,
                                                            cacheDirectory: cache))
        XCTAssertTrue(second.created)
        XCTAssertNotEqual(first.url, second.url)
    }

    /// Against the float64 interpreter on ŵ (the weights the kernels multiply by), per path:
    ///  - prefill (16-row chunks, bf16 panels): activations and ŵ rounded to bf16, 2⁻⁸
    ///    relative per product on each matmul's S = Σ|x·ŵ|, as the bf16 GEMM: 6·2⁻⁸ of
    ///    max|logit| (BF16WeightsTests argues the factor for the 9 matmuls on a logit's
    ///    path); measured 5.0·2⁻⁸ on both fixtures;
    ///  - decode (chunks of ≤ 8 rows, the int8 GEMV): activations quantised per run of 32,
    ///    |x − x̂| ≤ max|x_run|/254 = (max|x_run|/|x|)/254 relative: the bf16 argument with
    ///    2⁻⁸ replaced by 1/254 times a run's max-to-mean magnitude ratio, about 2.5 for
    ///    Gaussian runs of 32, gives 15/254; asserted 16/254 of max|logit| (measured 10.7
    ///    and 13.5/254 on llama and qwen2).
    func testKernelArithmeticAgainstFloat64OnQuantisedWeights() throws {
        try Self.checkKernelArithmetic(Self.layout)
    }

    /// The test above for any layout (Q4WeightsTests runs it for q4: the same activation
    /// roundings, so the same bounds).
    static func checkKernelArithmetic(_ layout: QuantizedLayout) throws {
        let toolchain = try Toolchain.detect()
        for name in ["llama", "qwen2"] {
            let fixture = try GoldenModel(name)
            let model = try ModelSource.load(fixture.folder.path)
            let interp = try ReferenceInterpreter(graph: model.graph, weights: QuantisedWeights(base: model.weights, widths: Self.matmulWidths(model.graph), layout: layout))
            for (chunk, bound, path) in [(8, 16.0 / 254, "GEMV"), (16, 6 * 0x1p-8, "GEMM")] {
                let session = try CompiledModel(artifacts: try ModelCompiler.compile(model, Self.quantizedOptions(chunk: chunk, layout), toolchain: toolchain))
                let seq = fixture.golden.sequences.first { $0.input_ids.count > 8 }!
                interp.reset()
                let want = try interp.run(inputs: ["tokens": F64Tensor(ids: seq.input_ids), "positions": F64Tensor(ids: Array(0..<seq.input_ids.count))])["logits"]!.data
                let got = try session.prefill(seq.input_ids.map(Int32.init))
                let scale = want.map(abs).max()!
                let err = Self.maxError(got, want)
                print("\(layout.formatWord) \(name) \(path) prefill: max error \(err / scale) of max |logit| (bound \(bound))")
                XCTAssertLessThanOrEqual(err, bound * scale, "\(name) \(path)")
                XCTAssertGreaterThan(err, 1e-6 * scale, "\(name) \(path): the activations' rounding is real")
            }
        }
    }

    /// The whole error against transformers' float64 logits of the unquantised weights,
    /// decode path (chunks of 8): weight rounding |w − ŵ| ≤ s/2 = max|w_group|/254 is the
    /// same size per element as the activations' (one more such term per product), so
    /// the bound is twice the one above, 32/254 of max|logit| (NUMERICS.md; measured at
    /// most 21.7/254, qwen2). Greedy ids are transformers' wherever the float64 top-2
    /// margin exceeds twice the measured error.
    func testFixturesAgainstTransformers() throws {
        let toolchain = try Toolchain.detect()
        var greedyChecked = 0
        for name in GoldenModel.names {
            let fixture = try GoldenModel(name)
            let session = try CompiledModel(artifacts: try ModelCompiler.compile(try ModelSource.load(fixture.folder.path), Self.quantizedOptions(chunk: 8), toolchain: toolchain))
            for (i, seq) in fixture.golden.sequences.enumerated() {
                session.reset()
                let logits = try session.prefill(seq.input_ids.map(Int32.init))
                let want = try fixture.logits(seq.logits_f64).data.map(Double.init)
                let scale = want.map(abs).max()!
                let err = Self.maxError(logits, want)
                print("int8 \(name) seq \(i): max error \(err / scale) of max |logit|")
                XCTAssertLessThanOrEqual(err, 32.0 / 254 * scale, "\(name) seq \(i)")
                let last = Array(want.suffix(session.vocab))
                let sorted = last.sorted(by: >)
                if sorted[0] - sorted[1] > 2 * err {
                    greedyChecked += 1
                    let got = Array(logits.suffix(session.vocab))
                    XCTAssertEqual(got.indices.max { got[$0] < got[$1] }!, seq.greedy_new_ids[0], "\(name) seq \(i) first greedy id")
                }
            }
        }
        print("int8: first greedy id checked on \(greedyChecked) of \(2 * GoldenModel.names.count) prompts")
        XCTAssertGreaterThan(greedyChecked, 0, "the margins allow some greedy checks")
    }

    /// Layouts a model's widths cannot hold are refused at compile, naming the weight.
    func testLayoutsTheWidthsCannotHoldAreRefused() throws {
        let model = try ModelSource.load(GoldenModel.root.appendingPathComponent("llama").path)
        XCTAssertThrowsError(try ModelCompiler.emit(model, Self.quantizedOptions(chunk: 8, QuantizedLayout(bits: 8, group: 96)))) { error in
            XCTAssertEqual("\(error)", "--weights int8:group=96,scale=f16: weight 'model.embed_tokens.weight' has rows of 64 weights: int8 weights: the group size must be a multiple of 32 that divides the input width")
        }
        XCTAssertThrowsError(try WeightPolicy(parsing: "int8:group=48")) { XCTAssertEqual("\($0)", "--weights int8: group must be a positive multiple of 32, got '48'") }
        XCTAssertThrowsError(try WeightPolicy(parsing: "int8:scale=bf16")) { XCTAssertEqual("\($0)", "--weights int8: scale must be f16 or f32, got 'bf16'") }
        XCTAssertThrowsError(try WeightPolicy(parsing: "int8:bits=4")) { XCTAssertEqual("\($0)", "--weights int8 takes group=N and scale=f16|f32, got 'bits=4'") }
        XCTAssertEqual(try WeightPolicy(parsing: "int8:group=64,scale=f32"), .quantized(QuantizedLayout(bits: 8, group: 64, scale: .f32)))
        XCTAssertEqual(try WeightPolicy(parsing: "int8"), .quantized(QuantizedLayout(bits: 8, group: 32, scale: .f16)))
    }
}
