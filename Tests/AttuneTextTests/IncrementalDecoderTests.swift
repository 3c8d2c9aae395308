import AttuneText
import XCTest

/// Streaming decode returns, in pieces, exactly what decoding all ids at once returns.
final class IncrementalDecoderTests: XCTestCase {
    /// SplitMix64, so failures reproduce.
    struct Rng {
        var state: UInt64
        mutating func next() -> UInt64 {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
        mutating func below(_ n: Int) -> Int { Int(next() % UInt64(n)) }
    }

    func stream(_ tokenizer: Tokenizer, _ ids: [Int32], skip: Bool) -> [String] {
        var decoder = IncrementalDecoder(tokenizer: tokenizer, skipSpecialTokens: skip)
        return ids.map { decoder.push($0) } + [decoder.flush()]
    }

    /// Random id sequences, weighted towards byte tokens, multi-byte characters split across
    /// tokens, special tokens and spaces, where decoders behave differently.
    func testRandomIdsConcatenateToTheFullDecode() throws {
        for name in TokenizerFixtures.names {
            let tokenizer = try TokenizerFixtures.load(name)
            let interesting = (0..<Int32(tokenizer.vocabSize)).filter {
                let t = tokenizer.idToToken($0) ?? ""
                return t.hasPrefix("<") || t.unicodeScalars.contains { $0.value > 0x7F && $0 != "Ġ" } || t == "▁" || t == "Ġ"
            }
            var rng = Rng(state: 42)
            for _ in 0..<300 {
                let ids = (0..<(1 + rng.below(30))).map { _ in
                    rng.below(2) == 0 ? interesting[rng.below(interesting.count)] : Int32(rng.below(tokenizer.vocabSize))
                }
                for skip in [false, true] {
                    let whole = tokenizer.decode(ids, skipSpecialTokens: skip)
                    XCTAssertEqual(stream(tokenizer, ids, skip: skip).joined(), whole, "\(name) skip=\(skip) ids=\(ids)")
                }
            }
        }
    }

    /// For real text every piece is whole characters: no piece contains U+FFFD.
    func testEncodedTextStreamsInWholeCharacters() throws {
        for name in TokenizerFixtures.names {
            let tokenizer = try TokenizerFixtures.load(name)
            for c in try TokenizerFixtures.golden(name) where !c.decoded.unicodeScalars.contains("\u{FFFD}") {
                for skip in [false, true] {
                    let pieces = stream(tokenizer, c.ids, skip: skip)
                    XCTAssertEqual(pieces.joined(), skip ? c.decodedSkipSpecial : c.decoded, "\(name): \(c.text.debugDescription)")
                    XCTAssertFalse(pieces.contains { $0.unicodeScalars.contains("\u{FFFD}") }, "\(name): \(c.text.debugDescription) \(pieces)")
                }
            }
        }
    }

    /// A byte-level character split across tokens appears with its last byte.
    func testHoldsBackPartialCharacters() throws {
        let tokenizer = try TokenizerFixtures.load("gpt2_bpe")
        let ids = "你好".utf8.map { tokenizer.tokenToId(String(Character(ByteLevelTable.scalar($0))))! }
        var decoder = IncrementalDecoder(tokenizer: tokenizer)
        XCTAssertEqual(ids.map { decoder.push($0) }, ["", "", "你", "", "", "好"])
        XCTAssertEqual(decoder.flush(), "")
    }

    /// A run of ByteFallback tokens appears when the run ends: a later invalid byte would turn
    /// the whole run into U+FFFD, as tokenizers decodes it.
    func testByteFallbackRunsAppearWhenTheyEnd() throws {
        let tokenizer = try TokenizerFixtures.load("llama2_sp")
        let bytes = "你".utf8.map { tokenizer.tokenToId(String(format: "<0x%02X>", $0))! }
        let word = [tokenizer.tokenToId("▁the")!]
        var decoder = IncrementalDecoder(tokenizer: tokenizer)
        XCTAssertEqual((bytes + word).map { decoder.push($0) }, ["", "", "", "你 the"])
        XCTAssertEqual(decoder.flush(), "")
        let v = tokenizer.tokenToId("<0x76>")!, f0 = tokenizer.tokenToId("<0xF0>")!
        XCTAssertEqual(tokenizer.decode([v, f0] + word), "\u{FFFD}\u{FFFD} the")
        XCTAssertEqual([v, f0].map { decoder.push($0) } + [decoder.flush()], ["", "", "\u{FFFD}\u{FFFD}"])
    }
}

/// GPT-2's byte-to-character table, restated for tests.
enum ByteLevelTable {
    static func scalar(_ b: UInt8) -> Unicode.Scalar {
        var next: UInt32 = 256
        for x in 0...255 {
            let printable = (0x21...0x7E).contains(x) || (0xA1...0xAC).contains(x) || (0xAE...0xFF).contains(x)
            if x == Int(b) { return printable ? Unicode.Scalar(b) : Unicode.Scalar(next)! }
            if !printable { next += 1 }
        }
        fatalError("unreachable")
    }
}
