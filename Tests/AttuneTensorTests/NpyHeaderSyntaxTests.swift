import Foundation
import XCTest
import AttuneTensor

/// The header is a Python literal; these are spellings numpy (via
/// `ast.literal_eval`) accepts, so the reader must too.
final class NpyHeaderSyntaxTests: XCTestCase {
    let payload6 = floatBytes([1, 2, 3, 4, 5, 6])

    func read(_ header: String, payload: [UInt8]? = nil, major: UInt8 = 1, pad: Bool = true) throws -> Tensor {
        try Npy.read(data: makeNpy(header: header, major: major, payload: payload ?? payload6, pad: pad), name: "h.npy")
    }

    func testKeysInAnyOrderAndDoubleQuotes() throws {
        let t = try read(#"{"shape": (2, 3), "fortran_order": False, "descr": "<f4"}"#)
        XCTAssertEqual(t, Tensor(shape: [2, 3], data: [1, 2, 3, 4, 5, 6]))
    }

    func testWhitespaceTrailingCommasAndNoPadding() throws {
        let t = try read("{ 'descr' :'<f4' ,\n\t'fortran_order':False,'shape':( 2 ,3 , ) , }", pad: false)
        XCTAssertEqual(t.shape, [2, 3])
    }

    func testOneAndZeroTuples() throws {
        XCTAssertEqual(try read(f4Header("(6,)")).shape, [6])
        XCTAssertEqual(try read(f4Header("()"), payload: floatBytes([9])), Tensor(shape: [], data: [9]))
    }

    func testPython2LongSuffixAndUnderscores() throws {
        XCTAssertEqual(try read(f4Header("(2L, 3L)")).shape, [2, 3])
        XCTAssertEqual(try read(f4Header("(1_0,)"), payload: floatBytes([Float](repeating: 1, count: 10))).shape, [10])
    }

    func testByteOrderCharacters() throws {
        for d in ["<f4", "|f4", "=f4", "f4"] {
            XCTAssertEqual(try read(f4Header("(6,)", descr: d)).data, [1, 2, 3, 4, 5, 6], d)
        }
    }

    func testDuplicateKeyLastWins() throws {
        let t = try read("{'shape': (99,), 'descr': '<f4', 'fortran_order': False, 'shape': (6,)}")
        XCTAssertEqual(t.shape, [6])
    }

    func testVersion3Utf8Header() throws {
        XCTAssertEqual(try read(f4Header("(2, 3)"), major: 3).shape, [2, 3])
    }
}
