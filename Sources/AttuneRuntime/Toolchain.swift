import AttuneCodegen
import Foundation

/// The system C compiler as Attune drives it: which compiler, which flags, where the
/// kernel sources and OpenMP are, and a build cache keyed by everything that can change
/// the machine code (source, compiler and version, flags, CPU features).
public struct Toolchain: Sendable {
    public var compiler: String
    public var compilerVersion: String
    public var optimizationFlags: [String]
    public var openMPCompileFlags: [String]
    public var openMPLinkFlags: [String]
    public var kernelsDirectory: URL
    public var cacheDirectory: URL

    /// Finds everything or throws a message saying what is missing and how to provide it.
    /// `CC` picks the compiler (default: `clang` when on PATH — the same OpenMP runtime as
    /// this process — else `cc`); `ATTUNE_KERNELS_DIR` the kernel sources;
    /// `ATTUNE_CACHE_DIR` the cache (default `~/.cache/attune`).
    public static func detect() throws -> Toolchain {
        let env = ProcessInfo.processInfo.environment
        let compiler = env["CC"] ?? (which("clang") != nil ? "clang" : "cc")
        guard which(compiler) != nil || FileManager.default.isExecutableFile(atPath: compiler) else {
            throw RuntimeError("C compiler '\(compiler)' not found; install clang or gcc, or set CC")
        }
        let version = try run([compiler, "--version"]).split(separator: "\n").first.map(String.init) ?? compiler
        let isGCC = !version.lowercased().contains("clang")
        var ompCompile = ["-fopenmp"], ompLink = ["-fopenmp"]
        if !isGCC, let omp = OpenMPLocation.find() {
            ompCompile += ["-I\(omp.include)"]
            ompLink = ["-fopenmp", "-L\(omp.lib)", "-Wl,-rpath,\(omp.lib)"]
        }
        let cache = env["ATTUNE_CACHE_DIR"].map { URL(fileURLWithPath: $0) }
            ?? FileManager.default.homeDirectoryForCurrentUser.appendingPathComponent(".cache/attune")
        return Toolchain(compiler: compiler, compilerVersion: version,
                         optimizationFlags: ["-O3", "-march=native", "-ffp-contract=fast", "-fno-math-errno", "-fPIC"],
                         openMPCompileFlags: ompCompile, openMPLinkFlags: ompLink,
                         kernelsDirectory: try KernelSources.directory(), cacheDirectory: cache)
    }

    /// Builds `module` into a shared library (or returns the cached one) and writes its
    /// weights file next to it. Returns the library path and whether it came from the cache.
    public func build(_ module: EmittedModule) throws -> (library: URL, weights: URL, cached: Bool) {
        let kernelHash = try KernelSources.contentHash(kernelsDirectory)
        let key = CEmitter.fnv1a([module.source, module.header, kernelHash, compilerVersion,
                                  (optimizationFlags + openMPCompileFlags + openMPLinkFlags).joined(separator: " "),
                                  CPUFeatures.signature].joined(separator: "\u{0}"))
        let dir = cacheDirectory.appendingPathComponent("modules/\(module.name)-\(String(key, radix: 16))")
        let library = dir.appendingPathComponent("lib\(module.name).so")
        let weights = dir.appendingPathComponent("weights.bin")
        let fm = FileManager.default
        if fm.fileExists(atPath: library.path), fm.fileExists(atPath: weights.path) { return (library, weights, true) }

        let tmp = cacheDirectory.appendingPathComponent("tmp/\(UUID().uuidString)")
        try fm.createDirectory(at: tmp, withIntermediateDirectories: true)
        defer { try? fm.removeItem(at: tmp) }
        try module.source.write(to: tmp.appendingPathComponent("\(module.name).c"), atomically: true, encoding: .utf8)
        try module.header.write(to: tmp.appendingPathComponent("\(module.name).h"), atomically: true, encoding: .utf8)
        let archive = try kernelArchive(hash: kernelHash)
        let out = tmp.appendingPathComponent("lib\(module.name).so")
        _ = try Toolchain.run([compiler] + optimizationFlags + openMPCompileFlags +
            ["-shared", "-I", kernelsDirectory.appendingPathComponent("include").path, "-I", tmp.path,
             tmp.appendingPathComponent("\(module.name).c").path, archive.path, "-o", out.path] +
            openMPLinkFlags + ["-lopenblas", "-lm"])
        try Data(module.weightsFile).write(to: tmp.appendingPathComponent("weights.bin"))
        try module.source.write(to: tmp.appendingPathComponent("\(module.name).c"), atomically: true, encoding: .utf8)
        // Publish the finished folder in one rename, so a concurrent build never sees half of it.
        try fm.createDirectory(at: dir.deletingLastPathComponent(), withIntermediateDirectories: true)
        if (try? fm.moveItem(at: tmp, to: dir)) == nil, !fm.fileExists(atPath: library.path) {
            throw RuntimeError("cannot move the build into \(dir.path)")
        }
        return (library, weights, false)
    }

    /// Kernels/*.c compiled once per (sources, compiler, flags) into a static archive.
    func kernelArchive(hash kernelHash: String) throws -> URL {
        let key = CEmitter.fnv1a([kernelHash, compilerVersion, (optimizationFlags + openMPCompileFlags).joined(separator: " "),
                                  CPUFeatures.signature].joined(separator: "\u{0}"))
        let dir = cacheDirectory.appendingPathComponent("kernels/\(String(key, radix: 16))")
        let archive = dir.appendingPathComponent("libattune_kernels.a")
        let fm = FileManager.default
        if fm.fileExists(atPath: archive.path) { return archive }
        let tmp = cacheDirectory.appendingPathComponent("tmp/\(UUID().uuidString)")
        try fm.createDirectory(at: tmp, withIntermediateDirectories: true)
        defer { try? fm.removeItem(at: tmp) }
        // Compile the kernel files side by side: flash.c alone takes about 2 s.
        let sources = try KernelSources.moduleCFiles(kernelsDirectory)
        let objects = sources.map { tmp.appendingPathComponent($0.deletingPathExtension().lastPathComponent + ".o").path }
        let failures = FailureBox()
        DispatchQueue.concurrentPerform(iterations: sources.count) { i in
            do {
                _ = try Toolchain.run([compiler] + optimizationFlags + openMPCompileFlags +
                    ["-I", kernelsDirectory.appendingPathComponent("include").path, "-I", kernelsDirectory.path,
                     "-c", sources[i].path, "-o", objects[i]])
            } catch {
                failures.record(error)
            }
        }
        if let error = failures.first { throw error }
        _ = try Toolchain.run(["ar", "rcs", tmp.appendingPathComponent("libattune_kernels.a").path] + objects)
        try fm.createDirectory(at: dir.deletingLastPathComponent(), withIntermediateDirectories: true)
        if (try? fm.moveItem(at: tmp, to: dir)) == nil, !fm.fileExists(atPath: archive.path) {
            throw RuntimeError("cannot move the kernel build into \(dir.path)")
        }
        return archive
    }

    static func which(_ name: String) -> String? {
        if name.contains("/") { return FileManager.default.isExecutableFile(atPath: name) ? name : nil }
        for dir in (ProcessInfo.processInfo.environment["PATH"] ?? "").split(separator: ":") {
            let path = "\(dir)/\(name)"
            if FileManager.default.isExecutableFile(atPath: path) { return path }
        }
        return nil
    }

    /// Runs a command; its stdout on success, an error with its stderr otherwise.
    @discardableResult
    static func run(_ argv: [String]) throws -> String {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = argv
        let out = Pipe(), err = Pipe()
        p.standardOutput = out
        p.standardError = err
        try p.run()
        let o = out.fileHandleForReading.readDataToEndOfFile()
        let e = err.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        guard p.terminationStatus == 0 else {
            let tail = String(decoding: e, as: UTF8.self).split(separator: "\n").prefix(20).joined(separator: "\n")
            throw RuntimeError("\(argv.first ?? "") failed (exit \(p.terminationStatus)): \(tail)")
        }
        return String(decoding: o, as: UTF8.self)
    }
}

/// Collects the first error of concurrent work.
private final class FailureBox: @unchecked Sendable {
    private let lock = NSLock()
    private var errors: [Error] = []
    func record(_ e: Error) { lock.lock(); errors.append(e); lock.unlock() }
    var first: Error? { lock.lock(); defer { lock.unlock() }; return errors.first }
}

public struct RuntimeError: Error, CustomStringConvertible, Equatable {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}
