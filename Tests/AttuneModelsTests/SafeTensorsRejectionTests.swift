import Foundation
import XCTest
import AttuneModels

/// Every way a file can be wrong gives a one-line error naming the file, the
/// tensor when there is one, and the specific reason.
final class SafeTensorsRejectionTests: XCTestCase {
    var dir: TempDir!

    override func setUpWithError() throws {
        dir = try TempDir()
    }

    override func tearDown() {
        dir = nil
    }

    /// Two F32 tensors, "a" [2, 3] at 0..<24 and "b" [2] at 24..<32.
    static let valid = SafeTensorsWriter.encode([.f32("a", [2, 3], [1, 2, 3, 4, 5, 6]), .f32("b", [2], [7, 8])])

    /// A file whose single tensor "t" has the given entry fields.
    func one(dtype: String = "\"F32\"", shape: String = "[2]", offsets: String = "[0,8]", data: Int = 8) -> [UInt8] {
        SafeTensorsWriter.raw(header: "{\"t\":{\"dtype\":\(dtype),\"shape\":\(shape),\"data_offsets\":\(offsets)}}",
                              data: [UInt8](repeating: 0, count: data))
    }

    func testTooShortForHeaderLength() {
        assertRejects([], "file is 0 bytes, too short for the 8-byte header length", in: dir)
        assertRejects([1, 2, 3, 4, 5], "file is 5 bytes", in: dir)
    }

    func testHeaderLengthBeyondFile() {
        var b = Self.valid
        b.replaceSubrange(0..<8, with: le(UInt64(b.count)))
        assertRejects(b, "header length \(b.count) extends beyond the end of the file (the header would end at byte \(b.count + 8), the file has \(b.count) bytes)", in: dir)
        // Truncated inside the header.
        assertRejects(Array(Self.valid.prefix(40)), "extends beyond the end of the file", "the file has 40 bytes", in: dir)
    }

    func testAbsurdHeaderLength() {
        var b = Self.valid
        b.replaceSubrange(0..<8, with: le(UInt64.max))
        assertRejects(b, "header length 18446744073709551615 exceeds the limit of 100000000 bytes", in: dir)
        b.replaceSubrange(0..<8, with: le(UInt64(100_000_001)))
        assertRejects(b, "header length 100000001 exceeds the limit", in: dir)
    }

    func testTruncatedDataSection() {
        // Cutting the data makes the last tensor's offsets point past the end.
        assertRejects(Array(Self.valid.dropLast(1)), "tensor 'b'", "data_offsets [24, 32] lie outside the data section (31 bytes)", in: dir)
        assertRejects(Array(Self.valid.dropLast(8)), "tensor 'b'", "outside the data section (24 bytes)", in: dir)
    }

    func testLyingOffsets() {
        assertRejects(one(offsets: "[0,1000]"), "tensor 't'", "data_offsets [0, 1000] lie outside the data section (8 bytes)", in: dir)
        assertRejects(one(offsets: "[8,0]"), "tensor 't'", "data_offsets [8, 0] begin after they end", in: dir)
        assertRejects(one(offsets: "[9223372036854775800,9223372036854775807]"), "tensor 't'", "outside the data section", in: dir)
        assertRejects(one(offsets: "[0]"), "tensor 't'", "data_offsets has 1 entries, expected [begin, end]", in: dir)
        assertRejects(one(offsets: "[0,8,16]"), "tensor 't'", "data_offsets has 3 entries", in: dir)
        assertRejects(one(offsets: "[-8,0]"), "tensor 't'", "negative data offset -8", in: dir)
        assertRejects(one(offsets: "[0,8.0]"), "tensor 't'", "non-integer data offset 8.0", in: dir)
        assertRejects(one(offsets: "[0,\"8\"]"), "tensor 't'", "data offset is a string", in: dir)
        assertRejects(one(offsets: "{\"begin\":0}"), "tensor 't'", "data_offsets is an object, expected [begin, end]", in: dir)
        assertRejects(one(offsets: "[0,18446744073709551616]"), "tensor 't'", "data offset 18446744073709551616 is too large", in: dir)
    }

    func testWrongByteCount() {
        assertRejects(one(offsets: "[0,4]", data: 4), "tensor 't'", "data_offsets [0, 4] span 4 bytes, but F32 shape [2] needs 8", in: dir)
        assertRejects(one(dtype: "\"F16\"", offsets: "[0,8]"), "tensor 't'", "span 8 bytes, but F16 shape [2] needs 4", in: dir)
    }

    func testOverlappingTensors() {
        let header = #"{"first":{"dtype":"F32","shape":[4],"data_offsets":[0,16]},"second":{"dtype":"F32","shape":[4],"data_offsets":[8,24]}}"#
        assertRejects(SafeTensorsWriter.raw(header: header, data: [UInt8](repeating: 0, count: 24)),
                      "tensors 'first' (bytes 0..<16) and 'second' (bytes 8..<24) overlap", in: dir)
        // The same range twice.
        let twice = #"{"x":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"y":{"dtype":"I32","shape":[2],"data_offsets":[0,8]}}"#
        assertRejects(SafeTensorsWriter.raw(header: twice, data: [UInt8](repeating: 0, count: 8)), "'x'", "'y'", "overlap", in: dir)
        // An empty tensor placed inside another (the reference rejects it too).
        let inside = #"{"x":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"e":{"dtype":"F32","shape":[0],"data_offsets":[4,4]}}"#
        assertRejects(SafeTensorsWriter.raw(header: inside, data: [UInt8](repeating: 0, count: 8)), "'x'", "'e'", "overlap", in: dir)
    }

    func testDataSectionMustBeCoveredExactly() {
        let gap = #"{"x":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"y":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}}"#
        assertRejects(SafeTensorsWriter.raw(header: gap, data: [UInt8](repeating: 0, count: 12)),
                      "data section bytes 4..<8 before tensor 'y' belong to no tensor", in: dir)
        let late = #"{"x":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}"#
        assertRejects(SafeTensorsWriter.raw(header: late, data: [UInt8](repeating: 0, count: 8)),
                      "data section bytes 0..<4 before tensor 'x' belong to no tensor", in: dir)
        assertRejects(Self.valid + [0, 0, 0], "data section has 3 trailing bytes after tensor 'b' that belong to no tensor", in: dir)
        assertRejects(SafeTensorsWriter.raw(header: "{}", data: [1]), "data section has 1 trailing bytes that belong to no tensor", in: dir)
    }

    func testHugeDimensions() {
        assertRejects(one(shape: "[4294967296,4294967296]"), "tensor 't'", "element count of shape [4294967296, 4294967296] overflows", in: dir)
        assertRejects(one(shape: "[9223372036854775807,2]"), "tensor 't'", "overflows", in: dir)
        assertRejects(one(shape: "[4611686018427387904]"), "tensor 't'", "byte size of shape [4611686018427387904] with dtype F32 overflows", in: dir)
        assertRejects(one(shape: "[99999999999999999999999]"), "tensor 't'", "dimension 99999999999999999999999 is too large", in: dir)
        // Large but representable: a byte-count mismatch, not an allocation.
        assertRejects(one(shape: "[1000000000,1000000]"), "tensor 't'", "span 8 bytes, but F32 shape [1000000000, 1000000] needs 4000000000000000", in: dir)
    }

    func testBadDimensions() {
        assertRejects(one(shape: "[-1]"), "tensor 't'", "negative dimension -1", in: dir)
        assertRejects(one(shape: "[2.5]"), "tensor 't'", "non-integer dimension 2.5", in: dir)
        assertRejects(one(shape: "[2.0]"), "tensor 't'", "non-integer dimension 2.0", in: dir)
        assertRejects(one(shape: "[1e3]"), "tensor 't'", "non-integer dimension 1e3", in: dir)
        assertRejects(one(shape: "[\"2\"]"), "tensor 't'", "dimension is a string", in: dir)
        assertRejects(one(shape: "[true]"), "tensor 't'", "dimension is a boolean", in: dir)
        assertRejects(one(shape: "[[2]]"), "tensor 't'", "dimension is an array", in: dir)
        assertRejects(one(shape: "2"), "tensor 't'", "shape is a number, expected an array of integers", in: dir)
        assertRejects(one(shape: "null"), "tensor 't'", "shape is null", in: dir)
    }

    func testUnknownDType() {
        assertRejects(one(dtype: "\"Q7\""), "tensor 't'", "unknown dtype 'Q7'", "known: BOOL", in: dir)
        assertRejects(one(dtype: "\"f32\""), "tensor 't'", "unknown dtype 'f32'", in: dir)
        assertRejects(one(dtype: "\"F4\""), "tensor 't'", "unknown dtype 'F4'", in: dir)
        assertRejects(one(dtype: "4"), "tensor 't'", "dtype is a number, expected a string", in: dir)
    }

    func testBadEntries() {
        assertRejects(SafeTensorsWriter.raw(header: #"{"t":[1,2]}"#), "tensor 't': entry is an array, expected an object", in: dir)
        assertRejects(SafeTensorsWriter.raw(header: #"{"t":{"dtype":"F32","shape":[0]}}"#), "tensor 't': missing key 'data_offsets'", in: dir)
        assertRejects(SafeTensorsWriter.raw(header: #"{"t":{"dtype":"F32","shape":[0],"data_offsets":[0,0],"offsets":[0,0]}}"#),
                      "tensor 't': unexpected key 'offsets'", in: dir)
        assertRejects(SafeTensorsWriter.raw(header: #"{"__metadata__":{"format":1}}"#), "__metadata__ entry 'format' is a number, expected a string", in: dir)
        assertRejects(SafeTensorsWriter.raw(header: #"{"__metadata__":"pt"}"#), "__metadata__ is a string, expected an object", in: dir)
    }

    func testBadJSON() {
        assertRejects(SafeTensorsWriter.raw(header: "{\"t\":"), "header is not valid JSON", "unexpected end of input", in: dir)
        assertRejects(SafeTensorsWriter.raw(header: "{} x"), "header is not valid JSON", "after the top-level value", in: dir)
        assertRejects(SafeTensorsWriter.raw(header: "{'t': 1}"), "header is not valid JSON", "expected a string key", in: dir)
        assertRejects(SafeTensorsWriter.raw(header: "{\"a\":1,}"), "header is not valid JSON", "expected a string key", in: dir)
        assertRejects(SafeTensorsWriter.raw(header: "{\"a\":01}"), "header is not valid JSON", "leading zero", in: dir)
        assertRejects(SafeTensorsWriter.raw(header: "{\"a\":\"\\x\"}"), "header is not valid JSON", "invalid escape", in: dir)
        assertRejects(SafeTensorsWriter.raw(header: "{\"a\":\"\\ud800\"}"), "header is not valid JSON", "unpaired surrogate", in: dir)
        assertRejects(SafeTensorsWriter.raw(header: "{\"a\":\"x\ny\"}"), "header is not valid JSON", "control character", in: dir)
        assertRejects(SafeTensorsWriter.raw(header: ""), "header is not valid JSON", "unexpected end of input", in: dir)
        assertRejects(SafeTensorsWriter.raw(header: String(repeating: "[", count: 100_000)), "header is not valid JSON", "nesting deeper than 128", in: dir)
        assertRejects(SafeTensorsWriter.raw(header: "[]"), "header is not a JSON object (it is an array)", in: dir)
        assertRejects(SafeTensorsWriter.raw(header: "null"), "header is not a JSON object (it is null)", in: dir)

        var badUTF8 = SafeTensorsWriter.raw(header: "{\"a\u{E9}\":{}}")
        badUTF8[10] = 0xFF  // the first byte of é
        assertRejects(badUTF8, "header is not valid JSON", "invalid UTF-8 in string", in: dir)

        let dup = #"{"t":{"dtype":"F32","shape":[0],"data_offsets":[0,0]},"t":{"dtype":"F32","shape":[0],"data_offsets":[0,0]}}"#
        assertRejects(SafeTensorsWriter.raw(header: dup), "header is not valid JSON", "duplicate key 't'", in: dir)
    }

    func testHostileNamesStayOnOneLine() {
        assertRejects(one(dtype: "\"X\"").replacingHeaderName("t", with: "a\\nb'c"), "tensor 'a\\u{A}b\\'c'", "unknown dtype 'X'", in: dir)
        let long = String(repeating: "n", count: 5000)
        assertRejects(one(dtype: "\"X\"").replacingHeaderName("t", with: long), "tensor '\(String(repeating: "n", count: 200))…'", in: dir)
    }

    func testNotAFile() throws {
        let missing = dir.url.appendingPathComponent("missing.safetensors")
        assertImportError(try SafeTensorsFile(contentsOf: missing), prefix: missing.path, "cannot open", "No such file")
        assertImportError(try SafeTensorsFile(contentsOf: dir.url), prefix: dir.url.path, "cannot open: not a regular file")
    }
}

extension Array where Element == UInt8 {
    /// The same file with the JSON key `"old"` renamed (`new` is raw JSON
    /// string content), and the header length fixed up.
    func replacingHeaderName(_ old: String, with new: String) -> [UInt8] {
        let n = Int(self[0]) | Int(self[1]) << 8  // test headers are short
        var header = String(decoding: self[8..<(8 + n)], as: UTF8.self)
        header = header.replacingOccurrences(of: "\"\(old)\":", with: "\"\(new)\":")
        return SafeTensorsWriter.raw(header: header, data: Array(self[(8 + n)...]))
    }
}
