/// A fused chain of elementwise operations, as a tiny expression language:
/// `silu(in0) * in1`, `(in0 + in1) * 0.5`. Inputs are `in0`, `in1`, ... (the node's
/// inputs, broadcast like `add`); the program is pure and evaluated per element.
public indirect enum ElementwiseExpr: Sendable, Hashable, CustomStringConvertible {
    case input(Int)
    case constant(Double)
    case add(ElementwiseExpr, ElementwiseExpr)
    case mul(ElementwiseExpr, ElementwiseExpr)
    case silu(ElementwiseExpr)
    case gelu(ElementwiseExpr)

    public var description: String {
        switch self {
        case .input(let i): return "in\(i)"
        case .constant(let c): return c.description
        case .add(let a, let b): return "(\(a) + \(b))"
        case .mul(let a, let b): return "(\(a) * \(b))"
        case .silu(let a): return "silu(\(a))"
        case .gelu(let a): return "gelu(\(a))"
        }
    }

    /// Highest input index used plus one.
    public var arity: Int {
        switch self {
        case .input(let i): return i + 1
        case .constant: return 0
        case .add(let a, let b), .mul(let a, let b): return max(a.arity, b.arity)
        case .silu(let a), .gelu(let a): return a.arity
        }
    }
}

public struct ElementwiseProgram: Sendable, Hashable, CustomStringConvertible {
    public var expr: ElementwiseExpr
    public init(_ expr: ElementwiseExpr) { self.expr = expr }
    public var description: String { expr.description }

    /// Parses the text form printed by `description`.
    public static func parse(_ text: String) throws -> ElementwiseProgram {
        var p = ExprParser(Array(text.utf8))
        let e = try p.sum()
        p.skipSpaces()
        guard p.atEnd else { throw IRError("elementwise program '\(text)': unexpected text at offset \(p.i)") }
        return ElementwiseProgram(e)
    }
}

/// Recursive descent over `sum := product (+ product)*`, `product := atom (* atom)*`,
/// `atom := inN | number | silu(sum) | gelu(sum) | (sum)`.
private struct ExprParser {
    let s: [UInt8]
    var i = 0
    init(_ s: [UInt8]) { self.s = s }

    var atEnd: Bool { i >= s.count }
    mutating func skipSpaces() { while i < s.count, s[i] == 32 { i += 1 } }
    mutating func eat(_ c: Character) -> Bool {
        skipSpaces()
        if i < s.count, s[i] == c.asciiValue! { i += 1; return true }
        return false
    }

    mutating func sum() throws -> ElementwiseExpr {
        var e = try product()
        while eat("+") { e = .add(e, try product()) }
        return e
    }

    mutating func product() throws -> ElementwiseExpr {
        var e = try atom()
        while eat("*") { e = .mul(e, try atom()) }
        return e
    }

    mutating func atom() throws -> ElementwiseExpr {
        skipSpaces()
        if eat("(") {
            let e = try sum()
            guard eat(")") else { throw IRError("elementwise program: expected ')' at offset \(i)") }
            return e
        }
        let start = i
        while i < s.count, s[i] != 40, s[i] != 41, s[i] != 32, s[i] != 42, s[i] != 43 || (i > start && (s[i - 1] == 101 || s[i - 1] == 69)) { i += 1 }
        let word = String(decoding: s[start..<i], as: UTF8.self)
        if word == "silu" || word == "gelu" {
            guard eat("(") else { throw IRError("elementwise program: expected '(' after \(word)") }
            let e = try sum()
            guard eat(")") else { throw IRError("elementwise program: expected ')' at offset \(i)") }
            return word == "silu" ? .silu(e) : .gelu(e)
        }
        if word.hasPrefix("in"), let n = Int(word.dropFirst(2)), n >= 0 { return .input(n) }
        if let c = Double(word) { return .constant(c) }
        throw IRError("elementwise program: unknown term '\(word)' at offset \(start)")
    }
}
