import Foundation
import XCTest

/// Random command lines from a grammar of Attune's commands, flags and (mostly bad)
/// values, run as a careless user would type them. Every one must end with exit 0, 1 or
/// 64 — never a signal or a hang — and a failure must say `error: …` on its last line,
/// never print a Foundation dump, a Swift fatal error or a backtrace.
///
/// Seeded, so a run is reproducible; bounded in time: `ATTUNE_CLI_FUZZ_SECONDS` (default
/// 20, what CI runs) and `ATTUNE_CLI_FUZZ_SEED` (default 1). Longer runs by hand are in
/// Docs/FUZZING.md.
final class CLIFuzzTests: XCTestCase {
    struct SplitMix {
        var state: UInt64
        mutating func next() -> UInt64 {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
        mutating func pick<T>(_ items: [T]) -> T { items[Int(next() % UInt64(items.count))] }
        mutating func chance(_ p: Double) -> Bool { Double(next() % 1000) < p * 1000 }
    }

    /// A flag and the kind of value it takes (nil: a switch).
    typealias Flag = (name: String, values: [String]?)

    func testRandomCommandLinesFailCleanly() throws {
        let env = ProcessInfo.processInfo.environment
        let seconds = Double(env["ATTUNE_CLI_FUZZ_SECONDS"] ?? "") ?? 20
        var rng = SplitMix(state: UInt64(env["ATTUNE_CLI_FUZZ_SEED"] ?? "") ?? 1)
        let dir = try CLI.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let fixtures = CompilerCLITests.fixtures
        let emptyDir = dir.appendingPathComponent("empty")
        try FileManager.default.createDirectory(at: emptyDir, withIntermediateDirectories: true)
        let junk = dir.appendingPathComponent("junk.npy")
        try Data("not numpy at all".utf8).write(to: junk)
        let attn = fixtures.deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("AttuneFuzz/Seeds/attn/toy.attn").path

        let models = [fixtures.appendingPathComponent("llama").path, fixtures.appendingPathComponent("llama_text").path,
                      fixtures.appendingPathComponent("gemma2").path,
                      "/nonexistent/model", "/etc/hostname", emptyDir.path, attn, ""]
        let ints = ["-1", "0", "1", "2", "7", "64", "100000000000", "abc", "", "1e3", "9223372036854775808", "-99999"]
        let reals = ["0", "-1", "0.5", "1e300", "nan", "inf", "-inf", "x", "", "2"]
        let paths = ["/nonexistent/dir/out", "/etc/hostname", "/etc/hostname/x", dir.appendingPathComponent("out").path,
                     "", emptyDir.path, junk.path, "/proc/self/mem"]
        let kernels = ["flash", "flash:block_kv=128", "unified_max:phi=1e300", "nope", "flash:block_q=-3", "sigmoid:bias=1",
                       "sparge", "kascade:fraction=2", "hybrid", "flash:", ":", "flash:x", "prefix_shared", "unified_max:threads=100000"]
        let tokens = ["1,2,3", "", "a", "-1", "99999999999", "1,,2", "1 2", "0", "5,6,7,8,9,10,11,12"]
        let texts = ["hello", "", "é🙂 漢字", "<|endoftext|>", String(repeating: "ab ", count: 300), "\u{0}", "-1"]
        let names = ["flash", "unified_max", "sigmoid", "sparge", "kascade", "hybrid", "prefix_shared", "nope", ""]
        let compileFlags: [Flag] = [("--attention", kernels), ("--layer-attention", ["0=flash", "9=flash", "x=y", "0=nope"]),
                                    ("--max-chunk", ints), ("--max-context", ints), ("--allow-nonfinite", nil),
                                    ("--policy", paths), ("--calibration", paths), ("--tuning-db", paths), ("--no-tuning", nil)]
        let sampling: [Flag] = [("--temperature", reals), ("--top-k", ints), ("--top-p", reals), ("--min-p", reals),
                                ("--repetition-penalty", reals), ("--seed", ints)]
        let commands: [(words: [String], positional: [String]?, flags: [Flag])] = [
            (["run"], models, [("--tokens", tokens), ("--prompt", texts), ("--prompt-file", paths), ("--max-new-tokens", ints),
                               ("--logits-out", paths), ("--repeats", ints), ("--stats", nil), ("--json", nil), ("--chat", nil),
                               ("--system", texts), ("--stop", texts), ("--ignore-eos", nil), ("--prompts", paths)] + sampling + compileFlags),
            (["compile"], models, [("-o", paths), ("--emit", ["so", "c", "exe", ""])] + compileFlags),
            (["inspect"], models, [("--after", ["canonicalize", "nope", ""]), ("--kernels", nil), ("--c", nil)] + compileFlags),
            (["chat"], models, [("--max-new-tokens", ints), ("--system", texts), ("--chat-template", paths), ("--stats", nil)] + sampling),
            (["tokenize"], models, [("--text", texts), ("--text-file", paths), ("--decode", tokens), ("--no-special-tokens", nil)]),
            (["calibrate"], models, [("--data", paths), ("-o", paths), ("--kascade", nil), ("--anchors", ints), ("--param", ["fraction=0.5", "x=1", "tile=0"])]),
            (["kernel", "run"], nil, [("--kernel", names), ("--q", paths), ("--k", paths), ("--v", paths), ("--out", paths),
                                       ("--causal", nil), ("--window", ints), ("--scale", reals), ("--q-offset", ints),
                                       ("--softcap", reals),
                                       ("--param", ["block_q=32", "block_q=-1", "x=1", "phi=nan"])]),
            (["kernel", "list"], nil, []),
            (["bench", "attention"], nil, [("--kernel", names), ("--heads", ["1", "2", "0", "-1", "abc", "100000"]),
                                            ("--q-len", ["1", "16", "64", "0", "-5", "10000000000"]), ("--kv-len", ["16", "0", "-1", "x"]),
                                            ("--head-dim", ["16", "64", "3", "0", "100000"]), ("--causal", nil), ("--json", nil),
                                            ("--softcap", reals),
                                            ("--threads", ["1", "0", "100000", "-2"])]),
            (["bench", "linear"], nil, [("--weights", ["q8", "q4", ""]), ("--rows", ["1", "0", "-1", "9", "100000000000"]),
                                         ("--in", ["64", "96", "0", "-32", "100000000"]), ("--out", ["16", "0", "-1", "100000000"]),
                                         ("--model", ["qwen2.5-0.5b", "nope"]), ("--group", ["32", "0", "48", "-32"]),
                                         ("--scale", ["f16", "f32", "f8"]), ("--threads", ["1", "0", "100000"]), ("--rounds", ["1", "0", "-1"])]),
            (["tune"], nil, [("--kernel", names), ("--heads", ["1", "2", "0", "x"]), ("--q-len", ["16", "32", "0", "-1"]),
                             ("--head-dim", ["16", "0"]), ("--causal", nil), ("--db", paths), ("--export", paths), ("--import", paths)]),
            (["check"], nil, [("--inputs", paths), ("--report", paths)]),
        ]

        let deadline = Date().addingTimeInterval(seconds)
        var runs = 0
        while Date() < deadline {
            let command = rng.pick(commands)
            var args = command.words
            if let positional = command.positional, rng.chance(0.9) { args.append(rng.pick(positional)) }
            for _ in 0..<Int(rng.next() % 5) {
                let flag = rng.pick(command.flags.isEmpty ? [("--bogus", nil)] : command.flags)
                args.append(rng.chance(0.05) ? "--no-such-flag" : flag.name)
                if let values = flag.values, rng.chance(0.95) { args.append(rng.pick(values)) }
            }
            // Bounds that keep a valid run short: the fuzz test is about refusals.
            if args.first == "tune" { args += ["--max-candidates", "2", "--min-seconds", "0.01", "--db", dir.appendingPathComponent("t.sqlite").path] }
            if args.first == "check" && !args.contains("--inputs") { args += ["--inputs", emptyDir.path] }
            if args.first == "run" || args.first == "chat" { args += ["--max-context", "128"] }
            if args.starts(with: ["bench", "linear"]) { args += ["--rounds", "1"] }
            let r = try run(args, timeout: 120, directory: dir)
            runs += 1
            let shown = args.map { $0.contains(" ") || $0.isEmpty ? "'\($0)'" : $0 }.joined(separator: " ")
            guard let status = r.status else {
                XCTFail("attune \(shown): \(r.killed ? "did not finish in 120 s" : "ended by signal \(r.signal)")\n\(r.stderr)")
                continue
            }
            XCTAssertTrue([0, 1, 64].contains(status), "attune \(shown): exit \(status)\n\(r.stderr)")
            for dump in ["NSCocoaErrorDomain", "Error Domain=", "Fatal error", "Stack dump", "Backtrace", "Current stack trace"] {
                XCTAssertFalse(r.stderr.contains(dump), "attune \(shown): \(dump) in\n\(r.stderr)")
            }
            if status != 0 {
                let last = r.stderr.split(separator: "\n").last.map(String.init) ?? ""
                XCTAssertTrue(last.hasPrefix("error: "), "attune \(shown): last stderr line is not an error line\n\(r.stderr)")
            }
        }
        XCTAssertGreaterThan(runs, 0)
        print("CLI fuzz: \(runs) command lines in \(Int(seconds)) s")
    }

    struct Outcome {
        var status: Int32?
        var signal: Int32 = 0
        var killed = false
        var stderr: String
    }

    /// Runs the binary in `directory` with stdin closed and stdout discarded, killing it after `timeout` seconds.
    func run(_ args: [String], timeout: Double, directory: URL) throws -> Outcome {
        let process = Process()
        process.executableURL = CLI.binary
        process.arguments = args
        // A command that writes relative paths writes into the temporary folder, never the repository.
        process.currentDirectoryURL = directory
        let err = Pipe(), input = Pipe()
        process.standardOutput = FileHandle.nullDevice
        process.standardError = err
        process.standardInput = input
        try process.run()
        try input.fileHandleForWriting.close()
        let killer = DispatchWorkItem { if process.isRunning { process.terminate() } }
        DispatchQueue.global().asyncAfter(deadline: .now() + timeout, execute: killer)
        let e = err.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        let timedOut = !killer.isCancelled && process.terminationReason == .uncaughtSignal && process.terminationStatus == SIGTERM
        killer.cancel()
        let stderr = String(decoding: e, as: UTF8.self)
        if process.terminationReason == .uncaughtSignal {
            return Outcome(status: nil, signal: process.terminationStatus, killed: timedOut, stderr: stderr)
        }
        return Outcome(status: process.terminationStatus, stderr: stderr)
    }
}
