import AttuneKernels
import AttunePasses
import AttuneRuntime
import XCTest

/// Every exact softmax kernel that compiled graphs can call gives the fixture models the
/// same logits as `flash` (within 1e-4), so kernels are interchangeable per node.
final class ExactKernelsModelTests: XCTestCase {
    func testEveryExactKernelMatchesFlashOnTheFixtures() throws {
        let kernels = KernelRegistry.all.filter { $0.isExact && $0.normalizer == .softmax && $0.cInvocation([:]) != nil }
        XCTAssertTrue(kernels.contains { $0.name == "flash" })
        let toolchain = try Toolchain.detect()
        for name in GoldenModel.names {
            let fixture = try GoldenModel(name)
            let model = try ModelSource.load(fixture.folder.path)
            let prompt = fixture.golden.sequences[0].input_ids.map(Int32.init)
            var reference: [Float]?
            for kernel in kernels {
                var options = CompileOptions(kernels: KernelOverrides(global: KernelChoice(kernel: kernel.name)), maxChunk: 8, maxContext: 64)
                // f32 matmuls: the bf16 GEMM path rounds activations to bf16, so the kernels'
                // 1e-6 differences could flip roundings and hide what this test compares.
                options.weights = .f32
                let artifacts = try ModelCompiler.compile(model, options, toolchain: toolchain)
                let session = try CompiledModel(artifacts: artifacts)
                var logits = try session.prefill(prompt)
                logits += try session.decodeStep(3)
                if let reference {
                    let err = zip(logits, reference).map { abs($0 - $1) }.max() ?? .infinity
                    XCTAssertLessThanOrEqual(err, 1e-4, "\(name) with \(kernel.name)")
                } else {
                    reference = logits
                }
            }
        }
    }

    /// Every kernel a compiled graph can bind, approximate ones included, links and runs
    /// (a module links only the kernel files it uses: a missing one fails at load).
    func testEveryBindableKernelLinksAndRuns() throws {
        let fixture = try GoldenModel("llama")
        let model = try ModelSource.load(fixture.folder.path)
        let bindable = KernelRegistry.all.filter { $0.normalizer == .softmax && ($0.cInvocation([:]) != nil || $0 is any KVStoreKernel) }
        XCTAssertEqual(Set(bindable.map(\.name)), ["flash", "unified_max", "hybrid", "sparge", "kascade"])
        for kernel in bindable {
            let options = CompileOptions(kernels: KernelOverrides(global: KernelChoice(kernel: kernel.name)), maxChunk: 8, maxContext: 64)
            let session = try CompiledModel(artifacts: try ModelCompiler.compile(model, options, toolchain: try Toolchain.detect()))
            let logits = try session.prefill(fixture.golden.sequences[0].input_ids.map(Int32.init))
            XCTAssertTrue(logits.allSatisfy(\.isFinite), kernel.name)
        }
    }

    func testPolicyFileBindsLayers() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("attune-policy-\(UUID().uuidString).json")
        defer { try? FileManager.default.removeItem(at: dir) }
        try #"{"default": "flash", "layers": {"1": "flash:kv_splits=2"}}"#.write(to: dir, atomically: true, encoding: .utf8)
        let overrides = try AttentionPolicy.load(dir.path)
        XCTAssertEqual(overrides.global?.kernel, "flash")
        XCTAssertEqual(overrides.byLayer[1]?.parameters["kv_splits"], 2)
        try #"{"layers": {"x": "flash"}}"#.write(to: dir, atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try AttentionPolicy.load(dir.path)) { XCTAssertTrue("\($0)".contains("layer 'x'"), "\($0)") }
        try #"{"default": "nope"}"#.write(to: dir, atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try AttentionPolicy.load(dir.path))
    }
}
