import Foundation

/// Generation for several prompts at once (greedy, or each sequence sampled by its own chooser): the longest prefix they share is run
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

    /// What a sequence's chooser decided for one row of logits.
    public struct Choice: Sendable {
        public var token: Int32
        /// The sequence ends with this token (it is kept; later steps skip the sequence).
        public var finished: Bool
        /// False when the token cannot be run because the context is full: the batch stops.
        public var fits: Bool
        public init(token: Int32, finished: Bool = false, fits: Bool = true) {
            self.token = token
            self.finished = finished
            self.fits = fits
        }
    }

    /// Picks sequence `s`'s next token from its logits (sequences are independent: a sampler
    /// per sequence). Greedy by default.
    public typealias Chooser = (_ sequence: Int, _ logits: [Float]) throws -> Choice

    /// Runs every prompt and generates up to `maxNewTokens` tokens each; a sequence stops
    /// early when `choose` says it finished, the batch when every sequence has.
    public static func run(_ session: CompiledModel, prompts: [[Int32]], maxNewTokens: Int,
                           choose: Chooser = { Choice(token: argmax($1)) }) throws -> BatchedGeneration {
        guard !prompts.isEmpty, prompts.allSatisfy({ !$0.isEmpty }) else { throw RuntimeError("every prompt needs at least one token") }
        var result = BatchedGeneration(sequences: prompts.map { Sequence(prompt: $0) })
        if let reason = session.batchRefusal {
            // Known before any token runs: no prefix is prefilled for nothing.
            result.unbatchedReason = "this model cannot run batched sequences: \(reason)"
            return try runAlone(session, result, maxNewTokens: maxNewTokens, choose: choose)
        }
        let shared = sharedPrefixLength(prompts)
        session.reset()
        let t0 = Date()
        _ = try session.prefill(Array(prompts[0].prefix(shared)))
        do {
            try session.fork(prompts.count)
        } catch {
            result.unbatchedReason = "\(error)"
            return try runAlone(session, result, maxNewTokens: maxNewTokens, choose: choose)
        }
        result.sharedPrefix = shared
        var last: [[Float]] = try prompts.indices.map { s in
            Array(try session.prefill(sequence: s, Array(prompts[s].dropFirst(shared))).suffix(session.vocab))
        }
        result.prefillMs = Date().timeIntervalSince(t0) * 1e3
        for s in prompts.indices { result.sequences[s].lastPromptLogits = last[s] }
        let t1 = Date()
        var finished = [Bool](repeating: false, count: prompts.count)
        // A finished sequence is fed its last token again (every sequence takes one per
        // step); its logits are ignored.
        var next = prompts.map { $0.last! }
        var steps = 0
        while steps < maxNewTokens && finished.contains(false) {
            var fits = true
            for s in prompts.indices where !finished[s] {
                let choice = try choose(s, last[s])
                result.sequences[s].generated.append(choice.token)
                next[s] = choice.token
                finished[s] = choice.finished
                fits = fits && choice.fits
            }
            guard fits else { break }
            last = try session.decodeBatch(next)
            steps += 1
        }
        result.decodeMsPerStep = steps > 0 ? Date().timeIntervalSince(t1) * 1e3 / Double(steps) : 0
        return result
    }

    /// The same generation, one prompt after another.
    static func runAlone(_ session: CompiledModel, _ start: BatchedGeneration, maxNewTokens: Int,
                         choose: Chooser) throws -> BatchedGeneration {
        var result = start
        // decodeMsPerStep stays comparable with a batched run: the time of all sequences'
        // tokens of one step, over the longest sequence's steps.
        var prefill = 0.0, decode = 0.0, steps = 0
        for s in result.sequences.indices {
            var own = 0
            session.reset()
            let t0 = Date()
            var last = Array(try session.prefill(result.sequences[s].prompt).suffix(session.vocab))
            prefill += Date().timeIntervalSince(t0)
            result.sequences[s].lastPromptLogits = last
            let t1 = Date()
            for _ in 0..<maxNewTokens {
                let choice = try choose(s, last)
                result.sequences[s].generated.append(choice.token)
                if choice.finished || !choice.fits { break }
                last = try session.decodeStep(choice.token)
                own += 1
            }
            steps = max(steps, own)
            decode += Date().timeIntervalSince(t1)
        }
        result.prefillMs = prefill * 1e3
        result.decodeMsPerStep = steps > 0 ? decode * 1e3 / Double(steps) : 0
        return result
    }
}

/// The index of the largest logit (the first on ties): greedy decoding's choice.
public func argmax(_ logits: [Float]) -> Int32 {
    Int32(logits.indices.max { logits[$0] < logits[$1] || (logits[$0] == logits[$1] && $0 > $1) }!)
}
