import AttuneKernels
import AttuneRuntime
import Foundation

/// Everything a tuning record depends on. Two keys are equal only when the measured code,
/// the machine and the problem class are the same, so a record made elsewhere misses
/// instead of steering this machine (or running instructions it lacks).
public struct TuningKey: Codable, Sendable, Hashable {
    public static let schemaVersion = 1

    public var kernel: String
    /// Hash of the kernel's C sources and every header (`KernelSources.contentHash`).
    public var kernelSourceHash: String
    /// `ProblemSignature` of the problem class.
    public var problem: String
    /// CPU model and ISA-feature hash (`CPUFeatures.signature`).
    public var cpu: String
    public var compiler: String
    public var flags: String
    public var threads: Int
    public var schema: Int

    /// One string for the primary key: every field, in order.
    public var id: String {
        String(fnv1a([kernel, kernelSourceHash, problem, cpu, compiler, flags, String(threads), String(schema)].joined(separator: "\u{1}")), radix: 16)
    }

    /// The key for `kernel` on `problem` on this machine, with this toolchain.
    public static func current(kernel: any AttentionKernel, problem: AttentionProblem, threads: Int) throws -> TuningKey {
        let toolchain = try Toolchain.detect()
        return TuningKey(kernel: kernel.name,
                         kernelSourceHash: try KernelSources.contentHash(try KernelSources.directory(), files: kernel.cSources),
                         problem: ProblemSignature.of(problem), cpu: CPUFeatures.signature, compiler: toolchain.compilerVersion,
                         flags: (toolchain.optimizationFlags + toolchain.openMPCompileFlags).joined(separator: " "),
                         threads: threads, schema: schemaVersion)
    }
}

/// The class of problems one record serves: exact heads, head dims, batch, mask and
/// window; query and key counts rounded up to a power of two (tile choices change with
/// the order of magnitude of the lengths, not with every length).
public enum ProblemSignature {
    public static func of(_ p: AttentionProblem) -> String {
        let mask = p.causal ? "causal" : "full"
        let window = p.window.map { "w\($0)" } ?? "nowin"
        return "b\(p.batch) hq\(p.qHeads) hkv\(p.kvHeads) d\(p.qkDim) dv\(p.vDim) q\(bucket(p.qLen)) kv\(bucket(p.kvLen)) \(mask) \(window)"
    }

    /// The smallest power of two >= n (0 stays 0).
    public static func bucket(_ n: Int) -> Int {
        guard n > 1 else { return max(n, 0) }
        return 1 << (Int.bitWidth - (n - 1).leadingZeroBitCount)
    }
}

/// 64-bit FNV-1a (stable; not for security).
func fnv1a(_ s: String) -> UInt64 {
    var h: UInt64 = 0xcbf2_9ce4_8422_2325
    for b in s.utf8 { h = (h ^ UInt64(b)) &* 0x100_0000_01b3 }
    return h
}
