import Foundation
import XCTest
import AttuneTensor

final class NpyRoundTripTests: XCTestCase {
    static let specials: [Float] = [
        0, -0.0, 1, -1.5, .pi, .infinity, -.infinity, .nan, .leastNonzeroMagnitude, .greatestFiniteMagnitude,
    ]

    static func sample(_ shape: [Int]) -> Tensor {
        let n = shape.reduce(1, *)
        return Tensor(shape: shape, data: (0..<n).map { specials[$0 % specials.count] * Float($0 / specials.count + 1) })
    }

    static let shapes: [[Int]] = [[], [0], [1], [7], [2, 3], [2, 0, 3], [3, 4, 5], [1, 1, 1, 1, 9], [1000]]

    func testRoundTripInMemory() throws {
        for shape in Self.shapes {
            let t = Self.sample(shape)
            let back = try Npy.read(data: Npy.encode(t), name: "mem.npy")
            assertSameBits(back, t)
        }
    }

    func testRoundTripThroughFiles() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("attune-npy-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        for (i, shape) in Self.shapes.enumerated() {
            let url = dir.appendingPathComponent("t\(i).npy")
            let t = Self.sample(shape)
            try Npy.write(t, to: url)
            assertSameBits(try Npy.read(contentsOf: url), t)
        }
    }

    func testEncodedHeaderIsAlignedAndNewlineTerminated() {
        for shape in Self.shapes + [[Int.max, 0], [123_456_789, 0, 2]] {
            let d = [UInt8](Npy.encode(Tensor(shape: shape, data: [Float](repeating: 1, count: shape.reduce(1, *)))))
            let hlen = Int(d[8]) | Int(d[9]) << 8
            XCTAssertEqual((10 + hlen) % 64, 0, "shape \(shape)")
            XCTAssertEqual(d[10 + hlen - 1], 0x0A, "shape \(shape)")
        }
    }

    func testWriteRejectsInvalidTensor() {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("attune-never-\(UUID().uuidString).npy")
        XCTAssertThrowsError(try Npy.write(Tensor(shape: [2, 2], data: [1]), to: url)) { e in
            XCTAssertTrue("\(e)".contains("needs 4 elements but data has 1"), "\(e)")
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: url.path))
    }

    func testReadMissingFileNamesIt() {
        let url = URL(fileURLWithPath: "/nonexistent-dir/missing.npy")
        XCTAssertThrowsError(try Npy.read(contentsOf: url)) { e in
            XCTAssertTrue("\(e)".hasPrefix("/nonexistent-dir/missing.npy: cannot read file"), "\(e)")
        }
    }

    func testSliceOfLargerDataIsRead() throws {
        // Data slices keep their parent's indices; the reader must not assume 0.
        let whole = Data([0xAA, 0xBB]) + Data(NumpyFixtures.float32x2x3)
        let t = try Npy.read(data: whole.dropFirst(2), name: "slice.npy")
        XCTAssertEqual(t.shape, [2, 3])
        XCTAssertEqual(t.data, [1, -2.5, 3.25, 0, 1e-3, 65504])
    }
}

/// Compatibility with files and bytes produced by numpy itself.
final class NpyNumpyCompatibilityTests: XCTestCase {
    func testEncodeIsByteIdenticalToNumpySave() {
        let t = Tensor(shape: [2, 3], data: [1, -2.5, 3.25, 0, 1e-3, 65504])
        XCTAssertEqual([UInt8](Npy.encode(t)), NumpyFixtures.float32x2x3)
        XCTAssertEqual([UInt8](Npy.encode(Tensor(shape: [], data: [3.5]))), NumpyFixtures.float32Scalar)
    }

    func testEncodeMatchesNumpyWhenHeaderIsAlreadyAligned() {
        // numpy pads a full 64 bytes rather than zero in this case.
        let t = Tensor(zeros: [0, 10, 10] + [Int](repeating: 1, count: 11))
        XCTAssertEqual([UInt8](Npy.encode(t)), NumpyFixtures.float32FullPadding)
    }

    func testReadsNumpyFloat32() throws {
        let t = try Npy.read(data: Data(NumpyFixtures.float32x2x3), name: "f32.npy")
        XCTAssertEqual(t, Tensor(shape: [2, 3], data: [1, -2.5, 3.25, 0, 1e-3, 65504]))
        let s = try Npy.read(data: Data(NumpyFixtures.float32Scalar), name: "scalar.npy")
        XCTAssertEqual(s, Tensor(shape: [], data: [3.5]))
    }

    func testReadsFloat64AndConvertsToFloat() throws {
        let t = try Npy.read(data: Data(NumpyFixtures.float64x2x2), name: "f64.npy")
        XCTAssertEqual(t.shape, [2, 2])
        // 1e300 is beyond Float range and rounds to infinity.
        XCTAssertEqual(t.data, [Float(0.1 as Double), -2, .infinity, 3])
    }

    func testReadsFormatVersions2And3() throws {
        for bytes in [NumpyFixtures.float32Version2, NumpyFixtures.float32Version3] {
            let t = try Npy.read(data: Data(bytes), name: "v.npy")
            XCTAssertEqual(t, Tensor(shape: [2], data: [1, 2]))
        }
    }

    func testReadsBigEndianBySwapping() throws {
        for bytes in [NumpyFixtures.float32BigEndian, NumpyFixtures.float64BigEndian] {
            let t = try Npy.read(data: Data(bytes), name: "be.npy")
            XCTAssertEqual(t, Tensor(shape: [2], data: [1.5, -2]))
        }
    }
}
