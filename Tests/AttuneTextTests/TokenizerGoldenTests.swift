import AttuneText
import XCTest

/// Attune's ids and texts equal those of the `tokenizers` package (goldens in golden.json).
final class TokenizerGoldenTests: XCTestCase {
    func check(_ name: String) throws {
        let tokenizer = try TokenizerFixtures.load(name)
        let cases = try TokenizerFixtures.golden(name)
        XCTAssertGreaterThan(cases.count, 20)
        for c in cases {
            let label = "\(name): \(c.text.debugDescription.prefix(60))"
            XCTAssertEqual(tokenizer.encode(c.text), c.ids, label)
            XCTAssertEqual(tokenizer.encode(c.text, addSpecialTokens: false), c.idsNoSpecial, label)
            // transformers' AutoTokenizer (which reads tokenizer_config.json) gives the same ids.
            XCTAssertEqual(tokenizer.encode(c.text), c.idsTransformers, label)
            XCTAssertEqual(tokenizer.decode(c.ids, skipSpecialTokens: false), c.decoded, label)
            XCTAssertEqual(tokenizer.decode(c.ids, skipSpecialTokens: true), c.decodedSkipSpecial, label)
        }
    }

    func testGPT2() throws { try check("gpt2_bpe") }
    func testLlama3() throws { try check("llama3_bpe") }
    func testQwen2() throws { try check("qwen2_bpe") }
    func testLlama2() throws { try check("llama2_sp") }
    func testMistral() throws { try check("mistral_sp") }
}
