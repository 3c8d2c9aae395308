import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// A whole file mapped read-only and private, unmapped when the last
/// reference goes away; or, for bytes that never were a file (a fuzzer's
/// input, a download held in memory), a private copy freed the same way.
///
/// Checkpoints are hundreds of megabytes; mapping them costs address space,
/// not memory, and the kernel pages in only the tensors that are read.
///
/// Limitation: if another process truncates the file while it is mapped,
/// touching the lost pages raises SIGBUS. No reader of mapped files can
/// prevent that; checkpoints are not expected to change while being read.
final class MappedFile: @unchecked Sendable {  // immutable after init; the mapping is read-only
    let path: String
    let bytes: UnsafeRawBufferPointer
    /// What `deinit` releases: nothing for empty input, which `mmap`
    /// refuses to map, the mapping, or the heap copy.
    private enum Storage { case none, mapped, copied }
    private let storage: Storage

    /// Maps the file at `path`.
    ///
    /// - Throws: `ModelImportError` ("<path>: cannot open: <reason>") if the
    ///   file cannot be opened, is not a regular file, or cannot be mapped.
    init(path: String) throws {
        self.path = path
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        if fd < 0 { throw Self.failure(path, "cannot open", errno) }
        defer { close(fd) }  // the mapping outlives the descriptor

        var st = stat()
        if fstat(fd, &st) != 0 { throw Self.failure(path, "cannot open", errno) }
        // Directories and devices have no meaningful size to map.
        guard (st.st_mode & S_IFMT) == S_IFREG else {
            throw ModelImportError("\(path): cannot open: not a regular file")
        }
        let size = Int(st.st_size)
        if size == 0 {
            storage = .none
            bytes = UnsafeRawBufferPointer(start: nil, count: 0)
            return
        }
        guard let p = mmap(nil, size, PROT_READ, MAP_PRIVATE, fd, 0), p != MAP_FAILED else {
            throw Self.failure(path, "cannot map", errno)
        }
        storage = .mapped
        bytes = UnsafeRawBufferPointer(start: p, count: size)
    }

    /// Copies `data`; `name` stands in for the path in messages. The copy is
    /// exactly `data.count` bytes, so any read past the end is an out-of-bounds
    /// access that AddressSanitizer reports (a mapping would hide it up to the
    /// end of its last page).
    init(copying data: Data, name: String) {
        path = name
        if data.isEmpty {
            storage = .none
            bytes = UnsafeRawBufferPointer(start: nil, count: 0)
            return
        }
        let copy = UnsafeMutableRawBufferPointer.allocate(byteCount: data.count, alignment: 16)
        copy.copyBytes(from: data)
        storage = .copied
        bytes = UnsafeRawBufferPointer(copy)
    }

    deinit {
        switch storage {
        case .none: break
        case .mapped: munmap(UnsafeMutableRawPointer(mutating: bytes.baseAddress), bytes.count)
        case .copied: bytes.deallocate()
        }
    }

    private static func failure(_ path: String, _ what: String, _ code: Int32) -> ModelImportError {
        ModelImportError("\(path): \(what): \(String(cString: strerror(code)))")
    }
}
