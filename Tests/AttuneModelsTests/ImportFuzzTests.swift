import Foundation
import XCTest
import AttuneModels

/// Random damage to valid inputs must never trap or read out of bounds: the
/// reader either opens the file, and then every tensor reads back with the
/// declared size, or throws a one-line `ModelImportError` naming the file.
final class ImportFuzzTests: XCTestCase {
    /// SplitMix64: deterministic so a failure reproduces from its iteration number.
    struct Rng {
        var state: UInt64
        mutating func next() -> UInt64 {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
        mutating func below(_ n: Int) -> Int { n <= 0 ? 0 : Int(next() % UInt64(n)) }
    }

    /// Bytes that steer mutations toward interesting JSON.
    static let tokens = Array("{}[],:\" -+.eE0123456789truefalsenull\\u_FB16I8".utf8) + [0x00, 0x0A, 0x80, 0xC3, 0xFF]

    static let seeds: [[UInt8]] = [
        SafeTensorsWriter.encode([
            .f32("model.embed_tokens.weight", [2, 3], [1, 2, 3, 4, 5, 6]),
            .bf16("model.norm.weight", [3], bits: [0x3F80, 0x7FC0, 0x0001]),
            .f16("lm_head.weight", [1, 2], bits: [0x3C00, 0x7C00]),
            TestTensor(name: "ids", dtype: "I64", shape: [1], bytes: le(Int64(3))),
            .f32("empty", [0], []),
        ], metadata: ["format": "pt"]),
        SafeTensorsWriter.encode([.f16("h", [4], bits: [1, 2, 3, 4]), .f32("s", [], [9])], align: false),
    ]

    func mutate(_ input: [UInt8], _ rng: inout Rng) -> [UInt8] {
        var b = input
        for _ in 0...rng.below(3) {
            let headerEnd = b.count >= 8 ? min(b.count, 8 + Int(min(UInt64(b.count), UInt64(b[0]) | UInt64(b[1]) << 8))) : b.count
            switch rng.below(9) {
            case 0:  // truncate
                b = Array(b.prefix(rng.below(b.count + 1)))
            case 1:  // flip a bit anywhere
                if !b.isEmpty { b[rng.below(b.count)] ^= UInt8(1 << rng.below(8)) }
            case 2, 3:  // a JSON token into the header
                if headerEnd > 8 { b[8 + rng.below(headerEnd - 8)] = Self.tokens[rng.below(Self.tokens.count)] }
            case 4:  // a digit into the header, which mostly shifts offsets and dims
                if headerEnd > 8 { b[8 + rng.below(headerEnd - 8)] = UInt8(ascii: "0") + UInt8(rng.below(10)) }
            case 5:  // insert tokens (the header length now lies)
                let at = rng.below(b.count + 1)
                b.insert(contentsOf: (0..<1 + rng.below(6)).map { _ in Self.tokens[rng.below(Self.tokens.count)] }, at: at)
            case 6:  // delete a run
                if !b.isEmpty {
                    let at = rng.below(b.count)
                    b.removeSubrange(at..<min(b.count, at + 1 + rng.below(12)))
                }
            case 7:  // a random header length, sometimes near the real one
                if b.count >= 8 {
                    let n = rng.below(2) == 0 ? rng.next() : UInt64(max(0, headerEnd - 8 + rng.below(9) - 4))
                    b.replaceSubrange(0..<8, with: le(n))
                }
            default:  // append junk
                b += (0..<1 + rng.below(12)).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
            }
        }
        return b
    }

    func testRandomMutationsNeverTrap() throws {
        let dir = try TempDir()
        var rng = Rng(state: 0x5AFE_7E45)
        var accepted = 0, rejected = 0
        for i in 0..<3000 {
            let input = mutate(Self.seeds[i % Self.seeds.count], &rng)
            let url = try dir.write("fuzz.safetensors", input)
            do {
                let f = try SafeTensorsFile(contentsOf: url)
                for name in f.tensorNames {
                    let info = try f.info(name)
                    XCTAssertEqual(try f.withRawBytes(of: name) { $0.count }, info.byteCount, "iteration \(i)")
                    XCTAssertEqual(info.byteCount, info.elementCount * info.dtype.size, "iteration \(i)")
                    if info.dtype.convertsToFloat {
                        XCTAssertEqual(try f.floats(name).count, info.elementCount, "iteration \(i)")
                    }
                }
                accepted += 1
            } catch let e as ModelImportError {
                if !e.message.hasPrefix(url.path + ": ") || e.message.contains("\n") {
                    XCTFail("iteration \(i): malformed message \(e.message.debugDescription)")
                }
                rejected += 1
            }
        }
        // Both outcomes must be exercised for the test to mean anything.
        XCTAssertGreaterThan(accepted, 20)
        XCTAssertGreaterThan(rejected, 1000)
    }

    func testEveryTruncationIsRejected() throws {
        let dir = try TempDir()
        for seed in Self.seeds {
            for n in 0..<seed.count {
                let url = try dir.write("cut.safetensors", Array(seed.prefix(n)))
                XCTAssertThrowsError(try SafeTensorsFile(contentsOf: url), "prefix \(n)")
            }
        }
    }

    func testConfigMutationsNeverTrap() {
        var rng = Rng(state: 0xC0F1_6000)
        let seeds = [HFConfigTests.qwen25, HFConfigTests.qwen3, HFConfigTests.phi3].map { Array($0.utf8) }
        var accepted = 0
        for i in 0..<3000 {
            var b = seeds[i % seeds.count]
            for _ in 0...rng.below(2) {
                switch rng.below(3) {
                case 0: b[rng.below(b.count)] = Self.tokens[rng.below(Self.tokens.count)]
                case 1: b.insert(Self.tokens[rng.below(Self.tokens.count)], at: rng.below(b.count + 1))
                default: if b.count > 1 { b.remove(at: rng.below(b.count)) }
                }
            }
            do {
                let c = try HFConfig(json: Data(b), name: "fuzz.json")
                XCTAssertEqual(c.numAttentionHeads % c.numKeyValueHeads, 0, "iteration \(i)")
                _ = c.expectedTensors
                accepted += 1
            } catch let e as ModelImportError {
                if !e.message.hasPrefix("fuzz.json: ") || e.message.contains("\n") {
                    XCTFail("iteration \(i): malformed message \(e.message.debugDescription)")
                }
            } catch {
                XCTFail("iteration \(i): unexpected \(error)")
            }
        }
        XCTAssertGreaterThan(accepted, 100)
    }
}
