import AttuneText
import XCTest

final class StopConditionsTests: XCTestCase {
    private func config(eos: [Int32], limit: GenerationConfig.LengthLimit) -> GenerationConfig {
        var c = GenerationConfig()
        c.eosTokenIDs = eos
        c.lengthLimit = limit
        return c
    }

    func testAnyEOSStopsUnlessIgnored() throws {
        var stop = try StopConditions(config: config(eos: [7, 9], limit: .newTokens(100)), promptLength: 5, contextLength: nil)
        XCTAssertNil(stop.append(3))
        XCTAssertEqual(stop.append(9), .eos(9))
        var ignoring = try StopConditions(config: config(eos: [7, 9], limit: .newTokens(100)), promptLength: 5, contextLength: nil, ignoreEOS: true)
        XCTAssertNil(ignoring.append(9))
        XCTAssertNil(ignoring.append(7))
    }

    func testNewTokenLimitCountsGeneratedTokensOnly() throws {
        var stop = try StopConditions(config: config(eos: [], limit: .newTokens(3)), promptLength: 50, contextLength: nil)
        XCTAssertNil(stop.append(1))
        XCTAssertNil(stop.append(1))
        XCTAssertEqual(stop.append(1), .maxNewTokens)
        XCTAssertEqual(stop.generated, 3)

        // max_length counts the prompt, as transformers' MaxLengthCriteria.
        var total = try StopConditions(config: config(eos: [], limit: .totalTokens(12)), promptLength: 10, contextLength: nil)
        XCTAssertNil(total.append(1))
        XCTAssertEqual(total.append(1), .maxNewTokens)
    }

    func testEOSWinsOverTheLimitOnTheSameToken() throws {
        var stop = try StopConditions(config: config(eos: [2], limit: .newTokens(1)), promptLength: 1, contextLength: nil)
        XCTAssertEqual(stop.append(2), .eos(2))
    }

    func testContextFull() throws {
        var stop = try StopConditions(config: config(eos: [], limit: .newTokens(100)), promptLength: 6, contextLength: 8)
        XCTAssertNil(stop.append(1))
        XCTAssertEqual(stop.append(1), .contextFull)
        XCTAssertThrowsError(try StopConditions(config: GenerationConfig(), promptLength: 8, contextLength: 8)) {
            XCTAssertEqual("\($0)", "the prompt has 8 tokens, which fills the context of 8 tokens")
        }
        XCTAssertThrowsError(try StopConditions(config: config(eos: [], limit: .totalTokens(8)), promptLength: 9, contextLength: nil)) {
            XCTAssertEqual("\($0)", "max_length 8 leaves no room after a prompt of 9 tokens; set max_new_tokens")
        }
    }
}

final class StopStringMatcherTests: XCTestCase {
    /// Pushes `chunks`; returns everything emitted (flushed at the end unless stopped), the
    /// chunk index at which it stopped, and the stop string found.
    private func run(_ stops: [String], _ chunks: [String]) throws -> (text: String, stoppedAt: Int?, matched: String?) {
        var m = try StopStringMatcher(stops: stops)
        var text = ""
        for (i, chunk) in chunks.enumerated() {
            let (emit, stopped) = m.push(chunk)
            text += emit
            if stopped { return (text, i, m.matched) }
        }
        return (text + m.flush(), nil, nil)
    }

    func testStopInsideOneChunk() throws {
        let r = try run(["###"], ["Hello ### world"])
        XCTAssertEqual(r.text, "Hello ")
        XCTAssertEqual(r.stoppedAt, 0)
        XCTAssertEqual(r.matched, "###")
    }

    func testStopSpanningChunksIsNeverPrinted() throws {
        var m = try StopStringMatcher(stops: ["\nUser:"])
        XCTAssertEqual(m.push("Sure.").emit, "Sure.")
        XCTAssertEqual(m.push("\n").emit, "", "a possible start is held back")
        XCTAssertEqual(m.push("Us").emit, "")
        let last = m.push("er: hi")
        XCTAssertEqual(last.emit, "")
        XCTAssertTrue(last.stopped)
        XCTAssertEqual(m.push("more").emit, "", "nothing after a stop")
        XCTAssertEqual(m.flush(), "")
    }

    func testHeldTextIsReleasedWhenItCannotStartAStop() throws {
        var m = try StopStringMatcher(stops: ["\nUser:"])
        XCTAssertEqual(m.push("a\nU").emit, "a")
        XCTAssertEqual(m.push("nder").emit, "\nUnder")
        XCTAssertEqual(m.push("\n").emit, "")
        XCTAssertEqual(m.flush(), "\n", "end of generation releases the held tail")
    }

    func testOverlappingPrefixes() throws {
        // "aab" starting one character later than the held "aa" suggested.
        XCTAssertEqual(try run(["aab"], ["a", "a", "a", "b", "c"]).text, "a")
        // The held tail restarts inside itself: "abab" then "abac" hides "abac".
        XCTAssertEqual(try run(["abac"], ["ab", "ab", "ac"]).text, "ab")
        // Two stops sharing characters: the one that starts first wins, even if it ends later.
        let r = try run(["bcd", "abcx", "cd"], ["xab", "cd"])
        XCTAssertEqual(r.text, "xa")
        XCTAssertEqual(r.matched, "bcd")
        // A stop that is a prefix of another completes first.
        XCTAssertEqual(try run(["ab", "abc"], ["a", "b", "c"]).matched, "ab")
    }

    func testNoStopsPassesTextThrough() throws {
        var m = try StopStringMatcher(stops: [])
        XCTAssertEqual(m.push("any ###").emit, "any ###")
        XCTAssertEqual(m.flush(), "")
    }

    func testMatchingIsOnUnicodeScalars() throws {
        // "é" precomposed (U+00E9) is not "e" + U+0301: no normalization.
        XCTAssertNil(try run(["\u{E9}"], ["caf", "e\u{301}"]).matched)
        XCTAssertEqual(try run(["e\u{301}!"], ["caf", "e", "\u{301}", "!"]).text, "caf")
        XCTAssertEqual(try run(["🙂"], ["ok 🙂 done"]).text, "ok ")
    }

    func testEmptyStopIsRefused() {
        XCTAssertThrowsError(try StopStringMatcher(stops: ["a", ""])) { XCTAssertEqual("\($0)", "stop strings must not be empty") }
    }

    /// However the text is cut into chunks, the output is the text up to the first stop
    /// string (or all of it), never a character of the stop string.
    func testChunkingDoesNotChangeTheOutput() throws {
        let stops = ["<|end|>", "\n\n", "eoe"]
        let text = "The end is near<|en|> but <|end|> not here\n\nnor eoe"
        let expected = "The end is near<|en|> but "
        var rng = RandomStream(seed: 99, stream: 0)
        for _ in 0..<300 {
            var chunks: [String] = []
            var rest = Substring(text)
            while !rest.isEmpty {
                let n = 1 + Int(rng.next() % 6)
                chunks.append(String(rest.prefix(n)))
                rest = rest.dropFirst(n)
            }
            let r = try run(stops, chunks)
            XCTAssertEqual(r.text, expected, "\(chunks)")
            XCTAssertEqual(r.matched, "<|end|>")
        }
        XCTAssertEqual(try run(stops, ["no stop <|end", "| here"]).text, "no stop <|end| here")
    }
}
