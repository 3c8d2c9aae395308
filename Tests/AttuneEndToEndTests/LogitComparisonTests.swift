import AttuneRuntime
import XCTest

/// The model-level error measures `attune bench model` reports, on hand-checked values.
final class LogitComparisonTests: XCTestCase {
    func testMeasuresAgainstHandComputedValues() {
        // Two positions of a 2-word vocabulary. Position 0 equal; position 1: baseline
        // softmax (0.5, 0.5), candidate logits (ln 3, 0) -> softmax (0.75, 0.25).
        let base: [Float] = [1, 2, 0, 0], cand: [Float] = [1, 2, Float(log(3.0)), 0]
        let c = LogitComparison(baseline: base, candidate: cand, vocab: 2)
        XCTAssertEqual(c.positions, 2)
        XCTAssertEqual(c.maxAbs, log(3.0), accuracy: 1e-6)
        // KL((.5,.5) || (.75,.25)) = .5 ln(.5/.75) + .5 ln(.5/.25) = .5 ln(4/3).
        XCTAssertEqual(c.maxKL, 0.5 * log(4.0 / 3.0), accuracy: 1e-6)
        XCTAssertEqual(c.meanKL, 0.25 * log(4.0 / 3.0), accuracy: 1e-6)
        XCTAssertEqual(c.top1Agreement, 1, "ties pick the first entry in both")
        let flipped = LogitComparison(baseline: [0, 1], candidate: [1, 0], vocab: 2)
        XCTAssertEqual(flipped.top1Agreement, 0)
        let all = LogitComparison.combine([c, flipped])
        XCTAssertEqual(all.positions, 3)
        XCTAssertEqual(all.top1Agreement, 2.0 / 3.0, accuracy: 1e-12)
        XCTAssertEqual(all.maxAbs, log(3.0), accuracy: 1e-6)
        XCTAssertEqual(LogitComparison(baseline: base, candidate: base, vocab: 2).meanKL, 0)
    }
}
