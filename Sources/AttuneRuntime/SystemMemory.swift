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
}
