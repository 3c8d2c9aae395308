import AttuneIR
import AttuneRuntime
import XCTest

/// The generated C of a fixture model is committed; any change to it fails here until it
/// is re-recorded on purpose with `ATTUNE_RECORD_SNAPSHOTS=1 swift test --filter GeneratedCSnapshotTests`,
/// so a refactor provably changes no output (and a deliberate change shows in review).
final class GeneratedCSnapshotTests: XCTestCase {
    static let snapshots = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Snapshots")

    func testGeneratedCMatchesSnapshot() throws {
        for name in ["llama", "qwen2"] {
            let model = try ModelSource.load(GoldenModel.root.appendingPathComponent(name).path)
            let (report, module) = try ModelCompiler.emit(model, CompileOptions(maxChunk: 32, maxContext: 256))
            let (_, again) = try ModelCompiler.emit(model, CompileOptions(maxChunk: 32, maxContext: 256))
            XCTAssertEqual(module.source, again.source, "\(name): emission is not deterministic")
            let files = [("\(name).c", module.source), ("\(name).h", module.header), ("\(name).attn", TextFormat.print(report.output))]
            for (file, text) in files {
                let url = Self.snapshots.appendingPathComponent(file)
                if ProcessInfo.processInfo.environment["ATTUNE_RECORD_SNAPSHOTS"] == "1" {
                    try text.write(to: url, atomically: true, encoding: .utf8)
                    continue
                }
                guard let recorded = try? String(contentsOf: url, encoding: .utf8) else {
                    XCTFail("no snapshot \(url.path); record it with ATTUNE_RECORD_SNAPSHOTS=1")
                    continue
                }
                if recorded != text {
                    let a = recorded.split(separator: "\n", omittingEmptySubsequences: false)
                    let b = text.split(separator: "\n", omittingEmptySubsequences: false)
                    let first = zip(a, b).enumerated().first { $0.element.0 != $0.element.1 }?.offset ?? min(a.count, b.count)
                    XCTFail("""
                    \(file) differs from its snapshot at line \(first + 1):
                      recorded: \(first < a.count ? String(a[first]) : "<end>")
                      now:      \(first < b.count ? String(b[first]) : "<end>")
                    Re-record on purpose with ATTUNE_RECORD_SNAPSHOTS=1 swift test --filter GeneratedCSnapshotTests
                    """)
                }
            }
        }
    }
}
