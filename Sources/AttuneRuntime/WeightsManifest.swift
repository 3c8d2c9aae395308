import AttuneCodegen
import AttuneIR
import Foundation

/// The weights manifest a compiled module opens (format: Kernels/include/attune_weights.h):
/// which file and byte range each constant slot comes from. Checkpoint tensors are
/// referenced where they lie (absolute paths, checked by size at open); values derived at
/// compile time go to `constants.bin` beside the manifest, with a checksum of its whole
/// payload that the module verifies before use. Slots converted at compile time (int8
/// rows, bf16 rounded from f32/f16) point into the compile cache (`QuantizedWeights`),
/// also checksummed.
public enum WeightsManifest {
    public static let fileName = "weights.manifest"
    public static let derivedFileName = "constants.bin"

    /// Writes the manifest (and the derived blob when the module has one) into `dir`.
    /// `allowNonfinite` lets the module load NaN/Inf weights instead of refusing them.
    /// A module with slots converted at compile time needs `cacheDirectory`: they are made
    /// (or found) there and the manifest names them by absolute path.
    @discardableResult
    public static func write(_ module: EmittedModule, to dir: URL, allowNonfinite: Bool = false, cacheDirectory: URL? = nil) throws -> URL {
        let converted = try converted(module, cacheDirectory)
        return try write(module, text: try text(module, derived: derivedRecord(module), allowNonfinite: allowNonfinite, converted: converted), to: dir)
    }

    static func converted(_ module: EmittedModule, _ cacheDirectory: URL?) throws -> QuantizedWeights.Blob? {
        guard !QuantizedWeights.convertedSlots(module).isEmpty else { return nil }
        guard let cacheDirectory else { throw RuntimeError("module \(module.name) has weights converted at compile time: its manifest needs the compile cache, where they are made") }
        return try QuantizedWeights.prepare(module, cacheDirectory: cacheDirectory)
    }

    /// The manifest in the build cache, under a folder named by its content: rewritten only
    /// when the checkpoint files, the module's slots or the options change.
    public static func cached(_ module: EmittedModule, cacheDirectory: URL, allowNonfinite: Bool) throws -> URL {
        let manifestText = try text(module, derived: derivedRecord(module), allowNonfinite: allowNonfinite,
                                    converted: try converted(module, cacheDirectory))
        let dir = cacheDirectory.appendingPathComponent("weights/\(module.name)-\(String(CEmitter.fnv1a(manifestText), radix: 16))")
        let manifest = dir.appendingPathComponent(fileName)
        let fm = FileManager.default
        if fm.fileExists(atPath: manifest.path) { return manifest }
        let tmp = cacheDirectory.appendingPathComponent("tmp/\(UUID().uuidString)")
        try fm.createDirectory(at: tmp, withIntermediateDirectories: true)
        defer { try? fm.removeItem(at: tmp) }
        try write(module, text: manifestText, to: tmp)
        try fm.createDirectory(at: dir.deletingLastPathComponent(), withIntermediateDirectories: true)
        if (try? fm.moveItem(at: tmp, to: dir)) == nil, !fm.fileExists(atPath: manifest.path) {
            throw RuntimeError("cannot store the weights manifest in \(dir.path)")
        }
        return manifest
    }

    /// Size and checksum of the derived blob, nil when the module has none.
    static func derivedRecord(_ module: EmittedModule) -> (size: Int, hash: UInt64)? {
        module.derived.isEmpty ? nil : module.derived.withUnsafeBytes { ($0.count, PayloadFile.hash($0)) }
    }

    @discardableResult
    private static func write(_ module: EmittedModule, text: String, to dir: URL) throws -> URL {
        if !module.derived.isEmpty {
            try module.derived.withUnsafeBytes { try PayloadFile.write($0, to: dir.appendingPathComponent(derivedFileName)) }
        }
        let url = dir.appendingPathComponent(fileName)
        try PayloadFile.write(Data(text.utf8), to: url)
        return url
    }

    static func text(_ module: EmittedModule, derived: (size: Int, hash: UInt64)?, allowNonfinite: Bool,
                     converted: QuantizedWeights.Blob? = nil) throws -> String {
        var files: [String] = []
        var index: [String: Int] = [:]
        var lines = ["attune-weights 2", "graph \(hex(module.graphHash))", "slots \(module.constants.count)",
                     "nonfinite \(allowNonfinite ? "allow" : "reject")"]
        func fileIndex(_ path: String) -> Int {
            if let i = index[path] { return i }
            files.append(path)
            index[path] = files.count - 1
            return files.count - 1
        }
        var body: [String] = []
        for (s, slot) in module.constants.enumerated() {
            if let converted, let offset = converted.offsets[s] {
                body.append("slot \(s) \(slot.elements) 1 \(slot.format.name)")
                body.append("part \(fileIndex(converted.url.path)) \(offset) \(slot.format.name) \(slot.elements) \(slot.parts.map(\.name).joined(separator: " + "))")
                continue
            }
            body.append("slot \(s) \(slot.elements) \(slot.parts.count) \(slot.format.name)")
            for part in slot.parts {
                switch part.source {
                case .file(let at):
                    body.append("part \(fileIndex(at.path)) \(at.offset) \(at.dtype.rawValue) \(part.count) \(part.name)")
                case .derived(let offset, let dtype):
                    body.append("part \(fileIndex("")) \(offset) \(dtype.rawValue) \(part.count) \(part.name)")
                }
            }
        }
        for (i, path) in files.enumerated() {
            if path.isEmpty {
                guard let derived else { throw RuntimeError("module \(module.name) has derived constants but no blob was written") }
                lines.append("file \(i) \(derived.size) \(hex(derived.hash)) \(derivedFileName)")
            } else if let converted, path == converted.url.path {
                lines.append("file \(i) \(converted.size) \(hex(converted.hash)) \(path)")
            } else {
                let size = (try? FileManager.default.attributesOfItem(atPath: path)[.size] as? Int) ?? nil
                guard let size else { throw RuntimeError("\(path): cannot read the checkpoint file's size") }
                lines.append("file \(i) \(size) - \(path)")
            }
        }
        return (lines + body).joined(separator: "\n") + "\n"
    }

    static func hex(_ v: UInt64) -> String {
        let s = String(v, radix: 16)
        return String(repeating: "0", count: 16 - s.count) + s
    }
}
