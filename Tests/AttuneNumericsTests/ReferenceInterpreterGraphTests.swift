import AttuneIR
import AttuneNumerics
import XCTest

/// Whole graphs: the unfused attention pattern against `attention`, decode step by step
/// against one run, and a graph with every op.
final class ReferenceInterpreterGraphTests: XCTestCase {

    // MARK: unfused attention == attention

    struct AttentionCase {
        var heads: Int, kvHeads: Int, headDim: Int, vHeadDim: Int
        var causal = true
        var window: Int?
    }

    /// q, k, v inputs; k and v go through the layer-0 cache; outputs the unfused pattern
    /// (as in AllOpsGraph) and the `attention` op.
    func attentionGraph(_ c: AttentionCase) throws -> Graph {
        var b = GraphBuilder(name: "attention_pattern")
        let (h, hkv, d, dv) = (c.heads, c.kvHeads, c.headDim, c.vHeadDim)
        let q = b.input("q", .f32, ["seq", .fixed(h * d)])
        let k = b.input("k", .f32, ["seq", .fixed(hkv * d)])
        let v = b.input("v", .f32, ["seq", .fixed(hkv * dv)])
        let kc = try b.add(.kvAppend(layer: 0, kind: .key), [k])
        let vc = try b.add(.kvAppend(layer: 0, kind: .value), [v])
        let qh = try b.add(.transpose(perm: [1, 0, 2]), [try b.add(.reshape(shape: ["seq", .fixed(h), .fixed(d)]), [q])])
        let kh = try b.add(.repeatInterleave(axis: 0, repeats: h / hkv),
                           [try b.add(.transpose(perm: [1, 0, 2]), [try b.add(.reshape(shape: ["kv", .fixed(hkv), .fixed(d)]), [kc])])])
        let vh = try b.add(.repeatInterleave(axis: 0, repeats: h / hkv),
                           [try b.add(.transpose(perm: [1, 0, 2]), [try b.add(.reshape(shape: ["kv", .fixed(hkv), .fixed(dv)]), [vc])])])
        let scale = 1 / Double(d).squareRoot()
        let s = try b.add(.scale(factor: scale), [try b.add(.matmul(transposeB: true), [qh, kh])])
        let masked = try b.add(.add, [s, try b.add(.attentionMask(causal: c.causal, window: c.window), [s])])
        let p = try b.add(.softmax, [masked])
        let o = try b.add(.reshape(shape: ["seq", .fixed(h * dv)]),
                          [try b.add(.transpose(perm: [1, 0, 2]), [try b.add(.matmul(transposeB: false), [p, vh])])])
        b.output("unfused", o)
        let attrs = AttentionAttrs(heads: h, kvHeads: hkv, headDim: d, vHeadDim: dv, scale: scale, causal: c.causal, window: c.window)
        b.output("fused", try b.add(.attention(attrs), [q, kc, vc]))
        return b.graph
    }

    func testUnfusedAttentionPatternEqualsAttentionOpWithACache() throws {
        let cases = [
            AttentionCase(heads: 4, kvHeads: 2, headDim: 8, vHeadDim: 8),
            AttentionCase(heads: 4, kvHeads: 2, headDim: 8, vHeadDim: 8, window: 4),
            AttentionCase(heads: 6, kvHeads: 2, headDim: 8, vHeadDim: 4, window: 3),
            AttentionCase(heads: 4, kvHeads: 1, headDim: 4, vHeadDim: 4, causal: false),
            AttentionCase(heads: 2, kvHeads: 2, headDim: 4, vHeadDim: 6, causal: false, window: 2),
        ]
        var rng = SeededRandom(seed: 10)
        for (n, c) in cases.enumerated() {
            let interp = try ReferenceInterpreter(graph: try attentionGraph(c), weights: DictionaryWeights([:]))
            var kv = 0
            // Prefill, then a chunk with seq < kv, then one decode step.
            for seq in [6, 3, 1] {
                kv += seq
                let out = try interp.run(inputs: [
                    "q": rng.tensor([seq, c.heads * c.headDim]),
                    "k": rng.tensor([seq, c.kvHeads * c.headDim]),
                    "v": rng.tensor([seq, c.kvHeads * c.vHeadDim]),
                ])
                assertClose(out["unfused"], out["fused"], "case \(n), seq \(seq), kv \(kv)")
                XCTAssertEqual(out["fused"]?.shape, [seq, c.heads * c.vHeadDim])
                XCTAssertEqual(interp.cache(layer: 0, kind: .key)?.shape, [kv, c.kvHeads * c.headDim])
            }
        }
    }

    // MARK: decode == one run

    /// A decoder (hidden 64) mixing the unfused and fused forms, cycling through three
    /// layer kinds: (0) separate projections, RoPE and the unfused attention pattern with
    /// a SwiGLU MLP; (1) qkv_rope, windowed `attention` and an elementwise-fused MLP;
    /// (2) qkv_rope with bias, `attention`, a LayerNorm + GELU MLP.
    static func tinyDecoder(layers: Int = 6) throws -> Graph {
        let (hidden, heads, kvHeads, headDim, inter, vocab) = (64, 4, 2, 16, 96, 50)
        var b = GraphBuilder(name: "tiny_decoder")
        let tokens = b.input("tokens", .i32, ["seq"])
        let positions = b.input("positions", .i32, ["seq"])
        b.label = "model.embed_tokens"
        var x = try b.add(.embedding, [b.weight("embed", .f32, [.fixed(vocab), .fixed(hidden)]), tokens])
        let f = { (n: Int) in Dim.fixed(n) }
        for layer in 0..<layers {
            let l = layer % 3
            b.label = "layers.\(layer)"
            let p = "layers.\(layer)."
            let h = try b.add(.rmsNorm(eps: 1e-6), [x, b.weight(p + "ln1", .f32, [f(hidden)])])
            let q: Value, k: Value, v: Value
            if l == 0 {
                let rq = RopeAttrs(heads: heads, headDim: headDim, theta: 10000)
                let rk = RopeAttrs(heads: kvHeads, headDim: headDim, theta: 10000)
                q = try b.add(.rope(rq), [try b.add(.linear(hasBias: true), [h, b.weight(p + "wq", .f32, [f(heads * headDim), f(hidden)]),
                                                                           b.weight(p + "bq", .f32, [f(heads * headDim)])]), positions])
                k = try b.add(.rope(rk), [try b.add(.linear(hasBias: false), [h, b.weight(p + "wk", .f32, [f(kvHeads * headDim), f(hidden)])]), positions])
                v = try b.add(.linear(hasBias: false), [h, b.weight(p + "wv", .f32, [f(kvHeads * headDim), f(hidden)])])
            } else {
                let bias = l == 2
                let width = (heads + 2 * kvHeads) * headDim
                var args = [h, b.weight(p + "wqkv", .f32, [f(width), f(hidden)])]
                if bias { args.append(b.weight(p + "bqkv", .f32, [f(width)])) }
                args.append(positions)
                let r = try b.addMulti(.qkvRope(QKVRopeAttrs(heads: heads, kvHeads: kvHeads, headDim: headDim, rotaryDim: 8,
                                                             theta: 500_000, hasBias: bias)), args)
                (q, k, v) = (r[0], r[1], r[2])
            }
            let kc = try b.add(.kvAppend(layer: layer, kind: .key), [k])
            let vc = try b.add(.kvAppend(layer: layer, kind: .value), [v])
            let attn: Value
            if l == 0 {
                let qh = try b.add(.transpose(perm: [1, 0, 2]), [try b.add(.reshape(shape: ["seq", f(heads), f(headDim)]), [q])])
                let kh = try b.add(.repeatInterleave(axis: 0, repeats: heads / kvHeads),
                                   [try b.add(.transpose(perm: [1, 0, 2]), [try b.add(.reshape(shape: ["kv", f(kvHeads), f(headDim)]), [kc])])])
                let vh = try b.add(.repeatInterleave(axis: 0, repeats: heads / kvHeads),
                                   [try b.add(.transpose(perm: [1, 0, 2]), [try b.add(.reshape(shape: ["kv", f(kvHeads), f(headDim)]), [vc])])])
                let s = try b.add(.scale(factor: 0.25), [try b.add(.matmul(transposeB: true), [qh, kh])])
                let pr = try b.add(.softmax, [try b.add(.add, [s, try b.add(.attentionMask(causal: true, window: nil), [s])])])
                attn = try b.add(.reshape(shape: ["seq", f(heads * headDim)]),
                                 [try b.add(.transpose(perm: [1, 0, 2]), [try b.add(.matmul(transposeB: false), [pr, vh])])])
            } else {
                attn = try b.add(.attention(AttentionAttrs(heads: heads, kvHeads: kvHeads, headDim: headDim,
                                                           window: l == 1 ? 5 : nil)), [q, kc, vc])
            }
            let o = try b.add(.linear(hasBias: false), [attn, b.weight(p + "wo", .f32, [f(hidden), f(heads * headDim)])])
            let r = try b.addMulti(.addRMSNorm(eps: 1e-6), [x, o, b.weight(p + "ln2", .f32, [f(hidden)])])
            let down: Value
            switch l {
            case 0:
                let g = try b.add(.swiGLU, [r[1], b.weight(p + "wgu", .f32, [f(2 * inter), f(hidden)])])
                down = try b.add(.linear(hasBias: false), [g, b.weight(p + "wd", .f32, [f(hidden), f(inter)])])
            case 1:
                let gu = try b.add(.linear(hasBias: false), [r[1], b.weight(p + "wgu", .f32, [f(2 * inter), f(hidden)])])
                let gate = try b.add(.slice(axis: 1, start: 0, end: inter), [gu])
                let up = try b.add(.slice(axis: 1, start: inter, end: nil), [gu])
                let act = try b.add(.elementwise(ElementwiseProgram(.mul(.silu(.input(0)), .input(1)))), [gate, up])
                down = try b.add(.linear(hasBias: false), [act, b.weight(p + "wd", .f32, [f(hidden), f(inter)])])
            default:
                let ln = try b.add(.layerNorm(eps: 1e-5), [r[0], b.weight(p + "ln3", .f32, [f(hidden)]), b.weight(p + "ln3b", .f32, [f(hidden)])])
                let up = try b.add(.gelu, [try b.add(.linear(hasBias: true), [ln, b.weight(p + "wu", .f32, [f(inter), f(hidden)]),
                                                                            b.weight(p + "bu", .f32, [f(inter)])])])
                down = try b.add(.linear(hasBias: false), [up, b.weight(p + "wd", .f32, [f(hidden), f(inter)])])
            }
            x = try b.add(.add, [r[0], down])
        }
        b.label = "model.norm"
        let final = try b.add(.rmsNorm(eps: 1e-6), [x, b.weight("norm", .f32, [f(hidden)])])
        b.label = "lm_head"
        b.output("logits", try b.add(.linear(hasBias: false), [final, b.weight("lm_head", .f32, [f(vocab), f(hidden)])]))
        b.output("hidden", x)
        return b.graph
    }

    /// Random weights for every weight of `graph`; norm weights near 1.
    static func randomWeights(_ graph: Graph, seed: UInt64) -> DictionaryWeights {
        var rng = SeededRandom(seed: seed)
        var values: [String: [Float]] = [:]
        for (name, type) in graph.weights where values[name] == nil {
            let n = type.shape.reduce(1) { $0 * $1.fixedValue! }
            let last = name.split(separator: ".").last.map(String.init) ?? name
            let isNorm = (last.hasPrefix("ln") || last == "norm") && !last.hasSuffix("b")
            values[name] = isNorm ? rng.floats(n, scale: 0.1).map { 1 + $0 } : rng.floats(n, scale: 0.3)
        }
        return DictionaryWeights(values)
    }

    func testDecodeStepByStepEqualsOneRun() throws {
        let graph = try Self.tinyDecoder()
        XCTAssertGreaterThan(graph.nodes.count, 150)
        let interp = try ReferenceInterpreter(graph: graph, weights: Self.randomWeights(graph, seed: 20))
        let tokens = [3, 17, 42, 0, 49, 8, 8, 21, 5, 11, 30, 2, 2, 9, 44, 1, 6, 13, 27, 40]
        let whole = try interp.run(inputs: ["tokens": F64Tensor(ids: tokens), "positions": F64Tensor(ids: Array(tokens.indices))])
        let logits = try XCTUnwrap(whole["logits"])
        XCTAssertEqual(logits.shape, [20, 50])
        XCTAssertTrue(logits.data.allSatisfy(\.isFinite))
        XCTAssertEqual(interp.cache(layer: 5, kind: .value)?.shape, [20, 32])

        // Prompt of 12, then one token at a time.
        interp.reset()
        var rows: [Double] = []
        let prompt = try interp.run(inputs: ["tokens": F64Tensor(ids: Array(tokens[..<12])), "positions": F64Tensor(ids: Array(0..<12))])
        rows += prompt["logits"]!.data
        for t in 12..<tokens.count {
            let step = try interp.run(inputs: ["tokens": F64Tensor(ids: [tokens[t]]), "positions": F64Tensor(ids: [t])])
            XCTAssertEqual(step["logits"]?.shape, [1, 50])
            XCTAssertEqual(interp.cache(layer: 4, kind: .key)?.shape, [t + 1, 32])
            rows += step["logits"]!.data
        }
        assertClose(F64Tensor(shape: [20, 50], data: rows), logits, "decode vs one run")

        // reset() really starts over: the same run gives the same numbers.
        interp.reset()
        let again = try interp.run(inputs: ["tokens": F64Tensor(ids: tokens), "positions": F64Tensor(ids: Array(tokens.indices))])
        XCTAssertEqual(again["logits"], logits)
    }

    // MARK: every op

    /// The pattern of Tests/AttuneIRTests/AllOpsGraph.swift, with extra outputs to compare
    /// the fused and unfused forms it contains.
    static func allOpsGraph() throws -> Graph {
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
        let qh = try b.add(.transpose(perm: [1, 0, 2]), [try b.add(.reshape(shape: ["seq", 2, 8]), [qr])])
        let kh = try b.add(.repeatInterleave(axis: 0, repeats: 2),
                           [try b.add(.transpose(perm: [1, 0, 2]), [try b.add(.reshape(shape: ["kv", 1, 8]), [kc])])])
        let vh = try b.add(.repeatInterleave(axis: 0, repeats: 2),
                           [try b.add(.transpose(perm: [1, 0, 2]), [try b.add(.reshape(shape: ["kv", 1, 8]), [vc])])])
        let s = try b.add(.scale(factor: 0.35355339059327373), [try b.add(.matmul(transposeB: true), [qh, kh])])
        let masked = try b.add(.add, [s, try b.add(.attentionMask(causal: true, window: 4), [s])])
        let p = try b.add(.softmax, [masked])
        let o = try b.add(.reshape(shape: ["seq", 16]), [try b.add(.transpose(perm: [1, 0, 2]), [try b.add(.matmul(transposeB: false), [p, vh])])])
        let a = try b.add(.attention(AttentionAttrs(heads: 2, kvHeads: 1, headDim: 8, causal: true, window: 4,
                                                    binding: KernelBinding(kernel: "flash", parameters: ["block_kv": 64], reason: "rule: default"))),
                          [qr, kc, vc])
        let sig = try b.add(.attention(AttentionAttrs(heads: 2, kvHeads: 1, headDim: 8, normalizer: .sigmoid(bias: -7.62))), [qr, kc, vc])
        // Gemma 2's soft-capped scores, unfused and fused (a small cap, so tanh bends).
        let sc = try b.add(.softcap(cap: 0.5), [s])
        let pc = try b.add(.softmax, [try b.add(.add, [sc, try b.add(.attentionMask(causal: true, window: 4), [sc])])])
        let oc = try b.add(.reshape(shape: ["seq", 16]), [try b.add(.transpose(perm: [1, 0, 2]), [try b.add(.matmul(transposeB: false), [pc, vh])])])
        let ac = try b.add(.attention(AttentionAttrs(heads: 2, kvHeads: 1, headDim: 8, scale: 0.35355339059327373, causal: true, window: 4,
                                                     softcap: 0.5)), [qr, kc, vc])
        let wqkv = try b.add(.concat(axis: 0), [b.weight("wq2", .f32, [16, 16]), wk, wv])
        let bqkv = b.weight("bqkv", .f32, [32])
        let fused = try b.addMulti(.qkvRope(QKVRopeAttrs(heads: 2, kvHeads: 1, headDim: 8, theta: 10000, hasBias: true)),
                                   [h, wqkv, bqkv, positions])
        let normed = try b.addMulti(.qkvRope(QKVRopeAttrs(heads: 2, kvHeads: 1, headDim: 8, rotaryDim: 4, theta: 10000, hasBias: false,
                                                          qkNormEps: 1e-6)), [h, wqkv, b.weight("qn", .f32, [8]), b.weight("kn", .f32, [8]), positions])
        let sum = try b.addMulti(.addRMSNorm(eps: 1e-6), [o, a, ln])
        let wgu = b.weight("wgu", .f32, [24, 16])
        let g = try b.add(.swiGLU, [sum[1], wgu])
        let gate = try b.add(.slice(axis: 1, start: 0, end: 12), [try b.add(.linear(hasBias: false), [sum[1], wgu])])
        let up = try b.add(.slice(axis: 1, start: 12, end: nil), [try b.add(.linear(hasBias: false), [sum[1], wgu])])
        let act = try b.add(.mul, [try b.add(.silu, [gate]), up])
        let gg = try b.add(.geGLU, [sum[1], wgu])
        let actG = try b.add(.mul, [try b.add(.gelu, [gate]), up])
        let chain = try b.add(.elementwise(ElementwiseProgram(.mul(.silu(.input(0)), .add(.input(1), .constant(-0.5))))), [g, act])
        let lnb = b.weight("lnb", .f32, [16])
        let y = try b.add(.layerNorm(eps: 1e-5), [try b.add(.add, [sig, fused[0]]), ln, lnb])
        let z = try b.add(.gelu, [y])
        let out = try b.add(.mul, [z, ln])
        b.output("hidden", out)
        b.output("mlp", chain)
        b.output("k", fused[1])
        b.output("normed_q", normed[0])
        b.output("unfused_attention", o)
        b.output("attention", a)
        b.output("swiglu", g)
        b.output("unfused_swiglu", act)
        b.output("unfused_capped_attention", oc)
        b.output("capped_attention", ac)
        b.output("geglu", gg)
        b.output("unfused_geglu", actG)
        return b.graph
    }

    func testEveryOpRunsAndFusedFormsAgree() throws {
        let graph = try Self.allOpsGraph()
        XCTAssertEqual(Set(graph.nodes.map(\.op.mnemonic)), Set(Op.mnemonics), "the graph uses every op")
        let interp = try ReferenceInterpreter(graph: graph, weights: Self.randomWeights(graph, seed: 30))
        let steps: [(tokens: [Int], positions: [Int])] = [([1, 5, 9, 31, 0, 2], Array(0..<6)), ([7, 7], [6, 7]), ([3], [8])]
        for (n, step) in steps.enumerated() {
            let out = try interp.run(inputs: ["tokens": F64Tensor(ids: step.tokens), "positions": F64Tensor(ids: step.positions)])
            let seq = step.tokens.count
            XCTAssertEqual(out["hidden"]?.shape, [seq, 16])
            XCTAssertEqual(out["mlp"]?.shape, [seq, 12])
            XCTAssertEqual(out["k"]?.shape, [seq, 8])
            for (name, t) in out { XCTAssertTrue(t.data.allSatisfy(\.isFinite), "step \(n): \(name) is finite") }
            assertClose(out["unfused_attention"], out["attention"], "step \(n): attention")
            assertClose(out["unfused_swiglu"], out["swiglu"], "step \(n): swiglu")
            assertClose(out["unfused_capped_attention"], out["capped_attention"], "step \(n): capped attention")
            assertClose(out["unfused_geglu"], out["geglu"], "step \(n): geglu")
            XCTAssertGreaterThan(zip(out["capped_attention"]!.data, out["attention"]!.data).map { abs($0 - $1) }.max()!, 1e-3,
                                 "step \(n): the cap changes the attention")
        }
        XCTAssertEqual(interp.cache(layer: 0, kind: .key)?.shape, [9, 8])
    }
}
