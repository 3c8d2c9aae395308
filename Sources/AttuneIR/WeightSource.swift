/// Where a graph's `weight` nodes get their values: a checkpoint, a test dictionary.
/// Values come back as fp32 in row-major order, converted from the stored dtype
/// (bf16 and f16 convert exactly), with the shape the graph declares.
public protocol WeightSource {
    func floats(_ name: String) throws -> [Float]
    /// Where the weight's elements lie in a file, for generated code that maps them
    /// in place instead of copying them; nil when they are not in a file (compiled
    /// modules then store the values `floats` gives in a blob of their own).
    func location(_ name: String) throws -> WeightLocation?
}

extension WeightSource {
    public func location(_ name: String) throws -> WeightLocation? { nil }
}

/// A weight's elements in a file: `count` elements of `dtype` (f32, bf16 or f16,
/// little-endian, row-major) from byte `offset` of the file at `path` (absolute).
public struct WeightLocation: Sendable, Hashable {
    public var path: String
    public var offset: Int
    public var dtype: DType
    public var count: Int

    public init(path: String, offset: Int, dtype: DType, count: Int) {
        self.path = path
        self.offset = offset
        self.dtype = dtype
        self.count = count
    }
}

/// Weights held in memory, for tests and graphs built in Swift.
public struct DictionaryWeights: WeightSource {
    public var values: [String: [Float]]
    public init(_ values: [String: [Float]]) { self.values = values }

    public func floats(_ name: String) throws -> [Float] {
        guard let v = values[name] else { throw IRError("missing weight '\(name)'") }
        return v
    }
}
