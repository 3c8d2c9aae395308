import XCTest
import AttuneTensor

final class TensorTests: XCTestCase {
    func testMakeAcceptsConsistentShapes() throws {
        let t = try Tensor.make(shape: [2, 3], data: [1, 2, 3, 4, 5, 6])
        XCTAssertEqual(t.count, 6)
        XCTAssertEqual(t.rank, 2)
        let s = try Tensor.make(shape: [], data: [7])
        XCTAssertEqual(s.rank, 0)
        XCTAssertEqual(s.count, 1)
        let e = try Tensor.make(shape: [4, 0], data: [])
        XCTAssertEqual(e.count, 0)
    }

    func testMakeRejectsCountMismatch() {
        XCTAssertThrowsError(try Tensor.make(shape: [2, 3], data: [1, 2])) { e in
            XCTAssertTrue("\(e)".contains("needs 6 elements but data has 2"), "\(e)")
        }
        XCTAssertThrowsError(try Tensor.make(shape: [], data: []))
    }

    func testMakeRejectsNegativeAndOverflowingShapes() {
        XCTAssertThrowsError(try Tensor.make(shape: [2, -1], data: [])) { e in
            XCTAssertTrue("\(e)".contains("negative dimension -1"), "\(e)")
        }
        XCTAssertThrowsError(try Tensor.make(shape: [Int.max, 2], data: [])) { e in
            XCTAssertTrue("\(e)".contains("overflows"), "\(e)")
        }
    }

    func testZeroDimensionWinsOverOverflow() throws {
        // Product is 0 even though the other dims alone would overflow.
        let t = try Tensor.make(shape: [Int.max, Int.max, 0], data: [])
        XCTAssertEqual(t.count, 0)
    }

    func testZeros() {
        let t = Tensor(zeros: [2, 2])
        XCTAssertEqual(t, Tensor(shape: [2, 2], data: [0, 0, 0, 0]))
        XCTAssertEqual(Tensor(zeros: []).data, [0])
        XCTAssertEqual(Tensor(zeros: [3, 0]).count, 0)
    }
}
