import Foundation

/// Reading and writing NumPy `.npy` files (format versions 1.0, 2.0, 3.0).
///
/// Reader contract:
/// - dtypes `f4` and `f8`; `f8` is rounded to the nearest `Float` (values
///   beyond `Float` range become ±infinity).
/// - Byte order: `<` is little endian and `>` big endian (byte-swapped on
///   load). NumPy reads `=`, `|` and a missing order character as "native to
///   the reader"; every platform Attune runs on is little endian, so they are
///   read as little endian here, which is what NumPy on those hosts does.
/// - Only C order: `fortran_order: True` is rejected rather than transposed.
/// - Shape `()` becomes `[]` with one element.
/// - Any other input is rejected with a `TensorError` whose one-line message
///   is `"<name>: <problem>"`. No input traps: all offsets and sizes use
///   checked arithmetic, and nothing is allocated before the file is known
///   to contain the bytes the shape requires.
///
/// Writer contract: format 1.0, `'<f4'`, `fortran_order: False`, with the
/// header laid out byte-for-byte as `numpy.save` does (NumPy 2.x): keys in
/// sorted order, the 21-digit growth padding after the dict, then spaces and
/// `\n` so the data starts on a 64-byte boundary. Like NumPy, it switches to
/// format 2.0 only when the header cannot fit 1.0's 16-bit length, which
/// takes a rank in the tens of thousands.
public enum Npy {
    /// Reads a `.npy` file; errors name the file by its path.
    public static func read(contentsOf url: URL) throws -> Tensor {
        try read(data: try contents(of: url), name: url.path)
    }

    /// The file's bytes (mapped when safe); the error names the file.
    static func contents(of url: URL) throws -> Data {
        do {
            return try Data(contentsOf: url, options: .mappedIfSafe)
        } catch {
            throw TensorError("\(url.path): cannot read file: \(FileProblem.reading(url.path, error))")
        }
    }

    /// Decodes the contents of a `.npy` file; `name` only labels errors.
    public static func read(data: Data, name: String) throws -> Tensor {
        do {
            return try decode(data)
        } catch let problem as Problem {
            throw TensorError("\(name): \(problem.reason)")
        }
    }

    /// Writes `t` to `url` (atomically, so a failed write leaves no partial
    /// file).
    ///
    /// - Throws: `TensorError` if `t` is not a valid tensor (see `Tensor`) or
    ///   the file cannot be written.
    public static func write(_ t: Tensor, to url: URL) throws {
        do {
            try Tensor.validate(shape: t.shape, dataCount: t.data.count)
        } catch let e as TensorError {
            throw TensorError("\(url.path): cannot write: \(e.message)")
        }
        do {
            try encode(t).write(to: url, options: .atomic)
        } catch {
            throw TensorError("\(url.path): cannot write: \(FileProblem.writing(url.path, error))")
        }
    }

    /// Reads a `.npy` file of integers (`i1`..`i8`, `u1`..`u8`, either byte order), e.g.
    /// token ids; same checks and messages as `read`. Unsigned 64-bit values above
    /// `Int64.max` are rejected.
    public static func readIntegers(contentsOf url: URL) throws -> (shape: [Int], values: [Int64]) {
        try readIntegers(data: try contents(of: url), name: url.path)
    }

    /// Decodes a `.npy` file of integers; `name` only labels errors.
    public static func readIntegers(data: Data, name: String) throws -> (shape: [Int], values: [Int64]) {
        do {
            let (dtype, shape, count, payload) = try decodeLayout(data, integers: true)
            let values = try data.withUnsafeBytes { raw in
                try decodeIntegers(UnsafeRawBufferPointer(rebasing: raw[payload]), count: count, dtype: dtype)
            }
            return (shape, values)
        } catch let problem as Problem {
            throw TensorError("\(name): \(problem.reason)")
        }
    }

    /// Writes integers as `'<i8'` (what `numpy.save` writes for an int64 array).
    public static func writeIntegers(_ values: [Int64], shape: [Int], to url: URL) throws {
        guard Tensor.elementCount(of: shape) == values.count else {
            throw TensorError("\(url.path): cannot write: shape \(pyTuple(shape)) does not hold \(values.count) values")
        }
        var dict = "{'descr': '<i8', 'fortran_order': False, 'shape': \(pyTuple(shape)), }"
        if let first = shape.first { dict += String(repeating: " ", count: max(0, 21 - String(first).utf8.count)) }
        var out = wrapHeader(Array(dict.utf8), major: 1) ?? wrapHeader(Array(dict.utf8), major: 2)!
        for v in values { withUnsafeBytes(of: v.littleEndian) { out.append(contentsOf: $0) } }
        do {
            try out.write(to: url, options: .atomic)
        } catch {
            throw TensorError("\(url.path): cannot write: \(FileProblem.writing(url.path, error))")
        }
    }

    /// The bytes `numpy.save` would write for `t` as a float32 C-order array.
    ///
    /// `t` is written as given: if `t.shape` and `t.data` disagree the result
    /// is a file that `read` (and NumPy) will reject. `write` checks first.
    public static func encode(_ t: Tensor) -> Data {
        var dict = "{'descr': '<f4', 'fortran_order': False, 'shape': \(pyTuple(t.shape)), }"
        // NumPy leaves room for the first axis to grow to 21 digits so that
        // appending writers can rewrite the header in place.
        if let first = t.shape.first {
            dict += String(repeating: " ", count: max(0, 21 - String(first).utf8.count))
        }
        let headerBytes = Array(dict.utf8)
        var out = wrapHeader(headerBytes, major: 1)
            ?? wrapHeader(headerBytes, major: 2)!  // a u32 length cannot overflow for a header we can hold in memory
        out.reserveCapacity(out.count + t.data.count * 4)
        #if _endian(little)
        t.data.withUnsafeBytes { out.append(contentsOf: $0) }
        #else
        for x in t.data {
            withUnsafeBytes(of: x.bitPattern.littleEndian) { out.append(contentsOf: $0) }
        }
        #endif
        return out
    }

    // MARK: - Implementation

    static let magic: [UInt8] = [0x93, 0x4E, 0x55, 0x4D, 0x50, 0x59]  // "\x93NUMPY"
    static let align = 64

    /// Prefix + header + padding + '\n', or nil if the length does not fit
    /// the version's length field. Mirrors numpy's `_wrap_header`, including
    /// its quirk that an already-aligned header still gets 64 bytes of padding.
    static func wrapHeader(_ header: [UInt8], major: UInt8) -> Data? {
        let lengthFieldSize = major == 1 ? 2 : 4
        let hlen = header.count + 1
        let padlen = align - ((magic.count + 2 + lengthFieldSize + hlen) % align)
        let total = hlen + padlen
        if major == 1 && total > Int(UInt16.max) { return nil }
        if total > Int(UInt32.max) { return nil }
        var out = Data(magic)
        out.append(contentsOf: [major, 0])
        if major == 1 {
            withUnsafeBytes(of: UInt16(total).littleEndian) { out.append(contentsOf: $0) }
        } else {
            withUnsafeBytes(of: UInt32(total).littleEndian) { out.append(contentsOf: $0) }
        }
        out.append(contentsOf: header)
        out.append(contentsOf: repeatElement(UInt8(ascii: " "), count: padlen))
        out.append(UInt8(ascii: "\n"))
        return out
    }

    /// Python `repr` of a tuple of ints: `()`, `(3,)`, `(2, 3)`.
    static func pyTuple(_ dims: [Int]) -> String {
        dims.count == 1 ? "(\(dims[0]),)" : "(" + dims.map(String.init).joined(separator: ", ") + ")"
    }

    /// A reason for rejection, without the file name (added by `read`).
    struct Problem: Error {
        let reason: String
        init(_ reason: String) { self.reason = reason }
    }

    enum ByteOrder { case little, big }

    struct DType {
        enum Kind { case float, signed, unsigned }
        var kind: Kind = .float
        var order: ByteOrder
        var size: Int  // floats: 4 or 8; integers: 1, 2, 4 or 8
        /// As written in the file, for messages.
        var descr: String
    }

    static func decode(_ data: Data) throws -> Tensor {
        let (dtype, shape, count, payload) = try decodeLayout(data, integers: false)
        let values = data.withUnsafeBytes { raw in
            decodeFloats(UnsafeRawBufferPointer(rebasing: raw[payload]), count: count, dtype: dtype)
        }
        return Tensor(shape: shape, data: values)
    }

    /// Checks preamble, header and sizes; returns the dtype, shape, element count and
    /// the payload's byte range in `data`.
    static func decodeLayout(_ data: Data, integers: Bool) throws -> (DType, [Int], Int, Range<Int>) {
        let fileSize = data.count
        let base = data.startIndex
        func byte(_ i: Int) -> UInt8 { data[base + i] }  // callers check i < fileSize

        // Preamble: magic, version, header length.
        let magicSeen = min(fileSize, magic.count)
        for i in 0..<magicSeen where byte(i) != magic[i] {
            throw Problem("not a .npy file (bad magic)")
        }
        if fileSize == 0 { throw Problem("not a .npy file (file is empty)") }
        guard fileSize >= magic.count + 2 else {
            throw Problem("truncated header: file is \(fileSize) bytes, too short for the .npy preamble")
        }
        let major = byte(6), minor = byte(7)
        guard minor == 0, (1...3).contains(major) else {
            throw Problem("unsupported .npy format version \(major).\(minor) (expected 1.0, 2.0 or 3.0)")
        }
        let lengthFieldSize = major == 1 ? 2 : 4
        let headerStart = magic.count + 2 + lengthFieldSize
        guard fileSize >= headerStart else {
            throw Problem("truncated header: file is \(fileSize) bytes, format \(major).0 preamble needs \(headerStart)")
        }
        var headerLength = 0
        for i in (0..<lengthFieldSize).reversed() {
            headerLength = headerLength << 8 | Int(byte(magic.count + 2 + i))
        }
        // headerLength < 2^32 and headerStart is tiny, so this cannot overflow on 64-bit;
        // checked anyway so 32-bit hosts also reject instead of trapping.
        let (dataStart, o) = headerStart.addingReportingOverflow(headerLength)
        guard !o, dataStart <= fileSize else {
            throw Problem("header length \(headerLength) extends beyond end of file (file is \(fileSize) bytes)")
        }

        // Header dict.
        let headerBytes = [UInt8](data[(base + headerStart)..<(base + dataStart)])
        let literal: PyLiteral
        do {
            literal = try PyLiteral.parse(headerBytes, latin1: major < 3)
        } catch let e as PyLiteralError {
            throw Problem("unparsable header: \(e.message)")
        }
        let (dtype, fortranOrder, shape) = try interpretHeader(literal, integers: integers)
        if fortranOrder {
            throw Problem("fortran_order True not supported (only C-order arrays are)")
        }

        // Sizes, all checked before touching or allocating the payload.
        guard let count = Tensor.elementCount(of: shape) else {
            throw Problem("shape \(pyTuple(shape)) has too many elements (element count overflows)")
        }
        let (needed, o2) = count.multipliedReportingOverflow(by: dtype.size)
        guard !o2 else {
            throw Problem("shape \(pyTuple(shape)) is too large: \(count) elements of \(dtype.size) bytes overflows")
        }
        let available = fileSize - dataStart
        if available < needed {
            throw Problem("data section too short: shape \(pyTuple(shape)) of '\(clip(dtype.descr))' needs \(needed) bytes, file has \(available)")
        }
        if available > needed {
            throw Problem("data section too long: shape \(pyTuple(shape)) of '\(clip(dtype.descr))' needs \(needed) bytes, file has \(available)")
        }

        return (dtype, shape, count, dataStart..<(dataStart + needed))
    }

    static func decodeFloats(_ payload: UnsafeRawBufferPointer, count: Int, dtype: DType) -> [Float] {
        [Float](unsafeUninitializedCapacity: count) { out, initialized in
            let swap: Bool
            #if _endian(little)
            swap = dtype.order == .big
            #else
            swap = dtype.order == .little
            #endif
            if dtype.size == 4 {
                if !swap, count > 0, let dst = out.baseAddress, let src = payload.baseAddress {
                    UnsafeMutableRawPointer(dst).copyMemory(from: src, byteCount: count * 4)
                } else {
                    for i in 0..<count {
                        let bits = payload.loadUnaligned(fromByteOffset: i * 4, as: UInt32.self)
                        out[i] = Float(bitPattern: swap ? bits.byteSwapped : bits)
                    }
                }
            } else {
                for i in 0..<count {
                    let bits = payload.loadUnaligned(fromByteOffset: i * 8, as: UInt64.self)
                    out[i] = Float(Double(bitPattern: swap ? bits.byteSwapped : bits))
                }
            }
            initialized = count
        }
    }

    static func decodeIntegers(_ payload: UnsafeRawBufferPointer, count: Int, dtype: DType) throws -> [Int64] {
        #if _endian(little)
        let swap = dtype.order == .big
        #else
        let swap = dtype.order == .little
        #endif
        var out = [Int64](repeating: 0, count: count)
        for i in 0..<count {
            var bits: UInt64 = 0
            for b in 0..<dtype.size {
                let byte = UInt64(payload[i * dtype.size + (swap ? dtype.size - 1 - b : b)])
                bits |= byte << (8 * UInt64(b))
            }
            if dtype.kind == .signed {
                let shift = UInt64(64 - 8 * dtype.size)
                out[i] = Int64(bitPattern: bits << shift) >> Int64(shift)
            } else {
                guard bits <= UInt64(Int64.max) else { throw Problem("value \(bits) at index \(i) does not fit a signed 64-bit integer") }
                out[i] = Int64(bits)
            }
        }
        return out
    }

    static func interpretHeader(_ literal: PyLiteral, integers: Bool = false) throws -> (DType, Bool, [Int]) {
        guard case .dict(let entries) = literal else {
            throw Problem("unparsable header: expected a dict, found \(clip(literal.repr))")
        }
        var descr: PyLiteral?, fortran: PyLiteral?, shape: PyLiteral?
        for (key, value) in entries {
            // Later duplicates win, as in a Python dict literal.
            switch key {
            case .string("descr"): descr = value
            case .string("fortran_order"): fortran = value
            case .string("shape"): shape = value
            default: throw Problem("header has unexpected key \(clip(key.repr))")
            }
        }
        guard let descr else { throw Problem("header is missing key 'descr'") }
        guard let fortran else { throw Problem("header is missing key 'fortran_order'") }
        guard let shape else { throw Problem("header is missing key 'shape'") }

        let dtype = try integers ? parseIntegerDType(descr) : parseDType(descr)
        guard case .bool(let fortranOrder) = fortran else {
            throw Problem("fortran_order must be True or False, found \(clip(fortran.repr))")
        }
        let dims: [PyLiteral]
        switch shape {
        case .tuple(let xs), .list(let xs): dims = xs
        default: throw Problem("shape must be a tuple of ints, found \(clip(shape.repr))")
        }
        var result: [Int] = []
        result.reserveCapacity(dims.count)
        for d in dims {
            switch d {
            case .int(let v) where v < 0:
                throw Problem("negative dimension \(v) in shape \(clip(shape.repr))")
            case .int(let v):
                result.append(v)
            case .hugeInt(let s) where s.hasPrefix("-"):
                throw Problem("negative dimension \(clip(s)) in shape \(clip(shape.repr))")
            case .hugeInt(let s):
                throw Problem("dimension \(clip(s)) too large in shape \(clip(shape.repr))")
            default:
                throw Problem("shape must be a tuple of ints, found \(clip(shape.repr))")
            }
        }
        return (dtype, fortranOrder, result)
    }

    static func parseDType(_ descr: PyLiteral) throws -> DType {
        func unsupported() -> Problem {
            Problem("dtype \(clip(descr.repr)) not supported: expected float32 or float64 ('<f4' or '<f8')")
        }
        guard case .string(let s) = descr else { throw unsupported() }
        var rest = Substring(s)
        var order = ByteOrder.little
        if let c = rest.first, "<>=|".contains(c) {
            if c == ">" { order = .big }
            rest = rest.dropFirst()
        }
        switch rest {
        case "f4": return DType(order: order, size: 4, descr: s)
        case "f8": return DType(order: order, size: 8, descr: s)
        default: throw unsupported()
        }
    }

    static func parseIntegerDType(_ descr: PyLiteral) throws -> DType {
        let unsupported = Problem("dtype \(clip(descr.repr)) not supported: expected an integer type ('<i4', '<i8', '<u2', ...)")
        guard case .string(let s) = descr else { throw unsupported }
        var rest = Substring(s)
        var order = ByteOrder.little
        if let c = rest.first, "<>=|".contains(c) {
            if c == ">" { order = .big }
            rest = rest.dropFirst()
        }
        guard let letter = rest.first, letter == "i" || letter == "u", let size = Int(rest.dropFirst()),
              [1, 2, 4, 8].contains(size) else { throw unsupported }
        return DType(kind: letter == "i" ? .signed : .unsigned, order: order, size: size, descr: s)
    }

    /// Keeps file-derived text in messages short and on one line.
    static func clip(_ s: String, limit: Int = 60) -> String {
        let flat = oneLine(s)
        return flat.count <= limit ? flat : String(flat.prefix(limit)) + "..."
    }

    static func oneLine(_ s: String) -> String {
        String(s.unicodeScalars.map { c -> Character in
            c.properties.generalCategory == .control || c == "\u{2028}" || c == "\u{2029}" ? " " : Character(c)
        })
    }
}
