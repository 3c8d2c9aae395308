import AttuneIR
import AttuneRuntime
import XCTest

/// The whole compiler — import, passes, C, cc, dlopen — against transformers' fp32
/// logits and greedy generations on the fixture models (`GoldenModel.names`).
final class CompiledVsTransformersTests: XCTestCase {
    func testLogitsAndGreedyGenerationMatchTransformers() throws {
        let toolchain = try Toolchain.detect()
        for name in GoldenModel.names {
            let fixture = try GoldenModel(name)
            let model = try ModelSource.load(fixture.folder.path)
            // A chunk of 6 makes the 16-token prompt run as three forward passes.
            let artifacts = try ModelCompiler.compile(model, CompileOptions(maxChunk: 6, maxContext: 64), toolchain: toolchain)
            let g = artifacts.report.output
            XCTAssertFalse(g.nodes.contains { if case .softmax = $0.op { return true } else { return false } }, "\(name): attention not fused")
            let session = try CompiledModel(artifacts: artifacts)
            for (i, seq) in fixture.golden.sequences.enumerated() {
                session.reset()
                let logits = try session.prefill(seq.input_ids.map(Int32.init))
                let want = try fixture.logits(seq.logits)
                XCTAssertEqual(logits.count, want.count)
                let err = zip(logits, want.data).map { abs($0 - $1) }.max() ?? .infinity
                XCTAssertLessThanOrEqual(err, 1e-4, "\(name) seq \(i) logits")
                var last = Array(logits.suffix(session.vocab))
                var generated: [Int] = []
                for _ in seq.greedy_new_ids {
                    let next = last.indices.max { last[$0] < last[$1] }!
                    generated.append(next)
                    last = try session.decodeStep(Int32(next))
                }
                XCTAssertEqual(generated, seq.greedy_new_ids, "\(name) seq \(i) greedy")
            }
        }
    }

    /// `--emit c`: the standalone folder builds with make and its driver prints the same logits.
    func testStandaloneFolderBuildsAndRunsWithoutSwift() throws {
        let fixture = try GoldenModel("llama")
        let model = try ModelSource.load(fixture.folder.path)
        let toolchain = try Toolchain.detect()
        let (_, module) = try ModelCompiler.emit(model, CompileOptions(maxChunk: 16, maxContext: 64))
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("attune-emit-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: dir) }
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        try StandaloneFolder.write(module, to: dir, toolchain: toolchain)
        try shell("cd '\(dir.path)' && make -s CC=cc")
        let seq = fixture.golden.sequences[1]
        let out = try shell("cd '\(dir.path)' && ATTUNE_NEW_TOKENS=8 ./run \(seq.input_ids.map(String.init).joined(separator: " ")) 2>gen.txt && cat gen.txt >&2")
        let rows = out.split(separator: "\n").map { $0.split(separator: " ").compactMap { Float($0) } }
        let want = try fixture.logits(seq.logits)
        XCTAssertEqual(rows.count, seq.input_ids.count)
        let err = zip(rows.flatMap { $0 }, want.data).map { abs($0 - $1) }.max() ?? .infinity
        XCTAssertLessThanOrEqual(err, 1e-4)
        let generated = try String(contentsOf: dir.appendingPathComponent("gen.txt"), encoding: .utf8)
        XCTAssertEqual(generated.trimmingCharacters(in: .whitespacesAndNewlines),
                       "generated: " + seq.greedy_new_ids.map(String.init).joined(separator: " "))
    }

    @discardableResult
    func shell(_ command: String) throws -> String { try Toolchain.run(["sh", "-c", command]) }
}
