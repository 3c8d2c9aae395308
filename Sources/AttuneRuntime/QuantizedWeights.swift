import AttuneCodegen
import AttuneIR
import CAttuneKernels
import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// The weights a module converts at compile time (`ConstantSlot.isConvertedAtCompile`):
/// int8 and q4 slots quantised (`--weights int8`, `--weights q4`) and bf16 slots rounded from f32 or f16
/// checkpoint tensors (`--weights bf16`). One file in the compile cache, made at compile
/// time from the checkpoint (never written beside it) and mapped by the module through its
/// weights manifest. The file is named by what it is made from — each converted slot's
/// format, row width and sources (checkpoint path, size, modification time, offset, dtype,
/// count; the bytes of values derived at compile time) — so the next compile of the same
/// checkpoint in the same format reuses it without reading a weight, and another
/// checkpoint or format converts again.
///
/// Conversion streams: sources are read with `pread` a few MiB at a time, converted (in
/// parallel, `attune_q8_quantize_*`, `attune_q4_quantize_*` / `attune_bf16_round`) and appended to the file, so
/// memory stays at those buffers whatever the model's size, and the checkpoint's pages
/// stay in the page cache instead of this process.
public enum QuantizedWeights {
    /// Part of the key: a change to the stored layouts or to how they are written never
    /// reuses an older file.
    static let formatVersion = "attune-converted-v2"
    public static let fileName = "weights.bin"
    static let sumFileName = "weights.sum"
    /// Source bytes read per step.
    static let chunkBytes = 16 << 20

    /// The file and where each converted slot's elements start in it.
    public struct Blob: Sendable {
        public var url: URL
        public var size: Int
        public var hash: UInt64
        /// Byte offset of each converted slot (by slot index); each starts on a 64-byte boundary.
        public var offsets: [Int: Int]
        /// Made by this call (false: found in the cache).
        public var created: Bool
    }

    static func convertedSlots(_ module: EmittedModule) -> [(index: Int, slot: ConstantSlot)] {
        module.constants.enumerated().compactMap { i, slot in slot.isConvertedAtCompile ? (i, slot) : nil }
    }

    /// The module's converted weights, made into `cacheDirectory` when missing; nil when
    /// the module has no slot converted at compile time.
    public static func prepare(_ module: EmittedModule, cacheDirectory: URL) throws -> Blob? {
        let slots = convertedSlots(module)
        guard !slots.isEmpty else { return nil }
        var offsets: [Int: Int] = [:]
        var end = 0
        for s in slots {
            offsets[s.index] = end
            end = (end + s.slot.format.bytes(elements: s.slot.elements) + 63) / 64 * 64
        }
        let key = try self.key(module, slots)
        let dir = cacheDirectory.appendingPathComponent("converted/\(module.name)-\(String(key, radix: 16))")
        let url = dir.appendingPathComponent(fileName)
        if let (size, hash) = recorded(dir), size == end,
           let actual = try? FileManager.default.attributesOfItem(atPath: url.path)[.size] as? Int, actual == size {
            return Blob(url: url, size: size, hash: hash, offsets: offsets, created: false)
        }
        let fm = FileManager.default
        let tmp = cacheDirectory.appendingPathComponent("tmp/\(UUID().uuidString)")
        try fm.createDirectory(at: tmp, withIntermediateDirectories: true)
        defer { try? fm.removeItem(at: tmp) }
        let hash = try write(module, slots, offsets: offsets, size: end, to: tmp.appendingPathComponent(fileName))
        try PayloadFile.write(Data("\(end) \(WeightsManifest.hex(hash))\n".utf8), to: tmp.appendingPathComponent(sumFileName))
        try fm.createDirectory(at: dir.deletingLastPathComponent(), withIntermediateDirectories: true)
        if fm.fileExists(atPath: dir.path) { try? fm.removeItem(at: dir) }   // an incomplete or older copy
        if (try? fm.moveItem(at: tmp, to: dir)) == nil, recorded(dir)?.size != end {
            throw RuntimeError("cannot store the converted weights in \(dir.path)")
        }
        return Blob(url: url, size: end, hash: hash, offsets: offsets, created: true)
    }

    /// Size and checksum the sum file records, nil when it is missing or unreadable.
    static func recorded(_ dir: URL) -> (size: Int, hash: UInt64)? {
        guard let text = try? String(contentsOf: dir.appendingPathComponent(sumFileName), encoding: .utf8) else { return nil }
        let fields = text.split(whereSeparator: { $0 == " " || $0 == "\n" })
        guard fields.count == 2, let size = Int(fields[0]), let hash = UInt64(fields[1], radix: 16) else { return nil }
        return (size, hash)
    }

    static func key(_ module: EmittedModule, _ slots: [(index: Int, slot: ConstantSlot)]) throws -> UInt64 {
        var items = [formatVersion]
        for s in slots {
            items.append("slot \(s.slot.format.name) \(s.slot.width) \(s.slot.elements)")
            for part in s.slot.parts {
                switch part.source {
                case .file(let at):
                    let attributes = try FileManager.default.attributesOfItem(atPath: at.path)
                    let size = attributes[.size] as? Int ?? -1
                    let modified = (attributes[.modificationDate] as? Date)?.timeIntervalSince1970 ?? 0
                    items.append("file \(at.path) \(size) \(modified) \(at.offset) \(at.dtype.rawValue) \(part.count)")
                case .derived(let offset, let dtype):
                    let hash = module.derived.withUnsafeBytes {
                        PayloadFile.hash(UnsafeRawBufferPointer(rebasing: $0[offset..<(offset + part.count * dtype.byteSize)]))
                    }
                    items.append("derived \(dtype.rawValue) \(part.count) \(WeightsManifest.hex(hash))")
                }
            }
        }
        return CEmitter.fnv1a(items.joined(separator: "\n"))
    }

    /// Converts every slot into `url`; returns the file's checksum.
    static func write(_ module: EmittedModule, _ slots: [(index: Int, slot: ConstantSlot)],
                      offsets: [Int: Int], size: Int, to url: URL) throws -> UInt64 {
        let out = open(url.path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard out >= 0 else { throw RuntimeError("cannot write \(url.path): \(String(cString: strerror(errno)))") }
        defer { close(out) }
        var writer = HashingWriter(fd: out, path: url.path)
        var sources: [String: Int32] = [:]
        defer { for fd in sources.values { close(fd) } }
        // One pair of buffers for every part: fresh ones per part (hundreds of 24 MiB
        // allocations for a 1B model) page-faulted in anew each time.
        var sourceBuffer = Scratch(), convertedBuffer = Scratch()
        defer { sourceBuffer.free(); convertedBuffer.free() }
        for s in slots {
            try writer.pad(to: offsets[s.index]!)
            let format = s.slot.format, width = s.slot.width
            // int8 and q4 convert whole rows (a scale per group of a row), bf16 any run of elements.
            let unit: Int
            if case .quantized = format { unit = width } else { unit = 1 }
            let unitBytes = format.bytes(elements: unit)
            for part in s.slot.parts {
                let units = part.count / unit
                let dtype: DType
                let read: (UnsafeMutableRawPointer, Int, Int) throws -> Void   // (buffer, first byte, bytes)
                switch part.source {
                case .file(let at):
                    dtype = at.dtype
                    let fd: Int32
                    if let open = sources[at.path] { fd = open } else {
                        fd = Glibc.open(at.path, O_RDONLY | O_CLOEXEC)
                        guard fd >= 0 else { throw RuntimeError("\(at.path): cannot read weights to convert: \(String(cString: strerror(errno)))") }
                        sources[at.path] = fd
                    }
                    read = { buffer, first, bytes in try preadFully(fd, buffer, bytes, at.offset + first, path: at.path) }
                case .derived(let offset, let derivedType):
                    dtype = derivedType
                    read = { buffer, first, bytes in
                        module.derived.withUnsafeBytes { buffer.copyMemory(from: $0.baseAddress! + offset + first, byteCount: bytes) }
                    }
                }
                let unitsPerChunk = max(1, chunkBytes / (unit * dtype.byteSize))
                let source = sourceBuffer.get(min(units, unitsPerChunk) * unit * dtype.byteSize)
                let converted = convertedBuffer.get(min(units, unitsPerChunk) * unitBytes)
                var done = 0
                while done < units {
                    let n = min(unitsPerChunk, units - done)
                    try read(source, done * unit * dtype.byteSize, n * unit * dtype.byteSize)
                    switch format {
                    case .quantized(let layout):
                        try quantise(part.name, firstRow: done, source, rows: n, width: width, dtype: dtype, layout: layout, into: converted)
                    case .bf16:
                        try round(part.name, first: done, source, count: n, dtype: dtype, into: converted)
                    case .f32:
                        preconditionFailure("f32 slots are never converted at compile time")
                    }
                    try writer.write(UnsafeRawBufferPointer(start: converted, count: n * unitBytes))
                    done += n
                }
            }
        }
        try writer.pad(to: size)
        return writer.finalHash
    }

    /// `rows` rows of one weight into rows of `layout` (int8 or q4).
    static func quantise(_ name: String, firstRow: Int, _ source: UnsafeMutableRawPointer, rows n: Int, width: Int, dtype: DType,
                         layout: QuantizedLayout, into quantised: UnsafeMutableRawPointer) throws {
        if dtype == .i32 { throw RuntimeError("\(name): integer tensors cannot be \(layout.formatWord) weights") }
        let bad = layout.quantize(source, dtype: dtype, rows: n, width: width, into: quantised)
        if bad == -2 { throw RuntimeError("out of memory quantising weight '\(name)'") }
        if bad >= 0 {
            throw RuntimeError(refusal(name, row: firstRow + Int(bad), values: source + Int(bad) * width * dtype.byteSize, width: width, dtype: dtype, layout: layout))
        }
    }

    /// `count` elements of one weight, from element `first` of it, rounded to bf16 (nearest
    /// even). NaN and Inf stay what they are (the module refuses them at open unless
    /// `--allow-nonfinite`, as for weights stored in bf16); a finite value beyond bf16's
    /// range is refused here, since rounding would make it infinite.
    static func round(_ name: String, first: Int, _ source: UnsafeMutableRawPointer, count: Int, dtype: DType,
                      into rounded: UnsafeMutableRawPointer) throws {
        let out = rounded.assumingMemoryBound(to: UInt16.self)
        switch dtype {
        case .bf16:
            rounded.copyMemory(from: source, byteCount: 2 * count)
        case .f32, .f16:
            let bad = attune_bf16_round(source, dtype == .f16 ? 1 : 0, Int64(count), out)
            if bad >= 0 {
                let value = source.load(fromByteOffset: 4 * Int(bad), as: Float.self)
                throw RuntimeError("weight '\(name)' holds \(value) at element \(first + Int(bad)), beyond bf16's range (±3.39e38): --weights bf16 would make it infinite")
            }
        case .i32:
            throw RuntimeError("\(name): integer tensors cannot be bf16 weights")
        }
    }

    /// Why row `row` of a weight could not be quantised: a non-finite value, or (f16
    /// scales) a group too large for f16's range.
    static func refusal(_ name: String, row: Int, values: UnsafeMutableRawPointer, width: Int, dtype: DType, layout: QuantizedLayout) -> String {
        var f32 = [Float](repeating: 0, count: width)
        for i in 0..<width {
            switch dtype {
            case .f32: f32[i] = values.load(fromByteOffset: 4 * i, as: Float.self)
            case .bf16: f32[i] = Float(bitPattern: UInt32(values.load(fromByteOffset: 2 * i, as: UInt16.self)) << 16)
            default: f32[i] = Float(Float16(bitPattern: values.load(fromByteOffset: 2 * i, as: UInt16.self)))
            }
        }
        if let i = f32.firstIndex(where: { !$0.isFinite }) {
            return "weight '\(name)' holds \(f32[i].isNaN ? "NaN" : f32[i] > 0 ? "+Inf" : "-Inf") at row \(row), column \(i): \(layout.formatWord) cannot store it"
        }
        let top = layout.bits == 4 ? 7 : 127
        return "weight '\(name)' row \(row) has a group with max |w| = \(f32.map(abs).max()!), beyond f16 scales (\(top) × 65504): use --weights \(layout.formatWord):scale=f32"
    }

    static func preadFully(_ fd: Int32, _ buffer: UnsafeMutableRawPointer, _ bytes: Int, _ offset: Int, path: String) throws {
        var done = 0
        while done < bytes {
            let n = pread(fd, buffer + done, bytes - done, off_t(offset + done))
            if n < 0, errno == EINTR { continue }
            guard n > 0 else {
                throw RuntimeError("\(path): cannot read \(bytes) bytes at \(offset) to convert\(n < 0 ? ": " + String(cString: strerror(errno)) : ": the file is shorter")")
            }
            done += n
        }
    }
}

/// A buffer reused across calls, grown when a call needs more.
private struct Scratch {
    private var pointer: UnsafeMutableRawPointer?
    private var capacity = 0

    mutating func get(_ bytes: Int) -> UnsafeMutableRawPointer {
        if let pointer, capacity >= bytes { return pointer }
        pointer?.deallocate()
        pointer = UnsafeMutableRawPointer.allocate(byteCount: max(bytes, 64), alignment: 64)
        capacity = bytes
        return pointer!
    }

    mutating func free() {
        pointer?.deallocate()
        pointer = nil
        capacity = 0
    }
}

/// Appends to a file in bounded writes while computing `PayloadFile.hash` of everything
/// written (8-byte words across write boundaries).
struct HashingWriter {
    let fd: Int32
    let path: String
    private var hasher = PayloadHasher()
    private(set) var written = 0
    private var pending: [UInt8] = []

    init(fd: Int32, path: String) {
        self.fd = fd
        self.path = path
    }

    mutating func write(_ bytes: UnsafeRawBufferPointer) throws {
        var done = 0
        while done < bytes.count {
            let n = Glibc.write(fd, bytes.baseAddress! + done, min(PayloadFile.chunkBytes, bytes.count - done))
            if n < 0, errno == EINTR { continue }
            guard n > 0 else { throw RuntimeError("cannot write \(path) (at byte \(written + done)): \(n < 0 ? String(cString: strerror(errno)) : "the disk accepted nothing")") }
            done += n
        }
        written += bytes.count
        var i = 0
        while !pending.isEmpty, pending.count < 8, i < bytes.count {
            pending.append(bytes[i])
            i += 1
        }
        if pending.count == 8 {
            pending.withUnsafeBytes { hasher.add($0) }
            pending.removeAll()
        }
        let whole = (bytes.count - i) / 8 * 8
        hasher.add(UnsafeRawBufferPointer(rebasing: bytes[i..<(i + whole)]))
        pending += bytes[(i + whole)...]
    }

    /// Zeros up to byte `offset`.
    mutating func pad(to offset: Int) throws {
        let zeros = [UInt8](repeating: 0, count: offset - written)
        try zeros.withUnsafeBytes { try write($0) }
    }

    /// The hash, with any tail shorter than a word taken byte by byte (as PayloadFile.hash).
    var finalHash: UInt64 {
        pending.withUnsafeBytes { hasher.final(tail: $0) }
    }
}
