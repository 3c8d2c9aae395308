/// A dense float32 tensor stored in row-major (C) order: the last axis varies
/// fastest, so element `[i, j]` of a `[rows, cols]` tensor is `data[i * cols + j]`.
///
/// Contract: a *valid* tensor has every dimension `>= 0` and
/// `data.count == shape.reduce(1, *)`. A rank-0 tensor (`shape == []`) is a
/// scalar holding exactly one element. The memberwise initializer does not
/// check this (the fields are public and mutable anyway, so a check at
/// construction could not keep the invariant); use `Tensor.make(shape:data:)`
/// when the inputs come from outside the program.
///
/// `Equatable` compares shapes exactly and elements with `Float.==`, so a
/// tensor containing NaN is never equal to anything, and `-0.0 == 0.0`.
public struct Tensor: Sendable, Equatable {
    public var shape: [Int]
    public var data: [Float]

    /// Stores `shape` and `data` as given, without validation.
    public init(shape: [Int], data: [Float]) {
        self.shape = shape
        self.data = data
    }

    /// A tensor of the given shape filled with `0`.
    ///
    /// - Precondition: every dimension is `>= 0` and the element count fits in
    ///   `Int`. This is a programmer-supplied shape, so a bad one is a bug, not
    ///   an input error; use `Tensor.make` for untrusted shapes.
    public init(zeros shape: [Int]) {
        guard let n = Tensor.elementCount(of: shape) else {
            preconditionFailure("Tensor(zeros:): invalid shape \(shape)")
        }
        self.init(shape: shape, data: [Float](repeating: 0, count: n))
    }

    /// Builds a tensor after checking the invariant.
    ///
    /// - Throws: `TensorError` if a dimension is negative, the element count
    ///   overflows `Int`, or `data.count` differs from the element count.
    public static func make(shape: [Int], data: [Float]) throws -> Tensor {
        try validate(shape: shape, dataCount: data.count)
        return Tensor(shape: shape, data: data)
    }

    /// Number of elements actually stored (`data.count`); equals the product
    /// of `shape` for a valid tensor.
    public var count: Int { data.count }

    /// Number of axes; `0` for a scalar.
    public var rank: Int { shape.count }

    /// Product of `shape`, or `nil` if a dimension is negative or the product
    /// overflows `Int`. Any zero dimension makes the product zero even when
    /// the other dimensions would overflow, which is the mathematical answer
    /// and what NumPy accepts.
    static func elementCount(of shape: [Int]) -> Int? {
        if shape.contains(where: { $0 < 0 }) { return nil }
        if shape.contains(0) { return 0 }
        var n = 1
        for d in shape {
            let (p, overflow) = n.multipliedReportingOverflow(by: d)
            if overflow { return nil }
            n = p
        }
        return n
    }

    static func validate(shape: [Int], dataCount: Int) throws {
        if let d = shape.first(where: { $0 < 0 }) {
            throw TensorError("shape \(shape) has negative dimension \(d)")
        }
        guard let n = elementCount(of: shape) else {
            throw TensorError("shape \(shape) has too many elements (product overflows Int)")
        }
        if n != dataCount {
            throw TensorError("shape \(shape) needs \(n) elements but data has \(dataCount)")
        }
    }
}

/// An error about tensor contents or files, with a one-line message meant to
/// be shown to a user as is.
public struct TensorError: Error, CustomStringConvertible, Equatable, Sendable {
    public let message: String

    public init(_ message: String) {
        self.message = message
    }

    public var description: String { message }
}
