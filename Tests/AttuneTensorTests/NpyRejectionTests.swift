import Foundation
import XCTest
import AttuneTensor

/// Every way a file can be wrong must produce a one-line error naming the file
/// and the specific problem.
final class NpyRejectionTests: XCTestCase {
    let valid = NumpyFixtures.float32x2x3

    func testNotANpyFile() {
        assertRejects(Data("PK\u{3}\u{4} this is a zip".utf8), "not a .npy file", "bad magic")
        assertRejects(Data(), "not a .npy file")
        assertRejects(Data([0x93, 0x4E, 0x55, 0x4D, 0x50, 0x58, 1, 0, 0, 0]), "not a .npy file")
    }

    func testNameIsUsedVerbatim() {
        assertRejects(Data([1, 2, 3]), "weights/q.npy: not a .npy file", name: "weights/q.npy")
    }

    func testTruncatedHeader() {
        assertRejects(Data(valid.prefix(4)), "truncated header")  // partial magic
        assertRejects(Data(valid.prefix(6)), "truncated header")  // no version
        assertRejects(Data(valid.prefix(9)), "truncated header")  // half the u16 length
        assertRejects(Data(NumpyFixtures.float32Version2.prefix(11)), "truncated header", "needs 12")  // v2 u32 length
    }

    func testUnsupportedVersion() {
        var d = valid
        d[6] = 4
        assertRejects(Data(d), "unsupported .npy format version 4.0")
        d[6] = 1; d[7] = 1
        assertRejects(Data(d), "unsupported .npy format version 1.1")
    }

    func testHeaderLengthBeyondFile() {
        assertRejects(Data(valid.prefix(100)), "header length 118 extends beyond end of file", "100 bytes")
        var v2 = NumpyFixtures.float32Version2
        v2[8] = 0xFF; v2[9] = 0xFF; v2[10] = 0xFF; v2[11] = 0xFF
        assertRejects(Data(v2), "header length 4294967295 extends beyond end of file")
    }

    func testUnparsableHeader() {
        assertRejects(makeNpy(header: "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3)"), "unparsable header")
        assertRejects(makeNpy(header: "{'descr': '<f4' 'fortran_order': False}"), "unparsable header", "expected ',' or '}'")
        assertRejects(makeNpy(header: "{descr: '<f4'}"), "unparsable header", "unexpected name")
        assertRejects(makeNpy(header: "{'descr': '<f4}"), "unparsable header", "unterminated string")
        assertRejects(makeNpy(header: "{'shape': (2.5,)}"), "unparsable header")
        assertRejects(makeNpy(header: "[1, 2, 3]"), "unparsable header", "expected a dict")
        assertRejects(makeNpy(header: ""), "unparsable header", "end of header")
        assertRejects(makeNpy(header: "{} {}"), "unparsable header", "after the literal")
        assertRejects(makeNpy(header: String(repeating: "(", count: 5000)), "unparsable header", "nesting")
    }

    func testWrongKeys() {
        assertRejects(makeNpy(header: "{'descr': '<f4', 'fortran_order': False}"), "missing key 'shape'")
        assertRejects(makeNpy(header: "{'descr': '<f4', 'fortran_order': False, 'shape': (), 'x': 1}"), "unexpected key 'x'")
        assertRejects(makeNpy(header: "{'descr': '<f4', 'fortran_order': 0, 'shape': ()}"), "fortran_order must be True or False")
        assertRejects(makeNpy(header: "{'descr': '<f4', 'fortran_order': False, 'shape': '2,3'}"), "shape must be a tuple of ints")
        assertRejects(makeNpy(header: "{'descr': '<f4', 'fortran_order': False, 'shape': (2, True)}"), "shape must be a tuple of ints")
    }

    func testUnsupportedDtype() {
        assertRejects(makeNpy(header: f4Header("(2,)", descr: "<i8"), payload: [UInt8](repeating: 0, count: 16)),
                      "dtype '<i8' not supported: expected float32 or float64")
        assertRejects(makeNpy(header: f4Header("(2,)", descr: "<f2")), "dtype '<f2' not supported")
        assertRejects(makeNpy(header: "{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (1,)}"),
                      "dtype [('a', '<f4')] not supported")
        // Text from the file is kept on one line even when it contains newlines.
        assertRejects(makeNpy(header: f4Header("(2,)", descr: "<f4\\nx")), "dtype '<f4\\nx' not supported")
    }

    func testFortranOrder() {
        assertRejects(makeNpy(header: "{'descr': '<f4', 'fortran_order': True, 'shape': (2, 3), }", payload: floatBytes([1, 2, 3, 4, 5, 6])),
                      "fortran_order True not supported")
    }

    func testDataSectionLength() {
        assertRejects(Data(valid.dropLast(1)), "data section too short", "needs 24 bytes, file has 23")
        assertRejects(Data(valid + [0]), "data section too long", "needs 24 bytes, file has 25")
        assertRejects(makeNpy(header: f4Header("(2,)", descr: "<f8"), payload: floatBytes([1, 2])), "data section too short", "needs 16 bytes")
        assertRejects(makeNpy(header: f4Header("()"), payload: []), "data section too short", "needs 4 bytes, file has 0")
    }

    func testNegativeDimension() {
        assertRejects(makeNpy(header: f4Header("(2, -1)")), "negative dimension -1")
        assertRejects(makeNpy(header: f4Header("(-99999999999999999999999,)")), "negative dimension -99999999999999999999999")
    }

    func testAbsurdlyLargeDimensions() {
        assertRejects(makeNpy(header: f4Header("(99999999999999999999999,)")), "dimension 99999999999999999999999 too large")
        assertRejects(makeNpy(header: f4Header("(4294967296, 4294967296)")), "too many elements")
        // Fits in Int as an element count but not as a byte count.
        assertRejects(makeNpy(header: f4Header("(4611686018427387904,)")), "is too large", "overflows")
        // Representable but far beyond the file: rejected before any allocation.
        assertRejects(makeNpy(header: f4Header("(1000000, 1000000)")), "data section too short", "needs 4000000000000 bytes")
    }
}
