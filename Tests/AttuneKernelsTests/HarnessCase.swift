import AttuneKernels
import AttuneNumerics
import AttuneTensor
import XCTest

/// One row of the kernel harness: a problem, a kernel with parameters, how the inputs
/// are drawn, and the bound the kernel's output must meet against the float64 reference.
struct HarnessCase: CustomStringConvertible {
    var name: String
    var problem: AttentionProblem
    var kernel: String = "flash"
    var parameters: KernelParameters = [:]
    /// Bound on max |O - O_ref|.
    var maxAbs: Double = 2e-5
    /// Bound on |LSE - LSE_ref| / max(1, |LSE_ref|).
    var lseRel: Double = 2e-6
    var seed: UInt64 = 1
    var qScale: Float = 1
    var kScale: Float = 1
    /// Value written into K/V rows no query may see (NaN, Inf, 1e10), if any.
    var poison: Float? = nil
    /// Copies batch 0's first N keys and values into every batch (a shared prompt prefix).
    var sharedPrefix: Int? = nil

    var description: String { "\(name) [\(kernel) \(describeParameters(parameters, separator: ","))] \(problem)" }
}

/// Metrics of one harness row, after it ran.
struct HarnessResult {
    var o: ErrorMetrics
    var lseWorst: Double
    var lseNaN: Int
}

enum Harness {
    static func run(_ c: HarnessCase) throws -> HarnessResult {
        var inputs = AttentionInputs(c.problem, seed: c.seed, qScale: c.qScale, kScale: c.kScale)
        if let poison = c.poison {
            let keys = AttentionInputs.keysNoQuerySees(c.problem)
            precondition(!keys.isEmpty, "\(c.name): poison needs masked keys")
            inputs.poison(keys: keys, with: poison, c.problem)
        }
        if let n = c.sharedPrefix { inputs.sharePrefix(n, c.problem) }
        let kernel = try KernelRegistry.kernel(named: c.kernel)
        let out = try kernel.run(c.problem, q: inputs.q, k: inputs.k, v: inputs.v, parameters: c.parameters)
        if kernel.normalizer == .sigmoid {
            // Sigmoid attention has no softmax denominator: only O is compared.
            let ref = try ReferenceBridge.sigmoid(c.problem, bias: c.parameters["bias"] ?? 0, inputs)
            return HarnessResult(o: ErrorMetrics.compare(out.o.data, ref), lseWorst: 0, lseNaN: 0)
        }
        let ref = try ReferenceBridge.softmax(c.problem, inputs)
        let o = ErrorMetrics.compare(out.o.data, ref.o)
        var worst = 0.0, nan = 0
        for (a, b) in zip(out.lse.data, ref.lse) {
            if a.isNaN || b.isNaN { nan += 1; continue }
            if Double(a) == b { continue }
            worst = max(worst, abs(Double(a) - b) / max(1, abs(b)))
        }
        return HarnessResult(o: o, lseWorst: worst, lseNaN: nan)
    }

    /// Runs a row and asserts its bound; a NaN on either side fails.
    static func check(_ c: HarnessCase, file: StaticString = #filePath, line: UInt = #line) {
        do {
            let r = try run(c)
            XCTAssertFalse(r.o.sizeMismatch, "\(c): size mismatch", file: file, line: line)
            XCTAssertEqual(r.o.nanCount, 0, "\(c): NaN in output or reference", file: file, line: line)
            XCTAssertEqual(r.lseNaN, 0, "\(c): NaN in LSE", file: file, line: line)
            XCTAssertLessThanOrEqual(r.o.maxAbs, c.maxAbs, "\(c): max abs error", file: file, line: line)
            XCTAssertLessThanOrEqual(r.lseWorst, c.lseRel, "\(c): LSE error", file: file, line: line)
        } catch {
            XCTFail("\(c): \(error)", file: file, line: line)
        }
    }
}
