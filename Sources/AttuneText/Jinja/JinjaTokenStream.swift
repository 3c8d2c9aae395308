/// Cursor over one tag's tokens, with the expression grammar in jinja2's precedence:
/// conditional < or < and < not < comparison (==, !=, <, >, <=, >=, in, not in)
/// < + - < ~ < * / // % < ** < unary - < postfix (. [] ()) and filters / `is` tests.
/// Unsupported filters, tests, functions and methods are refused as they are parsed.
struct TokenStream {
    let tokens: [JinjaToken]
    let line: Int
    private var pos = 0
    /// Expressions (and unary operators) being parsed inside one another (`JinjaLimits.nesting`).
    private var depth = 0
    /// Operators chained so far in this tag (`a + b + …`, `x|f|g…`, `a.b.c…`): each wraps the
    /// expression before it, so the chain is as deep as it is long.
    private var chained = 0

    init(tokens: [JinjaToken], line: Int) {
        self.tokens = tokens
        self.line = line
    }

    var atEnd: Bool { pos >= tokens.count }
    private var current: JinjaToken? { pos < tokens.count ? tokens[pos] : nil }
    private var currentLine: Int { current?.line ?? tokens.last?.line ?? line }

    mutating func next() -> JinjaToken? {
        defer { pos += 1 }
        return current
    }

    func peek(_ op: String) -> Bool { current?.kind == .op && current?.text == op }
    func peekName(_ name: String) -> Bool { current?.kind == .name && current?.text == name }

    mutating func accept(_ op: String) -> Bool {
        guard peek(op) else { return false }
        pos += 1
        return true
    }

    mutating func acceptName(_ name: String) -> Bool {
        guard peekName(name) else { return false }
        pos += 1
        return true
    }

    private func unexpected() -> TextError {
        guard let current else { return TextError("chat template line \(currentLine): unexpected end of tag") }
        return TextError("chat template line \(current.line): unexpected '\(current.text)'")
    }

    mutating func expect(_ op: String) throws { guard accept(op) else { throw unexpected() } }
    mutating func expectName(_ name: String) throws { guard acceptName(name) else { throw unexpected() } }
    mutating func expectEnd() throws { guard atEnd else { throw unexpected() } }

    mutating func name() throws -> String {
        guard let token = current, token.kind == .name else { throw unexpected() }
        pos += 1
        return token.text
    }

    /// Counts one level of nesting for the parse that follows (the parser recurses per level).
    private mutating func enter() throws {
        depth += 1
        if depth > JinjaLimits.nesting {
            throw TextError("chat template line \(currentLine): expressions nest deeper than \(JinjaLimits.nesting) levels (the limit for templates)")
        }
    }

    /// Counts one chained operator.
    private mutating func chain() throws {
        chained += 1
        if chained > JinjaLimits.chainedOperators {
            throw TextError("chat template line \(currentLine): more than \(JinjaLimits.chainedOperators) operators in one tag (the limit for templates)")
        }
    }

    mutating func expression(allowConditional: Bool = true) throws -> JinjaExpr {
        try enter()
        defer { depth -= 1 }
        let value = try orExpr()
        guard allowConditional, acceptName("if") else { return value }
        let condition = try orExpr()
        let otherwise = acceptName("else") ? try expression() : nil
        return .conditional(then: value, condition: condition, otherwise: otherwise)
    }

    private mutating func orExpr() throws -> JinjaExpr {
        var left = try andExpr()
        while acceptName("or") { try chain(); left = .or(left, try andExpr()) }
        return left
    }

    private mutating func andExpr() throws -> JinjaExpr {
        var left = try notExpr()
        while acceptName("and") { try chain(); left = .and(left, try notExpr()) }
        return left
    }

    private mutating func notExpr() throws -> JinjaExpr {
        if acceptName("not") {
            try enter()
            defer { depth -= 1 }
            return .not(try notExpr())
        }
        return try compare()
    }

    private mutating func compare() throws -> JinjaExpr {
        let line = currentLine
        let left = try math1()
        var ops: [(String, JinjaExpr)] = []
        while true {
            if let token = current, token.kind == .op, ["==", "!=", "<", ">", "<=", ">="].contains(token.text) {
                pos += 1
                ops.append((token.text, try math1()))
            } else if acceptName("in") {
                ops.append(("in", try math1()))
            } else if peekName("not"), pos + 1 < tokens.count, tokens[pos + 1].kind == .name, tokens[pos + 1].text == "in" {
                pos += 2
                ops.append(("not in", try math1()))
            } else {
                break
            }
        }
        return ops.isEmpty ? left : .compare(left, ops, line: line)
    }

    private mutating func math1() throws -> JinjaExpr {
        var left = try concat()
        while let token = current, token.kind == .op, token.text == "+" || token.text == "-" {
            try chain()
            pos += 1
            left = .binary(token.text, left, try concat(), line: token.line)
        }
        return left
    }

    private mutating func concat() throws -> JinjaExpr {
        var left = try math2()
        while let token = current, token.kind == .op, token.text == "~" {
            try chain()
            pos += 1
            left = .binary("~", left, try math2(), line: token.line)
        }
        return left
    }

    private mutating func math2() throws -> JinjaExpr {
        var left = try power()
        while let token = current, token.kind == .op, ["*", "/", "//", "%"].contains(token.text) {
            try chain()
            pos += 1
            left = .binary(token.text, left, try power(), line: token.line)
        }
        return left
    }

    private mutating func power() throws -> JinjaExpr {
        var left = try unary(withFilter: true)
        while let token = current, token.kind == .op, token.text == "**" {
            try chain()
            pos += 1
            left = .binary("**", left, try unary(withFilter: true), line: token.line)
        }
        return left
    }

    private mutating func unary(withFilter: Bool) throws -> JinjaExpr {
        var node: JinjaExpr
        if let token = current, token.kind == .op, token.text == "-" {
            pos += 1
            try enter()
            defer { depth -= 1 }
            node = .negate(try unary(withFilter: false), line: token.line)
        } else if accept("+") {
            try enter()
            defer { depth -= 1 }
            node = try unary(withFilter: false)
        } else {
            node = try postfix(try primary())
        }
        return withFilter ? try filters(node) : node
    }

    private mutating func primary() throws -> JinjaExpr {
        guard let token = current else { throw unexpected() }
        switch token.kind {
        case .name:
            pos += 1
            switch token.text {
            case "true", "True": return .literal(.bool(true))
            case "false", "False": return .literal(.bool(false))
            case "none", "None": return .literal(.none)
            default: return .name(token.text, line: token.line)
            }
        case .string:
            var text = ""
            while let t = current, t.kind == .string { text += t.text; pos += 1 }
            return .literal(.string(text))
        case .integer:
            pos += 1
            guard let value = Int(token.text) else { throw TextError("chat template line \(token.line): integer \(token.text) is too large") }
            return .literal(.int(value))
        case .float:
            pos += 1
            return .literal(.double(Double(token.text)!))
        case .op:
            if accept("(") {
                if accept(")") { return .tuple([]) }
                let inner = try expression()
                guard accept(",") else {
                    try expect(")")
                    return inner
                }
                var items = [inner]
                while !accept(")") {
                    items.append(try expression())
                    if !accept(",") { try expect(")"); break }
                }
                return .tuple(items)
            }
            if accept("[") {
                var items: [JinjaExpr] = []
                while !accept("]") {
                    if !items.isEmpty { try expect(","); if accept("]") { break } }
                    items.append(try expression())
                }
                return .list(items)
            }
            if accept("{") {
                var pairs: [(JinjaExpr, JinjaExpr)] = []
                while !accept("}") {
                    if !pairs.isEmpty { try expect(","); if accept("}") { break } }
                    let key = try expression()
                    try expect(":")
                    pairs.append((key, try expression()))
                }
                return .dict(pairs)
            }
            throw unexpected()
        }
    }

    private mutating func postfix(_ start: JinjaExpr) throws -> JinjaExpr {
        var node = start
        while let token = current, token.kind == .op {
            try chain()
            if token.text == "." {
                pos += 1
                guard let attr = current, attr.kind == .name || attr.kind == .integer else { throw unexpected() }
                pos += 1
                node = attr.kind == .integer
                    ? .item(node, .literal(.int(Int(attr.text) ?? 0)), line: attr.line)
                    : .attribute(node, attr.text, line: attr.line)
            } else if token.text == "[" {
                pos += 1
                node = try subscriptExpr(node, line: token.line)
            } else if token.text == "(" {
                node = try call(node, line: token.line)
            } else {
                break
            }
        }
        return node
    }

    private mutating func subscriptExpr(_ target: JinjaExpr, line: Int) throws -> JinjaExpr {
        var parts: [JinjaExpr?] = [nil]
        var sawColon = false
        while !accept("]") {
            if accept(":") {
                sawColon = true
                parts.append(nil)
                guard parts.count <= 3 else { throw unexpected() }
            } else {
                guard parts[parts.count - 1] == nil else { throw unexpected() }
                parts[parts.count - 1] = try expression()
            }
        }
        if !sawColon {
            guard let index = parts[0] else { throw unexpected() }
            return .item(target, index, line: line)
        }
        while parts.count < 3 { parts.append(nil) }
        return .slice(target, start: parts[0], stop: parts[1], step: parts[2], line: line)
    }

    private mutating func arguments() throws -> JinjaArgs {
        var args = JinjaArgs()
        try expect("(")
        while !accept(")") {
            if !(args.positional.isEmpty && args.keyword.isEmpty) { try expect(","); if accept(")") { break } }
            if peek("*") || peek("**") { throw TextError("chat template line \(currentLine): '*' / '**' argument unpacking is not supported") }
            if let token = current, token.kind == .name, pos + 1 < tokens.count, tokens[pos + 1].kind == .op, tokens[pos + 1].text == "=" {
                pos += 2
                args.keyword.append((token.text, try expression()))
            } else {
                guard args.keyword.isEmpty else { throw TextError("chat template line \(currentLine): positional argument after a keyword argument") }
                args.positional.append(try expression())
            }
        }
        return args
    }

    private mutating func call(_ callee: JinjaExpr, line: Int) throws -> JinjaExpr {
        switch callee {
        case .name(let name, _):
            guard JinjaBuiltins.functions.contains(name) else {
                throw TextError("chat template line \(line): function '\(name)' is not supported")
            }
        case .attribute(_, let method, _):
            guard JinjaBuiltins.methods.contains(method) else {
                throw TextError("chat template line \(line): method '.\(method)()' is not supported")
            }
        default:
            throw TextError("chat template line \(line): only named functions and methods can be called")
        }
        return .call(callee, try arguments(), line: line)
    }

    private mutating func filters(_ start: JinjaExpr) throws -> JinjaExpr {
        var node = start
        while true {
            try chain()
            if accept("|") {
                guard let token = current, token.kind == .name else { throw unexpected() }
                pos += 1
                guard JinjaBuiltins.filters.contains(token.text) else {
                    throw TextError("chat template line \(token.line): filter '\(token.text)' is not supported")
                }
                let args = peek("(") ? try arguments() : JinjaArgs()
                node = .filter(node, token.text, args, line: token.line)
            } else if acceptName("is") {
                let negated = acceptName("not")
                guard let token = current, token.kind == .name else { throw unexpected() }
                pos += 1
                guard JinjaBuiltins.tests.contains(token.text) else {
                    throw TextError("chat template line \(token.line): test '\(token.text)' is not supported")
                }
                var args = JinjaArgs()
                if peek("(") {
                    args = try arguments()
                } else if let next = current, next.kind != .op || ["(", "[", "{"].contains(next.text),
                          !(next.kind == .name && ["else", "or", "and", "is", "if", "in", "not"].contains(next.text)) {
                    args.positional = [try postfix(try primary())]
                }
                node = .test(node, token.text, args, negated: negated, line: token.line)
            } else if peek("("), case .attribute = node {
                node = try call(node, line: currentLine)
            } else {
                return node
            }
        }
    }
}
