import ArgumentParser
import AttuneKernels
import AttuneTensor
import Foundation

/// The score modifiers `kernel run` and `bench attention` take besides --softcap: ALiBi
/// (standard slopes or a table), attention sinks (one logit per q head, or one for all),
/// and masks with holes: packed documents (--document-lengths) and a block bitmask
/// (--block-mask, blocks of --mask-block positions).
struct ModifierOptions: ParsableArguments {
    @Flag(help: "ALiBi with the standard slopes of the q heads (BLOOM's rule): scores gain slope_h·(j − position).")
    var alibi = false
    @Option(help: "ALiBi with these slopes, one per q head, comma-separated (instead of --alibi's).")
    var alibiSlopes: String?
    @Option(help: "Attention sinks: sink logits in the softmax denominator, one per q head or one for all, comma-separated (gpt-oss).")
    var sinks: String?
    @Option(help: "Packed documents: their lengths, comma-separated, summing to the keys; a query sees only its own document's keys (flash-attn varlen, FlexAttention document masks).")
    var documentLengths: String?
    @Option(help: "Block bitmask: random:DENSITY:SEED (each bit set with probability DENSITY in [0, 1]) or a .npy file of 0/1, nb x nb for nb = ceil(keys / --mask-block); a cleared bit hides a block of keys from a block of queries.")
    var blockMask: String?
    @Option(help: "Positions per block of --block-mask (rows of a q block, keys of a k block).")
    var maskBlock: Int = 64

    /// Sets the problem's modifiers; every mistake is one line naming the flag, before any work.
    func apply(to problem: inout AttentionProblem, kernel: any AttentionKernel) throws {
        if alibi && alibiSlopes != nil { throw CLIError("--alibi and --alibi-slopes are exclusive (--alibi uses the standard slopes)") }
        if alibi { problem.alibiSlopes = AttentionProblem.standardALiBiSlopes(heads: problem.qHeads) }
        if let alibiSlopes { problem.alibiSlopes = try Self.table(alibiSlopes, flag: "--alibi-slopes", heads: problem.qHeads, broadcast: false) }
        if let sinks { problem.sinks = try Self.table(sinks, flag: "--sinks", heads: problem.qHeads, broadcast: true) }
        try applyMasks(to: &problem)
        guard problem.alibiSlopes != nil || problem.sinks != nil || problem.modifiers.contains(.masks) else { return }
        if let error = problem.validationError() { throw CLIError(error) }
        if let refusal = kernel.unsupportedReasons(problem).first { throw CLIError("kernel '\(kernel.name)': \(refusal)") }
    }

    /// --document-lengths' comma-separated integers (`attune kernel run`, `bench attention`
    /// and `run`, each checking them against its own problem).
    static func documentLengths(_ text: String) throws -> [Int] {
        try text.split(separator: ",", omittingEmptySubsequences: false).map { item -> Int in
            let s = item.trimmingCharacters(in: .whitespaces)
            guard let n = Int(s) else { throw CLIError("--document-lengths: '\(s)' is not an integer") }
            return n
        }
    }

    /// --document-lengths and --block-mask (checked against the problem's keys first).
    func applyMasks(to problem: inout AttentionProblem) throws {
        if let documentLengths {
            let lengths = try Self.documentLengths(documentLengths)
            do { problem.documentIDs = try AttentionProblem.documentIDs(lengths: lengths, kvLen: problem.kvLen) } catch let e as KernelError {
                throw CLIError("--document-lengths: " + e.message)
            }
        }
        guard let blockMask else { return }
        guard maskBlock >= 1 else { throw CLIError("--mask-block must be >= 1, got \(maskBlock)") }
        let nb = (problem.kvLen + maskBlock - 1) / maskBlock
        if blockMask.hasPrefix("random:") {
            let parts = blockMask.split(separator: ":", omittingEmptySubsequences: false)
            guard parts.count == 3, let density = Double(parts[1]), let seed = UInt64(parts[2]) else {
                throw CLIError("--block-mask: '\(blockMask)' is not random:DENSITY:SEED (e.g. random:0.5:1)")
            }
            guard (0...1).contains(density) else { throw CLIError("--block-mask: density must be in [0, 1], got \(parts[1])") }
            problem.blockMask = BlockMask.random(block: maskBlock, kvLen: problem.kvLen, density: density, seed: seed)
            return
        }
        let table: Tensor
        do { table = try Npy.read(contentsOf: URL(fileURLWithPath: blockMask)) } catch {
            throw CLIError("--block-mask: cannot read '\(blockMask)' as random:DENSITY:SEED or a .npy file: \(error)")
        }
        guard table.shape == [nb, nb] else {
            throw CLIError("--block-mask: \(blockMask) has shape \(table.shape), expected [\(nb), \(nb)] (\(problem.kvLen) keys in blocks of \(maskBlock))")
        }
        if let bad = table.data.first(where: { $0 != 0 && $0 != 1 }) { throw CLIError("--block-mask: \(blockMask) holds \(bad); bits are 0 or 1") }
        problem.blockMask = BlockMask(block: maskBlock, kvLen: problem.kvLen) { table.data[$0 * nb + $1] == 1 }
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
