import Foundation

/// transformers' logits processors (`LogitsStep`) over one row of logits, computed on the
/// set of tokens still allowed rather than on a full sorted copy, so a 150k vocabulary
/// costs a few passes over the row per token.
///
/// Arithmetic on logits is Float, as in transformers (the penalty and temperature are
/// rounded to Float, as torch does with a Python scalar), so processed logits match bit for
/// bit. Probabilities for top-p and min-p are Double; a top-p or min-p decision can differ
/// from transformers' float32 one only when a token sits within rounding of the threshold.
/// Ties: top-k keeps every token equal to the k-th score (as torch); top-p ranks equal
/// scores by lower token id first (torch's order among ties is unspecified).
struct LogitsFilter {
    let steps: [LogitsStep]
    /// The processed scores of the last row: the input after the penalty and temperature.
    private(set) var scores: [Float] = []
    /// Token ids still allowed after the filters; meaningful only when `allKept` is false.
    private(set) var kept: [Int32] = []
    /// True while no filter has run: every token with a finite score is allowed.
    private(set) var allKept = true

    /// Per-token marks for deduplicating the history; `stamp` changes per row.
    private var seen: [UInt32] = []
    private var stamp: UInt32 = 0

    init(steps: [LogitsStep]) { self.steps = steps }

    /// Runs every step on `logits`. Throws for an empty row, NaN or +inf (the model is broken:
    /// no token can be chosen from them) and for a row where every logit is -inf.
    mutating func run(logits: [Float], history: [Int32]) throws {
        guard !logits.isEmpty else { throw TextError("sampling: empty logits row") }
        var anyFinite = false
        for (i, v) in logits.enumerated() {
            if v.isNaN || v == .infinity { throw TextError("sampling: logit of token \(i) is \(v)") }
            if v != -.infinity { anyFinite = true }
        }
        guard anyFinite else { throw TextError("sampling: every logit is -inf") }
        scores = logits
        allKept = true
        kept.removeAll(keepingCapacity: true)
        for step in steps {
            switch step {
            case .repetitionPenalty(let p): penalize(history, p)
            case .temperature(let t): try divide(by: t)
            case .topK(let k): keepTopK(k)
            case .topP(let p): keepTopP(p)
            case .minP(let m): keepMinP(m)
            }
        }
    }

    /// The scores transformers' processors output: -inf for every filtered token.
    var maskedScores: [Float] {
        if allKept { return scores }
        var out = [Float](repeating: -.infinity, count: scores.count)
        for id in kept { out[Int(id)] = scores[Int(id)] }
        return out
    }

    /// Calls `body` with each allowed token id.
    @inline(__always)
    func forEachAllowed(_ body: (Int) -> Void) {
        if allKept {
            for i in scores.indices where scores[i] != -.infinity { body(i) }
        } else {
            for id in kept { body(Int(id)) }
        }
    }

    /// The largest allowed score.
    func maxScore() -> Float {
        var m = -Float.infinity
        forEachAllowed { m = max(m, scores[$0]) }
        return m
    }

    /// Divides positive and multiplies negative logits of each distinct id in `history` by
    /// `p`. Ids outside the row are ignored (transformers drops them too).
    private mutating func penalize(_ history: [Int32], _ p: Float) {
        if seen.count != scores.count { seen = [UInt32](repeating: 0, count: scores.count); stamp = 0 }
        if stamp == .max { for i in seen.indices { seen[i] = 0 }; stamp = 0 }
        stamp += 1
        for id in history where id >= 0 && Int(id) < scores.count && seen[Int(id)] != stamp {
            seen[Int(id)] = stamp
            let s = scores[Int(id)]
            scores[Int(id)] = s < 0 ? s * p : s / p
        }
    }

    /// Divides every score by the temperature. A tiny temperature can overflow a score to
    /// +inf (or, rounded to Float 0, make 0/0): refused, since no softmax is left to draw from.
    private mutating func divide(by t: Float) throws {
        for i in scores.indices { scores[i] /= t }
        if let i = scores.firstIndex(where: { $0.isNaN || $0 == .infinity }) {
            throw TextError("sampling: temperature \(t) turns the logit of token \(i) into \(scores[i])")
        }
    }

    /// Keeps the scores ≥ the k-th largest, found with a size-k min-heap (O(n log k)).
    private mutating func keepTopK(_ k: Int) {
        var heap = MinHeap(capacity: k, expected: allKept ? scores.count : kept.count)
        forEachAllowed { heap.offer(scores[$0]) }
        guard let threshold = heap.kthLargest else { return }  // at most k tokens allowed: all stay
        var next: [Int32] = []
        forEachAllowed { i in if scores[i] >= threshold { next.append(Int32(i)) } }
        kept = next
        allKept = false
    }

    /// Keeps the most likely tokens while the probability mass ranked above each is below
    /// `p` (transformers removes ascending-sorted tokens whose cumulative mass
    /// is ≤ 1 − p: the same set). The top token is always kept.
    ///
    /// Only the tokens near the cut are sorted: scores are binned into `Self.bins` equal
    /// score ranges below the maximum; whole bins are kept while the mass above stays below
    /// the limit, and only the bin where it crosses is ranked token by token.
    private mutating func keepTopP(_ p: Double) {
        let top = maxScore()
        var low = top
        var ids: [Int32] = [], weights: [Double] = []
        ids.reserveCapacity(allKept ? scores.count : kept.count)
        weights.reserveCapacity(ids.capacity)
        var total = 0.0
        forEachAllowed { i in
            let w = exp(Double(scores[i]) - Double(top))
            ids.append(Int32(i))
            weights.append(w)
            total += w
            low = min(low, scores[i])
        }
        let limit = p * total
        var next: [Int32] = []
        var massAbove = 0.0
        var boundary: [Int] = []  // positions in `ids` to rank one by one
        if ids.count <= Self.bins || low == top {
            boundary = Array(ids.indices)
        } else {
            let scale = Double(Self.bins) / (Double(top) - Double(low))
            let scores = self.scores
            func bin(_ j: Int) -> Int { min(Self.bins - 1, Int((Double(top) - Double(scores[Int(ids[j])])) * scale)) }
            var mass = [Double](repeating: 0, count: Self.bins)
            for j in ids.indices { mass[bin(j)] += weights[j] }
            var cut = 0
            while cut < Self.bins - 1 && massAbove + mass[cut] < limit {
                massAbove += mass[cut]
                cut += 1
            }
            for j in ids.indices {
                let b = bin(j)
                if b < cut { next.append(ids[j]) } else if b == cut { boundary.append(j) }
            }
        }
        boundary.sort { a, b in
            let sa = scores[Int(ids[a])], sb = scores[Int(ids[b])]
            return sa > sb || (sa == sb && ids[a] < ids[b])
        }
        for j in boundary {
            if !next.isEmpty && massAbove >= limit { break }
            next.append(ids[j])
            massAbove += weights[j]
        }
        kept = next
        allKept = false
    }

    static let bins = 1024

    /// Keeps the tokens whose probability is at least `m` times the top one's:
    /// exp(score − max) ≥ m.
    private mutating func keepMinP(_ m: Double) {
        let top = Double(maxScore())
        var next: [Int32] = []
        forEachAllowed { i in if exp(Double(scores[i]) - top) >= m { next.append(Int32(i)) } }
        kept = next
        allKept = false
    }
}

/// The k largest values seen, as a min-heap: its root is the k-th largest.
private struct MinHeap {
    let capacity: Int
    private var values: [Float] = []

    /// `expected`: how many values will be offered (bounds the allocation for a huge k).
    init(capacity: Int, expected: Int) {
        self.capacity = capacity
        values.reserveCapacity(min(capacity, expected))
    }

    /// The k-th largest value offered, or nil if fewer than k were.
    var kthLargest: Float? { values.count == capacity ? values[0] : nil }

    mutating func offer(_ v: Float) {
        if values.count < capacity {
            values.append(v)
            var i = values.count - 1
            while i > 0 {
                let parent = (i - 1) / 2
                if values[parent] <= values[i] { return }
                values.swapAt(parent, i)
                i = parent
            }
        } else if v > values[0] {
            values[0] = v
            var i = 0
            while true {
                let l = 2 * i + 1, r = l + 1
                var smallest = i
                if l < values.count && values[l] < values[smallest] { smallest = l }
                if r < values.count && values[r] < values[smallest] { smallest = r }
                if smallest == i { return }
                values.swapAt(i, smallest)
                i = smallest
            }
        }
    }
}
