import AttuneIR
import AttuneKernels
import AttuneNumerics
import Foundation

/// Runs a model on calibration tokens with the float64 reference interpreter and
/// collects, for every softmax attention node and q head, the maximum score of every
/// query row: the statistics `Calibration` stores. The reference is slow but exact and
/// independent of any kernel, so the statistics do not depend on the kernel calibrated.
public enum Calibrator {
    /// What `--kascade` asks for: how many anchors, and the kernel settings to measure with.
    public struct KascadeRequest: Sendable {
        public var anchors: Int
        public var parameters: KernelParameters
        public init(anchors: Int, parameters: KernelParameters = [:]) {
            self.anchors = anchors
            self.parameters = parameters
        }
    }

    /// `sequences`: token ids, each sequence run from an empty cache in one forward pass.
    /// `observe` sees every softmax attention layer's inputs of every sequence, in the same
    /// run (the model tuner captures activations there instead of running the model twice).
    public static func calibrate(_ model: LoadedModel, sequences: [[Int32]], kascade: KascadeRequest? = nil,
                                 observe: ((_ sequence: Int, _ layer: Int, _ attrs: AttentionAttrs,
                                            _ q: F64Tensor, _ k: F64Tensor, _ v: F64Tensor) -> Void)? = nil,
                                 progress: ((_ done: Int, _ total: Int) -> Void)? = nil) throws -> Calibration {
        guard !sequences.isEmpty, sequences.allSatisfy({ !$0.isEmpty }) else {
            throw RuntimeError("calibration needs at least one non-empty token sequence")
        }
        let graph = try ModelCompiler.lower(model, CompileOptions()).output
        let interpreter = try ReferenceInterpreter(graph: graph, weights: model.weights)
        var maxima: [Int: [[Double]]] = [:]   // layer -> q head -> row maxima
        var probabilities: [Int: [[[Double]]]] = [:]   // this sequence: layer -> kv head -> row -> key
        var similarity: KascadeSimilarity?
        var failure: Error?
        var sequence = 0
        interpreter.attentionObserver = { node, attrs, q, k, v in
            guard case .softmax = attrs.normalizer else { return }
            guard case .kvAppend(let layer, _) = graph.nodes[graph.nodes[node].inputs[1].node].op else {
                failure = RuntimeError("attention node %\(node) does not read a layer's KV cache; cannot calibrate it")
                return
            }
            observe?(sequence, layer, attrs, q, k, v)
            let rows = rowMaxima(q: q, k: k, attrs)
            if kascade != nil { probabilities[layer] = kvHeadProbabilities(q: q, k: k, attrs) }
            var heads = maxima[layer] ?? Array(repeating: [], count: attrs.heads)
            for h in 0..<attrs.heads { heads[h] += rows[h] }
            maxima[layer] = heads
        }
        for (i, tokens) in sequences.enumerated() {
            sequence = i
            interpreter.reset()
            let ids = F64Tensor(shape: [tokens.count], data: tokens.map(Double.init))
            let positions = F64Tensor(shape: [tokens.count], data: tokens.indices.map(Double.init))
            probabilities = [:]
            _ = try interpreter.run(inputs: ["tokens": ids, "positions": positions])
            if let failure { throw failure }
            if let kascade, let kvHeads = probabilities.values.first?.count {
                if similarity == nil {
                    similarity = KascadeSimilarity(layers: (probabilities.keys.max() ?? 0) + 1, kvHeads: kvHeads, parameters: kascade.parameters)
                }
                similarity!.add(probabilities)
            }
            progress?(i + 1, sequences.count)
        }
        guard !maxima.isEmpty else { throw RuntimeError("model '\(model.name)' has no softmax attention to calibrate") }
        let lengths = sequences.map(\.count)
        let layers = maxima.keys.sorted().map { layer in
            Calibration.Layer(layer: layer, heads: maxima[layer]!.map { headStatistics($0, rowLengths: lengths) })
        }
        return Calibration(format: Calibration.formatName, version: Calibration.currentVersion, model: model.name,
                           modelHash: try ModelFingerprint.of(model), sequences: sequences.count,
                           tokens: lengths.reduce(0, +), layers: layers,
                           kascade: try kascade.map { try similarity!.choose(anchors: $0.anchors) })
    }

    /// Maxima of x = scale·q·k over the keys each query row sees, per q head, in row order.
    /// Its own mask logic: row i of `seq` sits at position kv - seq + i (bottom-right).
    static func rowMaxima(q: F64Tensor, k: F64Tensor, _ a: AttentionAttrs) -> [[Double]] {
        let seq = q.shape[0], kv = k.shape[0], d = a.headDim
        let qWidth = q.shape[1], kWidth = k.shape[1], group = a.heads / a.kvHeads
        return (0..<a.heads).map { h in
            let g = h / group
            return (0..<seq).map { i in
                let position = kv - seq + i
                var best = -Double.infinity
                for j in 0..<kv {
                    if a.causal && j > position { continue }
                    if let w = a.window, j <= position - w { continue }
                    var dot = 0.0
                    for c in 0..<d { dot += q.data[i * qWidth + h * d + c] * k.data[j * kWidth + g * d + c] }
                    best = max(best, a.scale * dot)
                }
                return best
            }
        }
    }

    /// Exact probabilities of every query row over the keys it sees, summed over the q heads
    /// of each kv head: [kv head][row][key] (keys past the row are 0).
    static func kvHeadProbabilities(q: F64Tensor, k: F64Tensor, _ a: AttentionAttrs) -> [[[Double]]] {
        let seq = q.shape[0], kv = k.shape[0], d = a.headDim, group = a.heads / a.kvHeads
        var out = Array(repeating: Array(repeating: Array(repeating: 0.0, count: kv), count: seq), count: a.kvHeads)
        for h in 0..<a.heads {
            let g = h / group
            for i in 0..<seq {
                let position = kv - seq + i
                var scores = Array(repeating: -Double.infinity, count: kv)
                for j in 0..<kv where !(a.causal && j > position) && !(a.window.map { j <= position - $0 } ?? false) {
                    var dot = 0.0
                    for c in 0..<d { dot += q.data[i * q.shape[1] + h * d + c] * k.data[j * k.shape[1] + g * d + c] }
                    scores[j] = a.scale * dot
                }
                let m = scores.max() ?? 0
                guard m > -Double.infinity else { continue }
                let e = scores.map { exp($0 - m) }, sum = e.reduce(0, +)
                for j in 0..<kv { out[g][i][j] += e[j] / sum }
            }
        }
        return out
    }

    /// `rowLengths` gives each row's key count for the fp32-window estimate: the calibration
    /// rows are the sequences' rows in order (row r of a sequence sees r + 1 keys).
    static func headStatistics(_ maxima: [Double], rowLengths: [Int]) -> Calibration.Head {
        let sorted = maxima.filter(\.isFinite).sorted()
        func quantile(_ p: Double) -> Double {
            sorted.isEmpty ? 0 : sorted[min(sorted.count - 1, Int((p * Double(sorted.count - 1)).rounded()))]
        }
        let phi = quantile(0.5)
        var outside = 0, row = 0
        for length in rowLengths {
            for r in 0..<length where row < maxima.count {
                let (low, high) = UnifiedMaxWindow.bounds(keys: r + 1)
                let t = maxima[row] - phi
                if !(t >= low && t <= high) { outside += 1 }
                row += 1
            }
        }
        return Calibration.Head(phi: phi, rows: maxima.count, rowMaxMin: sorted.first ?? 0, rowMaxP01: quantile(0.01),
                                rowMaxMean: sorted.isEmpty ? 0 : sorted.reduce(0, +) / Double(sorted.count),
                                rowMaxP99: quantile(0.99), rowMaxMax: sorted.last ?? 0, rowsOutsideWindow: outside)
    }
}

/// The fp32 window of `unified_max` (Kernels/unified_max.c): a row of n keys in one split
/// needs no recompute while max x - phi lies in [(ceil log2 n - 102) ln 2, (127 - ceil log2 n) ln 2].
enum UnifiedMaxWindow {
    static func bounds(keys n: Int) -> (low: Double, high: Double) {
        let bits = log2(Double(max(n, 1))).rounded(.up)
        return ((bits - 102) * M_LN2, (127 - bits) * M_LN2)
    }
}
