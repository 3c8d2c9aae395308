import AttuneNumerics
import AttuneRuntime
import Foundation
import XCTest

/// transformers' loading rules on real fixture folders, checked against transformers' results.
final class LoadingRulesTests: XCTestCase {
    var dir: URL!

    override func setUpWithError() throws {
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("attune-rules-\(UUID().uuidString)")
        try FileManager.default.copyItem(at: GoldenModel.root.appendingPathComponent("llama"), to: dir)
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: dir) }

    func setConfig(_ key: String, _ value: Any) throws {
        let url = dir.appendingPathComponent("config.json")
        var json = try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as! [String: Any]
        json[key] = value
        try JSONSerialization.data(withJSONObject: json).write(to: url)
    }

    /// The llama fixture claims tied embeddings but holds its own, different lm_head.weight.
    /// transformers then does not tie ("both are present in the checkpoints with different
    /// values, so we will NOT tie them"): its logits are exactly the untied golden ones
    /// (checked with transformers 5.24: max difference 0.0). Attune gives the same.
    func testTiedConfigWithDistinctLMHeadMatchesTransformers() throws {
        try setConfig("tie_word_embeddings", true)
        let fixture = try GoldenModel("llama")
        let model = try ModelSource.load(dir.path)
        XCTAssertEqual(model.graph.weights.filter { $0.name == "lm_head.weight" }.count, 1)
        let seq = fixture.golden.sequences[0]
        let interp = try ReferenceInterpreter(graph: model.graph, weights: model.weights)
        let out = try interp.run(inputs: ["tokens": F64Tensor(ids: seq.input_ids), "positions": F64Tensor(ids: Array(0..<seq.input_ids.count))])
        let want = try fixture.logits(seq.logits_f64)
        let err = zip(out["logits"]!.data, want.data).map { abs($0 - Double($1)) }.max() ?? .infinity
        XCTAssertLessThanOrEqual(err, 2e-6)
    }

    /// A config with fewer layers than the file holds: transformers would drop the extra
    /// layers with a warning; Attune refuses and names the first one.
    func testCheckpointWithMoreLayersThanTheConfigIsRefused() throws {
        try setConfig("num_hidden_layers", 1)
        XCTAssertThrowsError(try ModelSource.load(dir.path)) { error in
            XCTAssertEqual("\(error)", "\(dir.path): unexpected tensor 'model.layers.1.input_layernorm.weight' (num_hidden_layers is 1) (and 8 more problems)")
        }
    }

    /// max_position_embeddings (256 in the fixture) is the default KV-cache capacity.
    func testMaxPositionEmbeddingsIsTheDefaultContext() throws {
        let model = try ModelSource.load(dir.path)
        XCTAssertEqual(model.config?.maxPositionEmbeddings, 256)
        let artifacts = try ModelCompiler.compile(model, CompileOptions(maxChunk: 8), toolchain: try Toolchain.detect())
        XCTAssertEqual(try CompiledModel(artifacts: artifacts).maxContext, 256)
    }
}
