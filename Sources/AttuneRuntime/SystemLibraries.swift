import AttuneCodegen
import Foundation

/// What generated modules need from the system besides the compiler: OpenBLAS (`cblas.h`,
/// `libopenblas`) and an OpenMP runtime (`omp.h` and libomp for clang, libgomp for gcc).
/// Each is checked by compiling, linking and running a tiny program with the toolchain's
/// own flags — what the compiler really finds, not a guess at where Debian puts files —
/// and a pass is remembered in the cache under a key of compiler and flags, so this costs
/// one `stat` after the first run.
enum SystemLibraries {
    struct Requirement {
        var name: String
        var program: String
        var flags: [String]
        var remedy: String
    }

    static func requirements(_ toolchain: Toolchain, isGCC: Bool) -> [Requirement] {
        [
            Requirement(
                name: "OpenBLAS (cblas.h, libopenblas)",
                program: """
                #include <cblas.h>
                int main(void) { float a = 2, b = 3, c = 0; cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, 1, 1, 1, 1, &a, 1, &b, 1, 0, &c, 1); return c != 6; }
                """,
                flags: ["-lopenblas"],
                remedy: "install the Debian package libopenblas-dev"),
            Requirement(
                name: "OpenMP (omp.h and its runtime)",
                program: """
                #include <omp.h>
                int main(void) { return omp_get_max_threads() < 1; }
                """,
                flags: toolchain.openMPCompileFlags + toolchain.openMPLinkFlags,
                remedy: isGCC ? "reinstall the Debian package gcc (it brings libgomp), or set CC=clang with libomp-dev"
                              : "install the Debian package libomp-dev (or set ATTUNE_OMP_INCLUDE and ATTUNE_OMP_LIB), or set CC=gcc"),
        ]
    }

    static func check(_ toolchain: Toolchain, isGCC: Bool) throws {
        let fm = FileManager.default
        let requirements = requirements(toolchain, isGCC: isGCC)
        let key = CEmitter.fnv1a(([toolchain.compiler, toolchain.compilerVersion]
                                  + requirements.flatMap { [$0.program] + $0.flags }).joined(separator: "\u{0}"))
        let stamp = toolchain.cacheDirectory.appendingPathComponent("probes/\(String(key, radix: 16)).ok")
        if fm.fileExists(atPath: stamp.path) { return }

        let tmp = toolchain.cacheDirectory.appendingPathComponent("tmp/probe-\(UUID().uuidString)")
        try fm.createDirectory(at: tmp, withIntermediateDirectories: true)
        defer { try? fm.removeItem(at: tmp) }
        var missing: [String] = []
        for (i, r) in requirements.enumerated() {
            let source = tmp.appendingPathComponent("probe\(i).c"), exe = tmp.appendingPathComponent("probe\(i)")
            try r.program.write(to: source, atomically: true, encoding: .utf8)
            do {
                try Toolchain.run([toolchain.compiler, source.path, "-o", exe.path] + r.flags)
                try Toolchain.run([exe.path])
            } catch {
                let said = diagnosis(error).map { " (\($0))" } ?? ""
                missing.append("\(r.name) not usable with \(toolchain.compiler): \(r.remedy)\(said)")
            }
        }
        guard missing.isEmpty else { throw RuntimeError(missing.joined(separator: "\n")) }
        try fm.createDirectory(at: stamp.deletingLastPathComponent(), withIntermediateDirectories: true)
        try Data().write(to: stamp, options: .atomic)
    }

    /// The compiler's, linker's or loader's own words, without the temporary file paths
    /// before them: "error: 'cblas.h' file not found", "cannot find -lopenblas: ...".
    static func diagnosis(_ error: Error) -> String? {
        let text = (error as? RuntimeError)?.message ?? "\(error)"
        for marker in ["cannot find", "error while loading", "error:"] {
            for line in text.split(separator: "\n") {
                if let r = line.range(of: marker) { return String(line[r.lowerBound...]) }
            }
        }
        return nil
    }
}
