import Foundation

/// One token inside `{{ ... }}` or `{% ... %}`.
struct JinjaToken: Equatable {
    enum Kind: Equatable { case name, string, integer, float, op }
    var kind: Kind
    var text: String
    var line: Int
}

/// The template cut into literal text and tags, with whitespace control already applied.
enum JinjaSegment: Equatable {
    case text(String, line: Int)
    case output([JinjaToken], line: Int)
    case statement([JinjaToken], line: Int)
}

/// Splits a template the way jinja2's lexer does under transformers' settings
/// (trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=False):
/// - newlines are normalised to "\n" and one trailing newline is dropped;
/// - `{%-`, `{{-`, `{#-` strip all whitespace before the tag, `-%}`, `-}}`, `-#}` all after;
/// - trim_blocks: a single "\n" right after `%}` or `#}` is dropped;
/// - lstrip_blocks: spaces and tabs between a line start and `{%` or `{#` are dropped
///   (a "line start" includes the point right after a tag whose end consumed a newline);
/// - `{%+` / `+%}` switch the two block rules off for that tag.
struct JinjaLexer {
    private let s: [Unicode.Scalar]
    private var i = 0
    private var line = 1
    private var lineStarting = true
    private var segments: [JinjaSegment] = []

    static func segments(_ source: String) throws -> [JinjaSegment] {
        var text = source.replacingOccurrences(of: "\r\n", with: "\n").replacingOccurrences(of: "\r", with: "\n")
        if text.hasSuffix("\n") { text.removeLast() }
        var lexer = JinjaLexer(s: Array(text.unicodeScalars))
        try lexer.run()
        return lexer.segments
    }

    private init(s: [Unicode.Scalar]) { self.s = s }

    private func at(_ k: Int, _ lit: String) -> Bool {
        var k = k
        for c in lit.unicodeScalars {
            guard k < s.count, s[k] == c else { return false }
            k += 1
        }
        return true
    }

    private static func string(_ slice: ArraySlice<Unicode.Scalar>) -> String {
        var view = String.UnicodeScalarView()
        view.append(contentsOf: slice)
        return String(view)
    }

    private func newlines(_ a: Int, _ b: Int) -> Int { s[a..<b].reduce(0) { $0 + ($1 == "\n" ? 1 : 0) } }

    private mutating func run() throws {
        while i < s.count {
            var j = i
            while j + 1 < s.count, !(s[j] == "{" && (s[j + 1] == "{" || s[j + 1] == "%" || s[j + 1] == "#")) { j += 1 }
            guard j + 1 < s.count else {
                segments.append(.text(Self.string(s[i..<s.count]), line: line))
                return
            }
            let kind = s[j + 1]
            var k = j + 2
            var sign: Unicode.Scalar?
            if k < s.count, s[k] == "-" || s[k] == "+" { sign = s[k]; k += 1 }
            var textEnd = j
            if sign == "-" {
                while textEnd > i, s[textEnd - 1].isPythonSpace { textEnd -= 1 }
            } else if sign != "+", kind != "{" {
                var lpos = textEnd
                while lpos > i, s[lpos - 1] != "\n" { lpos -= 1 }
                let afterNewline = lpos > i
                if (afterNewline || lineStarting), lpos < textEnd, s[lpos..<textEnd].allSatisfy({ $0.isPythonSpace }) {
                    textEnd = lpos
                }
            }
            if textEnd > i { segments.append(.text(Self.string(s[i..<textEnd]), line: line)) }
            line += newlines(i, j)
            let tagLine = line
            i = k
            switch kind {
            case "#": try comment(line: tagLine)
            case "%": segments.append(.statement(try tag(close: "%", line: tagLine), line: tagLine))
            default: segments.append(.output(try tag(close: "}", line: tagLine), line: tagLine))
            }
        }
    }

    /// Consumes the end of a tag (`-X}`, `+X}` or `X}`) at `i` and the whitespace it eats.
    private mutating func endTag(trims: Bool) {
        let start = i
        let stripAfter = s[i] == "-"
        let keep = s[i] == "+"
        i += (stripAfter || keep) ? 3 : 2
        if stripAfter {
            while i < s.count, s[i].isPythonSpace { i += 1 }
        } else if trims, !keep, i < s.count, s[i] == "\n" {
            i += 1
        }
        line += newlines(start, i)
        lineStarting = s[i - 1] == "\n"
    }

    private mutating func comment(line tagLine: Int) throws {
        var q = i
        while q + 1 < s.count, !(s[q] == "#" && s[q + 1] == "}") { q += 1 }
        guard q + 1 < s.count else { throw TextError("chat template line \(tagLine): comment is not closed with '#}'") }
        let bodyEnd = (q > i && (s[q - 1] == "-" || s[q - 1] == "+")) ? q - 1 : q
        line += newlines(i, bodyEnd)
        i = bodyEnd
        endTag(trims: true)
    }

    private static let twoCharOps: Set<String> = ["//", "**", "==", "!=", ">=", "<="]
    private static let oneCharOps: Set<Unicode.Scalar> = ["+", "-", "/", "*", "%", "~", "[", "]", "(", ")", "{", "}", "<", ">", "=", ".", ":", "|", ",", ";"]

    private func isEnd(_ close: Unicode.Scalar) -> Bool {
        let end = close == "%" ? "%}" : "}}"
        return at(i, end) || at(i, "-" + end) || (close == "%" && at(i, "+" + end))
    }

    private mutating func tag(close: Unicode.Scalar, line tagLine: Int) throws -> [JinjaToken] {
        var tokens: [JinjaToken] = []
        var depth: [Unicode.Scalar] = []
        while true {
            while i < s.count, s[i].isPythonSpace {
                if s[i] == "\n" { line += 1 }
                i += 1
            }
            guard i < s.count else {
                throw TextError("chat template line \(tagLine): tag is not closed with '\(close == "%" ? "%}" : "}}")'")
            }
            if depth.isEmpty, isEnd(close) {
                endTag(trims: close == "%")
                return tokens
            }
            let c = s[i]
            if c == "_" || c.properties.isAlphabetic && c.isASCII {
                let start = i
                while i < s.count, s[i] == "_" || (s[i].isASCII && (s[i].properties.isAlphabetic || ("0"..."9").contains(s[i]))) { i += 1 }
                tokens.append(JinjaToken(kind: .name, text: Self.string(s[start..<i]), line: line))
            } else if ("0"..."9").contains(c) {
                tokens.append(number())
            } else if c == "'" || c == "\"" {
                tokens.append(try stringLiteral(quote: c))
            } else if i + 1 < s.count, Self.twoCharOps.contains(Self.string(s[i...i + 1])) {
                tokens.append(JinjaToken(kind: .op, text: Self.string(s[i...i + 1]), line: line))
                i += 2
            } else if Self.oneCharOps.contains(c) {
                if c == "(" || c == "[" || c == "{" { depth.append(c) }
                if c == ")" || c == "]" || c == "}" {
                    let open: Unicode.Scalar = c == ")" ? "(" : c == "]" ? "[" : "{"
                    guard depth.last == open else { throw TextError("chat template line \(line): unexpected '\(c)'") }
                    depth.removeLast()
                }
                tokens.append(JinjaToken(kind: .op, text: String(Character(c)), line: line))
                i += 1
            } else {
                throw TextError("chat template line \(line): unexpected character '\(Character(c))'")
            }
        }
    }

    private mutating func number() -> JinjaToken {
        let start = i
        let digit: (Unicode.Scalar) -> Bool = { ("0"..."9").contains($0) || $0 == "_" }
        while i < s.count, digit(s[i]) { i += 1 }
        var isFloat = false
        if i + 1 < s.count, s[i] == ".", ("0"..."9").contains(s[i + 1]) {
            isFloat = true
            i += 1
            while i < s.count, digit(s[i]) { i += 1 }
        }
        if i < s.count, s[i] == "e" || s[i] == "E" {
            var k = i + 1
            if k < s.count, s[k] == "+" || s[k] == "-" { k += 1 }
            if k < s.count, ("0"..."9").contains(s[k]) {
                isFloat = true
                i = k
                while i < s.count, digit(s[i]) { i += 1 }
            }
        }
        let text = Self.string(s[start..<i]).replacingOccurrences(of: "_", with: "")
        return JinjaToken(kind: isFloat ? .float : .integer, text: text, line: line)
    }

    /// A quoted string, unescaped as jinja2 does (Python's "unicode-escape" codec).
    private mutating func stringLiteral(quote: Unicode.Scalar) throws -> JinjaToken {
        let startLine = line
        i += 1
        var out = String.UnicodeScalarView()
        while true {
            guard i < s.count else { throw TextError("chat template line \(startLine): string literal is not closed") }
            let c = s[i]
            if c == quote { i += 1; break }
            if c == "\n" { line += 1 }
            guard c == "\\", i + 1 < s.count else { out.append(c); i += 1; continue }
            let e = s[i + 1]
            i += 2
            switch e {
            case "n": out.append("\n")
            case "t": out.append("\t")
            case "r": out.append("\r")
            case "\\": out.append("\\")
            case "'": out.append("'")
            case "\"": out.append("\"")
            case "a": out.append("\u{07}")
            case "b": out.append("\u{08}")
            case "f": out.append("\u{0C}")
            case "v": out.append("\u{0B}")
            case "\n": line += 1
            case "x", "u", "U":
                let width = e == "x" ? 2 : e == "u" ? 4 : 8
                guard i + width <= s.count, let code = UInt32(Self.string(s[i..<i + width]), radix: 16),
                      let scalar = Unicode.Scalar(code)
                else { throw TextError("chat template line \(line): bad \\\(e) escape in a string literal") }
                out.append(scalar)
                i += width
            case "0"..."7":
                var digits = String(Character(e))
                while digits.count < 3, i < s.count, ("0"..."7").contains(s[i]) { digits.append(Character(s[i])); i += 1 }
                out.append(Unicode.Scalar(UInt32(digits, radix: 8)!)!)
            default:
                out.append("\\")
                out.append(e)
            }
        }
        return JinjaToken(kind: .string, text: String(out), line: startLine)
    }
}
