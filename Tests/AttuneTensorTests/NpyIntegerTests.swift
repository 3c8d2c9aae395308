import Foundation
import XCTest
import AttuneTensor

/// Integer arrays (token ids for `attune calibrate`): every integer width and byte
/// order numpy writes, and the same strictness as the float reader.
final class NpyIntegerTests: XCTestCase {
    func header(_ descr: String, _ shape: String) -> String { f4Header(shape, descr: descr) }

    func testEveryWidthAndByteOrder() throws {
        let cases: [(String, [UInt8], [Int64])] = [
            ("<i4", [1, 0, 0, 0, 0xFF, 0xFF, 0xFF, 0xFF], [1, -1]),
            (">i2", [0x01, 0x02, 0xFF, 0xFE], [258, -2]),
            ("|u1", [7, 255], [7, 255]),
            ("<u2", [0xFF, 0xFF, 0, 1], [65535, 256]),
            ("<i8", [0, 0, 0, 0, 0, 0, 0, 0x80, 5, 0, 0, 0, 0, 0, 0, 0], [Int64.min, 5]),
        ]
        for (descr, payload, expected) in cases {
            let parsed = try Npy.readIntegers(data: makeNpy(header: header(descr, "(2,)"), payload: payload), name: descr)
            XCTAssertEqual(parsed.shape, [2], descr)
            XCTAssertEqual(parsed.values, expected, descr)
        }
    }

    func testWriteRoundTrips() throws {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("attune-ints-\(UUID().uuidString).npy")
        defer { try? FileManager.default.removeItem(at: url) }
        try Npy.writeIntegers([3, -4, 5, 6, 7, 8], shape: [2, 3], to: url)
        let back = try Npy.readIntegers(contentsOf: url)
        XCTAssertEqual(back.shape, [2, 3])
        XCTAssertEqual(back.values, [3, -4, 5, 6, 7, 8])
        XCTAssertThrowsError(try Npy.writeIntegers([1], shape: [2], to: url))
    }

    func testRejectsFloatsOverflowAndTruncation() {
        func rejects(_ data: Data, _ needle: String, line: UInt = #line) {
            XCTAssertThrowsError(try Npy.readIntegers(data: data, name: "ids.npy"), line: line) { error in
                XCTAssertTrue("\(error)".hasPrefix("ids.npy: ") && "\(error)".contains(needle), "\(error)", line: line)
            }
        }
        rejects(makeNpy(header: header("<f4", "(1,)"), payload: floatBytes([1])), "expected an integer type")
        rejects(makeNpy(header: header("<i3", "(1,)"), payload: [1, 2, 3]), "not supported")
        rejects(makeNpy(header: header("<u8", "(1,)"), payload: [UInt8](repeating: 0xFF, count: 8)), "does not fit")
        rejects(makeNpy(header: header("<i4", "(2,)"), payload: [1, 0, 0, 0]), "data section too short")
        // The float reader still refuses integers.
        assertRejects(makeNpy(header: header("<i8", "(1,)"), payload: [UInt8](repeating: 0, count: 8)), "not supported")
    }
}
