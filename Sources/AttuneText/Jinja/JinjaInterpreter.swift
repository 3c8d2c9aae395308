import Foundation

/// Walks the statements of a parsed template with jinja2's semantics: `{% set %}` inside
/// a loop body is local to that iteration, `if` opens no scope, `and`/`or` return an
/// operand, Undefined prints as "" and fails when used in arithmetic or attribute access.
final class JinjaInterpreter {
    private var scopes: [[String: JinjaValue]]
    private var output = ""
    /// Statements run and loop iterations so far (`JinjaLimits.steps`).
    private var steps = 0
    /// The line of the last statement that has one: where a limit was reached.
    private var line = 1

    private enum Flow { case normal, breakLoop, continueLoop }

    init(variables: [String: JinjaValue]) { scopes = [variables] }

    func render(_ stmts: [JinjaStmt]) throws -> String {
        _ = try run(stmts)
        return output
    }

    // MARK: statements

    private func run(_ stmts: [JinjaStmt]) throws -> Flow {
        for stmt in stmts {
            let flow = try execute(stmt)
            if flow != .normal { return flow }
        }
        return .normal
    }

    private func step(line: Int) throws {
        steps += 1
        if steps > JinjaLimits.steps {
            throw TextError("chat template line \(line): more than \(JinjaLimits.steps) steps (the limit for templates; a loop that does not end?)")
        }
    }

    private func execute(_ stmt: JinjaStmt) throws -> Flow {
        switch stmt {
        case .output(_, let at), .forLoop(_, _, _, _, _, let at), .set(_, _, let at): line = at
        default: break
        }
        try step(line: line)
        switch stmt {
        case .text(let text):
            output += text
            try JinjaLimits.checkBytes(output.utf8.count, line: line)
        case .output(let expr, let line):
            output += JinjaFormat.str(try eval(expr))
            try JinjaLimits.checkBytes(output.utf8.count, line: line)
        case .ifChain(let branches, let otherwise):
            for (condition, body) in branches {
                if try eval(condition).truthy { return try run(body) }
            }
            return try run(otherwise)
        case .forLoop(let targets, let iterable, let filter, let body, let otherwise, let line):
            return try forLoop(targets: targets, iterable: iterable, filter: filter, body: body, otherwise: otherwise, line: line)
        case .set(let target, let expr, let line):
            try assign(target, try eval(expr), line: line)
        case .setBlock(let name, let body):
            let saved = output
            output = ""
            let flow = try run(body)
            scopes[scopes.count - 1][name] = .string(output)
            output = saved
            return flow
        case .breakLoop:
            return .breakLoop
        case .continueLoop:
            return .continueLoop
        }
        return .normal
    }

    private func assign(_ target: JinjaSetTarget, _ value: JinjaValue, line: Int) throws {
        switch target {
        case .name(let name):
            scopes[scopes.count - 1][name] = value
        case .names(let names):
            let items = try unpack(value, count: names.count, line: line)
            for (name, item) in zip(names, items) { scopes[scopes.count - 1][name] = item }
        case .attribute(let object, let attribute):
            guard case .namespace(let ns) = lookup(object) else {
                throw TextError("chat template line \(line): cannot assign attribute on non-namespace object '\(object)'")
            }
            guard !attribute.hasPrefix("_") else {
                throw TextError("chat template line \(line): namespace attributes cannot start with '_' ('\(attribute)')")
            }
            if JinjaLimits.containsNamespace(value) {
                throw TextError("chat template line \(line): a namespace attribute cannot hold a namespace")
            }
            ns.attributes[attribute] = value
        }
    }

    private func unpack(_ value: JinjaValue, count: Int, line: Int) throws -> [JinjaValue] {
        let items = try JinjaInterpreter.iterate(value, line: line)
        guard items.count == count else {
            throw TextError("chat template line \(line): cannot unpack \(items.count) values into \(count) names")
        }
        return items
    }

    private func forLoop(targets: [String], iterable: JinjaExpr, filter: JinjaExpr?, body: [JinjaStmt],
                         otherwise: [JinjaStmt], line: Int) throws -> Flow {
        var items = try JinjaInterpreter.iterate(try eval(iterable), line: line)
        func bind(_ item: JinjaValue) throws -> [String: JinjaValue] {
            if targets.count == 1 { return [targets[0]: item] }
            return Dictionary(uniqueKeysWithValues: zip(targets, try unpack(item, count: targets.count, line: line)))
        }
        if let filter {
            items = try items.filter { item in
                scopes.append(try bind(item))
                defer { scopes.removeLast() }
                return try eval(filter).truthy
            }
        }
        if items.isEmpty { return try run(otherwise) }
        for (index, item) in items.enumerated() {
            var frame = try bind(item)
            var loop = JinjaDict([
                ("index0", .int(index)), ("index", .int(index + 1)),
                ("revindex0", .int(items.count - index - 1)), ("revindex", .int(items.count - index)),
                ("first", .bool(index == 0)), ("last", .bool(index == items.count - 1)),
                ("length", .int(items.count)), ("depth", .int(1)), ("depth0", .int(0)),
            ])
            if index > 0 { loop["previtem"] = items[index - 1] }
            if index + 1 < items.count { loop["nextitem"] = items[index + 1] }
            try step(line: line)
            frame["loop"] = .dict(loop)
            scopes.append(frame)
            let flow = try run(body)
            scopes.removeLast()
            if flow == .breakLoop { break }
        }
        return .normal
    }

    /// Python iteration: list items, dict keys, string characters; Undefined iterates as empty.
    static func iterate(_ value: JinjaValue, line: Int) throws -> [JinjaValue] {
        switch value {
        case .list(let items), .tuple(let items): return items
        case .dict(let d): return d.keys.map { .string($0) }
        case .string(let s): return s.unicodeScalars.map { .string(String($0)) }
        case .undefined: return []
        default: throw TextError("chat template line \(line): '\(value.typeName)' object is not iterable")
        }
    }

    private func lookup(_ name: String) -> JinjaValue {
        for scope in scopes.reversed() {
            if let value = scope[name] { return value }
        }
        if JinjaBuiltins.functions.contains(name) { return .function(name) }
        return .undefined(hint: "'\(name)' is undefined")
    }

    // MARK: expressions

    func eval(_ expr: JinjaExpr) throws -> JinjaValue {
        switch expr {
        case .literal(let value):
            return value
        case .name(let name, _):
            return lookup(name)
        // Literals are the one way to nest values deeper than the template's text does
        // (`{% set ns.x = [ns.x] %}` in a loop), so their depth is checked.
        case .list(let items):
            return try JinjaLimits.checkDepth(.list(try items.map(eval)), line: line)
        case .tuple(let items):
            return try JinjaLimits.checkDepth(.tuple(try items.map(eval)), line: line)
        case .dict(let pairs):
            var d = JinjaDict()
            for (keyExpr, valueExpr) in pairs {
                guard case .string(let key) = try eval(keyExpr) else {
                    throw TextError("chat template: dict literal keys must be strings")
                }
                d[key] = try eval(valueExpr)
            }
            return try JinjaLimits.checkDepth(.dict(d), line: line)
        case .attribute(let base, let name, let line):
            return try JinjaInterpreter.attribute(try eval(base), name, line: line)
        case .item(let base, let index, let line):
            return try item(try eval(base), try eval(index), line: line)
        case .slice(let base, let start, let stop, let step, let line):
            return try slice(try eval(base), start: try start.map(eval), stop: try stop.map(eval), step: try step.map(eval), line: line)
        case .call(let callee, let args, let line):
            let positional = try args.positional.map(eval)
            let keyword = try args.keyword.map { ($0.0, try eval($0.1)) }
            if case .attribute(let base, let method, _) = callee {
                return try JinjaLimits.check(try JinjaBuiltins.method(method, on: try JinjaInterpreter.defined(try eval(base), line: line),
                                                                      positional, keyword, line: line), line: line)
            }
            guard case .name(let name, _) = callee else { throw TextError("chat template line \(line): not callable") }
            return try JinjaLimits.check(try JinjaBuiltins.call(name, positional, keyword, line: line), line: line)
        case .filter(let base, let name, let args, let line):
            let positional = try args.positional.map(eval)
            let keyword = try args.keyword.map { ($0.0, try eval($0.1)) }
            return try JinjaLimits.check(try JinjaBuiltins.filter(name, try eval(base), positional, keyword, line: line), line: line)
        case .test(let base, let name, let args, let negated, let line):
            let positional = try args.positional.map(eval)
            let result = try JinjaBuiltins.test(name, try eval(base), positional, line: line)
            return .bool(result != negated)
        case .not(let inner):
            return .bool(!(try eval(inner)).truthy)
        case .negate(let inner, let line):
            switch try JinjaInterpreter.defined(try eval(inner), line: line) {
            case .int(let i): return try JinjaLimits.exact((0).subtractingReportingOverflow(i), "-", line: line)
            case .bool(let b): return .int(b ? -1 : 0)
            case .double(let d): return .double(-d)
            case let other: throw TextError("chat template line \(line): bad operand type for unary -: '\(other.typeName)'")
            }
        case .and(let lhs, let rhs):
            let left = try eval(lhs)
            return left.truthy ? try eval(rhs) : left
        case .or(let lhs, let rhs):
            let left = try eval(lhs)
            return left.truthy ? left : try eval(rhs)
        case .binary(let op, let lhs, let rhs, let line):
            return try JinjaOperators.binary(op, try eval(lhs), try eval(rhs), line: line)
        case .compare(let first, let rest, let line):
            var left = try eval(first)
            for (op, rhs) in rest {
                let right = try eval(rhs)
                guard try JinjaOperators.compare(op, left, right, line: line) else { return .bool(false) }
                left = right
            }
            return .bool(true)
        case .conditional(let then, let condition, let otherwise):
            if try eval(condition).truthy { return try eval(then) }
            return try otherwise.map(eval) ?? .undefined(hint: "the inline if expression evaluated to false and no else section was defined")
        }
    }

    /// Fails on Undefined, with jinja's message for it ("'x' is undefined").
    static func defined(_ value: JinjaValue, line: Int) throws -> JinjaValue {
        if case .undefined(let hint) = value { throw TextError("chat template line \(line): \(hint)") }
        return value
    }

    /// `a.b`: a dict key or namespace attribute; anything missing is Undefined.
    static func attribute(_ base: JinjaValue, _ name: String, line: Int) throws -> JinjaValue {
        switch try JinjaInterpreter.defined(base, line: line) {
        case .dict(let d):
            return d[name] ?? .undefined(hint: "'dict object' has no attribute '\(name)'")
        case .namespace(let ns):
            return ns.attributes[name] ?? .undefined(hint: "'Namespace' object has no attribute '\(name)'")
        case let other:
            return .undefined(hint: "'\(other.typeName) object' has no attribute '\(name)'")
        }
    }

    /// `a[b]`: list and string indices (negative from the end), dict keys; misses are Undefined.
    func item(_ base: JinjaValue, _ index: JinjaValue, line: Int) throws -> JinjaValue {
        switch (try JinjaInterpreter.defined(base, line: line), index) {
        case (.list(let items), _), (.tuple(let items), _):
            guard let i = index.integer else { return .undefined(hint: "list indices must be integers") }
            let k = i < 0 ? items.count + i : i
            return items.indices.contains(k) ? items[k] : .undefined(hint: "list object has no element \(i)")
        case (.string(let s), _):
            guard let i = index.integer else { return .undefined(hint: "string indices must be integers") }
            let scalars = Array(s.unicodeScalars)
            let k = i < 0 ? scalars.count + i : i
            return scalars.indices.contains(k) ? .string(String(scalars[k])) : .undefined(hint: "str object has no element \(i)")
        case (.dict, .string(let key)), (.namespace, .string(let key)):
            return try JinjaInterpreter.attribute(base, key, line: line)
        case (let other, _):
            return .undefined(hint: "'\(other.typeName) object' has no attribute \(JinjaFormat.repr(index))")
        }
    }

    func slice(_ base: JinjaValue, start: JinjaValue?, stop: JinjaValue?, step: JinjaValue?, line: Int) throws -> JinjaValue {
        func bound(_ v: JinjaValue?) throws -> Int? {
            guard let v, !(v == .none) else { return nil }
            guard let i = v.integer else { throw TextError("chat template line \(line): slice indices must be integers or None") }
            return i
        }
        let indices = try JinjaOperators.sliceIndices(start: bound(start), stop: bound(stop), step: bound(step), line: line)
        switch try JinjaInterpreter.defined(base, line: line) {
        case .list(let items):
            return .list(indices(items.count).map { items[$0] })
        case .tuple(let items):
            return .tuple(indices(items.count).map { items[$0] })
        case .string(let s):
            let scalars = Array(s.unicodeScalars)
            var view = String.UnicodeScalarView()
            view.append(contentsOf: indices(scalars.count).map { scalars[$0] })
            return .string(String(view))
        case let other:
            throw TextError("chat template line \(line): '\(other.typeName)' object is not subscriptable")
        }
    }
}
