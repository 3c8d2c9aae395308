/// Where a graph's `weight` nodes get their values: a checkpoint, a test dictionary.
/// Values come back as fp32 in row-major order, converted from the stored dtype
/// (bf16 and f16 convert exactly), with the shape the graph declares.
public protocol WeightSource {
    func floats(_ name: String) throws -> [Float]
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
