// Symbolic dims (`seq`, `kv`, ...) bound to numbers during one run of the reference
// interpreter, remembering what bound each one so a conflict names both sides.

import AttuneIR

struct SymbolBindings {
    private(set) var values: [String: Int] = [:]
    private var origins: [String: String] = [:]

    /// Checks `shape` against `type`'s dims and binds its unbound symbols to what the
    /// shape says (`origin` names the binder). Returns the reason on a mismatch, with
    /// nothing bound.
    mutating func match(_ shape: [Int], _ type: TensorType, origin: String) -> String? {
        guard shape.count == type.rank else { return "rank \(shape.count) instead of \(type.rank)" }
        var fresh: [String: Int] = [:]
        for (axis, (n, dim)) in zip(shape, type.shape).enumerated() {
            switch dim {
            case .fixed(let want):
                if n != want { return "dim \(axis) is \(n), not \(want)" }
            case .symbol(let s):
                if let bound = values[s] {
                    if n != bound { return "dim \(axis) is \(n), but \(s) = \(bound) (bound by \(origins[s]!))" }
                } else if let seen = fresh[s] {
                    if n != seen { return "dim \(axis) is \(n), but \(s) is \(seen) earlier in the same shape" }
                } else {
                    fresh[s] = n
                }
            }
        }
        for (s, n) in fresh {
            values[s] = n
            origins[s] = origin
        }
        return nil
    }

    /// The numbers of a reshape's target dims. A single symbol not yet bound is inferred
    /// from the element count (and bound).
    mutating func resolveReshape(_ dims: [Dim], count: Int, from shape: [Int], origin: String) throws -> [Int] {
        let unbound = Set(dims.compactMap { d -> String? in
            if case .symbol(let s) = d, values[s] == nil { return s }
            return nil
        })
        let target = "[\(dims.map(\.description).joined(separator: ", "))]"
        guard unbound.count <= 1 else {
            throw NodeFailure("cannot reshape to \(target): symbols \(unbound.sorted().joined(separator: ", ")) are not bound")
        }
        var known = 1
        var repeatsOfUnbound = 0
        for d in dims {
            switch d {
            case .fixed(let n): known *= n
            case .symbol(let s):
                if let n = values[s] { known *= n } else { repeatsOfUnbound += 1 }
            }
        }
        if let s = unbound.first {
            // Solve known * n^repeats == count for a whole n >= 0.
            guard known > 0 else {
                throw NodeFailure("cannot reshape \(shapeText(shape)) to \(target): \(s) is not bound and cannot be inferred")
            }
            var n = 0
            while known * Self.power(n, repeatsOfUnbound) < count { n += 1 }
            guard known * Self.power(n, repeatsOfUnbound) == count else {
                throw NodeFailure("cannot reshape \(shapeText(shape)) (\(count) elements) to \(target): no whole value of \(s) fits")
            }
            values[s] = n
            origins[s] = origin
        }
        let resolved = dims.map { d -> Int in
            switch d {
            case .fixed(let n): return n
            case .symbol(let s): return values[s]!
            }
        }
        guard resolved.reduce(1, *) == count else {
            let bound = dims.compactMap { d -> String? in
                if case .symbol(let s) = d { return "\(s) = \(values[s]!)" }
                return nil
            }
            throw NodeFailure("cannot reshape \(shapeText(shape)) (\(count) elements) to \(target) with \(bound.joined(separator: ", "))")
        }
        return resolved
    }

    private static func power(_ n: Int, _ k: Int) -> Int { (0..<k).reduce(1) { acc, _ in acc * n } }

    private func shapeText(_ shape: [Int]) -> String { "[\(shape.map(String.init).joined(separator: ", "))]" }
}
