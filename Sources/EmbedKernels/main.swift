import Foundation

// Build-time generator (run by Plugins/EmbedKernelsPlugin): writes a Swift file holding
// every C source and header of Kernels/ (top-level *.c and *.h, include/*.h), so an
// installed `attune` needs no source tree. Usage: EmbedKernels KERNELS_DIR OUTPUT.swift
//
// The files are base64 in the Swift source: exact bytes, and no escaping rules for C text
// that happens to contain quotes, backslashes or `#`. The folder is listed here, not by
// the plugin, so a file added to Kernels/ is embedded by the next build that reruns us.

let args = CommandLine.arguments
guard args.count == 3 else {
    FileHandle.standardError.write(Data("usage: EmbedKernels KERNELS_DIR OUTPUT.swift\n".utf8))
    exit(2)
}
let kernels = URL(fileURLWithPath: args[1]), output = URL(fileURLWithPath: args[2])

func files(in dir: URL, prefix: String, extensions: Set<String>) throws -> [(path: String, url: URL)] {
    try FileManager.default.contentsOfDirectory(at: dir, includingPropertiesForKeys: nil)
        .filter { extensions.contains($0.pathExtension) }
        .map { (prefix + $0.lastPathComponent, $0) }
}

/// FNV-1a, 64 bits: names the unpacked folder, so it only has to tell versions apart.
func fnv1a(_ bytes: [UInt8], _ h: inout UInt64) {
    for b in bytes { h = (h ^ UInt64(b)) &* 0x100000001b3 }
}

do {
    let all = try (files(in: kernels, prefix: "", extensions: ["c", "h"])
        + files(in: kernels.appendingPathComponent("include"), prefix: "include/", extensions: ["h"]))
        .sorted { $0.path < $1.path }
    guard all.contains(where: { $0.path == "include/attune_attention.h" }) else {
        throw NSError(domain: "EmbedKernels", code: 1, userInfo: [NSLocalizedDescriptionKey: "\(kernels.path) has no include/attune_attention.h"])
    }
    var hash: UInt64 = 0xcbf29ce484222325
    var entries: [String] = []
    for (path, url) in all {
        let data = try Data(contentsOf: url)
        fnv1a(Array(path.utf8) + [0], &hash)
        fnv1a(Array(data) + [0], &hash)
        entries.append("        (\"\(path)\", \"\(data.base64EncodedString())\"),")
    }
    let text = """
    // Generated at build time by EmbedKernels from Kernels/ (\(all.count) files). Do not edit.

    enum EmbeddedKernels {
        /// FNV-1a of every file's path and bytes: the unpacked folder's name.
        static let hash = "\(String(hash, radix: 16))"
        /// Path relative to Kernels/, and the file's bytes in base64.
        static let files: [(path: String, base64: String)] = [
    \(entries.joined(separator: "\n"))
        ]
    }

    """
    // Rewrite only on change, so an unchanged Kernels/ does not recompile AttuneRuntime.
    if (try? Data(contentsOf: output)) != Data(text.utf8) {
        try Data(text.utf8).write(to: output, options: .atomic)
    }
} catch {
    FileHandle.standardError.write(Data("EmbedKernels: \(error.localizedDescription)\n".utf8))
    exit(1)
}
