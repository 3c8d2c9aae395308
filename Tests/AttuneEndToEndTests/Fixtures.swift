import AttuneTensor
import Foundation

/// The tiny Hugging Face checkpoints and golden outputs in Tests/Fixtures/models
/// (made by Tests/Fixtures/make_tiny_models.py with transformers).
struct GoldenModel {
    struct Sequence: Decodable {
        var input_ids: [Int]
        var greedy_new_ids: [Int]
        var logits: String
        var logits_f64: String
    }

    struct Golden: Decodable {
        var sequences: [Sequence]
    }

    let name: String
    let folder: URL
    let golden: Golden

    static let names = ["llama", "qwen2", "mistral", "qwen3", "phi3"]

    static var root: URL {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Fixtures/models")
    }

    init(_ name: String) throws {
        self.name = name
        folder = Self.root.appendingPathComponent(name)
        golden = try JSONDecoder().decode(Golden.self, from: Data(contentsOf: folder.appendingPathComponent("golden.json")))
    }

    func logits(_ file: String) throws -> Tensor { try Npy.read(contentsOf: folder.appendingPathComponent(file)) }
}
