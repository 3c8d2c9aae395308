import AttuneTensor
import Foundation
import XCTest

/// `attune check`: passes on this tree, catches a kernel broken on purpose, checks your
/// own tensors, and writes its report.
final class CheckCLITests: XCTestCase {
    func run(_ args: [String], environment: [String: String] = [:]) throws -> CLIResult {
        let process = Process()
        process.executableURL = CLI.binary
        process.arguments = args
        process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        try process.run()
        let o = out.fileHandleForReading.readDataToEndOfFile(), e = err.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return CLIResult(status: process.terminationStatus, stdout: String(decoding: o, as: UTF8.self), stderr: String(decoding: e, as: UTF8.self))
    }

    func testPassesOnMainAndCatchesABrokenKernel() throws {
        let dir = try CLI.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let report = dir.appendingPathComponent("report.html").path
        // The whole suite runs in `make test` after the tests; here two kernels keep it short
        // (kascade's float64 oracles are the slowest part in a debug build).
        let ok = try run(["check", "--only", "kernels,determinism", "--kernel", "flash,hybrid", "--report", report])
        XCTAssertEqual(ok.status, 0, ok.stdout + ok.stderr)
        XCTAssertTrue(ok.stdout.contains("no metric regressed and no case outside its contract"), ok.stdout)
        XCTAssertTrue(ok.stdout.contains("out of scope (no claim: flash:precision=bf16, flash:precision=int8qk, hybrid)"), ok.stdout)
        let html = try String(contentsOfFile: report, encoding: .utf8)
        XCTAssertTrue(html.contains("<svg") && html.contains("kernel/flash/decode-gqa"), "the report has plots and cases")

        // The test-only switch perturbs one output element of flash by 0.05: a regression
        // against the baseline and, flash being exact, outside its contract too.
        let broken = try run(["check", "--only", "kernels", "--kernel", "flash,unified_max"], environment: ["ATTUNE_CHECK_BREAK_KERNEL": "flash"])
        XCTAssertEqual(broken.status, 1)
        XCTAssertTrue(broken.stdout.contains("REGRESSED"), broken.stdout)
        XCTAssertTrue(broken.stdout.contains("OUTSIDE CONTRACT"), broken.stdout)
        XCTAssertTrue(broken.stdout.contains("kernel/flash/decode-gqa"), broken.stdout)
        XCTAssertFalse(broken.stdout.contains("kernel/unified_max/"), "only the broken kernel regresses")

        // A baseline rewritten on purpose excuses the broken kernel's growth (that is what the
        // flag is for) but not its contract: where the bumped element lies in a row that sees
        // no key (empty-rows-all, decode-kv0, rows-before-keys, sinks-empty-rows), O ≠ 0 breaks
        // the ABI's promise.
        let baseline = dir.appendingPathComponent("baseline.json").path
        XCTAssertEqual(try run(["check", "--only", "kernels", "--kernel", "sparge,flash", "--baseline", baseline, "--update-baseline"], environment: ["ATTUNE_CHECK_BREAK_KERNEL": "sparge"]).status, 0)
        let approx = try run(["check", "--only", "kernels", "--kernel", "sparge,flash", "--baseline", baseline, "--json"], environment: ["ATTUNE_CHECK_BREAK_KERNEL": "sparge"])
        XCTAssertEqual(approx.status, 1, approx.stdout)
        XCTAssertFalse(approx.stdout.contains("REGRESSED"), approx.stdout)
        let json = try XCTUnwrap(approx.stdout.split(separator: "\n").last.flatMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] })
        let outside = try XCTUnwrap(json["outside_contract"] as? [String])
        XCTAssertEqual(Set(outside), Set(["sparge", "sparge:precision=bf16"].flatMap { k in
            ["empty-rows-all", "decode-kv0-split3", "rows-before-keys", "sinks-empty-rows"].map { "kernel/\(k)/\($0)" } }))
        XCTAssertEqual(outside.count, 8, "one entry per case")
    }

    /// The break switch for contracts: sparge's whole output drifts by 30 % and the baseline
    /// is rewritten with the drifted values, so no metric grew against it; the check must still
    /// fail, naming sparge's cases "outside contract" and no other kernel's.
    func testAContractCatchesADriftTheBaselineFollowed() throws {
        let dir = try CLI.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let baseline = dir.appendingPathComponent("baseline.json").path
        let drift = ["ATTUNE_CHECK_BREAK_KERNEL": "sparge*1.3"]
        let update = try run(["check", "--only", "kernels", "--kernel", "sparge,flash", "--baseline", baseline, "--update-baseline"], environment: drift)
        XCTAssertEqual(update.status, 0, update.stdout + update.stderr)
        let report = dir.appendingPathComponent("report.html").path
        let r = try run(["check", "--only", "kernels", "--kernel", "sparge,flash", "--baseline", baseline, "--report", report, "--json"], environment: drift)
        XCTAssertEqual(r.status, 1, r.stdout)
        XCTAssertTrue(r.stdout.contains("OUTSIDE CONTRACT"), r.stdout)
        XCTAssertFalse(r.stdout.contains("REGRESSED"), "the baseline followed the drift: only the contract fails\n" + r.stdout)
        let json = try XCTUnwrap(r.stdout.split(separator: "\n").last.flatMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] })
        let outside = try XCTUnwrap(json["outside_contract"] as? [String])
        XCTAssertTrue(outside.contains("kernel/sparge/prefill-causal"), "\(outside)")
        XCTAssertTrue(outside.contains("kernel/sparge:precision=bf16/structured-prefill"), "\(outside)")
        XCTAssertTrue(outside.allSatisfy { $0.hasPrefix("kernel/sparge") }, "only the drifted kernel: \(outside)")
        let html = try String(contentsOfFile: report, encoding: .utf8)
        XCTAssertTrue(html.contains("<td class=\"outside\">outside contract</td>"), "red in the report")
        XCTAssertTrue(html.contains("cases outside contract"), "and said at the top")
    }

    /// `--kernel`: only those kernels' cases run, and the baseline's other cases are not
    /// reported missing; an unknown name is refused before any work.
    func testKernelFilter() throws {
        let r = try run(["check", "--only", "determinism", "--kernel", "sigmoid"])
        XCTAssertEqual(r.status, 0, r.stdout + r.stderr)
        XCTAssertTrue(r.stdout.contains("check      3 cases (3 determinism)"), r.stdout)
        let bad = try run(["check", "--kernel", "flsh"])
        XCTAssertEqual(bad.status, 1)
        XCTAssertTrue(bad.stderr.contains("--kernel: 'flsh' is not a kernel"), bad.stderr)
    }

    func testYourOwnInputs() throws {
        let dir = try CLI.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        var seed: UInt32 = 7
        func t(_ shape: [Int]) -> Tensor {
            Tensor(shape: shape, data: (0..<shape.reduce(1, *)).map { _ in seed = seed &* 1664525 &+ 1013904223; return Float(seed >> 9) / Float(1 << 23) - 0.5 })
        }
        try Npy.write(t([1, 4, 24, 32]), to: dir.appendingPathComponent("q.npy"))
        try Npy.write(t([1, 2, 24, 32]), to: dir.appendingPathComponent("k.npy"))
        try Npy.write(t([1, 2, 24, 32]), to: dir.appendingPathComponent("v.npy"))
        try #"{"causal": true}"#.write(to: dir.appendingPathComponent("problem.json"), atomically: true, encoding: .utf8)
        let r = try run(["check", "--inputs", dir.path])
        XCTAssertEqual(r.status, 0, r.stdout + r.stderr)
        XCTAssertTrue(r.stdout.contains("inputs/\(dir.lastPathComponent)/flash"), r.stdout)
        XCTAssertTrue(r.stdout.contains("inputs/\(dir.lastPathComponent)/kascade"), r.stdout)
        try Npy.write(t([1, 3, 24, 32]), to: dir.appendingPathComponent("k.npy"))
        let bad = try run(["check", "--inputs", dir.path])
        XCTAssertNotEqual(bad.status, 0)
        XCTAssertTrue(bad.stderr.contains("q_heads") || bad.stderr.contains("kv"), bad.stderr)

        // problem.json is read strictly: a misspelt key once ran a non-causal check silently.
        try Npy.write(t([1, 2, 24, 32]), to: dir.appendingPathComponent("k.npy"))
        let json = dir.appendingPathComponent("problem.json")
        for (text, message) in [(#"{"casual": true}"#, "unknown key 'casual' (keys: causal, window, q_offset, scale)"),
                                (#"{"causal": 1}"#, "'causal' must be true or false"),
                                (#"{"causal": true, "window": 2.5}"#, "'window' must be an integer"),
                                ("causal: true", "not valid JSON")] {
            try text.write(to: json, atomically: true, encoding: .utf8)
            let r = try run(["check", "--inputs", dir.path])
            XCTAssertNotEqual(r.status, 0, text)
            XCTAssertTrue(r.stderr.contains("problem.json: " + message), "\(text): \(r.stderr)")
            XCTAssertEqual(r.stderr.split(separator: "\n").count, 1, "one line: \(r.stderr)")
        }
    }
}
