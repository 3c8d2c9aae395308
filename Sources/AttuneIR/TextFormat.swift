/// The `.attn` text format: prints a graph and parses it back to an equal graph.
///
///     graph toy {
///       %0 = input() {name = "x"} : f32[seq, 64]
///       %1 = weight() {name = "w"} : bf16[32, 64]
///       %2 = linear(%0, %1) {bias = false} : f32[seq, 32]  # proj
///       output y = %2
///     }
///
/// Values are `%name` (result 0) or `%name.k`; the printer numbers nodes, hand-written
/// files may use any names. `# ...` after a node is its label; a line starting with `#`
/// is a comment. Attributes print in sorted order, so printing is deterministic.
public enum TextFormat {
    public static func print(_ g: Graph) -> String {
        var out = "graph \(g.name) {\n"
        for i in g.nodes.indices { out += "  " + line(g, i) + "\n" }
        for o in g.outputs { out += "  output \(o.name) = \(o.value)\n" }
        return out + "}\n"
    }

    /// One node as printed: `%7 = linear(%5, %6) {bias = false} : f32[seq, 64]  # label`.
    public static func line(_ g: Graph, _ i: Int) -> String {
        let n = g.nodes[i]
        var s = "%\(i) = \(n.op.mnemonic)(\(n.inputs.map(\.description).joined(separator: ", ")))"
        let attrs = n.op.attributes
        if !attrs.isEmpty { s += " " + AttrValue.dict(attrs).description }
        s += " : " + n.types.map(\.description).joined(separator: ", ")
        if let label = n.label { s += "  # " + label }
        return s
    }

    /// Parses and verifies. Errors carry the line number.
    public static func parse(_ text: String) throws -> Graph {
        var parser = TextParser()
        // "\r\n" is one Character in Swift, so split on either line ending (files written on Windows).
        let lines = text.split(omittingEmptySubsequences: false) { $0 == "\n" || $0 == "\r\n" || $0 == "\r" }
        for (index, raw) in lines.enumerated() {
            do {
                try parser.line(String(raw))
            } catch let e as IRError {
                throw IRError("line \(index + 1): \(e.message)")
            }
        }
        guard parser.closed else { throw IRError("line \(lines.count): missing '}' closing the graph") }
        try Verifier.verify(parser.graph)
        return parser.graph
    }
}

private struct TextParser {
    var graph = Graph(name: "")
    var names: [String: Int] = [:]
    var opened = false
    var closed = false

    mutating func line(_ raw: String) throws {
        var lex = Lexer(raw)
        let tokens = try lex.all()
        guard !tokens.isEmpty else { return }
        var t = TokenStream(tokens)
        if closed { throw IRError("text after the closing '}'") }
        if !opened {
            guard t.take(.word("graph")), case .word(let name)? = t.next(), t.take(.punct("{")) else {
                throw IRError("expected 'graph NAME {'")
            }
            graph.name = name
            opened = true
            return try t.end()
        }
        if t.take(.punct("}")) {
            closed = true
            return try t.end()
        }
        if t.take(.word("output")) {
            guard case .word(let name)? = t.next(), t.take(.punct("=")) else { throw IRError("expected 'output NAME = %value'") }
            graph.outputs.append(Graph.Output(name: name, value: try value(&t)))
            return try t.end()
        }
        guard case .ref(let lhs)? = t.next(), !lhs.contains(".") else { throw IRError("expected '%name = op(...)'") }
        guard names[lhs] == nil else { throw IRError("%\(lhs) is defined twice") }
        guard t.take(.punct("=")), case .word(let mnemonic)? = t.next(), t.take(.punct("(")) else {
            throw IRError("expected '%\(lhs) = op(...)'")
        }
        var inputs: [Value] = []
        if !t.take(.punct(")")) {
            repeat { inputs.append(try value(&t)) } while t.take(.punct(","))
            guard t.take(.punct(")")) else { throw IRError("expected ')' after the inputs") }
        }
        var attrs: [String: AttrValue] = [:]
        if t.peek == .punct("{") {
            guard case .dict(let d) = try attr(&t) else { throw IRError("bad attributes") }
            attrs = d
        }
        guard t.take(.punct(":")) else { throw IRError("expected ': type' after \(mnemonic)") }
        var types: [TensorType] = [try type(&t)]
        while t.take(.punct(",")) { types.append(try type(&t)) }
        var label: String?
        if case .comment(let c)? = t.peek {
            label = c
            _ = t.next()
        }
        try t.end()
        let op = try Op.make(mnemonic, attrs)
        names[lhs] = graph.nodes.count
        graph.nodes.append(Node(op: op, inputs: inputs, types: types, label: label))
    }

    func value(_ t: inout TokenStream) throws -> Value {
        guard case .ref(let r)? = t.next() else { throw IRError("expected a %value") }
        var name = r, result = 0
        if let dot = r.lastIndex(of: "."), let k = Int(r[r.index(after: dot)...]), names[r] == nil {
            name = String(r[..<dot])
            result = k
        }
        guard let node = names[name] else { throw IRError("%\(name) is not defined") }
        return Value(node: node, result: result)
    }

    func type(_ t: inout TokenStream) throws -> TensorType {
        guard case .word(let d)? = t.next(), let dtype = DType(rawValue: d) else {
            throw IRError("expected a type like f32[seq, 64]; dtypes: \(DType.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        guard t.take(.punct("[")) else { throw IRError("expected '[' after \(d)") }
        var shape: [Dim] = []
        if !t.take(.punct("]")) {
            repeat {
                switch t.next() {
                case .int(let n)? where n >= 0: shape.append(.fixed(n))
                case .word(let s)?: shape.append(.symbol(s))
                default: throw IRError("bad dim in \(d)[...]")
                }
            } while t.take(.punct(","))
            guard t.take(.punct("]")) else { throw IRError("expected ']' closing the shape") }
        }
        return TensorType(dtype, shape)
    }

    /// Deepest nesting of lists and dicts in attributes. Attune's own go three deep; the
    /// limit keeps a hostile file (60 000 levels) from overflowing the stack.
    static let maxAttributeDepth = 32

    func attr(_ t: inout TokenStream, depth: Int = 0) throws -> AttrValue {
        guard depth <= Self.maxAttributeDepth else {
            throw IRError("attributes nested deeper than \(Self.maxAttributeDepth) levels")
        }
        switch t.next() {
        case .int(let n)?: return .int(n)
        case .double(let d)?: return .double(d)
        case .string(let s)?: return .string(s)
        case .word("true")?: return .bool(true)
        case .word("false")?: return .bool(false)
        case .word(let w)?: return .ident(w)
        case .punct("[")?:
            var xs: [AttrValue] = []
            if t.take(.punct("]")) { return .list(xs) }
            repeat { xs.append(try attr(&t, depth: depth + 1)) } while t.take(.punct(","))
            guard t.take(.punct("]")) else { throw IRError("expected ']'") }
            return .list(xs)
        case .punct("{")?:
            var d: [String: AttrValue] = [:]
            if t.take(.punct("}")) { return .dict(d) }
            repeat {
                guard case .word(let key)? = t.next(), t.take(.punct("=")) else { throw IRError("expected 'name = value'") }
                guard d[key] == nil else { throw IRError("attribute '\(key)' given twice") }
                d[key] = try attr(&t, depth: depth + 1)
            } while t.take(.punct(","))
            guard t.take(.punct("}")) else { throw IRError("expected '}' closing the attributes") }
            return .dict(d)
        default:
            throw IRError("expected an attribute value")
        }
    }
}

private enum Token: Equatable {
    case word(String)
    case ref(String)
    case int(Int)
    case double(Double)
    case string(String)
    case punct(Character)
    case comment(String)
}

private struct TokenStream {
    var tokens: [Token]
    var i = 0
    init(_ tokens: [Token]) { self.tokens = tokens }
    var peek: Token? { i < tokens.count ? tokens[i] : nil }
    mutating func next() -> Token? {
        defer { i += 1 }
        return peek
    }
    mutating func take(_ t: Token) -> Bool {
        if peek == t { i += 1; return true }
        return false
    }
    func end() throws {
        guard i >= tokens.count else { throw IRError("unexpected \(tokens[i]) at the end of the line") }
    }
}

private struct Lexer {
    let s: [Character]
    var i = 0
    init(_ line: String) { s = Array(line) }

    mutating func all() throws -> [Token] {
        var out: [Token] = []
        while let t = try next() { out.append(t) }
        if case .comment? = out.first { return [] }  // a whole-line comment
        return out
    }

    mutating func next() throws -> Token? {
        while i < s.count, s[i].isWhitespace { i += 1 }
        guard i < s.count else { return nil }
        let c = s[i]
        if c == "#" {
            let text = String(s[(i + 1)...]).trimmingCharacters(in: .whitespaces)
            i = s.count
            return .comment(text)
        }
        if "(){}[],=:".contains(c) { i += 1; return .punct(c) }
        if c == "\"" {
            var out = ""
            i += 1
            while i < s.count, s[i] != "\"" {
                if s[i] == "\\", i + 1 < s.count { i += 1 }
                out.append(s[i])
                i += 1
            }
            guard i < s.count else { throw IRError("unterminated string") }
            i += 1
            return .string(out)
        }
        let start = i
        if c == "%" { i += 1 }
        while i < s.count, s[i].isLetter || s[i].isNumber || "_.-+".contains(s[i]) { i += 1 }
        let word = String(s[start..<i])
        guard !word.isEmpty else { throw IRError("unexpected character '\(c)'") }
        if c == "%" {
            guard word.count > 1 else { throw IRError("'%' must be followed by a name") }
            return .ref(String(word.dropFirst()))
        }
        if c.isNumber || c == "-" || c == "+" {
            if let n = Int(word) { return .int(n) }
            if let d = Double(word) { return .double(d) }
            throw IRError("bad number '\(word)'")
        }
        if word == "nan" || word == "inf" { return .double(Double(word)!) }
        return .word(word)
    }
}

import Foundation
