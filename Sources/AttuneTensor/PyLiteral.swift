/// The subset of Python literal syntax that appears in .npy headers, parsed
/// from raw bytes by a small recursive-descent parser.
///
/// Why hand-written and byte-based: headers come from untrusted files and the
/// reader must never trap, so the parser only indexes through bounds-checked
/// helpers, caps nesting depth (deep `((((...` would otherwise overflow the
/// stack), and keeps integers that do not fit in `Int` as text instead of
/// overflowing.
///
/// Accepted syntax, following Python's `ast.literal_eval` where it matters:
/// strings in single or double quotes with backslash escapes; integers with
/// optional sign, `_` digit separators and a trailing `L` (old Python 2
/// headers); `True`, `False`, `None`; tuples `()`, `(x,)`, `(x, y)` where a
/// bare `(x)` is just `x`; lists; dicts; trailing commas; any whitespace.
/// Floats, sets and expressions are rejected.
enum PyLiteral {
    case string(String)
    case int(Int)
    /// An integer too large in magnitude for `Int`; holds its source digits
    /// (with sign) for error messages.
    case hugeInt(String)
    case bool(Bool)
    case none
    case tuple([PyLiteral])
    case list([PyLiteral])
    case dict([(key: PyLiteral, value: PyLiteral)])

    /// Python-style rendering, used to quote header values in error messages.
    var repr: String {
        switch self {
        case .string(let s):
            return "'" + s.unicodeScalars.map { c -> String in
                switch c {
                case "'": return "\\'"
                case "\\": return "\\\\"
                case "\n": return "\\n"
                case "\r": return "\\r"
                case "\t": return "\\t"
                default:
                    return c.value < 0x20 || c.value == 0x7F
                        ? "\\x" + String(c.value, radix: 16).leftPadded(to: 2) : String(c)
                }
            }.joined() + "'"
        case .int(let v): return String(v)
        case .hugeInt(let s): return s
        case .bool(let b): return b ? "True" : "False"
        case .none: return "None"
        case .tuple(let xs):
            return xs.count == 1 ? "(\(xs[0].repr),)" : "(" + xs.map(\.repr).joined(separator: ", ") + ")"
        case .list(let xs): return "[" + xs.map(\.repr).joined(separator: ", ") + "]"
        case .dict(let kvs): return "{" + kvs.map { "\($0.key.repr): \($0.value.repr)" }.joined(separator: ", ") + "}"
        }
    }

    /// Parses exactly one literal spanning all of `bytes` (surrounding
    /// whitespace allowed).
    ///
    /// - Parameter latin1: decode string contents as Latin-1 (format 1.0/2.0)
    ///   rather than UTF-8 (format 3.0).
    /// - Throws: `PyLiteralError` naming the byte offset of the problem.
    static func parse(_ bytes: [UInt8], latin1: Bool) throws -> PyLiteral {
        var p = Parser(bytes: bytes, latin1: latin1)
        let v = try p.value(depth: 0)
        p.skipSpace()
        if !p.atEnd { throw p.error("unexpected \(p.describeCurrent()) after the literal") }
        return v
    }
}

struct PyLiteralError: Error {
    let message: String
}

private extension String {
    func leftPadded(to n: Int) -> String {
        count >= n ? self : String(repeating: "0", count: n - count) + self
    }
}

private struct Parser {
    /// Real headers nest two levels; 32 leaves room for odd writers while
    /// keeping recursion far from the stack limit.
    static let maxDepth = 32

    let bytes: [UInt8]
    let latin1: Bool
    var pos = 0

    init(bytes: [UInt8], latin1: Bool) {
        self.bytes = bytes
        self.latin1 = latin1
    }

    var atEnd: Bool { pos >= bytes.count }
    var current: UInt8? { pos < bytes.count ? bytes[pos] : nil }

    func error(_ what: String) -> PyLiteralError {
        PyLiteralError(message: "\(what) at offset \(pos)")
    }

    func describeCurrent() -> String {
        guard let c = current else { return "end of header" }
        if c >= 0x21 && c < 0x7F { return "'\(Character(Unicode.Scalar(c)))'" }
        return "byte 0x" + String(c, radix: 16).leftPadded(to: 2)
    }

    mutating func skipSpace() {
        while let c = current, c == 0x20 || c == 0x09 || c == 0x0A || c == 0x0D || c == 0x0C || c == 0x0B {
            pos += 1
        }
    }

    mutating func value(depth: Int) throws -> PyLiteral {
        if depth > Parser.maxDepth { throw error("nesting deeper than \(Parser.maxDepth)") }
        skipSpace()
        guard let c = current else { throw error("unexpected end of header, expected a value") }
        switch c {
        case UInt8(ascii: "'"), UInt8(ascii: "\""):
            return .string(try string(quote: c))
        case UInt8(ascii: "("):
            pos += 1
            let (items, sawComma) = try sequence(close: UInt8(ascii: ")"), depth: depth)
            // Python: `(x)` is grouping, `(x,)` and `()` are tuples.
            if items.count == 1 && !sawComma { return items[0] }
            return .tuple(items)
        case UInt8(ascii: "["):
            pos += 1
            return .list(try sequence(close: UInt8(ascii: "]"), depth: depth).items)
        case UInt8(ascii: "{"):
            pos += 1
            return try dict(depth: depth)
        case UInt8(ascii: "+"), UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"):
            return try integer()
        default:
            if isIdentStart(c) { return try keyword() }
            throw error("unexpected \(describeCurrent())")
        }
    }

    /// Items up to `close`, separated by commas, trailing comma allowed.
    mutating func sequence(close: UInt8, depth: Int) throws -> (items: [PyLiteral], sawComma: Bool) {
        var items: [PyLiteral] = []
        var sawComma = false
        while true {
            skipSpace()
            if current == close { pos += 1; return (items, sawComma) }
            items.append(try value(depth: depth + 1))
            skipSpace()
            if current == UInt8(ascii: ",") {
                pos += 1
                sawComma = true
            } else if current == close {
                pos += 1
                return (items, sawComma)
            } else {
                throw error("expected ',' or '\(Character(Unicode.Scalar(close)))' but found \(describeCurrent())")
            }
        }
    }

    mutating func dict(depth: Int) throws -> PyLiteral {
        var entries: [(key: PyLiteral, value: PyLiteral)] = []
        while true {
            skipSpace()
            if current == UInt8(ascii: "}") { pos += 1; return .dict(entries) }
            let k = try value(depth: depth + 1)
            skipSpace()
            guard current == UInt8(ascii: ":") else {
                throw error("expected ':' but found \(describeCurrent())")
            }
            pos += 1
            let v = try value(depth: depth + 1)
            entries.append((k, v))
            skipSpace()
            if current == UInt8(ascii: ",") {
                pos += 1
            } else if current == UInt8(ascii: "}") {
                pos += 1
                return .dict(entries)
            } else {
                throw error("expected ',' or '}' but found \(describeCurrent())")
            }
        }
    }

    mutating func string(quote: UInt8) throws -> String {
        let start = pos
        pos += 1
        var raw: [UInt8] = []
        while true {
            guard let c = current else {
                pos = start
                throw error("unterminated string")
            }
            pos += 1
            if c == quote { break }
            if c == 0x0A { pos = start; throw error("unterminated string") }
            if c == UInt8(ascii: "\\") {
                guard let e = current else { continue }
                pos += 1
                switch e {
                case UInt8(ascii: "n"): raw.append(0x0A)
                case UInt8(ascii: "t"): raw.append(0x09)
                case UInt8(ascii: "r"): raw.append(0x0D)
                case UInt8(ascii: "0"): raw.append(0x00)
                case UInt8(ascii: "\\"), UInt8(ascii: "'"), UInt8(ascii: "\""): raw.append(e)
                case 0x0A: break  // line continuation
                default: raw.append(c); raw.append(e)  // Python keeps unknown escapes verbatim
                }
            } else {
                raw.append(c)
            }
        }
        if latin1 {
            var s = ""
            s.unicodeScalars.append(contentsOf: raw.map { Unicode.Scalar($0) })
            return s
        }
        return String(decoding: raw, as: UTF8.self)
    }

    mutating func integer() throws -> PyLiteral {
        let start = pos
        var negative = false
        // Python folds any run of unary signs; keep that, it costs nothing.
        while let c = current, c == UInt8(ascii: "+") || c == UInt8(ascii: "-") {
            if c == UInt8(ascii: "-") { negative.toggle() }
            pos += 1
            skipSpace()
        }
        var digits: [UInt8] = []
        var lastWasDigit = false
        while let c = current {
            if c >= UInt8(ascii: "0") && c <= UInt8(ascii: "9") {
                digits.append(c)
                lastWasDigit = true
            } else if c == UInt8(ascii: "_") && lastWasDigit {
                lastWasDigit = false
            } else {
                break
            }
            pos += 1
        }
        if digits.isEmpty || !lastWasDigit {
            pos = start
            throw error("malformed integer")
        }
        if digits.count > 1 && digits[0] == UInt8(ascii: "0") && digits.contains(where: { $0 != UInt8(ascii: "0") }) {
            pos = start
            throw error("integer with leading zero")
        }
        if let c = current, c == UInt8(ascii: "L") || c == UInt8(ascii: "l") { pos += 1 }
        if let c = current, isIdentStart(c) || c == UInt8(ascii: ".") {
            throw error("unexpected \(describeCurrent()) in number")
        }
        var v = 0
        for d in digits {
            let (m, o1) = v.multipliedReportingOverflow(by: 10)
            // Accumulate toward the sign so Int.min stays representable.
            let digit = Int(d - UInt8(ascii: "0"))
            let (s, o2) = negative ? m.subtractingReportingOverflow(digit) : m.addingReportingOverflow(digit)
            if o1 || o2 {
                var text = String(decoding: digits, as: UTF8.self)
                if negative { text = "-" + text }
                return .hugeInt(text)
            }
            v = s
        }
        return .int(v)
    }

    mutating func keyword() throws -> PyLiteral {
        let start = pos
        while let c = current, isIdentStart(c) || (c >= UInt8(ascii: "0") && c <= UInt8(ascii: "9")) {
            pos += 1
        }
        switch String(decoding: bytes[start..<pos], as: UTF8.self) {
        case "True": return .bool(true)
        case "False": return .bool(false)
        case "None": return .none
        default:
            pos = start
            throw error("unexpected name")
        }
    }

    func isIdentStart(_ c: UInt8) -> Bool {
        (c >= UInt8(ascii: "a") && c <= UInt8(ascii: "z")) || (c >= UInt8(ascii: "A") && c <= UInt8(ascii: "Z"))
            || c == UInt8(ascii: "_")
    }
}
