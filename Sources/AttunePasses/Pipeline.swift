import AttuneIR

/// The compiler's passes, in the order they run. `Pipeline.standard` is the one list
/// `attune compile` and `attune inspect` use; every pass's output is verified.
///
///     let report = try Pipeline.standard().run(graph)
///     report.output                        // the compiled graph
///     report.graph(after: "fuse-attention") // the IR after any pass
///     report.unfused                       // patterns that did not fuse, and why
public struct Pipeline: Sendable {
    public let passes: [Pass]

    /// - Precondition: pass names are unique (they are how `--after` finds a pass).
    public init(_ passes: [Pass]) {
        precondition(Set(passes.map(\.name)).count == passes.count, "pass names must be unique")
        self.passes = passes
    }

    /// The standard pipeline. Order matters where patterns overlap: attention first (it
    /// consumes the scale, softmax and layout ops), SwiGLU before the QKV merge (which
    /// would otherwise merge gate and up), the QKV merge before its RoPE epilogue, and
    /// elementwise fusion last (it takes whatever the named fusions left).
    public static func standard(kernels: KernelOverrides = KernelOverrides(),
                                tuning: (source: any TunedKernelSource, rows: Int, context: Int)? = nil) -> Pipeline {
        var passes: [Pass] = [
            .verify,
            .canonicalize,
            .dce,
            .cse,
            .fuseAttention,
            .fuseSwiGLU,
            .mergeQKV,
            .fuseQKVRope,
            .fuseAddRMSNorm,
            .fuseElementwise,
            .selectKernels(kernels),
            KeySelectionLinking.pass(kernels),
        ]
        if let tuning { passes.append(ApplyTuning.pass(tuning.source, rows: tuning.rows, context: tuning.context)) }
        return Pipeline(passes)
    }

    public var passNames: [String] { passes.map(\.name) }

    /// Runs every pass in order, verifying each output, and keeps each pass's stats and
    /// the graph after it.
    public func run(_ graph: Graph) throws -> PipelineReport {
        var steps: [PipelineReport.Step] = []
        var current = graph
        for pass in passes {
            let outcome = try pass.run(current)
            do {
                try Verifier.verify(outcome.graph)
            } catch {
                throw PassError("pass '\(pass.name)' produced a graph that does not verify: \(error)")
            }
            steps.append(PipelineReport.Step(pass: pass.name, summary: pass.summary, stats: outcome.stats, graph: outcome.graph))
            current = outcome.graph
        }
        return PipelineReport(input: graph, steps: steps)
    }
}
