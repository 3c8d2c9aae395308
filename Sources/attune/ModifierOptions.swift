import ArgumentParser
import AttuneKernels
import Foundation

/// The score modifiers `kernel run` and `bench attention` take besides --softcap: ALiBi
/// (standard slopes or a table) and attention sinks (one logit per q head, or one for all).
struct ModifierOptions: ParsableArguments {
    @Flag(help: "ALiBi with the standard slopes of the q heads (BLOOM's rule): scores gain slope_h·(j − position).")
    var alibi = false
    @Option(help: "ALiBi with these slopes, one per q head, comma-separated (instead of --alibi's).")
    var alibiSlopes: String?
    @Option(help: "Attention sinks: sink logits in the softmax denominator, one per q head or one for all, comma-separated (gpt-oss).")
    var sinks: String?

    /// Sets the problem's modifiers; every mistake is one line naming the flag, before any work.
    func apply(to problem: inout AttentionProblem, kernel: any AttentionKernel) throws {
        if alibi && alibiSlopes != nil { throw CLIError("--alibi and --alibi-slopes are exclusive (--alibi uses the standard slopes)") }
        if alibi { problem.alibiSlopes = AttentionProblem.standardALiBiSlopes(heads: problem.qHeads) }
        if let alibiSlopes { problem.alibiSlopes = try Self.table(alibiSlopes, flag: "--alibi-slopes", heads: problem.qHeads, broadcast: false) }
        if let sinks { problem.sinks = try Self.table(sinks, flag: "--sinks", heads: problem.qHeads, broadcast: true) }
        guard problem.alibiSlopes != nil || problem.sinks != nil else { return }
        if let error = problem.validationError() { throw CLIError(error) }
        if let refusal = kernel.unsupportedReasons(problem).first { throw CLIError("kernel '\(kernel.name)': \(refusal)") }
    }

    static func table(_ text: String, flag: String, heads: Int, broadcast: Bool) throws -> [Float] {
        let values = try text.split(separator: ",", omittingEmptySubsequences: false).map { item -> Float in
            let s = item.trimmingCharacters(in: .whitespaces)
            guard let x = Float(s), x.isFinite else { throw CLIError("\(flag): '\(s)' is not a finite number") }
            return x
        }
        if broadcast && values.count == 1 { return Array(repeating: values[0], count: heads) }
        guard values.count == heads else {
            throw CLIError("\(flag) has \(values.count) values but the problem has \(heads) q heads\(broadcast ? " (give one per head, or one for all)" : "")")
        }
        return values
    }
}
