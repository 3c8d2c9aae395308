import AttuneIR
import AttuneKernels
import AttunePasses
import AttuneRuntime
@testable import AttuneTune
import Foundation
import XCTest

/// The tuner: numerics before timing, warm databases, grown spaces, the noise rule; and
/// the pass that gives compiled models the tuned parameters.
final class TunerTests: XCTestCase {
    var dbPath: String!

    override func setUpWithError() throws {
        dbPath = FileManager.default.temporaryDirectory.appendingPathComponent("attune-tuner-\(UUID().uuidString).sqlite").path
    }

    override func tearDownWithError() throws {
        for suffix in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: dbPath + suffix) }
    }

    func fastSettings() -> Tuner.Settings {
        var s = Tuner.Settings()
        s.minSeconds = 0.01
        s.pairs = 3
        return s
    }

    func testWarmDatabaseMeasuresNothingAndAGrownSpaceOnlyTheNewPoints() throws {
        let db = try TuningDatabase(path: dbPath)
        let p = AttentionProblem(qHeads: 4, kvHeads: 2, qLen: 64, kvLen: 64, qkDim: 32, causal: true)
        let tuner = Tuner(kernel: FlashKernel(), problem: p, settings: fastSettings())
        let space = try tuner.space(overrides: ["block_q": [32, 64], "block_kv": [64], "kv_splits": [0], "gemm": [1]])
        XCTAssertEqual(space.count, 3, "defaults + 2 points")
        let first = try tuner.tune(space: space, database: db)
        XCTAssertGreaterThanOrEqual(first.measured, 3)
        XCTAssertEqual(try db.measurements(for: first.record.key).count, 3)
        let warm = try tuner.tune(space: space, database: db)
        XCTAssertEqual(warm.measured, 0, "a warm database triggers no measurement")
        XCTAssertEqual(warm.record, first.record)
        let grown = try tuner.space(overrides: ["block_q": [32, 64, 96], "block_kv": [64], "kv_splits": [0], "gemm": [1]])
        let again = try tuner.tune(space: grown, database: db)
        // One new point timed, then the top three re-timed.
        XCTAssertEqual(again.measured, 1 + 3)
        XCTAssertEqual(try db.measurements(for: again.record.key).count, 4)
        // Recorded as better only beyond the noise.
        let r = again.record
        XCTAssertEqual(r.better, !r.parameters.isEmpty)
        if r.better { XCTAssertGreaterThan(r.defaultMs / r.medianMs - 1, r.noise) }
    }

    func testWrongConfigurationsAreNeverTimedOrStored() throws {
        let db = try TuningDatabase(path: dbPath)
        // kascade at 5 % of the keys errs far beyond a 1e-4 budget on random inputs;
        // with every key kept it is exact.
        let p = AttentionProblem(qHeads: 4, kvHeads: 2, qLen: 1, kvLen: 4000, qkDim: 64, causal: true)
        var settings = fastSettings()
        settings.errorBudget = 1e-4
        let tuner = Tuner(kernel: KascadeKernel(), problem: p, settings: settings)
        let space: [KernelParameters] = [[:], ["fraction": 1], ["fraction": 0.05, "min_k": 16]]
        let outcome = try tuner.tune(space: space, database: db)
        XCTAssertEqual(outcome.record.parameters, ["fraction": 1], "the defaults fail: the passing point is the baseline and the record")
        XCTAssertEqual(Set(outcome.rejected.map { TuningDatabase.encode($0.0) }), ["", "fraction=0.05,min_k=16"])
        let key = try TuningKey.current(kernel: KascadeKernel(), problem: p, threads: Tuner.defaultThreads)
        let stored = try db.measurements(for: key).map(\.parameters)
        XCTAssertEqual(stored, [["fraction": 1]], "only the exact configuration was timed and stored")
        XCTAssertThrowsError(try tuner.tune(space: [[:], ["fraction": 0.05, "min_k": 16]], database: try TuningDatabase(path: dbPath + "2"))) {
            XCTAssertTrue("\($0)".contains("no candidate of 'kascade' passes the numerics check"), "\($0)")
        }
    }

    func testSpacesAreCheckedAndBounded() throws {
        let tuner = Tuner(kernel: FlashKernel(), problem: AttentionProblem(qHeads: 2, qLen: 8, kvLen: 8, qkDim: 16))
        XCTAssertThrowsError(try tuner.space(overrides: ["nope": [1]])) { XCTAssertTrue("\($0)".contains("no parameter 'nope'"), "\($0)") }
        // Too large a space is sampled (fixed seed: the same points every time), defaults first.
        var small = tuner
        small.settings.maxCandidates = 10
        let sample = try small.space()
        XCTAssertEqual(sample.count, 11, "10 sampled points + the defaults")
        XCTAssertEqual(sample.first, [:])
        XCTAssertEqual(try small.space(), sample)
        XCTAssertGreaterThan(try tuner.space().count, 11)
        small.settings.maxCandidates = 0
        XCTAssertThrowsError(try small.space()) { XCTAssertTrue("\($0)".contains("--max-candidates must be >= 1"), "\($0)") }
        // Switches (declared by the kernel, `isSwitch`) are never part of a space, in any kernel;
        // hybrid's and kascade's have candidates, so a tuner reading only candidates would vary them.
        let problem = AttentionProblem(qHeads: 2, qLen: 1, kvLen: 8, qkDim: 16, causal: true)
        for kernel in KernelRegistry.all {
            let switches = Set(kernel.parameters.filter(\.isSwitch).map(\.name))
            XCTAssertTrue(switches.contains("threads"), kernel.name)
            let space = try Tuner(kernel: kernel, problem: problem).space()
            XCTAssertTrue(space.allSatisfy { Set($0.keys).isDisjoint(with: switches) }, "\(kernel.name): \(space)")
        }
        XCTAssertEqual(Set(HybridKernel().parameters.filter(\.isSwitch).map(\.name)), ["threads", "cold_file", "release_written", "reuse"])
        XCTAssertEqual(Set(KascadeKernel().parameters.filter(\.isSwitch).map(\.name)), ["threads", "role", "anchor", "keep"])
        // A switch given one value is fixed on every point (the defaults included); two values are refused.
        let kascade = Tuner(kernel: KascadeKernel(), problem: problem)
        XCTAssertTrue(try kascade.space(overrides: ["role": [1]]).allSatisfy { $0["role"] == 1 })
        XCTAssertThrowsError(try kascade.space(overrides: ["role": [0, 1]])) { XCTAssertTrue("\($0)".contains("is a switch, not a knob"), "\($0)") }
    }

    struct FixedSource: TunedKernelSource {
        func tuned(kernel: String, problem: AttentionProblem) -> (parameters: KernelParameters, reason: String)? {
            kernel == "flash" && problem.qLen == 16 && problem.kvLen == 64 ? (["block_kv": 64], "tuned: record X") : nil
        }
    }

    func testCompilationTakesTunedParametersOnlyForRuleChoices() throws {
        let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("Fixtures/models/llama")
        let model = try ModelSource.load(fixtures.path)
        var options = CompileOptions(maxChunk: 16, maxContext: 64)
        options.tuning = FixedSource()
        let bindings = { (g: Graph) in g.nodes.compactMap { if case .attention(let a) = $0.op { a.binding } else { nil } } }
        let tuned = bindings(try ModelCompiler.lower(model, options).output)
        XCTAssertEqual(tuned.map(\.parameters), [["block_kv": 64], ["block_kv": 64]])
        XCTAssertEqual(tuned.map(\.reason), ["tuned: record X", "tuned: record X"])
        options.kernels = KernelOverrides(global: try KernelChoice(parsing: "flash:block_q=32"))
        XCTAssertEqual(bindings(try ModelCompiler.lower(model, options).output).map(\.parameters), [["block_q": 32], ["block_q": 32]],
                       "a user's choice is never replaced")
    }

    func testRecordsOfAnotherMachineMiss() throws {
        let db = try TuningDatabase(path: dbPath)
        let source = try DatabaseTuning(db)
        let p = AttentionProblem(qHeads: 4, kvHeads: 2, qLen: 16, kvLen: 64, qkDim: 16, causal: true)
        var key = try TuningKey.current(kernel: FlashKernel(), problem: p, threads: Tuner.defaultThreads)
        key.cpu = "some other CPU"
        try db.save(TuningRecord(key: key, parameters: ["block_q": 32], medianMs: 1, defaultMs: 2, noise: 0.01, better: true,
                                 candidates: 2, error: 0, created: "x"))
        XCTAssertNil(source.tuned(kernel: "flash", problem: p))
        key.cpu = CPUFeatures.signature
        try db.save(TuningRecord(key: key, parameters: ["block_q": 32], medianMs: 1, defaultMs: 2, noise: 0.01, better: true,
                                 candidates: 2, error: 0, created: "x"))
        XCTAssertEqual(source.tuned(kernel: "flash", problem: p)?.parameters, ["block_q": 32])
    }
}
