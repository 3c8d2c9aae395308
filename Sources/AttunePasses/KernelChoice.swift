import Foundation
import AttuneKernels

/// A kernel named by the user, with parameter values: the value of `--attention
/// NAME[:k=v,...]`, e.g. `flash:block_kv=128,kv_splits=2`. Parsing checks the name
/// against `KernelRegistry` and the parameters against the kernel's declared ones, so
/// a typo fails when the option is read, not silently later.
public struct KernelChoice: Sendable, Equatable, CustomStringConvertible {
    public var kernel: String
    public var parameters: [String: Double]

    public init(kernel: String, parameters: [String: Double] = [:]) {
        self.kernel = kernel
        self.parameters = parameters
    }

    /// Parses `NAME[:k=v,...]` and validates it against the registry.
    public init(parsing text: String) throws {
        let (name, rest) = text.firstIndex(of: ":").map { (String(text[..<$0]), String(text[text.index(after: $0)...])) }
            ?? (text, "")
        let kernelName = name.trimmingCharacters(in: .whitespaces)
        guard !kernelName.isEmpty else { throw PassError("--attention '\(text)': missing kernel name (NAME[:k=v,...])") }
        var parameters: [String: Double] = [:]
        let kernel: any AttentionKernel
        do {
            kernel = try KernelRegistry.kernel(named: kernelName)
            for item in rest.split(separator: ",", omittingEmptySubsequences: false) where !rest.isEmpty {
                let pair = item.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
                let key = pair[0].trimmingCharacters(in: .whitespaces)
                guard pair.count == 2, !key.isEmpty else { throw PassError("'\(item)' is not key=number") }
                // A number, or a name the parameter gives its values (precision=bf16).
                guard parameters.updateValue(try kernel.parameterValue(key, String(pair[1])), forKey: key) == nil else {
                    throw PassError("parameter '\(key)' is given twice")
                }
            }
            try kernel.checkParameters(parameters)
        } catch {
            throw PassError("--attention '\(text)': \(error)")
        }
        self.init(kernel: kernel.name, parameters: parameters)
    }

    /// `flash:block_kv=128,kv_splits=2` (parameters sorted, named values by name:
    /// `flash:precision=bf16`), the form `init(parsing:)` reads.
    public var description: String {
        let k = try? KernelRegistry.kernel(named: kernel)
        return parameters.isEmpty ? kernel
            : kernel + ":" + parameters.keys.sorted().map { "\($0)=\(k?.describeValue($0, parameters[$0]!) ?? describeParameterValue(parameters[$0]!))" }
                .joined(separator: ",")
    }
}

/// Kernels forced by the user: one for every attention, and per layer (which wins);
/// plus calibrated values kernels bound to a layer receive.
public struct KernelOverrides: Sendable, Equatable {
    public var global: KernelChoice?
    public var byLayer: [Int: KernelChoice]
    /// `unified_max`'s phi per q head, by layer (`attune calibrate`); used unless the
    /// choice sets `phi` itself.
    public var calibratedPhi: [Int: [Double]]
    /// `kascade`'s anchor layers and, per reuse layer, the anchor kv head each kv head
    /// reads (`attune calibrate --kascade`); nil anchors: the first kascade layer.
    public var kascadeAnchors: [Int]?
    public var kascadeHeadMaps: [Int: [Int]] = [:]
    /// Positions the compiled model holds: sizes the key selections kascade layers pass on.
    public var selectionContext: Int = 4096
    /// Kernels for decode steps (one query row; `--decode-attention`, per layer winning);
    /// none: decode steps run the prefill kernel.
    public var decodeGlobal: KernelChoice?
    public var decodeByLayer: [Int: KernelChoice] = [:]
    /// The KV-cache format (`--kv`, and per layer `--layer-kv`): a decode kernel must read it.
    public var kvFormat: KVFormat = .f32
    public var kvFormatByLayer: [Int: KVFormat] = [:]

    /// The format layer `layer`'s KV cache stores (`kvFormat` when no layer is known).
    public func kvFormat(layer: Int?) -> KVFormat { layer.flatMap { kvFormatByLayer[$0] } ?? kvFormat }

    public init(global: KernelChoice? = nil, byLayer: [Int: KernelChoice] = [:], calibratedPhi: [Int: [Double]] = [:]) {
        self.global = global
        self.byLayer = byLayer
        self.calibratedPhi = calibratedPhi
    }

    /// The override for `layer` (nil when the layer is unknown: only the global one applies).
    public func choice(layer: Int?) -> (KernelChoice, String)? {
        if let layer, let c = byLayer[layer] { return (c, "override for layer \(layer): \(c)") }
        if let c = global { return (c, "override --attention \(c)") }
        return nil
    }

    /// The decode override for `layer`, per layer first, with why.
    public func decodeChoice(layer: Int?) -> (KernelChoice, String)? {
        if let layer, let c = decodeByLayer[layer] { return (c, "decode override for layer \(layer): \(c)") }
        if let c = decodeGlobal { return (c, "override --decode-attention \(c)") }
        return nil
    }
}
