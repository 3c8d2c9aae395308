import AttuneKernels
import AttunePasses
@testable import AttuneRuntime
import XCTest

/// Compiled fixture models with the KV cache stored as bf16 or int8 (`--kv`): logits within
/// the stated bound of the f32 cache's (Docs/NUMERICS.md, "KV cache formats"), greedy ids
/// equal to the goldens wherever the f32 run's top-2 margin exceeds twice that bound, and
/// kernels or features that cannot read the format refused at compile or fork time.
final class KVCacheFormatModelTests: XCTestCase {
    /// Max |logit - logit_f32| allowed, as a fraction of the f32 run's largest |logit| at that
    /// step: measured worst over the fixtures 0.0114 (bf16) and 0.0302 (int8), bounds ~1.7x that.
    static let relativeBound: [KVFormat: Float] = [.bf16: 0.02, .int8: 0.05]

    func compile(_ model: LoadedModel, _ format: KVFormat, kernel: String = "flash") throws -> CompiledModel {
        // Chunks of 8: later chunks of a prompt attend the rows earlier chunks stored.
        var options = CompileOptions(kernels: KernelOverrides(global: KernelChoice(kernel: kernel)), maxChunk: 8, maxContext: 64)
        options.kvFormat = format
        return try CompiledModel(artifacts: try ModelCompiler.compile(model, options, toolchain: try Toolchain.detect()))
    }

    func testLogitsWithinBoundAndGreedyIdsOnTheFixtures() throws {
        for name in GoldenModel.names {
            let fixture = try GoldenModel(name)
            let model = try ModelSource.load(fixture.folder.path)
            let reference = try compile(model, .f32)
            for (format, kernel) in [(KVFormat.bf16, "flash"), (.int8, "flash"), (.int8, "unified_max")] {
                let session = try compile(model, format, kernel: kernel)
                for (i, seq) in fixture.golden.sequences.enumerated() {
                    reference.reset()
                    session.reset()
                    var want = try reference.prefill(seq.input_ids.map(Int32.init))
                    var got = try session.prefill(seq.input_ids.map(Int32.init))
                    var greedyChecked = 0, worst: Float = 0
                    // Teacher-forced on the golden ids, so every step compares the same positions.
                    for (step, id) in seq.greedy_new_ids.enumerated() {
                        let w = Array(want.suffix(session.vocab)), g = Array(got.suffix(session.vocab))
                        let scale = w.map(abs).max()!
                        let bound = Self.relativeBound[format]! * scale
                        let err = zip(w, g).map { abs($0 - $1) }.max()!
                        XCTAssertLessThanOrEqual(err, bound, "\(name) seq \(i) step \(step) \(format.rawValue) \(kernel)")
                        worst = max(worst, err / scale)
                        let sorted = w.sorted(by: >)
                        if sorted[0] - sorted[1] > 2 * bound {
                            XCTAssertEqual(g.indices.max { g[$0] < g[$1] }!, id, "\(name) seq \(i) step \(step) \(format.rawValue) greedy")
                            greedyChecked += 1
                        }
                        want = try reference.decodeStep(Int32(id))
                        got = try session.decodeStep(Int32(id))
                    }
                    print("kv-format \(name) seq \(i) \(format.rawValue) \(kernel): max error \(worst) of max |logit|, greedy steps checked \(greedyChecked)/\(seq.greedy_new_ids.count)")
                }
            }
        }
    }

    func testKernelsAndFeaturesThatCannotReadTheFormatAreRefused() throws {
        let fixture = try GoldenModel("llama")
        let model = try ModelSource.load(fixture.folder.path)
        // (hybrid keeps its hot tier in the format: HybridModelTests.)
        for (kernel, words) in [("sparge", "reads K/V as f32 only")] {
            var options = CompileOptions(kernels: KernelOverrides(global: KernelChoice(kernel: kernel)), maxChunk: 8, maxContext: 64)
            options.kvFormat = .bf16
            XCTAssertThrowsError(try ModelCompiler.emit(model, options)) { XCTAssertTrue("\($0)".contains(words), "\(kernel): \($0)") }
        }
        let session = try compile(model, .int8)
        _ = try session.prefill([1, 2, 3])
        XCTAssertThrowsError(try session.fork(2)) { XCTAssertTrue("\($0)".contains("--kv f32"), "\($0)") }
    }

    /// kascade (anchor and reuse layers) reads the int8 cache: within int8's bound of its f32 run.
    func testKascadeReadsAnInt8Cache() throws {
        let fixture = try GoldenModel("llama")
        let model = try ModelSource.load(fixture.folder.path)
        let prompt = fixture.golden.sequences[0].input_ids.map(Int32.init)
        let want = try compile(model, .f32, kernel: "kascade").prefill(prompt)
        let got = try compile(model, .int8, kernel: "kascade").prefill(prompt)
        let scale = want.map(abs).max()!
        XCTAssertLessThanOrEqual(zip(want, got).map { abs($0 - $1) }.max()!, Self.relativeBound[.int8]! * scale)
    }

    /// Memory planning counts the stored bytes: bf16 half of f32, int8 a quarter plus one
    /// fp32 scale per position and kv head.
    func testContextPlanCountsTheStoredBytes() throws {
        let model = try ModelSource.load(try GoldenModel("llama").folder.path)
        var sizes: [KVFormat: Int] = [:]
        for format in KVFormat.allCases {
            var options = CompileOptions()
            options.kvFormat = format
            let plan = try ModelCompiler.contextPlan(model, options, availableBytes: 64 << 20)
            XCTAssertEqual(plan.options.kvFormat, format)
            sizes[format] = plan.options.maxContext
        }
        XCTAssertGreaterThanOrEqual(sizes[.bf16]!, sizes[.f32]!)
        XCTAssertGreaterThanOrEqual(sizes[.int8]!, sizes[.bf16]!)
        let graph = model.graph
        let f32 = ModelCompiler.kvBytesPerPosition(graph, .f32)
        XCTAssertEqual(ModelCompiler.kvBytesPerPosition(graph, .bf16) * 2, f32)
        XCTAssertGreaterThan(ModelCompiler.kvBytesPerPosition(graph, .int8), f32 / 4)
        XCTAssertLessThan(ModelCompiler.kvBytesPerPosition(graph, .int8), f32 / 2)
    }

    /// Weights larger than the available memory are said before anything is mapped (they
    /// still run, paged from disk, as llama.cpp's mmap does); ample memory says nothing.
    func testWeightsBeyondAvailableMemoryAreSaid() throws {
        let model = try ModelSource.load(try GoldenModel("llama").folder.path)
        let tight = try ModelCompiler.contextPlan(model, CompileOptions(), availableBytes: 1 << 16)
        XCTAssertTrue(tight.notes.contains { $0.hasPrefix("the weights take up to ") && $0.hasSuffix("expect pages to be read from disk on every token") },
                      "\(tight.notes)")
        let ample = try ModelCompiler.contextPlan(model, CompileOptions(), availableBytes: 8 << 30)
        XCTAssertFalse(ample.notes.contains { $0.hasPrefix("the weights take") })
    }
}
