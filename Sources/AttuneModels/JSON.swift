import Foundation

/// A JSON value (RFC 8259), as read by `JSONParser`.
///
/// Attune parses JSON itself rather than through `JSONSerialization` because
/// the importers need what that API hides: whether a number was written as an
/// integer (`2` vs `2.0` vs `true`, which `NSNumber` conflates), integers
/// beyond 2^53 kept exact or reported as too large, duplicate keys reported
/// instead of silently overwritten, and key order kept for stable messages.
package enum JSON: Sendable {
    case null
    case bool(Bool)
    case number(JSONNumber)
    case string(String)
    case array([JSON])
    case object(JSONObject)

    /// "a string", "an object", …: for messages about a value of the wrong type.
    package var kind: String {
        switch self {
        case .null: return "null"
        case .bool: return "a boolean"
        case .number: return "a number"
        case .string: return "a string"
        case .array: return "an array"
        case .object: return "an object"
        }
    }
}

/// A JSON number, kept as written.
package struct JSONNumber: Sendable {
    /// The literal exactly as in the input, e.g. `-12`, `1e-05`, `1000000.0`.
    package let literal: String
    /// True if the literal has neither fraction nor exponent.
    package let isIntegerLiteral: Bool

    /// The value as an `Int` if it is an integer literal that fits; nil for
    /// `2.0`, `1e3` and integers beyond `Int`'s range.
    package var int: Int? { isIntegerLiteral ? Int(literal) : nil }

    /// The nearest `Double`; ±infinity for literals beyond its range.
    package var double: Double { Double(literal) ?? .nan }  // a grammatical literal always parses
}

/// A JSON object with its keys in input order and no duplicates.
package struct JSONObject: Sendable {
    package private(set) var entries: [(key: String, value: JSON)] = []
    private var index: [String: Int] = [:]

    package subscript(key: String) -> JSON? {
        index[key].map { entries[$0].value }
    }

    /// Appends `value`; false (and no change) if `key` is already present.
    mutating func insert(_ key: String, _ value: JSON) -> Bool {
        if index[key] != nil { return false }
        index[key] = entries.count
        entries.append((key, value))
        return true
    }
}

/// A syntax error, located by byte offset in the parsed text.
package struct JSONSyntaxError: Error {
    package let reason: String
    package let offset: Int
}

/// A strict RFC 8259 parser over bytes.
///
/// Accepts exactly the JSON grammar: one value with optional surrounding
/// whitespace (the safetensors writer pads its header with spaces). Rejects
/// duplicate keys, invalid UTF-8, unpaired surrogate escapes, control
/// characters in strings, leading zeros, and nesting deeper than `maxDepth`,
/// so that hostile input cannot exhaust the stack.
package struct JSONParser {
    static let maxDepth = 128

    private let bytes: UnsafeRawBufferPointer
    private var i = 0
    private var depth = 0

    private init(_ bytes: UnsafeRawBufferPointer) {
        self.bytes = bytes
    }

    static func parse(_ bytes: UnsafeRawBufferPointer) throws(JSONSyntaxError) -> JSON {
        var p = JSONParser(bytes)
        p.skipWhitespace()
        let v = try p.value()
        p.skipWhitespace()
        if p.i != bytes.count { throw p.fail("unexpected \(p.describeNext()) after the top-level value") }
        return v
    }

    package static func parse(_ data: Data) throws(JSONSyntaxError) -> JSON {
        let result: Result<JSON, JSONSyntaxError> = data.withUnsafeBytes { raw in
            do throws(JSONSyntaxError) { return .success(try parse(raw)) } catch { return .failure(error) }
        }
        return try result.get()
    }

    // MARK: - Grammar

    private mutating func value() throws(JSONSyntaxError) -> JSON {
        guard i < bytes.count else { throw fail("unexpected end of input") }
        switch bytes[i] {
        case UInt8(ascii: "{"): return .object(try object())
        case UInt8(ascii: "["): return .array(try array())
        case UInt8(ascii: "\""): return .string(try string())
        case UInt8(ascii: "t"): try keyword("true"); return .bool(true)
        case UInt8(ascii: "f"): try keyword("false"); return .bool(false)
        case UInt8(ascii: "n"): try keyword("null"); return .null
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return .number(try number())
        default: throw fail("unexpected \(describeNext())")
        }
    }

    private mutating func object() throws(JSONSyntaxError) -> JSONObject {
        try enter()
        i += 1  // '{'
        var obj = JSONObject()
        skipWhitespace()
        if peek(UInt8(ascii: "}")) {
            i += 1
            depth -= 1
            return obj
        }
        while true {
            guard peek(UInt8(ascii: "\"")) else { throw fail("expected a string key, found \(describeNext())") }
            let keyOffset = i
            let key = try string()
            skipWhitespace()
            try expect(UInt8(ascii: ":"))
            skipWhitespace()
            let v = try value()
            if !obj.insert(key, v) {
                throw JSONSyntaxError(reason: "duplicate key \(quoted(key))", offset: keyOffset)
            }
            skipWhitespace()
            if peek(UInt8(ascii: ",")) {
                i += 1
                skipWhitespace()
            } else if peek(UInt8(ascii: "}")) {
                i += 1
                depth -= 1
                return obj
            } else {
                throw fail("expected ',' or '}', found \(describeNext())")
            }
        }
    }

    private mutating func array() throws(JSONSyntaxError) -> [JSON] {
        try enter()
        i += 1  // '['
        var items: [JSON] = []
        skipWhitespace()
        if peek(UInt8(ascii: "]")) {
            i += 1
            depth -= 1
            return items
        }
        while true {
            items.append(try value())
            skipWhitespace()
            if peek(UInt8(ascii: ",")) {
                i += 1
                skipWhitespace()
            } else if peek(UInt8(ascii: "]")) {
                i += 1
                depth -= 1
                return items
            } else {
                throw fail("expected ',' or ']', found \(describeNext())")
            }
        }
    }

    private mutating func string() throws(JSONSyntaxError) -> String {
        let start = i
        i += 1  // opening quote
        var utf8: [UInt8] = []
        while true {
            guard i < bytes.count else { throw JSONSyntaxError(reason: "unterminated string", offset: start) }
            let b = bytes[i]
            switch b {
            case UInt8(ascii: "\""):
                i += 1
                // Raw bytes were copied unchecked; validate once per string.
                guard let s = String(validating: utf8, as: UTF8.self) else {
                    throw JSONSyntaxError(reason: "invalid UTF-8 in string", offset: start)
                }
                return s
            case UInt8(ascii: "\\"):
                try escape(into: &utf8)
            case 0..<0x20:
                throw fail("unescaped control character 0x\(String(b, radix: 16)) in string")
            default:
                utf8.append(b)
                i += 1
            }
        }
    }

    private mutating func escape(into utf8: inout [UInt8]) throws(JSONSyntaxError) {
        let start = i
        i += 1  // backslash
        guard i < bytes.count else { throw JSONSyntaxError(reason: "unterminated string", offset: start) }
        let c = bytes[i]
        i += 1
        let simple: UInt8?
        switch c {
        case UInt8(ascii: "\""): simple = 0x22
        case UInt8(ascii: "\\"): simple = 0x5C
        case UInt8(ascii: "/"): simple = 0x2F
        case UInt8(ascii: "b"): simple = 0x08
        case UInt8(ascii: "f"): simple = 0x0C
        case UInt8(ascii: "n"): simple = 0x0A
        case UInt8(ascii: "r"): simple = 0x0D
        case UInt8(ascii: "t"): simple = 0x09
        case UInt8(ascii: "u"): simple = nil
        default: throw JSONSyntaxError(reason: "invalid escape sequence", offset: start)
        }
        if let simple {
            utf8.append(simple)
            return
        }
        var code = try hex4(escapeAt: start)
        if (0xD800...0xDBFF).contains(code) {
            // A high surrogate only means something followed by a low one.
            guard i + 1 < bytes.count, bytes[i] == UInt8(ascii: "\\"), bytes[i + 1] == UInt8(ascii: "u") else {
                throw JSONSyntaxError(reason: "unpaired surrogate escape", offset: start)
            }
            let lowStart = i
            i += 2
            let low = try hex4(escapeAt: lowStart)
            guard (0xDC00...0xDFFF).contains(low) else {
                throw JSONSyntaxError(reason: "unpaired surrogate escape", offset: start)
            }
            code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00)
        } else if (0xDC00...0xDFFF).contains(code) {
            throw JSONSyntaxError(reason: "unpaired surrogate escape", offset: start)
        }
        // Surrogates are excluded above, so every remaining code is a scalar.
        if let scalar = Unicode.Scalar(code) {
            UTF8.encode(scalar) { utf8.append($0) }
        }
    }

    private mutating func hex4(escapeAt start: Int) throws(JSONSyntaxError) -> UInt32 {
        guard i + 4 <= bytes.count else { throw JSONSyntaxError(reason: "invalid \\u escape", offset: start) }
        var v: UInt32 = 0
        for _ in 0..<4 {
            let b = bytes[i]
            let d: UInt8
            switch b {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): d = b - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): d = b - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): d = b - UInt8(ascii: "A") + 10
            default: throw JSONSyntaxError(reason: "invalid \\u escape", offset: start)
            }
            v = v << 4 | UInt32(d)
            i += 1
        }
        return v
    }

    private mutating func number() throws(JSONSyntaxError) -> JSONNumber {
        let start = i
        if peek(UInt8(ascii: "-")) { i += 1 }
        guard i < bytes.count, isDigit(bytes[i]) else { throw fail("expected a digit, found \(describeNext())") }
        if bytes[i] == UInt8(ascii: "0") {
            i += 1
            if i < bytes.count, isDigit(bytes[i]) { throw fail("leading zero in number") }
        } else {
            skipDigits()
        }
        var isInteger = true
        if peek(UInt8(ascii: ".")) {
            isInteger = false
            i += 1
            guard i < bytes.count, isDigit(bytes[i]) else { throw fail("expected a digit after '.', found \(describeNext())") }
            skipDigits()
        }
        if peek(UInt8(ascii: "e")) || peek(UInt8(ascii: "E")) {
            isInteger = false
            i += 1
            if peek(UInt8(ascii: "+")) || peek(UInt8(ascii: "-")) { i += 1 }
            guard i < bytes.count, isDigit(bytes[i]) else { throw fail("expected a digit in exponent, found \(describeNext())") }
            skipDigits()
        }
        let literal = String(decoding: UnsafeRawBufferPointer(rebasing: bytes[start..<i]), as: UTF8.self)
        return JSONNumber(literal: literal, isIntegerLiteral: isInteger)
    }

    // MARK: - Helpers

    private mutating func enter() throws(JSONSyntaxError) {
        depth += 1
        if depth > Self.maxDepth { throw fail("nesting deeper than \(Self.maxDepth) levels") }
    }

    private mutating func keyword(_ word: StaticString) throws(JSONSyntaxError) {
        let n = word.utf8CodeUnitCount
        let w = UnsafeRawBufferPointer(start: word.utf8Start, count: n)
        guard i + n <= bytes.count, bytes[i..<(i + n)].elementsEqual(w) else {
            throw fail("unexpected \(describeNext())")
        }
        i += n
    }

    private mutating func expect(_ b: UInt8) throws(JSONSyntaxError) {
        guard peek(b) else { throw fail("expected '\(Character(Unicode.Scalar(b)))', found \(describeNext())") }
        i += 1
    }

    private func peek(_ b: UInt8) -> Bool { i < bytes.count && bytes[i] == b }

    private func isDigit(_ b: UInt8) -> Bool { b >= UInt8(ascii: "0") && b <= UInt8(ascii: "9") }

    private mutating func skipDigits() {
        while i < bytes.count, isDigit(bytes[i]) { i += 1 }
    }

    private mutating func skipWhitespace() {
        while i < bytes.count {
            switch bytes[i] {
            case 0x20, 0x09, 0x0A, 0x0D: i += 1
            default: return
            }
        }
    }

    private func describeNext() -> String {
        guard i < bytes.count else { return "end of input" }
        let b = bytes[i]
        if b >= 0x21 && b < 0x7F { return "'\(Character(Unicode.Scalar(b)))'" }
        return "byte 0x\(String(b, radix: 16, uppercase: true))"
    }

    private func fail(_ reason: String) -> JSONSyntaxError {
        JSONSyntaxError(reason: reason, offset: i)
    }
}
