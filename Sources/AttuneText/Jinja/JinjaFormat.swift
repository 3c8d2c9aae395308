import Foundation

/// Python's `str()`, `repr()` and transformers' `tojson` (json.dumps with ensure_ascii=False),
/// so printed values match the rendered prompt transformers produces.
enum JinjaFormat {
    /// `str(value)`, as `{{ value }}` prints it; Undefined prints as "" (but as `Undefined` inside a container).
    static func str(_ value: JinjaValue) -> String {
        switch value {
        case .undefined: return ""
        case .string(let s): return s
        default: return repr(value)
        }
    }

    static func repr(_ value: JinjaValue) -> String {
        switch value {
        case .undefined: return "Undefined"
        case .none: return "None"
        case .bool(let b): return b ? "True" : "False"
        case .int(let i): return String(i)
        case .double(let d): return float(d)
        case .string(let s): return reprString(s)
        case .list(let items): return "[" + items.map(repr).joined(separator: ", ") + "]"
        case .tuple(let items): return "(" + items.map(repr).joined(separator: ", ") + (items.count == 1 ? ",)" : ")")
        case .dict(let d): return "{" + d.pairs.map { reprString($0.0) + ": " + repr($0.1) }.joined(separator: ", ") + "}"
        case .namespace(let ns): return "<Namespace " + repr(.dict(ns.attributes)) + ">"
        case .function(let name): return "<function \(name)>"
        }
    }

    /// Python's float repr (shortest round-trip digits, "1.0", "1e+16", "inf", "nan").
    static func float(_ d: Double) -> String {
        if d.isNaN { return "nan" }
        if d.isInfinite { return d < 0 ? "-inf" : "inf" }
        return d.description
    }

    /// Python's `repr(str)`: single quotes unless the text has a ' and no ", escapes for
    /// backslash, the quote, \t \n \r and non-printable characters.
    static func reprString(_ s: String) -> String {
        let quote: Character = s.contains("'") && !s.contains("\"") ? "\"" : "'"
        var out = String(quote)
        for scalar in s.unicodeScalars {
            switch scalar {
            case "\\": out += "\\\\"
            case "\t": out += "\\t"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            default:
                if Character(scalar) == quote {
                    out += "\\" + String(quote)
                } else if isPrintable(scalar) {
                    out.unicodeScalars.append(scalar)
                } else if scalar.value < 0x100 {
                    out += "\\x" + hex(scalar.value, width: 2)
                } else if scalar.value < 0x10000 {
                    out += "\\u" + hex(scalar.value, width: 4)
                } else {
                    out += "\\U" + hex(scalar.value, width: 8)
                }
            }
        }
        out.append(quote)
        return out
    }

    /// Python's str.isprintable for one character: not a control, format, surrogate,
    /// private-use, unassigned or separator character, except the ASCII space.
    private static func isPrintable(_ scalar: Unicode.Scalar) -> Bool {
        if scalar == " " { return true }
        switch scalar.properties.generalCategory {
        case .control, .format, .surrogate, .privateUse, .unassigned, .lineSeparator, .paragraphSeparator, .spaceSeparator:
            return false
        default:
            return true
        }
    }

    private static func hex(_ v: UInt32, width: Int) -> String {
        let digits = String(v, radix: 16)
        return String(repeating: "0", count: max(0, width - digits.count)) + digits
    }

    /// json.dumps(value, ensure_ascii=False, indent=indent, separators=separators, sort_keys=sortKeys).
    static func json(_ value: JinjaValue, indent: String?, separators: (String, String)?, sortKeys: Bool) throws -> String {
        let item = separators?.0 ?? (indent == nil ? ", " : ",")
        let key = separators?.1 ?? ": "
        var out = ""
        func emit(_ v: JinjaValue, level: Int) throws {
            switch v {
            case .none: out += "null"
            case .bool(let b): out += b ? "true" : "false"
            case .int(let i): out += String(i)
            case .double(let d): out += d.isNaN ? "NaN" : d.isInfinite ? (d < 0 ? "-Infinity" : "Infinity") : d.description
            case .string(let s): out += jsonString(s)
            case .list(let items), .tuple(let items):
                try container("[", "]", items.count, level) { try emit(items[$0], level: level + 1) }
            case .dict(let d):
                let pairs = sortKeys ? d.pairs.sorted { $0.0.unicodeScalars.lexicographicallyPrecedes($1.0.unicodeScalars) } : d.pairs
                try container("{", "}", pairs.count, level) {
                    out += jsonString(pairs[$0].0) + key
                    try emit(pairs[$0].1, level: level + 1)
                }
            case .undefined, .namespace, .function:
                throw TextError("Object of type \(v.typeName) is not JSON serializable")
            }
        }
        func container(_ open: String, _ close: String, _ count: Int, _ level: Int, _ body: (Int) throws -> Void) throws {
            guard count > 0 else { out += open + close; return }
            out += open
            for k in 0..<count {
                if k > 0 { out += item }
                if let indent { out += "\n" + String(repeating: indent, count: level + 1) }
                try body(k)
            }
            if let indent { out += "\n" + String(repeating: indent, count: level) }
            out += close
        }
        try emit(value, level: 0)
        return out
    }

    static func jsonString(_ s: String) -> String {
        var out = "\""
        for scalar in s.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case "\u{08}": out += "\\b"
            case "\u{0C}": out += "\\f"
            default:
                if scalar.value < 0x20 {
                    out += "\\u" + hex(scalar.value, width: 4)
                } else {
                    out.unicodeScalars.append(scalar)
                }
            }
        }
        return out + "\""
    }
}
