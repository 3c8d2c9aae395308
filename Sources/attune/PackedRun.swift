import AttuneRuntime
import AttuneTensor
import Foundation

/// `attune run --document-lengths`: one prompt's tokens are several documents, run in one
/// packed prefill (each document sees only its own tokens, at positions from 0), and each
/// document's last logits give its next greedy token.
extension RunCommand {
    /// The lengths, checked against the rest of the command before anything is compiled.
    func packedDocuments(_ text: String, prompts: [[Int32]]) throws -> [Int] {
        let lengths = try ModifierOptions.documentLengths(text)
        if let n = lengths.first(where: { $0 < 1 }) { throw CLIError("--document-lengths: lengths must be >= 1, got \(n)") }
        if self.text.isText { throw CLIError("--document-lengths packs token ids: give the documents' ids as one --tokens prompt") }
        guard prompts.count == 1 else { throw CLIError("--document-lengths packs one prompt's tokens; \(prompts.count) prompts were given") }
        if let maxNewTokens, maxNewTokens > 0 {
            throw CLIError("--document-lengths runs one packed prefill and generates nothing (each document's next greedy token is reported): drop --max-new-tokens \(maxNewTokens)")
        }
        if self.text.sampling.isGiven { throw CLIError("--document-lengths reports greedy next tokens: sampling flags need generation") }
        let total = lengths.reduce(0) { $0 &+ $1 }
        guard total == prompts[0].count else {
            throw CLIError("--document-lengths: \(text) sum to \(total), but the prompt has \(prompts[0].count) tokens")
        }
        return lengths
    }

    func packed(_ session: CompiledModel, _ ids: [Int32], _ lengths: [Int], _ object: inout [String: Any]) throws {
        var all: [Float] = []
        var last: [[Float]] = []
        var prefillTimes: [Double] = []
        for _ in 0..<repeats {
            session.reset()
            let t0 = Date()
            // Only --logits-out needs every position's logits; the report needs each document's last.
            if logitsOut != nil { all = try session.prefillPacked(ids, lengths: lengths) } else { last = try session.prefillPackedLast(ids, lengths: lengths) }
            prefillTimes.append(Date().timeIntervalSince(t0) * 1e3)
        }
        let prefillMs = prefillTimes.sorted()[prefillTimes.count / 2]
        let vocab = session.vocab
        if let logitsOut {
            try Npy.write(Tensor(shape: [ids.count, vocab], data: all), to: URL(fileURLWithPath: logitsOut))
            var end = 0
            last = lengths.map { n in
                end += n
                return Array(all[(end - 1) * vocab..<end * vocab])
            }
        }
        print("packed     \(lengths.count) documents, \(ids.count) tokens, prefill \(fmt(prefillMs, 3)) ms")
        var documents: [[String: Any]] = []
        for (d, logits) in last.enumerated() {
            let next = argmax(logits)
            let top = logits[Int(next)]
            let logProb = LogSoftmaxRow(logits, row: 0, vocab: vocab).logProbability(Int(next))
            print("document \(d) tokens \(lengths[d]), next \(next) (logit \(fmt(Double(top), 4)), log-prob \(fmt(logProb, 4)))")
            documents.append(["prompt_tokens": lengths[d], "next_token": Int(next), "next_logit": Double(top), "next_logprob": logProb])
        }
        object.merge(["documents": documents, "prefill_ms": prefillMs, "prompt_tokens": ids.count]) { $1 }
        if stats {
            // The last repeat's tiles (reset zeroes them): what the document mask saved over the causal one.
            let t = session.maskTiles
            let share = t.computed + t.skipped > 0 ? 100 * Double(t.computed) / Double(t.computed + t.skipped) : 100
            // Documents keep each row's keys one interval, so `partial` counts only where a tile cuts through holes.
            print("masks      \(t.computed) KV tiles computed (\(fmt(share, 1)) % of the causal mask's), \(t.skipped) skipped by the documents"
                  + (t.partial > 0 ? ", \(t.partial) partly masked" : ""))
            object["mask_tiles"] = ["computed": t.computed, "skipped": t.skipped, "partial": t.partial]
        }
    }
}
