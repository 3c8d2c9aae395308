import AttuneIR
import AttuneKernels

/// Number of rows of a 2-D view: `factor` times a run-time symbol (`seq`, `kv`) or 1.
struct Rows: Equatable {
    var factor: Int
    var symbol: String?

    var c: String {
        guard let symbol else { return String(factor) }
        return factor == 1 ? symbol : "(\(factor) * \(symbol))"
    }

    func bound(_ options: CodegenOptions) -> Int {
        switch symbol {
        case nil: return factor
        case "seq": return factor * options.maxChunk
        default: return factor * options.maxContext
        }
    }

    /// Rows of a tensor seen as [product of leading dims, last dim].
    static func of(_ t: TensorType) throws -> Rows {
        var r = Rows(factor: 1, symbol: nil)
        for d in t.shape.dropLast() {
            switch d {
            case .fixed(let n): r.factor *= n
            case .symbol(let s):
                guard r.symbol == nil else { throw CodegenError("\(t) has two symbolic dims; compiled graphs allow one") }
                guard s == "seq" || s == "kv" else { throw CodegenError("\(t): compiled graphs know the symbols seq and kv, not '\(s)'") }
                r.symbol = s
            }
        }
        return r
    }
}

/// Where a view's elements live.
enum Base: Equatable {
    case buffer(Int)
    /// An f32 constant's slot (`m->w[slot]`, see ConstantFolder); matmul weights in other
    /// formats are addressed by `NodeLowering.readWeight`.
    case constant(Int)
    case cache(Int)
    case tokens
    case positions
}

/// A value as the generated code addresses it: element (r, c) is at
/// `base + column + r * rowStride + c`.
struct View: Equatable {
    var base: Base
    var column: Int
    var rowStride: Int
    var rows: Rows
    var width: Int

    var isContiguous: Bool { rowStride == width || (rows.symbol == nil && rows.factor == 1) }

    /// `rows * width` as a C expression.
    var count: String { width == 1 ? rows.c : "\(rows.c) * \(width)" }

    /// The C pointer expression; arena offsets are filled in after memory planning.
    var pointer: String {
        switch base {
        case .buffer(let b): return "(m->arena + " + CEmitter.bufferToken(b) + (column == 0 ? "" : " + \(column)") + ")"
        case .constant(let s): return column == 0 ? "((const float *)m->w[\(s)])" : "((const float *)m->w[\(s)] + \(column))"
        case .cache(let i): return column == 0 ? "m->kv[\(i)]" : "(m->kv[\(i)] + \(column))"
        case .tokens: return "tokens"
        case .positions: return "m->positions"
        }
    }
}

/// Compile-time bounds and names of a generated module.
public struct CodegenOptions: Sendable, Equatable {
    /// Largest number of tokens one forward pass takes; longer prompts run in chunks.
    public var maxChunk: Int
    /// KV-cache capacity in positions.
    public var maxContext: Int
    /// How the KV cache stores K and V (`--kv`): appends quantise, attention kernels read it as stored.
    public var kvFormat: KVFormat
    /// Layers storing K/V in another format than `kvFormat` (`--layer-kv`).
    public var kvFormatByLayer: [Int: KVFormat] = [:]
    /// Format of the matmul weights (`--weights`).
    public var weights: WeightPolicy
    /// Per-weight exceptions to `weights` (`--weights-for`), the first matching one wins.
    public var weightOverrides: [WeightOverride] = []

    public init(maxChunk: Int = 512, maxContext: Int = 2048, kvFormat: KVFormat = .f32, weights: WeightPolicy = .auto) {
        self.maxChunk = maxChunk
        self.maxContext = maxContext
        self.kvFormat = kvFormat
        self.weights = weights
    }

    /// The format layer `layer`'s KV cache stores.
    public func kvFormat(layer: Int) -> KVFormat { kvFormatByLayer[layer] ?? kvFormat }
}

/// C literals that read back to exactly the same value.
enum CLiteral {
    static func float(_ x: Double) -> String {
        let f = Float(x)
        if f.isNaN { return "NAN" }
        if f.isInfinite { return f > 0 ? "INFINITY" : "(-INFINITY)" }
        var s = f.description
        if !s.contains(".") && !s.contains("e") { s += ".0" }
        return s + "f"
    }

    static func double(_ x: Double) -> String {
        if x.isNaN { return "NAN" }
        if x.isInfinite { return x > 0 ? "INFINITY" : "(-INFINITY)" }
        var s = x.description
        if !s.contains(".") && !s.contains("e") { s += ".0" }
        return s
    }

    /// The body of a C string literal.
    static func escape(_ s: String) -> String {
        s.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"")
    }

    /// A C comment body that cannot close the comment early.
    static func comment(_ s: String) -> String { s.replacingOccurrences(of: "*/", with: "* /") }
}
