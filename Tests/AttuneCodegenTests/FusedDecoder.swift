import AttuneIR

/// A two-layer decoder written directly in the fused form the pipeline produces
/// (qkv_rope, kv_append, attention bound to flash, add_rms_norm, swiglu), with seeded
/// random weights, so codegen can be tested without the passes.
enum FusedDecoder {
    static let vocab = 50, hidden = 32, heads = 4, kvHeads = 2, headDim = 8, inter = 48, layers = 2

    static func graph(window: Int? = nil, qkvBias: Bool = true) throws -> Graph {
        var b = GraphBuilder(name: "fused_toy")
        let tokens = b.input("tokens", .i32, ["seq"]), positions = b.input("positions", .i32, ["seq"])
        let embed = b.weight("embed", .bf16, [.fixed(vocab), .fixed(hidden)])
        var x = try b.add(.embedding, [embed, tokens])
        var normed = try b.add(.rmsNorm(eps: 1e-5), [x, b.weight("ln.0", .f32, [.fixed(hidden)])])
        let qkvWidth = (heads + 2 * kvHeads) * headDim
        for l in 0..<layers {
            b.label = "layers.\(l)"
            var ins = [normed, b.weight("wqkv.\(l)", .f16, [.fixed(qkvWidth), .fixed(hidden)])]
            if qkvBias { ins.append(b.weight("bqkv.\(l)", .f32, [.fixed(qkvWidth)])) }
            ins.append(positions)
            let qkv = try b.addMulti(.qkvRope(QKVRopeAttrs(heads: heads, kvHeads: kvHeads, headDim: headDim, theta: 10000, hasBias: qkvBias)), ins)
            let k = try b.add(.kvAppend(layer: l, kind: .key), [qkv[1]])
            let v = try b.add(.kvAppend(layer: l, kind: .value), [qkv[2]])
            let attn = try b.add(.attention(AttentionAttrs(heads: heads, kvHeads: kvHeads, headDim: headDim, window: window,
                                                           binding: KernelBinding(kernel: "flash", reason: "test"))), [qkv[0], k, v])
            let o = try b.add(.linear(hasBias: false), [attn, b.weight("wo.\(l)", .f32, [.fixed(hidden), .fixed(heads * headDim)])])
            let post = try b.addMulti(.addRMSNorm(eps: 1e-5), [x, o, b.weight("ln2.\(l)", .f32, [.fixed(hidden)])])
            let mlp = try b.add(.swiGLU, [post[1], b.weight("wgu.\(l)", .f32, [.fixed(2 * inter), .fixed(hidden)])])
            let down = try b.add(.linear(hasBias: false), [mlp, b.weight("wd.\(l)", .f32, [.fixed(hidden), .fixed(inter)])])
            if l + 1 < layers {
                let next = try b.addMulti(.addRMSNorm(eps: 1e-5), [post[0], down, b.weight("ln.\(l + 1)", .f32, [.fixed(hidden)])])
                x = next[0]
                normed = next[1]
            } else {
                x = try b.add(.add, [post[0], down])
            }
        }
        b.label = "head"
        let final = try b.add(.rmsNorm(eps: 1e-5), [x, b.weight("norm", .f32, [.fixed(hidden)])])
        let scaled = try b.add(.elementwise(ElementwiseProgram(.mul(.input(0), .constant(1.5)))), [final])
        b.output("logits", try b.add(.linear(hasBias: false), [scaled, embed]))
        return b.graph
    }

    /// Seeded weights; bf16/f16 weights are rounded to their dtype so every consumer sees the same values.
    static func weights(for g: Graph, seed: UInt64 = 3) -> DictionaryWeights {
        var state = seed
        var values: [String: [Float]] = [:]
        for (name, type) in g.weights {
            let n = type.shape.map { $0.fixedValue! }.reduce(1, *)
            let isNorm = name.hasPrefix("ln") || name == "norm"
            values[name] = (0..<n).map { _ in
                state = state &* 6364136223846793005 &+ 1442695040888963407
                let u = Float(Int32(truncatingIfNeeded: state >> 32)) / Float(Int32.max)
                var x = isNorm ? 1 + 0.1 * u : 0.3 * u
                if type.dtype == .bf16 { x = Float(bitPattern: x.bitPattern & 0xFFFF_0000) }
                if type.dtype == .f16 { x = Float(Float16(x)) }
                return x
            }
        }
        return DictionaryWeights(values)
    }
}
