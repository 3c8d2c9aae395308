import AttuneTensor
import Foundation
import XCTest

final class KernelRunCLITests: XCTestCase {
    var dir: URL!

    override func setUpWithError() throws {
        dir = try CLI.temporaryDirectory()
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(at: dir)
    }

    func path(_ name: String) -> String { dir.appendingPathComponent(name).path }

    func write(_ name: String, _ shape: [Int], _ f: (Int) -> Float) throws {
        let n = shape.reduce(1, *)
        try Npy.write(Tensor(shape: shape, data: (0..<n).map(f)), to: dir.appendingPathComponent(name))
    }

    /// A version 1.0 .npy file with any dtype, for inputs `Npy.write` cannot produce.
    func npyFile(descr: String, shape: String, payload: Data) -> Data {
        var header = "{'descr': '\(descr)', 'fortran_order': False, 'shape': \(shape), }"
        while (10 + header.utf8.count + 1) % 64 != 0 { header += " " }
        header += "\n"
        let n = header.utf8.count
        return Data([0x93]) + Data("NUMPY".utf8) + Data([1, 0, UInt8(n & 0xff), UInt8(n >> 8)]) + Data(header.utf8) + payload
    }

    /// With a causal mask, query row 0 of a q_len = kv_len problem sees only key 0,
    /// so its output is exactly V row 0; LSE is scale * q.k of that one key.
    func testRunsFlashAndWritesOutputs() throws {
        try write("q.npy", [1, 2, 3, 4]) { Float($0 % 5) * 0.1 }
        try write("k.npy", [1, 1, 3, 4]) { Float($0 % 3) * 0.2 }
        try write("v.npy", [1, 1, 3, 4]) { Float($0) }
        let r = try CLI.run(["kernel", "run", "--kernel", "flash", "--q", path("q.npy"), "--k", path("k.npy"),
                             "--v", path("v.npy"), "--causal", "--out", path("o.npy"), "--lse", path("lse.npy")])
        XCTAssertEqual(r.status, 0, r.stderr)
        let o = try Npy.read(contentsOf: dir.appendingPathComponent("o.npy"))
        let lse = try Npy.read(contentsOf: dir.appendingPathComponent("lse.npy"))
        XCTAssertEqual(o.shape, [1, 2, 3, 4])
        XCTAssertEqual(lse.shape, [1, 2, 3])
        XCTAssertEqual(Array(o.data[0..<4]), [0, 1, 2, 3])
        // q row 0 = [0, .1, .2, .3], k row 0 = [0, .2, .4, 0]; scale 1/2.
        XCTAssertEqual(lse.data[0], 0.5 * (0.1 * 0.2 + 0.2 * 0.4), accuracy: 1e-6)
    }

    /// --softcap C: query row 0 sees only key 0, so its LSE is that one score capped,
    /// C·tanh(s/C); kernels without soft-capping refuse it, naming flash.
    func testSoftcapCapsTheScores() throws {
        try write("q.npy", [1, 2, 3, 4]) { Float($0 % 5) * 0.1 }
        try write("k.npy", [1, 1, 3, 4]) { Float($0 % 3) * 0.2 }
        try write("v.npy", [1, 1, 3, 4]) { Float($0) }
        let args = ["kernel", "run", "--q", path("q.npy"), "--k", path("k.npy"), "--v", path("v.npy"), "--causal", "--out", path("o.npy"),
                    "--lse", path("lse.npy"), "--softcap", "0.04"]
        var r = try CLI.run(args)
        XCTAssertEqual(r.status, 0, r.stderr)
        let lse = try Npy.read(contentsOf: dir.appendingPathComponent("lse.npy"))
        XCTAssertEqual(Double(lse.data[0]), 0.04 * tanh(0.05 / 0.04), accuracy: 1e-7)
        r = try CLI.run(args + ["--kernel", "unified_max"])
        XCTAssertNotEqual(r.status, 0)
        XCTAssertTrue(r.stderr.contains("unified_max does not implement logit soft-capping (softcap=0.04); flash does"), r.stderr)
        r = try CLI.run(["bench", "attention", "--kernel", "sparge", "--q-len", "64", "--head-dim", "16", "--softcap", "30"])
        XCTAssertNotEqual(r.status, 0)
        XCTAssertTrue(r.stderr.contains("sparge does not implement logit soft-capping (softcap=30); flash does"), r.stderr)
        r = try CLI.run(["bench", "attention", "--kernel", "flash", "--q-len", "64", "--head-dim", "16", "--softcap", "-1"])
        XCTAssertTrue(r.stderr.contains("softcap must be 0 (none) or a finite positive cap, got -1"), r.stderr)
    }

    /// --alibi-slopes and --sinks: row 2 of each head (position 2, keys 0...2) gets the bias
    /// m_h·(j − 2) and the sink z_h in its denominator, so its LSE is ln(e^z_h + Σ e^(s_j + m_h (j − 2)));
    /// table mistakes and kernels without the modifier are one-line errors.
    func testALiBiAndSinks() throws {
        try write("q.npy", [1, 2, 3, 4]) { Float($0 % 5) * 0.1 }
        try write("k.npy", [1, 1, 3, 4]) { Float($0 % 3) * 0.2 }
        try write("v.npy", [1, 1, 3, 4]) { Float($0) }
        let args = ["kernel", "run", "--q", path("q.npy"), "--k", path("k.npy"), "--v", path("v.npy"), "--causal", "--out", path("o.npy"),
                    "--lse", path("lse.npy"), "--alibi-slopes", "0.5,0.25", "--sinks", "0.3,-1"]
        var r = try CLI.run(args)
        XCTAssertEqual(r.status, 0, r.stderr)
        let lse = try Npy.read(contentsOf: dir.appendingPathComponent("lse.npy"))
        let tables: [(slope: Double, sink: Double)] = [(0.5, 0.3), (0.25, -1.0)]
        for (h, t) in tables.enumerated() {
            var mass: Double = Foundation.exp(t.sink)
            for j in 0...2 {
                var dot = 0.0
                for d in 0..<4 {
                    let q = Double(((h * 3 + 2) * 4 + d) % 5) * 0.1, k = Double((j * 4 + d) % 3) * 0.2
                    dot += q * k
                }
                mass += Foundation.exp(0.5 * dot + t.slope * Double(j - 2))
            }
            XCTAssertEqual(Double(lse.data[h * 3 + 2]), Foundation.log(mass), accuracy: 1e-6, "head \(h)")
        }
        r = try CLI.run(Array(args.dropLast(4)) + ["--sinks", "1,2,3"])
        XCTAssertEqual(r.status, 1)
        XCTAssertTrue(r.stderr.contains("--sinks has 3 values but the problem has 2 q heads (give one per head, or one for all)"), r.stderr)
        r = try CLI.run(Array(args.dropLast(2)) + ["--sinks", "x"])
        XCTAssertTrue(r.stderr.contains("--sinks: 'x' is not a finite number"), r.stderr)
        r = try CLI.run(Array(args.dropLast(2)) + ["--alibi"])
        XCTAssertTrue(r.stderr.contains("--alibi and --alibi-slopes are exclusive"), r.stderr)
        r = try CLI.run(args + ["--kernel", "sigmoid", "--param", "bias=0"])
        XCTAssertNotEqual(r.status, 0)
        XCTAssertTrue(r.stderr.contains("kernel 'sigmoid': sigmoid does not take attention sinks"), r.stderr)
        r = try CLI.run(["bench", "attention", "--kernel", "kascade", "--q-len", "64", "--head-dim", "16", "--causal", "--alibi"])
        XCTAssertNotEqual(r.status, 0)
        XCTAssertTrue(r.stderr.contains("kascade does not implement ALiBi (alibi); flash, unified_max, sigmoid and sparge do"), r.stderr)
        let bench: [String] = ["bench", "attention", "--kernel", "flash", "--q-len", "64", "--head-dim", "16", "--causal", "--alibi",
                               "--sinks", "2", "--repeats", "1"]
        r = try CLI.run(bench)
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stdout.contains("alibi sinks=2,2,2,2,2,2,2,2"), r.stdout)
    }

    /// --document-lengths and --block-mask: with Q = 0 every visible key weighs the same, so
    /// each row's output is the mean of the V rows of its own document (or block); bad lengths,
    /// densities, files and kernels without masks are one-line errors.
    func testDocumentsAndBlockMask() throws {
        try write("q.npy", [1, 1, 4, 2]) { _ in 0 }
        try write("k.npy", [1, 1, 4, 2]) { Float($0) * 0.1 }
        try write("v.npy", [1, 1, 4, 2]) { Float($0) }
        try write("mask.npy", [2, 2]) { [1, 0, 0, 1][$0] }
        let args = ["kernel", "run", "--q", path("q.npy"), "--k", path("k.npy"), "--v", path("v.npy"), "--out", path("o.npy")]
        for masks in [["--document-lengths", "2,2"], ["--block-mask", path("mask.npy"), "--mask-block", "2"]] {
            let r = try CLI.run(args + masks)
            XCTAssertEqual(r.status, 0, r.stderr)
            XCTAssertTrue(r.stderr.contains("skipped_tiles="), r.stderr)
            let o = try Npy.read(contentsOf: dir.appendingPathComponent("o.npy"))
            XCTAssertEqual(o.data, [1, 2, 1, 2, 5, 6, 5, 6], "\(masks)")
        }
        var r = try CLI.run(args + ["--document-lengths", "2,1"])
        XCTAssertEqual(r.status, 1)
        XCTAssertTrue(r.stderr.contains("--document-lengths: document lengths 2,1 sum to 3, not to the 4 keys"), r.stderr)
        r = try CLI.run(args + ["--document-lengths", "2,x"])
        XCTAssertTrue(r.stderr.contains("--document-lengths: 'x' is not an integer"), r.stderr)
        r = try CLI.run(args + ["--block-mask", "random:1.5:1"])
        XCTAssertTrue(r.stderr.contains("--block-mask: density must be in [0, 1], got 1.5"), r.stderr)
        r = try CLI.run(args + ["--block-mask", path("mask.npy")])
        XCTAssertTrue(r.stderr.contains("has shape [2, 2], expected [1, 1] (4 keys in blocks of 64)"), r.stderr)
        r = try CLI.run(args + ["--document-lengths", "2,2", "--kernel", "prefix_shared"])
        XCTAssertTrue(r.stderr.contains("kernel 'prefix_shared': prefix_shared does not implement document or block masks (masks); "
                                        + "flash, unified_max, sigmoid and sparge do"), r.stderr)
        // sparge takes them (its blocks hidden from every row are not visible to its prediction).
        r = try CLI.run(args + ["--document-lengths", "2,2", "--kernel", "sparge"])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertEqual(try Npy.read(contentsOf: dir.appendingPathComponent("o.npy")).data, [1, 2, 1, 2, 5, 6, 5, 6])
        r = try CLI.run(["bench", "attention", "--kernel", "flash", "--q-len", "128", "--head-dim", "16", "--heads", "2", "--causal",
                         "--document-lengths", "64,64", "--param", "block_kv=64", "--repeats", "1"])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stdout.contains("causal docs=2"), r.stdout)
        // Two q tiles per head, 1 + 2 KV tiles unmasked; the second tile skips key tile 0.
        XCTAssertTrue(r.stdout.contains("masks       33.3 % of tiles skipped"), r.stdout)
    }

    /// --kv stores K and V in the format first: bf16 V rows come back rounded to 8 bits
    /// (query row 0 sees only key 0, so its output is V row 0 as stored); other kernels and
    /// unknown formats are refused with the option named.
    func testKVFormatStoresKeysAndValuesFirst() throws {
        try write("q.npy", [1, 1, 2, 4]) { Float($0 % 3) * 0.1 }
        try write("k.npy", [1, 1, 2, 4]) { Float($0 % 2) * 0.3 }
        try write("v.npy", [1, 1, 2, 4]) { [1.00390625 + 1.0 / 1024, 3, 5, 7, 0, 0, 0, 0][$0] }
        let args = ["kernel", "run", "--q", path("q.npy"), "--k", path("k.npy"), "--v", path("v.npy"), "--causal", "--out", path("o.npy")]
        var r = try CLI.run(args + ["--kv", "bf16"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let o = try Npy.read(contentsOf: dir.appendingPathComponent("o.npy"))
        XCTAssertEqual(Array(o.data[0..<4]), [1.0078125, 3, 5, 7])  // 1 + 2^-8 + 2^-10 rounds up to 1 + 2^-7
        r = try CLI.run(args + ["--kv", "int4"])
        XCTAssertNotEqual(r.status, 0)
        XCTAssertTrue(r.stderr.contains("--kv") && r.stderr.contains("f32, bf16, int8"), r.stderr)
        r = try CLI.run(args + ["--kernel", "sigmoid", "--kv", "int8"])
        XCTAssertNotEqual(r.status, 0)
        XCTAssertTrue(r.stderr.contains("reads K/V as f32 only"), r.stderr)
    }

    func testFloat64InputsAreConverted() throws {
        let doubles: [Double] = [1, 0]
        let payload = doubles.withUnsafeBytes { Data($0) }
        try npyFile(descr: "<f8", shape: "(1, 1, 1, 2)", payload: payload).write(to: dir.appendingPathComponent("q64.npy"))
        try write("k.npy", [1, 1, 2, 2]) { [1, 0, 0, 1][$0] }
        try write("v.npy", [1, 1, 2, 2]) { [10, 20, 30, 40][$0] }
        let r = try CLI.run(["kernel", "run", "--q", path("q64.npy"), "--k", path("k.npy"), "--v", path("v.npy"),
                             "--out", path("o.npy")])
        XCTAssertEqual(r.status, 0, r.stderr)
        let o = try Npy.read(contentsOf: dir.appendingPathComponent("o.npy"))
        let w = Float(1 / (1 + exp(-1 / 2.0.squareRoot())))  // softmax weight of key 0
        XCTAssertEqual(o.data[0], 10 * w + 30 * (1 - w), accuracy: 1e-4)
    }

    func assertFails(_ args: [String], mentions needle: String, file: StaticString = #filePath, line: UInt = #line) throws {
        let r = try CLI.run(args)
        XCTAssertNotEqual(r.status, 0, "expected failure for \(args)", file: file, line: line)
        XCTAssertTrue(r.stderr.contains(needle), "stderr '\(r.stderr)' should mention '\(needle)'", file: file, line: line)
        XCTAssertFalse(r.stderr.contains("Fatal error"), "crashed: \(r.stderr)", file: file, line: line)
    }

    func testBadInputsGiveOneClearError() throws {
        try write("q.npy", [1, 3, 4, 8]) { _ in 0.5 }
        try write("k.npy", [1, 2, 4, 8]) { _ in 0.5 }
        try write("v.npy", [1, 2, 4, 8]) { _ in 0.5 }
        try write("k1.npy", [1, 1, 4, 8]) { _ in 0.5 }
        try write("v1.npy", [1, 1, 4, 8]) { _ in 0.5 }
        try write("k_len.npy", [1, 1, 5, 8]) { _ in 0.5 }
        try write("q3.npy", [3, 4, 8]) { _ in 0.5 }
        try Data("hello".utf8).write(to: dir.appendingPathComponent("text.npy"))
        let good = try Data(contentsOf: dir.appendingPathComponent("k1.npy"))
        try good.prefix(good.count - 7).write(to: dir.appendingPathComponent("trunc.npy"))
        let intFile = npyFile(descr: "<i4", shape: "(1, 1, 4, 8)", payload: Data(count: 4 * 32))
        try intFile.write(to: dir.appendingPathComponent("ints.npy"))

        func args(q: String = "q.npy", k: String = "k1.npy", v: String = "v1.npy", extra: [String] = []) -> [String] {
            ["kernel", "run", "--q", path(q), "--k", path(k), "--v", path(v), "--out", path("o.npy")] + extra
        }
        try assertFails(args(k: "k.npy", v: "v.npy"), mentions: "multiple of kv heads")
        try assertFails(args(q: "text.npy"), mentions: "text.npy")
        try assertFails(args(k: "trunc.npy"), mentions: "trunc.npy")
        try assertFails(args(k: "ints.npy"), mentions: "<i4")
        try assertFails(args(k: "k_len.npy"), mentions: "k has 5 keys but v has 4")
        try assertFails(args(q: "q3.npy"), mentions: "rank 4")
        try assertFails(args(q: "missing.npy"), mentions: "missing.npy")
        try assertFails(args(extra: ["--window", "0"]), mentions: "--window")
        try assertFails(args(extra: ["--kernel", "nope"]), mentions: "unknown kernel 'nope'")
        try assertFails(args(extra: ["--param", "block_kv"]), mentions: "name=number")
        try assertFails(args(extra: ["--param", "tile=4"]), mentions: "no parameter 'tile'")
    }

    func testHelpListsEveryKernel() throws {
        for command in [["kernel", "run", "--help"], ["bench", "attention", "--help"]] {
            let r = try CLI.run(command)
            XCTAssertEqual(r.status, 0)
            XCTAssertTrue(r.stdout.contains("flash —"), r.stdout)
        }
    }
}
