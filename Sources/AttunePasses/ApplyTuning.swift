import AttuneIR
import AttuneKernels

/// Tuned parameters for a kernel on a problem, from wherever they were recorded (the
/// tuning database): the parameters and the reason `inspect` shows.
public protocol TunedKernelSource: Sendable {
    func tuned(kernel: String, problem: AttentionProblem) -> (parameters: KernelParameters, reason: String)?
}

/// Replaces the parameters of kernels chosen by a rule (never a user's choice) with tuned
/// ones. The problem looked up is a full prefill chunk: `rows` query rows over `context`
/// keys, the node's heads, dims, mask and window.
public enum ApplyTuning {
    public static func pass(_ source: any TunedKernelSource, rows: Int, context: Int) -> Pass {
        Pass(name: "apply-tuning", summary: "give rule-chosen kernels their tuned parameters (tuning database)") { graph in
            var g = graph
            var stats = PassStats()
            for (i, node) in g.nodes.enumerated() {
                guard case .attention(var a) = node.op, let binding = a.binding, binding.origin == .rule else { continue }
                var problem = AttentionProblem(qHeads: a.heads, kvHeads: a.kvHeads, qLen: rows, kvLen: context, qkDim: a.headDim,
                                               vDim: a.vHeadDim, scale: Float(a.scale), causal: a.causal, window: a.window,
                                               softcap: a.softcap)
                problem.addModifiers(of: a)
                guard let (parameters, reason) = source.tuned(kernel: binding.kernel, problem: problem) else { continue }
                a.binding = KernelBinding(kernel: binding.kernel, parameters: parameters, reason: reason, tables: binding.tables)
                g.nodes[i].op = .attention(a)
                stats.matches += 1
            }
            return PassOutcome(graph: g, stats: stats)
        }
    }
}
