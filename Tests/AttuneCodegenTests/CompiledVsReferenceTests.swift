import AttuneCodegen
import AttuneIR
import AttuneNumerics
import AttuneRuntime
import XCTest

final class CompiledVsReferenceTests: XCTestCase {
    func compile(_ g: Graph, _ w: WeightSource, options: CodegenOptions = CodegenOptions(maxChunk: 8, maxContext: 64)) throws -> CompiledModel {
        let module = try CEmitter.emit(g, weights: w, options: options)
        return try CompiledModel(module: module, toolchain: try Toolchain.detect())
    }

    func reference(_ interp: ReferenceInterpreter, tokens: [Int], start: Int) throws -> [Double] {
        let out = try interp.run(inputs: ["tokens": F64Tensor(ids: tokens), "positions": F64Tensor(ids: Array(start..<(start + tokens.count)))])
        return out["logits"]!.data
    }

    func maxDiff(_ a: [Float], _ b: [Double]) -> Double {
        XCTAssertEqual(a.count, b.count)
        return zip(a, b).map { abs(Double($0) - $1) }.max() ?? .infinity
    }

    /// Prefill (in chunks smaller than the prompt), then greedy decode steps: the compiled
    /// model's logits equal the float64 interpreter's to fp32 rounding.
    func testCompiledMatchesReferencePrefillAndDecode() throws {
        for window: Int? in [nil, 5] {
            let g = try FusedDecoder.graph(window: window)
            let w = FusedDecoder.weights(for: g)
            let model = try compile(g, w)
            let interp = try ReferenceInterpreter(graph: g, weights: w)
            let prompt = [3, 17, 4, 49, 0, 22, 8, 8, 31, 5, 12]  // 11 tokens, chunk 8: two forward passes
            let logits = try model.prefill(prompt.map(Int32.init))
            let ref = try reference(interp, tokens: prompt, start: 0)
            XCTAssertLessThanOrEqual(maxDiff(logits, ref), 2e-4, "prefill, window \(String(describing: window))")
            var last = Array(logits.suffix(FusedDecoder.vocab))
            for step in 0..<4 {
                let next = last.indices.max { last[$0] < last[$1] }!
                last = try model.decodeStep(Int32(next))
                let r = try reference(interp, tokens: [next], start: prompt.count + step)
                XCTAssertLessThanOrEqual(maxDiff(last, r), 2e-4, "decode step \(step)")
            }
            XCTAssertEqual(model.length, prompt.count + 4)
        }
    }

    /// Every RoPE frequency source, on a partial rotary dim (4 of 8) so the pass-through
    /// columns are checked too: the C (its own tables, its own dynamic NTK) equals the
    /// reference through chunked prefill and decode steps that cross the switch length 6.
    func testEveryRopeFrequencySourceMatchesReference() throws {
        let sources: [RopeFrequencies] = [
            RopeFrequencies(.theta(500), attentionScaling: 1.2),
            RopeFrequencies(.table([0.9, 0.05])),
            RopeFrequencies(.longrope(short: [1, 0.01], long: [0.3, 0.001], originalLength: 6), attentionScaling: 1.3),
            RopeFrequencies(.dynamicNTK(theta: 100, factor: 4, originalLength: 6)),
        ]
        for f in sources {
            var g = try FusedDecoder.graph()
            for i in g.nodes.indices {
                guard case .qkvRope(var a) = g.nodes[i].op else { continue }
                a.frequencies = f
                a.rotaryDim = 4
                g.nodes[i].op = .qkvRope(a)
            }
            try Verifier.verify(g)
            let w = FusedDecoder.weights(for: g)
            let model = try compile(g, w, options: CodegenOptions(maxChunk: 4, maxContext: 64))
            let interp = try ReferenceInterpreter(graph: g, weights: w)
            let prompt = [3, 17, 4, 49, 0]  // chunks of 4 and 1: lengths 4 and 5
            let logits = try model.prefill(prompt.map(Int32.init))
            var ref = try reference(interp, tokens: Array(prompt[0..<4]), start: 0)
            ref += try reference(interp, tokens: [prompt[4]], start: 4)
            XCTAssertLessThanOrEqual(maxDiff(logits, ref), 2e-4, "prefill, \(f)")
            var last = Array(logits.suffix(FusedDecoder.vocab))
            for step in 0..<4 {  // lengths 6 ... 9
                let next = last.indices.max { last[$0] < last[$1] }!
                last = try model.decodeStep(Int32(next))
                XCTAssertLessThanOrEqual(maxDiff(last, try reference(interp, tokens: [next], start: prompt.count + step)), 2e-4,
                                         "decode step \(step), \(f)")
            }
        }
    }

    /// `head_rms_norm` (Qwen3's q/k norm) normalises in place when nothing else reads its
    /// input, and on a copy when something does (here the residual add reads it too).
    func testHeadRMSNormInPlaceAndOnACopy() throws {
        for shared in [false, true] {
            var b = GraphBuilder(name: "head_norm")
            let tokens = b.input("tokens", .i32, ["seq"])
            _ = b.input("positions", .i32, ["seq"])
            let x = try b.add(.embedding, [b.weight("embed", .f32, [16, 12]), tokens])
            let y = try b.add(.linear(hasBias: false), [x, b.weight("proj", .f32, [12, 12])])
            let n = try b.add(.headRMSNorm(eps: 1e-6), [y, b.weight("ln_head", .f32, [4])])
            let h = shared ? try b.add(.add, [y, n]) : n
            b.output("logits", try b.add(.linear(hasBias: false), [h, b.weight("head", .f32, [16, 12])]))
            let w = FusedDecoder.weights(for: b.graph)
            let model = try compile(b.graph, w)
            let interp = try ReferenceInterpreter(graph: b.graph, weights: w)
            let prompt = [3, 1, 4, 1, 5, 9, 2, 6, 5, 3]
            let logits = try model.prefill(prompt.map(Int32.init))
            XCTAssertLessThanOrEqual(maxDiff(logits, try reference(interp, tokens: prompt, start: 0)), 1e-5, "shared \(shared)")
        }
    }

    func testRuntimeErrorsAreMessagesNotCrashes() throws {
        let g = try FusedDecoder.graph()
        let model = try compile(g, FusedDecoder.weights(for: g), options: CodegenOptions(maxChunk: 4, maxContext: 6))
        XCTAssertThrowsError(try model.prefill([1, 2, 999])) { XCTAssertTrue("\($0)".contains("token id 999"), "\($0)") }
        XCTAssertThrowsError(try model.prefill([1, 2, 3, 4, 5, 6, 7])) { XCTAssertTrue("\($0)".contains("context full"), "\($0)") }
    }

    func testEmittedCIsDeterministic() throws {
        let g = try FusedDecoder.graph()
        let w = FusedDecoder.weights(for: g)
        let a = try CEmitter.emit(g, weights: w), b = try CEmitter.emit(g, weights: w)
        XCTAssertEqual(a.source, b.source)
        XCTAssertEqual(a.constants, b.constants)
        XCTAssertEqual(a.derived, b.derived)
        XCTAssertLessThan(a.memoryPlan.arenaFloats, a.memoryPlan.unsharedFloats, "liveness must let buffers share")
    }
}
