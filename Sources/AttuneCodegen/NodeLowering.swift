import AttuneIR
import AttuneKernels
import AttunePasses

/// A layer whose K/V a kernel keeps in its own store, and the C that manages it.
struct StoreLayer {
    var index: Int
    var layer: Int
    var kernel: String
    /// Statements creating `void *store` (see `KVStoreKernel.cStoreCreate`).
    var create: [String]
    var reset: String
    var destroy: String
}

/// Lowers nodes one at a time to C statements, tracking where every value lives and
/// which arena buffers each node defines and reads (for memory planning).
struct NodeLowering {
    let graph: Graph
    let options: CodegenOptions
    var folder: ConstantFolder
    private(set) var views: [Value: View] = [:]
    private(set) var buffers: [BufferLifetime] = []
    /// Row width of each KV cache, by cache index (layer * 2 + 0 for keys, 1 for values).
    private(set) var cacheWidths: [Int: Int] = [:]
    /// KV heads of each cache stored in a non-f32 format (int8 keeps one scale per
    /// position and head), by cache index.
    private(set) var cacheHeads: [Int: Int] = [:]
    /// C sources of the kernels attention nodes call.
    private(set) var kernelSources: Set<String> = []
    /// Layers whose K/V live in a kernel's own store (`KVStoreKernel`), in store order.
    private(set) var stores: [StoreLayer] = []
    private var storeLayers: [Int: StoreLayer] = [:]
    /// The K or V rows each store layer's `kv_append` was given, by the append's value:
    /// the attention node appends them to its store.
    private var storeAppends: [Value: Value] = [:]
    /// Helper functions a node's function calls (the attention kernel call), by node.
    private(set) var preludes: [Int: [String]] = [:]
    /// Why this graph cannot run batched sequences (`attune_model_fork`); empty when it can.
    private(set) var batchRefusals: [String] = []
    /// Why this graph cannot run packed documents (`attune_model_prefill_packed`); empty when it can.
    private(set) var packedRefusals: [String] = []
    /// Names of the kernels' counters (`m->counters[i]`), e.g. `layer0.unified_max.fallback_rows`.
    private(set) var counterNames: [String] = []
    private var constantMemo: [Int: Bool] = [:]
    private let uses: [Value: [Int]]
    private var current = 0

    init(graph: Graph, weights: WeightSource, options: CodegenOptions) {
        self.graph = graph
        self.options = options
        self.folder = ConstantFolder(graph: graph, weights: weights)
        self.uses = graph.users()
    }

    /// A batched decode pass holds rows of several sequences, and one length-dependent
    /// table per pass would be that of the longest, not each sequence's own.
    /// Packed documents likewise: each document's table would be the longest one's.
    private mutating func refuseIfLengthDependent(_ f: RopeFrequencies) {
        let reason = "its RoPE table depends on each pass's length (dynamic NTK or LongRoPE)"
        if f.dependsOnLength && !batchRefusals.contains(reason) { batchRefusals.append(reason) }
        if f.dependsOnLength && !packedRefusals.contains(reason) { packedRefusals.append(reason) }
    }

    /// How a node rotates by `f`: declarations of its `inv_freq` table (none for plain
    /// RoPE, which `attune_op_rope` computes from theta) and the call for one q or k block.
    /// Fixed tables are `static const double` with every digit the IR holds; LongRoPE
    /// picks one of two tables and dynamic NTK recomputes its table from this pass's
    /// length (`attune_rope_length`: max position + 1, as transformers).
    static func ropeCall(_ f: RopeFrequencies, rotaryDim: Int, positions: String, rows: String)
        -> (setup: [String], call: (_ x: String, _ stride: Int, _ heads: Int, _ headDim: Int) -> String) {
        func table(_ name: String, _ values: [Double]) -> String {
            "static const double \(name)[\(values.count)] = {\(values.map(CLiteral.double).joined(separator: ", "))};"
        }
        let half = rotaryDim / 2
        var setup: [String]
        switch f.source {
        case .theta(let theta) where f.attentionScaling == 1:
            return ([], { x, stride, heads, headDim in
                "attune_op_rope(\(x), \(stride), \(positions), \(rows), \(heads), \(headDim), \(rotaryDim), \(CLiteral.double(theta)));"
            })
        case .theta(let theta):
            setup = [table("inv_freq", RopeFrequencies.plain(base: theta, rotaryDim: rotaryDim))]
        case .table(let values):
            setup = [table("inv_freq", values)]
        case .longrope(let short, let long, let originalLength):
            setup = [table("short_inv_freq", short), table("long_inv_freq", long),
                     "/* LongRoPE: the long factors once this pass reaches past position \(originalLength - 1). */",
                     "const double *inv_freq = attune_rope_length(\(positions), \(rows)) > \(originalLength) ? long_inv_freq : short_inv_freq;"]
        case .dynamicNTK(let theta, let factor, let originalLength):
            setup = ["/* Dynamic NTK: the table for the length this pass reaches. */",
                     "double inv_freq[\(half)];",
                     "attune_rope_dynamic_ntk(inv_freq, \(rotaryDim), \(CLiteral.double(theta)), \(CLiteral.double(factor)), "
                         + "\(originalLength), attune_rope_length(\(positions), \(rows)));"]
        }
        let scaling = CLiteral.double(f.attentionScaling)
        return (setup, { x, stride, heads, headDim in
            "attune_op_rope_freqs(\(x), \(stride), \(positions), \(rows), \(heads), \(headDim), \(rotaryDim), inv_freq, \(scaling));"
        })
    }

    /// Finds the attention nodes bound to a `KVStoreKernel` and plans one store per layer;
    /// run before lowering so the layers' `kv_append` nodes know to leave the dense cache.
    mutating func planStores() throws {
        for (i, node) in graph.nodes.enumerated() {
            guard case .attention(let a) = node.op, let binding = a.binding,
                  let kernel = (try? KernelRegistry.kernel(named: binding.kernel)) as? any KVStoreKernel else { continue }
            current = i
            guard let layer = layer(of: node) else {
                throw fail("kernel '\(kernel.name)' keeps its own K/V store: its k must come from a layer's kv_append")
            }
            guard storeLayers[layer] == nil else { throw fail("layer \(layer) has two attention nodes over its own K/V store") }
            let layout = KVStoreLayout(layer: layer, kvHeads: a.kvHeads, qkDim: a.headDim, vDim: a.vHeadDim, maxTokens: options.maxContext,
                                       kvFormat: options.kvFormat(layer: layer))
            let create: [String]
            do { create = try kernel.cStoreCreate(binding.parameters, layout) } catch let error as KernelError { throw fail(error.message) }
            let store = StoreLayer(index: stores.count, layer: layer, kernel: kernel.name, create: create,
                                   reset: kernel.cStoreReset, destroy: kernel.cStoreDestroy)
            stores.append(store)
            storeLayers[layer] = store
        }
    }

    func fail(_ reason: String) -> CodegenError {
        let n = graph.nodes[current]
        return CodegenError("node %\(current) (\(n.op.mnemonic)\(n.label.map { ", \($0)" } ?? "")): \(reason)")
    }

    // MARK: values

    /// The view of an input value, recording the read for liveness.
    mutating func read(_ v: Value) throws -> View {
        if views[v] == nil, ConstantFolder.isConstant(graph, v, memo: &constantMemo) {
            let t = graph.type(of: v)
            let slot = try folder.place(v)
            views[v] = View(base: .constant(slot), column: 0, rowStride: t.shape.last?.fixedValue ?? 1,
                            rows: try Rows.of(t), width: t.shape.last?.fixedValue ?? 1)
        }
        guard let view = views[v] else { throw fail("input \(v) has no storage (node %\(v.node) was not lowered)") }
        if case .buffer(let b) = view.base { buffers[b].lastNode = max(buffers[b].lastNode, current) }
        return view
    }

    /// A matmul weight (linear weight, embedding table) in the format `--weights` chooses
    /// for how it is stored, as a C pointer to that format's elements.
    mutating func readWeight(_ v: Value, format wanted: WeightFormat? = nil) throws -> (pointer: String, format: WeightFormat) {
        guard ConstantFolder.isConstant(graph, v, memo: &constantMemo) else { throw fail("the matmul weight must be a constant") }
        let policy = weightPolicy(v)
        let format = try wanted ?? policy.format(stored: folder.storedDType(v))
        if case .quantized(let layout) = format, let width = graph.type(of: v).shape.last?.fixedValue, let reason = layout.refusal(width: width) {
            throw CodegenError("--weights \(policy.description): \(weightName(v)) has rows of \(width) weights: \(reason)")
        }
        let slot = try folder.place(v, format: format)
        return ("(const \(format.cType) *)m->w[\(slot)]", format)
    }

    /// The `--weights` policy of a matmul weight: its `--weights-for` exception by checkpoint
    /// name, else `--weights` (derived constants have no name: `--weights`).
    func weightPolicy(_ v: Value) -> WeightPolicy {
        var name: String?
        if case .weight(let n) = graph.nodes[v.node].op { name = n }
        return WeightOverride.policy(for: name, in: options.weightOverrides, fallback: options.weights)
    }

    /// The checkpoint name of a weight (or the node, for a derived constant), for messages.
    func weightName(_ v: Value) -> String {
        if case .weight(let name) = graph.nodes[v.node].op { return "weight '\(name)'" }
        return "constant %\(v.node)"
    }

    /// Reads `v` and requires unit row stride (copying into a new buffer otherwise).
    mutating func readContiguous(_ v: Value, into code: inout [String]) throws -> View {
        let view = try read(v)
        if view.isContiguous { return view }
        let copy = newBuffer(rows: view.rows, width: view.width)
        code.append("attune_op_copy_columns(\(view.pointer) - \(view.column), \(view.rowStride), \(view.column), \(view.rows.c), \(view.width), \(copy.pointer));")
        return copy
    }

    /// A fresh arena buffer for a result, live from this node on.
    mutating func newBuffer(rows: Rows, width: Int) -> View {
        buffers.append(BufferLifetime(floats: rows.bound(options) * width, firstNode: current, lastNode: current))
        return View(base: .buffer(buffers.count - 1), column: 0, rowStride: width, rows: rows, width: width)
    }

    mutating func result(_ type: TensorType) throws -> View {
        guard let width = type.shape.last?.fixedValue else { throw fail("the last dim of \(type) must be fixed") }
        return newBuffer(rows: try Rows.of(type), width: width)
    }

    /// `v` is a graph output, or the input of only a `softcap` that is one (Gemma 2's
    /// capped logits): its rows before `m->logits_from` are never read.
    func feedsOutputRows(_ v: Value) -> Bool {
        if graph.outputs.contains(where: { $0.value == v }) { return true }
        guard let users = uses[v], users.count == 1, case .softcap = graph.nodes[users[0]].op else { return false }
        return graph.outputs.contains { $0.value == Value(node: users[0]) }
    }

    func isOnlyUse(_ v: Value) -> Bool { (uses[v] ?? []).count == 1 && !graph.outputs.contains { $0.value == v } }

    /// Keeps output values alive to the end of the forward pass.
    mutating func keepAlive(_ v: Value) {
        if case .buffer(let b)? = views[v]?.base { buffers[b].lastNode = graph.nodes.count }
    }

    /// A matmul's weight [out, in] as the kernels take it: its row blocks, their row counts
    /// and the one format they share. A weight the passes concatenated from constants along
    /// rows (merged QKV, gate/up) is passed as its blocks, each its own slot, so the module
    /// reads the checkpoint's tensors where they lie instead of materialising the
    /// concatenation; blocks stored in different formats all run in f32.
    mutating func linearOperands(_ weight: Value) throws -> (blocks: [String], counts: [Int], format: WeightFormat) {
        let node = graph.nodes[weight.node]
        var parts = [weight]
        if case .concat(axis: 0) = node.op, node.inputs.count > 1,
           node.inputs.allSatisfy({ graph.type(of: $0).rank == 2 && ConstantFolder.isConstant(graph, $0, memo: &constantMemo) }) {
            parts = node.inputs
        }
        let counts = try parts.map { part -> Int in
            guard let n = graph.type(of: part).shape.first?.fixedValue else { throw fail("linear weight \(graph.type(of: part)) needs a fixed row count") }
            return n
        }
        let formats = try Set(parts.map { try weightPolicy($0).format(stored: folder.storedDType($0)) })
        if formats.count > 1, Set(parts.map(weightPolicy)).count > 1 {
            // A merged projection (q/k/v, gate/up) is one matmul: its blocks share one kernel.
            throw fail("--weights-for gives the blocks of one merged matmul (\(parts.map(weightName).joined(separator: ", "))) different formats (\(formats.map(\.name).sorted().joined(separator: ", "))); give them one pattern")
        }
        let format = formats.count == 1 ? formats.first! : .f32
        return (try parts.map { try readWeight($0, format: format).pointer }, counts, format)
    }

    /// `y = x wᵀ + bias` with the kernel of the weight's format. `consumable`: x is an arena
    /// buffer nothing reads after this call, which a quantised prefill may overwrite with its
    /// bf16 copy of the rows instead of allocating one (`*_linear_consuming`).
    mutating func linearCall(x: String, rows: String, in inWidth: Int, weight: Value, bias: String, y: String,
                             consumable: Bool = false) throws -> String {
        let (blocks, counts, format) = try linearOperands(weight)
        switch format {
        case .quantized(let layout) where consumable && blocks.count == 1:
            return "if (\(layout.cPrefix)_linear_consuming(\(x), \(rows), \(inWidth), \(blocks[0]), \(counts[0]), \(layout.group), \(layout.cScale), \(bias), \(y), 0)) "
                + "return fail(m, \"node %%\(current) linear: out of memory for the \(layout.formatWord) kernel's scratch\");"
        case .f32 where blocks.count == 1:
            return "attune_op_linear(\(x), \(rows), \(inWidth), \(blocks[0]), \(counts[0]), \(bias), \(y));"
        case .f32:
            return "attune_op_linear_blocks(\(x), \(rows), \(inWidth), (const float *const[]){\(blocks.joined(separator: ", "))}, "
                + "(const int64_t[]){\(counts.map(String.init).joined(separator: ", "))}, \(blocks.count), \(bias), \(y));"
        case .bf16:
            return "attune_op_linear_bf16_blocks(\(x), \(rows), \(inWidth), (const uint16_t *const[]){\(blocks.joined(separator: ", "))}, "
                + "(const int64_t[]){\(counts.map(String.init).joined(separator: ", "))}, \(blocks.count), \(bias), \(y));"
        case .quantized(let layout):
            // Threads 0: the OpenMP default, as the other linear kernels use.
            return "if (\(layout.cPrefix)_linear_blocks(\(x), \(rows), \(inWidth), (const void *const[]){\(blocks.joined(separator: ", "))}, "
                + "(const int64_t[]){\(counts.map(String.init).joined(separator: ", "))}, \(blocks.count), \(layout.group), \(layout.cScale), \(bias), \(y), 0)) "
                + "return fail(m, \"node %%\(current) linear: out of memory for the \(layout.formatWord) kernel's scratch\");"
        }
    }

    /// A gated MLP's first matmul with its product (`swiglu`, `geglu`): one call that never
    /// writes the [rows, 2 × inter] gate/up result where the kernels have it (bf16 and
    /// quantised weights: they pair gate and up panels); f32 weights go through OpenBLAS,
    /// so they keep the two steps. Nil when the weight is not two gate/up blocks.
    mutating func gatedLinearCall(_ op: Op, x: View, weight: Value, y: View) throws -> String? {
        let (blocks, counts, format) = try linearOperands(weight)
        guard blocks.count == 2, counts[0] == counts[1], counts[0] == y.width else { return nil }
        let gelu = op == .geGLU ? 1 : 0
        switch format {
        case .f32:
            return nil
        case .bf16:
            return "attune_op_linear_bf16_gated(\(x.pointer), \(x.rows.c), \(x.width), \(blocks[0]), \(blocks[1]), \(y.width), \(gelu), \(y.pointer));"
        case .quantized(let layout):
            return "if (\(layout.cPrefix)_linear_gated(\(x.pointer), \(x.rows.c), \(x.width), \(blocks[0]), \(blocks[1]), \(y.width), "
                + "\(layout.group), \(layout.cScale), \(gelu), \(y.pointer), 0)) "
                + "return fail(m, \"node %%\(current) \(op.mnemonic): out of memory for the \(layout.formatWord) kernel's scratch\");"
        }
    }

    // MARK: nodes

    /// C statements for node `index`; empty for nodes that only create a view.
    mutating func lower(_ index: Int) throws -> [String] {
        current = index
        let node = graph.nodes[index]
        let out = Value(node: index)
        let type = node.types[0]
        var code: [String] = []

        if ConstantFolder.isConstant(graph, out, memo: &constantMemo) { return [] }  // placed when first read
        switch node.op {
        case .input(let name):
            switch name {
            case "tokens": views[out] = View(base: .tokens, column: 0, rowStride: 1, rows: Rows(factor: 1, symbol: "seq"), width: 1)
            case "positions": views[out] = View(base: .positions, column: 0, rowStride: 1, rows: Rows(factor: 1, symbol: "seq"), width: 1)
            default: throw fail("compiled graphs take the inputs 'tokens' and 'positions' only, not '\(name)'")
            }

        case .embedding:
            guard ConstantFolder.isConstant(graph, node.inputs[0], memo: &constantMemo) else { throw fail("the embedding table must be a weight") }
            let table = try readWeight(node.inputs[0]), ids = try read(node.inputs[1])
            let y = try result(type)
            let vocab = graph.type(of: node.inputs[0]).shape[0].fixedValue!
            switch table.format {
            case .f32: code.append("int64_t bad = attune_op_embedding(\(table.pointer), \(vocab), \(y.width), \(ids.pointer), \(ids.rows.c), \(y.pointer));")
            case .bf16: code.append("int64_t bad = attune_op_embedding_bf16(\(table.pointer), \(vocab), \(y.width), \(ids.pointer), \(ids.rows.c), \(y.pointer));")
            case .quantized(let layout):
                code.append("int64_t bad = \(layout.cPrefix)_embedding(\(table.pointer), \(vocab), \(y.width), \(layout.group), \(layout.cScale), \(ids.pointer), \(ids.rows.c), \(y.pointer));")
            }
            code.append("if (bad >= 0) return fail(m, \"node %%\(index) embedding: token id %d at position %lld is outside the vocabulary of \(vocab)\", \(ids.pointer)[bad], (long long)bad);")
            views[out] = y

        case .linear(let hasBias):
            let x = try readContiguous(node.inputs[0], into: &code)
            let bias = hasBias ? try read(node.inputs[2]).pointer : "NULL"
            let y = try result(type)
            if feedsOutputRows(out), x.rows == Rows(factor: 1, symbol: "seq") {
                // The vocabulary projection: only rows whose logits the caller uses (a prompt
                // needs the last one), which for a large vocabulary is much of a prefill's work.
                code.append(try linearCall(x: "\(x.pointer) + m->logits_from * \(x.width)", rows: "seq - m->logits_from", in: x.width,
                                           weight: node.inputs[1], bias: bias, y: "\(y.pointer) + m->logits_from * \(y.width)"))
            } else {
                // A gated MLP's product feeds only its down projection: the largest matmul
                // input of a layer (512 × 4864 floats in a Qwen2.5-0.5B prefill chunk).
                let producer = graph.nodes[node.inputs[0].node].op
                let product = (producer == .swiGLU || producer == .geGLU) && isOnlyUse(node.inputs[0])
                code.append(try linearCall(x: x.pointer, rows: x.rows.c, in: x.width, weight: node.inputs[1], bias: bias, y: y.pointer,
                                           consumable: product))
            }
            views[out] = y

        case .add, .mul:
            let a = try readContiguous(node.inputs[0], into: &code), b = try readContiguous(node.inputs[1], into: &code)
            let y = try result(type)
            let fn = node.op == .add ? "attune_op_add" : "attune_op_mul"
            code.append("\(fn)(\(a.pointer), \(b.pointer), \(a.count), \(b.count), \(y.pointer));")
            views[out] = y

        case .scale(let factor):
            let x = try readContiguous(node.inputs[0], into: &code)
            let y = try result(type)
            code.append("attune_op_scale(\(x.pointer), \(x.count), \(CLiteral.float(factor)), \(y.pointer));")
            views[out] = y

        case .silu, .gelu:
            let x = try readContiguous(node.inputs[0], into: &code)
            let y = try result(type)
            code.append("attune_op_\(node.op.mnemonic)(\(x.pointer), \(x.count), \(y.pointer));")
            views[out] = y

        case .softcap(let cap):
            let x = try readContiguous(node.inputs[0], into: &code)
            let y = try result(type)
            if feedsOutputRows(out), x.rows == Rows(factor: 1, symbol: "seq") {
                // Capped logits (Gemma 2): the rows the vocabulary projection computed.
                let from = "m->logits_from * \(x.width)"
                code.append("attune_op_softcap(\(x.pointer) + \(from), (seq - m->logits_from) * \(x.width), \(CLiteral.float(cap)), \(y.pointer) + \(from));")
            } else {
                code.append("attune_op_softcap(\(x.pointer), \(x.count), \(CLiteral.float(cap)), \(y.pointer));")
            }
            views[out] = y

        case .elementwise(let program):
            var ins: [View] = []
            for v in node.inputs { ins.append(try readContiguous(v, into: &code)) }
            let y = try result(type)
            code.append("const int64_t n = \(y.count);")
            for (i, v) in ins.enumerated() {
                code.append("const float *in\(i) = \(v.pointer); const int64_t n\(i) = \(v.count);")
            }
            code.append("float *out = \(y.pointer);")
            code.append("for (int64_t i = 0; i < n; i++) {")
            for i in ins.indices { code.append("    const float x\(i) = in\(i)[n\(i) == n ? i : i % n\(i)];") }
            code.append("    out[i] = \(Self.cExpr(program.expr));")
            code.append("}")
            views[out] = y

        case .rmsNorm(let eps):
            let x = try readContiguous(node.inputs[0], into: &code), w = try read(node.inputs[1])
            let y = try result(type)
            code.append("attune_op_rms_norm(\(x.pointer), \(w.pointer), \(x.rows.c), \(x.width), \(CLiteral.float(eps)), \(y.pointer));")
            views[out] = y

        case .addRMSNorm(let eps):
            let a = try readContiguous(node.inputs[0], into: &code), b = try readContiguous(node.inputs[1], into: &code)
            let w = try read(node.inputs[2])
            let sum = try result(type), y = try result(type)
            code.append("attune_op_add_rms_norm(\(a.pointer), \(b.pointer), \(w.pointer), \(a.rows.c), \(a.width), \(CLiteral.float(eps)), \(sum.pointer), \(y.pointer));")
            views[out] = sum
            views[Value(node: index, result: 1)] = y

        case .headRMSNorm(let eps):
            let x = try read(node.inputs[0]), w = try read(node.inputs[1])
            var y = x
            if case .buffer = x.base, isOnlyUse(node.inputs[0]) {
                // Normalise in place, like rope: q and k stay strided views of the projection.
            } else {
                y = try result(type)
                code.append("attune_op_copy_columns(\(x.pointer), \(x.rowStride), 0, \(x.rows.c), \(x.width), \(y.pointer));")
            }
            code.append("attune_op_head_rms_norm(\(y.pointer), \(y.rowStride), \(w.pointer), \(y.rows.c), \(y.width / w.width), \(w.width), \(CLiteral.float(eps)));")
            views[out] = y

        case .layerNorm(let eps):
            let x = try readContiguous(node.inputs[0], into: &code), w = try read(node.inputs[1]), b = try read(node.inputs[2])
            let y = try result(type)
            code.append("attune_op_layer_norm(\(x.pointer), \(w.pointer), \(b.pointer), \(x.rows.c), \(x.width), \(CLiteral.float(eps)), \(y.pointer));")
            views[out] = y

        case .softmax:
            let x = try readContiguous(node.inputs[0], into: &code)
            let y = try result(type)
            code.append("attune_op_softmax_rows(\(x.pointer), \(x.rows.c), \(x.width), \(y.pointer));")
            views[out] = y

        case .rope(let a):
            let x = try read(node.inputs[0]), pos = try read(node.inputs[1])
            var y = x
            if case .buffer = x.base, isOnlyUse(node.inputs[0]) {
                // Rotate in place: the unrotated value has no other reader.
            } else {
                y = try result(type)
                code.append("attune_op_copy_columns(\(x.pointer), \(x.rowStride), 0, \(x.rows.c), \(x.width), \(y.pointer));")
            }
            let rope = Self.ropeCall(a.frequencies, rotaryDim: a.rotaryDim, positions: pos.pointer, rows: y.rows.c)
            refuseIfLengthDependent(a.frequencies)
            code += rope.setup
            code.append(rope.call(y.pointer, y.rowStride, a.heads, a.headDim))
            views[out] = y

        case .qkvRope(let a):
            let x = try readContiguous(node.inputs[0], into: &code)
            let bias = try a.biasInput.map { try read(node.inputs[$0]).pointer } ?? "NULL"
            let pos = try read(node.inputs[a.positionsInput])
            let width = (a.heads + 2 * a.kvHeads) * a.headDim
            let all = newBuffer(rows: x.rows, width: width)
            code.append(try linearCall(x: x.pointer, rows: x.rows.c, in: x.width, weight: node.inputs[1], bias: bias, y: all.pointer))
            if let n = a.qNormInput, let eps = a.qkNormEps {
                let qn = try read(node.inputs[n]), kn = try read(node.inputs[n + 1])
                var kAt = all
                kAt.column = a.heads * a.headDim
                code.append("attune_op_head_rms_norm(\(all.pointer), \(width), \(qn.pointer), \(x.rows.c), \(a.heads), \(a.headDim), \(CLiteral.float(eps)));")
                code.append("attune_op_head_rms_norm(\(kAt.pointer), \(width), \(kn.pointer), \(x.rows.c), \(a.kvHeads), \(a.headDim), \(CLiteral.float(eps)));")
            }
            let rope = Self.ropeCall(a.frequencies, rotaryDim: a.rotaryDim, positions: pos.pointer, rows: x.rows.c)
            refuseIfLengthDependent(a.frequencies)
            code += rope.setup
            code.append(rope.call(all.pointer, width, a.heads, a.headDim))
            var k = all
            k.column = a.heads * a.headDim
            code.append(rope.call(k.pointer, width, a.kvHeads, a.headDim))
            let widths = [a.heads * a.headDim, a.kvHeads * a.headDim, a.kvHeads * a.headDim]
            var column = 0
            for r in 0..<3 {
                views[Value(node: index, result: r)] = View(base: all.base, column: column, rowStride: width, rows: x.rows, width: widths[r])
                column += widths[r]
            }

        case .swiGLU, .geGLU:
            let x = try readContiguous(node.inputs[0], into: &code)
            let y = try result(type)
            if let call = try gatedLinearCall(node.op, x: x, weight: node.inputs[1], y: y) {
                code.append(call)
                views[out] = y
                break
            }
            let gu = newBuffer(rows: x.rows, width: 2 * y.width)
            code.append(try linearCall(x: x.pointer, rows: x.rows.c, in: x.width, weight: node.inputs[1], bias: "NULL", y: gu.pointer))
            code.append("attune_op_\(node.op.mnemonic)_epilogue(\(gu.pointer), \(x.rows.c), \(y.width), \(y.pointer));")
            views[out] = y

        case .kvAppend(let layer, let kind) where storeLayers[layer] != nil:
            // The layer's attention kernel stores K/V itself: no dense cache rows.
            cacheWidths[layer * 2 + (kind == .key ? 0 : 1)] = 0
            storeAppends[out] = node.inputs[0]

        case .kvAppend(let layer, let kind) where options.kvFormat(layer: layer) != .f32:
            let x = try read(node.inputs[0])
            let cache = layer * 2 + (kind == .key ? 0 : 1)
            cacheWidths[cache] = x.width
            code += try quantisedAppend(cache: cache, x: x, layer: layer, node: out.node)
            views[out] = View(base: .cache(cache), column: 0, rowStride: x.width, rows: Rows(factor: 1, symbol: "kv"), width: x.width)

        case .kvAppend(let layer, let kind):
            let x = try read(node.inputs[0])
            let cache = layer * 2 + (kind == .key ? 0 : 1)
            cacheWidths[cache] = x.width
            code.append("if (m->nseq > 0) attune_op_kv_scatter(m->suffix[\(cache)], m->row_slot, \(x.pointer), \(x.rowStride), \(x.rows.c), \(x.width));")
            code.append("else attune_op_kv_append(m->kv[\(cache)], m->length, \(x.pointer), \(x.rowStride), \(x.rows.c), \(x.width));")
            views[out] = View(base: .cache(cache), column: 0, rowStride: x.width, rows: Rows(factor: 1, symbol: "kv"), width: x.width)

        case .attention(let a):
            code += try attention(a, node, out)

        case .reshape:
            let x = try read(node.inputs[0])
            guard x.isContiguous else { throw fail("reshape of a strided view; it must follow a contiguous value") }
            var y = x
            y.rows = try Rows.of(type)
            y.width = type.shape.last?.fixedValue ?? 1
            y.rowStride = y.width
            views[out] = y

        case .slice(let axis, let start, let end):
            let x = try read(node.inputs[0])
            guard axis == type.rank - 1 else { throw fail("only slices along the last axis have a C lowering") }
            var y = x
            y.column += start
            y.width = (end ?? x.width) - start
            views[out] = y

        case .concat(let axis):
            guard axis == type.rank - 1 else { throw fail("only concatenation along the last axis has a C lowering") }
            let y = try result(type)
            var column = 0
            for v in node.inputs {
                let x = try read(v)
                code.append("for (int64_t r = 0; r < \(x.rows.c); r++) memcpy(\(y.pointer) + r * \(y.width) + \(column), \(x.pointer) + r * \(x.rowStride), sizeof(float) * \(x.width));")
                column += x.width
            }
            views[out] = y

        case .weight, .matmul, .transpose, .repeatInterleave, .attentionMask:
            throw fail("\(node.op.mnemonic) on activations has no C lowering: attention-pattern recognition should have replaced it (see `attune inspect`)")
        }
        return code
    }

    private mutating func attention(_ a: AttentionAttrs, _ node: Node, _ out: Value) throws -> [String] {
        guard let binding = a.binding else { throw fail("attention has no kernel: run kernel selection first") }
        let kernel: any AttentionKernel
        do { kernel = try KernelRegistry.kernel(named: binding.kernel) } catch { throw fail("\(error)") }
        var parameters = binding.parameters
        // The sigmoid bias is the model's, carried by the node, not a tuning knob: a
        // different one asked for on the command line would change the model (it was once
        // dropped silently), so it is refused.
        if case .sigmoid(let bias) = a.normalizer {
            if let asked = parameters["bias"], Float(asked) != Float(bias) {
                throw fail("sigmoid's bias is the model's (\(bias), from sigmoid_bias or -ln(max_position_embeddings)); a kernel parameter bias=\(asked) would change the model, so it is refused")
            }
            parameters["bias"] = bias
        }
        if let refusal = modifierRefusal(kernel, a) { throw fail(refusal) }
        if let decode = a.decodeBinding, let kernel = try? KernelRegistry.kernel(named: decode.kernel),
           let refusal = modifierRefusal(kernel, a) {
            throw fail("decode " + refusal)
        }
        if let storeKernel = kernel as? any KVStoreKernel {
            kernelSources.formUnion(kernel.cSources)
            return try storeAttention(storeKernel, a, parameters, node, out)
        }
        let invocation = try invocation(kernel, parameters, binding, heads: a.heads)
        switch (a.normalizer, kernel.normalizer) {
        case (.softmax, .softmax), (.sigmoid, .sigmoid): break
        default: throw fail("kernel '\(kernel.name)' computes \(kernel.normalizer.rawValue) attention; this node's normaliser differs")
        }
        kernelSources.formUnion(kernel.cSources)
        let q = try read(node.inputs[0]), k = try read(node.inputs[1]), v = try read(node.inputs[2])
        let y = try result(node.types[0])
        var code = [
            "attune_attention_problem p;",
            "attune_attention_problem_init(&p, 1, \(a.heads), \(a.kvHeads), \(q.rows.c), \(k.rows.c), \(a.headDim), \(a.vHeadDim));",
            "p.q_stride = (attune_strides){0, \(a.headDim), \(q.rowStride)};",
            "p.k_stride = (attune_strides){0, \(a.headDim), \(k.rowStride)};",
            "p.v_stride = (attune_strides){0, \(a.vHeadDim), \(v.rowStride)};",
            "p.o_stride = (attune_strides){0, \(a.vHeadDim), \(y.rowStride)};",
            "p.scale = \(CLiteral.float(a.scale));",
            "p.causal = \(a.causal ? 1 : 0);",
        ]
        if let w = a.window { code.append("p.window = \(w);") }
        if let c = a.softcap { code.append("p.softcap = \(CLiteral.float(c));") }
        // ALiBi's slopes as a table of the generated file (the kernels' own standard slopes);
        // the sink logits are the node's weight.
        var slopeTable: [String] = []
        if a.alibi {
            let slopes = AttentionProblem.standardALiBiSlopes(heads: a.heads)
            slopeTable = ["/* ALiBi slopes of node %\(out.node)'s \(a.heads) heads (the standard ones). */",
                          "static const float alibi_slopes_\(out.node)[\(a.heads)] = {\(slopes.map { CLiteral.float(Double($0)) }.joined(separator: ", "))};"]
            code.append("p.alibi_slopes = alibi_slopes_\(out.node);")
        }
        if let s = a.sinksInput { code.append("p.sinks = \(try read(node.inputs[s]).pointer);") }
        let packedReason = packedRefusal(a, kernel, layer: layer(of: node), k: k, v: v)
        let takesDocuments = packedReason == nil
        if let packedReason {
            packedRefusals.append(packedReason)
        } else {
            code.append("p.doc_ids = m->doc_ids;  /* packed documents (attune_model_prefill_packed), else NULL */")
        }
        code += try kvFormatFields(a, kernel, k: k, v: v)
        code.append("attune_status status;")

        // The kernel call lives in its own function so batched sequences can run it for the
        // shared-prefix pass and for each sequence's suffix (attune_prefix_batch_attention).
        let attend = "attend_\(out.node)"
        var helper = ["/* The kernel call of node %\(out.node): every pass of this attention goes through it. */",
                      "static int32_t \(attend)(void *ctx, const attune_attention_problem *pp, const attune_attention_tensors *tp, attune_status *sp) {",
                      "    UNUSED attune_model *m = ctx;",
                      "    attune_attention_problem p = *pp;",
                      "    attune_attention_tensors t = *tp;",
                      "    attune_status status;"]
        for (name, values) in binding.tables.sorted(by: { $0.key < $1.key }) {
            helper.append("    static const float table_\(name)[\(values.count)] = {\(values.map { CLiteral.float($0) }.joined(separator: ", "))};")
        }
        helper += counterSlots(kernel, node, out).map { "    " + $0 }
        if let selection = a.selection {
            // The key selection this node produces (its second result) or reads (its fourth
            // input): int32 positions in arena floats, one row per query tile of the call.
            let table: View
            if case .produce(let w) = selection {
                table = newBuffer(rows: q.rows, width: w)
                views[Value(node: out.node, result: 1)] = table
            } else {
                table = try read(node.inputs[3])
            }
            helper.append("    attune_kascade_indices sel = {(int32_t *)(\(table.pointer)), \(selection.width / a.kvHeads), pp->q_len};")
        }
        // What the document mask saved, summed for attune_model_mask_tiles (a packed prefill only).
        if takesDocuments { helper += ["    attune_mask_stats mask_tiles = {0, 0, 0};", "    if (p.doc_ids) p.mask_stats = &mask_tiles;"] }
        helper += invocation.map { "    " + $0 }
        if takesDocuments { helper.append("    attune_model_count_mask_tiles(m, &mask_tiles);") }
        helper += ["    *sp = status;", "    return rc;", "}"]
        if let decode = a.decodeBinding {
            helper = try phaseSplit(helper, decode: decode, a, node, out)
        }
        preludes[out.node] = slopeTable + helper

        let kernels = kernel.name + (a.decodeBinding.map { ", decode \($0.kernel)" } ?? "")
        let failure = "return fail(m, \"node %%\(out.node) attention (\(kernels)): %s\", status.message);"
        let single = ["const attune_attention_tensors t = {\(q.pointer), \(k.pointer), \(v.pointer), \(y.pointer), NULL};",
                      "if (\(attend)(m, &p, &t, &status)) \(failure)"]
        if let reason = batchRefusal(a, kernel, layer: layer(of: node), k: k, v: v) {
            batchRefusals.append(reason)
            code += single
        } else if case .cache(let kc) = k.base, case .cache(let vc) = v.base {
            kernelSources.formUnion(PrefixSharedKernel().cSources)
            code.append("if (m->nseq == 0) {")
            code += single.map { "    " + $0 }
            code += ["} else {",
                     "    const attune_prefix_batch b = {.q = \(q.pointer), .q_row_stride = \(q.rowStride), .o = \(y.pointer), .o_row_stride = \(y.rowStride), .rows = seq,",
                     "                                   .prefix_k = m->kv[\(kc)], .prefix_v = m->kv[\(vc)], .prefix_len = m->length, .k_row_stride = \(k.rowStride), .v_row_stride = \(v.rowStride),",
                     "                                   .groups = m->n_groups, .first = m->group_first, .count = m->group_count,",
                     "                                   .suffix_k = (const float *const *)m->group_rows[\(kc)], .suffix_v = (const float *const *)m->group_rows[\(vc)], .suffix_len = m->group_kv};",
                     "    if (attune_prefix_batch_attention(&p, &b, \(attend), m, &status)) \(failure)",
                     "}"]
        }
        views[out] = y
        return code
    }

    /// `attend` (the prefill helper's lines) turned into one that runs the decode binding's
    /// kernel on a single query row (a decode step) and the prefill kernel otherwise; each
    /// branch is a block of its own, so the two kernels' params, tables and counters stay apart.
    private mutating func phaseSplit(_ attend: [String], decode: KernelBinding, _ a: AttentionAttrs, _ node: Node, _ out: Value) throws -> [String] {
        let kernel: any AttentionKernel
        do { kernel = try KernelRegistry.kernel(named: decode.kernel) } catch { throw fail("\(error)") }
        if kernel is any KVStoreKernel || a.selection != nil {
            throw fail("decode kernel '\(kernel.name)': a kernel keeping its own K/V store or key selections runs both phases or neither")
        }
        var parameters = decode.parameters
        if case .sigmoid(let bias) = a.normalizer {
            if let asked = parameters["bias"], Float(asked) != Float(bias) {
                throw fail("sigmoid's bias is the model's (\(bias)); a decode kernel parameter bias=\(asked) would change the model, so it is refused")
            }
            parameters["bias"] = bias
        }
        let invocation = try invocation(kernel, parameters, decode, heads: a.heads)
        if let refusal = kernel.kvFormatRefusal(layer(of: node).map(options.kvFormat(layer:)) ?? options.kvFormat) {
            throw fail("decode " + refusal + "; choose another kernel or --kv f32")
        }
        kernelSources.formUnion(kernel.cSources)
        // The signature and the copies of p, t and status (6 lines) are shared; the rest is the prefill call.
        let head = Array(attend.prefix(6)), prefill = attend.dropFirst(6).dropLast()
        var body = ["    /* One query row (a decode step) runs \(kernel.name), more rows the prefill kernel. */",
                    "    if (pp->q_len == 1) {"]
        for (name, values) in decode.tables.sorted(by: { $0.key < $1.key }) {
            body.append("        static const float table_\(name)[\(values.count)] = {\(values.map { CLiteral.float($0) }.joined(separator: ", "))};")
        }
        body += counterSlots(kernel, node, out, phase: "decode").map { "        " + $0 }
        body += invocation.map { "        " + $0 }
        body += ["        *sp = status;", "        return rc;", "    } else {"]
        body += prefill.map { "    " + $0 }
        body += ["    }", "}"]
        return head + body
    }

    /// The K/V rows of a non-f32 KV cache, quantised as they are appended (`attune_kv_quantize`:
    /// int8 per position and kv head, so the heads come from the attention node reading the cache).
    private mutating func quantisedAppend(cache: Int, x: View, layer: Int, node: Int) throws -> [String] {
        let format = options.kvFormat(layer: layer)
        var heads = 1
        if let (h, dim) = headsOfCache(appendedBy: node) {
            guard h * dim == x.width else { throw fail("KV cache rows of \(x.width) values are not \(h) heads of \(dim)") }
            heads = h
        } else if format == .int8 {
            throw fail("--kv int8 keeps one scale per kv head: layer \(layer)'s cache must be read by an attention node")
        }
        cacheHeads[cache] = heads
        let reason = "its KV cache is stored as \(format.rawValue); batched sequences need --kv f32"
        if !batchRefusals.contains(reason) { batchRefusals.append(reason) }
        let at = "(char *)m->kv[\(cache)] + m->length * \(x.width * format.elementBytes)"
        let scale = format == .int8 ? "m->kv_scale[\(cache)] + m->length * \(heads)" : "NULL"
        return ["attune_kv_quantize(\(format.cName), \(x.rows.c), \(heads), \(x.width / heads), \(x.pointer), \(x.rowStride), \(at), \(x.width), \(scale), \(heads));"]
    }

    /// Kv heads and head dim of the attention node reading the cache `kv_append` node `node` fills.
    private func headsOfCache(appendedBy node: Int) -> (Int, Int)? {
        for n in graph.nodes {
            guard case .attention(let a) = n.op else { continue }
            if n.inputs[1].node == node { return (a.kvHeads, a.headDim) }
            if n.inputs[2].node == node { return (a.kvHeads, a.vHeadDim) }
        }
        return nil
    }

    /// The problem's K/V format fields when this attention reads a non-f32 KV cache.
    private func kvFormatFields(_ a: AttentionAttrs, _ kernel: any AttentionKernel, k: View, v: View) throws -> [String] {
        let kc: Int, vc: Int
        switch (k.base, v.base) {
        case (.cache(let x), .cache(let y)): (kc, vc) = (x, y)
        case (.cache(let x), _), (_, .cache(let x)): throw fail("--kv \(options.kvFormat(layer: x / 2).rawValue): K and V must both come from the KV cache")
        default: return []
        }
        let format = options.kvFormat(layer: kc / 2)
        if format == .f32 { return [] }
        if let refusal = kernel.kvFormatRefusal(format) { throw fail(refusal + "; choose another kernel or --kv f32") }
        guard k.column == 0, v.column == 0 else { throw fail("--kv \(format.rawValue) reads whole cache rows; this node reads a column slice") }
        var lines = ["p.kv.format = \(format.cName);"]
        if format == .int8 {
            lines += ["p.kv.k_scale = m->kv_scale[\(kc)];", "p.kv.v_scale = m->kv_scale[\(vc)];",
                      "p.kv.k_scale_stride = p.kv.v_scale_stride = (attune_strides){0, 1, \(a.kvHeads)};"]
        }
        return lines
    }

    /// Why `kernel` cannot bind a node with `a`'s ALiBi or sinks, or nil: the kernel's own
    /// refusals of a problem with them that it does not make without them.
    private func modifierRefusal(_ kernel: any AttentionKernel, _ a: AttentionAttrs) -> String? {
        guard a.alibi || a.sinks else { return nil }
        let plain = AttentionProblem(qHeads: a.heads, kvHeads: a.kvHeads, qLen: 1, kvLen: 1, qkDim: a.headDim, vDim: a.vHeadDim,
                                     causal: a.causal)
        var modified = plain
        modified.addModifiers(of: a)
        let before = Set(kernel.unsupportedReasons(plain))
        return kernel.unsupportedReasons(modified).first { !before.contains($0) }
    }

    /// Why attention `a` cannot run packed documents, or nil: its kernels (prefill and any
    /// decode binding, which a one-row chunk runs) must take document ids, and its keys
    /// must be the KV cache, whose positions the document ids number.
    private func packedRefusal(_ a: AttentionAttrs, _ kernel: any AttentionKernel, layer: Int?, k: View, v: View) -> String? {
        let which = layer.map { "layer \($0)" } ?? "an attention node"
        guard case .cache = k.base, case .cache = v.base else { return "\(which) does not read the KV cache" }
        let plain = AttentionProblem(qHeads: a.heads, kvHeads: a.kvHeads, qLen: 2, kvLen: 2, qkDim: a.headDim, vDim: a.vHeadDim,
                                     causal: a.causal)
        var packed = plain
        packed.documentIDs = [0, 1]
        let decode = a.decodeBinding.flatMap { try? KernelRegistry.kernel(named: $0.kernel) }
        for k in [kernel] + (decode.map { [$0] } ?? []) {
            let before = Set(k.unsupportedReasons(plain))
            if let reason = k.unsupportedReasons(packed).first(where: { !before.contains($0) }) { return "\(which): \(reason)" }
        }
        return nil
    }

    /// Why attention `a` cannot run batched sequences over a shared prefix, or nil.
    private func batchRefusal(_ a: AttentionAttrs, _ kernel: any AttentionKernel, layer: Int?, k: View, v: View) -> String? {
        let which = layer.map { "layer \($0)" } ?? "an attention node"
        if kernel.normalizer != .softmax { return "\(which) uses \(kernel.normalizer.rawValue) attention, which has no log-sum-exp to merge a shared prefix with" }
        if a.window != nil { return "\(which) has a sliding window, which a shared prefix would cross" }
        if a.selection != nil { return "\(which) passes kascade key selections, which are per sequence" }
        if a.alibi || a.sinks {
            return "\(which) has \(a.alibi ? "ALiBi" : "attention sinks"), which the shared-prefix merge does not carry (a suffix's keys would lose their positions, a sink would count twice)"
        }
        guard case .cache = k.base, case .cache = v.base else { return "\(which) does not read the KV cache" }
        return nil
    }

    /// Declares `counters` for a kernel that counts, naming its slots after the layer.
    /// `phase` ("decode") names the slots of a decode binding's kernel apart from the prefill one's.
    private mutating func counterSlots(_ kernel: any AttentionKernel, _ node: Node, _ out: Value, phase: String? = nil) -> [String] {
        guard !kernel.cCounters.isEmpty else { return [] }
        let owner = (layer(of: node).map { "layer\($0)" } ?? "node\(out.node)") + (phase.map { ".\($0)" } ?? "")
        defer { counterNames += kernel.cCounters.map { "\(owner).\(kernel.name).\($0)" } }
        return ["int64_t *counters = m->counters + \(counterNames.count);"]
    }

    /// The C call of `kernel` bound by `binding` (its tables) with `parameters`; a kernel
    /// compiled graphs cannot call, or bad tables, is a one-line error.
    private func invocation(_ kernel: any AttentionKernel, _ parameters: KernelParameters, _ binding: KernelBinding,
                            heads: Int) throws -> [String] {
        do {
            guard let statements = try kernel.cInvocation(parameters, tables: binding.tables, qHeads: heads) else {
                throw fail("kernel '\(binding.kernel)' cannot be bound to a node: \(kernel.cUnavailableReason)")
            }
            return statements
        } catch let error as KernelError { throw fail(error.message) }
    }

    /// Attention over a kernel's own K/V store: the chunk's K/V rows (what the layer's
    /// `kv_append` nodes were given) are appended, then the queries attend.
    private mutating func storeAttention(_ kernel: any KVStoreKernel, _ a: AttentionAttrs, _ parameters: KernelParameters,
                                         _ node: Node, _ out: Value) throws -> [String] {
        guard let layer = layer(of: node), let store = storeLayers[layer]?.index,
              let kRows = storeAppends[node.inputs[1]], let vRows = storeAppends[node.inputs[2]] else {
            throw fail("kernel '\(kernel.name)' keeps its own K/V store: its k and v must come straight from this layer's kv_append nodes")
        }
        if a.window != nil { throw fail("kernel '\(kernel.name)' does not support a sliding window") }
        if a.softcap != nil { throw fail("kernel '\(kernel.name)' does not implement logit soft-capping; flash does") }
        if let refusal = kernel.kvFormatRefusal(options.kvFormat(layer: layer)) { throw fail(refusal + "; choose another kernel or --kv f32") }
        let q = try read(node.inputs[0]), k = try read(kRows), v = try read(vRows)
        let y = try result(node.types[0])
        batchRefusals.append("layer \(layer) keeps its K/V in a \(kernel.name) store")
        packedRefusals.append("layer \(layer) keeps its K/V in a \(kernel.name) store, whose kernel takes no document mask")
        let call = KVStoreCall(store: "m->store[\(store)]", rows: q.rows.c, heads: a.heads, kvHeads: a.kvHeads,
                               qkDim: a.headDim, vDim: a.vHeadDim, scale: a.scale, causal: a.causal,
                               q: .init(pointer: q.pointer, rowStride: q.rowStride), k: .init(pointer: k.pointer, rowStride: k.rowStride),
                               v: .init(pointer: v.pointer, rowStride: v.rowStride), o: .init(pointer: y.pointer, rowStride: y.rowStride))
        var code = ["attune_status status;"]
        code += counterSlots(kernel, node, out)
        do { code += try kernel.cStoreAttention(parameters, call) } catch let error as KernelError { throw fail(error.message) }
        code.append("if (rc) return fail(m, \"node %%\(out.node) attention (\(kernel.name)): %s\", status.message);")
        views[out] = y
        return code
    }

    /// The decoder layer of an attention node: the layer of the `kv_append` feeding its keys.
    private func layer(of attention: Node) -> Int? {
        if case .kvAppend(let layer, _) = graph.nodes[attention.inputs[1].node].op { return layer }
        return nil
    }

    static func cExpr(_ e: ElementwiseExpr) -> String {
        switch e {
        case .input(let i): return "x\(i)"
        case .constant(let c): return CLiteral.float(c)
        case .add(let a, let b): return "(\(cExpr(a)) + \(cExpr(b)))"
        case .mul(let a, let b): return "(\(cExpr(a)) * \(cExpr(b)))"
        case .silu(let a): return "attune_silu(\(cExpr(a)))"
        case .gelu(let a): return "attune_gelu(\(cExpr(a)))"
        }
    }
}
