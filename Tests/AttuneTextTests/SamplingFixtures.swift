import AttuneText
import Foundation
import XCTest

/// Goldens written by Tests/Fixtures/make_sampling_goldens.py (transformers' own processors).
enum SamplingFixtures {
    static let folder = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures/sampling")

    static func load(_ name: String) throws -> [[String: Any]] {
        let data = try Data(contentsOf: folder.appendingPathComponent(name))
        return try XCTUnwrap(JSONSerialization.jsonObject(with: data) as? [[String: Any]], name)
    }

    /// One processors.json case.
    struct ProcessorCase {
        let name: String
        let settingsJSON: String
        let logits: [Float]
        let history: [Int32]
        let processors: [String]
        /// nil where transformers set -inf.
        let scores: [Float?]

        init(_ d: [String: Any]) throws {
            name = try XCTUnwrap(d["name"] as? String)
            settingsJSON = try XCTUnwrap(d["settings_json"] as? String)
            logits = try XCTUnwrap(d["logits"] as? [Double]).map { Float($0) }
            history = try XCTUnwrap(d["history"] as? [Int]).map { Int32($0) }
            processors = try XCTUnwrap(d["processors"] as? [String])
            scores = try XCTUnwrap(d["scores"] as? [Any]).map { ($0 as? Double).map { Float($0) } }
        }

        /// The case's settings read through `GenerationConfig(directory:)`, as a model's
        /// generation_config.json.
        func config() throws -> GenerationConfig {
            try TempModelFolder(files: ["generation_config.json": settingsJSON]).config()
        }
    }

    static func processorCases() throws -> [ProcessorCase] {
        try load("processors.json").map(ProcessorCase.init)
    }
}

/// A temporary checkpoint folder holding the given JSON files; removed on deinit.
final class TempModelFolder {
    let url: URL

    init(files: [String: String]) throws {
        url = FileManager.default.temporaryDirectory.appendingPathComponent("attune-gen-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        for (name, text) in files {
            try Data(text.utf8).write(to: url.appendingPathComponent(name))
        }
    }

    func config() throws -> GenerationConfig { try GenerationConfig(directory: url) }

    deinit { try? FileManager.default.removeItem(at: url) }
}
