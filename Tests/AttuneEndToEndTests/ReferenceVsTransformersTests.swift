import AttuneNumerics
import AttuneRuntime
import XCTest

/// The float64 reference interpreter, running the unfused graph the importer builds,
/// against transformers' own logits and greedy generations.
final class ReferenceVsTransformersTests: XCTestCase {
    func testLogitsAndGreedyGenerationMatchTransformers() throws {
        for name in GoldenModel.names {
            let fixture = try GoldenModel(name)
            let model = try ModelSource.load(fixture.folder.path)
            let interp = try ReferenceInterpreter(graph: model.graph, weights: model.weights)
            for (i, seq) in fixture.golden.sequences.enumerated() {
                interp.reset()
                let out = try interp.run(inputs: ["tokens": F64Tensor(ids: seq.input_ids),
                                                  "positions": F64Tensor(ids: Array(0..<seq.input_ids.count))])
                let want = try fixture.logits(seq.logits_f64)
                let got = out["logits"]!
                XCTAssertEqual(got.shape, want.shape, "\(name) seq \(i)")
                // The golden file holds float64 logits stored as float32 by the .npy reader: ~1e-6 of rounding.
                let err = zip(got.data, want.data).map { abs($0 - Double($1)) }.max() ?? .infinity
                XCTAssertLessThanOrEqual(err, 2e-6, "\(name) seq \(i) logits")

                var generated: [Int] = []
                var last = Array(got.data.suffix(got.shape[1]))
                var position = seq.input_ids.count
                for _ in seq.greedy_new_ids {
                    let next = last.indices.max { last[$0] < last[$1] }!
                    generated.append(next)
                    let step = try interp.run(inputs: ["tokens": F64Tensor(ids: [next]), "positions": F64Tensor(ids: [position])])
                    last = step["logits"]!.data
                    position += 1
                }
                XCTAssertEqual(generated, seq.greedy_new_ids, "\(name) seq \(i) greedy")
            }
        }
    }
}
