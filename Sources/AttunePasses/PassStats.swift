import AttuneIR

/// What one run of a pass did: how many patterns it rewrote, how many it refused and
/// why, and free-form notes ("removed 12 nodes").
public struct PassStats: Sendable, Equatable {
    /// Patterns rewritten (for whole-graph passes: nodes removed or merged).
    public var matches: Int
    /// Refusal reason -> how many times it was given.
    public var refusals: [String: Int]
    /// Every refusal with the node it happened at, in node order.
    public var refusedAt: [Refusal]
    public var notes: [String]

    public init(matches: Int = 0, refusals: [String: Int] = [:], refusedAt: [Refusal] = [], notes: [String] = []) {
        self.matches = matches
        self.refusals = refusals
        self.refusedAt = refusedAt
        self.notes = notes
    }

    /// Records that the pattern rooted at `node` was found but not rewritten.
    public mutating func refuse(_ reason: String, at node: Int, label: String?) {
        refusals[reason, default: 0] += 1
        refusedAt.append(Refusal(node: node, label: label, reason: reason))
    }

    /// Total number of refusals.
    public var refusalCount: Int { refusals.values.reduce(0, +) }
}

/// A pattern a pass found but did not rewrite: the root node (an index into the graph
/// the pass ran on), its label (the Hugging Face module path) and the reason.
public struct Refusal: Sendable, Equatable, CustomStringConvertible {
    public var node: Int
    public var label: String?
    public var reason: String

    public init(node: Int, label: String?, reason: String) {
        self.node = node
        self.label = label
        self.reason = reason
    }

    public var description: String { "%\(node)\(label.map { " (\($0))" } ?? ""): \(reason)" }
}
