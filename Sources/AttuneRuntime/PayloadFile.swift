import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// Writing and checking the files Attune keeps in its cache and output folders.
///
/// Linux moves at most 0x7ffff000 bytes per `write(2)`; a single `Data.write(to:)` of a
/// larger buffer once left files whose tail repeated their head, undetected. Files are
/// now written in bounded chunks, short writes resumed, the size checked afterwards, and
/// a checksum over the whole payload recorded for verification before reuse.
public enum PayloadFile {
    /// Largest single `write(2)`.
    static let chunkBytes = 64 << 20

    /// The checksum: four 64-bit FNV-1a chains over the bytes taken as little-endian 8-byte
    /// words (word i feeds chain i % 4), folded into one FNV-1a with the tail bytes: the
    /// same function as the C side's `attune_payload_hash` (attune_weights.h).
    public static func hash(_ bytes: UnsafeRawBufferPointer) -> UInt64 {
        let whole = bytes.count / 8 * 8
        var hasher = PayloadHasher()
        hasher.add(UnsafeRawBufferPointer(rebasing: bytes[0..<whole]))
        return hasher.final(tail: UnsafeRawBufferPointer(rebasing: bytes[whole...]))
    }

    /// The checksum of a file's whole contents (read through a mapping, in one pass).
    public static func hash(ofFileAt url: URL) throws -> (size: Int, hash: UInt64) {
        let data = try Data(contentsOf: url, options: .alwaysMapped)
        return data.withUnsafeBytes { (data.count, hash($0)) }
    }

    /// Writes `bytes` to `url` (created or truncated) in chunks, then checks the size on
    /// disk. Throws a one-line message naming the file on any failure.
    public static func write(_ bytes: UnsafeRawBufferPointer, to url: URL) throws {
        let fd = open(url.path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw RuntimeError("cannot write \(url.path): \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        var done = 0
        while done < bytes.count {
            let n = Glibc.write(fd, bytes.baseAddress! + done, min(chunkBytes, bytes.count - done))
            if n < 0 {
                if errno == EINTR { continue }
                throw RuntimeError("cannot write \(url.path) (at byte \(done) of \(bytes.count)): \(String(cString: strerror(errno)))")
            }
            if n == 0 { throw RuntimeError("cannot write \(url.path): the disk accepted nothing at byte \(done) of \(bytes.count)") }
            done += n
        }
        var st = stat()
        guard fstat(fd, &st) == 0, Int(st.st_size) == bytes.count else {
            throw RuntimeError("\(url.path): wrote \(bytes.count) bytes but the file holds \(st.st_size)")
        }
    }

    public static func write(_ data: Data, to url: URL) throws {
        try data.withUnsafeBytes { try write($0, to: url) }
    }
}

/// The state of `PayloadFile.hash` over a stream of whole words. One FNV-1a chain is bound
/// by its multiply's latency (a 2.2 GB weights file hashed at 5.7 GB/s: 0.39 s of the 0.52 s
/// a module took to open it); four independent chains overlap their multiplies.
struct PayloadHasher {
    static let basis: UInt64 = 0xcbf2_9ce4_8422_2325
    static let prime: UInt64 = 0x100_0000_01b3
    private var h0 = basis, h1 = basis, h2 = basis, h3 = basis
    private var words = 0

    private mutating func add(word w: UInt64) {
        switch words % 4 {
        case 0: h0 = (h0 ^ w) &* Self.prime
        case 1: h1 = (h1 ^ w) &* Self.prime
        case 2: h2 = (h2 ^ w) &* Self.prime
        default: h3 = (h3 ^ w) &* Self.prime
        }
        words += 1
    }

    /// Feeds `bytes`, a whole number of 8-byte words.
    mutating func add(_ bytes: UnsafeRawBufferPointer) {
        precondition(bytes.count % 8 == 0, "PayloadHasher takes whole words")
        var i = 0
        let n = bytes.count
        func word(_ at: Int) -> UInt64 { UInt64(littleEndian: bytes.loadUnaligned(fromByteOffset: at, as: UInt64.self)) }
        while words % 4 != 0, i < n {
            add(word: word(i))
            i += 8
        }
        while i + 32 <= n {
            h0 = (h0 ^ word(i)) &* Self.prime
            h1 = (h1 ^ word(i + 8)) &* Self.prime
            h2 = (h2 ^ word(i + 16)) &* Self.prime
            h3 = (h3 ^ word(i + 24)) &* Self.prime
            i += 32
            words += 4
        }
        while i < n {
            add(word: word(i))
            i += 8
        }
    }

    /// The checksum: the four chains, then the tail (fewer than 8 bytes), into one FNV-1a.
    func final(tail: UnsafeRawBufferPointer) -> UInt64 {
        var r = Self.basis
        for h in [h0, h1, h2, h3] { r = (r ^ h) &* Self.prime }
        for b in tail { r = (r ^ UInt64(b)) &* Self.prime }
        return r
    }
}
