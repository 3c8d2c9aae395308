import Foundation

/// Greedy generation for several prompts at once: the longest prefix they share is run
/// once, the model is forked into one sequence per prompt (`attune_model_fork`), each
/// prompt's remaining tokens are prefilled on its own, and every step decodes one token
/// for all sequences in one forward pass whose attention reads the shared prefix once
/// for all of them (Hydragen). Models that cannot fork run the prompts one after another.
public struct BatchedGeneration {
    public struct Sequence: Sendable {
        public var prompt: [Int32]
        public var generated: [Int32] = []
        /// Logits of the prompt's last token (what the first generated token came from).
        public var lastPromptLogits: [Float] = []
    }

    public var sequences: [Sequence]
    /// Tokens run once for every sequence (0 when they share nothing or ran alone).
    public var sharedPrefix = 0
    /// Nil when the prompts ran batched; else why not (the model's fork refusal).
    public var unbatchedReason: String?
    public var prefillMs = 0.0
    /// Per decode step: one token for every sequence.
    public var decodeMsPerStep = 0.0

    /// The longest common prefix of `prompts`, leaving every prompt at least one token of
    /// its own (its last token's logits start its generation).
    public static func sharedPrefixLength(_ prompts: [[Int32]]) -> Int {
        guard let first = prompts.first else { return 0 }
        var n = prompts.map(\.count).min()! - 1
        for p in prompts.dropFirst() {
            var i = 0
            while i < n && p[i] == first[i] { i += 1 }
            n = i
        }
        return max(0, n)
    }

    public static func run(_ session: CompiledModel, prompts: [[Int32]], maxNewTokens: Int) throws -> BatchedGeneration {
        guard !prompts.isEmpty, prompts.allSatisfy({ !$0.isEmpty }) else { throw RuntimeError("every prompt needs at least one token") }
        var result = BatchedGeneration(sequences: prompts.map { Sequence(prompt: $0) })
        if let reason = session.batchRefusal {
            // Known before any token runs: no prefix is prefilled for nothing.
            result.unbatchedReason = "this model cannot run batched sequences: \(reason)"
            return try runAlone(session, result, maxNewTokens: maxNewTokens)
        }
        let shared = sharedPrefixLength(prompts)
        session.reset()
        let t0 = Date()
        _ = try session.prefill(Array(prompts[0].prefix(shared)))
        do {
            try session.fork(prompts.count)
        } catch {
            result.unbatchedReason = "\(error)"
            return try runAlone(session, result, maxNewTokens: maxNewTokens)
        }
        result.sharedPrefix = shared
        var last: [[Float]] = try prompts.indices.map { s in
            Array(try session.prefill(sequence: s, Array(prompts[s].dropFirst(shared))).suffix(session.vocab))
        }
        result.prefillMs = Date().timeIntervalSince(t0) * 1e3
        for s in prompts.indices { result.sequences[s].lastPromptLogits = last[s] }
        let t1 = Date()
        for _ in 0..<maxNewTokens {
            let next = last.map(argmax)
            for s in prompts.indices { result.sequences[s].generated.append(next[s]) }
            last = try session.decodeBatch(next)
        }
        result.decodeMsPerStep = maxNewTokens > 0 ? Date().timeIntervalSince(t1) * 1e3 / Double(maxNewTokens) : 0
        return result
    }

    /// The same generation, one prompt after another.
    static func runAlone(_ session: CompiledModel, _ start: BatchedGeneration, maxNewTokens: Int) throws -> BatchedGeneration {
        var result = start
        var prefill = 0.0, decode = 0.0
        for s in result.sequences.indices {
            session.reset()
            let t0 = Date()
            var last = Array(try session.prefill(result.sequences[s].prompt).suffix(session.vocab))
            prefill += Date().timeIntervalSince(t0)
            result.sequences[s].lastPromptLogits = last
            let t1 = Date()
            for _ in 0..<maxNewTokens {
                let next = argmax(last)
                result.sequences[s].generated.append(next)
                last = try session.decodeStep(next)
            }
            decode += Date().timeIntervalSince(t1)
        }
        result.prefillMs = prefill * 1e3
        result.decodeMsPerStep = maxNewTokens > 0 ? decode * 1e3 / Double(maxNewTokens) : 0
        return result
    }
}

/// The index of the largest logit (the first on ties): greedy decoding's choice.
public func argmax(_ logits: [Float]) -> Int32 {
    Int32(logits.indices.max { logits[$0] < logits[$1] || (logits[$0] == logits[$1] && $0 > $1) }!)
}
