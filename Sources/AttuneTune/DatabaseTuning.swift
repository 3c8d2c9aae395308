import AttuneIR
import AttuneKernels
import AttunePasses
import AttuneRuntime
import Foundation

/// The tuning database as `attune compile` reads it: for a rule-chosen kernel on a
/// problem, the record made on this machine with this toolchain, if any.
public struct DatabaseTuning: TunedKernelSource {
    let database: TuningDatabase
    /// The key's machine and toolchain fields, read once.
    let template: TuningKey
    /// Each kernel's source hash, read once (a lookup per attention node must not re-read
    /// every header).
    let sourceHashes: [String: String]

    public init(_ database: TuningDatabase) throws {
        self.database = database
        template = try TuningKey.current(kernel: FlashKernel(), problem: AttentionProblem(qHeads: 1, qLen: 1, kvLen: 1, qkDim: 16),
                                         threads: Tuner.defaultThreads)
        let dir = try KernelSources.directory()
        sourceHashes = try Dictionary(uniqueKeysWithValues: KernelRegistry.all.map { ($0.name, try KernelSources.contentHash(dir, files: $0.cSources)) })
    }

    public func tuned(kernel: String, problem: AttentionProblem) -> (parameters: KernelParameters, reason: String)? {
        guard let sourceHash = sourceHashes[kernel] else { return nil }
        var key = template
        key.kernel = kernel
        key.kernelSourceHash = sourceHash
        key.problem = ProblemSignature.of(problem)
        guard let r = try? database.record(for: key) else { return nil }
        let times = "\(String(format: "%.3f", r.medianMs)) ms vs defaults \(String(format: "%.3f", r.defaultMs)) ms, A/A noise \(String(format: "%.1f", 100 * r.noise)) %"
        if r.better {
            return (r.parameters, "tuned: record \(r.key.id), \(String(format: "%.2f", r.speedup))x the defaults (\(times))")
        }
        return ([:], KernelBinding.rulePrefix + "exact softmax → \(kernel); tuning record \(r.key.id) kept the defaults (\(times))")
    }
}
