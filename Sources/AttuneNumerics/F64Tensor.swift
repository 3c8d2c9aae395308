// The value type of the float64 reference interpreter, and its error.

import AttuneIR

/// A dense row-major tensor of Doubles: the reference interpreter's inputs, outputs
/// and intermediate values. `i32` tensors (token ids, positions) are carried as
/// whole-number Doubles.
public struct F64Tensor: Sendable, Equatable, CustomStringConvertible {
    public var shape: [Int]
    public var data: [Double]

    /// No checking here: `ReferenceInterpreter.run` checks every input's element count
    /// against its shape and names the input when they disagree.
    public init(shape: [Int], data: [Double]) {
        self.shape = shape
        self.data = data
    }

    /// A tensor of `shape` filled with `value`.
    public init(shape: [Int], repeating value: Double) {
        self.init(shape: shape, data: [Double](repeating: value, count: shape.reduce(1, *)))
    }

    /// A rank-1 tensor of whole numbers: token ids or positions.
    public init(ids: [Int]) {
        self.init(shape: [ids.count], data: ids.map(Double.init))
    }

    public var rank: Int { shape.count }

    /// Product of the shape (1 for a scalar).
    public var elementCount: Int { shape.reduce(1, *) }

    public var description: String {
        let preview = data.prefix(8).map { "\($0)" }.joined(separator: ", ")
        return "F64Tensor[\(shape.map(String.init).joined(separator: ", "))](\(preview)\(data.count > 8 ? ", ..." : ""))"
    }
}

/// An error of the reference interpreter. The message names the node (index, op,
/// label), input or weight at fault and the reason, e.g.
/// `node %12 (embedding, model.embed_tokens): token id 500 is outside the table of 128 rows`.
public struct InterpreterError: Error, Sendable, Equatable, CustomStringConvertible {
    public var message: String
    /// Index of the node at fault, when there is one.
    public var node: Int?

    public init(_ message: String, node: Int? = nil) {
        self.message = message
        self.node = node
    }

    public var description: String { message }
}
