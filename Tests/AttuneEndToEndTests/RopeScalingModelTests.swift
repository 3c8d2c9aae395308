import AttuneIR
import AttuneNumerics
import AttuneRuntime
import XCTest

/// The scaled-RoPE Llama checkpoints (Tests/Fixtures/models/llama_rope_*) against
/// transformers: the float64 reference against its float64 logits, the compiled model
/// against its float32 logits (≤ 1e-4), both against its greedy generations.
/// dynamic and longrope switch tables at 8 positions: the 16-token prompt runs past that
/// in one pass, the 5-token one crosses it while decoding.
final class RopeScalingModelTests: XCTestCase {
    /// A length-dependent table needs the whole prompt in one prefill chunk to equal
    /// transformers' single forward pass (a chunk's table is that of the length it reaches).
    static let fixtures: [(name: String, lengthDependent: Bool)] = [
        ("llama_rope_linear", false), ("llama_rope_dynamic", true), ("llama_rope_yarn", false),
        ("llama_rope_longrope", true), ("llama_rope_llama3", false),
    ]

    func testReferenceMatchesTransformersFloat64() throws {
        for (name, _) in Self.fixtures {
            let fixture = try GoldenModel(name)
            let model = try ModelSource.load(fixture.folder.path)
            XCTAssertTrue(model.graph.nodes.contains { if case .rope(let a) = $0.op { return a.frequencies != .theta(10000) } else { return false } },
                          "\(name): imported as plain RoPE")
            let interp = try ReferenceInterpreter(graph: model.graph, weights: model.weights)
            for (i, seq) in fixture.golden.sequences.enumerated() {
                interp.reset()
                let got = try interp.run(inputs: ["tokens": F64Tensor(ids: seq.input_ids),
                                                  "positions": F64Tensor(ids: Array(0..<seq.input_ids.count))])["logits"]!
                let want = try fixture.logits(seq.logits_f64)
                XCTAssertEqual(got.shape, want.shape, "\(name) seq \(i)")
                // The .npy reader stores the float64 goldens as float32: ~1e-6 of rounding.
                let err = zip(got.data, want.data).map { abs($0 - Double($1)) }.max() ?? .infinity
                XCTAssertLessThanOrEqual(err, 2e-6, "\(name) seq \(i) logits")

                var generated: [Int] = []
                var last = Array(got.data.suffix(got.shape[1]))
                for position in seq.input_ids.count..<(seq.input_ids.count + seq.greedy_new_ids.count) {
                    let next = last.indices.max { last[$0] < last[$1] }!
                    generated.append(next)
                    last = try interp.run(inputs: ["tokens": F64Tensor(ids: [next]), "positions": F64Tensor(ids: [position])])["logits"]!.data
                }
                XCTAssertEqual(generated, seq.greedy_new_ids, "\(name) seq \(i) greedy")
            }
        }
    }

    func testCompiledMatchesTransformersFloat32() throws {
        let toolchain = try Toolchain.detect()
        for (name, lengthDependent) in Self.fixtures {
            let fixture = try GoldenModel(name)
            let model = try ModelSource.load(fixture.folder.path)
            // Static tables: a chunk of 6 runs the prompt as three passes. max_position_embeddings
            // is 8 for dynamic, so the context is given.
            let options = CompileOptions(maxChunk: lengthDependent ? 16 : 6, maxContext: 64)
            let artifacts = try ModelCompiler.compile(model, options, toolchain: toolchain)
            XCTAssertEqual(artifacts.report.output.nodes.filter { if case .qkvRope = $0.op { return true } else { return false } }.count, 2,
                           "\(name): RoPE not fused into the projection")
            let session = try CompiledModel(artifacts: artifacts)
            try fixture.assertCompiledMatchesGoldens(session)
        }
    }

    /// The goldens can tell the variants apart: plain RoPE (for dynamic, a table that never
    /// grows; for longrope, the short factors only) moves seq 0's logits by far more than
    /// the tolerances above.
    func testTheScalingChangesTheLogits() throws {
        for (name, _) in Self.fixtures {
            let fixture = try GoldenModel(name)
            var model = try ModelSource.load(fixture.folder.path)
            for i in model.graph.nodes.indices {
                guard case .rope(var a) = model.graph.nodes[i].op else { continue }
                switch a.frequencies.source {
                case .longrope(let short, _, _): a.frequencies = RopeFrequencies(.table(short), attentionScaling: a.frequencies.attentionScaling)
                default: a.frequencies = .theta(10000)
                }
                model.graph.nodes[i].op = .rope(a)
            }
            let interp = try ReferenceInterpreter(graph: model.graph, weights: model.weights)
            let seq = fixture.golden.sequences[0]
            let got = try interp.run(inputs: ["tokens": F64Tensor(ids: seq.input_ids),
                                              "positions": F64Tensor(ids: Array(0..<seq.input_ids.count))])["logits"]!
            let want = try fixture.logits(seq.logits_f64)
            let diff = zip(got.data, want.data).map { abs($0 - Double($1)) }.max() ?? 0
            XCTAssertGreaterThan(diff, 1e-2, "\(name): the scaled RoPE makes no difference")
        }
    }

    /// Chunked prefill of a length-dependent RoPE: each chunk uses the table of the length
    /// it reaches, in the C (from the positions) as in the reference (chunk for chunk);
    /// batched sequences are refused.
    func testChunkedPrefillMatchesTheReference() throws {
        let toolchain = try Toolchain.detect()
        for (name, lengthDependent) in Self.fixtures where lengthDependent {
            let fixture = try GoldenModel(name)
            let model = try ModelSource.load(fixture.folder.path)
            let artifacts = try ModelCompiler.compile(model, CompileOptions(maxChunk: 6, maxContext: 64), toolchain: toolchain)
            XCTAssertTrue(artifacts.module.source.contains("attune_rope_length("), "\(name): the C does not pick its table from the length")
            let session = try CompiledModel(artifacts: artifacts)
            // One batched pass would share one table among sequences of different lengths.
            XCTAssertEqual(session.batchRefusal, "its RoPE table depends on each pass's length (dynamic NTK or LongRoPE)", name)
            XCTAssertThrowsError(try session.fork(2), name)
            let interp = try ReferenceInterpreter(graph: model.graph, weights: model.weights)
            let ids = fixture.golden.sequences[0].input_ids
            let compiled = try session.prefill(ids.map(Int32.init))
            var reference: [Double] = []
            for start in stride(from: 0, to: ids.count, by: 6) {
                let chunk = Array(ids[start..<min(start + 6, ids.count)])
                reference += try interp.run(inputs: ["tokens": F64Tensor(ids: chunk),
                                                     "positions": F64Tensor(ids: Array(start..<start + chunk.count))])["logits"]!.data
            }
            let err = zip(compiled, reference).map { abs(Double($0) - $1) }.max() ?? .infinity
            XCTAssertLessThanOrEqual(err, 1e-4, "\(name): chunked prefill")
            // And that differs from one pass: the first chunk ran with the original table.
            let whole = try fixture.logits(fixture.golden.sequences[0].logits)
            XCTAssertGreaterThan(zip(compiled, whole.data).map { abs($0 - $1) }.max() ?? 0, 1e-3, name)
        }
    }
}
