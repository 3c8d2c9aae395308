import Foundation

/// The machine's memory as the kernel reports it (/proc/meminfo).
public enum SystemMemory {
    /// `MemAvailable`: what can be allocated now without swapping; nil where unknown.
    public static var availableBytes: Int? {
        guard let text = try? String(contentsOfFile: "/proc/meminfo", encoding: .utf8) else { return nil }
        for line in text.split(separator: "\n") where line.hasPrefix("MemAvailable:") {
            let fields = line.split(separator: " ")
            if fields.count >= 2, let kib = Int(fields[1]) { return kib * 1024 }
        }
        return nil
    }

    /// Refuses work that needs more memory than is available, before allocating any of it
    /// (a huge shape once ended in Swift's allocation trap). `bytes` nil = overflowed Int.
    public static func require(_ bytes: Int?, for what: String) throws {
        let available = availableBytes
        guard let bytes, available.map({ bytes <= $0 }) ?? true else {
            let need = bytes.map { String(format: "%.1f GiB", Double($0) / Double(1 << 30)) } ?? "more than 2^63 bytes"
            let have = available.map { String(format: "%.1f GiB", Double($0) / Double(1 << 30)) } ?? "?"
            throw MemoryError("\(what) needs \(need); \(have) of memory is available")
        }
    }
}

/// Work refused because it would not fit in memory.
public struct MemoryError: Error, CustomStringConvertible, Equatable {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}
