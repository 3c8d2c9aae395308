import AttuneCodegen
import Foundation

/// The C kernel library's sources, which generated modules are compiled against.
public enum KernelSources {
    /// `ATTUNE_KERNELS_DIR`, else the `Kernels/` folder of the source tree this binary was
    /// built from.
    public static func directory() throws -> URL {
        let fm = FileManager.default
        var candidates: [URL] = []
        if let env = ProcessInfo.processInfo.environment["ATTUNE_KERNELS_DIR"] { candidates.append(URL(fileURLWithPath: env)) }
        candidates.append(URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("Kernels"))
        for dir in candidates where fm.fileExists(atPath: dir.appendingPathComponent("include/attune_attention.h").path) {
            return dir
        }
        throw RuntimeError("cannot find Attune's Kernels/ sources (looked in \(candidates.map(\.path).joined(separator: ", "))); set ATTUNE_KERNELS_DIR")
    }

    static func cFiles(_ dir: URL) throws -> [URL] {
        try FileManager.default.contentsOfDirectory(at: dir, includingPropertiesForKeys: nil)
            .filter { $0.pathExtension == "c" }
            .sorted { $0.lastPathComponent < $1.lastPathComponent }
    }

    /// Every file a generated module is built from: sources and headers.
    static func allFiles(_ dir: URL) throws -> [URL] {
        let fm = FileManager.default
        let top = try fm.contentsOfDirectory(at: dir, includingPropertiesForKeys: nil).filter { ["c", "h"].contains($0.pathExtension) }
        let include = try fm.contentsOfDirectory(at: dir.appendingPathComponent("include"), includingPropertiesForKeys: nil)
            .filter { $0.pathExtension == "h" }
        return (top + include).sorted { $0.path < $1.path }
    }

    /// Hash of every header plus the named C files: what a module built from them depends on.
    public static func contentHash(_ dir: URL, files: [String]) throws -> String {
        var text = ""
        for f in try allFiles(dir) where f.pathExtension == "h" || files.contains(f.lastPathComponent) {
            text += f.lastPathComponent + "\u{0}" + (try String(contentsOf: f, encoding: .utf8))
        }
        return String(CEmitter.fnv1a(text), radix: 16)
    }
}

/// The CPU's identity and ISA features, part of every build-cache and tuning key:
/// `-march=native` code (and its timings) from one machine must not be reused on another.
public enum CPUFeatures {
    public static let signature: String = {
        guard let text = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8) else { return "unknown-cpu" }
        var model = "", flags = ""
        for line in text.split(separator: "\n") {
            if model.isEmpty, line.hasPrefix("model name") { model = String(line.split(separator: ":", maxSplits: 1).last ?? "") }
            if flags.isEmpty, line.hasPrefix("flags") { flags = String(line.split(separator: ":", maxSplits: 1).last ?? "") }
        }
        return model.trimmingCharacters(in: .whitespaces) + "|" + String(CEmitter.fnv1a(flags), radix: 16)
    }()
}

/// LLVM's libomp on Debian lives under /usr/lib/llvm-N (see Docs/BUILDING.md).
enum OpenMPLocation {
    static func find() -> (include: String, lib: String)? {
        let env = ProcessInfo.processInfo.environment
        if let inc = env["ATTUNE_OMP_INCLUDE"], let lib = env["ATTUNE_OMP_LIB"] { return (inc, lib) }
        let fm = FileManager.default
        let roots = ((try? fm.contentsOfDirectory(atPath: "/usr/lib")) ?? []).filter { $0.hasPrefix("llvm-") }
            .sorted { (Int($0.dropFirst(5)) ?? 0) > (Int($1.dropFirst(5)) ?? 0) }
        for root in roots {
            let lib = "/usr/lib/\(root)/lib"
            guard fm.fileExists(atPath: "\(lib)/libomp.so") else { continue }
            let includes = ["/usr/lib/\(root)/include"] + ((try? fm.contentsOfDirectory(atPath: "\(lib)/clang")) ?? []).sorted().reversed()
                .map { "\(lib)/clang/\($0)/include" }
            if let inc = includes.first(where: { fm.fileExists(atPath: "\($0)/omp.h") }) { return (inc, lib) }
        }
        return nil
    }
}
