import Foundation
import XCTest
import AttuneModels

/// One tensor for `SafeTensorsWriter`: dtype as the header spells it, and its
/// little-endian bytes.
struct TestTensor {
    var name: String
    var dtype: String
    var shape: [Int]
    var bytes: [UInt8]

    static func f32(_ name: String, _ shape: [Int], _ values: [Float]) -> TestTensor {
        TestTensor(name: name, dtype: "F32", shape: shape, bytes: values.flatMap { le($0.bitPattern) })
    }

    static func bf16(_ name: String, _ shape: [Int], bits: [UInt16]) -> TestTensor {
        TestTensor(name: name, dtype: "BF16", shape: shape, bytes: bits.flatMap { le($0) })
    }

    static func f16(_ name: String, _ shape: [Int], bits: [UInt16]) -> TestTensor {
        TestTensor(name: name, dtype: "F16", shape: shape, bytes: bits.flatMap { le($0) })
    }

    /// A tensor of zeros of a float dtype.
    static func zeros(_ name: String, _ shape: [Int], dtype: String = "BF16") -> TestTensor {
        let size = ["F32": 4, "BF16": 2, "F16": 2, "I8": 1][dtype]!
        return TestTensor(name: name, dtype: dtype, shape: shape, bytes: [UInt8](repeating: 0, count: shape.reduce(1, *) * size))
    }
}

func le<T: FixedWidthInteger>(_ x: T) -> [UInt8] {
    withUnsafeBytes(of: x.littleEndian) { Array($0) }
}

/// Writes safetensors files the way the reference writer does: tensors laid
/// out back to back in the given order, header padded with spaces to a
/// multiple of 8 (unless `align` is false, to test unaligned data).
enum SafeTensorsWriter {
    static func encode(_ tensors: [TestTensor], metadata: [String: String]? = nil, align: Bool = true) -> [UInt8] {
        var entries: [String] = []
        if let metadata {
            let kv = metadata.keys.sorted().map { "\(jsonString($0)):\(jsonString(metadata[$0]!))" }
            entries.append("\"__metadata__\":{\(kv.joined(separator: ","))}")
        }
        var offset = 0
        var data: [UInt8] = []
        for t in tensors {
            let shape = t.shape.map(String.init).joined(separator: ",")
            entries.append("\(jsonString(t.name)):{\"dtype\":\"\(t.dtype)\",\"shape\":[\(shape)],\"data_offsets\":[\(offset),\(offset + t.bytes.count)]}")
            offset += t.bytes.count
            data += t.bytes
        }
        var header = Array("{\(entries.joined(separator: ","))}".utf8)
        if align { header += [UInt8](repeating: 0x20, count: (8 - header.count % 8) % 8) }
        return le(UInt64(header.count)) + header + data
    }

    /// A file with exactly this header text and data section.
    static func raw(header: String, data: [UInt8] = []) -> [UInt8] {
        let h = Array(header.utf8)
        return le(UInt64(h.count)) + h + data
    }

    static func jsonString(_ s: String) -> String {
        var out = "\""
        for u in s.unicodeScalars {
            switch u {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case _ where u.value < 0x20: out += String(format: "\\u%04x", u.value)
            default: out.unicodeScalars.append(u)
            }
        }
        return out + "\""
    }
}

/// A temporary folder, removed when released.
final class TempDir {
    let url: URL

    init() throws {
        url = FileManager.default.temporaryDirectory.appendingPathComponent("attune-models-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    }

    deinit { try? FileManager.default.removeItem(at: url) }

    @discardableResult
    func write(_ name: String, _ bytes: [UInt8]) throws -> URL {
        let file = url.appendingPathComponent(name)
        try Data(bytes).write(to: file, options: .atomic)
        return file
    }

    @discardableResult
    func write(_ name: String, text: String) throws -> URL {
        try write(name, Array(text.utf8))
    }
}

/// Asserts that `body` throws a one-line `ModelImportError` that starts with
/// `prefix` (the file or folder it should name) and contains every fragment.
func assertImportError<T>(
    _ body: @autoclosure () throws -> T, prefix: String, _ fragments: String...,
    file: StaticString = #filePath, line: UInt = #line
) {
    do {
        _ = try body()
        XCTFail("expected an error containing \(fragments)", file: file, line: line)
    } catch let e as ModelImportError {
        XCTAssertTrue(e.message.hasPrefix(prefix + ": "), "message does not start with \(prefix): \(e.message)", file: file, line: line)
        XCTAssertFalse(e.message.contains("\n"), "message is not one line: \(e.message)", file: file, line: line)
        for f in fragments {
            XCTAssertTrue(e.message.contains(f), "message \(e.message.debugDescription) lacks \(f.debugDescription)", file: file, line: line)
        }
    } catch {
        XCTFail("expected ModelImportError, got \(error)", file: file, line: line)
    }
}

/// Writes `bytes` as a file and asserts that opening it fails as described.
func assertRejects(
    _ bytes: [UInt8], _ fragments: String..., in dir: TempDir,
    file: StaticString = #filePath, line: UInt = #line
) {
    let url: URL
    do {
        url = try dir.write("case.safetensors", bytes)
    } catch {
        return XCTFail("cannot write test file: \(error)", file: file, line: line)
    }
    do {
        _ = try SafeTensorsFile(contentsOf: url)
        XCTFail("expected rejection containing \(fragments)", file: file, line: line)
    } catch let e as ModelImportError {
        XCTAssertTrue(e.message.hasPrefix(url.path + ": "), "message does not name the file: \(e.message)", file: file, line: line)
        XCTAssertFalse(e.message.contains("\n"), "message is not one line: \(e.message)", file: file, line: line)
        for f in fragments {
            XCTAssertTrue(e.message.contains(f), "message \(e.message.debugDescription) lacks \(f.debugDescription)", file: file, line: line)
        }
    } catch {
        XCTFail("expected ModelImportError, got \(error)", file: file, line: line)
    }
}
