/// GPT-2's reversible byte ↔ character mapping: every byte becomes a printable character
/// (printable Latin-1 bytes map to themselves, the rest to U+0100 onwards), so any UTF-8
/// text is spelt with 256 characters.
enum ByteLevel {
    static let byteToScalar: [Unicode.Scalar] = {
        var table = [Unicode.Scalar](repeating: " ", count: 256)
        var next: UInt32 = 256
        for b in 0..<256 {
            if (0x21...0x7E).contains(b) || (0xA1...0xAC).contains(b) || (0xAE...0xFF).contains(b) {
                table[b] = Unicode.Scalar(UInt8(b))
            } else {
                table[b] = Unicode.Scalar(next)!
                next += 1
            }
        }
        return table
    }()

    /// The inverse of `byteToScalar`, indexed by scalar value (all are below U+0144).
    static let scalarToByte: [Int16] = {
        var table = [Int16](repeating: -1, count: 0x144)
        for (b, s) in byteToScalar.enumerated() { table[Int(s.value)] = Int16(b) }
        return table
    }()

    /// The UTF-8 bytes of `text`, each as its mapped character.
    static func encode(_ text: [Unicode.Scalar]) -> [Unicode.Scalar] {
        var out: [Unicode.Scalar] = []
        out.reserveCapacity(text.count)
        for s in text {
            if s.value < 0x80 {
                out.append(byteToScalar[Int(s.value)])
            } else {
                for b in UTF8.encode(s)! { out.append(byteToScalar[Int(b)]) }
            }
        }
        return out
    }

    /// The byte a mapped character stands for, or nil for any other character.
    static func byte(_ s: Unicode.Scalar) -> UInt8? {
        guard s.value < 0x144 else { return nil }
        let b = scalarToByte[Int(s.value)]
        return b < 0 ? nil : UInt8(b)
    }
}
