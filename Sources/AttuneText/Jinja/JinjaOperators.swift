import Foundation

/// Python semantics of the binary and comparison operators on template values.
enum JinjaOperators {
    static func binary(_ op: String, _ lhs: JinjaValue, _ rhs: JinjaValue, line: Int) throws -> JinjaValue {
        if op == "~" { return try JinjaLimits.check(.string(JinjaFormat.str(lhs) + JinjaFormat.str(rhs)), line: line) }
        let a = try JinjaInterpreter.defined(lhs, line: line)
        let b = try JinjaInterpreter.defined(rhs, line: line)
        func mismatch() -> TextError {
            TextError("chat template line \(line): unsupported operand types for \(op): '\(a.typeName)' and '\(b.typeName)'")
        }
        // Repetition is checked before it allocates: 'x' * 10**12 must not try.
        func repeated(_ unit: Int, _ count: Int?, bytes: Bool) throws -> Int {
            let n = max(0, count!)
            let (total, overflow) = unit.multipliedReportingOverflow(by: n)
            if bytes { try JinjaLimits.checkBytes(overflow ? Int.max : total, line: line) } else { try JinjaLimits.checkItems(overflow ? Int.max : total, line: line) }
            return n
        }
        switch (op, a, b) {
        case ("+", .string(let x), .string(let y)): return try JinjaLimits.check(.string(x + y), line: line)
        case ("+", .list(let x), .list(let y)): return try JinjaLimits.check(.list(x + y), line: line)
        case ("+", .tuple(let x), .tuple(let y)): return try JinjaLimits.check(.tuple(x + y), line: line)
        case ("*", .string(let x), _) where b.integer != nil:
            return .string(String(repeating: x, count: try repeated(x.utf8.count, b.integer, bytes: true)))
        case ("*", .list(let x), _) where b.integer != nil:
            return .list(Array(repeating: x, count: try repeated(x.count, b.integer, bytes: false)).flatMap { $0 })
        case ("*", _, .string) where a.integer != nil: return try binary(op, b, a, line: line)
        case ("*", _, .list) where a.integer != nil: return try binary(op, b, a, line: line)
        case ("*", .tuple(let x), _) where b.integer != nil:
            return .tuple(Array(repeating: x, count: try repeated(x.count, b.integer, bytes: false)).flatMap { $0 })
        case ("*", _, .tuple) where a.integer != nil: return try binary(op, b, a, line: line)
        case ("%", .string, _):
            throw TextError("chat template line \(line): string formatting with '%' is not supported")
        default: break
        }
        if let x = a.integer, let y = b.integer {
            switch op {
            case "+": return try JinjaLimits.exact(x.addingReportingOverflow(y), op, line: line)
            case "-": return try JinjaLimits.exact(x.subtractingReportingOverflow(y), op, line: line)
            case "*": return try JinjaLimits.exact(x.multipliedReportingOverflow(by: y), op, line: line)
            case "/":
                guard y != 0 else { throw TextError("chat template line \(line): division by zero") }
                return .double(Double(x) / Double(y))
            case "//", "%":
                guard y != 0 else { throw TextError("chat template line \(line): integer division or modulo by zero") }
                if x == Int.min && y == -1 { return try JinjaLimits.exact((0, true), op, line: line) }
                let q = x / y - ((x % y != 0 && (x < 0) != (y < 0)) ? 1 : 0)
                return op == "//" ? .int(q) : .int(x - q * y)
            case "**":
                if y >= 0 { return try JinjaLimits.power(x, y, line: line) }
                return .double(pow(Double(x), Double(y)))
            default: break
            }
        }
        guard let x = a.numeric, let y = b.numeric else { throw mismatch() }
        switch op {
        case "+": return .double(x + y)
        case "-": return .double(x - y)
        case "*": return .double(x * y)
        case "/", "//", "%":
            guard y != 0 else { throw TextError("chat template line \(line): float division by zero") }
            if op == "/" { return .double(x / y) }
            let q = (x / y).rounded(.down)
            return .double(op == "//" ? q : x - q * y)
        case "**": return .double(pow(x, y))
        default: throw mismatch()
        }
    }

    static func compare(_ op: String, _ a: JinjaValue, _ b: JinjaValue, line: Int) throws -> Bool {
        switch op {
        case "==": return a == b
        case "!=": return a != b
        case "in": return try contains(b, a, line: line)
        case "not in": return try !contains(b, a, line: line)
        default: break
        }
        let order: Int
        if let x = a.numeric, let y = b.numeric {
            order = x < y ? -1 : x > y ? 1 : 0
        } else if case .string(let x) = a, case .string(let y) = b {
            order = x.unicodeScalars.elementsEqual(y.unicodeScalars) ? 0
                : x.unicodeScalars.lexicographicallyPrecedes(y.unicodeScalars) ? -1 : 1
        } else {
            throw TextError("chat template line \(line): '\(op)' not supported between '\(a.typeName)' and '\(b.typeName)'")
        }
        switch op {
        case "<": return order < 0
        case ">": return order > 0
        case "<=": return order <= 0
        default: return order >= 0
        }
    }

    /// Python `needle in container`.
    static func contains(_ container: JinjaValue, _ needle: JinjaValue, line: Int) throws -> Bool {
        switch container {
        case .string(let s):
            guard case .string(let n) = needle else {
                throw TextError("chat template line \(line): 'in <string>' requires string as left operand, not \(needle.typeName)")
            }
            return n.isEmpty || s.range(of: n, options: .literal) != nil
        case .list(let items), .tuple(let items): return items.contains(needle)
        case .dict(let d):
            switch needle {
            case .list, .dict: throw TextError("chat template line \(line): unhashable type: '\(needle.typeName)'")
            default: break
            }
            guard case .string(let key) = needle else { return false }
            return d[key] != nil
        case .undefined: return false
        default:
            throw TextError("chat template line \(line): argument of type '\(container.typeName)' is not iterable")
        }
    }

    /// Python's slice index rules (negative indices, clamping, negative steps) as a function
    /// from the sequence length to the selected indices.
    static func sliceIndices(start: Int?, stop: Int?, step: Int?, line: Int) throws -> (Int) -> [Int] {
        let step = step ?? 1
        guard step != 0 else { throw TextError("chat template line \(line): slice step cannot be zero") }
        return { count in
            func clamp(_ v: Int, low: Int, high: Int) -> Int {
                let v = v < 0 ? v + count : v
                return min(max(v, low), high)
            }
            var out: [Int] = []
            if step > 0 {
                var i = start.map { clamp($0, low: 0, high: count) } ?? 0
                let end = stop.map { clamp($0, low: 0, high: count) } ?? count
                while i < end { out.append(i); i += step }
            } else {
                var i = start.map { clamp($0, low: -1, high: count - 1) } ?? count - 1
                let end = stop.map { clamp($0, low: -1, high: count - 1) } ?? -1
                while i > end { out.append(i); i += step }
            }
            return out
        }
    }
}
