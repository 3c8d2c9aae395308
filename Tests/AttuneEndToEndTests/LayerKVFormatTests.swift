import AttuneCodegen
import AttuneKernels
import AttunePasses
import AttuneRuntime
import Foundation
import XCTest

/// `--layer-kv LAYER=FORMAT`: each layer's cache in its own format. Giving every layer the
/// `--kv` format by layer is the same model bit for bit; so is overriding every layer back
/// to f32; a mix runs, and lets a layer whose kernel reads f32 only keep it.
final class LayerKVFormatTests: XCTestCase {
    let ids: [Int32] = [1, 17, 42, 99, 3, 64, 127, 8, 5, 71, 30, 2]

    func logits(_ model: LoadedModel, _ configure: (inout CompileOptions) -> Void) throws -> [Float] {
        var options = CompileOptions(maxChunk: 8, maxContext: 32)
        configure(&options)
        let compiled = try CompiledModel(artifacts: try ModelCompiler.compile(model, options, toolchain: try Toolchain.detect()))
        // A prefill of two chunks, then decode steps: both phases read the caches as stored.
        var out = try compiled.prefill(Array(ids[..<9]))
        for t in ids[9...] { out += try compiled.decodeStep(t) }
        return out
    }

    func testEachLayersCacheTakesItsFormat() throws {
        let model = try ModelSource.load(try GoldenModel("llama").folder.path)
        let f32 = try logits(model) { _ in }
        let int8 = try logits(model) { $0.kvFormat = .int8 }
        XCTAssertNotEqual(int8, f32)
        XCTAssertEqual(try logits(model) { $0.kvFormatByLayer = [0: .int8, 1: .int8] }, int8, "every layer int8 by layer is --kv int8")
        XCTAssertEqual(try logits(model) { $0.kvFormat = .int8; $0.kvFormatByLayer = [0: .f32, 1: .f32] }, f32, "and every layer back to f32 is f32")

        let mixed = try logits(model) { $0.kvFormatByLayer = [1: .int8] }
        let mixedError = zip(mixed, f32).map { abs($0 - $1) }.max()!, int8Error = zip(int8, f32).map { abs($0 - $1) }.max()!
        XCTAssertGreaterThan(mixedError, 0, "layer 1's cache is int8")
        XCTAssertLessThan(mixedError, int8Error, "layer 0's stays f32")
        var options = CompileOptions(maxChunk: 8, maxContext: 32)
        options.kvFormatByLayer = [1: .int8, 0: .bf16]
        let (_, module) = try ModelCompiler.emit(model, options)
        XCTAssertTrue(module.source.contains("static const int64_t cache_element_bytes[4] = {2, 2, 1, 1};"), "per cache: layer 0 bf16, layer 1 int8")
        XCTAssertTrue(module.source.contains("static const int64_t cache_heads[4] = {0, 0, 2, 2};"), "scales for the int8 caches only")
        XCTAssertTrue(module.source.contains("K/V stored per layer, int8 in layers 1; bf16 in layers 0"))
        let (_, uniform) = try ModelCompiler.emit(model, CompileOptions(maxChunk: 8, maxContext: 32))
        XCTAssertFalse(uniform.source.contains("cache_element_bytes"), "one format: the C of before")
    }

    /// sparge reads an f32 cache only: with --kv int8 a sparge layer is refused, with the
    /// other layers int8 by layer it compiles and runs.
    func testALayerReadingF32OnlyKeepsItWhileOthersNarrow() throws {
        let model = try ModelSource.load(try GoldenModel("llama").folder.path)
        let sparge = KernelChoice(kernel: "sparge")
        XCTAssertThrowsError(try ModelCompiler.emit(model, {
            var o = CompileOptions(kernels: KernelOverrides(byLayer: [0: sparge]), maxChunk: 8, maxContext: 32)
            o.kvFormat = .int8
            return o
        }())) { XCTAssertTrue("\($0)".contains("reads K/V as f32 only, not int8"), "\($0)") }
        let mixed = try logits(model) { $0.kernels = KernelOverrides(byLayer: [0: sparge]); $0.kvFormatByLayer = [1: .int8] }
        XCTAssertEqual(mixed.count, ids.count * 128)
        XCTAssertTrue(mixed.allSatisfy(\.isFinite))

        XCTAssertThrowsError(try ModelCompiler.emit(model, {
            var o = CompileOptions(maxChunk: 8, maxContext: 32)
            o.kvFormatByLayer = [2: .int8]
            return o
        }())) { XCTAssertEqual("\($0)", "a per-layer choice (--layer-kv or a policy file) names layer 2, but the model has layers 0...1") }
        XCTAssertEqual(ModelCompiler.kvBytesPerPosition(model.graph, .f32, byLayer: [1: .int8]) * 2,
                       ModelCompiler.kvBytesPerPosition(model.graph, .f32) + ModelCompiler.kvBytesPerPosition(model.graph, .int8))
    }
}
