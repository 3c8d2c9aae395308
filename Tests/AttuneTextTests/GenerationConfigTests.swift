import AttuneText
import Foundation
import XCTest

final class GenerationConfigTests: XCTestCase {
    /// The settings transformers generates with after loading each folder (configs.json):
    /// generation_config.json alone when present, else config.json with its text_config
    /// fallback, then the global defaults.
    func testLoadingMatchesTransformers() throws {
        let cases = try SamplingFixtures.load("configs.json")
        XCTAssertEqual(cases.count, 10)
        for c in cases {
            let name = c["name"] as! String
            var files = ["config.json": c["config"] as! String]
            if let g = c["generation_config"] as? String { files["generation_config.json"] = g }
            let config = try TempModelFolder(files: files).config()
            let e = c["expected"] as! [String: Any]
            XCTAssertEqual(config.doSample, e["do_sample"] as? Bool, name)
            XCTAssertEqual(config.temperature, e["temperature"] as? Double, name)
            XCTAssertEqual(config.topK, e["top_k"] as? Int, name)
            XCTAssertEqual(config.topP, e["top_p"] as? Double, name)
            XCTAssertEqual(config.minP, e["min_p"] as? Double, name)
            XCTAssertEqual(config.repetitionPenalty, e["repetition_penalty"] as? Double, name)
            let eos = (e["eos_token_id"] as? [Int]) ?? (e["eos_token_id"] as? Int).map { [$0] } ?? []
            XCTAssertEqual(config.eosTokenIDs, eos.map { Int32($0) }, name)
            XCTAssertEqual(config.bosTokenID, (e["bos_token_id"] as? Int).map { Int32($0) }, name)
            XCTAssertEqual(config.padTokenID, (e["pad_token_id"] as? Int).map { Int32($0) }, name)
            XCTAssertEqual(config.stopStrings, (e["stop_strings"] as? [String]) ?? [], name)
            let limit: GenerationConfig.LengthLimit
            if let n = e["max_new_tokens"] as? Int {
                limit = .newTokens(n)
            } else if e["max_length_is_default"] as! Bool {
                limit = .newTokens(e["max_length"] as! Int)  // generate: 20 beyond the prompt
            } else {
                limit = .totalTokens(e["max_length"] as! Int)
            }
            XCTAssertEqual(config.lengthLimit, limit, name)
        }
    }

    func testNoFilesGiveTheDefaults() throws {
        XCTAssertEqual(try TempModelFolder(files: [:]).config(), GenerationConfig())
        let d = GenerationConfig()
        XCTAssertEqual([d.doSample ? 1 : 0, d.topK], [0, 50])
        XCTAssertEqual([d.temperature, d.topP, d.repetitionPenalty], [1, 1, 1])
        XCTAssertEqual(d.lengthLimit, .newTokens(20))
        XCTAssertNil(d.minP)
    }

    func testDoSampleFalseIsGreedyWhateverTheTemperature() throws {
        let config = try TempModelFolder(files: ["generation_config.json": #"{"do_sample": false, "temperature": 0.2, "top_k": 3, "top_p": 0.5, "min_p": 0.1, "repetition_penalty": 1.1}"#]).config()
        XCTAssertTrue(config.isGreedy)
        XCTAssertEqual(config.logitsSteps, [.repetitionPenalty(1.1)])
        var sampling = config
        sampling.doSample = true
        XCTAssertEqual(sampling.logitsSteps, [.repetitionPenalty(1.1), .temperature(0.2), .topK(3), .topP(0.5), .minP(0.1)])
        sampling.temperature = 0
        XCTAssertTrue(sampling.isGreedy)
        XCTAssertEqual(sampling.logitsSteps, [.repetitionPenalty(1.1)])
    }

    func testEOSAsIntegerOrList() throws {
        XCTAssertEqual(try TempModelFolder(files: ["generation_config.json": #"{"eos_token_id": 7}"#]).config().eosTokenIDs, [7])
        let list = try TempModelFolder(files: ["generation_config.json": #"{"eos_token_id": [128001, 128008, 128009]}"#]).config()
        XCTAssertEqual(list.eosTokenIDs, [128001, 128008, 128009])
        XCTAssertEqual(list.effectivePadTokenID, 128001, "generate pads with the first EOS id")
        XCTAssertEqual(try TempModelFolder(files: ["generation_config.json": #"{"eos_token_id": []}"#]).config().eosTokenIDs, [])
    }

    /// Wrong types and out-of-range values are refused in one line naming the file and key.
    func testRefusals() throws {
        let cases: [(String, String, String)] = [
            ("generation_config.json", #"{"temperature": "hot"}"#, "generation_config.json: temperature must be a number ≥ 0, got \"hot\""),
            ("generation_config.json", #"{"temperature": -0.5}"#, "generation_config.json: temperature must be a number ≥ 0, got -0.5"),
            ("generation_config.json", #"{"top_p": 1.5}"#, "generation_config.json: top_p must be a number in [0, 1], got 1.5"),
            ("generation_config.json", #"{"top_p": -0.1}"#, "generation_config.json: top_p must be a number in [0, 1], got -0.1"),
            ("generation_config.json", #"{"min_p": 2}"#, "generation_config.json: min_p must be a number in [0, 1], got 2"),
            ("generation_config.json", #"{"top_k": -1}"#, "generation_config.json: top_k must be an integer ≥ 0, got -1"),
            ("generation_config.json", #"{"top_k": 40.0}"#, "generation_config.json: top_k must be an integer ≥ 0, got 40.0"),
            ("generation_config.json", #"{"repetition_penalty": 0}"#, "generation_config.json: repetition_penalty must be a number > 0, got 0"),
            ("generation_config.json", #"{"do_sample": 1}"#, "generation_config.json: do_sample must be true or false, got 1"),
            ("generation_config.json", #"{"max_new_tokens": 0}"#, "generation_config.json: max_new_tokens must be an integer ≥ 1, got 0"),
            ("generation_config.json", #"{"max_length": true}"#, "generation_config.json: max_length must be an integer ≥ 1, got true"),
            ("generation_config.json", #"{"eos_token_id": [2, "x"]}"#, "generation_config.json: eos_token_id must be an integer or a list of integers, got an array"),
            ("generation_config.json", #"{"eos_token_id": 4294967296}"#, "generation_config.json: eos_token_id must be an integer or a list of integers, got 4294967296"),
            ("generation_config.json", #"{"bos_token_id": 1.5}"#, "generation_config.json: bos_token_id must be an integer, got 1.5"),
            ("generation_config.json", #"{"stop_strings": ["ok", ""]}"#, "generation_config.json: stop_strings must be a string or a list of non-empty strings, got an array"),
            ("generation_config.json", #"[1]"#, "generation_config.json: not a JSON object (it is an array)"),
            ("generation_config.json", #"{"top_k": 1,}"#, "generation_config.json: not valid JSON: expected a string key, found '}' at byte 12"),
            ("config.json", #"{"text_config": {"top_p": 7}}"#, "config.json: text_config.top_p must be a number in [0, 1], got 7"),
        ]
        for (file, text, message) in cases {
            XCTAssertThrowsError(try TempModelFolder(files: [file: text]).config(), text) {
                XCTAssertEqual("\($0)", message)
            }
        }
    }

    /// Keys Attune does not implement are reported when their value changes what
    /// transformers' generate does, and not when it leaves it alone.
    func testUnsupportedSettingsAreReported() throws {
        let text = #"{"num_beams": 4, "no_repeat_ngram_size": 0, "suppress_tokens": [], "typical_p": 0.9, "bad_words_ids": [[5]], "min_length": 0, "renormalize_logits": false, "forced_eos_token_id": 2, "top_k": 5}"#
        let config = try TempModelFolder(files: ["generation_config.json": text]).config()
        XCTAssertEqual(config.unsupportedSettings, ["num_beams 4", "bad_words_ids an array", "forced_eos_token_id 2", "typical_p 0.9"])
        XCTAssertEqual(config.topK, 5)
        let fromModel = try TempModelFolder(files: ["config.json": #"{"text_config": {"no_repeat_ngram_size": 3}}"#]).config()
        XCTAssertEqual(fromModel.unsupportedSettings, ["text_config.no_repeat_ngram_size 3"])
        XCTAssertEqual(try TempModelFolder(files: ["generation_config.json": #"{"num_beams": 1}"#]).config().unsupportedSettings, [])
    }

    func testTransformersAcceptsTopPZeroAndMinPZero() throws {
        let config = try TempModelFolder(files: ["generation_config.json": #"{"do_sample": true, "top_p": 0, "min_p": 0}"#]).config()
        XCTAssertEqual(config.logitsSteps, [.topK(50), .topP(0), .minP(0)])
    }

    func testOverridesWinAndChooseTheMode() throws {
        let model = try TempModelFolder(files: ["generation_config.json": #"{"do_sample": true, "temperature": 0.6, "top_p": 0.9, "max_length": 4096, "stop_strings": "<end>"}"#]).config()

        let greedy = try model.merging(GenerationOverrides(temperature: 0))
        XCTAssertTrue(greedy.isGreedy, "temperature 0 means greedy")

        let explicit = try model.merging(GenerationOverrides(temperature: 1.2, topK: 5, maxNewTokens: 64, stopStrings: ["\nUser:"]))
        XCTAssertEqual(explicit.logitsSteps, [.temperature(1.2), .topK(5), .topP(0.9)])
        XCTAssertEqual(explicit.lengthLimit, .newTokens(64))
        XCTAssertEqual(explicit.stopStrings, ["\nUser:"])

        let base = GenerationConfig()  // do_sample false
        XCTAssertFalse(try base.merging(GenerationOverrides(temperature: 0.7)).isGreedy, "a temperature above 0 asks for sampling")
        XCTAssertFalse(try base.merging(GenerationOverrides(topP: 0.8)).isGreedy)
        XCTAssertTrue(try base.merging(GenerationOverrides(doSample: false, temperature: 0.7)).isGreedy, "an explicit do_sample wins")
        XCTAssertTrue(try base.merging(GenerationOverrides(repetitionPenalty: 1.2)).isGreedy)
        XCTAssertEqual(try model.merging(GenerationOverrides()), model)

        let refusals: [(GenerationOverrides, String)] = [
            (GenerationOverrides(temperature: -1), "temperature must be a number ≥ 0, got -1.0"),
            (GenerationOverrides(temperature: .nan), "temperature must be a number ≥ 0, got nan"),
            (GenerationOverrides(topK: -3), "top_k must be an integer ≥ 0, got -3"),
            (GenerationOverrides(topP: 1.01), "top_p must be a number in [0, 1], got 1.01"),
            (GenerationOverrides(minP: -0.1), "min_p must be a number in [0, 1], got -0.1"),
            (GenerationOverrides(repetitionPenalty: 0), "repetition_penalty must be a number > 0, got 0.0"),
            (GenerationOverrides(maxNewTokens: 0), "max_new_tokens must be an integer ≥ 1, got 0"),
            (GenerationOverrides(stopStrings: [""]), "stop strings must not be empty"),
        ]
        for (o, message) in refusals {
            XCTAssertThrowsError(try model.merging(o)) { XCTAssertEqual("\($0)", message) }
        }
    }

    func testLengthLimit() throws {
        var config = GenerationConfig()
        XCTAssertEqual(try config.maxNewTokens(promptLength: 500), 20)
        config.lengthLimit = .totalTokens(100)
        XCTAssertEqual(try config.maxNewTokens(promptLength: 30), 70)
        XCTAssertThrowsError(try config.maxNewTokens(promptLength: 100)) {
            XCTAssertEqual("\($0)", "max_length 100 leaves no room after a prompt of 100 tokens; set max_new_tokens")
        }
    }
}
