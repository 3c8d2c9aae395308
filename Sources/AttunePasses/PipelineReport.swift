import AttuneIR

/// What a pipeline run did, pass by pass: for `attune inspect`.
public struct PipelineReport: Sendable {
    /// One pass's run: its stats and the graph it produced.
    public struct Step: Sendable {
        public var pass: String
        public var summary: String
        public var stats: PassStats
        public var graph: Graph
    }

    /// A pattern that was found but not fused: which pass refused it, where, and why.
    public struct Unfused: Sendable, Equatable, CustomStringConvertible {
        public var pass: String
        public var refusal: Refusal
        public var description: String { "\(pass): \(refusal)" }
    }

    public let input: Graph
    public let steps: [Step]

    /// The graph after the last pass.
    public var output: Graph { steps.last?.graph ?? input }

    /// The graph after the pass named `pass`, or nil if there is no such pass.
    public func graph(after pass: String) -> Graph? {
        steps.first(where: { $0.pass == pass })?.graph
    }

    public func stats(of pass: String) -> PassStats? {
        steps.first(where: { $0.pass == pass })?.stats
    }

    /// Every refusal of every pass, in pipeline order. Node numbers refer to the graph
    /// the refusing pass ran on (the graph after the previous pass).
    public var unfused: [Unfused] {
        steps.flatMap { step in step.stats.refusedAt.map { Unfused(pass: step.pass, refusal: $0) } }
    }

    /// One line per pass: name, matches, refusals by reason, notes.
    public var summary: String {
        var lines: [String] = []
        for step in steps {
            var line = "\(step.pass): \(step.stats.matches) matched, \(step.graph.nodes.count) nodes after"
            if !step.stats.notes.isEmpty { line += " (" + step.stats.notes.joined(separator: "; ") + ")" }
            lines.append(line)
            for reason in step.stats.refusals.keys.sorted() {
                lines.append("  refused \(step.stats.refusals[reason]!)x: \(reason)")
            }
        }
        return lines.joined(separator: "\n")
    }
}
