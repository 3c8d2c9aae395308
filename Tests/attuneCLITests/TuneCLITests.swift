import Foundation
import XCTest

/// `attune tune` as a user runs it: two tuners at once on one database, a warm rerun,
/// export and import, a corrupt file.
final class TuneCLITests: XCTestCase {
    func tune(_ db: String, qLen: String, extra: [String] = []) -> Process {
        let p = Process()
        p.executableURL = CLI.binary
        p.arguments = ["tune", "--kernel", "flash", "--heads", "4", "--kv-heads", "2", "--q-len", qLen, "--head-dim", "16", "--causal",
                       "--space", "block_q=32,64", "--space", "block_kv=64", "--space", "kv_splits=0", "--space", "gemm=1",
                       "--min-seconds", "0.02", "--db", db, "--json"] + extra
        p.standardOutput = Pipe()
        p.standardError = Pipe()
        return p
    }

    func testConcurrentTunersWarmRerunsAndSharing() throws {
        let dir = try CLI.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let db = dir.appendingPathComponent("tuning.sqlite").path
        // Two tuners on different problem classes, writing the same file at the same time.
        let a = tune(db, qLen: "64"), b = tune(db, qLen: "256")
        try a.run(); try b.run()
        a.waitUntilExit(); b.waitUntilExit()
        XCTAssertEqual(a.terminationStatus, 0)
        XCTAssertEqual(b.terminationStatus, 0)
        let export = dir.appendingPathComponent("records.json")
        XCTAssertEqual(try CLI.run(["tune", "--export", export.path, "--db", db]).status, 0)
        let records = try XCTUnwrap((try JSONSerialization.jsonObject(with: Data(contentsOf: export)) as? [String: Any])?["records"] as? [[String: Any]])
        XCTAssertEqual(records.count, 2, "neither tuner lost its record")

        // Warm: the same class (64 → q64) measures nothing.
        let warm = try CLI.run(["tune", "--kernel", "flash", "--heads", "4", "--kv-heads", "2", "--q-len", "60", "--head-dim", "16", "--causal",
                                "--space", "block_q=32,64", "--space", "block_kv=64", "--space", "kv_splits=0", "--space", "gemm=1", "--db", db, "--json"])
        XCTAssertEqual(warm.status, 0, warm.stderr)
        let json = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data((warm.stdout.split(separator: "\n").last.map(String.init) ?? "").utf8)) as? [String: Any])
        XCTAssertEqual(json["measured"] as? Int, 0)
        XCTAssertTrue(warm.stderr.contains("nothing measured"), warm.stderr)

        // Import into a fresh database.
        let copy = dir.appendingPathComponent("copy.sqlite").path
        let imported = try CLI.run(["tune", "--import", export.path, "--db", copy])
        XCTAssertTrue(imported.stdout.contains("imported   2 records"), imported.stdout)

        try Data("not a database at all".utf8).write(to: URL(fileURLWithPath: dir.appendingPathComponent("bad.sqlite").path))
        let bad = try CLI.run(["tune", "--kernel", "flash", "--db", dir.appendingPathComponent("bad.sqlite").path])
        XCTAssertNotEqual(bad.status, 0)
        XCTAssertTrue(bad.stderr.contains("not a usable tuning database"), bad.stderr)
        // compile reads it: inspect names the record.
        let llama = CompilerCLITests.fixtures.appendingPathComponent("llama").path
        let inspect = try CLI.run(["inspect", llama, "--kernels", "--tuning-db", db, "--max-chunk", "64", "--max-context", "64"])
        XCTAssertEqual(inspect.status, 0, inspect.stderr)
        XCTAssertTrue(inspect.stdout.contains("record "), inspect.stdout)
    }

    /// Two tuners of the same problem class at once: the faster record is kept, whichever
    /// finishes last (the last writer used to win silently).
    func testConcurrentTunersOfOneClassKeepTheFasterRecord() throws {
        let dir = try CLI.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let db = dir.appendingPathComponent("tuning.sqlite").path
        let runs = [tune(db, qLen: "128"), tune(db, qLen: "128")]
        for p in runs { try p.run() }
        var medians: [Double] = []
        for p in runs {
            let out = (p.standardOutput as! Pipe).fileHandleForReading.readDataToEndOfFile()
            p.waitUntilExit()
            XCTAssertEqual(p.terminationStatus, 0)
            let last = String(decoding: out, as: UTF8.self).split(separator: "\n").last.map(String.init) ?? ""
            let json = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(last.utf8)) as? [String: Any], last)
            medians.append(try XCTUnwrap(json["median_ms"] as? Double))
        }
        let export = dir.appendingPathComponent("records.json")
        XCTAssertEqual(try CLI.run(["tune", "--export", export.path, "--db", db]).status, 0)
        let records = try XCTUnwrap((try JSONSerialization.jsonObject(with: Data(contentsOf: export)) as? [String: Any])?["records"] as? [[String: Any]])
        XCTAssertEqual(records.count, 1)
        XCTAssertEqual(try XCTUnwrap(records[0]["median_ms"] as? Double), medians.min()!)
    }

    /// The documented headline (`tune --kernel flash ... --causal`, 192 candidates) once
    /// failed on the 96-candidate cap after creating an empty database: a large space is now
    /// sampled with a note, and a refused run leaves no file.
    func testLargeSpacesAreSampledAndRefusalsLeaveNothing() throws {
        let dir = try CLI.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let db = dir.appendingPathComponent("tuning.sqlite").path
        let base = ["tune", "--kernel", "flash", "--heads", "2", "--q-len", "32", "--head-dim", "16", "--causal", "--min-seconds", "0.01", "--db", db]
        let refused = try CLI.run(base + ["--max-candidates", "0"])
        XCTAssertNotEqual(refused.status, 0)
        XCTAssertTrue(refused.stderr.contains("--max-candidates must be >= 1"), refused.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: db), "a refused run leaves no database")
        let sampled = try CLI.run(base + ["--max-candidates", "3"])
        XCTAssertEqual(sampled.status, 0, sampled.stderr)
        XCTAssertTrue(sampled.stderr.contains("the space of 'flash' has 192 candidates"), sampled.stderr)
        XCTAssertTrue(sampled.stderr.contains("timing a fixed sample of 3"), sampled.stderr)
    }
}
