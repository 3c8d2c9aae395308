import XCTest
import Foundation
import AttuneIR
@testable import AttunePasses

final class SmokeTests: XCTestCase {
    func testSmoke() throws {
        for c in [try TinyConfigs.llamaGQA(), try TinyConfigs.qwen2Biases(), try TinyConfigs.mistralWindow(), try TinyConfigs.llamaSigmoid()] {
            let g = try decoder(c)
            let report = try Pipeline.standard().run(g)
            print(report.summary)
            print(opCounts(report.output).sorted { $0.key < $1.key })
            print(report.unfused)
            let d = try maxLogitDifference(g, report.output, weights: randomWeights(for: g), prompt: [1, 5, 9, 3, 7, 2, 11], decode: [4, 8])
            print("maxdiff", d)
        }
        let report = try Pipeline.standard().run(try decoder(try TinyConfigs.llamaGQA()))
        print(TextFormat.print(report.output))
    }
}
