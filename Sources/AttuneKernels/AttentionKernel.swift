import AttuneTensor

/// A kernel's tunable parameter: its name, what it does, the default and the values worth trying.
public struct KernelParameter: Sendable, Equatable {
    public var name: String
    public var summary: String
    /// The value used when a caller gives none; 0 often means "choose from the shape".
    public var defaultValue: Double
    /// Candidate values for the tuner.
    public var candidates: [Double]
    public var isInteger: Bool
    /// Values outside it are refused before any work; nil = anything C can take.
    public var validRange: ClosedRange<Double>?
    /// Names users may type for values (`precision=bf16` for 1); numbers work too.
    public var valueNames: [String: Double]
    /// A switch changes what is computed or measured (a role, a file-backed tier, a model
    /// constant, the thread count), not how fast the same thing runs: the tuner never
    /// varies it, and a value fixed for it becomes part of the tuning key.
    public var isSwitch: Bool

    public init(name: String, summary: String, defaultValue: Double, candidates: [Double], isInteger: Bool = true,
                validRange: ClosedRange<Double>? = nil, valueNames: [String: Double] = [:], isSwitch: Bool = false) {
        self.name = name
        self.summary = summary
        self.defaultValue = defaultValue
        self.candidates = candidates
        self.isInteger = isInteger
        self.validRange = validRange
        self.valueNames = valueNames
        self.isSwitch = isSwitch
    }

    /// The `precision` of kernels whose prefill tiles can run in bf16 (flash, sparge).
    public static let precision = KernelParameter(
        name: "precision", summary: "prefill tiles' Q.K^T and P.V: f32 (0, exact) or bf16 (1: bf16 operands, f32 sums and softmax; approximate, Docs/NUMERICS.md)",
        defaultValue: 0, candidates: [], validRange: 0...1, valueNames: ["f32": 0, "bf16": 1])

    /// flash's `precision`: the values above and int8qk (2), SageAttention-style int8 Q·Kᵀ.
    public static let precisionWithInt8QK = KernelParameter(
        name: "precision", summary: "prefill tiles' arithmetic: f32 (0, exact), bf16 (1: bf16 Q.K^T and P.V) or int8qk (2: int8 Q.K^T "
            + "of smoothed K with per-row/per-key scales, bf16 P.V); f32 sums and softmax; approximate, Docs/NUMERICS.md",
        defaultValue: 0, candidates: [], validRange: 0...2, valueNames: ["f32": 0, "bf16": 1, "int8qk": 2])

    /// Most thread counts Attune accepts: OpenMP tries to start what it is asked for, and
    /// 100 000 threads hang the machine.
    public static let maxThreads = 1024

    /// The OpenMP thread count every kernel takes.
    public static let threads = KernelParameter(name: "threads", summary: "OpenMP threads (0 = all)", defaultValue: 0, candidates: [0],
                                                validRange: 0...Double(maxThreads), isSwitch: true)
}

public enum KernelNormalizer: String, Sendable {
    case softmax, sigmoid
}

/// Named parameter values for one kernel invocation, e.g. `block_kv=128`.
public typealias KernelParameters = [String: Double]

/// `block_kv=128 bias=-7.62`: whole numbers without a fraction, others as written.
public func describeParameters(_ p: KernelParameters, separator: String = " ") -> String {
    p.sorted { $0.key < $1.key }.map { key, value in "\(key)=\(describeParameterValue(value))" }.joined(separator: separator)
}

/// `128`, `-7.62`: whole numbers without a fraction.
public func describeParameterValue(_ value: Double) -> String {
    value.rounded() == value && abs(value) < 1e15 ? String(Int(value)) : String(value)
}

/// Counters a kernel reports about one call, by name.
public typealias KernelRunStats = [String: Double]

/// The result of one attention call.
public struct AttentionOutput: Sendable {
    public var o: Tensor
    /// Natural-log LSE per row; kernels without a softmax denominator (sigmoid) write 0.
    public var lse: Tensor
    public var stats: KernelRunStats = [:]
}

/// An attention kernel as the rest of Attune sees it: a value with a name, a numerical
/// contract, the problems it accepts and the parameters it exposes.
public protocol AttentionKernel: Sendable {
    /// The name users type (`--kernel flash`).
    var name: String { get }
    /// One line for `--help` and `inspect`.
    var summary: String { get }
    /// True when the kernel computes softmax attention to fp32 rounding at its defaults.
    var isExact: Bool { get }
    /// Whether it still is with these parameter values (`precision=bf16` is not).
    func isExact(with parameters: KernelParameters) -> Bool
    /// True when one layer's call depends on another layer's (kascade's shared key
    /// selections): such a kernel cannot be chosen layer by layer or for one phase alone.
    var linksLayers: Bool { get }
    /// The parameter a calibration supplies per q head as a table (`unified_max`'s
    /// `phi`, from `attune calibrate`), or nil when the kernel needs no calibration.
    var calibratedTable: String? { get }
    /// True when the kernel only recombines another registered kernel's calls
    /// (prefix_shared: flash over the prefix and each suffix, merged by LSE): `attune check`
    /// holds it to its contract but leaves determinism and captured inputs to its parts.
    var isComposition: Bool { get }
    /// The parameters `attune check` and the contract tests run the kernel with on
    /// `problem`, beyond its defaults (what it needs to run at all: prefix_shared's
    /// `prefix_len`; a setting of the family's range: sigmoid's `bias`); nil when they
    /// cannot choose ones the problem admits, so the kernel is not run on it.
    func suiteParameters(_ problem: AttentionProblem) -> KernelParameters?
    /// The keys the kernel reads at its defaults, one row per query tile or block over the
    /// keys or key blocks (kascade's selections, sparge's predicted blocks), for batch 0's
    /// first head: what `attune check`'s report draws. Nil for kernels that read every
    /// visible key (which never call `inputs`), and where the kernel has nothing to show.
    func keptKeys(_ problem: AttentionProblem, inputs: () -> (q: Tensor, k: Tensor, v: Tensor)) -> [[Bool]]?
    var parameters: [KernelParameter] { get }
    /// The files of `Kernels/` a compiled model that calls this kernel must link, beyond
    /// the shared core (ABI, merge, graph ops). Linking only what a model uses keeps its
    /// first build short.
    var cSources: [String] { get }
    /// What the kernel computes: softmax attention, or sigmoid attention (its own semantics,
    /// chosen by the model, never substituted for softmax).
    var normalizer: KernelNormalizer { get }
    /// The K/V formats the kernel reads (`problem.kvFormat`); f32 only unless it says more.
    var kvFormats: [KVFormat] { get }
    /// The score modifiers (soft-cap, ALiBi, sinks) the kernel implements; a problem using
    /// another one is refused (`unsupportedReasons`, ScoreModifier.swift).
    var modifiers: Set<ScoreModifier> { get }
    /// A kernel's own reason for not taking modifier `m`, when the common one says too little.
    func modifierRefusal(_ m: ScoreModifier) -> String?
    /// Reasons beyond the ABI's validation and the modifiers why this kernel cannot run
    /// `problem` (a mask it does not support, a shape it needs); empty when it can.
    /// `unsupportedReasons` gives all of them.
    func problemRefusals(_ problem: AttentionProblem) -> [String]
    /// The C statements generated code uses to call this kernel, given a prepared
    /// `attune_attention_problem p`, `attune_attention_tensors t` and `attune_status status`;
    /// they must leave the kernel's return code in `int rc`. Nil when compiled graphs
    /// cannot call the kernel.
    func cInvocation(_ parameters: KernelParameters) -> [String]?
    /// `cInvocation` with the node's tables (`KernelBinding.tables`, e.g. calibrated
    /// per-head `phi`), each declared before the statements as `const float table_NAME[]`.
    /// Throws when a table is unknown or has the wrong length for `qHeads`.
    func cInvocation(_ parameters: KernelParameters, tables: [String: [Double]], qHeads: Int) throws -> [String]?
    /// Names of the counters the C statements add to, in `int64_t *counters` (one slot
    /// each, in this order), summed over calls; a compiled model reports them
    /// (`attune run --stats`). Empty for kernels that count nothing.
    var cCounters: [String] { get }
    /// Why a compiled graph cannot bind this kernel to a node, when `cInvocation` is nil.
    var cUnavailableReason: String { get }
    /// Runs on contiguous fp32 buffers laid out as `problem` describes. Returns what the
    /// kernel counted on the way (e.g. `fallback_rows`, `selected_fraction`); empty for
    /// kernels that count nothing.
    @discardableResult
    func run(_ problem: AttentionProblem, q: UnsafePointer<Float>, k: UnsafePointer<Float>,
             v: UnsafePointer<Float>, o: UnsafeMutablePointer<Float>, lse: UnsafeMutablePointer<Float>?,
             parameters: KernelParameters) throws -> KernelRunStats
}

public struct KernelError: Error, CustomStringConvertible, Equatable {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

extension AttentionKernel {
    public var kvFormats: [KVFormat] { [.f32] }
    public var linksLayers: Bool { false }
    public var calibratedTable: String? { nil }
    public var modifiers: Set<ScoreModifier> { [] }
    public func modifierRefusal(_ m: ScoreModifier) -> String? { nil }
    public func problemRefusals(_ problem: AttentionProblem) -> [String] { [] }
    public var isComposition: Bool { false }
    public func suiteParameters(_ problem: AttentionProblem) -> KernelParameters? { [:] }
    public func keptKeys(_ problem: AttentionProblem, inputs: () -> (q: Tensor, k: Tensor, v: Tensor)) -> [[Bool]]? { nil }
    public var cCounters: [String] { [] }

    /// A bf16 or int8qk `precision` makes an exact kernel approximate.
    public func isExact(with parameters: KernelParameters) -> Bool {
        isExact && (parameters["precision"] ?? 0) == 0
    }

    /// `text` as a value of parameter `name`: a number, or one of its value names.
    public func parameterValue(_ name: String, _ text: String) throws -> Double {
        let text = text.trimmingCharacters(in: .whitespaces)
        if let x = Double(text) { return x }
        let spec = parameters.first { $0.name == name }
        if let x = spec?.valueNames[text] { return x }
        if let spec, !spec.valueNames.isEmpty {
            throw KernelError("parameter '\(name)' of kernel '\(self.name)' takes a number or one of \(spec.valueNames.keys.sorted().joined(separator: ", ")), got '\(text)'")
        }
        throw KernelError("'\(name)=\(text)' is not key=number")
    }

    /// `value` as users type it: its name when the parameter has one for it.
    public func describeValue(_ name: String, _ value: Double) -> String {
        parameters.first { $0.name == name }?.valueNames.first { $0.value == value }?.key ?? describeParameterValue(value)
    }
    public var cUnavailableReason: String { "it has no C binding for compiled graphs" }

    public func cInvocation(_ parameters: KernelParameters, tables: [String: [Double]], qHeads: Int) throws -> [String]? {
        if let name = tables.keys.sorted().first { throw KernelError("kernel '\(self.name)' takes no table '\(name)'") }
        return cInvocation(parameters)
    }

    /// Rejects parameter names this kernel does not declare and values that are not whole
    /// numbers where integers are expected, so a typo is never silently ignored.
    public func checkParameters(_ given: KernelParameters) throws {
        for (key, value) in given.sorted(by: { $0.key < $1.key }) {
            guard let spec = parameters.first(where: { $0.name == key }) else {
                let known = parameters.map(\.name).joined(separator: ", ")
                throw KernelError("kernel '\(name)' has no parameter '\(key)' (parameters: \(known))")
            }
            if !value.isFinite || (spec.isInteger && value.rounded() != value) {
                throw KernelError("parameter '\(key)' of kernel '\(name)' must be \(spec.isInteger ? "an integer" : "finite"), got \(value)")
            }
            // Values reach the C kernels as int32 or float: out of those ranges they would
            // wrap or become inf (and a generated module would not compile).
            if spec.isInteger, abs(value) > Double(Int32.max) {
                throw KernelError("parameter '\(key)' of kernel '\(name)' must be an integer of at most \(Int32.max) in magnitude, got \(value)")
            }
            if let range = spec.validRange, !range.contains(value) {
                throw KernelError("parameter '\(key)' of kernel '\(name)' must be in \(describeParameterValue(range.lowerBound))..."
                                  + "\(describeParameterValue(range.upperBound)), got \(describeParameterValue(value))")
            }
            if !spec.isInteger, !Float(value).isFinite {
                throw KernelError("parameter '\(key)' of kernel '\(name)' must be finite in fp32 (magnitude below 3.4e38), got \(value)")
            }
        }
    }

    /// Validates shapes against `problem`, runs the kernel and returns O and LSE as tensors.
    public func run(_ problem: AttentionProblem, q: Tensor, k: Tensor, v: Tensor,
                    parameters: KernelParameters = [:]) throws -> AttentionOutput {
        if let error = problem.validationError() { throw KernelError(error) }
        for (label, tensor, shape) in [("q", q, problem.qShape), ("k", k, problem.kShape), ("v", v, problem.vShape)]
        where tensor.shape != shape {
            throw KernelError("\(label) has shape \(tensor.shape), expected \(shape) for \(problem)")
        }
        let reasons = unsupportedReasons(problem)
        if !reasons.isEmpty {
            throw KernelError("kernel '\(name)' cannot run \(problem): " + reasons.joined(separator: "; "))
        }
        guard problem.kvFormat == .f32 else {
            throw KernelError("fp32 tensors hold f32 K/V; a \(problem.kvFormat.rawValue) problem runs on packed buffers (KVFormat.pack)")
        }
        try checkParameters(parameters)
        var o = Tensor(zeros: problem.oShape)
        var lse = Tensor(zeros: problem.lseShape)
        var stats: KernelRunStats = [:]
        try q.data.withUnsafeBufferPointer { qb in
            try k.data.withUnsafeBufferPointer { kb in
                try v.data.withUnsafeBufferPointer { vb in
                    try o.data.withUnsafeMutableBufferPointer { ob in
                        try lse.data.withUnsafeMutableBufferPointer { lb in
                            // Empty K/V buffers have no base address; the ABI never reads them when kv_len == 0.
                            let dummy: [Float] = [0]
                            try dummy.withUnsafeBufferPointer { d in
                                stats = try run(problem, q: qb.baseAddress ?? d.baseAddress!, k: kb.baseAddress ?? d.baseAddress!,
                                        v: vb.baseAddress ?? d.baseAddress!, o: ob.baseAddress!,
                                        lse: lb.baseAddress, parameters: parameters)
                            }
                        }
                    }
                }
            }
        }
        return AttentionOutput(o: o, lse: lse, stats: stats)
    }
}
