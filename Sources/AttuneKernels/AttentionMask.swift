import CAttuneKernels

/// A block bitmask (the ABI's `block_mask`, FlexAttention's block masks): one bit per
/// (q block, k block) of `block` positions each, over absolute positions, nb × nb bits with
/// nb = ceil(kvLen / block), row-major, least significant bit first. A cleared bit hides
/// keys [kb·B, kb·B + B) from the queries at positions [qb·B, qb·B + B); a set bit hides
/// nothing (causal, window and document masks still apply).
public struct BlockMask: Sendable, Equatable {
    public var block: Int
    public var bits: [UInt8]

    public init(block: Int, bits: [UInt8]) {
        self.block = block
        self.bits = bits
    }

    /// Blocks per side for `kvLen` keys.
    public func blocks(kvLen: Int) -> Int { block > 0 ? (kvLen + block - 1) / block : 0 }

    /// A mask over `kvLen` keys whose bit (qb, kb) is `set(qb, kb)`.
    public init(block: Int, kvLen: Int, set: (Int, Int) -> Bool) {
        let nb = block > 0 ? (kvLen + block - 1) / block : 0
        var bits = [UInt8](repeating: 0, count: (nb * nb + 7) / 8)
        for qb in 0..<nb {
            for kb in 0..<nb where set(qb, kb) {
                let i = qb * nb + kb
                bits[i >> 3] |= UInt8(1) << UInt8(i & 7)
            }
        }
        self.init(block: block, bits: bits)
    }

    /// Each bit set with probability `density`, from a seeded generator (splitmix64), so a
    /// `random:DENSITY:SEED` mask is the same in every run.
    public static func random(block: Int, kvLen: Int, density: Double, seed: UInt64) -> BlockMask {
        var state = seed
        return BlockMask(block: block, kvLen: kvLen) { _, _ in
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            z ^= z >> 31
            return Double(z >> 11) / Double(1 << 53) < density
        }
    }

    public func isSet(_ qb: Int, _ kb: Int, kvLen: Int) -> Bool {
        let i = qb * blocks(kvLen: kvLen) + kb
        return bits[i >> 3] >> UInt8(i & 7) & 1 == 1
    }

    /// Fraction of the nb × nb bits that are set.
    public func density(kvLen: Int) -> Double {
        let nb = blocks(kvLen: kvLen), count = nb * nb
        guard count > 0, bits.count * 8 >= count else { return 0 }
        var set = bits.prefix(count / 8).reduce(0) { $0 + $1.nonzeroBitCount }
        if count % 8 != 0 { set += (bits[count / 8] & UInt8((1 << (count % 8)) - 1)).nonzeroBitCount }
        return Double(set) / Double(count)
    }
}

extension AttentionProblem {
    /// Document ids of packed documents of these lengths (0, 0, ..., 1, 1, ...), as flash-attn's
    /// varlen `cu_seqlens` and FlexAttention's document masks describe them. Throws unless
    /// every length is >= 1 and they sum to `kvLen`.
    public static func documentIDs(lengths: [Int], kvLen: Int) throws -> [Int32] {
        guard !lengths.isEmpty else { throw KernelError("document lengths are empty") }
        if let bad = lengths.first(where: { $0 < 1 }) { throw KernelError("document lengths must be >= 1, got \(bad)") }
        let total = lengths.reduce(0) { $0 &+ $1 }
        guard total == kvLen else {
            throw KernelError("document lengths \(lengths.map(String.init).joined(separator: ",")) sum to \(total), not to the \(kvLen) keys")
        }
        return lengths.enumerated().flatMap { i, n in [Int32](repeating: Int32(i), count: n) }
    }

    /// Whether the problem's masks (documents, block bitmask) let the query at absolute
    /// position `pos` see key `j`, causal and window aside.
    public func masksLet(position pos: Int, see j: Int) -> Bool {
        if let d = documentIDs, d[j] != d[pos] { return false }
        if let m = blockMask, !m.isSet(pos / m.block, j / m.block, kvLen: kvLen) { return false }
        return true
    }

    /// The masks' own checks (lengths of the tables), before the C validation.
    func maskValidationError() -> String? {
        if let d = documentIDs, d.count != kvLen {
            return "document ids have \(d.count) entries but the problem has \(kvLen) keys"
        }
        if let m = blockMask {
            if m.block < 1 { return "the block mask's block must be >= 1, got \(m.block)" }
            let nb = m.blocks(kvLen: kvLen)
            if m.bits.count != (nb * nb + 7) / 8 {
                return "the block mask has \(m.bits.count) bytes but \(nb)x\(nb) blocks of \(m.block) need \((nb * nb + 7) / 8)"
            }
        }
        return nil
    }

    /// What the masks' tile skipping did in one run (`attune_mask_stats`), as run stats;
    /// empty without masks.
    public func maskRunStats(_ s: attune_mask_stats) -> KernelRunStats {
        guard documentIDs != nil || blockMask != nil else { return [:] }
        let all = Double(s.tiles + s.skipped_tiles)
        return ["tiles": Double(s.tiles), "skipped_tiles": Double(s.skipped_tiles), "masked_tiles": Double(s.masked_tiles),
                "skipped_fraction": all > 0 ? Double(s.skipped_tiles) / all : 0]
    }

    /// How the masks print in `description`.
    var maskDescription: String {
        var s = ""
        if let d = documentIDs {
            var runs = 1
            for j in d.indices.dropFirst() where d[j] != d[j - 1] { runs += 1 }
            s += " docs=\(Set(d).count)" + (runs != Set(d).count ? "(\(runs) runs)" : "")
        }
        if let m = blockMask {
            s += " block_mask=\(m.block):\(Int((m.density(kvLen: kvLen) * 100).rounded()))%"
        }
        return s
    }
}
