/// An attribute value in the `.attn` text format.
public enum AttrValue: Sendable, Hashable, CustomStringConvertible {
    case int(Int)
    case double(Double)
    case bool(Bool)
    case string(String)
    /// A bare word: an enum case (`softmax`, `key`) or a symbolic dim (`seq`).
    case ident(String)
    case list([AttrValue])
    case dict([String: AttrValue])

    public var description: String {
        switch self {
        case .int(let n): return String(n)
        case .double(let d):
            // Shortest round-trip form, always with a '.' or exponent so it reads back as a double.
            let s = d.description
            return s.contains(".") || s.contains("e") || s.contains("n") || s.contains("i") ? s : s + ".0"
        case .bool(let b): return b ? "true" : "false"
        case .string(let s): return "\"" + s.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"") + "\""
        case .ident(let s): return s
        case .list(let xs): return "[" + xs.map(\.description).joined(separator: ", ") + "]"
        case .dict(let d): return "{" + d.keys.sorted().map { "\($0) = \(d[$0]!)" }.joined(separator: ", ") + "}"
        }
    }
}

/// Text names and attributes of ops: the one table the printer and the parser share.
extension Op {
    /// Every mnemonic, so tests can check that each has a printer, parser and type rule.
    public static let mnemonics = [
        "input", "weight", "embedding", "linear", "matmul", "add", "mul", "scale", "silu", "gelu",
        "elementwise", "softcap", "rms_norm", "layer_norm", "add_rms_norm", "head_rms_norm", "softmax", "rope", "attention_mask",
        "attention", "kv_append", "swiglu", "geglu", "qkv_rope", "reshape", "transpose", "slice", "concat",
        "repeat_interleave",
    ]

    public var mnemonic: String {
        switch self {
        case .input: return "input"
        case .weight: return "weight"
        case .embedding: return "embedding"
        case .linear: return "linear"
        case .matmul: return "matmul"
        case .add: return "add"
        case .mul: return "mul"
        case .scale: return "scale"
        case .silu: return "silu"
        case .gelu: return "gelu"
        case .elementwise: return "elementwise"
        case .softcap: return "softcap"
        case .rmsNorm: return "rms_norm"
        case .layerNorm: return "layer_norm"
        case .addRMSNorm: return "add_rms_norm"
        case .headRMSNorm: return "head_rms_norm"
        case .softmax: return "softmax"
        case .rope: return "rope"
        case .attentionMask: return "attention_mask"
        case .attention: return "attention"
        case .kvAppend: return "kv_append"
        case .swiGLU: return "swiglu"
        case .geGLU: return "geglu"
        case .qkvRope: return "qkv_rope"
        case .reshape: return "reshape"
        case .transpose: return "transpose"
        case .slice: return "slice"
        case .concat: return "concat"
        case .repeatInterleave: return "repeat_interleave"
        }
    }

    public var attributes: [String: AttrValue] {
        switch self {
        case .input(let name), .weight(let name): return ["name": .string(name)]
        case .linear(let bias): return ["bias": .bool(bias)]
        case .matmul(let t): return ["transpose_b": .bool(t)]
        case .scale(let f): return ["factor": .double(f)]
        case .softcap(let c): return ["cap": .double(c)]
        case .elementwise(let p): return ["program": .string(p.description)]
        case .rmsNorm(let eps), .layerNorm(let eps), .addRMSNorm(let eps), .headRMSNorm(let eps): return ["eps": .double(eps)]
        case .rope(let a):
            return a.frequencies.attributes.merging(["heads": .int(a.heads), "head_dim": .int(a.headDim), "rotary_dim": .int(a.rotaryDim)]) { $1 }
        case .attentionMask(let causal, let window):
            var d: [String: AttrValue] = ["causal": .bool(causal)]
            if let window { d["window"] = .int(window) }
            return d
        case .attention(let a):
            var d: [String: AttrValue] = [
                "heads": .int(a.heads), "kv_heads": .int(a.kvHeads), "head_dim": .int(a.headDim),
                "v_head_dim": .int(a.vHeadDim), "scale": .double(a.scale), "causal": .bool(a.causal),
            ]
            if let w = a.window { d["window"] = .int(w) }
            if let c = a.softcap { d["softcap"] = .double(c) }
            if a.alibi { d["alibi"] = .bool(true) }
            if a.sinks { d["sinks"] = .bool(true) }
            switch a.selection {
            case nil: break
            case .produce(let w): d["selection"] = .ident("produce"); d["selection_width"] = .int(w)
            case .consume(let w): d["selection"] = .ident("consume"); d["selection_width"] = .int(w)
            }
            switch a.normalizer {
            case .softmax: d["normalizer"] = .ident("softmax")
            case .sigmoid(let bias): d["normalizer"] = .ident("sigmoid"); d["sigmoid_bias"] = .double(bias)
            }
            // The decode binding's attributes are the prefill one's with a "decode_" prefix.
            for (prefix, binding) in [("", a.binding), ("decode_", a.decodeBinding)] {
                guard let b = binding else { continue }
                d[prefix + "kernel"] = .string(b.kernel)
                if !b.parameters.isEmpty { d[prefix + "kernel_params"] = .dict(b.parameters.mapValues { .double($0) }) }
                if !b.reason.isEmpty { d[prefix + "kernel_reason"] = .string(b.reason) }
                if !b.tables.isEmpty { d[prefix + "kernel_tables"] = .dict(b.tables.mapValues { .list($0.map(AttrValue.double)) }) }
            }
            return d
        case .kvAppend(let layer, let kind): return ["layer": .int(layer), "kind": .ident(kind.rawValue)]
        case .qkvRope(let a):
            var d = a.frequencies.attributes.merging(["heads": .int(a.heads), "kv_heads": .int(a.kvHeads), "head_dim": .int(a.headDim),
                                                      "rotary_dim": .int(a.rotaryDim), "bias": .bool(a.hasBias)]) { $1 }
            if let eps = a.qkNormEps { d["qk_norm_eps"] = .double(eps) }
            return d
        case .reshape(let shape):
            return ["shape": .list(shape.map { d in d.fixedValue.map(AttrValue.int) ?? .ident(d.description) })]
        case .transpose(let perm): return ["perm": .list(perm.map(AttrValue.int))]
        case .slice(let axis, let start, let end):
            var d: [String: AttrValue] = ["axis": .int(axis), "start": .int(start)]
            if let end { d["end"] = .int(end) }
            return d
        case .concat(let axis): return ["axis": .int(axis)]
        case .repeatInterleave(let axis, let r): return ["axis": .int(axis), "repeats": .int(r)]
        case .embedding, .add, .mul, .silu, .gelu, .softmax, .swiGLU, .geGLU: return [:]
        }
    }

    /// The op named `mnemonic` with `attrs`; errors name the missing or ill-typed attribute.
    public static func make(_ mnemonic: String, _ attrs: [String: AttrValue]) throws -> Op {
        var a = AttrReader(mnemonic: mnemonic, attrs: attrs)
        let op: Op
        switch mnemonic {
        case "input": op = .input(name: try a.string("name"))
        case "weight": op = .weight(name: try a.string("name"))
        case "embedding": op = .embedding
        case "linear": op = .linear(hasBias: try a.bool("bias", default: false))
        case "matmul": op = .matmul(transposeB: try a.bool("transpose_b", default: false))
        case "add": op = .add
        case "mul": op = .mul
        case "scale": op = .scale(factor: try a.double("factor"))
        case "silu": op = .silu
        case "gelu": op = .gelu
        case "elementwise": op = .elementwise(try ElementwiseProgram.parse(try a.string("program")))
        case "softcap": op = .softcap(cap: try a.double("cap"))
        case "rms_norm": op = .rmsNorm(eps: try a.double("eps"))
        case "layer_norm": op = .layerNorm(eps: try a.double("eps"))
        case "add_rms_norm": op = .addRMSNorm(eps: try a.double("eps"))
        case "head_rms_norm": op = .headRMSNorm(eps: try a.double("eps"))
        case "softmax": op = .softmax
        case "rope":
            op = .rope(RopeAttrs(heads: try a.int("heads"), headDim: try a.int("head_dim"),
                                 rotaryDim: try a.optionalInt("rotary_dim"), frequencies: try a.ropeFrequencies()))
        case "attention_mask": op = .attentionMask(causal: try a.bool("causal", default: true), window: try a.optionalInt("window"))
        case "attention":
            let normalizer: AttentionNormalizer
            switch try a.ident("normalizer", default: "softmax") {
            case "softmax": normalizer = .softmax
            case "sigmoid": normalizer = .sigmoid(bias: try a.double("sigmoid_bias"))
            case let other: throw IRError("attention: normalizer must be softmax or sigmoid, got '\(other)'")
            }
            func binding(_ prefix: String) throws -> KernelBinding? {
                guard let kernel = try a.optionalString(prefix + "kernel") else { return nil }
                return KernelBinding(kernel: kernel, parameters: try a.numberDict(prefix + "kernel_params"),
                                     reason: try a.optionalString(prefix + "kernel_reason") ?? "",
                                     tables: try a.numberListDict(prefix + "kernel_tables"))
            }
            var selection: KeySelection?
            switch try a.ident("selection", default: "none") {
            case "none": selection = nil
            case "produce": selection = .produce(width: try a.int("selection_width"))
            case "consume": selection = .consume(width: try a.int("selection_width"))
            case let other: throw IRError("attention: selection must be produce or consume, got '\(other)'")
            }
            op = .attention(AttentionAttrs(heads: try a.int("heads"), kvHeads: try a.int("kv_heads"),
                                           headDim: try a.int("head_dim"), vHeadDim: try a.optionalInt("v_head_dim"),
                                           scale: try a.optionalDouble("scale"), causal: try a.bool("causal", default: true),
                                           window: try a.optionalInt("window"), normalizer: normalizer, binding: try binding(""),
                                           selection: selection, softcap: try a.optionalDouble("softcap"),
                                           decodeBinding: try binding("decode_"), alibi: try a.bool("alibi", default: false),
                                           sinks: try a.bool("sinks", default: false)))
        case "kv_append":
            guard let kind = KVKind(rawValue: try a.ident("kind", default: "")) else {
                throw IRError("kv_append: kind must be key or value")
            }
            op = .kvAppend(layer: try a.int("layer"), kind: kind)
        case "swiglu": op = .swiGLU
        case "geglu": op = .geGLU
        case "qkv_rope":
            op = .qkvRope(QKVRopeAttrs(heads: try a.int("heads"), kvHeads: try a.int("kv_heads"), headDim: try a.int("head_dim"),
                                       rotaryDim: try a.optionalInt("rotary_dim"), frequencies: try a.ropeFrequencies(),
                                       hasBias: try a.bool("bias", default: false), qkNormEps: try a.optionalDouble("qk_norm_eps")))
        case "reshape": op = .reshape(shape: try a.dims("shape"))
        case "transpose": op = .transpose(perm: try a.intList("perm"))
        case "slice": op = .slice(axis: try a.int("axis"), start: try a.int("start"), end: try a.optionalInt("end"))
        case "concat": op = .concat(axis: try a.int("axis"))
        case "repeat_interleave": op = .repeatInterleave(axis: try a.int("axis"), repeats: try a.int("repeats"))
        default:
            throw IRError("unknown op '\(mnemonic)'; known ops: \(mnemonics.joined(separator: ", "))")
        }
        try a.rejectUnused()
        return op
    }
}

/// Reads typed attributes and remembers which were used, so a misspelt attribute is an
/// error rather than silently ignored.
private struct AttrReader {
    let mnemonic: String
    let attrs: [String: AttrValue]
    var used: Set<String> = []

    init(mnemonic: String, attrs: [String: AttrValue]) {
        self.mnemonic = mnemonic
        self.attrs = attrs
    }

    mutating func get(_ key: String) -> AttrValue? {
        used.insert(key)
        return attrs[key]
    }

    func wrong(_ key: String, _ want: String, _ got: AttrValue) -> IRError {
        IRError("\(mnemonic): attribute '\(key)' must be \(want), got \(got)")
    }

    mutating func int(_ key: String) throws -> Int {
        guard let v = try optionalInt(key) else { throw IRError("\(mnemonic): missing attribute '\(key)'") }
        return v
    }

    mutating func optionalInt(_ key: String) throws -> Int? {
        guard let v = get(key) else { return nil }
        guard case .int(let n) = v else { throw wrong(key, "an integer", v) }
        return n
    }

    mutating func double(_ key: String) throws -> Double {
        guard let v = try optionalDouble(key) else { throw IRError("\(mnemonic): missing attribute '\(key)'") }
        return v
    }

    mutating func optionalDouble(_ key: String) throws -> Double? {
        guard let v = get(key) else { return nil }
        switch v {
        case .double(let d): return d
        case .int(let n): return Double(n)
        default: throw wrong(key, "a number", v)
        }
    }

    mutating func bool(_ key: String, default d: Bool) throws -> Bool {
        guard let v = get(key) else { return d }
        guard case .bool(let b) = v else { throw wrong(key, "true or false", v) }
        return b
    }

    mutating func string(_ key: String) throws -> String {
        guard let v = try optionalString(key) else { throw IRError("\(mnemonic): missing attribute '\(key)'") }
        return v
    }

    mutating func optionalString(_ key: String) throws -> String? {
        guard let v = get(key) else { return nil }
        guard case .string(let s) = v else { throw wrong(key, "a string", v) }
        return s
    }

    mutating func ident(_ key: String, default d: String) throws -> String {
        guard let v = get(key) else { return d }
        guard case .ident(let s) = v else { throw wrong(key, "a name", v) }
        return s
    }

    mutating func intList(_ key: String) throws -> [Int] {
        guard let v = get(key) else { throw IRError("\(mnemonic): missing attribute '\(key)'") }
        guard case .list(let xs) = v else { throw wrong(key, "a list of integers", v) }
        return try xs.map { x in
            guard case .int(let n) = x else { throw wrong(key, "a list of integers", v) }
            return n
        }
    }

    mutating func dims(_ key: String) throws -> [Dim] {
        guard let v = get(key) else { throw IRError("\(mnemonic): missing attribute '\(key)'") }
        guard case .list(let xs) = v else { throw wrong(key, "a list of dims", v) }
        return try xs.map { x in
            switch x {
            case .int(let n): return .fixed(n)
            case .ident(let s): return .symbol(s)
            default: throw wrong(key, "a list of dims", v)
            }
        }
    }

    mutating func numberDict(_ key: String) throws -> [String: Double] {
        guard let v = get(key) else { return [:] }
        guard case .dict(let d) = v else { throw wrong(key, "{name = number, ...}", v) }
        return try d.mapValues { x in
            switch x {
            case .int(let n): return Double(n)
            case .double(let f): return f
            default: throw wrong(key, "{name = number, ...}", v)
            }
        }
    }

    mutating func numberListDict(_ key: String) throws -> [String: [Double]] {
        guard let v = get(key) else { return [:] }
        let expected = "{name = [number, ...], ...}"
        guard case .dict(let d) = v else { throw wrong(key, expected, v) }
        return try d.mapValues { list in
            guard case .list(let xs) = list else { throw wrong(key, expected, v) }
            return try xs.map { x in
                switch x {
                case .int(let n): return Double(n)
                case .double(let f): return f
                default: throw wrong(key, expected, v)
                }
            }
        }
    }

    mutating func optionalNumberList(_ key: String) throws -> [Double]? {
        guard let v = get(key) else { return nil }
        guard case .list(let xs) = v else { throw wrong(key, "a list of numbers", v) }
        return try xs.map { x in
            switch x {
            case .int(let n): return Double(n)
            case .double(let f): return f
            default: throw wrong(key, "a list of numbers", v)
            }
        }
    }

    /// The attributes `RopeFrequencies.attributes` prints.
    mutating func ropeFrequencies() throws -> RopeFrequencies {
        try RopeFrequencies.make(theta: try optionalDouble("theta"), invFreq: try optionalNumberList("inv_freq"),
                                 longInvFreq: try optionalNumberList("long_inv_freq"),
                                 dynamicFactor: try optionalDouble("dynamic_factor"),
                                 originalLength: try optionalInt("original_length"),
                                 attentionScaling: try optionalDouble("attention_scaling"), op: mnemonic)
    }

    func rejectUnused() throws {
        let extra = Set(attrs.keys).subtracting(used).sorted()
        if !extra.isEmpty {
            throw IRError("\(mnemonic): unknown attribute\(extra.count > 1 ? "s" : "") \(extra.map { "'\($0)'" }.joined(separator: ", "))")
        }
    }
}
