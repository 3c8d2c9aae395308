import AttuneIR
@testable import AttuneModels
import Foundation
import XCTest

/// RoPE variants read from config.json: transformers' own tables (Tests/Fixtures/rope_tables.json),
/// both spellings, and the refusals.
final class RopeScalingTests: XCTestCase {
    struct Tables: Decodable {
        struct Entry: Decodable {
            var applies_partial_rotary: Bool
            var length: Int
            var inv_freq: [Double]
            var attention_scaling: Double
        }
        var entries: [Entry]
    }

    static let tablesURL = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures/rope_tables.json")

    /// The `config` objects of rope_tables.json, in order (kept as raw JSON for the reader).
    func configs() throws -> [JSONObject] {
        guard case .object(let root) = try JSONParser.parse(Data(contentsOf: Self.tablesURL)),
              case .array(let entries)? = root["entries"] else { throw XCTSkip("rope_tables.json has no entries") }
        return entries.map { e in
            guard case .object(let o) = e, case .object(let c)? = o["config"] else { preconditionFailure("entry without config") }
            return c
        }
    }

    func testTablesMatchTransformers() throws {
        let tables = try JSONDecoder().decode(Tables.self, from: Data(contentsOf: Self.tablesURL))
        let configs = try configs()
        XCTAssertEqual(configs.count, tables.entries.count)
        XCTAssertGreaterThanOrEqual(tables.entries.count, 20)
        var kinds: Set<String> = []
        for (entry, config) in zip(tables.entries, configs) {
            let rope = try RopeScaling(ConfigReader(config), headDim: 16, maxPositionEmbeddings: 64,
                                       appliesPartialRotary: entry.applies_partial_rotary)
            kinds.insert(String(describing: rope.kind).prefix { $0 != "(" }.description)
            let f = rope.frequencies
            let got = f.inverseFrequencies(rotaryDim: rope.rotaryDim, totalLength: entry.length)
            let what = "\(rope.kind) at length \(entry.length)"
            XCTAssertEqual(got.count, entry.inv_freq.count, what)
            // transformers computes in float32: a few ulp of 1.2e-7.
            for (g, w) in zip(got, entry.inv_freq) { XCTAssertEqual(g, w, accuracy: 1e-6 * w, what) }
            XCTAssertEqual(f.attentionScaling, entry.attention_scaling, accuracy: 1e-12, what)
        }
        XCTAssertEqual(kinds, ["plain", "linear", "dynamic", "yarn", "longrope", "llama3"])
    }

    func decode(_ extra: String) throws -> HFConfig {
        try HFConfig(json: Data(HFConfigTests.minimal("LlamaForCausalLM", extra).utf8), name: "config.json")
    }

    func testBothSpellingsGiveTheSameRope() throws {
        let yarn = "\"factor\": 4.0, \"original_max_position_embeddings\": 512, \"beta_fast\": 16"
        let spellings = [
            "\"rope_theta\": 5e5, \"rope_scaling\": {\"type\": \"yarn\", \(yarn)}",
            "\"rope_theta\": 5e5, \"rope_scaling\": {\"rope_type\": \"yarn\", \(yarn)}",
            "\"rope_parameters\": {\"rope_type\": \"yarn\", \"rope_theta\": 500000.0, \(yarn)}",
            // transformers: a non-empty rope_scaling wins over rope_parameters.
            "\"rope_theta\": 5e5, \"rope_scaling\": {\"type\": \"yarn\", \(yarn)}, \"rope_parameters\": {\"rope_type\": \"linear\", \"factor\": 2.0}",
            "\"rope_scaling\": {}, \"rope_parameters\": {\"rope_type\": \"yarn\", \"rope_theta\": 500000.0, \(yarn)}",
        ]
        let want = RopeScaling.Kind.yarn(factor: 4, originalMaxPositions: 512, attentionFactor: nil, betaFast: 16, betaSlow: 1,
                                         mscale: nil, mscaleAllDim: nil, truncate: true)
        for s in spellings {
            let c = try decode(s)
            XCTAssertEqual(c.rope.kind, want, s)
            XCTAssertEqual(c.rope.theta, 500_000, s)
            XCTAssertEqual(c.ropeTheta, 500_000, s)
        }
        // original_max_position_embeddings defaults to max_position_embeddings (2048 for Llama).
        XCTAssertEqual(try decode("\"rope_scaling\": {\"type\": \"llama3\", \"factor\": 8, \"low_freq_factor\": 1, \"high_freq_factor\": 4}").rope.kind,
                       .llama3(factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositions: 2048))
        // Dynamic switches at max_position_embeddings.
        let dynamic = try decode("\"max_position_embeddings\": 100, \"rope_scaling\": {\"type\": \"dynamic\", \"factor\": 2}")
        XCTAssertEqual(dynamic.rope.frequencies.source, .dynamicNTK(theta: 10000, factor: 2, originalLength: 100))
    }

    func testPartialRotaryFactor() throws {
        // Llama's plain RoPE ignores partial_rotary_factor in transformers: whole heads rotate.
        let plain = try decode("\"partial_rotary_factor\": 0.5")
        XCTAssertEqual(plain.rope.rotaryDim, 16)
        XCTAssertEqual(plain.rope.frequencies, .theta(10000))
        // Where an architecture applies it, rotary dim is int(head_dim * factor).
        let object = { (s: String) throws -> JSONObject in
            guard case .object(let o) = try JSONParser.parse(Data(s.utf8)) else { preconditionFailure() }
            return o
        }
        let partial = try RopeScaling(ConfigReader(object("{\"partial_rotary_factor\": 0.4, \"rope_theta\": 1e4}")),
                                      headDim: 80, maxPositionEmbeddings: 4096, appliesPartialRotary: true)
        XCTAssertEqual(partial.rotaryDim, 32)
        XCTAssertEqual(try RopeScaling(ConfigReader(object("{\"partial_rotary_factor\": 0.3}")), headDim: 16,
                                       maxPositionEmbeddings: 64, appliesPartialRotary: true).rotaryDim, 4)
        XCTAssertThrowsError(try RopeScaling(ConfigReader(object("{\"partial_rotary_factor\": 0.1}")),
                                             headDim: 16, maxPositionEmbeddings: 64, appliesPartialRotary: true)) { e in
            let message = (e as? ConfigReader.Problem)?.reason ?? "\(e)"
            XCTAssertEqual(message, "partial_rotary_factor 0.1 gives rotary dim 1 for head_dim 16; it must be even and >= 2")
        }
    }

    func testRefusalsNameTheTypeAndKey() {
        let cases: [(String, String)] = [
            ("\"rope_scaling\": {\"type\": \"mrope\"}", "rope_scaling of type 'mrope' is not supported (supported: default, linear, dynamic, yarn, longrope, llama3)"),
            ("\"rope_parameters\": {\"rope_type\": \"proportional\"}", "rope_parameters of type 'proportional' is not supported"),
            ("\"rope_scaling\": {\"type\": 3}", "rope_scaling type is a number, expected a string"),
            ("\"rope_scaling\": {\"type\": \"linear\"}", "rope_scaling of type 'linear': missing key 'factor'"),
            ("\"rope_parameters\": {\"rope_type\": \"dynamic\", \"factor\": null}", "rope_parameters of type 'dynamic': missing key 'factor'"),
            ("\"rope_scaling\": {\"type\": \"linear\", \"factor\": \"2\"}", "rope_scaling of type 'linear': factor must be a finite number"),
            ("\"rope_scaling\": {\"type\": \"linear\", \"factor\": 0}", "rope_scaling of type 'linear': factor must be positive"),
            ("\"rope_scaling\": {\"type\": \"yarn\"}", "rope_scaling of type 'yarn': missing key 'factor'"),
            ("\"rope_scaling\": {\"type\": \"yarn\", \"factor\": 2, \"truncate\": 1}", "rope_scaling of type 'yarn': truncate must be true or false"),
            ("\"rope_scaling\": {\"type\": \"yarn\", \"factor\": 2, \"original_max_position_embeddings\": 0}",
             "rope_scaling of type 'yarn': original_max_position_embeddings is 0"),
            ("\"rope_scaling\": {\"type\": \"longrope\", \"short_factor\": [1, 1, 1, 1, 1, 1, 1, 1]}", "rope_scaling of type 'longrope': missing key 'long_factor'"),
            ("\"rope_scaling\": {\"type\": \"longrope\", \"short_factor\": [1, 1], \"long_factor\": [1, 1]}",
             "rope_scaling of type 'longrope': short_factor has 2 entries, expected rotary dim / 2 = 8"),
            ("\"rope_scaling\": {\"type\": \"llama3\", \"factor\": 8, \"low_freq_factor\": 1}", "rope_scaling of type 'llama3': missing key 'high_freq_factor'"),
            ("\"rope_scaling\": {\"type\": \"llama3\", \"factor\": 8, \"low_freq_factor\": 2, \"high_freq_factor\": 2}",
             "low_freq_factor and high_freq_factor are both 2.0"),
            ("\"partial_rotary_factor\": 0.5, \"rope_scaling\": {\"type\": \"linear\", \"factor\": 2}",
             "rope_scaling of type 'linear': partial_rotary_factor 0.5 is not supported"),
            ("\"partial_rotary_factor\": 1.5", "partial_rotary_factor is 1.5, expected a number in (0, 1]"),
            ("\"rope_theta\": 10000, \"rope_parameters\": {\"rope_theta\": 500000.0}", "rope_theta 10000.0 and rope_parameters.rope_theta 500000.0 disagree"),
            ("\"rope_parameters\": {\"rope_theta\": -1}", "rope_parameters.rope_theta must be positive"),
        ]
        for (extra, needle) in cases {
            XCTAssertThrowsError(try decode(extra), needle) { error in
                let message = (error as? ModelImportError)?.message ?? "\(error)"
                XCTAssertTrue(message.contains(needle), "'\(message)' should contain '\(needle)'")
                XCTAssertFalse(message.contains("\n"), message)
            }
        }
    }
}
