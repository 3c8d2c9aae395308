import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// Why a file could not be read or written, in words a user can act on ("no such file or
/// folder", "a folder, not a file", "permission denied").
///
/// Foundation's errors say "The operation could not be completed. (NSCocoaErrorDomain
/// error 256.)" on Linux for most of these; the file system is asked instead. Used by
/// every "cannot read"/"cannot write" message.
public enum FileProblem {
    /// Why `path` cannot be read as a file; `error` is what the read threw.
    public static func reading(_ path: String, _ error: Error? = nil) -> String {
        if path.isEmpty { return "an empty path" }
        var info = stat()
        if stat(path, &info) != 0 { return posix(errno) }
        if (info.st_mode & S_IFMT) == S_IFDIR { return "a folder, not a file" }
        if access(path, R_OK) != 0 { return posix(errno) }
        return underlying(error) ?? "not readable"
    }

    /// Why `path` cannot be written as a file; `error` is what the write threw.
    public static func writing(_ path: String, _ error: Error? = nil) -> String {
        if path.isEmpty { return "an empty path" }
        var info = stat()
        if stat(path, &info) == 0 {
            if (info.st_mode & S_IFMT) == S_IFDIR { return "a folder, not a file" }
            if access(path, W_OK) != 0 { return posix(errno) }
        } else {
            let parent = (path as NSString).deletingLastPathComponent
            let folder = parent.isEmpty ? "." : parent
            if stat(folder, &info) != 0 { return "its folder \(folder): \(posix(errno))" }
            if (info.st_mode & S_IFMT) != S_IFDIR { return "\(folder) is not a folder" }
            if access(folder, W_OK) != 0 { return "its folder \(folder): \(posix(errno))" }
        }
        return underlying(error) ?? "not writable"
    }

    static func posix(_ code: Int32) -> String {
        switch code {
        case ENOENT: return "no such file or folder"
        case ENOTDIR: return "a part of the path is not a folder"
        case EACCES, EPERM: return "permission denied"
        case EROFS: return "read-only file system"
        case ENOSPC: return "no space left on the device"
        default: return String(cString: strerror(code)).lowercased()
        }
    }

    /// The POSIX error under a Foundation error, in words; nil when there is none.
    static func underlying(_ error: Error?) -> String? {
        guard let error else { return nil }
        let ns = error as NSError
        if ns.domain == NSPOSIXErrorDomain { return posix(Int32(ns.code)) }
        if let inner = ns.userInfo[NSUnderlyingErrorKey] as? NSError, inner.domain == NSPOSIXErrorDomain { return posix(Int32(inner.code)) }
        if ns.domain == NSCocoaErrorDomain { return nil }
        return "\(error)".split(whereSeparator: \.isNewline).first.map(String.init)
    }
}
