import AttuneTensor
import Foundation
import XCTest

/// `attune calibrate` then `attune run --calibration … --stats`, as a user runs them.
final class CalibrateCLITests: XCTestCase {
    let llama = CompilerCLITests.fixtures.appendingPathComponent("llama").path
    let qwen = CompilerCLITests.fixtures.appendingPathComponent("qwen2").path

    func testCalibrateThenRunWithStats() throws {
        let dir = try CLI.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let data = dir.appendingPathComponent("tokens.npy"), out = dir.appendingPathComponent("calibration.json")
        try Npy.writeIntegers((0..<64).map { Int64($0 * 7 % 128) }, shape: [2, 32], to: data)
        let calibrate = try CLI.run(["calibrate", llama, "--data", data.path, "-o", out.path])
        XCTAssertEqual(calibrate.status, 0, calibrate.stderr)
        XCTAssertTrue(calibrate.stdout.contains("2 sequences, 64 tokens"), calibrate.stdout)
        let file = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(contentsOf: out)) as? [String: Any])
        XCTAssertEqual(file["format"] as? String, "attune-calibration")
        XCTAssertEqual((file["layers"] as? [Any])?.count, 2)

        let run = try CLI.run(["run", llama, "--tokens", "1,17,42,99,3", "--max-new-tokens", "3", "--attention", "unified_max",
                               "--calibration", out.path, "--stats", "--json"])
        XCTAssertEqual(run.status, 0, run.stderr)
        let last = run.stdout.split(separator: "\n").last.map(String.init) ?? ""
        let json = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(last.utf8)) as? [String: Any], last)
        let stats = try XCTUnwrap(json["stats"] as? [String: Int], last)
        // 5 prompt rows + 3 decode steps, 4 q heads.
        XCTAssertEqual(stats["layer0.unified_max.rows"], 32)
        XCTAssertEqual(stats["layer1.unified_max.fallback_rows"], 0)
        XCTAssertTrue(run.stdout.contains("stats      layer0.unified_max.fallback_rows  0"), run.stdout)

        let other = try CLI.run(["run", qwen, "--tokens", "1,2", "--attention", "unified_max", "--calibration", out.path])
        XCTAssertNotEqual(other.status, 0)
        XCTAssertTrue(other.stderr.contains("was calibrated on model 'llama'"), other.stderr)
        try Data("not npy".utf8).write(to: data)
        let bad = try CLI.run(["calibrate", llama, "--data", data.path, "-o", out.path])
        XCTAssertNotEqual(bad.status, 0)
        XCTAssertTrue(bad.stderr.contains("not a .npy file"), bad.stderr)
    }

    /// Bad data and settings are refused before calibration runs (an id outside the
    /// vocabulary used to fail in the middle of it, a bad --anchors after all of it), and
    /// nothing is written.
    func testBadDataAndSettingsAreRefusedBeforeCalibrating() throws {
        let dir = try CLI.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let data = dir.appendingPathComponent("tokens.npy"), out = dir.appendingPathComponent("calibration.json")
        try Npy.writeIntegers((0..<64).map { $0 == 40 ? 500 : Int64($0) }, shape: [2, 32], to: data)
        let vocab = try CLI.run(["calibrate", llama, "--data", data.path, "-o", out.path])
        XCTAssertEqual(vocab.status, 1)
        XCTAssertTrue(vocab.stderr.contains("token 9 of sequence 2 is 500, outside the vocabulary of 128 (ids 0...127)"), vocab.stderr)
        XCTAssertFalse(vocab.stderr.contains("calibrated"), "refused before the first sequence ran")
        try Npy.writeIntegers((0..<64).map { Int64($0) }, shape: [2, 32], to: data)
        for (args, message) in [(["--kascade", "--anchors", "5"], "--anchors must be in 1...1 for 2 layers, got 5"),
                                (["--kascade", "--param", "fraction=-1"], "fraction"),
                                (["--param", "fraction=0.5"], "--param is for --kascade")] {
            let r = try CLI.run(["calibrate", llama, "--data", data.path, "-o", out.path] + args)
            XCTAssertEqual(r.status, 1, "\(args)")
            XCTAssertTrue(r.stderr.contains(message), "\(args): \(r.stderr)")
            XCTAssertFalse(r.stderr.contains("calibrated"), "\(args): refused before calibrating")
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: out.path))
    }
}
