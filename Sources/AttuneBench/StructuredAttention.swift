import AttuneKernels
import Foundation

/// Seeded Q, K, V whose attention has the shape of a trained LLM's, so block-sparse kernels
/// have something to find (N(0, 1) or uniform inputs give near-flat attention, where every
/// block matters about equally). Deterministic: the same problem, seed and knobs give the
/// same bits on every machine. Docs/WORKLOADS.md describes the construction and the knobs.
///
/// Scores are built from named components, each a few dedicated dimensions of the head dim
/// (the rest carry only noise), with logits given in natural units of `scale · q·k`:
/// - **recency**: random Fourier features of the token position (frequencies drawn from
///   N(0, 1/width²) per kv head), so `q_i·k_j ≈ L_local · exp(−(p_i − j)² / 2 width²)`
///   plus a smooth, position-dependent background (the features' finite sample);
/// - **sinks**: the first `sinkTokens` keys carry one direction that every query of a
///   sink-attending head also carries (`L_sink`);
/// - **heavy hitters**: `heavyClusters` runs of `clusterWidth` consecutive keys at seeded
///   positions, each run with its own direction that the queries of heavy-hitter heads carry
///   (`L_heavy`): vertical stripes in the attention map;
/// - **noise**: N(0, queryNoise²) and N(0, keyNoise²) per element (N(0, (qn·kn)²) logits);
/// - a constant **key offset** per kv head, which softmax ignores (it shifts a row by
///   q·offset) but which makes raw keys look alike: what SpargeAttn's smoothing removes.
///
/// The components' strengths depend on the q head's kind (`kinds`, cycled over q heads), so
/// heads sharing a kv head under GQA attend differently to the same keys.
public struct StructuredAttention: Sendable {
    public enum HeadKind: String, Sendable, CaseIterable {
        /// Mostly the last `width` or so tokens, a weak sink.
        case local
        /// A strong sink plus recency.
        case sink
        /// Heavy-hitter stripes plus recency and a sink.
        case heavy
        /// Weak structure under the noise: near-flat attention (what sparsity cannot exploit).
        case diffuse

        /// Logits (natural units) of the recency peak, the sink and the heavy hitters.
        public var logits: (local: Double, sink: Double, heavy: Double) {
            switch self {
            case .local: (8, 4, 1)
            case .sink: (7, 8, 2)
            case .heavy: (6, 4, 7)
            case .diffuse: (1.5, 1, 1)
            }
        }
    }

    public struct Knobs: Sendable, Equatable {
        /// Head kinds, cycled over q heads (head h has kind kinds[h % kinds.count]).
        public var kinds: [HeadKind] = [.local, .sink, .heavy, .diffuse]
        /// Recency width in tokens (standard deviation of the positional kernel).
        public var width: Double = 48
        public var sinkTokens: Int = 4
        public var heavyClusters: Int = 6
        public var clusterWidth: Int = 8
        public var queryNoise: Double = 1.0
        public var keyNoise: Double = 0.35
        /// Norm of the constant added to every key of a kv head.
        public var keyOffset: Double = 4
        public init() {}
    }

    public var q: [Float]
    public var k: [Float]
    public var v: [Float]

    public static func kind(ofHead h: Int, _ knobs: Knobs = Knobs()) -> HeadKind {
        knobs.kinds[h % knobs.kinds.count]
    }

    public init(_ p: AttentionProblem, seed: UInt64, knobs: Knobs = Knobs()) {
        precondition(!knobs.kinds.isEmpty, "at least one head kind")
        let d = p.qkDim
        // Dimensions: [0, 2F) positional features, then a sink dim, then one per heavy cluster.
        let features = max(1, min(32, (d - 1 - knobs.heavyClusters) / 2))
        let sinkDim = 2 * features
        let heavyDims = (0..<knobs.heavyClusters).map { sinkDim + 1 + $0 }.filter { $0 < d }
        let scale = Double(p.resolvedScale)
        // Keys carry each structural direction with amplitude A; a query asks for logit L
        // with amplitude L / (scale · A).
        let amp = Double(d).squareRoot().squareRoot() * 2
        let qAmp = { (logit: Double) in scale == 0 ? 0 : logit / (scale * amp) }
        var rng = SeededNormal(seed: seed)

        q = [Float](repeating: 0, count: p.qShape.reduce(1, *))
        k = [Float](repeating: 0, count: p.kShape.reduce(1, *))
        v = [Float](repeating: 0, count: p.vShape.reduce(1, *))
        let group = p.qHeads / max(p.kvHeads, 1)
        let qOffset = p.resolvedQOffset
        for b in 0..<p.batch {
            for g in 0..<p.kvHeads {
                // Per kv head: frequencies, phases, heavy-hitter positions, key offset.
                let omega = (0..<features).map { _ in rng.next() / knobs.width }
                let phase = (0..<features).map { _ in rng.nextUniform() * 2 * .pi }
                let starts = (0..<heavyDims.count).map { _ in Int(rng.nextUniform() * Double(max(p.kvLen, 1))) }
                var offset = (0..<d).map { _ in rng.next() }
                let norm = offset.reduce(0) { $0 + $1 * $1 }.squareRoot()
                offset = offset.map { $0 / max(norm, 1e-12) * knobs.keyOffset }
                let posScale = 1 / Double(features).squareRoot()

                for j in 0..<p.kvLen {
                    let base = ((b * p.kvHeads + g) * p.kvLen + j) * d
                    for i in 0..<d { k[base + i] = Float(offset[i] + knobs.keyNoise * rng.next()) }
                    for f in 0..<features {
                        let a = omega[f] * Double(j) + phase[f]
                        k[base + 2 * f] += Float(amp * posScale * cos(a))
                        k[base + 2 * f + 1] += Float(amp * posScale * sin(a))
                    }
                    if j < knobs.sinkTokens { k[base + sinkDim] += Float(amp) }
                    for (c, dim) in heavyDims.enumerated() where j >= starts[c] && j < starts[c] + knobs.clusterWidth {
                        k[base + dim] += Float(amp)
                    }
                    let vbase = ((b * p.kvHeads + g) * p.kvLen + j) * p.vDim
                    for i in 0..<p.vDim { v[vbase + i] = Float(rng.next()) }
                }
                for h in g * group..<(g + 1) * group {
                    let logits = Self.kind(ofHead: h, knobs).logits
                    for i in 0..<p.qLen {
                        let base = ((b * p.qHeads + h) * p.qLen + i) * d
                        for e in 0..<d { q[base + e] = Float(knobs.queryNoise * rng.next()) }
                        let pos = Double(qOffset + i)
                        for f in 0..<features {
                            let a = omega[f] * pos + phase[f]
                            q[base + 2 * f] += Float(qAmp(logits.local) * posScale * cos(a))
                            q[base + 2 * f + 1] += Float(qAmp(logits.local) * posScale * sin(a))
                        }
                        if sinkDim < d { q[base + sinkDim] += Float(qAmp(logits.sink)) }
                        for dim in heavyDims { q[base + dim] += Float(qAmp(logits.heavy)) }
                    }
                }
            }
        }
    }
}

/// Deterministic N(0, 1) and U(0, 1) draws: SplitMix64 feeding Box-Muller, so every run
/// and every machine draws the same numbers (the kernel harness draws its inputs with it too).
public struct SeededNormal: Sendable {
    private var state: UInt64
    private var spare: Double?

    public init(seed: UInt64) { state = seed &+ 0x9E37_79B9_7F4A_7C15 }

    public mutating func nextUniform() -> Double {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        z ^= z >> 31
        return (Double(z >> 11) + 0.5) / Double(1 << 53)
    }

    public mutating func next() -> Double {
        if let s = spare { spare = nil; return s }
        let u = nextUniform(), w = nextUniform()
        let r = (-2 * log(u)).squareRoot()
        spare = r * sin(2 * .pi * w)
        return r * cos(2 * .pi * w)
    }
}
