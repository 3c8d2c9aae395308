/// Element types of IR tensors. Weights keep the dtype they are stored in;
/// every computation accumulates and produces fp32 (i32 for token ids and positions).
public enum DType: String, Sendable, Hashable, CaseIterable {
    case f32, bf16, f16, i32

    public var isFloat: Bool { self != .i32 }
    public var byteSize: Int { self == .f32 || self == .i32 ? 4 : 2 }
}

/// One dimension: a number known when the graph is built, or a symbol bound at run time.
/// By convention `seq` is the number of new tokens in a call and `kv` the number of
/// cached positions after appending them.
public enum Dim: Sendable, Hashable, CustomStringConvertible, ExpressibleByIntegerLiteral, ExpressibleByStringLiteral {
    case fixed(Int)
    case symbol(String)

    public init(integerLiteral value: Int) { self = .fixed(value) }
    public init(stringLiteral value: String) { self = .symbol(value) }

    public var description: String {
        switch self {
        case .fixed(let n): return String(n)
        case .symbol(let s): return s
        }
    }

    public var fixedValue: Int? {
        if case .fixed(let n) = self { return n }
        return nil
    }
}

/// The type of one SSA value: dtype and shape.
public struct TensorType: Sendable, Hashable, CustomStringConvertible {
    public var dtype: DType
    public var shape: [Dim]

    public init(_ dtype: DType, _ shape: [Dim]) {
        self.dtype = dtype
        self.shape = shape
    }

    public var rank: Int { shape.count }

    public var description: String { "\(dtype.rawValue)[\(shape.map(\.description).joined(separator: ", "))]" }

    /// Product of the dims as (fixed factor, sorted symbols), for comparing element
    /// counts of shapes with symbols: [seq, 4, 16] and [seq, 64] are equal.
    public static func elementCount(_ dims: some Collection<Dim>) -> (fixed: Int, symbols: [String]) {
        var fixed = 1
        var symbols: [String] = []
        for d in dims {
            switch d {
            case .fixed(let n): fixed = fixed.multipliedReportingOverflow(by: n).overflow ? Int.max : fixed * n
            case .symbol(let s): symbols.append(s)
            }
        }
        return (fixed, symbols.sorted())
    }
}
