@testable import AttuneCheck
import AttuneKernels
import XCTest

/// The accuracy rules and kernel contracts of `attune check` (Docs/NUMERICS.md, "Accuracy
/// rules" and "Kernel contracts"), on hand-computed values and the suite's own inputs.
final class ContractRulesTests: XCTestCase {
    func testNMSEAndTheDynamoRule() {
        // ggml: Σ(out − ref)² / Σ ref². ref = (3, 4), out = (3, 5): 1 / 25.
        XCTAssertEqual(AccuracyRules.nmse([3, 5], [3, 4]), 1.0 / 25, accuracy: 1e-15)
        XCTAssertEqual(AccuracyRules.nmse([0, 0], [0, 0]), 0)
        XCTAssertEqual(AccuracyRules.nmse([1, 0], [0, 0]), 1, "an all-zero reference with a non-zero output")
        XCTAssertEqual(AccuracyRules.nmse([.nan, 5], [3, 4]), 1.0 / 16, accuracy: 1e-15, "NaN positions are nan_mismatch's")
        XCTAssertEqual(AccuracyRules.rmse([3, 5], [3, 4]), (0.5).squareRoot(), accuracy: 1e-15)
        // dynamo: m = 2 for fp32 tensors of ≥ 1000 elements, 3 below or for bf16; + tol/10 = 1e-5.
        XCTAssertEqual(AccuracyRules.dynamoRatio(result: 3e-5, eager: 1e-5, elements: 1000), 1, accuracy: 1e-12)
        XCTAssertEqual(AccuracyRules.dynamoRatio(result: 4e-5, eager: 1e-5, elements: 999), 1, accuracy: 1e-12)
        XCTAssertEqual(AccuracyRules.dynamoRatio(result: 4e-5, eager: 1e-5, elements: 5000, lowPrecision: true), 1, accuracy: 1e-12)
    }

    /// Plain fp32 attention is within fp32 rounding of float64 on an ordinary problem, and
    /// gives 0 for rows that see no key.
    func testTheEagerReference() throws {
        let c = KernelProblem.suite.first { $0.name == "empty-rows-window-end" }!
        let x = c.inputs()
        let eager = EagerAttention.run(c.problem, q: x.q.data, k: x.k.data, v: x.v.data, sigmoidBias: nil)
        let flash = try KernelRegistry.kernel(named: "flash")
        let ref = try KernelCheck.reference(flash, c.problem, x, bias: 0)
        XCTAssertLessThan(AccuracyRules.rmse(eager, ref), 1e-6)
        XCTAssertGreaterThan(AccuracyRules.rmse(eager, ref), 0, "fp32, not float64")
        let empty = (0..<c.problem.qLen).filter { EagerAttention.visibleKeys(c.problem, row: $0).isEmpty }
        XCTAssertEqual(empty, Array(11..<16), "a window slid past the last key empties the last rows")
        for row in empty { XCTAssertTrue(eager[(row * c.problem.vDim)..<((row + 1) * c.problem.vDim)].allSatisfy { $0 == 0 }) }
    }

    /// kascade on N(0, 1) decode is out of its scope (no shared 13 % selection holds the
    /// mass of near-uniform attention), on structured decode in scope and held to its bound.
    func testKascadeScopeAndBound() throws {
        let kascade = try KernelRegistry.kernel(named: "kascade")
        func verdict(_ name: String, relL1: Double) throws -> ContractVerdict {
            let c = KernelProblem.suite.first { $0.name == name }!
            let x = c.inputs()
            let ref = try KernelCheck.reference(kascade, c.problem, x, bias: 0)
            return KernelContracts.judge(kascade, variant: [:], problem: c.problem,
                                         inputs: .init(q: x.q.data.map(Double.init), k: x.k.data.map(Double.init), v: x.v.data.map(Double.init), o: ref),
                                         metrics: ["rel_l1": relL1, "nmse": 0, "nan_mismatch": 0])
        }
        let random = try verdict("decode-gqa", relL1: 1.86)
        XCTAssertNil(random.ratio)
        XCTAssertTrue(random.outOfScope?.contains("too flat") ?? false, "\(random)")
        let inside = try verdict("structured-decode", relL1: 0.0775)
        XCTAssertNil(inside.outOfScope)
        XCTAssertLessThan(try XCTUnwrap(inside.ratio), 1)
        let drifted = try verdict("structured-decode", relL1: 0.2)
        XCTAssertGreaterThan(try XCTUnwrap(drifted.ratio), 1, "\(drifted.bound)")
    }

    /// `contract_ratio` over 1 fails whatever the baseline says, and is labelled "outside
    /// contract"; an exact kernel's max_abs tolerance gives way to the dynamo rule only where
    /// plain fp32 attention itself cannot meet it.
    func testContractRatioAndExactTolerances() {
        let id = "kernel/sparge/structured-prefill"
        let drifted = Baseline(cases: [id: ["contract_ratio": 1.3]])
        let r = drifted.regressions([CheckCase(id: id, kind: .kernel, exact: false, metrics: ["contract_ratio": 1.3])])
        XCTAssertEqual(r.map(\.metric), ["contract_ratio"])
        XCTAssertTrue(r[0].outsideContract)
        XCTAssertTrue(drifted.regressions([CheckCase(id: id, kind: .kernel, exact: false, metrics: ["contract_ratio": 0.9])]).isEmpty)

        let base = Baseline(cases: [:])
        let ordinary = CheckCase(id: "kernel/flash/x", kind: .kernel, exact: true, metrics: ["max_abs": 2e-4], eager: ["max_abs": 1e-6])
        XCTAssertEqual(base.regressions([ordinary]).map(\.metric), ["max_abs"])
        XCTAssertFalse(base.regressions([ordinary])[0].outsideContract)
        let hugeScores = CheckCase(id: "kernel/flash/y", kind: .kernel, exact: true, metrics: ["max_abs": 3e-4], eager: ["max_abs": 7e-5])
        XCTAssertTrue(base.regressions([hugeScores]).isEmpty)
    }
}
