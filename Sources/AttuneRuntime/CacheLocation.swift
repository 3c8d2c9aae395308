import Foundation

/// Where Attune keeps what it builds: compiled modules and kernel objects, the unpacked
/// kernel sources, the toolchain probe stamps and the tuning database.
public enum CacheLocation {
    /// `$ATTUNE_CACHE_DIR`, else `$XDG_CACHE_HOME/attune`, else `$HOME/.cache/attune`
    /// (empty variables count as unset; a relative `XDG_CACHE_HOME` is ignored, as the XDG
    /// spec says), with the name of the variable the path came from.
    public static func resolve(_ env: [String: String] = ProcessInfo.processInfo.environment) -> (url: URL, variable: String) {
        func value(_ name: String) -> String? { env[name].flatMap { $0.isEmpty ? nil : $0 } }
        if let dir = value("ATTUNE_CACHE_DIR") { return (URL(fileURLWithPath: dir), "ATTUNE_CACHE_DIR") }
        if let xdg = value("XDG_CACHE_HOME"), xdg.hasPrefix("/") {
            return (URL(fileURLWithPath: xdg).appendingPathComponent("attune"), "XDG_CACHE_HOME")
        }
        let home = value("HOME") ?? FileManager.default.homeDirectoryForCurrentUser.path
        return (URL(fileURLWithPath: home).appendingPathComponent(".cache/attune"), "HOME")
    }

    /// The cache folder, created if missing. Throws one line naming the folder and the
    /// variable to set when it cannot be created or written: found here, not halfway
    /// through a build.
    public static func prepared(_ env: [String: String] = ProcessInfo.processInfo.environment) throws -> URL {
        let (dir, variable) = resolve(env)
        let origin = variable == "ATTUNE_CACHE_DIR" ? "" : " (from $\(variable))"
        do {
            try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        } catch {
            throw RuntimeError("cannot create the cache folder \(dir.path)\(origin): \(reason(creating: dir, error)); set ATTUNE_CACHE_DIR to a writable folder")
        }
        guard access(dir.path, W_OK | X_OK) == 0 else {
            let why = String(cString: strerror(errno))
            throw RuntimeError("cannot write to the cache folder \(dir.path)\(origin): \(why); set ATTUNE_CACHE_DIR to a writable folder")
        }
        return dir
    }

    /// Why `dir` could not be created, from its deepest existing ancestor: Foundation on
    /// Linux reports only "error 512".
    static func reason(creating dir: URL, _ error: Error) -> String {
        var ancestor = dir
        while !FileManager.default.fileExists(atPath: ancestor.path), ancestor.path != "/" { ancestor.deleteLastPathComponent() }
        var isFolder: ObjCBool = false
        _ = FileManager.default.fileExists(atPath: ancestor.path, isDirectory: &isFolder)
        if !isFolder.boolValue { return "\(ancestor.path) is a file, not a folder" }
        if access(ancestor.path, W_OK | X_OK) != 0 { return "\(ancestor.path): \(String(cString: strerror(errno)))" }
        return (error as NSError).localizedDescription
    }
}
