import AttuneIR
import AttuneKernels
import Foundation

/// `kascade`'s anchors and head maps, chosen on calibration tokens (ALGORITHMS.md §5).
///
/// For every layer L ≥ 1 and kv head g the exact attention probabilities of each query row
/// are summed over g's q heads (P_{L,g}). Row by row, with the kernel's own tiles and
/// budget, the similarity of an anchor (a, ga) for a reuse head (b, gb) is
///
///     sim = (P_{b,gb} on a's top-k for ga + P_{b,gb} on the row's own tile)
///         / (P_{b,gb} on b's own top-k     + P_{b,gb} on the row's own tile)
///
/// i.e. the share of what b would keep by itself that a's choice still keeps; its minimum
/// over all calibration rows is the pair's similarity. A reuse layer's score from anchor
/// a is the mean over its kv heads of the best anchor head's similarity; the head map is
/// that argmax. Dynamic programming picks the K anchors (layer 1 always, layer 0 stays
/// dense) that maximise the summed score of all reuse layers, each reusing the nearest
/// anchor before it. Published Kascade also weights a layer by its importance
/// 1 − cos(h, h + attn_out); that needs the residual stream, which the attention
/// observer does not see, so every layer weighs 1 here.
public struct KascadeCalibration: Codable, Sendable, Equatable {
    public var anchors: [Int]
    /// Per reuse layer (as a string key, for JSON), the anchor kv head each kv head reads.
    public var headMaps: [String: [Int]]
    /// The kernel settings the similarities were measured with (compile with the same).
    public var fraction: Double
    public var minK: Int
    public var tile: Int
    /// score[b][a]: layer b's score reusing anchor a (a < b, both ≥ 1), 0 elsewhere.
    public var scores: [[Double]]
    public var objective: Double

    public var headMapsByLayer: [Int: [Int]] {
        Dictionary(uniqueKeysWithValues: headMaps.compactMap { k, v in Int(k).map { ($0, v) } })
    }
}

/// Accumulates the row-wise similarities over calibration sequences.
struct KascadeSimilarity {
    let layers: Int, kvHeads: Int
    let parameters: KernelParameters
    /// minSim[b][a][gb][ga], 1 until a row says otherwise.
    var minSim: [[[[Double]]]]

    init(layers: Int, kvHeads: Int, parameters: KernelParameters) {
        self.layers = layers
        self.kvHeads = kvHeads
        self.parameters = parameters
        minSim = Array(repeating: Array(repeating: Array(repeating: Array(repeating: 1.0, count: kvHeads), count: kvHeads), count: layers), count: layers)
    }

    var tile: Int { Int(parameters["tile"] ?? 32) }

    /// One sequence: probs[layer][g][row] = the row's probabilities over keys 0...row,
    /// summed over g's q heads (rows are positions 0..<n of a prefill from an empty cache).
    mutating func add(_ probs: [Int: [[[Double]]]]) {
        guard let n = probs.values.first?.first?.count else { return }
        for row in 0..<n {
            let history = row / tile * tile
            let count = KascadeKernel.budget(history: history, parameters)
            guard count < history else { continue }   // everything kept: no loss at this row
            // top-k of every (layer, g) for this row, and b's own-tile mass.
            var top: [Int: [[Int]]] = [:]
            for (layer, heads) in probs { top[layer] = heads.map { topK(Array($0[row][0..<history]), count) } }
            for b in probs.keys where b >= 2 {
                for gb in 0..<kvHeads {
                    let p = probs[b]![gb][row]
                    let own = p[history...].reduce(0, +)
                    let best = top[b]![gb].reduce(0) { $0 + p[$1] } + own
                    for a in probs.keys where a >= 1 && a < b {
                        for ga in 0..<kvHeads {
                            let kept = top[a]![ga].reduce(0) { $0 + p[$1] } + own
                            minSim[b][a][gb][ga] = min(minSim[b][a][gb][ga], best > 0 ? kept / best : 1)
                        }
                    }
                }
            }
        }
    }

    /// Indices of the `k` largest values (ties: lower index).
    func topK(_ x: [Double], _ k: Int) -> [Int] {
        Array(x.indices.sorted { x[$0] > x[$1] || (x[$0] == x[$1] && $0 < $1) }.prefix(k))
    }

    /// Anchors (K of them, layer 1 first) maximising the summed reuse scores.
    func choose(anchors k: Int) throws -> KascadeCalibration {
        let n = layers
        guard n >= 2 else { throw RuntimeError("kascade needs at least 2 layers (layer 0 stays dense)") }
        guard k >= 1, k <= n - 1 else { throw RuntimeError("--anchors must be in 1...\(n - 1) for \(n) layers, got \(k)") }
        var score = Array(repeating: Array(repeating: 0.0, count: n), count: n)
        var map = Array(repeating: Array(repeating: [Int](), count: n), count: n)
        for b in 2..<max(2, n) {
            for a in 1..<b {
                var total = 0.0
                var heads: [Int] = []
                for gb in 0..<kvHeads {
                    let sims = minSim[b][a][gb]
                    let ga = sims.indices.max { sims[$0] < sims[$1] || (sims[$0] == sims[$1] && $0 > $1) }!
                    heads.append(ga)
                    total += sims[ga]
                }
                score[b][a] = total / Double(kvHeads)
                map[b][a] = heads
            }
        }
        // seg(a, e): layers a+1...e reuse anchor a.
        func seg(_ a: Int, _ e: Int) -> Double { a + 1 > e ? 0 : (a + 1...e).reduce(0) { $0 + score[$1][a] } }
        // dp[j][a]: best over layers 1..<a with j anchors, the j-th at a.
        let none = -Double.infinity
        var dp = Array(repeating: Array(repeating: none, count: n), count: k + 1)
        var from = Array(repeating: Array(repeating: -1, count: n), count: k + 1)
        dp[1][1] = 0
        if k >= 2 {
            for j in 2...k {
                for a in 2..<n {
                    for prev in 1..<a where dp[j - 1][prev] > none {
                        let v = dp[j - 1][prev] + seg(prev, a - 1)
                        if v > dp[j][a] { dp[j][a] = v; from[j][a] = prev }
                    }
                }
            }
        }
        var last = -1, best = none
        for a in 1..<n where dp[k][a] > none {
            let v = dp[k][a] + seg(a, n - 1)
            if v > best { best = v; last = a }
        }
        var anchors: [Int] = []
        var j = k, a = last
        while j >= 1 && a >= 1 { anchors.insert(a, at: 0); a = from[j][a]; j -= 1 }
        var maps: [String: [Int]] = [:]
        for b in 1..<n where !anchors.contains(b) {
            let anchor = anchors.last { $0 < b }!
            maps[String(b)] = map[b][anchor]
        }
        return KascadeCalibration(anchors: anchors, headMaps: maps, fraction: parameters["fraction"] ?? 0.10,
                                  minK: Int(parameters["min_k"] ?? 128), tile: tile, scores: score, objective: best)
    }
}
