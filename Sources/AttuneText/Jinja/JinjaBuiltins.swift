import Foundation

/// The filters, tests, global functions and methods chat templates get from jinja2 and
/// transformers (`raise_exception`, `strftime_now`, `namespace`, and a `tojson` that does
/// not escape HTML). The name sets are what the parser accepts; every other name is
/// refused there, naming the construct and its line.
enum JinjaBuiltins {
    static let filters: Set<String> = [
        "abs", "capitalize", "count", "d", "default", "first", "float", "int", "items", "join", "last",
        "length", "list", "lower", "map", "reject", "rejectattr", "replace", "reverse", "safe", "select",
        "selectattr", "string", "tojson", "trim", "upper",
    ]
    static let tests: Set<String> = [
        "boolean", "callable", "defined", "divisibleby", "eq", "equalto", "even", "false", "float", "ge",
        "gt", "in", "integer", "iterable", "le", "lower", "lt", "mapping", "ne", "none", "number", "odd",
        "sameas", "sequence", "string", "true", "undefined", "upper", "==", "!=", "<", "<=", ">", ">=",
    ]
    static let functions: Set<String> = ["dict", "namespace", "raise_exception", "range", "strftime_now"]
    static let methods: Set<String> = [
        "capitalize", "count", "endswith", "find", "get", "items", "join", "keys", "lower", "lstrip",
        "replace", "rstrip", "split", "startswith", "strip", "title", "upper", "values",
    ]

    typealias Keywords = [(String, JinjaValue)]

    /// Binds positional and keyword arguments to `names` (Python call rules); missing ones are nil.
    private static func bind(_ what: String, _ positional: [JinjaValue], _ keyword: Keywords, _ names: [String],
                             line: Int) throws -> [JinjaValue?] {
        guard positional.count <= names.count else {
            throw TextError("chat template line \(line): \(what) takes at most \(names.count) arguments, got \(positional.count)")
        }
        var out: [JinjaValue?] = positional + Array(repeating: nil, count: names.count - positional.count)
        for (name, value) in keyword {
            guard let k = names.firstIndex(of: name) else {
                throw TextError("chat template line \(line): \(what) got an unexpected keyword argument '\(name)'")
            }
            out[k] = value
        }
        return out
    }

    private static func string(_ v: JinjaValue?, _ what: String, line: Int) throws -> String {
        guard case .string(let s)? = v else {
            throw TextError("chat template line \(line): \(what) expects a string, got \(v?.typeName ?? "nothing")")
        }
        return s
    }

    // MARK: filters

    static func filter(_ name: String, _ value: JinjaValue, _ positional: [JinjaValue], _ keyword: Keywords,
                       line: Int) throws -> JinjaValue {
        let what = "filter '\(name)'"
        switch name {
        case "trim":
            let a = try bind(what, positional, keyword, ["chars"], line: line)
            return .string(strip(JinjaFormat.str(value), chars: a[0].flatMap { if case .string(let c) = $0 { return c } else { return nil } }, left: true, right: true))
        case "length", "count":
            switch value {
            case .string(let s): return .int(s.unicodeScalars.count)
            case .list(let l), .tuple(let l): return .int(l.count)
            case .dict(let d): return .int(d.keys.count)
            case .undefined: return .int(0)
            default: throw TextError("chat template line \(line): object of type '\(value.typeName)' has no len()")
            }
        case "lower": return .string(JinjaFormat.str(value).lowercased())
        case "upper": return .string(JinjaFormat.str(value).uppercased())
        case "capitalize": return .string(capitalize(JinjaFormat.str(value)))
        case "string", "safe": return .string(JinjaFormat.str(value))
        case "default", "d":
            let a = try bind(what, positional, keyword, ["default_value", "boolean"], line: line)
            let useDefault = (a[1]?.truthy ?? false) ? !value.truthy : value.isUndefined
            return useDefault ? (a[0] ?? .string("")) : value
        case "first", "last":
            let items = try JinjaInterpreter.iterate(value, line: line)
            guard let item = name == "first" ? items.first : items.last else {
                return .undefined(hint: "No \(name) item, sequence was empty.")
            }
            return item
        case "join":
            let a = try bind(what, positional, keyword, ["d", "attribute"], line: line)
            let separator = a[0].map(JinjaFormat.str) ?? ""
            var items = try JinjaInterpreter.iterate(value, line: line)
            if case .string(let attr)? = a[1] { items = try items.map { try JinjaInterpreter.attribute($0, attr, line: line) } }
            let parts = items.map(JinjaFormat.str)
            try JinjaLimits.checkBytes(parts.reduce(0) { $0 + $1.utf8.count } + max(0, parts.count - 1) * separator.utf8.count, line: line)
            return .string(parts.joined(separator: separator))
        case "replace":
            let a = try bind(what, positional, keyword, ["old", "new", "count"], line: line)
            let (text, old, new) = (JinjaFormat.str(value), try string(a[0], what, line: line), try string(a[1], what, line: line))
            try JinjaLimits.checkBytes(replacedBytes(text, old, new), line: line)
            return .string(replace(text, old, new, count: a[2]?.integer ?? -1))
        case "list":
            return .list(try JinjaInterpreter.iterate(value, line: line))
        case "items":
            switch value {
            case .dict(let d): return .list(d.pairs.map { .tuple([.string($0.0), $0.1]) })
            case .undefined: return .list([])
            default: throw TextError("chat template line \(line): filter 'items' expects a mapping, got \(value.typeName)")
            }
        case "reverse":
            switch value {
            case .string(let s): return .string(String(String.UnicodeScalarView(s.unicodeScalars.reversed())))
            default: return .list(try JinjaInterpreter.iterate(value, line: line).reversed())
            }
        case "abs":
            switch try JinjaInterpreter.defined(value, line: line) {
            case .int(let i): return try JinjaLimits.exact(i == Int.min ? (0, true) : (abs(i), false), "abs", line: line)
            case .bool(let b): return .int(b ? 1 : 0)
            case .double(let d): return .double(abs(d))
            default: throw TextError("chat template line \(line): bad operand type for abs(): '\(value.typeName)'")
            }
        case "int":
            let a = try bind(what, positional, keyword, ["default", "base"], line: line)
            switch try JinjaInterpreter.defined(value, line: line) {
            case .int, .bool: return .int(value.integer!)
            case .double(let d): return d.isFinite ? .int(Int(d)) : (a[0] ?? .int(0))
            case .string(let s): return Int(s.trimmingCharacters(in: .whitespaces)).map { .int($0) } ?? Double(s).map { .int(Int($0)) } ?? (a[0] ?? .int(0))
            default: return a[0] ?? .int(0)
            }
        case "float":
            let a = try bind(what, positional, keyword, ["default"], line: line)
            if let n = try JinjaInterpreter.defined(value, line: line).numeric { return .double(n) }
            if case .string(let s) = value, let d = Double(s.trimmingCharacters(in: .whitespaces)) { return .double(d) }
            return a[0] ?? .double(0)
        case "tojson":
            let a = try bind(what, positional, keyword, ["ensure_ascii", "indent", "separators", "sort_keys"], line: line)
            if a[0]?.truthy == true { throw TextError("chat template line \(line): tojson(ensure_ascii=true) is not supported") }
            var indent: String?
            switch a[1] {
            case .int(let n)?:
                guard n <= 64 else { throw TextError("chat template line \(line): tojson indent of more than 64 spaces") }
                indent = String(repeating: " ", count: max(0, n))
            case .string(let s)?: indent = s
            case nil, .none?: indent = nil
            case let other?: throw TextError("chat template line \(line): tojson indent must be an int or a string, got \(other.typeName)")
            }
            var separators: (String, String)?
            switch a[2] {
            case .list(let seps)?, .tuple(let seps)?:
                guard seps.count == 2, case .string(let x) = seps[0], case .string(let y) = seps[1] else {
                    throw TextError("chat template line \(line): tojson separators must be two strings")
                }
                separators = (x, y)
            case nil, .none?: separators = nil
            case let other?: throw TextError("chat template line \(line): tojson separators must be two strings, got \(other.typeName)")
            }
            do {
                return .string(try JinjaFormat.json(value, indent: indent, separators: separators, sortKeys: a[3]?.truthy ?? false))
            } catch let error as TextError {
                throw TextError("chat template line \(line): \(error.message)")
            }
        case "select", "reject", "selectattr", "rejectattr":
            let byAttribute = name.hasSuffix("attr")
            let keep = name.hasPrefix("select")
            var args = positional
            var attribute: String?
            if byAttribute {
                guard !args.isEmpty else { throw TextError("chat template line \(line): \(what) needs an attribute name") }
                attribute = try string(args.removeFirst(), what, line: line)
            }
            let testName = args.isEmpty ? nil : try string(args.removeFirst(), what, line: line)
            if let testName, !tests.contains(testName) {
                throw TextError("chat template line \(line): test '\(testName)' is not supported")
            }
            return .list(try JinjaInterpreter.iterate(value, line: line).filter { item in
                let subject = try attribute.map { try JinjaInterpreter.attribute(item, $0, line: line) } ?? item
                let passes = try testName.map { try test($0, subject, args, line: line) } ?? subject.truthy
                return passes == keep
            })
        case "map":
            let items = try JinjaInterpreter.iterate(value, line: line)
            if let attr = keyword.first(where: { $0.0 == "attribute" })?.1 {
                let key = try string(attr, what, line: line)
                let fallback = keyword.first(where: { $0.0 == "default" })?.1
                return .list(try items.map { item in
                    let v = try JinjaInterpreter.attribute(item, key, line: line)
                    return v.isUndefined ? (fallback ?? v) : v
                })
            }
            guard let first = positional.first else { throw TextError("chat template line \(line): \(what) needs a filter name or attribute=") }
            let inner = try string(first, what, line: line)
            guard filters.contains(inner) else { throw TextError("chat template line \(line): filter '\(inner)' is not supported") }
            return .list(try items.map { try filter(inner, $0, Array(positional.dropFirst()), keyword, line: line) })
        default:
            throw TextError("chat template line \(line): filter '\(name)' is not supported")
        }
    }

    // MARK: tests

    static func test(_ name: String, _ value: JinjaValue, _ args: [JinjaValue], line: Int) throws -> Bool {
        func arg() throws -> JinjaValue {
            guard let a = args.first else { throw TextError("chat template line \(line): test '\(name)' needs an argument") }
            return a
        }
        switch name {
        case "defined": return !value.isUndefined
        case "undefined": return value.isUndefined
        case "none": if case .none = value { return true } else { return false }
        case "boolean": if case .bool = value { return true } else { return false }
        case "true": if case .bool(true) = value { return true } else { return false }
        case "false": if case .bool(false) = value { return true } else { return false }
        case "integer": if case .int = value { return true } else { return false }
        case "float": if case .double = value { return true } else { return false }
        case "number": return value.numeric != nil
        case "string": if case .string = value { return true } else { return false }
        case "mapping": if case .dict = value { return true } else { return false }
        case "callable": if case .function = value { return true } else { return false }
        case "iterable", "sequence":
            switch value {
            case .list, .tuple, .dict, .string, .undefined: return true
            default: return false
            }
        case "lower": if case .string(let s) = value { return s == s.lowercased() } else { return false }
        case "upper": if case .string(let s) = value { return s == s.uppercased() } else { return false }
        case "odd", "even", "divisibleby":
            // jinja2: value % 2 == 1, value % 2 == 0, value % num == 0 (Python modulo, floats too).
            guard value.numeric != nil else { throw TextError("chat template line \(line): test '\(name)' needs a number, got \(value.typeName)") }
            let divisor = name == "divisibleby" ? try arg() : .int(2)
            let remainder = try JinjaOperators.binary("%", value, divisor, line: line)
            return remainder == .int(name == "odd" ? 1 : 0)
        case "sameas":
            let other = try arg()
            switch (value, other) {
            case (.none, .none), (.undefined, .undefined): return true
            case (.bool(let a), .bool(let b)): return a == b
            case (.namespace(let a), .namespace(let b)): return a === b
            default: return false
            }
        case "in": return try JinjaOperators.contains(try arg(), value, line: line)
        case "eq", "equalto", "==": return try JinjaOperators.compare("==", value, try arg(), line: line)
        case "ne", "!=": return try JinjaOperators.compare("!=", value, try arg(), line: line)
        case "lt", "<": return try JinjaOperators.compare("<", value, try arg(), line: line)
        case "le", "<=": return try JinjaOperators.compare("<=", value, try arg(), line: line)
        case "gt", ">": return try JinjaOperators.compare(">", value, try arg(), line: line)
        case "ge", ">=": return try JinjaOperators.compare(">=", value, try arg(), line: line)
        default: throw TextError("chat template line \(line): test '\(name)' is not supported")
        }
    }

    // MARK: functions

    static func call(_ name: String, _ positional: [JinjaValue], _ keyword: Keywords, line: Int) throws -> JinjaValue {
        switch name {
        case "raise_exception":
            let a = try bind(name, positional, keyword, ["message"], line: line)
            throw TextError(a[0].map(JinjaFormat.str) ?? "")
        case "strftime_now":
            let a = try bind(name, positional, keyword, ["format"], line: line)
            return .string(try strftime(try string(a[0], name, line: line), Date(), line: line))
        case "namespace", "dict":
            var attributes = JinjaDict()
            for value in positional {
                guard case .dict(let d) = value else { throw TextError("chat template line \(line): \(name)() takes a mapping, got \(value.typeName)") }
                for (k, v) in d.pairs { attributes[k] = v }
            }
            for (k, v) in keyword { attributes[k] = v }
            if name == "namespace", attributes.pairs.contains(where: { JinjaLimits.containsNamespace($0.1) }) {
                throw TextError("chat template line \(line): a namespace attribute cannot hold a namespace")
            }
            return name == "dict" ? try JinjaLimits.checkDepth(.dict(attributes), line: line) : .namespace(JinjaNamespace(attributes))
        case "range":
            let ints = try positional.map { v -> Int in
                guard let i = v.integer else { throw TextError("chat template line \(line): range() takes integers") }
                return i
            }
            guard (1...3).contains(ints.count), keyword.isEmpty else { throw TextError("chat template line \(line): range() takes 1 to 3 integers") }
            let (start, stop, step) = ints.count == 1 ? (0, ints[0], 1) : (ints[0], ints[1], ints.count == 3 ? ints[2] : 1)
            guard step != 0 else { throw TextError("chat template line \(line): range() step must not be zero") }
            // Counted before anything is allocated, in Double so no bound overflows.
            let count = max(0, ((Double(stop) - Double(start)) / Double(step)).rounded(.up))
            guard count <= Double(JinjaLimits.rangeItems) else {
                throw TextError("chat template line \(line): range() of more than \(JinjaLimits.rangeItems) items (the limit for templates)")
            }
            return .list(Array(stride(from: start, to: stop, by: step)).map { .int($0) })
        default:
            throw TextError("chat template line \(line): function '\(name)' is not supported")
        }
    }

    // MARK: methods

    static func method(_ name: String, on value: JinjaValue, _ positional: [JinjaValue], _ keyword: Keywords,
                       line: Int) throws -> JinjaValue {
        let what = "method '.\(name)()'"
        if case .dict(let d) = value {
            switch name {
            case "items": return .list(d.pairs.map { .tuple([.string($0.0), $0.1]) })
            case "keys": return .list(d.keys.map { .string($0) })
            case "values": return .list(d.pairs.map { $0.1 })
            case "get":
                let a = try bind(what, positional, keyword, ["key", "default"], line: line)
                guard case .string(let key)? = a[0] else { return a[1] ?? .none }
                return d[key] ?? a[1] ?? .none
            default: break
            }
        }
        guard case .string(let s) = value else {
            throw TextError("chat template line \(line): \(what) is not supported on \(value.typeName)")
        }
        func chars(_ v: JinjaValue?) -> String? { if case .string(let c)? = v { return c } else { return nil } }
        switch name {
        case "strip", "lstrip", "rstrip":
            let a = try bind(what, positional, keyword, ["chars"], line: line)
            return .string(strip(s, chars: chars(a[0]), left: name != "rstrip", right: name != "lstrip"))
        case "startswith", "endswith":
            let a = try bind(what, positional, keyword, ["prefix"], line: line)
            let candidates: [JinjaValue]
            switch a[0] {
            case .list(let l)?, .tuple(let l)?: candidates = l
            default: candidates = a[0].map { [$0] } ?? []
            }
            return .bool(try candidates.contains { c in
                let affix = try string(c, what, line: line)
                return name == "startswith" ? s.unicodeScalars.starts(with: affix.unicodeScalars)
                    : s.unicodeScalars.reversed().starts(with: affix.unicodeScalars.reversed())
            })
        case "split":
            let a = try bind(what, positional, keyword, ["sep", "maxsplit"], line: line)
            return .list(try split(s, separator: chars(a[0]), maxSplit: a[1]?.integer ?? -1, line: line).map { .string($0) })
        case "upper": return .string(s.uppercased())
        case "lower": return .string(s.lowercased())
        case "capitalize": return .string(capitalize(s))
        case "title": return .string(title(s))
        case "replace":
            let a = try bind(what, positional, keyword, ["old", "new", "count"], line: line)
            let (old, new) = (try string(a[0], what, line: line), try string(a[1], what, line: line))
            try JinjaLimits.checkBytes(replacedBytes(s, old, new), line: line)
            return .string(replace(s, old, new, count: a[2]?.integer ?? -1))
        case "find", "count":
            let a = try bind(what, positional, keyword, ["sub"], line: line)
            let sub = try string(a[0], what, line: line)
            if name == "count" { return .int(sub.isEmpty ? s.unicodeScalars.count + 1 : s.components(separatedBy: sub).count - 1) }
            guard let range = s.range(of: sub, options: .literal) else { return .int(-1) }
            return .int(s.unicodeScalars.distance(from: s.unicodeScalars.startIndex, to: range.lowerBound))
        case "join":
            let a = try bind(what, positional, keyword, ["iterable"], line: line)
            let items = try JinjaInterpreter.iterate(a[0] ?? .list([]), line: line)
            return .string(try items.map { try string($0, what, line: line) }.joined(separator: s))
        default:
            throw TextError("chat template line \(line): \(what) is not supported on str")
        }
    }
}
