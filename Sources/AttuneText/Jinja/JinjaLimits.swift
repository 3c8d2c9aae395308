/// What a chat template may cost. A template comes with a downloaded checkpoint and runs
/// on every prompt, so it is untrusted input: without limits `range(10**8)` nested twice
/// hangs, `((((…` 100 000 deep or 50 000 nested `if`s overflow the stack, `9223372036854775807
/// + 1` traps and `'x' * 10**12` exhausts memory. Real templates (Llama 3, Qwen2.5,
/// Mistral, Zephyr) stay orders of magnitude below every limit.
enum JinjaLimits {
    /// Nested blocks and nested expressions the parser accepts.
    static let nesting = 64
    /// Operators chained in one tag (`a + b + …`, `x|f|g…`): a chain is as deep as it is long.
    static let chainedOperators = 1000
    /// Statements executed plus loop iterations, per render.
    static let steps = 1_000_000
    /// Items of one `range()` (jinja2's sandbox allows 100 000 too).
    static let rangeItems = 100_000
    /// UTF-8 bytes of the output and of any string value.
    static let bytes = 16 << 20
    /// Items of one list or tuple.
    static let items = 1_000_000
    /// Containers nested in one value (a list in a list …).
    static let valueDepth = 64

    static func checkBytes(_ n: Int, line: Int) throws {
        if n > bytes { throw TextError("chat template line \(line): a string of more than \(bytes >> 20) MiB (the limit for templates)") }
    }

    static func checkItems(_ n: Int, line: Int) throws {
        if n > items { throw TextError("chat template line \(line): a list of more than \(items) items (the limit for templates)") }
    }

    /// `value` holds strings and lists within the limits (checked after an operation that
    /// can at most double them; operations that multiply check before).
    static func check(_ value: JinjaValue, line: Int) throws -> JinjaValue {
        switch value {
        case .string(let s): try checkBytes(s.utf8.count, line: line)
        case .list(let items), .tuple(let items): try checkItems(items.count, line: line)
        default: break
        }
        return value
    }

    /// Containers nested in `value`, counted up to `valueDepth + 1` (a cycle through a
    /// namespace is never built: see `containsNamespace`).
    static func depth(_ value: JinjaValue, limit: Int = valueDepth + 1) -> Int {
        guard limit > 0 else { return 0 }
        switch value {
        case .list(let items), .tuple(let items): return 1 + (items.map { depth($0, limit: limit - 1) }.max() ?? 0)
        case .dict(let d): return 1 + (d.pairs.map { depth($0.1, limit: limit - 1) }.max() ?? 0)
        default: return 0
        }
    }

    static func checkDepth(_ value: JinjaValue, line: Int) throws -> JinjaValue {
        if depth(value) > valueDepth { throw TextError("chat template line \(line): a value nested more than \(valueDepth) deep (the limit for templates)") }
        return value
    }

    /// A namespace stored in a namespace could make a cycle, which printing would follow
    /// forever; no real template does it.
    static func containsNamespace(_ value: JinjaValue, limit: Int = valueDepth + 1) -> Bool {
        guard limit > 0 else { return false }
        switch value {
        case .namespace: return true
        case .list(let items), .tuple(let items): return items.contains { containsNamespace($0, limit: limit - 1) }
        case .dict(let d): return d.pairs.contains { containsNamespace($0.1, limit: limit - 1) }
        default: return false
        }
    }

    /// Python's int arithmetic, in 64 bits: a result that does not fit is an error.
    static func exact(_ result: (partialValue: Int, overflow: Bool), _ op: String, line: Int) throws -> JinjaValue {
        if result.overflow { throw TextError("chat template line \(line): integer overflow in '\(op)' (templates compute in 64-bit integers)") }
        return .int(result.partialValue)
    }

    /// x ** y for y >= 0 by squaring, refusing what does not fit.
    static func power(_ x: Int, _ y: Int, line: Int) throws -> JinjaValue {
        var result = 1, base = x, e = y
        while e > 0 {
            if e & 1 == 1 { guard case .int(let r) = try exact(result.multipliedReportingOverflow(by: base), "**", line: line) else { break }; result = r }
            e >>= 1
            if e > 0 { guard case .int(let b) = try exact(base.multipliedReportingOverflow(by: base), "**", line: line) else { break }; base = b }
        }
        return .int(result)
    }
}
