import Foundation

/// Output paths are checked before the work that fills them: an unwritable path once
/// failed only after minutes of calibration or tuning, with a Foundation error dump.
enum OutputPath {
    /// A file the command will write: its folder must exist and be writable, and the path
    /// must not be a folder.
    static func requireWritableFile(_ path: String, option: String) throws {
        // An empty path would resolve to the current folder (the fuzz test once wrote a
        // compiled model into the repository that way).
        guard !path.isEmpty else { throw CLIError("\(option): an empty path; give a file") }
        let url = URL(fileURLWithPath: path)
        var isDir: ObjCBool = false
        if FileManager.default.fileExists(atPath: url.path, isDirectory: &isDir), isDir.boolValue {
            throw CLIError("\(option) \(path): is a folder; give a file path")
        }
        try requireWritableFolder(url.deletingLastPathComponent().path, option: option, for: path)
    }

    /// A folder the command will create or fill: it, or the nearest folder above it that
    /// exists, must be a writable folder.
    static func requireWritableFolder(_ path: String, option: String, for target: String? = nil) throws {
        guard !path.isEmpty else { throw CLIError("\(option): an empty path; give a folder") }
        var url = URL(fileURLWithPath: path).standardizedFileURL
        let fm = FileManager.default
        while !fm.fileExists(atPath: url.path), url.path != "/" { url = url.deletingLastPathComponent() }
        var isDir: ObjCBool = false
        _ = fm.fileExists(atPath: url.path, isDirectory: &isDir)
        guard isDir.boolValue else {
            throw CLIError("\(option) \(target ?? path): \(url.path) is a file, not a folder")
        }
        guard fm.isWritableFile(atPath: url.path) else {
            throw CLIError("\(option) \(target ?? path): the folder \(url.path) is not writable")
        }
    }
}
