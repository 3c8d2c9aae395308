import AttuneTensor
import AttuneRuntime
import Foundation
import XCTest

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

extension GoldenModel {
    /// For every golden sequence: the compiled prefill's logits within 1e-4 of transformers'
    /// fp32 ones, then greedy decode steps giving transformers' ids.
    func assertCompiledMatchesGoldens(_ session: CompiledModel, file: StaticString = #filePath, line: UInt = #line) throws {
        for (i, seq) in golden.sequences.enumerated() {
            session.reset()
            let logits = try session.prefill(seq.input_ids.map(Int32.init))
            let want = try self.logits(seq.logits)
            XCTAssertEqual(logits.count, want.count, file: file, line: line)
            let err = zip(logits, want.data).map { abs($0 - $1) }.max() ?? .infinity
            XCTAssertLessThanOrEqual(err, 1e-4, "\(name) seq \(i) logits", file: file, line: line)
            var last = Array(logits.suffix(session.vocab))
            var generated: [Int] = []
            for _ in seq.greedy_new_ids {
                let next = last.indices.max { last[$0] < last[$1] }!
                generated.append(next)
                last = try session.decodeStep(Int32(next))
            }
            XCTAssertEqual(generated, seq.greedy_new_ids, "\(name) seq \(i) greedy", file: file, line: line)
        }
    }
}
