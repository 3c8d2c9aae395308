/// Attune's pseudo-random numbers for sampling: xoshiro256** (Blackman and Vigna, 2018),
/// seeded by SplitMix64. Integer arithmetic only, so the same seed gives the same numbers on
/// every platform and in every build.
///
/// Seeding: SplitMix64 starts at `seed ^ mix64(stream)` and its first four outputs are the
/// xoshiro state. `mix64` (SplitMix64's output function) is a bijection with `mix64(0) == 0`,
/// so stream 0 is the standard SplitMix64 seeding of `seed` and, for one seed, different
/// streams start from different states. Each sequence of a batch uses its index as `stream`.
public struct RandomStream: Sendable {
    private var s0, s1, s2, s3: UInt64

    public init(seed: UInt64, stream: Int) {
        var sm = seed ^ Self.mix64(UInt64(bitPattern: Int64(stream)))
        func next() -> UInt64 {
            sm &+= 0x9E37_79B9_7F4A_7C15
            return Self.mix64(sm)
        }
        s0 = next()
        s1 = next()
        s2 = next()
        s3 = next()
    }

    /// The next 64 random bits.
    public mutating func next() -> UInt64 {
        let result = rotl(s1 &* 5, 7) &* 9
        let t = s1 << 17
        s2 ^= s0
        s3 ^= s1
        s1 ^= s2
        s0 ^= s3
        s2 ^= t
        s3 = rotl(s3, 45)
        return result
    }

    /// A uniform double in [0, 1): the top 53 bits of `next()`, scaled by 2^-53.
    public mutating func nextUnitInterval() -> Double {
        Double(next() >> 11) * 0x1p-53
    }

    static func mix64(_ x: UInt64) -> UInt64 {
        var z = x
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    private func rotl(_ x: UInt64, _ k: UInt64) -> UInt64 { (x << k) | (x >> (64 - k)) }
}
