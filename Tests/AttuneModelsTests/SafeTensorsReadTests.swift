import Foundation
import XCTest
import AttuneModels

/// Valid files: values come back bit for bit, for every float dtype.
final class SafeTensorsReadTests: XCTestCase {
    func open(_ bytes: [UInt8], in dir: TempDir, name: String = "t.safetensors") throws -> SafeTensorsFile {
        try SafeTensorsFile(contentsOf: dir.write(name, bytes))
    }

    func testF32RoundTripIsBitExact() throws {
        let dir = try TempDir()
        let values: [Float] = [0, -0.0, 1, -1.5, .pi, .infinity, -.infinity, .nan, .leastNonzeroMagnitude, .greatestFiniteMagnitude]
        let f = try open(SafeTensorsWriter.encode([.f32("w", [2, 5], values)]), in: dir)
        XCTAssertEqual(f.tensorNames, ["w"])
        XCTAssertEqual(try f.floats("w").map(\.bitPattern), values.map(\.bitPattern))
        let t = try f.tensor("w")
        XCTAssertEqual(t.shape, [2, 5])
        XCTAssertEqual(t.data.map(\.bitPattern), values.map(\.bitPattern))
    }

    func testBFloat16KnownValues() throws {
        let dir = try TempDir()
        let bits: [UInt16] = [0x3F80, 0xC000, 0x7F80, 0xFF80, 0x7FC0, 0x0001, 0x8000, 0x4049]
        let f = try open(SafeTensorsWriter.encode([.bf16("b", [8], bits: bits)]), in: dir)
        let x = try f.floats("b")
        XCTAssertEqual(x[0], 1.0)
        XCTAssertEqual(x[1], -2.0)
        XCTAssertEqual(x[2], .infinity)
        XCTAssertEqual(x[3], -.infinity)
        XCTAssertTrue(x[4].isNaN)
        XCTAssertEqual(x[5], Float(bitPattern: 0x0001_0000))  // an f32 subnormal
        XCTAssertTrue(x[5].isSubnormal)
        XCTAssertEqual(x[6].bitPattern, (-0.0 as Float).bitPattern)
        XCTAssertEqual(x[7], 3.140625)
        // bf16 is the top half of an f32, bit for bit.
        XCTAssertEqual(x.map(\.bitPattern), bits.map { UInt32($0) << 16 })
    }

    func testFloat16KnownValues() throws {
        let dir = try TempDir()
        let bits: [UInt16] = [0x3C00, 0x0001, 0x03FF, 0x0400, 0x7BFF, 0x7C00, 0xFC00, 0x7E00, 0x8000, 0xC000, 0x3555, 0x8001]
        let f = try open(SafeTensorsWriter.encode([.f16("h", [3, 4], bits: bits)]), in: dir)
        let x = try f.floats("h")
        XCTAssertEqual(x[0], 1.0)
        XCTAssertEqual(x[1], 0x1p-24)  // smallest subnormal, 5.96e-8
        XCTAssertEqual(x[1], 5.96e-8, accuracy: 1e-10)
        XCTAssertEqual(x[2], 1023 * 0x1p-24)  // largest subnormal
        XCTAssertEqual(x[3], 0x1p-14)  // smallest normal
        XCTAssertEqual(x[4], 65504)
        XCTAssertEqual(x[5], .infinity)
        XCTAssertEqual(x[6], -.infinity)
        XCTAssertTrue(x[7].isNaN)
        XCTAssertEqual(x[8].bitPattern, (-0.0 as Float).bitPattern)
        XCTAssertEqual(x[9], -2)
        XCTAssertEqual(x[10], 0.333251953125)
        XCTAssertEqual(x[11], -0x1p-24)
    }

    #if !(os(macOS) && arch(x86_64))  // Float16 is unavailable there
    /// Every one of the 65536 half values against the platform's conversion.
    func testFloat16ExhaustivelyMatchesPlatformConversion() throws {
        let dir = try TempDir()
        let bits = (0...UInt16.max).map { $0 }
        let f = try open(SafeTensorsWriter.encode([.f16("all", [bits.count], bits: bits)]), in: dir)
        let x = try f.floats("all")
        for (b, v) in zip(bits, x) {
            let expected = Float(Float16(bitPattern: b))
            if expected.isNaN {
                XCTAssertTrue(v.isNaN, "0x\(String(b, radix: 16))")
            } else if v.bitPattern != expected.bitPattern {
                XCTFail("0x\(String(b, radix: 16)): got \(v), expected \(expected)")
            }
        }
    }
    #endif

    func testUnalignedDataIsReadCorrectly() throws {
        let dir = try TempDir()
        let bytes = SafeTensorsWriter.encode(
            [.f16("a", [3], bits: [0x3C00, 0x4000, 0x4200]), .f32("b", [2], [1.5, -2.25]), .bf16("c", [1], bits: [0x3F80])],
            align: false)
        XCTAssertNotEqual((bytes.count - 10) % 4, 0, "test needs b's data (8 + 2 bytes before the end) to be misaligned")
        let f = try open(bytes, in: dir)
        XCTAssertEqual(try f.floats("a"), [1, 2, 3])
        XCTAssertEqual(try f.floats("b"), [1.5, -2.25])
        XCTAssertEqual(try f.floats("c"), [1])
    }

    func testInfoRawBytesAndMetadata() throws {
        let dir = try TempDir()
        let i64 = TestTensor(name: "ids", dtype: "I64", shape: [2], bytes: le(Int64(7)) + le(Int64(-1)))
        let bytes = SafeTensorsWriter.encode([.f32("z.w", [1, 2], [3, 4]), i64], metadata: ["format": "pt"])
        let f = try open(bytes, in: dir)
        XCTAssertEqual(f.tensorNames, ["ids", "z.w"])
        XCTAssertEqual(f.metadata, ["format": "pt"])
        let info = try f.info("ids")
        XCTAssertEqual(info.dtype, .i64)
        XCTAssertEqual(info.shape, [2])
        XCTAssertEqual(info.elementCount, 2)
        XCTAssertEqual(info.byteCount, 16)
        XCTAssertEqual(info.file, f.path)
        XCTAssertEqual(try f.withRawBytes(of: "ids") { Array($0) }, i64.bytes)
        XCTAssertEqual(try f.withRawBytes(of: "z.w") { Array($0) }, le(Float(3).bitPattern) + le(Float(4).bitPattern))
        assertImportError(try f.floats("ids"), prefix: f.path, "tensor 'ids' has dtype I64", "only F32, BF16 and F16")
        assertImportError(try f.info("nope"), prefix: f.path, "missing tensor 'nope'")
        assertImportError(try f.withRawBytes(of: "nope") { $0.count }, prefix: f.path, "missing tensor 'nope'")
    }

    func testScalarsEmptyTensorsAndEmptyFiles() throws {
        let dir = try TempDir()
        let f = try open(SafeTensorsWriter.encode([
            .f32("scalar", [], [42]), .f32("empty", [0, 5], []), .f32("empty2", [3, 0], []), .f32("after", [1], [7]),
        ]), in: dir)
        XCTAssertEqual(try f.tensor("scalar").shape, [])
        XCTAssertEqual(try f.floats("scalar"), [42])
        XCTAssertEqual(try f.floats("empty"), [])
        XCTAssertEqual(try f.info("empty2").byteCount, 0)
        XCTAssertEqual(try f.floats("after"), [7])

        // A zero dimension makes the element count zero whatever the others say.
        let huge = SafeTensorsWriter.raw(header: #"{"z":{"dtype":"F32","shape":[0,4611686018427387904,4611686018427387904],"data_offsets":[0,0]}}"#)
        XCTAssertEqual(try open(huge, in: dir, name: "huge0.safetensors").info("z").elementCount, 0)
        let zeroLast = SafeTensorsWriter.raw(header: #"{"z":{"dtype":"F32","shape":[4611686018427387904,4611686018427387904,0],"data_offsets":[0,0]}}"#)
        let z = try open(zeroLast, in: dir, name: "huge1.safetensors")
        XCTAssertEqual(try z.info("z").elementCount, 0)
        XCTAssertEqual(try z.floats("z"), [])

        let none = try open(SafeTensorsWriter.raw(header: "{}"), in: dir, name: "none.safetensors")
        XCTAssertEqual(none.tensorNames, [])
        let padded = try open(SafeTensorsWriter.raw(header: "  {\"__metadata__\":{}}  \n"), in: dir, name: "padded.safetensors")
        XCTAssertEqual(padded.metadata, [:])
    }

    func testTensorOrderInFileDoesNotMatter() throws {
        let dir = try TempDir()
        let header = #"{"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]},"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}"#
        let f = try open(SafeTensorsWriter.raw(header: header, data: le(Float(1).bitPattern) + le(Float(2).bitPattern)), in: dir)
        XCTAssertEqual(try f.floats("a"), [1])
        XCTAssertEqual(try f.floats("b"), [2])
    }

    func testNamesWithEscapesAndUnicode() throws {
        let dir = try TempDir()
        let f = try open(SafeTensorsWriter.encode([.f32("ünï\"cødé\u{1F600}", [1], [5])]), in: dir)
        XCTAssertEqual(try f.floats("ünï\"cødé\u{1F600}"), [5])
        let escaped = SafeTensorsWriter.raw(header: #"{"\u00fc\ud83d\ude00":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}"#, data: le(Float(6).bitPattern))
        XCTAssertEqual(try open(escaped, in: dir, name: "e.safetensors").floats("ü\u{1F600}"), [6])
    }

    func testFileStaysReadableAfterItIsDeleted() throws {
        // The mapping, not the path, keeps the data: deleting the file (as a
        // cache eviction might) must not break an open reader.
        let dir = try TempDir()
        let url = try dir.write("gone.safetensors", SafeTensorsWriter.encode([.f32("w", [2], [1, 2])]))
        let f = try SafeTensorsFile(contentsOf: url)
        try FileManager.default.removeItem(at: url)
        XCTAssertEqual(try f.floats("w"), [1, 2])
    }

    func testParsesFromMemoryLikeFromFile() throws {
        // `init(data:name:)` (what the fuzz harness uses) must accept and
        // reject exactly what the file path does, naming `name` instead.
        let bytes = SafeTensorsWriter.encode([.f32("w", [2], [1, 2]), .bf16("b", [1], bits: [0x3F80])], metadata: ["format": "pt"])
        let f = try SafeTensorsFile(data: Data(bytes), name: "mem")
        XCTAssertEqual(f.tensorNames, ["b", "w"])
        XCTAssertEqual(f.metadata, ["format": "pt"])
        XCTAssertEqual(try f.floats("w"), [1, 2])
        XCTAssertEqual(try f.floats("b"), [1])
        XCTAssertEqual(try f.info("w").file, "mem")
        // A slice of a larger `Data` (indices not starting at 0) reads the same.
        let sliced = (Data([0xAA, 0xBB]) + Data(bytes)).dropFirst(2)
        XCTAssertEqual(try SafeTensorsFile(data: sliced, name: "slice").floats("w"), [1, 2])
        assertImportError(try SafeTensorsFile(data: Data(), name: "mem"), prefix: "mem", "file is 0 bytes")
        assertImportError(try SafeTensorsFile(data: Data(bytes.dropLast()), name: "mem"), prefix: "mem", "outside the data section")
    }
}
