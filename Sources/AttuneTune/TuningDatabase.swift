import AttuneKernels
import AttuneRuntime
import Foundation
import GRDB

/// The best configuration found for one key, and what it was measured against.
public struct TuningRecord: Codable, Sendable, Equatable {
    public var key: TuningKey
    /// The winner; the baseline (the defaults, `[:]`, unless they failed the numerics
    /// check) when nothing beat it by more than the noise.
    public var parameters: KernelParameters
    public var medianMs: Double
    /// The baseline's median in the same run.
    public var defaultMs: Double
    /// Spread of an A/A run (the baseline against itself), as a fraction.
    public var noise: Double
    /// The winner beat the baseline by more than `noise`.
    public var better: Bool
    public var candidates: Int
    /// Worst numerics-check error among stored candidates (rel-L1 against the reference).
    public var error: Double
    public var created: String

    public var speedup: Double { medianMs > 0 ? defaultMs / medianMs : 1 }
}

/// One measured candidate: a tuner re-run with a larger space measures only new ones.
public struct TuningMeasurement: Codable, Sendable, Equatable {
    public var parameters: KernelParameters
    public var medianMs: Double
    public var error: Double
}

public struct TuneError: Error, CustomStringConvertible, Equatable {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// A SQLite file (through GRDB) of tuning records. WAL journal and a busy timeout let
/// several tuners write one file; every write is one short transaction, so concurrent
/// writers serialise and none loses its records. Opening checks the file is a database
/// of this schema and passes SQLite's quick check: a corrupt or truncated file is
/// reported, never used.
public final class TuningDatabase: @unchecked Sendable {
    public let path: String
    /// The file (or its folder) cannot be written: records are read, saving them fails
    /// with a message. Compiling with a shared read-only database must still work.
    public let isReadOnly: Bool
    private let queue: DatabaseQueue

    /// `$ATTUNE_TUNING_DB`, else `tuning.sqlite` in the cache folder (`CacheLocation`).
    public static var defaultPath: String {
        if let env = ProcessInfo.processInfo.environment["ATTUNE_TUNING_DB"], !env.isEmpty { return env }
        return CacheLocation.resolve().url.appendingPathComponent("tuning.sqlite").path
    }

    public init(path: String) throws {
        self.path = path
        let dir = URL(fileURLWithPath: path).deletingLastPathComponent()
        try? FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        var config = Configuration()
        config.busyMode = .timeout(30)
        // access(2) also sees read-only mounts, which root's permission bypass does not.
        isReadOnly = FileManager.default.fileExists(atPath: path)
            && (access(path, W_OK) != 0 || access(dir.path, W_OK) != 0)
        if isReadOnly {
            // A WAL database normally needs its -shm file created next to it; `immutable`
            // tells SQLite nobody writes it while we read, so nothing is created.
            config.readonly = true
            do {
                queue = try DatabaseQueue(path: "file:\(path)?immutable=1", configuration: config)
                let check = try queue.read { db in try String.fetchOne(db, sql: "PRAGMA quick_check") } ?? "no answer"
                guard check == "ok" else { throw TuneError("\(path): tuning database is corrupt (SQLite quick_check: \(check)); move it away or pass another --db") }
                let schema = try queue.read { db in try String.fetchOne(db, sql: "SELECT value FROM meta WHERE name = 'schema'") }
                guard schema == String(TuningKey.schemaVersion) else {
                    throw TuneError("\(path): read-only tuning database of schema \(schema ?? "none"); this Attune reads schema \(TuningKey.schemaVersion)")
                }
            } catch let error as DatabaseError {
                throw TuneError("\(path): not a usable tuning database (\(error.message ?? "\(error.resultCode)")); move it away or pass another --db")
            }
            return
        }
        do {
            queue = try DatabaseQueue(path: path, configuration: config)
            // Switching to WAL and creating the schema take locks SQLite's busy handler
            // does not always wait for: a second process opening the file at the same
            // moment gets SQLITE_BUSY. Retry for up to 30 s rather than fail.
            let deadline = Date().addingTimeInterval(30)
            while true {
                do {
                    try queue.writeWithoutTransaction { db in try db.execute(sql: "PRAGMA journal_mode = WAL") }
                    let check = try queue.read { db in try String.fetchOne(db, sql: "PRAGMA quick_check") } ?? "no answer"
                    guard check == "ok" else { throw TuneError("\(path): tuning database is corrupt (SQLite quick_check: \(check)); move it away or pass another --db") }
                    try migrate()
                    break
                } catch let error as DatabaseError where [.SQLITE_BUSY, .SQLITE_LOCKED].contains(error.resultCode) && Date() < deadline {
                    Thread.sleep(forTimeInterval: 0.05)
                }
            }
        } catch let error as TuneError {
            throw error
        } catch let error as DatabaseError {
            throw TuneError("\(path): not a usable tuning database (\(error.message ?? "\(error.resultCode)")); move it away or pass another --db")
        }
    }

    private func migrate() throws {
        try queue.write { db in
            try db.execute(sql: """
                CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
                CREATE TABLE IF NOT EXISTS records (
                    id TEXT PRIMARY KEY, kernel TEXT NOT NULL, kernel_source_hash TEXT NOT NULL, problem TEXT NOT NULL,
                    cpu TEXT NOT NULL, compiler TEXT NOT NULL, flags TEXT NOT NULL, threads INTEGER NOT NULL, schema INTEGER NOT NULL,
                    parameters TEXT NOT NULL, median_ms REAL NOT NULL, default_ms REAL NOT NULL, noise REAL NOT NULL,
                    better INTEGER NOT NULL, candidates INTEGER NOT NULL, error REAL NOT NULL, created TEXT NOT NULL);
                CREATE TABLE IF NOT EXISTS measurements (
                    id TEXT NOT NULL, parameters TEXT NOT NULL, median_ms REAL NOT NULL, error REAL NOT NULL,
                    PRIMARY KEY (id, parameters));
                """)
            let schema = try String.fetchOne(db, sql: "SELECT value FROM meta WHERE name = 'schema'")
            if let schema, schema != String(TuningKey.schemaVersion) {
                throw TuneError("\(path): tuning database schema \(schema); this Attune writes schema \(TuningKey.schemaVersion)")
            }
            try db.execute(sql: "INSERT OR IGNORE INTO meta (name, value) VALUES ('schema', ?)", arguments: [String(TuningKey.schemaVersion)])
        }
    }

    // MARK: records

    public func record(for key: TuningKey) throws -> TuningRecord? {
        try queue.read { db in
            try Row.fetchOne(db, sql: "SELECT * FROM records WHERE id = ?", arguments: [key.id]).map(Self.record)
        }
    }

    /// Saves `r` for its key. A tuner passes when it started (`tunedSince`): if another
    /// tuner of the same problem class saved a record in the meantime (two `attune tune`
    /// processes at once), the faster of the two is kept, whichever finishes last; a record
    /// from before the tuner started is replaced (a re-tune). Read and write are one
    /// transaction, so the rule holds however the writers interleave. Returns the record
    /// the database holds afterwards.
    @discardableResult
    public func save(_ r: TuningRecord, tunedSince start: Date? = nil) throws -> TuningRecord {
        try requireWritable()
        return try queue.write { db in
            if let start, let existing = try Row.fetchOne(db, sql: "SELECT * FROM records WHERE id = ?", arguments: [r.key.id]).map(Self.record),
               let created = ISO8601DateFormatter().date(from: existing.created),
               created >= start.addingTimeInterval(-1), existing.medianMs <= r.medianMs {
                // `created` has whole seconds: a record saved in the tuner's first second counts as concurrent.
                return existing
            }
            try db.execute(sql: """
                INSERT OR REPLACE INTO records (id, kernel, kernel_source_hash, problem, cpu, compiler, flags, threads, schema,
                    parameters, median_ms, default_ms, noise, better, candidates, error, created)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                """, arguments: [r.key.id, r.key.kernel, r.key.kernelSourceHash, r.key.problem, r.key.cpu, r.key.compiler, r.key.flags,
                                 r.key.threads, r.key.schema, Self.encode(r.parameters), r.medianMs, r.defaultMs, r.noise,
                                 r.better ? 1 : 0, r.candidates, r.error, r.created])
            return r
        }
    }

    public func allRecords() throws -> [TuningRecord] {
        try queue.read { db in try Row.fetchAll(db, sql: "SELECT * FROM records ORDER BY kernel, problem, id").map(Self.record) }
    }

    // MARK: measurements

    public func measurements(for key: TuningKey) throws -> [TuningMeasurement] {
        try queue.read { db in
            try Row.fetchAll(db, sql: "SELECT * FROM measurements WHERE id = ? ORDER BY parameters", arguments: [key.id]).map { row in
                TuningMeasurement(parameters: Self.decode(row["parameters"]), medianMs: row["median_ms"], error: row["error"])
            }
        }
    }

    public func save(_ m: TuningMeasurement, for key: TuningKey) throws {
        try requireWritable()
        try queue.write { db in
            try db.execute(sql: "INSERT OR REPLACE INTO measurements (id, parameters, median_ms, error) VALUES (?, ?, ?, ?)",
                           arguments: [key.id, Self.encode(m.parameters), m.medianMs, m.error])
        }
    }

    /// Throws, naming the file, when records cannot be saved.
    public func requireWritable() throws {
        if isReadOnly { throw TuneError("\(path) is read-only: records can be read but not saved; pass a writable --db") }
    }

    // MARK: sharing between machines

    /// Every record as JSON (`attune tune --export`).
    public func exportJSON() throws -> Data {
        let encoder = JSONEncoder()
        encoder.keyEncodingStrategy = .convertToSnakeCase
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        return try encoder.encode(ExportFile(format: "attune-tuning", schema: TuningKey.schemaVersion, records: try allRecords()))
    }

    /// Adds records from another machine or version as they are (they stay keyed to it);
    /// a record with the same key is replaced. Returns how many were read.
    @discardableResult
    public func importJSON(_ data: Data, source: String) throws -> Int {
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .convertFromSnakeCase
        let file: ExportFile
        do { file = try decoder.decode(ExportFile.self, from: data) } catch {
            throw TuneError("\(source): not an Attune tuning export (\(error))")
        }
        guard file.format == "attune-tuning" else { throw TuneError("\(source): format '\(file.format)', expected 'attune-tuning'") }
        for r in file.records { try save(r) }
        return file.records.count
    }

    struct ExportFile: Codable {
        var format: String
        var schema: Int
        var records: [TuningRecord]
    }

    // MARK: rows

    static func encode(_ p: KernelParameters) -> String {
        describeParameters(p, separator: ",")
    }

    static func decode(_ s: String) -> KernelParameters {
        var out: KernelParameters = [:]
        for item in s.split(separator: ",") {
            let kv = item.split(separator: "=", maxSplits: 1)
            if kv.count == 2, let v = Double(kv[1]) { out[String(kv[0])] = v }
        }
        return out
    }

    static func record(_ row: Row) -> TuningRecord {
        TuningRecord(key: TuningKey(kernel: row["kernel"], kernelSourceHash: row["kernel_source_hash"], problem: row["problem"],
                                    cpu: row["cpu"], compiler: row["compiler"], flags: row["flags"], threads: row["threads"],
                                    schema: row["schema"]),
                     parameters: decode(row["parameters"]), medianMs: row["median_ms"], defaultMs: row["default_ms"],
                     noise: row["noise"], better: (row["better"] as Int) != 0, candidates: row["candidates"],
                     error: row["error"], created: row["created"])
    }
}
