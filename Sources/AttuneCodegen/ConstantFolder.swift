import AttuneIR

/// A constant the generated code addresses as `m->w[slot]`: `floats` fp32 values,
/// row-major, made of parts laid end to end (one part for a plain weight; several for
/// weights the passes concatenated, e.g. the merged QKV matrix).
public struct ConstantSlot: Sendable, Equatable {
    public var floats: Int
    public var parts: [ConstantPart]

    /// The module points into the file (one 4-byte-aligned f32 part); otherwise it
    /// materialises the slot in fp32 memory when it opens (attune_weights.h).
    public var isMappedInPlace: Bool {
        guard parts.count == 1, case .file(let at) = parts[0].source else { return false }
        return at.dtype == .f32 && at.offset % 4 == 0
    }
}

/// A run of a constant's elements: in a checkpoint file, where the module maps them, or
/// in the module's derived blob (values Attune computed at compile time).
public struct ConstantPart: Sendable, Equatable {
    public enum Source: Sendable, Equatable {
        case file(WeightLocation)
        /// Floats `offset ..< offset + count` of `EmittedModule.derived`.
        case derived(offset: Int)
    }
    /// The weight's name, or a description of a derived value, for messages.
    public var name: String
    public var count: Int
    public var source: Source
}

/// Values computable at compile time: weights and layout ops applied only to weights
/// (the concatenated QKV and gate/up matrices the passes create). Weights that lie in a
/// file, and row-wise concatenations of them, become slots that point at the file: the
/// generated module maps them at open, so compiling reads no weight values. Anything
/// else (a transpose of a weight, weights held in memory) is evaluated once in fp32 into
/// the derived blob.
struct ConstantFolder {
    let graph: Graph
    let weights: WeightSource
    /// Slot of each constant value.
    private(set) var slotOf: [Value: Int] = [:]
    private(set) var slots: [ConstantSlot] = []
    private(set) var derived: [Float] = []
    private var cache: [Value: [Float]] = [:]

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
        case .concat, .slice, .reshape, .transpose, .repeatInterleave:
            result = node.inputs.allSatisfy { isConstant(g, $0, memo: &memo) }
        default: result = false
        }
        memo[v.node] = result
        return result
    }

    /// The slot of constant `v`, created on first use.
    mutating func place(_ v: Value) throws -> Int {
        if let s = slotOf[v] { return s }
        let type = graph.type(of: v)
        guard let dims = type.shape.map(\.fixedValue) as? [Int] else {
            throw CodegenError("node %\(v.node): constant \(type) has a symbolic dim")
        }
        let count = dims.reduce(1, *)
        var parts = try fileParts(v) ?? []
        if parts.isEmpty {
            let values = try evaluate(v)
            // 16-float alignment: every derived constant starts on a 64-byte boundary.
            while derived.count % 16 != 0 { derived.append(0) }
            parts = [ConstantPart(name: "derived value %\(v.node) \(type)", count: values.count, source: .derived(offset: derived.count))]
            derived += values
        }
        guard parts.reduce(0, { $0 + $1.count }) == count else {
            throw CodegenError("node %\(v.node): constant of type \(type) has \(parts.reduce(0) { $0 + $1.count }) values in its source, needs \(count)")
        }
        slots.append(ConstantSlot(floats: count, parts: parts))
        slotOf[v] = slots.count - 1
        return slots.count - 1
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
        default:
            throw CodegenError("node %\(v.node) (\(node.op.mnemonic)) is not a constant")
        }
        cache[v] = out
        return out
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
