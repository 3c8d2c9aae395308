import AttuneIR

/// A small graph that uses every op once or more, so printer, parser and verifier are
/// exercised on the whole op table.
enum AllOpsGraph {
    static func build() throws -> Graph {
        var b = GraphBuilder(name: "all_ops")
        let tokens = b.input("tokens", .i32, ["seq"])
        let positions = b.input("positions", .i32, ["seq"])
        let table = b.weight("embed", .bf16, [32, 16])
        b.label = "embed"
        let x = try b.add(.embedding, [table, tokens])
        b.label = "layer0"
        let ln = b.weight("ln", .f32, [16])
        let h = try b.add(.rmsNorm(eps: 1e-5), [x, ln])
        let wq = b.weight("wq", .f16, [16, 16]), wk = b.weight("wk", .f32, [8, 16]), wv = b.weight("wv", .f32, [8, 16])
        let bq = b.weight("bq", .f32, [16])
        let q = try b.add(.linear(hasBias: true), [h, wq, bq])
        let k = try b.add(.linear(hasBias: false), [h, wk])
        let v = try b.add(.linear(hasBias: false), [h, wv])
        let qr = try b.add(.rope(RopeAttrs(heads: 2, headDim: 8, theta: 10000)), [q, positions])
        let kn = try b.add(.headRMSNorm(eps: 1e-6), [k, b.weight("k_norm", .bf16, [8])])
        let kr = try b.add(.rope(RopeAttrs(heads: 1, headDim: 8, rotaryDim: 4, theta: 500000)), [kn, positions])
        let kc = try b.add(.kvAppend(layer: 0, kind: .key), [kr])
        let vc = try b.add(.kvAppend(layer: 0, kind: .value), [v])
        // The unfused attention pattern.
        let qh = try b.add(.transpose(perm: [1, 0, 2]), [try b.add(.reshape(shape: ["seq", 2, 8]), [qr])])
        let kh = try b.add(.repeatInterleave(axis: 0, repeats: 2),
                           [try b.add(.transpose(perm: [1, 0, 2]), [try b.add(.reshape(shape: ["kv", 1, 8]), [kc])])])
        let vh = try b.add(.repeatInterleave(axis: 0, repeats: 2),
                           [try b.add(.transpose(perm: [1, 0, 2]), [try b.add(.reshape(shape: ["kv", 1, 8]), [vc])])])
        let s = try b.add(.scale(factor: 0.35355339059327373), [try b.add(.matmul(transposeB: true), [qh, kh])])
        let capped = try b.add(.softcap(cap: 50), [s])
        let masked = try b.add(.add, [capped, try b.add(.attentionMask(causal: true, window: 4), [capped])])
        let p = try b.add(.softmax, [masked])
        let o = try b.add(.reshape(shape: ["seq", 16]), [try b.add(.transpose(perm: [1, 0, 2]), [try b.add(.matmul(transposeB: false), [p, vh])])])
        // The fused forms of the same things.
        let a = try b.add(.attention(AttentionAttrs(heads: 2, kvHeads: 1, headDim: 8, causal: true, window: 4,
                                                    binding: KernelBinding(kernel: "unified_max", parameters: ["block_kv": 64], reason: "rule: default", tables: ["phi": [1.5, -2.0]]))),
                          [qr, kc, vc])
        let sig = try b.add(.attention(AttentionAttrs(heads: 2, kvHeads: 1, headDim: 8, normalizer: .sigmoid(bias: -7.62))), [qr, kc, vc])
        let gemma = try b.add(.attention(AttentionAttrs(heads: 2, kvHeads: 1, headDim: 8, scale: 0.25, softcap: 50)), [qr, kc, vc])
        // ALiBi and sinks (the sink logits a weight, the node's fourth input).
        let modified = try b.add(.attention(AttentionAttrs(heads: 2, kvHeads: 1, headDim: 8, alibi: true, sinks: true)),
                                 [qr, kc, vc, b.weight("sinks", .f32, [2])])
        let wqkv = try b.add(.concat(axis: 0), [b.weight("wq2", .f32, [16, 16]), wk, wv])
        let bqkv = b.weight("bqkv", .f32, [32])
        let fused = try b.addMulti(.qkvRope(QKVRopeAttrs(heads: 2, kvHeads: 1, headDim: 8, theta: 10000, hasBias: true)),
                                   [h, wqkv, bqkv, positions])
        let normed = try b.addMulti(.qkvRope(QKVRopeAttrs(heads: 2, kvHeads: 1, headDim: 8, rotaryDim: 4, theta: 10000, hasBias: false,
                                                          qkNormEps: 1e-6)), [h, wqkv, b.weight("qn", .f32, [8]), b.weight("kn", .f32, [8]), positions])
        let sum = try b.addMulti(.addRMSNorm(eps: 1e-6), [o, a, ln])
        let wgu = b.weight("wgu", .f32, [24, 16])
        let g = try b.add(.swiGLU, [sum[1], wgu])
        let geglu = try b.add(.geGLU, [sum[1], wgu])
        let gate = try b.add(.slice(axis: 1, start: 0, end: 12), [try b.add(.linear(hasBias: false), [sum[1], wgu])])
        let up = try b.add(.slice(axis: 1, start: 12, end: nil), [try b.add(.linear(hasBias: false), [sum[1], wgu])])
        let act = try b.add(.mul, [try b.add(.silu, [gate]), up])
        let chain = try b.add(.elementwise(ElementwiseProgram(.mul(.silu(.input(0)), .add(.input(1), .constant(-0.5))))), [g, act])
        let lnb = b.weight("lnb", .f32, [16])
        let y = try b.add(.layerNorm(eps: 1e-5), [try b.add(.add, [sig, fused[0]]), ln, lnb])
        let z = try b.add(.gelu, [y])
        let out = try b.add(.mul, [z, ln])
        b.output("hidden", out)
        b.output("mlp", chain)
        b.output("k", fused[1])
        b.output("normed_q", normed[0])
        b.output("gemma_attention", gemma)
        b.output("modified_attention", modified)
        b.output("geglu", geglu)
        return b.graph
    }
}
