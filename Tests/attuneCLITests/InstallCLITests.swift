import Foundation
import XCTest

/// `attune` as installed: a copy of the binary in its own folder, run from elsewhere, with
/// no source tree to find kernels in; the cache folder's lookup order and its errors; the
/// run-time requirement checks.
final class InstallCLITests: XCTestCase {
    static let sourceRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()
    let llama = sourceRoot.appendingPathComponent("Tests/Fixtures/models/llama")

    /// The test process's environment without any variable that picks Attune's folders.
    func cleanEnvironment(_ extra: [String: String] = [:]) -> [String: String] {
        var env = ProcessInfo.processInfo.environment
        for name in ["ATTUNE_KERNELS_DIR", "ATTUNE_CACHE_DIR", "XDG_CACHE_HOME", "ATTUNE_OMP_INCLUDE", "ATTUNE_OMP_LIB", "CC"] {
            env[name] = nil
        }
        return env.merging(extra) { $1 }
    }

    func testCopiedBinaryRunsFromAnyFolderWithEmbeddedKernels() throws {
        let dir = try CLI.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let fm = FileManager.default
        let binary = dir.appendingPathComponent("bin/attune"), elsewhere = dir.appendingPathComponent("elsewhere")
        try fm.createDirectory(at: binary.deletingLastPathComponent(), withIntermediateDirectories: true)
        try fm.createDirectory(at: elsewhere, withIntermediateDirectories: true)
        try fm.copyItem(at: CLI.binary, to: binary)
        try fm.copyItem(at: llama, to: dir.appendingPathComponent("llama"))
        let cache = dir.appendingPathComponent("cache")

        let golden = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: llama.appendingPathComponent("golden.json"))) as? [String: Any])
        let sequence = try XCTUnwrap((golden["sequences"] as? [[String: Any]])?.first)
        let prompt = try XCTUnwrap(sequence["input_ids"] as? [Int]), expected = try XCTUnwrap(sequence["greedy_new_ids"] as? [Int])
        let r = try CLI.run(["run", "../llama", "--tokens", prompt.map(String.init).joined(separator: ","),
                             "--max-new-tokens", "\(expected.count)", "--json"],
                            executable: binary, environment: cleanEnvironment(["ATTUNE_CACHE_DIR": cache.path]), directory: elsewhere)
        XCTAssertEqual(r.status, 0, r.stderr)
        let last = r.stdout.split(separator: "\n").last.map(String.init) ?? ""
        let json = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(last.utf8)) as? [String: Any], last)
        XCTAssertEqual(json["generated"] as? [Int], expected, "transformers' greedy ids (golden.json)")

        // The kernels came from the binary: one unpacked folder, byte for byte Kernels/.
        let unpacked = try fm.contentsOfDirectory(atPath: cache.appendingPathComponent("kernel-sources").path)
        XCTAssertEqual(unpacked.count, 1, "\(unpacked)")
        let folder = cache.appendingPathComponent("kernel-sources/\(unpacked[0])")
        XCTAssertEqual(try Self.kernelFiles(folder), try Self.kernelFiles(Self.sourceRoot.appendingPathComponent("Kernels")))
        XCTAssertEqual(try fm.contentsOfDirectory(atPath: cache.appendingPathComponent("tmp").path), [], "no temporary folder left behind")
    }

    /// Path (relative to the folder) → bytes, for every *.c, *.h and include/*.h.
    static func kernelFiles(_ dir: URL) throws -> [String: Data] {
        var out: [String: Data] = [:]
        for (sub, exts) in [("", ["c", "h"]), ("include/", ["h"])] {
            for name in try FileManager.default.contentsOfDirectory(atPath: dir.appendingPathComponent(sub).path)
            where exts.contains((name as NSString).pathExtension) {
                out[sub + name] = try Data(contentsOf: dir.appendingPathComponent(sub + name))
            }
        }
        return out
    }

    /// `compile --emit c` needs the toolchain and the kernel sources but builds nothing:
    /// the cheapest command that uses the cache folder.
    func emitC(_ dir: URL, _ env: [String: String]) throws -> CLIResult {
        try CLI.run(["compile", llama.path, "-o", dir.appendingPathComponent("out-\(UUID().uuidString)").path, "--emit", "c"],
                    environment: cleanEnvironment(env), directory: dir)
    }

    func testCacheFolderIsAttuneCacheDirThenXDGThenHome() throws {
        let dir = try CLI.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let a = dir.appendingPathComponent("a"), xdg = dir.appendingPathComponent("xdg"), home = dir.appendingPathComponent("home")
        let cases: [([String: String], URL)] = [
            (["ATTUNE_CACHE_DIR": a.path, "XDG_CACHE_HOME": xdg.path, "HOME": home.path], a),
            (["XDG_CACHE_HOME": xdg.path, "HOME": home.path], xdg.appendingPathComponent("attune")),
            (["XDG_CACHE_HOME": "", "HOME": home.path], home.appendingPathComponent(".cache/attune")),
            (["XDG_CACHE_HOME": "relative/not/allowed", "HOME": home.path], home.appendingPathComponent(".cache/attune")),
        ]
        for (env, expected) in cases {
            for root in [a, xdg, home] { try? FileManager.default.removeItem(at: root) }
            let r = try emitC(dir, env)
            XCTAssertEqual(r.status, 0, "\(env): \(r.stderr)")
            let used = [a, xdg, home].flatMap { root in
                FileManager.default.enumerator(atPath: root.path)?.compactMap { $0 as? String }
                    .filter { $0.hasSuffix("kernel-sources") }.map { root.appendingPathComponent($0).deletingLastPathComponent().path } ?? []
            }
            XCTAssertEqual(used, [expected.path], "\(env)")
        }
    }

    func testUnusableCacheFolderIsOneLineNamingPathAndVariable() throws {
        let dir = try CLI.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        // A file where a folder must go: fails for root too, unlike a chmod.
        let file = dir.appendingPathComponent("a-file")
        try Data().write(to: file)
        let cases: [([String: String], [String])] = [
            (["ATTUNE_CACHE_DIR": file.appendingPathComponent("cache").path], ["\(file.path)/cache", "is a file, not a folder", "set ATTUNE_CACHE_DIR"]),
            (["XDG_CACHE_HOME": file.path], ["\(file.path)/attune", "from $XDG_CACHE_HOME", "set ATTUNE_CACHE_DIR"]),
            (["HOME": file.path], ["\(file.path)/.cache/attune", "from $HOME", "set ATTUNE_CACHE_DIR"]),
        ]
        for (env, needles) in cases {
            let r = try emitC(dir, env)
            XCTAssertNotEqual(r.status, 0, "\(env)")
            let message = r.stderr.trimmingCharacters(in: .whitespacesAndNewlines)
            XCTAssertFalse(message.contains("\n"), "one line: \(message)")
            for needle in needles { XCTAssertTrue(message.contains(needle), "\(env): '\(message)' should mention '\(needle)'") }
        }
    }

    /// Each missing requirement names the Debian package that provides it. Missing
    /// libraries are simulated: OpenMP through ATTUNE_OMP_* pointing at an empty folder,
    /// OpenBLAS through a compiler wrapper whose include path shadows cblas.h with an #error.
    func testMissingRequirementsNameTheirDebianPackage() throws {
        let dir = try CLI.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let fm = FileManager.default
        let empty = dir.appendingPathComponent("empty"), fake = dir.appendingPathComponent("fake-include")
        try fm.createDirectory(at: empty, withIntermediateDirectories: true)
        try fm.createDirectory(at: fake, withIntermediateDirectories: true)
        try "#error \"no OpenBLAS here\"\n".write(to: fake.appendingPathComponent("cblas.h"), atomically: true, encoding: .utf8)
        let wrapper = dir.appendingPathComponent("clang-without-openblas")
        try "#!/bin/sh\nexec clang -I\(fake.path) \"$@\"\n".write(to: wrapper, atomically: true, encoding: .utf8)
        try fm.setAttributes([.posixPermissions: 0o755], ofItemAtPath: wrapper.path)
        let cache = dir.appendingPathComponent("cache").path
        let cases: [([String: String], [String])] = [
            (["CC": dir.appendingPathComponent("no-such-cc").path], ["no-such-cc", "not found", "Debian package clang or gcc"]),
            (["CC": "clang", "ATTUNE_OMP_INCLUDE": empty.path, "ATTUNE_OMP_LIB": empty.path], ["OpenMP", "Debian package libomp-dev", "omp.h"]),
            (["CC": wrapper.path], ["OpenBLAS", "Debian package libopenblas-dev", "no OpenBLAS here"]),
        ]
        for (env, needles) in cases {
            let r = try emitC(dir, env.merging(["ATTUNE_CACHE_DIR": cache]) { $1 })
            XCTAssertNotEqual(r.status, 0, "\(env)")
            let message = r.stderr.trimmingCharacters(in: .whitespacesAndNewlines)
            XCTAssertFalse(message.contains("\n"), "one line: \(message)")
            for needle in needles { XCTAssertTrue(message.contains(needle), "\(env): '\(message)' should mention '\(needle)'") }
        }
        // Nothing failed is remembered: the next run with a working toolchain probes and passes.
        XCTAssertEqual(try emitC(dir, ["ATTUNE_CACHE_DIR": cache]).status, 0)
        XCTAssertEqual(try fm.contentsOfDirectory(atPath: "\(cache)/probes").count, 1)
    }
}
