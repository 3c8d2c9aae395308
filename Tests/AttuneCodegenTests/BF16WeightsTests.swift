import AttuneCodegen
import AttuneIR
import AttuneNumerics
import AttuneRuntime
import CAttuneKernels
import XCTest

/// `--weights bf16` on weights held in f32: matmul weights (linear weights, the embedding
/// table, its tied use as the vocabulary projection) are rounded to bf16 at compile time
/// and read by the bf16 kernels; norm weights and biases stay f32. Checked against the
/// float64 interpreter given the same rounded weights.
final class BF16WeightsTests: XCTestCase {
    /// Weights of `base`, with the names in `rounded` rounded to bf16 (to nearest even).
    struct RoundedWeights: WeightSource {
        var base: WeightSource
        var rounded: Set<String>
        func floats(_ name: String) throws -> [Float] {
            let v = try base.floats(name)
            return rounded.contains(name) ? v.map { Float(bitPattern: UInt32($0.bf16Bits) << 16) } : v
        }
    }

    /// Names of the weights matmuls read: the weight operand of linear, qkv_rope and
    /// swiglu, the table of embedding, through any layout op over constants.
    static func matmulWeights(_ g: Graph) -> Set<String> {
        func names(_ v: Value) -> [String] {
            let node = g.nodes[v.node]
            if case .weight(let name) = node.op { return [name] }
            switch node.op {
            case .concat, .reshape, .slice, .transpose, .repeatInterleave: return node.inputs.flatMap(names)
            default: return []
            }
        }
        var out: Set<String> = []
        for node in g.nodes {
            switch node.op {
            case .linear, .qkvRope, .swiGLU: out.formUnion(names(node.inputs[1]))
            case .embedding: out.formUnion(names(node.inputs[0]))
            default: break
            }
        }
        return out
    }

    func testSwiftAndCRoundToTheSameBF16() {
        var values: [Float] = [0, -0, 1, -1, 1 + 0x1p-8, 1 + 3 * 0x1p-8, 1 + 0x1p-8 + 0x1p-20, .greatestFiniteMagnitude,
                               -.greatestFiniteMagnitude, .infinity, -.infinity, .nan, .leastNonzeroMagnitude,
                               .leastNormalMagnitude, 3.140625, 0.1, -0.7123, 65504, 1e-30]
        var state: UInt32 = 1
        for _ in 0..<1000 {
            state = state &* 1_664_525 &+ 1_013_904_223
            values.append(Float(bitPattern: state))
        }
        var c = [UInt16](repeating: 0, count: values.count)
        attune_f32_to_bf16(values, Int64(values.count), &c)
        for (i, v) in values.enumerated() { XCTAssertEqual(c[i], v.bf16Bits, "\(v) (bits \(String(v.bitPattern, radix: 16)))") }
        // Ties go to even; anything past the tie rounds up; overflow rounds to infinity.
        XCTAssertEqual((1 + 0x1p-8 as Float).bf16Bits, 0x3F80)
        XCTAssertEqual((1 + 3 * 0x1p-8 as Float).bf16Bits, 0x3F82)
        XCTAssertEqual((1 + 0x1p-8 + 0x1p-20 as Float).bf16Bits, 0x3F81)
        XCTAssertEqual(Float.greatestFiniteMagnitude.bf16Bits, 0x7F80)
        XCTAssertTrue(Float(bitPattern: UInt32(Float.nan.bf16Bits) << 16).isNaN)
    }

    /// The compile-time rounding into the compile cache (`attune_bf16_round`): f32 as
    /// Swift's `bf16Bits`, every f16 bit pattern widened exactly first, over several
    /// parallel blocks; the first finite value that overflows to infinity is reported
    /// (the lowest index, whichever thread finds it), NaN and Inf are not overflows.
    func testCompileTimeRoundingOfF32AndF16() {
        var state: UInt32 = 7
        var f32 = (0..<200_000).map { _ -> Float in
            state = state &* 1_664_525 &+ 1_013_904_223
            return Float(bitPattern: state & 0xBFFF_FFFF)   // finite, below 2^64 in magnitude
        }
        f32[5] = .nan
        f32[6] = -.infinity
        var out = [UInt16](repeating: 0, count: f32.count)
        XCTAssertEqual(attune_bf16_round(f32, 0, Int64(f32.count), &out), -1)
        XCTAssertEqual(out, f32.map(\.bf16Bits))
        f32[150_001] = .greatestFiniteMagnitude
        f32[70_000] = -.greatestFiniteMagnitude
        XCTAssertEqual(attune_bf16_round(f32, 0, Int64(f32.count), &out), 70_000)

        let f16 = (0...UInt16.max).map { $0 }
        var rounded = [UInt16](repeating: 0, count: f16.count)
        XCTAssertEqual(attune_bf16_round(f16, 1, Int64(f16.count), &rounded), -1)
        for (i, h) in f16.enumerated() {
            let want = Float(Float16(bitPattern: h))
            if want.isNaN { XCTAssertEqual(rounded[i] & 0x7FC0, 0x7FC0, "f16 \(h)"); continue }
            XCTAssertEqual(rounded[i], want.bf16Bits, "f16 bits \(String(h, radix: 16))")
        }
    }

    func testBF16PolicyRoundsMatmulWeightsOnly() throws {
        let g = try FusedDecoder.graph()
        let w = FusedDecoder.weights(for: g)
        let bf16 = try CEmitter.emit(g, weights: w, options: CodegenOptions(maxChunk: 4, maxContext: 64, weights: .bf16))
        let matmul = Self.matmulWeights(g)
        XCTAssertFalse(matmul.isEmpty)
        for slot in bf16.constants {
            let names = slot.parts.map { $0.name.replacingOccurrences(of: " (rounded to bf16)", with: "") }
            XCTAssertEqual(slot.format == .bf16, names.allSatisfy(matmul.contains), "\(names)")
            if slot.format == .bf16 { XCTAssertTrue(slot.isMappedInPlace, "rounded once at compile time, mapped from the blob") }
        }
        XCTAssertTrue(bf16.source.contains("attune_op_embedding_bf16("))
        XCTAssertTrue(bf16.source.contains("attune_op_linear_bf16_blocks("))
        XCTAssertTrue(bf16.kernelSources.contains("linear_bf16.c"))
        // As stored (auto): these weights are held in memory as f32, so nothing changes.
        let auto = try CEmitter.emit(g, weights: w, options: CodegenOptions(maxChunk: 4, maxContext: 64))
        XCTAssertTrue(auto.constants.allSatisfy { $0.format == .f32 })
        XCTAssertFalse(auto.kernelSources.contains("linear_bf16.c"))
    }

    func run(_ g: Graph, _ w: WeightSource, chunk: Int, prompt: [Int], steps: Int) throws -> (compiled: [[Float]], reference: [[Double]]) {
        let module = try CEmitter.emit(g, weights: w, options: CodegenOptions(maxChunk: chunk, maxContext: 64, weights: .bf16))
        let model = try CompiledModel(module: module, toolchain: try Toolchain.detect())
        let interp = try ReferenceInterpreter(graph: g, weights: RoundedWeights(base: w, rounded: Self.matmulWeights(g)))
        func reference(_ tokens: [Int], _ start: Int) throws -> [Double] {
            try interp.run(inputs: ["tokens": F64Tensor(ids: tokens), "positions": F64Tensor(ids: Array(start..<(start + tokens.count)))])["logits"]!.data
        }
        var compiled = [try model.prefill(prompt.map(Int32.init))]
        var ref = [try reference(prompt, 0)]
        for step in 0..<steps {
            let last = compiled.last!.suffix(FusedDecoder.vocab)
            let next = last.indices.max { last[$0] < last[$1] }! - last.startIndex
            compiled.append(try model.decodeStep(Int32(next)))
            ref.append(try reference([next], prompt.count + step))
        }
        return (compiled, ref)
    }

    static func maxError(_ a: [Float], _ b: [Double]) -> Double { zip(a, b).map { abs(Double($0) - $1) }.max() ?? .infinity }

    /// Short chunks run the GEMV path (f32 activations): the only difference to the
    /// reference is f32 arithmetic, so the f32 tests' tolerance holds.
    func testGEMVPathMatchesReferenceOnRoundedWeights() throws {
        let g = try FusedDecoder.graph()
        let (compiled, ref) = try run(g, FusedDecoder.weights(for: g), chunk: 4, prompt: [3, 17, 4, 49, 0, 22, 8, 8, 31, 5, 12], steps: 4)
        for (i, (c, r)) in zip(compiled, ref).enumerated() { XCTAssertLessThanOrEqual(Self.maxError(c, r), 2e-4, "pass \(i)") }
    }

    /// A chunk of 11 rows runs the GEMM path: activations rounded to bf16 before every
    /// matmul, a relative error up to 2^-8 of each output's S = sum |x_i w_i|. This model
    /// has 9 matmuls on a logit's path (qkv, o, gate/up, down per layer, the vocabulary
    /// projection); the bound asserted is 6 * 2^-8 of the logits' largest magnitude
    /// (measured: 2.7, as the roundings are independent and partly cancel). Decode steps
    /// (GEMV, f32 activations) read the K/V that prefill wrote, so they inherit its error.
    func testGEMMPathStaysWithinActivationRounding() throws {
        let g = try FusedDecoder.graph()
        let (compiled, ref) = try run(g, FusedDecoder.weights(for: g), chunk: 16, prompt: [3, 17, 4, 49, 0, 22, 8, 8, 31, 5, 12], steps: 2)
        let scale = ref[0].map(abs).max()!
        let prefill = Self.maxError(compiled[0], ref[0])
        XCTAssertGreaterThan(prefill, 2e-4, "the GEMM path rounds activations: it is not the f32 result")
        XCTAssertLessThanOrEqual(prefill, 6 * 0x1p-8 * scale)
        for i in 1..<compiled.count {
            let e = Self.maxError(compiled[i], ref[i])
            XCTAssertLessThanOrEqual(e, 6 * 0x1p-8 * scale, "decode step \(i)")
        }
    }
}
