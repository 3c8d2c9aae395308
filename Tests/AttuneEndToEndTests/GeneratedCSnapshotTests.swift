import AttuneCodegen
import AttuneIR
import AttuneKernels
import AttunePasses
import AttuneRuntime
import XCTest

/// The generated C of the fixture models is committed; any change to it fails here until
/// it is re-recorded on purpose with `ATTUNE_RECORD_SNAPSHOTS=1 swift test --filter GeneratedCSnapshotTests`,
/// so a refactor provably changes no output (and a deliberate change shows in review).
/// The cases cover every fixture with the kernels the rules bind, every kernel family a
/// model can bind (prefix_shared is in every model that can fork), the KV-cache formats
/// and the matmul weight formats.
final class GeneratedCSnapshotTests: XCTestCase {
    static let snapshots = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Snapshots")

    /// A snapshot: `stem`.c and .attn (and .h for the fixture's own case) from `fixture`.
    struct Case {
        var stem: String
        var fixture: String
        var options: CompileOptions
    }

    static func options(kernel: String? = nil, kv: KVFormat = .f32, weights: WeightPolicy = .auto) throws -> CompileOptions {
        var o = CompileOptions(kernels: KernelOverrides(global: try kernel.map { try KernelChoice(parsing: $0) }), maxChunk: 32, maxContext: 256)
        o.kvFormat = kv
        o.weights = weights
        return o
    }

    static func cases() throws -> [Case] {
        let fixtures = try FileManager.default.contentsOfDirectory(atPath: GoldenModel.root.path)
            .filter { FileManager.default.fileExists(atPath: GoldenModel.root.appendingPathComponent("\($0)/config.json").path) }
            .sorted()
        var cases = try fixtures.map { Case(stem: $0, fixture: $0, options: try options()) }
        for kernel in ["unified_max", "sparge", "kascade", "hybrid"] {
            cases.append(Case(stem: "llama-\(kernel)", fixture: "llama", options: try options(kernel: kernel)))
        }
        cases.append(Case(stem: "llama-kv-bf16", fixture: "llama", options: try options(kv: .bf16)))
        cases.append(Case(stem: "llama-kv-int8", fixture: "llama", options: try options(kv: .int8)))
        cases.append(Case(stem: "llama-weights-bf16", fixture: "llama", options: try options(weights: .bf16)))
        cases.append(Case(stem: "llama-weights-int8", fixture: "llama", options: try options(weights: .quantized(QuantizedLayout(bits: 8)))))
        return cases
    }

    func testGeneratedCMatchesSnapshot() throws {
        let cases = try Self.cases()
        XCTAssertGreaterThan(cases.count, 15, "the fixtures folder was not found")
        for c in cases {
            let model = try ModelSource.load(GoldenModel.root.appendingPathComponent(c.fixture).path)
            let (report, module) = try ModelCompiler.emit(model, c.options)
            let (_, again) = try ModelCompiler.emit(model, c.options)
            XCTAssertEqual(module.source, again.source, "\(c.stem): emission is not deterministic")
            var files = [("\(c.stem).c", module.source), ("\(c.stem).attn", TextFormat.print(report.output))]
            if c.stem == c.fixture { files.append(("\(c.stem).h", module.header)) }
            for (file, text) in files { try check(file, text) }
        }
    }

    func check(_ file: String, _ text: String) throws {
        let url = Self.snapshots.appendingPathComponent(file)
        if ProcessInfo.processInfo.environment["ATTUNE_RECORD_SNAPSHOTS"] == "1" {
            try text.write(to: url, atomically: true, encoding: .utf8)
            return
        }
        guard let recorded = try? String(contentsOf: url, encoding: .utf8) else {
            XCTFail("no snapshot \(url.path); record it with ATTUNE_RECORD_SNAPSHOTS=1")
            return
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
