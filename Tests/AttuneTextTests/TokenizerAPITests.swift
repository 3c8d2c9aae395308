import AttuneText
import XCTest

/// The public surface `attune run` uses: special ids, vocabulary lookups.
final class TokenizerAPITests: XCTestCase {
    func testSpecialIdsFromTokenizerConfig() throws {
        let llama3 = try TokenizerFixtures.load("llama3_bpe")
        XCTAssertEqual(llama3.bosTokenId, 5000)
        XCTAssertEqual(llama3.eosTokenIds, [5004])
        XCTAssertEqual(llama3.idToToken(5004), "<|eot_id|>")
        XCTAssertTrue(llama3.isSpecial(5004))

        let qwen2 = try TokenizerFixtures.load("qwen2_bpe")
        XCTAssertNil(qwen2.bosTokenId)  // "bos_token": null
        XCTAssertEqual(qwen2.eosTokenIds, [qwen2.tokenToId("<|im_end|>")!])

        let llama2 = try TokenizerFixtures.load("llama2_sp")
        XCTAssertEqual(llama2.bosTokenId, 1)
        XCTAssertEqual(llama2.eosTokenIds, [2])
    }

    func testVocabularyLookups() throws {
        let gpt2 = try TokenizerFixtures.load("gpt2_bpe")
        XCTAssertEqual(gpt2.vocabSize, 4005)
        for id in Int32(0)..<Int32(gpt2.vocabSize) {
            let token = try XCTUnwrap(gpt2.idToToken(id))
            XCTAssertEqual(gpt2.tokenToId(token), id, token)
        }
        XCTAssertNil(gpt2.idToToken(4005))
        XCTAssertNil(gpt2.tokenToId("no such token"))

        let llama2 = try TokenizerFixtures.load("llama2_sp")
        XCTAssertEqual(llama2.tokenToId("<0x0A>"), 3 + 0x0A)
        XCTAssertEqual(llama2.vocabSize, 4000)
    }

    /// Unknown ids decode to nothing, as in tokenizers.
    func testUnknownIdsAreSkippedWhenDecoding() throws {
        let gpt2 = try TokenizerFixtures.load("gpt2_bpe")
        let hello = gpt2.encode("Hello")
        XCTAssertEqual(gpt2.decode(hello + [99_999] + hello, skipSpecialTokens: false), "HelloHello")
    }
}
