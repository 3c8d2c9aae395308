/// The validated layout of a safetensors file: header, tensor table, and
/// where the data section starts.
///
/// File format: an 8-byte little-endian `N`, `N` bytes of UTF-8 JSON, then the
/// data section. The JSON is an object mapping each tensor name to
/// `{"dtype": D, "shape": [..], "data_offsets": [begin, end]}` (offsets
/// relative to the data section), plus an optional `"__metadata__"` object of
/// strings.
///
/// Validation follows the reference implementation (huggingface/safetensors,
/// `SafeTensors::read_metadata` and `Metadata::validate`) and is at least as
/// strict:
/// - `N <= 100_000_000` and `8 + N <= file size`;
/// - every tensor's byte count is `dtype size × product(shape)`, computed with
///   overflow checks, and equals `end - begin`;
/// - sorted by offset, the tensors tile the data section exactly: no overlap,
///   no gap, and no trailing bytes after the last tensor (the reference's
///   `MetadataIncompleteBuffer`).
/// Stricter than the reference, because each case is a sign of a corrupt or
/// hand-made file rather than of any known writer: duplicate names, unknown
/// keys in a tensor entry, and non-string metadata values are rejected.
struct SafeTensorsLayout {
    static let maxHeaderLength = 100_000_000

    var metadata: [String: String] = [:]
    /// In header order.
    var tensors: [SafeTensorInfo] = []
    /// File offset of the data section.
    var dataStart: Int

    /// A reason for rejection, without the file name.
    struct Problem: Error {
        let reason: String
        init(_ reason: String) { self.reason = reason }
    }

    /// Validates `bytes`, the whole file; `path` is recorded in each tensor's info.
    init(_ bytes: UnsafeRawBufferPointer, path: String) throws {
        let size = bytes.count
        guard size >= 8 else {
            throw Problem("file is \(size) bytes, too short for the 8-byte header length")
        }
        let declared = UInt64(littleEndian: bytes.loadUnaligned(as: UInt64.self))
        guard declared <= UInt64(Self.maxHeaderLength) else {
            throw Problem("header length \(declared) exceeds the limit of \(Self.maxHeaderLength) bytes")
        }
        let headerLength = Int(declared)
        guard headerLength <= size - 8 else {
            throw Problem("header length \(declared) extends beyond the end of the file (the header would end at byte \(8 + headerLength), the file has \(size) bytes)")
        }
        dataStart = 8 + headerLength
        let dataSize = size - dataStart

        let json: JSON
        do {
            json = try JSONParser.parse(UnsafeRawBufferPointer(rebasing: bytes[8..<dataStart]))
        } catch {
            throw Problem("header is not valid JSON: \(error.reason) at byte \(error.offset) of the header")
        }
        guard case .object(let top) = json else {
            throw Problem("header is not a JSON object (it is \(json.kind))")
        }
        for (key, value) in top.entries {
            if key == "__metadata__" {
                metadata = try Self.metadata(value)
            } else {
                tensors.append(try Self.tensor(key, value, dataSize: dataSize, dataStart: dataStart, path: path))
            }
        }
        try Self.checkTiling(tensors, dataSize: dataSize)
    }

    private static func metadata(_ value: JSON) throws -> [String: String] {
        guard case .object(let obj) = value else {
            throw Problem("__metadata__ is \(value.kind), expected an object of strings")
        }
        var out: [String: String] = [:]
        for (k, v) in obj.entries {
            guard case .string(let s) = v else {
                throw Problem("__metadata__ entry \(quoted(k)) is \(v.kind), expected a string")
            }
            out[k] = s
        }
        return out
    }

    private static func tensor(_ name: String, _ value: JSON, dataSize: Int, dataStart: Int, path: String) throws -> SafeTensorInfo {
        let label = "tensor \(quoted(name))"
        guard case .object(let entry) = value else {
            throw Problem("\(label): entry is \(value.kind), expected an object")
        }
        for (key, _) in entry.entries where !["dtype", "shape", "data_offsets"].contains(key) {
            throw Problem("\(label): unexpected key \(quoted(key))")
        }
        func field(_ key: String) throws -> JSON {
            guard let v = entry[key] else { throw Problem("\(label): missing key '\(key)'") }
            return v
        }

        guard case .string(let dtypeName) = try field("dtype") else {
            throw Problem("\(label): dtype is \(try field("dtype").kind), expected a string")
        }
        guard let dtype = SafeTensorsDType(rawValue: dtypeName) else {
            let known = SafeTensorsDType.allCases.map(\.rawValue).joined(separator: ", ")
            throw Problem("\(label): unknown dtype \(quoted(dtypeName)) (known: \(known))")
        }

        guard case .array(let dims) = try field("shape") else {
            throw Problem("\(label): shape is \(try field("shape").kind), expected an array of integers")
        }
        var shape: [Int] = []
        shape.reserveCapacity(dims.count)
        for d in dims {
            shape.append(try nonNegativeInteger(d, what: "dimension", label: label))
        }
        // A zero dimension makes the product zero even if the others would
        // overflow (the mathematical answer, as in `Tensor`); otherwise any
        // overflow is an error, never a trap or a huge allocation.
        var elements = 1
        if !shape.contains(0) {
            for d in shape {
                let (p, overflow) = elements.multipliedReportingOverflow(by: d)
                if overflow { throw Problem("\(label): element count of shape \(shape) overflows") }
                elements = p
            }
        } else {
            elements = 0
        }
        let (needed, overflow) = elements.multipliedReportingOverflow(by: dtype.size)
        if overflow { throw Problem("\(label): byte size of shape \(shape) with dtype \(dtype.rawValue) overflows") }

        guard case .array(let offsets) = try field("data_offsets") else {
            throw Problem("\(label): data_offsets is \(try field("data_offsets").kind), expected [begin, end]")
        }
        guard offsets.count == 2 else {
            throw Problem("\(label): data_offsets has \(offsets.count) entries, expected [begin, end]")
        }
        let begin = try nonNegativeInteger(offsets[0], what: "data offset", label: label)
        let end = try nonNegativeInteger(offsets[1], what: "data offset", label: label)
        guard begin <= end else {
            throw Problem("\(label): data_offsets [\(begin), \(end)] begin after they end")
        }
        guard end <= dataSize else {
            throw Problem("\(label): data_offsets [\(begin), \(end)] lie outside the data section (\(dataSize) bytes)")
        }
        guard end - begin == needed else {
            throw Problem("\(label): data_offsets [\(begin), \(end)] span \(end - begin) bytes, but \(dtype.rawValue) shape \(shape) needs \(needed)")
        }
        return SafeTensorInfo(name: name, dtype: dtype, shape: shape, file: path, elementCount: elements, dataRange: begin..<end,
                              dataStart: dataStart)
    }

    private static func nonNegativeInteger(_ v: JSON, what: String, label: String) throws -> Int {
        guard case .number(let n) = v else {
            throw Problem("\(label): \(what) is \(v.kind), expected a non-negative integer")
        }
        guard n.isIntegerLiteral else {
            throw Problem("\(label): non-integer \(what) \(n.literal)")
        }
        if n.literal.hasPrefix("-") && n.literal != "-0" {
            throw Problem("\(label): negative \(what) \(n.literal)")
        }
        guard let i = n.int else {
            throw Problem("\(label): \(what) \(n.literal) is too large")
        }
        return i
    }

    /// Sorted by offset, tensors must cover `0..<dataSize` exactly once.
    private static func checkTiling(_ tensors: [SafeTensorInfo], dataSize: Int) throws {
        let sorted = tensors.sorted {
            ($0.dataRange.lowerBound, $0.dataRange.upperBound) < ($1.dataRange.lowerBound, $1.dataRange.upperBound)
        }
        var covered = 0
        var last: SafeTensorInfo?  // the tensor that reaches `covered`
        for t in sorted {
            let r = t.dataRange
            if r.lowerBound < covered, let last {
                throw Problem("tensors \(quoted(last.name)) (bytes \(last.dataRange.lowerBound)..<\(last.dataRange.upperBound)) and \(quoted(t.name)) (bytes \(r.lowerBound)..<\(r.upperBound)) overlap")
            }
            if r.lowerBound > covered {
                throw Problem("data section bytes \(covered)..<\(r.lowerBound) before tensor \(quoted(t.name)) belong to no tensor")
            }
            if r.upperBound >= covered {
                covered = r.upperBound
                last = t
            }
        }
        if covered < dataSize {
            let after = last.map { " after tensor \(quoted($0.name))" } ?? ""
            throw Problem("data section has \(dataSize - covered) trailing bytes\(after) that belong to no tensor")
        }
    }
}
