// The float64 reference interpreter of the graph IR: the ground truth every compiler
// test compares against (fused vs unfused graph, compiled C vs reference, reference vs
// Hugging Face). Plain and readable over fast; the kernels are in ReferenceKernels.swift,
// symbol binding in SymbolBindings.swift.

import AttuneIR

/// Runs a `Graph` in Double precision.
///
///     let interp = try ReferenceInterpreter(graph: g, weights: DictionaryWeights(w))
///     let prompt = try interp.run(inputs: ["tokens": F64Tensor(ids: [5, 9, 2]),
///                                          "positions": F64Tensor(ids: [0, 1, 2])])
///     let next = try interp.run(inputs: ["tokens": F64Tensor(ids: [7]),
///                                        "positions": F64Tensor(ids: [3])])
///
/// - Weights are loaded once, at init, as Double (checked against their declared shapes).
/// - Symbolic dims are bound per `run`: from the inputs' shapes (`seq`), and `kv` from the
///   number of cached rows after each `kv_append` (every layer must agree).
/// - The KV cache persists across `run` calls (that is how decode works); `reset()` clears
///   it. A `run` that throws leaves the cache as it was.
/// - Every error names the node, input or weight at fault and the reason, e.g.
///   `node %12 (embedding, model.embed_tokens): token id 500 is outside the table of 128 rows`.
public final class ReferenceInterpreter {
    public let graph: Graph
    private let weightValues: [String: F64Tensor]
    private var caches: [CacheKey: F64Tensor] = [:]
    /// Called with every `attention` node's index, attributes and inputs q, k, v (k and v
    /// are the whole cache after the append) before it is evaluated: calibration reads
    /// score statistics this way.
    public var attentionObserver: ((_ node: Int, _ attrs: AttentionAttrs, _ q: F64Tensor, _ k: F64Tensor, _ v: F64Tensor) -> Void)?

    private struct CacheKey: Hashable {
        var layer: Int
        var kind: KVKind
    }

    /// Verifies `graph` and loads each of its weights once.
    public init(graph: Graph, weights: WeightSource) throws {
        do {
            try Verifier.verify(graph)
        } catch let e as IRError {
            throw InterpreterError("graph '\(graph.name)' does not verify: \(e.message)")
        }
        self.graph = graph
        var loaded: [String: F64Tensor] = [:]
        for (i, node) in graph.nodes.enumerated() {
            guard case .weight(let name) = node.op, loaded[name] == nil else { continue }
            func fail(_ reason: String) -> InterpreterError {
                InterpreterError("\(Self.describe(node: i, in: graph)): \(reason)", node: i)
            }
            let type = node.types[0]
            let dims = type.shape.compactMap(\.fixedValue)
            guard dims.count == type.rank else {
                throw fail("weight '\(name)' has the symbolic type \(type); weights need fixed shapes")
            }
            let floats: [Float]
            do {
                floats = try weights.floats(name)
            } catch {
                throw fail("cannot load weight '\(name)': \(error)")
            }
            let want = dims.reduce(1, *)
            guard floats.count == want else {
                throw fail("weight '\(name)' has \(floats.count) values, but its type \(type) needs \(want)")
            }
            loaded[name] = F64Tensor(shape: dims, data: floats.map(Double.init))
        }
        weightValues = loaded
    }

    /// Clears the KV cache of every layer.
    public func reset() {
        caches = [:]
    }

    /// The rows cached so far for `layer`'s keys or values (`[kv, width]`), or nil when
    /// nothing has been appended.
    public func cache(layer: Int, kind: KVKind) -> F64Tensor? {
        caches[CacheKey(layer: layer, kind: kind)]
    }

    /// Runs the graph on `inputs` (one tensor per `input` node, by name) and returns every
    /// graph output by name. `kv_append` nodes extend the KV cache, which is kept only if
    /// the whole run succeeds.
    public func run(inputs: [String: F64Tensor]) throws -> [String: F64Tensor] {
        var symbols = SymbolBindings()
        try bindInputs(inputs, &symbols)

        var values = [[F64Tensor]](repeating: [], count: graph.nodes.count)
        var staged = caches
        for (i, node) in graph.nodes.enumerated() {
            do {
                let args = node.inputs.map { values[$0.node][$0.result] }
                let results = try evaluate(node, at: i, args, inputs, &symbols, &staged)
                for (r, (value, type)) in zip(results, node.types).enumerated() {
                    if let reason = symbols.match(value.shape, type, origin: Self.describe(node: i, in: graph)) {
                        if case .kvAppend(let layer, let kind) = node.op {
                            throw NodeFailure("layer \(layer)'s \(kind.rawValue) cache holds \(value.shape[0]) rows after the append, "
                                + "but \(reason) (every layer's cache must have the same length)")
                        }
                        throw NodeFailure("result \(r) has shape \(Self.show(value.shape)), but its declared type is \(type): \(reason)")
                    }
                }
                values[i] = results
            } catch let f as NodeFailure {
                throw InterpreterError("\(Self.describe(node: i, in: graph)): \(f.reason)", node: i)
            }
        }
        caches = staged

        var outputs: [String: F64Tensor] = [:]
        for o in graph.outputs { outputs[o.name] = values[o.value.node][o.value.result] }
        return outputs
    }

    // MARK: - Inputs

    /// Checks every input against its declared type and binds the symbols in it.
    private func bindInputs(_ inputs: [String: F64Tensor], _ symbols: inout SymbolBindings) throws {
        let declared = Set(graph.inputs.map(\.name))
        if let extra = inputs.keys.sorted().first(where: { !declared.contains($0) }) {
            throw InterpreterError("unknown input '\(extra)': the graph's inputs are \(graph.inputs.map { "'\($0.name)'" }.joined(separator: ", "))")
        }
        for (i, node) in graph.nodes.enumerated() {
            guard case .input(let name) = node.op else { continue }
            func fail(_ reason: String) -> InterpreterError {
                InterpreterError("\(Self.describe(node: i, in: graph)): \(reason)", node: i)
            }
            let type = node.types[0]
            guard let x = inputs[name] else { throw fail("missing input '\(name)' of type \(type)") }
            guard x.shape.allSatisfy({ $0 >= 0 }), x.data.count == x.elementCount else {
                throw fail("input '\(name)' has \(x.data.count) values for its shape \(Self.show(x.shape))")
            }
            if let reason = symbols.match(x.shape, type, origin: "input '\(name)'") {
                throw fail("input '\(name)' has shape \(Self.show(x.shape)), but its declared type is \(type): \(reason)")
            }
            if type.dtype == .i32, let bad = x.data.firstIndex(where: { $0 != $0.rounded() || abs($0) > Double(Int32.max) }) {
                throw fail("input '\(name)' is i32 but element \(bad) is \(x.data[bad]), not a 32-bit whole number")
            }
        }
    }

    // MARK: - Nodes

    private func evaluate(_ node: Node, at index: Int, _ x: [F64Tensor], _ inputs: [String: F64Tensor],
                          _ symbols: inout SymbolBindings, _ staged: inout [CacheKey: F64Tensor]) throws -> [F64Tensor] {
        typealias K = ReferenceKernels
        switch node.op {
        case .input(let name):
            return [inputs[name]!]   // bindInputs checked that it is there
        case .weight(let name):
            return [weightValues[name]!]   // init loaded every weight

        case .embedding:
            return [try K.embedding(table: x[0], ids: x[1])]
        case .linear(let hasBias):
            return [K.linear(x[0], x[1], bias: hasBias ? x[2] : nil)]
        case .matmul(let transposeB):
            return [K.matmul(x[0], x[1], transposeB: transposeB)]

        case .add:
            return [K.broadcast(x[0], x[1], +)]
        case .mul:
            return [K.broadcast(x[0], x[1], *)]
        case .scale(let factor):
            return [K.map(x[0]) { $0 * factor }]
        case .silu:
            return [K.map(x[0], K.silu)]
        case .gelu:
            return [K.map(x[0], K.gelu)]
        case .elementwise(let program):
            return [K.elementwise(program, x)]
        case .softcap(let cap):
            return [K.map(x[0]) { K.softcap($0, cap: cap) }]

        case .rmsNorm(let eps):
            return [K.rmsNorm(x[0], x[1], eps: eps)]
        case .headRMSNorm(let eps):
            return [K.headRMSNorm(x[0], x[1], eps: eps)]
        case .layerNorm(let eps):
            return [K.layerNorm(x[0], x[1], x[2], eps: eps)]
        case .addRMSNorm(let eps):
            let sum = K.broadcast(x[0], x[1], +)
            return [sum, K.rmsNorm(sum, x[2], eps: eps)]
        case .softmax:
            return [K.softmax(x[0])]

        case .rope(let a):
            return [K.rope(x[0], positions: x[1], heads: a.heads, headDim: a.headDim, rotaryDim: a.rotaryDim, frequencies: a.frequencies)]
        case .attentionMask(let causal, let window):
            let s = x[0].shape
            return [K.attentionMask(seq: s[s.count - 2], kv: s[s.count - 1], causal: causal, window: window)]
        case .attention(let a):
            attentionObserver?(index, a, x[0], x[1], x[2])
            let o = try K.attention(x[0], x[1], x[2], a, sinks: a.sinksInput.map { x[$0] })
            // The reference attends to every key; a selection it "produces" names none
            // (-1 throughout) and one it is given is ignored: approximate kernels are
            // measured against exactly this.
            if case .produce(let w) = a.selection {
                return [o, F64Tensor(shape: [x[0].shape[0], w], data: Array(repeating: -1, count: x[0].shape[0] * w))]
            }
            return [o]
        case .kvAppend(let layer, let kind):
            let key = CacheKey(layer: layer, kind: kind)
            let width = x[0].shape[1]
            var rows = staged[key] ?? F64Tensor(shape: [0, width], data: [])
            guard rows.shape[1] == width else {
                throw NodeFailure("layer \(layer)'s \(kind.rawValue) cache has rows of width \(rows.shape[1]); cannot append rows of width \(width)")
            }
            rows.data += x[0].data
            rows.shape[0] += x[0].shape[0]
            staged[key] = rows
            return [rows]

        case .swiGLU:
            return [K.swiGLU(x[0], x[1])]
        case .geGLU:
            return [K.swiGLU(x[0], x[1], activation: K.gelu)]
        case .qkvRope(let a):
            let norms = a.qNormInput.map { (x[$0], x[$0 + 1]) }
            return K.qkvRope(x[0], x[1], bias: a.biasInput.map { x[$0] }, norms: norms, positions: x[a.positionsInput], a)

        case .reshape(let dims):
            let shape = try symbols.resolveReshape(dims, count: x[0].data.count, from: x[0].shape,
                                                   origin: Self.describe(node: index, in: graph))
            return [F64Tensor(shape: shape, data: x[0].data)]
        case .transpose(let perm):
            return [K.transpose(x[0], perm: perm)]
        case .slice(let axis, let start, let end):
            return [K.slice(x[0], axis: axis, start: start, end: end ?? x[0].shape[axis])]
        case .concat(let axis):
            return [K.concat(x, axis: axis)]
        case .repeatInterleave(let axis, let repeats):
            return [K.repeatInterleave(x[0], axis: axis, repeats: repeats)]
        }
    }

    // MARK: - Messages

    /// `node %12 (embedding, model.embed_tokens)`, as the verifier names nodes.
    static func describe(node i: Int, in graph: Graph) -> String {
        let node = graph.nodes[i]
        return "node %\(i) (\(node.op.mnemonic)\(node.label.map { ", \($0)" } ?? ""))"
    }

    static func show(_ shape: [Int]) -> String { "[\(shape.map(String.init).joined(separator: ", "))]" }
}
