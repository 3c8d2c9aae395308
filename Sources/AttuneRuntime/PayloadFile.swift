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

    /// 64-bit FNV-1a over the bytes taken as little-endian 8-byte words, the tail byte by
    /// byte: the same function as the C side's `attune_payload_hash` (attune_weights.h).
    public static func hash(_ bytes: UnsafeRawBufferPointer) -> UInt64 {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        let prime: UInt64 = 0x100_0000_01b3
        var i = 0
        let n = bytes.count
        while i + 8 <= n {
            h = (h ^ UInt64(littleEndian: bytes.loadUnaligned(fromByteOffset: i, as: UInt64.self))) &* prime
            i += 8
        }
        while i < n {
            h = (h ^ UInt64(bytes[i])) &* prime
            i += 1
        }
        return h
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
