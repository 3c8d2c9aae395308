import AttuneIR
import Foundation

/// A constant the generated code addresses as `m->w[slot]`: `elements` values in
/// `format`, row-major, made of parts laid end to end (one part for a plain weight;
/// several for weights the passes concatenated, e.g. the merged QKV matrix).
public struct ConstantSlot: Sendable, Equatable {
    public var elements: Int
    /// Elements per row (the last dim): int8 slots are quantised row by row.
    public var width: Int
    /// How the module holds the slot in memory (and so which kernel reads it); the parts
    /// may be stored otherwise (e.g. bf16 checkpoint tensors of an f32 slot), and the
    /// module converts them once when it opens.
    public var format: WeightFormat
    public var parts: [ConstantPart]

    /// The module points into the file (one part stored in the slot's format, aligned to
    /// its element size); otherwise it materialises the slot when it opens (attune_weights.h).
    /// Slots converted at compile time are always mapped: their parts are what the compile
    /// converts into the compile cache, and the module maps the result from there.
    public var isMappedInPlace: Bool {
        if isConvertedAtCompile { return true }
        guard parts.count == 1 else { return false }
        switch parts[0].source {
        case .file(let at): return at.dtype.rawValue == format.name && at.offset % at.dtype.byteSize == 0
        case .derived(_, let dtype): return dtype.rawValue == format.name
        }
    }

    /// Made once at compile time into a file of the compile cache (AttuneRuntime.QuantizedWeights)
    /// from its parts, instead of read as stored: int8 slots (quantised), and bf16 slots with
    /// checkpoint parts stored otherwise (f32 or f16 rounded to bf16: `--weights bf16`).
    public var isConvertedAtCompile: Bool {
        switch format {
        case .quantized: return true
        case .f32: return false
        case .bf16:
            return parts.contains { part in
                if case .file(let at) = part.source { return at.dtype != .bf16 }
                return false
            }
        }
    }
}

/// A run of a constant's elements: in a checkpoint file, where the module maps them, or
/// in the module's derived blob (values Attune computed at compile time).
public struct ConstantPart: Sendable, Equatable {
    public enum Source: Sendable, Equatable {
        case file(WeightLocation)
        /// `count` elements of `dtype` from byte `offset` of `EmittedModule.derived`.
        case derived(offset: Int, dtype: DType)
    }
    /// The weight's name, or a description of a derived value, for messages.
    public var name: String
    public var count: Int
    public var source: Source
}

/// Values computable at compile time: weights, layout ops applied only to weights
/// (the concatenated QKV and gate/up matrices the passes create) and elementwise
/// programs of weights (Gemma's `1 + w` norm weights). Weights that lie in a
/// file, and row-wise concatenations of them, become slots that point at the file: the
/// generated module maps them at open, so compiling reads no weight values. Anything
/// else (a transpose of a weight, weights held in memory) is evaluated once in fp32 and
/// stored in the slot's format in the derived blob. int8 slots keep their sources (file
/// runs of whole rows, or the values in f32 in the derived blob), and so do bf16 slots of
/// f32 or f16 file runs: the runtime quantises or rounds them into the compile cache.
struct ConstantFolder {
    let graph: Graph
    let weights: WeightSource
    /// Slot of each constant value in each format it is read in.
    private(set) var slotOf: [SlotKey: Int] = [:]
    private(set) var slots: [ConstantSlot] = []
    /// The derived blob: every part starts on a 64-byte boundary.
    private(set) var derived: [UInt8] = []
    private var cache: [Value: [Float]] = [:]

    struct SlotKey: Hashable {
        var value: Value
        var format: WeightFormat
    }

    init(graph: Graph, weights: WeightSource) {
        self.graph = graph
        self.weights = weights
    }

    /// True for values that depend on weights only.
    static func isConstant(_ g: Graph, _ v: Value, memo: inout [Int: Bool]) -> Bool {
        if let known = memo[v.node] { return known }
        let node = g.nodes[v.node]
        let result: Bool
        switch node.op {
        case .weight: result = true
        case .concat, .slice, .reshape, .transpose, .repeatInterleave, .elementwise:
            result = node.inputs.allSatisfy { isConstant(g, $0, memo: &memo) }
        default: result = false
        }
        memo[v.node] = result
        return result
    }

    /// The slot of constant `v` in `format`, created on first use.
    mutating func place(_ v: Value, format: WeightFormat = .f32) throws -> Int {
        let key = SlotKey(value: v, format: format)
        if let s = slotOf[key] { return s }
        let type = graph.type(of: v)
        guard let dims = type.shape.map(\.fixedValue) as? [Int] else {
            throw CodegenError("node %\(v.node): constant \(type) has a symbolic dim")
        }
        let count = dims.reduce(1, *)
        let width = dims.last ?? 1
        var parts: [ConstantPart]
        let file = try fileParts(v)
        if let file, file.allSatisfy({ part in
            // f32 slots take any stored float dtype (widening is exact), bf16 slots too
            // (other dtypes are rounded at compile time into the compile cache), int8 slots
            // any run of whole rows (quantised per row).
            if case .quantized = format { return part.count % width == 0 }
            return true
        }) {
            parts = file
        } else {
            let values = try evaluate(v)
            var name = "derived value %\(v.node) \(type)"
            if case .weight(let weightName) = graph.nodes[v.node].op { name = weightName }
            if format == .bf16 { name += " (rounded to bf16)" }
            parts = [appendDerived(values, format: format == .bf16 ? .bf16 : .f32, name: name)]
        }
        guard parts.reduce(0, { $0 + $1.count }) == count else {
            throw CodegenError("node %\(v.node): constant of type \(type) has \(parts.reduce(0) { $0 + $1.count }) values in its source, needs \(count)")
        }
        slots.append(ConstantSlot(elements: count, width: width, format: format, parts: parts))
        slotOf[key] = slots.count - 1
        return slots.count - 1
    }

    /// The dtype `v`'s elements are stored in: that of its file parts when they agree,
    /// f32 otherwise (values held in memory or computed).
    func storedDType(_ v: Value) throws -> DType {
        guard let parts = try fileParts(v) else { return .f32 }
        let dtypes = Set(parts.compactMap { part -> DType? in
            if case .file(let at) = part.source { return at.dtype }
            return nil
        })
        return dtypes.count == 1 ? dtypes.first! : .f32
    }

    private mutating func appendDerived(_ values: [Float], format: WeightFormat, name: String) -> ConstantPart {
        while derived.count % 64 != 0 { derived.append(0) }
        let offset = derived.count
        if format == .bf16 {
            values.map(\.bf16Bits).withUnsafeBytes { derived += $0 }
        } else {
            values.withUnsafeBytes { derived += $0 }
        }
        return ConstantPart(name: name, count: values.count, source: .derived(offset: offset, dtype: format == .bf16 ? .bf16 : .f32))
    }

    /// The file runs holding `v` in order, or nil when `v` is not a weight in a file, a
    /// reshape of one, or a concatenation of such along its outermost non-unit axis.
    private func fileParts(_ v: Value) throws -> [ConstantPart]? {
        let node = graph.nodes[v.node]
        switch node.op {
        case .weight(let name):
            guard let location = try weights.location(name) else { return nil }
            return [ConstantPart(name: name, count: location.count, source: .file(location))]
        case .reshape:
            return try fileParts(node.inputs[0])
        case .concat(let axis):
            let dims = graph.type(of: v).shape
            guard dims[..<axis].allSatisfy({ $0 == .fixed(1) }) else { return nil }
            var parts: [ConstantPart] = []
            for input in node.inputs {
                guard let p = try fileParts(input) else { return nil }
                parts += p
            }
            return parts
        default:
            return nil
        }
    }

    private mutating func evaluate(_ v: Value) throws -> [Float] {
        if let c = cache[v] { return c }
        let node = graph.nodes[v.node]
        let type = node.types[v.result]
        guard let dims = type.shape.map(\.fixedValue) as? [Int] else {
            throw CodegenError("node %\(v.node): constant \(type) has a symbolic dim")
        }
        var out: [Float]
        switch node.op {
        case .weight(let name):
            out = try weights.floats(name)
            guard out.count == dims.reduce(1, *) else {
                throw CodegenError("weight '\(name)' has \(out.count) values, its type \(type) needs \(dims.reduce(1, *))")
            }
        case .reshape:
            out = try evaluate(node.inputs[0])
        case .concat(let axis):
            let parts = try node.inputs.map { try evaluate($0) }
            let outer = dims[..<axis].reduce(1, *)
            let inner = dims[(axis + 1)...].reduce(1, *)
            out = []
            out.reserveCapacity(dims.reduce(1, *))
            for o in 0..<outer {
                for (p, input) in node.inputs.enumerated() {
                    let n = graph.type(of: input).shape[axis].fixedValue! * inner
                    out += parts[p][(o * n)..<((o + 1) * n)]
                }
            }
        case .slice(let axis, let start, _):
            let src = try evaluate(node.inputs[0])
            let inDims = graph.type(of: node.inputs[0]).shape.map { $0.fixedValue! }
            let outer = dims[..<axis].reduce(1, *), inner = dims[(axis + 1)...].reduce(1, *)
            out = []
            for o in 0..<outer {
                let base = (o * inDims[axis] + start) * inner
                out += src[base..<(base + dims[axis] * inner)]
            }
        case .transpose(let perm):
            let src = try evaluate(node.inputs[0])
            let inDims = graph.type(of: node.inputs[0]).shape.map { $0.fixedValue! }
            out = Self.transpose(src, inDims, perm)
        case .repeatInterleave(let axis, let repeats):
            let src = try evaluate(node.inputs[0])
            let inDims = graph.type(of: node.inputs[0]).shape.map { $0.fixedValue! }
            let outer = inDims[..<axis].reduce(1, *), inner = inDims[(axis + 1)...].reduce(1, *)
            out = []
            for o in 0..<outer {
                for i in 0..<inDims[axis] {
                    let row = src[((o * inDims[axis] + i) * inner)..<((o * inDims[axis] + i + 1) * inner)]
                    for _ in 0..<repeats { out += row }
                }
            }
        case .elementwise(let program):
            // In Double, rounded once to fp32 (what fp32 arithmetic on the weights gives for `1 + w`).
            let inputs = try node.inputs.map { try evaluate($0) }
            let n = dims.reduce(1, *)
            out = (0..<n).map { i in Float(Self.evaluate(program.expr, inputs.map { Double($0[i % $0.count]) })) }
        default:
            throw CodegenError("node %\(v.node) (\(node.op.mnemonic)) is not a constant")
        }
        // Weights are not kept: each is read once here, and keeping them all (weights held
        // in memory by a caller, folded into derived values) would double them until emit ends.
        if case .weight = node.op { return out }
        cache[v] = out
        return out
    }

    /// One element of an elementwise program, inputs broadcast as `add` does.
    private static func evaluate(_ e: ElementwiseExpr, _ x: [Double]) -> Double {
        switch e {
        case .input(let i): return x[i]
        case .constant(let c): return c
        case .add(let a, let b): return evaluate(a, x) + evaluate(b, x)
        case .mul(let a, let b): return evaluate(a, x) * evaluate(b, x)
        case .silu(let a): let v = evaluate(a, x); return v / (1 + exp(-v))
        case .gelu(let a):
            let v = evaluate(a, x)
            return 0.5 * v * (1 + tanh((2 / Double.pi).squareRoot() * (v + 0.044715 * v * v * v)))
        }
    }

    private static func transpose(_ src: [Float], _ dims: [Int], _ perm: [Int]) -> [Float] {
        let outDims = perm.map { dims[$0] }
        var inStrides = [Int](repeating: 1, count: dims.count)
        for i in stride(from: dims.count - 2, through: 0, by: -1) { inStrides[i] = inStrides[i + 1] * dims[i + 1] }
        var out = [Float](repeating: 0, count: src.count)
        var index = [Int](repeating: 0, count: dims.count)
        for o in 0..<src.count {
            var s = 0
            for a in 0..<dims.count { s += index[a] * inStrides[perm[a]] }
            out[o] = src[s]
            var a = dims.count - 1
            while a >= 0 {
                index[a] += 1
                if index[a] < outDims[a] { break }
                index[a] = 0
                a -= 1
            }
        }
        return out
    }
}

/// A graph the C emitter cannot compile, with the node and the reason.
public struct CodegenError: Error, CustomStringConvertible, Equatable {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}
