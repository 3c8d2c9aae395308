import AttuneCodegen
import AttuneIR
import AttuneRuntime
import Foundation
import XCTest

/// `--weights-for PATTERN=FORMAT`: per-weight exceptions to `--weights` (llama-quantize's
/// per-tensor types), by checkpoint name, the first match winning; a merged matmul's
/// blocks must agree, and a pattern naming no weight is refused before any work.
final class WeightOverridesTests: XCTestCase {
    static func options(_ weights: WeightPolicy, _ overrides: [String]) throws -> CompileOptions {
        var o = CompileOptions(maxChunk: 8, maxContext: 64)
        o.weights = weights
        o.weightOverrides = try overrides.map(WeightOverride.init(parsing:))
        return o
    }

    /// The format of the slot holding the weight named `name`.
    static func format(of name: String, in module: EmittedModule) -> WeightFormat? {
        module.constants.first { $0.parts.contains { $0.name == name } }?.format
    }

    func testOverridesPickEachWeightsFormat() throws {
        let fixture = try GoldenModel("llama")
        let model = try ModelSource.load(fixture.folder.path)
        let q4 = QuantizedLayout(bits: 4), int8 = QuantizedLayout(bits: 8)
        // The first matching rule wins: layer 1's attention is bf16, the rest of layer 1 int8.
        // (Layer 1's int8 down projection reads a product nothing else reads: the consuming call.)
        let options = try Self.options(.quantized(q4), ["embed_tokens=int8", "layers.1.self_attn=bf16", "layers.1.=int8", "lm_head=f32"])
        let (_, module) = try ModelCompiler.emit(model, options)
        XCTAssertEqual(Self.format(of: "model.embed_tokens.weight", in: module), .quantized(int8))
        XCTAssertEqual(Self.format(of: "lm_head.weight", in: module), .f32)
        XCTAssertEqual(Self.format(of: "model.layers.0.mlp.down_proj.weight", in: module), .quantized(q4))
        XCTAssertEqual(Self.format(of: "model.layers.1.self_attn.q_proj.weight", in: module), .bf16)
        XCTAssertEqual(Self.format(of: "model.layers.1.self_attn.o_proj.weight", in: module), .bf16)
        XCTAssertEqual(Self.format(of: "model.layers.1.mlp.gate_proj.weight", in: module), .quantized(int8))
        for call in ["attune_q4_linear_blocks(", "attune_q8_linear_consuming(", "attune_op_linear_bf16_blocks(", "attune_q8_embedding("] {
            XCTAssertTrue(module.source.contains(call), call)
        }
        // The same compile without the exceptions differs only where they applied.
        let (_, plain) = try ModelCompiler.emit(model, try Self.options(.quantized(q4), []))
        XCTAssertEqual(Self.format(of: "model.embed_tokens.weight", in: plain), .quantized(q4))
    }

    /// A mixed model runs, and its logits sit between the formats it mixes: f32 with one
    /// layer's weights in q4 is closer to the f32 run than q4 everywhere is.
    func testMixedModelRunsCloserThanTheNarrowFormatAlone() throws {
        let fixture = try GoldenModel("llama")
        let model = try ModelSource.load(fixture.folder.path)
        let toolchain = try Toolchain.detect()
        let ids: [Int32] = [1, 17, 42, 99, 3, 64, 127, 8]
        func logits(_ options: CompileOptions) throws -> [Float] {
            try CompiledModel(artifacts: try ModelCompiler.compile(model, options, toolchain: toolchain)).prefill(ids)
        }
        let q4 = WeightPolicy.quantized(QuantizedLayout(bits: 4))
        let reference = try logits(try Self.options(.f32, []))
        let mixed = try logits(try Self.options(.f32, ["layers.0.=q4"]))
        let narrow = try logits(try Self.options(q4, []))
        let mixedError = zip(mixed, reference).map { abs($0 - $1) }.max()!
        let narrowError = zip(narrow, reference).map { abs($0 - $1) }.max()!
        XCTAssertGreaterThan(mixedError, 0, "layer 0's weights were quantised")
        XCTAssertLessThan(mixedError, narrowError)
    }

    func testBadOverridesAreOneLineErrors() throws {
        XCTAssertThrowsError(try WeightOverride(parsing: "lm_head")) {
            XCTAssertEqual(($0 as? CodegenError)?.message, "--weights-for expects PATTERN=FORMAT (e.g. lm_head=int8), got 'lm_head'")
        }
        XCTAssertThrowsError(try WeightOverride(parsing: "lm_head=q3")) {
            XCTAssertTrue(($0 as? CodegenError)?.message.hasPrefix("--weights-for lm_head: --weights expects auto, f32, bf16, int8 or q4") ?? false, "\($0)")
        }
        let model = try ModelSource.load(try GoldenModel("llama").folder.path)
        XCTAssertThrowsError(try ModelCompiler.emit(model, try Self.options(.auto, ["lm_hed=int8"]))) {
            XCTAssertEqual("\($0)", "--weights-for lm_hed=int8: no weight of this model has 'lm_hed' in its name (names look like 'model.layers.0.self_attn.q_proj.weight')")
        }
        // q, k and v run as one merged matmul: one of them alone cannot take another format.
        XCTAssertThrowsError(try ModelCompiler.emit(model, try Self.options(.auto, ["v_proj=int8"]))) {
            XCTAssertTrue("\($0)".contains("--weights-for gives the blocks of one merged matmul"), "\($0)")
        }
    }
}
