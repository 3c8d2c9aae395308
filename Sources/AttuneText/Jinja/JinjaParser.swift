/// Builds statements (if / for / set / break / continue / generation) from lexer segments;
/// expressions are parsed by `TokenStream`. Anything outside the supported subset is
/// refused here, naming it and its line.
struct JinjaParser {
    private let segments: [JinjaSegment]
    private var index = 0
    /// How many `for` bodies enclose the statement being parsed (`break` needs one).
    private var loopDepth = 0
    /// How many blocks enclose it (`JinjaLimits.nesting`: the parser and the interpreter recurse per block).
    private var blockDepth = 0

    static func parse(_ source: String) throws -> [JinjaStmt] {
        var parser = JinjaParser(segments: try JinjaLexer.segments(source))
        // With nothing to stop at, a stray end tag is refused by `statement` instead.
        return try parser.block(until: []).0
    }

    private init(segments: [JinjaSegment]) { self.segments = segments }

    private struct EndTag { var name: String; var tokens: TokenStream; var line: Int }

    /// Parses statements until one of `until` (returned) or the end of the template (nil).
    private mutating func block(until: Set<String>) throws -> ([JinjaStmt], EndTag?) {
        var out: [JinjaStmt] = []
        while index < segments.count {
            let segment = segments[index]
            index += 1
            switch segment {
            case .text(let text, _):
                out.append(.text(text))
            case .output(let tokens, let line):
                var stream = TokenStream(tokens: tokens, line: line)
                let expr = try stream.expression()
                try stream.expectEnd()
                out.append(.output(expr, line: line))
            case .statement(let tokens, let line):
                var stream = TokenStream(tokens: tokens, line: line)
                guard let keyword = stream.next(), keyword.kind == .name else {
                    throw TextError("chat template line \(line): empty or malformed tag")
                }
                if until.contains(keyword.text) {
                    return (out, EndTag(name: keyword.text, tokens: stream, line: line))
                }
                out.append(contentsOf: try statement(keyword.text, &stream, line: line))
            }
        }
        return (out, nil)
    }

    private mutating func body(until: Set<String>, opener: String, line: Int) throws -> ([JinjaStmt], EndTag) {
        blockDepth += 1
        defer { blockDepth -= 1 }
        guard blockDepth <= JinjaLimits.nesting else {
            throw TextError("chat template line \(line): blocks nest deeper than \(JinjaLimits.nesting) levels (the limit for templates)")
        }
        let (stmts, end) = try block(until: until)
        guard let end else { throw TextError("chat template line \(line): '\(opener)' is never closed (expected \(until.sorted().map { "'\($0)'" }.joined(separator: " or ")))") }
        return (stmts, end)
    }

    private mutating func statement(_ keyword: String, _ stream: inout TokenStream, line: Int) throws -> [JinjaStmt] {
        switch keyword {
        case "if":
            var branches: [(JinjaExpr, [JinjaStmt])] = []
            var condition = try stream.expression()
            try stream.expectEnd()
            while true {
                let (stmts, end) = try body(until: ["elif", "else", "endif"], opener: "if", line: line)
                branches.append((condition, stmts))
                var tokens = end.tokens
                switch end.name {
                case "elif":
                    condition = try tokens.expression()
                    try tokens.expectEnd()
                case "else":
                    try tokens.expectEnd()
                    let (otherwise, last) = try body(until: ["endif"], opener: "else", line: end.line)
                    var lastTokens = last.tokens
                    try lastTokens.expectEnd()
                    return [.ifChain(branches, otherwise: otherwise)]
                default:
                    try tokens.expectEnd()
                    return [.ifChain(branches, otherwise: [])]
                }
            }
        case "for":
            var targets = [try stream.name()]
            while stream.accept(",") { targets.append(try stream.name()) }
            try stream.expectName("in")
            let iterable = try stream.expression(allowConditional: false)
            var filter: JinjaExpr?
            if stream.acceptName("if") { filter = try stream.expression(allowConditional: false) }
            if stream.acceptName("recursive") { throw TextError("chat template line \(line): recursive loops are not supported") }
            try stream.expectEnd()
            loopDepth += 1
            let (loopBody, end) = try body(until: ["else", "endfor"], opener: "for", line: line)
            loopDepth -= 1
            var tokens = end.tokens
            try tokens.expectEnd()
            var otherwise: [JinjaStmt] = []
            if end.name == "else" {
                let (elseBody, last) = try body(until: ["endfor"], opener: "for", line: end.line)
                var lastTokens = last.tokens
                try lastTokens.expectEnd()
                otherwise = elseBody
            }
            return [.forLoop(targets: targets, iterable: iterable, filter: filter, body: loopBody, otherwise: otherwise, line: line)]
        case "set":
            let first = try stream.name()
            var target = JinjaSetTarget.name(first)
            if stream.accept(".") {
                target = .attribute(first, try stream.name())
            } else if stream.peek(",") {
                var names = [first]
                while stream.accept(",") { names.append(try stream.name()) }
                target = .names(names)
            }
            if stream.atEnd {
                guard case .name(let name) = target else {
                    throw TextError("chat template line \(line): block '{% set %}' needs a plain variable name")
                }
                let (stmts, end) = try body(until: ["endset"], opener: "set", line: line)
                var tokens = end.tokens
                try tokens.expectEnd()
                return [.setBlock(name, body: stmts)]
            }
            try stream.expect("=")
            let value = try stream.expression()
            try stream.expectEnd()
            return [.set(target, value, line: line)]
        case "break", "continue":
            try stream.expectEnd()
            guard loopDepth > 0 else { throw TextError("chat template line \(line): '\(keyword)' outside a loop") }
            return [keyword == "break" ? .breakLoop : .continueLoop]
        case "generation":
            // transformers' {% generation %} only marks assistant tokens for masks; it renders its body.
            try stream.expectEnd()
            let (stmts, end) = try body(until: ["endgeneration"], opener: "generation", line: line)
            var tokens = end.tokens
            try tokens.expectEnd()
            return stmts
        case "elif", "else", "endif", "endfor", "endset", "endgeneration":
            throw TextError("chat template line \(line): unexpected '\(keyword)'")
        default:
            throw TextError("chat template line \(line): tag '\(keyword)' is not supported")
        }
    }
}
