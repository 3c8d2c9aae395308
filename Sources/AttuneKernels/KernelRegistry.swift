/// Every attention kernel Attune ships, by name. The CLI's `--help`, the test harness and
/// the benchmarks enumerate this list, so a kernel added here appears everywhere.
public enum KernelRegistry {
    public static let all: [any AttentionKernel] = [
        FlashKernel(),
        PrefixSharedKernel(),
        UnifiedMaxKernel(),
        SigmoidKernel(),
        HybridKernel(),
        SpargeKernel(),
        KascadeKernel(),
    ]

    /// The exact softmax kernel the selection rules bind by default, and the baseline the
    /// tuner measures every candidate against.
    public static let exactDefault: any AttentionKernel = FlashKernel()

    public static var names: [String] { all.map(\.name) }

    public static func kernel(named name: String) throws -> any AttentionKernel {
        guard let kernel = all.first(where: { $0.name == name }) else {
            throw KernelError("unknown kernel '\(name)'; available: \(names.joined(separator: ", "))")
        }
        return kernel
    }

    /// "flash (exact): tiled online-softmax ..." lines for help texts.
    public static var helpText: String {
        all.map { "\($0.name)\($0.isExact ? "" : " (approximate)"): \($0.summary)" }.joined(separator: "\n")
    }
}
