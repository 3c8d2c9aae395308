import Foundation
import AttuneTensor

/// Where one tensor of a checkpoint is, and what it holds.
public struct SafeTensorInfo: Sendable, Equatable {
    public let name: String
    public let dtype: SafeTensorsDType
    /// Row-major dimensions, each `>= 0`; `[]` is a scalar.
    public let shape: [Int]
    /// Path of the `.safetensors` file holding the data.
    public let file: String
    /// Product of `shape` (0 if any dimension is 0, whatever the others).
    public let elementCount: Int
    /// Byte range relative to the start of the file's data section.
    let dataRange: Range<Int>
    /// Where the file's data section starts (8 + the header's length).
    let dataStart: Int

    /// Byte offset of the tensor's first element from the start of the file.
    public var fileOffset: Int { dataStart + dataRange.lowerBound }

    /// `elementCount × dtype.size`, as validated when the file was opened.
    public var byteCount: Int { dataRange.count }
}

/// Named tensors backed by safetensors data: one file, or a checkpoint folder.
///
/// Contract shared by every source: names are unique; `info` and
/// `withRawBytes` throw `ModelImportError` "<path>: missing tensor '<name>'"
/// for an unknown name; a tensor's bytes are exactly
/// `info.byteCount == elementCount × dtype.size`, little endian, row-major.
public protocol TensorStore: Sendable {
    /// The file or folder the tensors come from, as named in messages.
    var path: String { get }
    /// All tensor names, sorted.
    var tensorNames: [String] { get }
    func info(_ name: String) throws -> SafeTensorInfo
    /// Calls `body` with the tensor's raw bytes. The buffer is valid only
    /// during the call, and may be unaligned.
    func withRawBytes<R>(of name: String, _ body: (UnsafeRawBufferPointer) throws -> R) throws -> R
}

extension TensorStore {
    /// The tensor's elements converted to `Float` (exactly: every F32, BF16 and
    /// F16 value, including subnormals, infinities and NaN, is a `Float`).
    ///
    /// - Throws: `ModelImportError` if the tensor is missing or its dtype is
    ///   not F32, BF16 or F16.
    public func floats(_ name: String) throws -> [Float] {
        let info = try info(name)
        guard info.dtype.convertsToFloat else {
            throw ModelImportError("\(info.file): tensor \(quoted(name)) has dtype \(info.dtype.rawValue); only F32, BF16 and F16 convert to Float")
        }
        return try withRawBytes(of: name) { decodeFloats($0, dtype: info.dtype, count: info.elementCount) }
    }

    /// The tensor as an fp32 `Tensor` (see `floats(_:)`).
    public func tensor(_ name: String) throws -> Tensor {
        let info = try info(name)
        return Tensor(shape: info.shape, data: try floats(name))
    }
}

/// One memory-mapped, fully validated `.safetensors` file.
///
/// Opening checks the whole header against the file (see `SafeTensorsLayout`),
/// so that afterwards no tensor access can reach outside the file. Data is
/// read lazily through the mapping; nothing is copied until `floats` is
/// called. The mapping lives as long as this object.
public final class SafeTensorsFile: TensorStore {
    public let path: String
    /// The header's optional `__metadata__` map (empty if absent).
    public let metadata: [String: String]
    public let tensorNames: [String]
    private let infos: [String: SafeTensorInfo]
    private let file: MappedFile
    private let dataStart: Int

    /// Maps and validates the file at `url`.
    ///
    /// - Throws: `ModelImportError` "<path>: <problem>", naming the tensor when
    ///   the problem concerns one.
    public convenience init(contentsOf url: URL) throws {
        try self.init(path: url.path)
    }

    /// Maps and validates the file at `path`; see `init(contentsOf:)`.
    public convenience init(path: String) throws {
        try self.init(file: try MappedFile(path: path))
    }

    /// Validates `data`, the contents of a `.safetensors` file, keeping a
    /// copy; `name` stands in for the path in messages and in each tensor's
    /// `file`. The same checks and errors as `init(contentsOf:)`.
    public convenience init(data: Data, name: String) throws {
        try self.init(file: MappedFile(copying: data, name: name))
    }

    private init(file: MappedFile) throws {
        let path = file.path
        let layout: SafeTensorsLayout
        do {
            layout = try SafeTensorsLayout(file.bytes, path: path)
        } catch let problem as SafeTensorsLayout.Problem {
            throw ModelImportError("\(path): \(problem.reason)")
        }
        self.path = path
        self.file = file
        self.metadata = layout.metadata
        self.dataStart = layout.dataStart
        self.infos = Dictionary(uniqueKeysWithValues: layout.tensors.map { ($0.name, $0) })
        self.tensorNames = infos.keys.sorted()
    }

    public func info(_ name: String) throws -> SafeTensorInfo {
        guard let info = infos[name] else {
            throw ModelImportError("\(path): missing tensor \(quoted(name))")
        }
        return info
    }

    public func withRawBytes<R>(of name: String, _ body: (UnsafeRawBufferPointer) throws -> R) throws -> R {
        let range = try info(name).dataRange
        // Both bounds were checked against the file size when it was opened.
        let slice = file.bytes[(dataStart + range.lowerBound)..<(dataStart + range.upperBound)]
        return try withExtendedLifetime(file) { try body(UnsafeRawBufferPointer(rebasing: slice)) }
    }
}
