import AttuneIR

/// One step of the compiler: a name (what `attune inspect --after NAME` takes), a
/// one-line summary, and a function from a graph to a graph plus what it did.
///
/// Rewrite passes are built from a pattern, a legality check and a rewrite
/// (`RewritePass`); whole-graph passes (verification, dead-code elimination, CSE)
/// give the function directly. A pass never mutates its input.
public struct Pass: Sendable {
    public let name: String
    public let summary: String
    private let body: @Sendable (Graph) throws -> PassOutcome

    public init(name: String, summary: String, run: @escaping @Sendable (Graph) throws -> PassOutcome) {
        self.name = name
        self.summary = summary
        self.body = run
    }

    /// Runs the pass on `graph`. The result is not verified here; `Pipeline` verifies
    /// every pass's output.
    public func run(_ graph: Graph) throws -> PassOutcome {
        try body(graph)
    }
}

/// A pass's result: the rewritten graph and the counters of what matched and what was refused.
public struct PassOutcome: Sendable {
    public var graph: Graph
    public var stats: PassStats

    public init(graph: Graph, stats: PassStats = PassStats()) {
        self.graph = graph
        self.stats = stats
    }
}

/// A pass that cannot run: an ill-formed input, an invalid option, or (a compiler bug)
/// a rewrite that produced an ill-typed graph. The message names the pass.
public struct PassError: Error, Sendable, Equatable, CustomStringConvertible {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}
