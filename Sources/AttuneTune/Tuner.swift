import AttuneBench
import AttuneKernels
import AttuneNumerics
import AttuneTensor
import CAttuneKernels
import Foundation

/// Searches a kernel's parameter space for one problem class and records the winner.
///
/// 1. The space: the cartesian product of each parameter's candidates (those with more
///    than one; benchmark-only switches excluded), with overrides; illegal points are
///    pruned by the kernel's parameter checks.
/// 2. Every candidate first passes the numerics check — its output rows against a
///    float64 reference of those rows (`maxAbs ≤ exactTolerance` for exact kernels,
///    rel-L1 within the error budget for approximate ones) — and only then is timed:
///    one warm-up, then repeated runs for at least `minSeconds`, median. A wrong
///    configuration is never timed, stored or chosen.
/// 3. The three fastest are re-timed, interleaved with the defaults, and the winner
///    is the fastest re-timed median.
/// 4. An A/A run (the baseline against itself, interleaved) gives the noise: the spread
///    of the per-pair ratios. The winner is recorded as better only if it beats the
///    baseline by more than that noise; otherwise the record keeps the baseline. The
///    baseline is the defaults, or the first passing candidate when they fail the check.
/// 5. Measurements are stored per candidate: with a warm database nothing is measured,
///    and a space grown by a few points measures only those (and re-times the top three
///    when a new point enters them).
public struct Tuner {
    public struct Settings: Sendable {
        public var minSeconds = 0.2
        public var minRuns = 3
        /// Largest space tuned without narrowing (`--space`).
        public var maxCandidates = 96
        /// Approximate kernels: the largest rel-L1 against the reference a candidate may have.
        public var errorBudget = 0.05
        /// Exact kernels: the largest |O - O_ref| a candidate may have.
        public var exactTolerance = 1e-4
        /// Pairs in the A/A run and the re-timing rounds.
        public var pairs = 7
        public var seed: UInt64 = 1
        /// Random N(0, 1) inputs, or `StructuredAttention`'s (recency, sinks, heavy hitters):
        /// approximate kernels only have something to skip on the latter.
        public var structuredInputs = false
        public init() {}
    }

    public struct Outcome: Sendable {
        public var record: TuningRecord
        /// Candidates timed in this call (0 when the database answered).
        public var measured: Int
        /// Candidates that failed the numerics check, with their error.
        public var rejected: [(KernelParameters, Double)]
    }

    public let kernel: any AttentionKernel
    public let problem: AttentionProblem
    public var settings: Settings
    public var reporter: TuneReporter

    /// OpenMP threads the kernels use when a call does not set them: part of every key.
    public static var defaultThreads: Int { Int(attune_kernels_max_threads()) }

    public init(kernel: any AttentionKernel, problem: AttentionProblem, settings: Settings = Settings(), reporter: TuneReporter = .silent) {
        self.kernel = kernel
        self.problem = problem
        self.settings = settings
        self.reporter = reporter
    }

    /// The candidates: each tuned parameter's values (`overrides` replace a parameter's,
    /// a single value fixes it), the defaults first.
    public func space(overrides: [String: [Double]] = [:]) throws -> [KernelParameters] {
        for name in overrides.keys.sorted() where !kernel.parameters.contains(where: { $0.name == name }) {
            throw TuneError("kernel '\(kernel.name)' has no parameter '\(name)'")
        }
        // Switches (benchmark/graph settings) take one value, applied to every point,
        // the defaults included: they change what is measured, not how fast.
        var fixed: KernelParameters = [:]
        var axes: [(String, [Double])] = []
        for p in kernel.parameters {
            if p.isSwitch {
                guard let values = overrides[p.name] else { continue }
                guard values.count == 1 else { throw TuneError("'\(p.name)' is a switch, not a knob: give it one value") }
                fixed[p.name] = values[0]
                continue
            }
            let values = overrides[p.name] ?? p.candidates
            if values.count > 1 || overrides[p.name] != nil { axes.append((p.name, values)) }
        }
        var points: [KernelParameters] = [[:]]
        for (name, values) in axes {
            points = points.flatMap { point in values.map { point.merging([name: $0]) { $1 } } }
        }
        guard settings.maxCandidates >= 1 else { throw TuneError("--max-candidates must be >= 1, got \(settings.maxCandidates)") }
        if points.count > settings.maxCandidates {
            // A fixed-seed sample, kept in the space's order: the same points every run, so a
            // warm database stays warm and a grown cap only adds points.
            var rng = SeededNormal(seed: 0x5EED)
            let keep = Set((0..<points.count).map { ($0, rng.nextUniform()) }.sorted { $0.1 < $1.1 }.prefix(settings.maxCandidates).map(\.0))
            reporter.note("the space of '\(kernel.name)' has \(points.count) candidates (\(axes.map { "\($0.0): \($0.1.count)" }.joined(separator: ", "))); "
                          + "timing a fixed sample of \(settings.maxCandidates) (narrow it with --space NAME=v1,v2 or raise --max-candidates to time all)")
            points = points.indices.filter { keep.contains($0) }.map { points[$0] }
        }
        let legal = points.filter { !$0.isEmpty && (try? kernel.checkParameters($0)) != nil }
        return ([[:]] + legal).map { $0.merging(fixed) { $1 } }
    }

    public func tune(space: [KernelParameters], database: TuningDatabase, threads: Int? = nil) throws -> Outcome {
        let reasons = kernel.unsupportedReasons(problem)
        guard reasons.isEmpty else { throw TuneError("kernel '\(kernel.name)' cannot run \(problem): \(reasons.joined(separator: "; "))") }
        var key = try TuningKey.current(kernel: kernel, problem: problem, threads: threads ?? Self.defaultThreads)
        if settings.structuredInputs { key.problem += " structured" }
        // Switches given as a fixed value (e.g. kascade's role=1) change what is measured.
        let switchNames = Set(kernel.parameters.filter(\.isSwitch).map(\.name))
        let switches = space.first.map { $0.filter { switchNames.contains($0.key) } } ?? [:]
        if !switches.isEmpty { key.problem += " " + describeParameters(switches) }
        var known = Dictionary(uniqueKeysWithValues: try database.measurements(for: key).map { (TuningDatabase.encode($0.parameters), $0) })
        let fresh = space.filter { known[TuningDatabase.encode($0)] == nil }
        if let record = try database.record(for: key), fresh.isEmpty {
            reporter.note("warm: record for \(key.problem) found, nothing measured")
            return Outcome(record: record, measured: 0, rejected: [])
        }

        let tuningStarted = Date()
        let bench = Bench(kernel: kernel, problem: problem, seed: settings.seed, structured: settings.structuredInputs)
        let reference = try bench.referenceRows()
        var rejected: [(KernelParameters, Double)] = []
        var measured = 0
        let start = Date()
        for (i, point) in fresh.enumerated() {
            let error = try bench.error(point, against: reference)
            // An exact kernel run approximately (precision=bf16) is held to the budget.
            let exact = kernel.isExact(with: point)
            let limit = exact ? settings.exactTolerance : settings.errorBudget
            let metric = exact ? error.maxAbs : error.relL1
            guard error.nanCount == 0, metric <= limit else {
                rejected.append((point, metric))
                reporter.note("rejected \(describe(point)): \(exact ? "max |error|" : "rel-L1") \(metric) > \(limit)")
                continue
            }
            let ms = try bench.median(point, minSeconds: settings.minSeconds, minRuns: settings.minRuns)
            let m = TuningMeasurement(parameters: point, medianMs: ms, error: error.relL1)
            try database.save(m, for: key)
            known[TuningDatabase.encode(point)] = m
            measured += 1
            let best = known.values.min { $0.medianMs < $1.medianMs }!
            let eta = Date().timeIntervalSince(start) / Double(i + 1) * Double(fresh.count - i - 1)
            reporter.progress(done: i + 1, of: fresh.count, current: describe(point), currentMs: ms,
                              best: describe(best.parameters), bestMs: best.medianMs, eta: eta)
        }
        reporter.finish()
        // The baseline a winner must beat: the defaults, or — when they fail the budget (an
        // approximate kernel asked for a tighter error than its defaults give) — the first
        // candidate of the space that passes.
        let baseline: KernelParameters
        if let defaults = space.first, known[TuningDatabase.encode(defaults)] != nil {
            baseline = defaults
        } else if let first = space.first(where: { known[TuningDatabase.encode($0)] != nil }) {
            baseline = first
            reporter.note("the defaults fail the numerics check; baseline: \(describe(first))")
        } else {
            throw TuneError("no candidate of '\(kernel.name)' passes the numerics check on \(problem) (best error \(rejected.map(\.1).min().map { "\($0)" } ?? "?")): widen the budget or the space")
        }

        // Re-time the top three, then A/A: the baseline against itself, for the noise.
        let top = known.values.filter { $0.medianMs.isFinite }.sorted { $0.medianMs < $1.medianMs }.prefix(3).map(\.parameters)
        var retimed: [(KernelParameters, Double)] = []
        for point in top {
            retimed.append((point, try bench.median(point, minSeconds: settings.minSeconds / 2, minRuns: settings.minRuns)))
        }
        let (baseMs, noise) = try bench.aa(baseline, pairs: settings.pairs)
        let winner = retimed.min { $0.1 < $1.1 } ?? (baseline, baseMs)
        let better = TuningDatabase.encode(winner.0) != TuningDatabase.encode(baseline) && baseMs / winner.1 - 1 > noise
        let record = TuningRecord(key: key, parameters: better ? winner.0 : baseline, medianMs: better ? winner.1 : baseMs,
                                  defaultMs: baseMs, noise: noise, better: better, candidates: known.count,
                                  error: known.values.map(\.error).max() ?? 0, created: ISO8601DateFormatter().string(from: Date()))
        let kept = try database.save(record, tunedSince: tuningStarted)
        if kept != record {
            reporter.note("another tuner saved a faster record for \(key.problem) while this one ran (\(String(format: "%.3f", kept.medianMs)) ms vs \(String(format: "%.3f", record.medianMs)) ms): it is kept")
            return Outcome(record: kept, measured: measured + top.count, rejected: rejected)
        }
        reporter.note("\(better ? "winner \(describe(winner.0))" : "baseline kept (no candidate beat it by more than the noise)"): \(String(format: "%.3f", record.medianMs)) ms vs baseline \(describe(baseline)) \(String(format: "%.3f", baseMs)) ms, A/A noise \(String(format: "%.1f", noise * 100)) %")
        return Outcome(record: record, measured: measured + top.count, rejected: rejected)
    }

    func describe(_ p: KernelParameters) -> String { p.isEmpty ? "defaults" : describeParameters(p) }
}

/// Inputs, the reference rows and timing for one kernel and problem.
struct Bench {
    let kernel: any AttentionKernel
    let problem: AttentionProblem
    let q: Tensor, k: Tensor, v: Tensor
    /// Query rows checked against the float64 reference: the first and last few.
    let rows: [Int]

    init(kernel: any AttentionKernel, problem: AttentionProblem, seed: UInt64, structured: Bool = false) {
        self.kernel = kernel
        self.problem = problem
        if structured {
            let s = StructuredAttention(problem, seed: seed)
            q = Tensor(shape: problem.qShape, data: s.q)
            k = Tensor(shape: problem.kShape, data: s.k)
            v = Tensor(shape: problem.vShape, data: s.v)
        } else {
            var rng = SeededNormal(seed: seed)
            func tensor(_ shape: [Int]) -> Tensor { Tensor(shape: shape, data: (0..<shape.reduce(1, *)).map { _ in Float(rng.next()) }) }
            q = tensor(problem.qShape)
            k = tensor(problem.kShape)
            v = tensor(problem.vShape)
        }
        let n = problem.qLen
        rows = Array(Set(Array(0..<min(8, n)) + Array(max(0, n - 8)..<n))).sorted()
    }

    /// The float64 reference for `rows`, laid out [batch, head, row, dv].
    func referenceRows() throws -> [Double] {
        let p = problem
        var out: [Double] = []
        let ref = ReferenceAttentionProblem(batch: p.batch, qHeads: p.qHeads, kvHeads: p.kvHeads, qLen: rows.count, kvLen: p.kvLen,
                                            qkDim: p.qkDim, vDim: p.vDim, scale: Double(p.resolvedScale), causal: p.causal,
                                            qOffset: nil, window: p.window)
        let kd = k.data.map(Double.init), vd = v.data.map(Double.init)
        // One row at a time keeps each row's own position (q_offset + row).
        for row in rows {
            var one = ref
            one.qLen = 1
            one.qOffset = p.resolvedQOffset + row
            var qs: [Double] = []
            for b in 0..<p.batch { for h in 0..<p.qHeads {
                let base = ((b * p.qHeads + h) * p.qLen + row) * p.qkDim
                qs += q.data[base..<base + p.qkDim].map(Double.init)
            } }
            let o = try ReferenceAttention.softmax(one, q: qs, k: kd, v: vd).o
            out += o
        }
        return out
    }

    /// The kernel's output on `rows` in `referenceRows`' order, compared.
    func error(_ parameters: KernelParameters, against reference: [Double]) throws -> ErrorMetrics {
        let o = try kernel.run(problem, q: q, k: k, v: v, parameters: parameters).o
        let p = problem
        var picked: [Float] = []
        for row in rows {
            for b in 0..<p.batch { for h in 0..<p.qHeads {
                let base = ((b * p.qHeads + h) * p.qLen + row) * p.vDim
                picked += o.data[base..<base + p.vDim]
            } }
        }
        return ErrorMetrics.compare(picked, reference)
    }

    func once(_ parameters: KernelParameters) throws -> Double {
        let t0 = DispatchTime.now().uptimeNanoseconds
        _ = try kernel.run(problem, q: q, k: k, v: v, parameters: parameters)
        return Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e6
    }

    /// One warm-up, then runs for at least `minSeconds` and `minRuns`; the median.
    func median(_ parameters: KernelParameters, minSeconds: Double, minRuns: Int) throws -> Double {
        _ = try once(parameters)
        var times: [Double] = []
        var total = 0.0
        while times.count < minRuns || total < minSeconds * 1e3 {
            let t = try once(parameters)
            times.append(t)
            total += t
            if times.count >= 1000 { break }
        }
        return times.sorted()[times.count / 2]
    }

    /// One configuration against itself, interleaved: its median and the spread of the
    /// per-pair ratios (half the range between the 25th and 75th percentiles, plus how far
    /// the median ratio is from 1).
    func aa(_ parameters: KernelParameters, pairs: Int) throws -> (ms: Double, noise: Double) {
        _ = try once(parameters)
        var a: [Double] = [], ratios: [Double] = []
        for _ in 0..<max(pairs, 3) {
            let x = try once(parameters), y = try once(parameters)
            a += [x, y]
            ratios.append(x / y)
        }
        ratios.sort()
        let q1 = ratios[ratios.count / 4], q3 = ratios[(3 * ratios.count) / 4], mid = ratios[ratios.count / 2]
        return (a.sorted()[a.count / 2], (q3 - q1) / 2 + abs(mid - 1))
    }
}

/// Where the tuner says what it is doing: a progress bar on a terminal, plain lines
/// otherwise, or nothing.
public struct TuneReporter: @unchecked Sendable {
    let write: ((String) -> Void)?
    let terminal: Bool

    public static let silent = TuneReporter(write: nil, terminal: false)

    /// stderr; a progress bar when it is a terminal.
    public static var standardError: TuneReporter {
        TuneReporter(write: { FileHandle.standardError.write(Data($0.utf8)) }, terminal: isatty(2) != 0)
    }

    public init(write: ((String) -> Void)?, terminal: Bool) {
        self.write = write
        self.terminal = terminal
    }

    func progress(done: Int, of total: Int, current: String, currentMs: Double, best: String, bestMs: Double, eta: Double) {
        guard let write else { return }
        let line = "\(current): \(String(format: "%.3f", currentMs)) ms | best \(best) \(String(format: "%.3f", bestMs)) ms | ETA \(Int(eta.rounded())) s"
        if terminal {
            let width = 24, filled = total > 0 ? done * width / total : width
            write("\r\u{1B}[K[" + String(repeating: "#", count: filled) + String(repeating: ".", count: width - filled) + "] \(done)/\(total) " + line)
        } else {
            write("candidate \(done)/\(total) \(line)\n")
        }
    }

    func finish() {
        if terminal, let write { write("\n") }
    }

    func note(_ s: String) { write?(s + "\n") }
}
