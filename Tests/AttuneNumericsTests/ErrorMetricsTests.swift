import Foundation
import XCTest
@testable import AttuneNumerics

final class ErrorMetricsTests: XCTestCase {

    func testKnownPair() {
        let m = ErrorMetrics.compare([1, 2, 3] as [Double], [1, 2.5, 2])
        XCTAssertEqual(m.maxAbs, 1)
        XCTAssertEqual(m.relL1, 1.5 / 5.5, accuracy: 1e-15)
        XCTAssertEqual(m.cosine, 12 / (14.0.squareRoot() * 11.25.squareRoot()), accuracy: 1e-15)
        XCTAssertEqual(m.nanMismatch, 0)
        XCTAssertEqual(m.nanCount, 0)
        XCTAssertEqual(m.nonFinite, 0)
        XCTAssertEqual(m.count, 3)
        XCTAssertFalse(m.hasNaN)
        XCTAssertFalse(m.sizeMismatch)
        XCTAssertTrue(m.passes(maxAbs: 1))
        XCTAssertFalse(m.passes(maxAbs: 0.999))
    }

    func testIdenticalAndOpposite() {
        let a: [Double] = [0.5, -2, 3]
        let same = ErrorMetrics.compare(a, a)
        XCTAssertEqual(same.maxAbs, 0)
        XCTAssertEqual(same.relL1, 0)
        XCTAssertEqual(same.cosine, 1, accuracy: 1e-15)
        let opp = ErrorMetrics.compare(a.map { -$0 }, a)
        XCTAssertEqual(opp.maxAbs, 6)
        XCTAssertEqual(opp.relL1, 2, accuracy: 1e-15)
        XCTAssertEqual(opp.cosine, -1, accuracy: 1e-15)
    }

    func testFloatOverload() {
        let m = ErrorMetrics.compare([Float(0.1), 2] as [Float], [0.1, 2])
        XCTAssertEqual(m.maxAbs, abs(Double(Float(0.1)) - 0.1))
        XCTAssertGreaterThan(m.maxAbs, 0)
        XCTAssertLessThan(m.maxAbs, 2e-9)
        XCTAssertTrue(m.passes(maxAbs: 2e-5))
    }

    func testNaNOnOneSideFails() {
        let m = ErrorMetrics.compare([1, .nan, 3] as [Float], [1, 2, 3])
        XCTAssertEqual(m.nanMismatch, 1)
        XCTAssertEqual(m.nanCount, 1)
        XCTAssertEqual(m.nonFinite, 1)
        XCTAssertTrue(m.hasNaN)
        XCTAssertEqual(m.maxAbs, 0)  // NaN positions excluded from the numeric metrics
        XCTAssertFalse(m.passes(maxAbs: 1))

        let e = ErrorMetrics.compare([1, 2] as [Double], [.nan, 2])
        XCTAssertEqual(e.nanMismatch, 1)
        XCTAssertTrue(e.hasNaN)
        XCTAssertFalse(e.passes(maxAbs: .infinity))
    }

    func testNaNOnBothSidesStillFails() {
        let m = ErrorMetrics.compare([.nan, 1] as [Double], [.nan, 1])
        XCTAssertEqual(m.nanMismatch, 0)
        XCTAssertEqual(m.nanCount, 1)
        XCTAssertTrue(m.hasNaN)
        XCTAssertFalse(m.passes(maxAbs: 1))
    }

    func testEqualInfinitiesAreZeroError() {
        let m = ErrorMetrics.compare([-.infinity, 1, .infinity] as [Float], [-.infinity, 1, .infinity])
        XCTAssertEqual(m.maxAbs, 0)
        XCTAssertEqual(m.nonFinite, 0)
        XCTAssertEqual(m.relL1, 0)
        XCTAssertEqual(m.cosine, 1, accuracy: 1e-15)
        XCTAssertFalse(m.hasNaN)
        XCTAssertTrue(m.passes(maxAbs: 0))
        // All-(-inf) LSE rows (fully masked) on both sides.
        let lse = ErrorMetrics.compare([-.infinity, -.infinity] as [Double], [-.infinity, -.infinity])
        XCTAssertTrue(lse.passes(maxAbs: 0))
        XCTAssertEqual(lse.cosine, 1)
    }

    func testMismatchedInfinitiesFail() {
        let a = ErrorMetrics.compare([.infinity, 1] as [Float], [5, 1])
        XCTAssertEqual(a.maxAbs, .infinity)
        XCTAssertEqual(a.nonFinite, 1)
        XCTAssertFalse(a.hasNaN)
        XCTAssertFalse(a.passes(maxAbs: 1e30))
        let b = ErrorMetrics.compare([-.infinity] as [Double], [.infinity])
        XCTAssertEqual(b.nonFinite, 1)
        XCTAssertEqual(b.maxAbs, .infinity)
        let c = ErrorMetrics.compare([0] as [Double], [-.infinity])
        XCTAssertEqual(c.nonFinite, 1)
        XCTAssertFalse(c.passes(maxAbs: 1))
    }

    func testAllZero() {
        let m = ErrorMetrics.compare([0, 0, 0] as [Float], [0, 0, 0])
        XCTAssertEqual(m.maxAbs, 0)
        XCTAssertEqual(m.relL1, 0)
        XCTAssertEqual(m.cosine, 1)
        XCTAssertTrue(m.passes(maxAbs: 0))
        let onlyExpectedZero = ErrorMetrics.compare([0, 1e-3] as [Double], [0, 0])
        XCTAssertEqual(onlyExpectedZero.relL1, .infinity)
        XCTAssertEqual(onlyExpectedZero.cosine, 0)
        XCTAssertEqual(onlyExpectedZero.maxAbs, 1e-3)
        let onlyActualZero = ErrorMetrics.compare([0, 0] as [Double], [0, 2])
        XCTAssertEqual(onlyActualZero.relL1, 1)
        XCTAssertEqual(onlyActualZero.cosine, 0)
    }

    func testEmptyAndSizeMismatch() {
        let e = ErrorMetrics.compare([] as [Float], [])
        XCTAssertEqual(e.count, 0)
        XCTAssertEqual(e.maxAbs, 0)
        XCTAssertEqual(e.cosine, 1)
        XCTAssertTrue(e.passes(maxAbs: 0))
        let s = ErrorMetrics.compare([1, 2] as [Double], [1, 2, 3])
        XCTAssertTrue(s.sizeMismatch)
        XCTAssertEqual(s.count, 2)
        XCTAssertEqual(s.maxAbs, 0)
        XCTAssertFalse(s.passes(maxAbs: 1))
    }

    func testDescription() {
        let m = ErrorMetrics.compare([1, .nan] as [Double], [1.5, 2])
        let d = m.description
        XCTAssertTrue(d.contains("maxAbs=5.000e-01"), d)
        XCTAssertTrue(d.contains("nan=1"), d)
        XCTAssertTrue(d.contains("nanMismatch=1"), d)
        XCTAssertTrue(ErrorMetrics.compare([1] as [Double], [1, 2]).description.contains("SIZE-MISMATCH"))
    }

    func testAgainstReferenceOutput() throws {
        // Typical harness use: fp32 rounding of the reference itself is well
        // inside the 2e-5 budget, and fully masked LSE rows (-inf) match.
        let p = ReferenceAttentionProblem(qHeads: 2, qLen: 4, kvLen: 3, qkDim: 8, causal: true)
        let q = (0..<p.qCount).map { sin(Double($0)) }
        let k = (0..<p.kCount).map { cos(Double($0)) }
        let v = (0..<p.vCount).map { sin(0.3 * Double($0)) }
        let r = try ReferenceAttention.softmax(p, q: q, k: k, v: v)
        XCTAssertTrue(r.lse.contains(-.infinity))
        let mo = ErrorMetrics.compare(r.o.map { Float($0) }, r.o)
        let ml = ErrorMetrics.compare(r.lse.map { Float($0) }, r.lse)
        XCTAssertTrue(mo.passes(maxAbs: 2e-5), "\(mo)")
        XCTAssertTrue(ml.passes(maxAbs: 2e-5), "\(ml)")
        XCTAssertGreaterThan(mo.cosine, 0.999999)
    }
}
