import AttuneCodegen
import Foundation

/// The C kernel library's sources, which generated modules are compiled against.
public enum KernelSources {
    /// `ATTUNE_KERNELS_DIR` (for kernel development: edits take effect without rebuilding
    /// attune), else the sources built into this binary, unpacked into the cache.
    public static func directory(cache: URL? = nil) throws -> URL {
        if let env = ProcessInfo.processInfo.environment["ATTUNE_KERNELS_DIR"], !env.isEmpty {
            let dir = URL(fileURLWithPath: env)
            guard FileManager.default.fileExists(atPath: dir.appendingPathComponent("include/attune_attention.h").path) else {
                throw RuntimeError("ATTUNE_KERNELS_DIR=\(env) is not Attune's Kernels/ folder (no include/attune_attention.h); fix it or unset it to use the sources built into attune")
            }
            return dir
        }
        return try unpacked(into: cache ?? CacheLocation.prepared())
    }

    /// `<cache>/kernel-sources/<hash of the embedded files>`, written on first use. The
    /// files go to a private temporary folder that is then renamed into place, so a
    /// concurrent process sees either no folder or a complete one.
    static func unpacked(into cache: URL) throws -> URL {
        let fm = FileManager.default
        let dir = cache.appendingPathComponent("kernel-sources/\(EmbeddedKernels.hash)")
        if fm.fileExists(atPath: dir.path) { return dir }
        let tmp = cache.appendingPathComponent("tmp/kernel-sources-\(UUID().uuidString)")
        defer { try? fm.removeItem(at: tmp) }
        try fm.createDirectory(at: tmp.appendingPathComponent("include"), withIntermediateDirectories: true)
        for (path, base64) in EmbeddedKernels.files {
            guard let bytes = Data(base64Encoded: base64) else { throw RuntimeError("embedded kernel source \(path) is corrupt; rebuild attune") }
            try bytes.write(to: tmp.appendingPathComponent(path))
        }
        try fm.createDirectory(at: dir.deletingLastPathComponent(), withIntermediateDirectories: true)
        // Losing the race to another process is fine: its folder holds the same bytes.
        if (try? fm.moveItem(at: tmp, to: dir)) == nil, !fm.fileExists(atPath: dir.path) {
            throw RuntimeError("cannot unpack the kernel sources into \(dir.path)")
        }
        return dir
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
