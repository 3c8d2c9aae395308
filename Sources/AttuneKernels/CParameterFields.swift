import CAttuneKernels

/// A kernel whose declared parameters reach its C params struct through one field list
/// (`cFields`): every kernel; hybrid's list is its attention call's (its store is
/// configured at creation). `cStruct` and `cInitializer` read it.
public protocol CParameterKernel: AttentionKernel {
    associatedtype CParams
    static var cFields: CParameterFields<CParams> { get }
}

/// Where a kernel's declared parameters go in its C params struct: one list, in the order
/// the generated initializer names the fields, from which both the struct `run` passes
/// (`cStruct`) and the C initializer compiled graphs use (`cInitializer`) are made, so the
/// two cannot disagree. A parameter the caller leaves out takes its declared default.
public struct CParameterFields<Params>: Sendable {
    public struct Field: Sendable {
        /// The declared parameter (`KernelParameter.name`).
        let parameter: String
        /// The C designator without its dot: the parameter's name, or a path (`flash.block_q`).
        let cName: String
        /// False for a field written only when non-zero, so C generated before the
        /// parameter existed stays byte-identical (`precision`).
        let writtenWhenZero: Bool
        let set: @Sendable (inout Params, Double) -> Void
        let get: @Sendable (Params) -> Double
        /// The C literal of a value as the field holds it.
        let literal: @Sendable (Double) -> String
    }

    public let fields: [Field]
    /// Declared parameters with no field here, which the kernel passes to C its own way
    /// (kascade's `role` picks the entry point, hybrid's store parameters configure the
    /// store): every declared parameter is a field or listed here, so none is forgotten.
    public let passedApart: [String]
    /// The struct with every field zero (an imported C struct's `init`).
    let zero: @Sendable () -> Params

    public init(_ zero: @escaping @Sendable () -> Params, _ fields: [Field], passedApart: [String] = []) {
        self.zero = zero
        self.fields = fields
        self.passedApart = passedApart
    }

    /// The field values a struct holds, by parameter name (flash's resolved tiles).
    public func values(of s: Params) -> KernelParameters {
        Dictionary(uniqueKeysWithValues: fields.map { ($0.parameter, $0.get(s)) })
    }
}

extension CParameterFields.Field {
    public static func int32(_ parameter: String, _ path: WritableKeyPath<Params, Int32> & Sendable, c: String? = nil,
                             writtenWhenZero: Bool = true) -> Self {
        Self(parameter: parameter, cName: c ?? parameter, writtenWhenZero: writtenWhenZero,
             set: { $0[keyPath: path] = Int32(clamping: Int($1)) }, get: { Double($0[keyPath: path]) },
             literal: { String(Int($0)) })
    }

    public static func int64(_ parameter: String, _ path: WritableKeyPath<Params, Int64> & Sendable, c: String? = nil) -> Self {
        Self(parameter: parameter, cName: c ?? parameter, writtenWhenZero: true,
             set: { $0[keyPath: path] = Int64($1) }, get: { Double($0[keyPath: path]) }, literal: { String(Int($0)) })
    }

    public static func float(_ parameter: String, _ path: WritableKeyPath<Params, Float> & Sendable, c: String? = nil,
                             spelled spelling: CFloatSpelling = .float) -> Self {
        let literal: @Sendable (Double) -> String
        switch spelling {
        case .float: literal = { cFloatLiteral($0) }
        case .double: literal = { "\($0)" }
        }
        return Self(parameter: parameter, cName: c ?? parameter, writtenWhenZero: true,
                    set: { $0[keyPath: path] = Float($1) }, get: { Double($0[keyPath: path]) }, literal: literal)
    }

    /// A Double's description (`0.1`, `1e-05`) is a C double literal; parameters are finite.
    public static func double(_ parameter: String, _ path: WritableKeyPath<Params, Double> & Sendable, c: String? = nil) -> Self {
        Self(parameter: parameter, cName: c ?? parameter, writtenWhenZero: true,
             set: { $0[keyPath: path] = $1 }, get: { $0[keyPath: path] }, literal: { "\($0)" })
    }
}

/// How a Float field is spelled in C: a float literal (`-5.5451775f`) or, where generated
/// C has always spelled it so, the stored value's Double form (`-3.25`).
public enum CFloatSpelling: Sendable { case float, double }

/// A C float literal that reads back as `Float(x)`; non-finite values become expressions
/// the kernel rejects at run time with a message.
func cFloatLiteral(_ x: Double) -> String {
    let f = Float(x)
    if f.isNaN { return "__builtin_nanf(\"\")" }
    if f.isInfinite { return f < 0 ? "(-__builtin_inff())" : "__builtin_inff()" }
    let text = "\(f)"  // shortest round-trip form, e.g. -5.5451775 or 1e-05
    return text + (text.contains(where: { $0 == "." || $0 == "e" }) ? "f" : ".0f")
}

extension AttentionKernel {
    /// The caller's value of parameter `name`, or its declared default.
    public func value(_ name: String, in given: KernelParameters) -> Double {
        if let x = given[name] { return x }
        guard let spec = parameters.first(where: { $0.name == name }) else {
            preconditionFailure("kernel '\(self.name)' reads '\(name)', which it does not declare")
        }
        return spec.defaultValue
    }

    /// Calls `entry`, a C entry point of the ABI's shape (`attune_flash_attention`), on
    /// `problem` with its modifiers' tables and `params`; a failure throws the C message
    /// prefixed with the kernel's name. Returns the masks' tile counts (empty without masks).
    @discardableResult
    func callC<P>(_ entry: (UnsafePointer<attune_attention_problem>?, UnsafePointer<attune_attention_tensors>?,
                            UnsafePointer<P>?, UnsafeMutablePointer<attune_status>?) -> Int32,
                  _ problem: AttentionProblem, q: UnsafePointer<Float>, k: UnsafePointer<Float>, v: UnsafePointer<Float>,
                  o: UnsafeMutablePointer<Float>, lse: UnsafeMutablePointer<Float>?, params: P) throws -> KernelRunStats {
        var p = problem.cProblem(k: k, v: v)
        var tensors = attune_attention_tensors(q: q, k: k, v: v, o: o, lse: lse)
        var params = params
        var status = attune_status()
        var maskStats = attune_mask_stats()
        let rc = problem.withModifiers(&p, maskStats: &maskStats) { entry(&$0, &tensors, &params, &status) }
        if rc != 0 { throw KernelError("\(name): " + AttentionProblem.message(of: status)) }
        return problem.maskRunStats(maskStats)
    }
}

extension CParameterKernel {
    /// The C struct `cFields` describes, filled from `parameters`; out-pointers and tables
    /// are the caller's to set.
    public func cStruct(_ parameters: KernelParameters) -> CParams {
        var s = Self.cFields.zero()
        for field in Self.cFields.fields { field.set(&s, value(field.parameter, in: parameters)) }
        return s
    }

    /// The same values as a C initializer, `{.block_q = 0, .bias = -4.0f}`, each as the
    /// struct holds it, followed by `extra` designators (out-pointers, tables).
    public func cInitializer(_ parameters: KernelParameters, extra: [String] = []) -> String {
        let written = Self.cFields.fields.compactMap { field -> String? in
            let x = value(field.parameter, in: parameters)
            guard field.writtenWhenZero || x != 0 else { return nil }
            var s = Self.cFields.zero()
            field.set(&s, x)
            return ".\(field.cName) = \(field.literal(field.get(s)))"
        }
        return "{" + (written + extra).joined(separator: ", ") + "}"
    }
}
