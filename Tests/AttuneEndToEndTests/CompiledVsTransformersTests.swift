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
            try fixture.assertCompiledMatchesGoldens(session)
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

    /// The standalone driver refuses what is not a token id (it once read "abc" as 0 and let
    /// 99999999999 wrap) and a model named like a driver file cannot lose its C.
    func testStandaloneDriverRefusesBadArgumentsAndNamesCannotCollide() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("attune-emit-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: dir) }
        let folder = dir.appendingPathComponent("main")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        try FileManager.default.copyItem(at: try GoldenModel("llama").folder, to: folder)
        let model = try ModelSource.load(folder.path)
        XCTAssertEqual(model.name, "main")
        let (_, module) = try ModelCompiler.emit(model, CompileOptions(maxChunk: 16, maxContext: 64))
        let out = dir.appendingPathComponent("out")
        try FileManager.default.createDirectory(at: out, withIntermediateDirectories: true)
        try StandaloneFolder.write(module, to: out, toolchain: try Toolchain.detect())
        XCTAssertEqual(try String(contentsOf: out.appendingPathComponent("main.c"), encoding: .utf8), module.source)
        try shell("cd '\(out.path)' && make -s CC=cc")
        for bad in ["abc", "99999999999", "-1", "12x", "128"] {
            XCTAssertThrowsError(try shell("cd '\(out.path)' && ./run 1 \(bad)"), bad) { error in
                XCTAssertTrue("\(error)".contains("'\(bad)' (argument 2) is not a token id in [0, 128)"), "\(error)")
                XCTAssertTrue("\(error)".contains("exit 2"), "\(error)")
            }
        }
        XCTAssertThrowsError(try shell("cd '\(out.path)' && ATTUNE_NEW_TOKENS=x ./run 1")) { error in
            XCTAssertTrue("\(error)".contains("ATTUNE_NEW_TOKENS='x' is not a count"), "\(error)")
        }
    }

    @discardableResult
    func shell(_ command: String) throws -> String { try Toolchain.run(["sh", "-c", command]) }
}
