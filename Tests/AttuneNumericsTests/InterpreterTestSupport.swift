import AttuneIR
import AttuneNumerics
import Foundation
import XCTest

/// Deterministic uniform/normal draws (SplitMix64 + Box-Muller), the same on every machine.
struct SeededRandom {
    private var state: UInt64
    init(seed: UInt64) { state = seed &+ 0x9E37_79B9_7F4A_7C15 }

    mutating func uniform() -> Double {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        z ^= z >> 31
        return (Double(z >> 11) + 0.5) / Double(1 << 53)
    }

    mutating func normal() -> Double {
        let u = uniform(), w = uniform()
        return (-2 * Foundation.log(u)).squareRoot() * Foundation.cos(2 * .pi * w)
    }

    mutating func tensor(_ shape: [Int], scale: Double = 1) -> F64Tensor {
        F64Tensor(shape: shape, data: (0..<shape.reduce(1, *)).map { _ in normal() * scale })
    }

    /// fp32 values (weights come from a `WeightSource` as Float).
    mutating func floats(_ count: Int, scale: Double = 1) -> [Float] {
        (0..<count).map { _ in Float(normal() * scale) }
    }
}

/// Runs `op` alone on `args` (fed as `input` nodes named in0, in1, ... with fixed shapes,
/// f32 unless `dtypes` says otherwise); returns its results.
func runOp(_ op: Op, _ args: [F64Tensor], dtypes: [DType]? = nil) throws -> [F64Tensor] {
    var b = GraphBuilder(name: "one_op")
    let values = args.enumerated().map { i, t in b.input("in\(i)", dtypes?[i] ?? .f32, t.shape.map { .fixed($0) }) }
    let results = try b.addMulti(op, values)
    for (i, r) in results.enumerated() { b.output("out\(i)", r) }
    let interp = try ReferenceInterpreter(graph: b.graph, weights: DictionaryWeights([:]))
    let feed = Dictionary(uniqueKeysWithValues: args.enumerated().map { ("in\($0)", $1) })
    let out = try interp.run(inputs: feed)
    return results.indices.map { out["out\($0)"]! }
}

func assertClose(_ actual: F64Tensor?, _ expected: F64Tensor?, tol: Double = 1e-12, _ what: String = "",
                 file: StaticString = #filePath, line: UInt = #line) {
    guard let actual, let expected else {
        XCTFail("\(what): missing tensor", file: file, line: line)
        return
    }
    XCTAssertEqual(actual.shape, expected.shape, "\(what): shape", file: file, line: line)
    guard actual.data.count == expected.data.count else {
        XCTFail("\(what): \(actual.data.count) values vs \(expected.data.count)", file: file, line: line)
        return
    }
    var worst = 0.0, at = 0
    for i in actual.data.indices {
        let a = actual.data[i], e = expected.data[i]
        if a == e { continue }   // also equal infinities
        let d = abs(a - e)
        if d.isNaN || d > worst { worst = d.isNaN ? .infinity : d; at = i }
    }
    XCTAssert(worst <= tol, "\(what): max |diff| \(worst) at \(at) (\(actual.data[at]) vs \(expected.data[at])) > \(tol)",
              file: file, line: line)
}

func assertClose(_ actual: F64Tensor?, shape: [Int], _ data: [Double], tol: Double = 1e-12, _ what: String = "",
                 file: StaticString = #filePath, line: UInt = #line) {
    assertClose(actual, F64Tensor(shape: shape, data: data), tol: tol, what, file: file, line: line)
}

/// Asserts `body` throws an error whose text contains every needle.
func assertThrows(_ needles: [String], file: StaticString = #filePath, line: UInt = #line, _ body: () throws -> Void) {
    do {
        try body()
        XCTFail("expected an error containing \(needles)", file: file, line: line)
    } catch {
        for n in needles {
            XCTAssertTrue("\(error)".contains(n), "'\(error)' should contain '\(n)'", file: file, line: line)
        }
    }
}
