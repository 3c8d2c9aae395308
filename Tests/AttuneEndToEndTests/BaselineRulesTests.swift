import AttuneCheck
import XCTest

/// The regression rules of `attune check` (Docs/NUMERICS.md).
final class BaselineRulesTests: XCTestCase {
    func testToleranceGrowthFloorAndMissingCases() {
        let baseline = Baseline(cases: ["kernel/x/a": ["max_abs": 1e-6, "rel_l1": 1e-7], "kernel/y/a": ["rel_l1": 0.1],
                                        "kernel/x/gone": ["rel_l1": 0]])
        func c(_ id: String, exact: Bool, _ m: [String: Double]) -> CheckCase { CheckCase(id: id, kind: .kernel, exact: exact, metrics: m) }
        // Within 2x of the baseline and the exact tolerance: fine.
        var r = baseline.regressions([c("kernel/x/a", exact: true, ["max_abs": 1.9e-6, "rel_l1": 1.9e-7]), c("kernel/y/a", exact: false, ["rel_l1": 0.19])])
        XCTAssertEqual(r.map(\.caseID), ["kernel/x/gone"], "only the case that no longer runs")
        // More than 2x: regression (approximate kernels included).
        r = baseline.regressions([c("kernel/y/a", exact: false, ["rel_l1": 0.21])])
        XCTAssertTrue(r.contains { $0.caseID == "kernel/y/a" && $0.metric == "rel_l1" })
        // Exact kernels: the absolute tolerance wins even over a bad baseline.
        let lax = Baseline(cases: ["kernel/x/a": ["max_abs": 1]])
        XCTAssertEqual(lax.regressions([c("kernel/x/a", exact: true, ["max_abs": 2e-4])]).map(\.metric), ["max_abs"])
        // A zero baseline tolerates rounding (the floor), not more.
        let zero = Baseline(cases: ["kernel/x/a": ["max_abs": 0]])
        XCTAssertTrue(zero.regressions([c("kernel/x/a", exact: false, ["max_abs": 5e-7])]).isEmpty)
        XCTAssertFalse(zero.regressions([c("kernel/x/a", exact: false, ["max_abs": 5e-6])]).isEmpty)
        // NaN never passes; a new case passes.
        XCTAssertFalse(zero.regressions([c("kernel/x/a", exact: false, ["max_abs": .nan])]).isEmpty)
        XCTAssertTrue(Baseline(cases: [:]).regressions([c("kernel/new/a", exact: false, ["rel_l1": 0.3])]).isEmpty)
    }

    /// A storage format's case (`--kv`, `--weights`) is held to the format's own bound even
    /// when the baseline drifted with it: format_bound_ratio ≤ 1 whatever the baseline says.
    func testFormatCasesAreHeldToTheirBound() {
        func c(_ ratio: Double) -> CheckCase {
            CheckCase(id: "model/qwen2/flash+kv=int8", kind: .model, exact: false, metrics: ["format_bound_ratio": ratio])
        }
        let drifted = Baseline(cases: ["model/qwen2/flash+kv=int8": ["format_bound_ratio": 0.9]])
        XCTAssertTrue(drifted.regressions([c(0.95)]).isEmpty)
        XCTAssertEqual(drifted.regressions([c(1.2)]).map(\.metric), ["format_bound_ratio"])
        XCTAssertEqual(Baseline(cases: [:]).regressions([c(1.01)]).map(\.metric), ["format_bound_ratio"], "a new case too")
    }
}
