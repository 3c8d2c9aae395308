import AttuneKernels
import AttunePasses
import AttuneRuntime
import XCTest

/// Batched sequences over a shared prefix (`attune_model_fork`, Hydragen's decomposition
/// in compiled models): every sequence's logits equal running it alone.
final class BatchedSequencesTests: XCTestCase {
    static let prefix: [Int32] = (0..<20).map { Int32(($0 * 13 + 5) % 128) }
    static let suffixes: [[Int32]] = [[7, 8, 9], [100, 3, 55, 21, 90, 11, 4], [42], (0..<12).map { Int32($0 * 9 % 128) }]
    static let steps: [[Int32]] = [[1, 2, 3, 4], [50, 60, 70, 80], [9, 9, 9, 9]]

    func session(_ name: String, _ kernel: String = "flash", chunk: Int = 8) throws -> CompiledModel {
        let model = try ModelSource.load(try GoldenModel(name).folder.path)
        let options = CompileOptions(kernels: KernelOverrides(global: try KernelChoice(parsing: kernel)), maxChunk: chunk, maxContext: 64)
        let artifacts = try ModelCompiler.compile(model, options, toolchain: try Toolchain.detect())
        return try CompiledModel(artifacts: artifacts)
    }

    func maxError(_ a: [Float], _ b: [Float]) -> Float { zip(a, b).map { abs($0 - $1) }.max() ?? .infinity }

    /// Logits of every suffix token and every decode step, sequence by sequence.
    func alone(_ m: CompiledModel, prefix: [Int32]) throws -> [[Float]] {
        try Self.suffixes.indices.map { s in
            m.reset()
            _ = try m.prefill(prefix)
            var logits = try m.prefill(Self.suffixes[s])
            for step in Self.steps { logits += try m.decodeStep(step[s]) }
            return logits
        }
    }

    func batched(_ m: CompiledModel, prefix: [Int32]) throws -> [[Float]] {
        m.reset()
        _ = try m.prefill(prefix)
        try m.fork(Self.suffixes.count)
        XCTAssertEqual(m.sequences, Self.suffixes.count)
        var logits = try Self.suffixes.indices.map { try m.prefill(sequence: $0, Self.suffixes[$0]) }
        for step in Self.steps {
            for (s, row) in try m.decodeBatch(step).enumerated() { logits[s] += row }
        }
        return logits
    }

    func testBatchedSequencesEqualEachSequenceAlone() throws {
        for (name, kernel) in [("llama", "flash"), ("qwen2", "flash"), ("llama", "unified_max")] {
            let m = try session(name, kernel)
            for prefix in [Self.prefix, []] {
                let one = try alone(m, prefix: prefix), many = try batched(m, prefix: prefix)
                for s in one.indices {
                    XCTAssertEqual(one[s].count, many[s].count)
                    XCTAssertLessThanOrEqual(maxError(one[s], many[s]), 1e-4, "\(name) \(kernel) sequence \(s), prefix \(prefix.count)")
                }
            }
        }
    }

    func testMoreSequencesThanAChunkAndTheContextLimit() throws {
        let m = try session("llama", chunk: 4)
        _ = try m.prefill(Array(Self.prefix.prefix(10)))
        try m.fork(9)
        let rows = try m.decodeBatch((0..<9).map { Int32($0 * 11) })
        XCTAssertEqual(rows.count, 9)
        m.reset()
        _ = try m.prefill(Array(Self.prefix.prefix(10)))
        let reference = try m.decodeStep(77)
        m.reset()
        _ = try m.prefill(Array(Self.prefix.prefix(10)))
        try m.fork(9)
        let batch = try m.decodeBatch(Array(repeating: 77, count: 9))
        for row in batch { XCTAssertLessThanOrEqual(maxError(row, reference), 1e-4) }

        m.reset()
        _ = try m.prefill(Array(repeating: 1, count: 60))
        try m.fork(2)
        XCTAssertThrowsError(try m.prefill(sequence: 0, Array(repeating: 1, count: 5))) { XCTAssertTrue("\($0)".contains("context full"), "\($0)") }
    }

    func testMisuseAndUnsupportedModelsAreRefused() throws {
        let m = try session("llama")
        XCTAssertThrowsError(try m.prefill(sequence: 0, [1])) { XCTAssertTrue("\($0)".contains("needs a forked model"), "\($0)") }
        try m.fork(2)
        XCTAssertThrowsError(try m.fork(2)) { XCTAssertTrue("\($0)".contains("already forked"), "\($0)") }
        XCTAssertThrowsError(try m.prefill([1])) { XCTAssertTrue("\($0)".contains("forked into 2 sequences"), "\($0)") }
        XCTAssertThrowsError(try m.prefill(sequence: 2, [1])) { XCTAssertTrue("\($0)".contains("sequence 2 does not exist"), "\($0)") }
        XCTAssertThrowsError(try m.decodeBatch([1]))
        m.reset()
        XCTAssertEqual(m.sequences, 0)
        XCTAssertThrowsError(try m.fork(0))

        for (name, kernel, reason) in [("mistral", "flash", "sliding window"),
                                       ("llama", "hybrid:window=4,block=16", "hybrid store")] {
            let other = try session(name, kernel)
            XCTAssertThrowsError(try other.fork(2)) { XCTAssertTrue("\($0)".contains(reason), "\($0)") }
        }
    }
}
