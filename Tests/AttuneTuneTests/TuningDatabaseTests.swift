import AttuneKernels
import AttuneRuntime
@testable import AttuneTune
import Foundation
import XCTest

/// The tuning database: keys, records, incremental measurements, sharing, concurrency,
/// corruption.
final class TuningDatabaseTests: XCTestCase {
    var dir: URL!

    override func setUpWithError() throws {
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("attune-tune-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: dir) }

    func path(_ name: String = "tuning.sqlite") -> String { dir.appendingPathComponent(name).path }

    func key(_ problem: String = "p", cpu: String = "cpu") -> TuningKey {
        TuningKey(kernel: "flash", kernelSourceHash: "h", problem: problem, cpu: cpu, compiler: "cc", flags: "-O3", threads: 2, schema: TuningKey.schemaVersion)
    }

    func record(_ k: TuningKey, _ params: KernelParameters = ["block_q": 32]) -> TuningRecord {
        TuningRecord(key: k, parameters: params, medianMs: 1, defaultMs: 1.5, noise: 0.02, better: true, candidates: 4, error: 1e-7, created: "now")
    }

    func testSignaturesBucketLengthsAndKeysCoverEveryField() {
        XCTAssertEqual(ProblemSignature.bucket(1), 1)
        XCTAssertEqual(ProblemSignature.bucket(500), 512)
        XCTAssertEqual(ProblemSignature.bucket(512), 512)
        XCTAssertEqual(ProblemSignature.bucket(513), 1024)
        let a = AttentionProblem(qHeads: 8, kvHeads: 2, qLen: 500, kvLen: 4000, qkDim: 128, causal: true)
        XCTAssertEqual(ProblemSignature.of(a), "b1 hq8 hkv2 d128 dv128 q512 kv4096 causal nowin")
        let base = key()
        var ids = Set([base.id])
        for change in [{ (k: inout TuningKey) in k.kernel = "x" }, { $0.kernelSourceHash = "x" }, { $0.problem = "x" }, { $0.cpu = "x" },
                       { $0.compiler = "x" }, { $0.flags = "x" }, { $0.threads = 3 }, { $0.schema = 99 }] {
            var k = base
            change(&k)
            ids.insert(k.id)
        }
        XCTAssertEqual(ids.count, 9, "every field changes the key")
    }

    func testRecordsMeasurementsAndSharingBetweenMachines() throws {
        let db = try TuningDatabase(path: path())
        let mine = key(), theirs = key(cpu: "another machine")
        try db.save(record(mine))
        XCTAssertEqual(try db.record(for: mine), record(mine))
        XCTAssertNil(try db.record(for: key("q")))
        try db.save(TuningMeasurement(parameters: ["block_q": 64], medianMs: 2, error: 0), for: mine)
        try db.save(TuningMeasurement(parameters: [:], medianMs: 3, error: 0), for: mine)
        XCTAssertEqual(try db.measurements(for: mine).map(\.medianMs).sorted(), [2, 3])

        // Export, then import into a database that has another machine's record: both kept.
        let other = try TuningDatabase(path: path("other.sqlite"))
        try other.save(record(theirs, ["block_kv": 128]))
        XCTAssertEqual(try other.importJSON(try db.exportJSON(), source: "x.json"), 1)
        XCTAssertEqual(try other.allRecords().count, 2)
        XCTAssertEqual(try other.record(for: mine)?.parameters, ["block_q": 32])
        XCTAssertEqual(try other.record(for: theirs)?.parameters, ["block_kv": 128])
        XCTAssertThrowsError(try other.importJSON(Data("{}".utf8), source: "bad.json")) { XCTAssertTrue("\($0)".contains("bad.json"), "\($0)") }
    }

    /// A database on a read-only file system (shared, or a packaged one) is read; only
    /// saving fails, naming the file. Every compile once failed on it. Needs a read-only
    /// bind mount (root, as on CI); skipped where mounting is not allowed.
    func testReadOnlyDatabaseIsReadAndOnlyWritesFail() throws {
        let source = dir.appendingPathComponent("src"), mount = dir.appendingPathComponent("ro")
        try FileManager.default.createDirectory(at: source, withIntermediateDirectories: true)
        try FileManager.default.createDirectory(at: mount, withIntermediateDirectories: true)
        do {
            let db = try TuningDatabase(path: source.appendingPathComponent("tuning.sqlite").path)
            try db.save(record(key()))
        }
        guard (try? Toolchain.run(["mount", "--bind", source.path, mount.path])) != nil else {
            throw XCTSkip("cannot bind-mount here (needs root)")
        }
        defer { _ = try? Toolchain.run(["umount", mount.path]) }
        try Toolchain.run(["mount", "-o", "remount,bind,ro", mount.path])
        let ro = mount.appendingPathComponent("tuning.sqlite").path
        let db = try TuningDatabase(path: ro)
        XCTAssertTrue(db.isReadOnly)
        XCTAssertEqual(try db.record(for: key()), record(key()))
        XCTAssertThrowsError(try db.save(record(key("q")))) { error in
            XCTAssertEqual("\(error)", "\(ro) is read-only: records can be read but not saved; pass a writable --db")
        }
        XCTAssertFalse(try TuningDatabase(path: source.appendingPathComponent("tuning.sqlite").path).isReadOnly)
    }

    /// The rule for two tuners of one problem class: a record saved by another tuner after
    /// this one started is replaced only by a faster one; an older record is replaced (a
    /// re-tune).
    func testARecordSavedMeanwhileIsReplacedOnlyByAFasterOne() throws {
        let db = try TuningDatabase(path: path())
        let stamp = ISO8601DateFormatter()
        let started = Date()
        func timed(_ ms: Double, at: Date, _ params: KernelParameters) -> TuningRecord {
            var r = record(key(), params)
            r.medianMs = ms
            r.created = stamp.string(from: at)
            return r
        }
        let other = timed(1.0, at: started.addingTimeInterval(2), ["block_q": 64])
        try db.save(other)
        let slower = timed(2.0, at: started.addingTimeInterval(3), ["block_q": 32])
        XCTAssertEqual(try db.save(slower, tunedSince: started), other)
        XCTAssertEqual(try db.record(for: key()), other)
        let faster = timed(0.5, at: started.addingTimeInterval(3), ["block_q": 16])
        XCTAssertEqual(try db.save(faster, tunedSince: started), faster)
        XCTAssertEqual(try db.record(for: key()), faster)
        // A re-tune started later replaces even a faster record from before it started.
        let retune = timed(0.9, at: started.addingTimeInterval(60), ["block_q": 128])
        XCTAssertEqual(try db.save(retune, tunedSince: started.addingTimeInterval(30)), retune)
        XCTAssertEqual(try db.record(for: key()), retune)
    }

    /// Errors from the writer threads.
    final class Failures: @unchecked Sendable {
        private let lock = NSLock()
        private var items: [String] = []
        func add(_ e: Error) { lock.withLock { items.append("\(e)") } }
        var all: [String] { lock.withLock { items } }
    }

    func testConcurrentWritersLoseNothing() throws {
        let file = path()   // both writers create and open it at the same moment
        let records = (0..<2).map { w in (0..<50).map { record(key("w\(w)-\($0)")) } }
        let failures = Failures()
        let group = DispatchGroup()
        for batch in records {
            group.enter()
            Thread {
                defer { group.leave() }
                do {
                    let db = try TuningDatabase(path: file)   // its own connection
                    for r in batch { try db.save(r) }
                } catch {
                    failures.add(error)
                }
            }.start()
        }
        group.wait()
        XCTAssertEqual(failures.all, [])
        XCTAssertEqual(try TuningDatabase(path: file).allRecords().count, 100)
    }

    func testCorruptAndTruncatedFilesAreReportedNotUsed() throws {
        try Data("this is not sqlite".utf8).write(to: URL(fileURLWithPath: path("garbage.sqlite")))
        XCTAssertThrowsError(try TuningDatabase(path: path("garbage.sqlite"))) { XCTAssertTrue("\($0)".contains("not a usable tuning database"), "\($0)") }
        do {   // closing the last connection checkpoints the WAL into the file
            let db = try TuningDatabase(path: path())
            for i in 0..<200 { try db.save(record(key("p\(i)"))) }
        }
        // The database file cut short.
        let bytes = try Data(contentsOf: URL(fileURLWithPath: path()))
        try bytes.prefix(bytes.count / 2).write(to: URL(fileURLWithPath: path("cut.sqlite")))
        XCTAssertThrowsError(try { let cut = try TuningDatabase(path: path("cut.sqlite")); _ = try cut.allRecords() }()) {
            XCTAssertTrue("\($0)".contains("cut.sqlite"), "\($0)")
        }
    }
}
