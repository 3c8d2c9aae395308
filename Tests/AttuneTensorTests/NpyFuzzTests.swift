import Foundation
import XCTest
import AttuneTensor

/// Random damage to valid files must never trap: the reader either returns a
/// consistent tensor or throws a well-formed `TensorError`.
final class NpyFuzzTests: XCTestCase {
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

    /// Bytes that steer mutations toward interesting header syntax.
    static let tokens = Array("(){}[],:'\" -0123456789LTrueFalseNone<>|=f48i\n\\_".utf8) + [0x00, 0x80, 0xFF]

    func mutate(_ input: [UInt8], _ rng: inout Rng) -> [UInt8] {
        var b = input
        for _ in 0...rng.below(4) {
            switch rng.below(8) {
            case 0:  // truncate
                b = Array(b.prefix(rng.below(b.count + 1)))
            case 1:  // flip a random bit anywhere
                if !b.isEmpty { b[rng.below(b.count)] ^= UInt8(1 << rng.below(8)) }
            case 2:  // token into the header region
                if !b.isEmpty { b[rng.below(min(b.count, 128))] = Self.tokens[rng.below(Self.tokens.count)] }
            case 3:  // insert bytes
                let at = rng.below(b.count + 1)
                b.insert(contentsOf: (0..<rng.below(8)).map { _ in Self.tokens[rng.below(Self.tokens.count)] }, at: at)
            case 4:  // delete a run
                if !b.isEmpty {
                    let at = rng.below(b.count)
                    b.removeSubrange(at..<min(b.count, at + 1 + rng.below(16)))
                }
            case 5:  // random header length field
                if b.count >= 12 { for i in 8..<12 { b[i] = UInt8(truncatingIfNeeded: rng.next()) } }
            case 6:  // random version
                if b.count >= 8 { b[6] = UInt8(rng.below(5)); b[7] = UInt8(rng.below(2)) }
            default:  // append junk
                b += (0..<rng.below(12)).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
            }
        }
        return b
    }

    func testRandomMutationsNeverTrap() {
        let seeds: [[UInt8]] = [
            NumpyFixtures.float32x2x3, NumpyFixtures.float64x2x2, NumpyFixtures.float32Scalar,
            NumpyFixtures.float32Version2, NumpyFixtures.float32Version3, NumpyFixtures.float32BigEndian,
        ]
        var rng = Rng(state: 0xA77E_5EED)
        var accepted = 0, rejected = 0
        for i in 0..<4000 {
            let input = mutate(seeds[i % seeds.count], &rng)
            do {
                let t = try Npy.read(data: Data(input), name: "fuzz.npy")
                XCTAssertNoThrow(try Tensor.make(shape: t.shape, data: t.data), "iteration \(i) returned an inconsistent tensor")
                accepted += 1
            } catch let e as TensorError {
                if !e.message.hasPrefix("fuzz.npy: ") || e.message.contains("\n") {
                    XCTFail("iteration \(i): malformed message \(e.message.debugDescription)")
                }
                rejected += 1
            } catch {
                XCTFail("iteration \(i): unexpected error type \(error)")
            }
        }
        // Both outcomes must actually be exercised for the test to mean anything.
        XCTAssertGreaterThan(accepted, 0)
        XCTAssertGreaterThan(rejected, 1000)
    }

    func testEveryTruncationOfEveryFixture() {
        for seed in [NumpyFixtures.float32x2x3, NumpyFixtures.float32Version3, NumpyFixtures.float64x2x2] {
            for n in 0..<seed.count {
                XCTAssertThrowsError(try Npy.read(data: Data(seed.prefix(n)), name: "cut.npy"), "prefix \(n)")
            }
        }
    }
}
