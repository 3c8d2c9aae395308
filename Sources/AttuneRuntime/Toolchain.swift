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
    /// this process — else `cc`); `ATTUNE_KERNELS_DIR` the kernel sources (default: the
    /// ones built into attune); the cache is `CacheLocation.prepared()`. What the
    /// generated C needs from the system (OpenBLAS, OpenMP) is checked by `SystemLibraries`.
    public static func detect() throws -> Toolchain {
        let env = ProcessInfo.processInfo.environment
        let compiler = env["CC"].flatMap { $0.isEmpty ? nil : $0 } ?? (which("clang") != nil ? "clang" : "cc")
        guard which(compiler) != nil else {
            throw RuntimeError("C compiler '\(compiler)' not found; install the Debian package clang or gcc, or set CC")
        }
        let version = try run([compiler, "--version"]).split(separator: "\n").first.map(String.init) ?? compiler
        let isGCC = !version.lowercased().contains("clang")
        var ompCompile = ["-fopenmp"], ompLink = ["-fopenmp"]
        if !isGCC, let omp = OpenMPLocation.find() {
            ompCompile += ["-I\(omp.include)"]
            ompLink = ["-fopenmp", "-L\(omp.lib)", "-Wl,-rpath,\(omp.lib)"]
        }
        let cache = try CacheLocation.prepared(env)
        let toolchain = Toolchain(compiler: compiler, compilerVersion: version,
                                  optimizationFlags: ["-O3", "-march=native", "-ffp-contract=fast", "-fno-math-errno", "-fPIC"],
                                  openMPCompileFlags: ompCompile, openMPLinkFlags: ompLink,
                                  kernelsDirectory: try KernelSources.directory(cache: cache), cacheDirectory: cache)
        try SystemLibraries.check(toolchain, isGCC: isGCC)
        return toolchain
    }

    /// Layout and writer of the module cache. Part of every cache key: a change to how
    /// cached files are written (e.g. the chunked writer that replaced single writes which
    /// truncated files over 2 GiB; the four-chain payload checksum) never reuses what an
    /// older writer left.
    static let cacheFormat = "modules-v3"

    /// Builds `module` into a shared library, or returns the cached one after checking it
    /// against the checksum recorded when it was built; a damaged cached library is
    /// reported on stderr and rebuilt. Returns the library path and whether it came from
    /// the cache. Weights are not part of it: they come through a weights manifest.
    public func build(_ module: EmittedModule) throws -> (library: URL, cached: Bool) {
        let sourcesHash = try KernelSources.contentHash(kernelsDirectory, files: module.kernelSources)
        let key = CEmitter.fnv1a([Self.cacheFormat, module.source, module.header, sourcesHash, compilerVersion,
                                  (optimizationFlags + openMPCompileFlags + openMPLinkFlags).joined(separator: " "),
                                  CPUFeatures.signature].joined(separator: "\u{0}"))
        let dir = cacheDirectory.appendingPathComponent("modules/\(module.name)-\(String(key, radix: 16))")
        let library = dir.appendingPathComponent("lib\(module.name).so")
        let sums = dir.appendingPathComponent("payload.sum")
        let fm = FileManager.default
        if fm.fileExists(atPath: dir.path) {
            if let problem = Self.damage(library, sums) {
                FileHandle.standardError.write(Data("attune: cached module \(dir.path) is damaged (\(problem)); rebuilding it\n".utf8))
                try? fm.removeItem(at: dir)
            } else {
                return (library, true)
            }
        }

        let tmp = cacheDirectory.appendingPathComponent("tmp/\(UUID().uuidString)")
        try fm.createDirectory(at: tmp, withIntermediateDirectories: true)
        defer { try? fm.removeItem(at: tmp) }
        let source = tmp.appendingPathComponent("\(module.name).c"), object = tmp.appendingPathComponent("\(module.name).o")
        try module.source.write(to: source, atomically: true, encoding: .utf8)
        try module.header.write(to: tmp.appendingPathComponent("\(module.name).h"), atomically: true, encoding: .utf8)
        // The model's C compiles beside any kernel object not cached yet.
        let kernels = try kernelObjects(module.kernelSources, alongside: (source, object, tmp))
        let out = tmp.appendingPathComponent("lib\(module.name).so")
        _ = try Toolchain.run([compiler] + optimizationFlags + openMPCompileFlags + ["-shared", object.path] +
            kernels.map(\.path) + ["-o", out.path] + openMPLinkFlags + ["-lopenblas", "-lm"])
        try fm.removeItem(at: object)
        let (size, hash) = try PayloadFile.hash(ofFileAt: out)
        try PayloadFile.write(Data("\(library.lastPathComponent) \(size) \(WeightsManifest.hex(hash))\n".utf8),
                              to: tmp.appendingPathComponent(sums.lastPathComponent))
        // Publish the finished folder in one rename, so a concurrent build never sees half of it.
        try fm.createDirectory(at: dir.deletingLastPathComponent(), withIntermediateDirectories: true)
        if (try? fm.moveItem(at: tmp, to: dir)) == nil, !fm.fileExists(atPath: library.path) {
            throw RuntimeError("cannot move the build into \(dir.path)")
        }
        return (library, false)
    }

    /// Why the cached `library` does not match its recorded size and checksum, or nil.
    public static func damage(_ library: URL, _ sums: URL) -> String? {
        guard let record = try? String(contentsOf: sums, encoding: .utf8) else { return "no payload.sum" }
        let fields = record.split(separator: " ").map { $0.trimmingCharacters(in: .whitespacesAndNewlines) }
        guard fields.count == 3, fields[0] == library.lastPathComponent, let size = Int(fields[1]) else { return "payload.sum unreadable" }
        guard let actual = try? PayloadFile.hash(ofFileAt: library) else { return "\(library.lastPathComponent) missing" }
        if actual.size != size { return "\(library.lastPathComponent) has \(actual.size) bytes, \(size) were written" }
        if WeightsManifest.hex(actual.hash) != fields[2] { return "\(library.lastPathComponent) checksum differs from the one recorded" }
        return nil
    }

    /// Objects of the given `Kernels/` files, each compiled once per (its source, the
    /// headers, compiler, flags, CPU) and cached; missing ones compile concurrently, with
    /// the model's own source (`alongside`) in the same batch.
    func kernelObjects(_ files: [String], alongside model: (source: URL, object: URL, includes: URL)) throws -> [URL] {
        let fm = FileManager.default
        let headers = try KernelSources.contentHash(kernelsDirectory, files: [])
        let flags = (optimizationFlags + openMPCompileFlags).joined(separator: " ")
        let include = ["-I", kernelsDirectory.appendingPathComponent("include").path, "-I", kernelsDirectory.path]
        var objects: [URL] = []
        var jobs: [[String]] = [[compiler] + optimizationFlags + openMPCompileFlags + include +
                                ["-I", model.includes.path, "-c", model.source.path, "-o", model.object.path]]
        var publish: [(URL, URL)] = []
        for file in files {
            let source = kernelsDirectory.appendingPathComponent(file)
            let text = try String(contentsOf: source, encoding: .utf8)
            let key = CEmitter.fnv1a([file, text, headers, compilerVersion, flags, CPUFeatures.signature].joined(separator: "\u{0}"))
            let cached = cacheDirectory.appendingPathComponent("kernels/\(source.deletingPathExtension().lastPathComponent)-\(String(key, radix: 16)).o")
            objects.append(cached)
            if fm.fileExists(atPath: cached.path) { continue }
            let fresh = model.includes.appendingPathComponent(cached.lastPathComponent)
            jobs.append([compiler] + optimizationFlags + openMPCompileFlags + include + ["-c", source.path, "-o", fresh.path])
            publish.append((fresh, cached))
        }
        let failures = FailureBox()
        let commands = jobs
        DispatchQueue.concurrentPerform(iterations: commands.count) { i in
            do { _ = try Toolchain.run(commands[i]) } catch { failures.record(error) }
        }
        if let error = failures.first { throw error }
        try fm.createDirectory(at: cacheDirectory.appendingPathComponent("kernels"), withIntermediateDirectories: true)
        for (fresh, cached) in publish where !fm.fileExists(atPath: cached.path) {
            // A concurrent build may have published the same object: either copy is right.
            if (try? fm.moveItem(at: fresh, to: cached)) == nil, !fm.fileExists(atPath: cached.path) {
                throw RuntimeError("cannot store \(cached.path)")
            }
        }
        return objects
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
    public static func run(_ argv: [String]) throws -> String {
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
