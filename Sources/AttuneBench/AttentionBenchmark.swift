import AttuneKernels
import AttuneNumerics
import AttuneTensor
import CAttuneKernels
import Foundation

/// What `attune bench attention` measures and prints. Field names are the JSON keys.
public struct AttentionBenchResult: Codable, Sendable {
    public var kernel: String
    public var problem: String
    public var parameters: [String: Double]
    public var threads: Int
    public var repeats: Int
    public var ms_median: Double
    public var ms_min: Double
    public var ms_max: Double
    /// 2 * (qkDim + vDim) FLOPs per visible (query, key) pair per head (4d when the dims agree).
    public var gflops: Double
    /// K and V bytes of the problem as stored (`problem.kvFormat`: elements and int8 scales) read once, per second.
    public var kv_gbps: Double
    /// OpenBLAS SGEMM on `sgemm_n`^3 with the same thread count, same process.
    public var sgemm_gflops: Double
    public var sgemm_n: Int
    /// Streaming read of a buffer far larger than the caches, same threads, same process.
    public var read_gbps: Double
    public var ratio_to_sgemm: Double
    public var ratio_to_read: Double
    /// What the kernel counted in its last timed call (fallback rows, selected fraction, ...).
    public var kernel_stats: [String: Double]
    /// `random` (uniform in [-1, 1)) or `structured` (`StructuredAttention`, seed 42).
    public var inputs: String = "random"
    /// Approximate softmax kernels only: dense `flash` on the same inputs, same process.
    public var versus_flash: VersusFlash? = nil
    /// Problems with document or block masks only: the same kernel without them, same process.
    public var versus_unmasked: VersusUnmasked? = nil
}

/// A masked problem against the same kernel on the problem without its masks, timed
/// alternately in one process, with the tiles the masks let the engine skip.
public struct VersusUnmasked: Codable, Sendable {
    public var unmasked_ms_median: Double
    /// Median over pairs of unmasked time / masked time: > 1 means the masks save time.
    public var speedup_paired: Double
    public var pairs: Int
    /// Tiles skipped / tiles the causal/window mask alone gives (the kernel's `skipped_fraction`).
    public var skipped_fraction: Double
}

/// An approximate kernel against dense `flash`, timed alternately in one process (the
/// order swapped every pair) so machine load hits both alike.
public struct VersusFlash: Codable, Sendable {
    public var flash_ms_median: Double
    /// Median over pairs of flash time / kernel time: > 1 means the kernel is faster.
    public var speedup_paired: Double
    public var pairs: Int
    /// Of the kernel's output against flash's: Σ|O − O_flash| / Σ|O_flash|, cosine, max |O − O_flash|.
    public var rel_l1: Double
    public var cosine: Double
    public var max_abs: Double
}

/// Which inputs a benchmark draws.
public enum BenchInputs: String, Sendable, CaseIterable {
    /// Uniform in [-1, 1): near-flat attention, cheap to draw.
    case random
    /// `StructuredAttention` (recency, sinks, heavy hitters; seed 42): attention with the block
    /// structure sparse kernels exploit.
    case structured
}

public struct AttentionBenchmark {
    public var kernel: any AttentionKernel
    public var problem: AttentionProblem
    public var parameters: KernelParameters
    public var threads: Int
    public var warmup: Int = 2
    public var repeats: Int = 10
    /// Keep repeating until this many seconds are spent, so tiny problems get many samples.
    public var minSeconds: Double = 0.5
    public var sgemmN: Int = 2048
    public var readBytes: Int = 512 << 20
    public var inputs: BenchInputs = .random

    public init(kernel: any AttentionKernel, problem: AttentionProblem, parameters: KernelParameters, threads: Int) {
        self.kernel = kernel
        self.problem = problem
        self.parameters = parameters
        self.threads = threads
    }

    public func run() throws -> AttentionBenchResult {
        if let refusal = kernel.kvFormatRefusal(problem.kvFormat) { throw KernelError(refusal) }
        let reasons = kernel.unsupportedReasons(problem)
        if !reasons.isEmpty {
            throw KernelError("kernel '\(kernel.name)' cannot run \(problem): " + reasons.joined(separator: "; "))
        }
        var params = parameters
        if threads > 0 { params["threads"] = Double(threads) }
        try kernel.checkParameters(params)
        // Inputs, two outputs (the kernel's and flash's for comparison) and a margin.
        try SystemMemory.require(problem.tensorBytes.flatMap { $0.multipliedReportingOverflow(by: 2).overflow ? nil : $0 * 2 },
                                 for: "the problem \(problem)")

        let q: [Float], k: [Float], v: [Float]
        switch inputs {
        case .random:
            var rng = BenchRandom(seed: 42)
            q = rng.array(count: problem.qShape.reduce(1, *))
            k = rng.array(count: problem.kShape.reduce(1, *))
            v = rng.array(count: problem.vShape.reduce(1, *))
        case .structured:
            let x = StructuredAttention(problem, seed: 42)
            (q, k, v) = (x.q, x.k, x.v)
        }
        // K/V as the kernel reads them: fp32, or packed in the problem's format (KVFormat).
        let format = problem.kvFormat
        let kStored = Self.aligned(format == .f32 ? [] : format.pack(k, dim: problem.qkDim))
        let vStored = Self.aligned(format == .f32 ? [] : format.pack(v, dim: problem.vDim))
        defer {
            kStored.deallocate()
            vStored.deallocate()
        }
        var o = [Float](repeating: 0, count: problem.oShape.reduce(1, *))
        var oFlash = o, oPlain = o
        var lse = [Float](repeating: 0, count: problem.lseShape.reduce(1, *))
        // Approximate softmax kernels are timed against dense flash, pair by pair.
        let flash: (any AttentionKernel)? = !kernel.isExact(with: params) && kernel.normalizer == .softmax ? FlashKernel() : nil
        let flashParams: KernelParameters = threads > 0 ? ["threads": Double(threads)] : [:]

        // Masked problems are timed against the same kernel without the masks, pair by pair.
        var plain = problem
        plain.documentIDs = nil
        plain.blockMask = nil
        let masked = plain != problem

        var times: [Double] = [], flashTimes: [Double] = [], ratios: [Double] = []
        var plainTimes: [Double] = [], plainRatios: [Double] = []
        var stats: KernelRunStats = [:]
        try q.withUnsafeBufferPointer { qb in
            try k.withUnsafeBufferPointer { kb in
                try v.withUnsafeBufferPointer { vb in
                    try o.withUnsafeMutableBufferPointer { ob in
                        try oFlash.withUnsafeMutableBufferPointer { fb in
                          try oPlain.withUnsafeMutableBufferPointer { ub in
                            try lse.withUnsafeMutableBufferPointer { lb in
                                var (qp, kp, vp) = (qb.baseAddress!, kb.baseAddress ?? qb.baseAddress!, vb.baseAddress ?? qb.baseAddress!)
                                if format != .f32 {
                                    kp = UnsafePointer(kStored.baseAddress!.assumingMemoryBound(to: Float.self))
                                    vp = UnsafePointer(vStored.baseAddress!.assumingMemoryBound(to: Float.self))
                                }
                                let (op, fp, lp) = (ob.baseAddress!, fb.baseAddress!, lb.baseAddress)
                                let call = { stats = try kernel.run(problem, q: qp, k: kp, v: vp, o: op, lse: lp, parameters: params) }
                                let callFlash = { _ = try flash?.run(problem, q: qp, k: kp, v: vp, o: fp, lse: lp, parameters: flashParams) }
                                let up = ub.baseAddress!
                                let callPlain = { if masked { _ = try kernel.run(plain, q: qp, k: kp, v: vp, o: up, lse: lp, parameters: params) } }
                                func timed(_ f: () throws -> Void) rethrows -> Double {
                                    let t0 = attune_bench_now()
                                    try f()
                                    return attune_bench_now() - t0
                                }
                                for _ in 0..<warmup {
                                    try call()
                                    try callFlash()
                                    try callPlain()
                                }
                                let start = attune_bench_now()
                                while times.count < repeats || (attune_bench_now() - start < minSeconds && times.count < 10_000) {
                                    if masked {
                                        // The unmasked run before or after, swapped every pair.
                                        let first = times.count % 2 == 0
                                        let u0 = first ? 0 : try timed(callPlain)
                                        let a = try timed(call)
                                        let u = first ? try timed(callPlain) : u0
                                        plainTimes.append(u)
                                        plainRatios.append(u / a)
                                        if flash == nil {
                                            times.append(a)
                                            continue
                                        }
                                        let f = try timed(callFlash)
                                        times.append(a)
                                        flashTimes.append(f)
                                        ratios.append(f / a)
                                        continue
                                    }
                                    guard flash != nil else {
                                        times.append(try timed(call))
                                        continue
                                    }
                                    let (a, f): (Double, Double)
                                    if times.count % 2 == 0 {
                                        a = try timed(call)
                                        f = try timed(callFlash)
                                    } else {
                                        f = try timed(callFlash)
                                        a = try timed(call)
                                    }
                                    times.append(a)
                                    flashTimes.append(f)
                                    ratios.append(f / a)
                                }
                            }
                          }
                        }
                    }
                }
            }
        }
        times.sort()
        let median = Self.median(times)
        var versus: VersusFlash?
        if flash != nil {
            let m = ErrorMetrics.compare(o.map(Double.init), oFlash.map(Double.init))
            versus = VersusFlash(flash_ms_median: Self.median(flashTimes) * 1e3, speedup_paired: Self.median(ratios),
                                 pairs: ratios.count, rel_l1: m.relL1, cosine: m.cosine, max_abs: m.maxAbs)
        }
        let versusPlain = masked ? VersusUnmasked(unmasked_ms_median: Self.median(plainTimes) * 1e3,
                                                  speedup_paired: Self.median(plainRatios), pairs: plainRatios.count,
                                                  skipped_fraction: stats["skipped_fraction"] ?? 0) : nil
        let pairs = Double(problem.visiblePairs) * Double(problem.batch * problem.qHeads)
        let flops = pairs * 2 * Double(problem.qkDim + problem.vDim)
        let kvBytes = Double(problem.kvBytes)
        let sgemm = attune_bench_sgemm_gflops(Int32(sgemmN), Int32(threads), 3)
        let read = attune_bench_read_gbps(readBytes, Int32(threads), 5)
        let gflops = flops / median * 1e-9
        let gbps = kvBytes / median * 1e-9
        let usedThreads = threads > 0 ? threads : Int(attune_kernels_max_threads())
        var shown = parameters
        if let flash = kernel as? FlashKernel { shown = flash.resolvedParameters(problem, params) }
        return AttentionBenchResult(
            kernel: kernel.name, problem: problem.description, parameters: shown, threads: usedThreads,
            repeats: times.count, ms_median: median * 1e3, ms_min: times.first! * 1e3, ms_max: times.last! * 1e3,
            gflops: gflops, kv_gbps: gbps, sgemm_gflops: sgemm, sgemm_n: sgemmN, read_gbps: read,
            ratio_to_sgemm: gflops / sgemm, ratio_to_read: gbps / read, kernel_stats: stats,
            inputs: inputs.rawValue, versus_flash: versus, versus_unmasked: versusPlain)
    }

    /// `bytes` in a 64-byte aligned buffer the caller deallocates (at least one byte).
    static func aligned(_ bytes: [UInt8]) -> UnsafeMutableRawBufferPointer {
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: max(bytes.count, 1), alignment: 64)
        buffer.copyBytes(from: bytes)
        return buffer
    }

    static func median(_ xs: [Double]) -> Double {
        let s = xs.sorted()
        return s.count % 2 == 1 ? s[s.count / 2] : (s[s.count / 2 - 1] + s[s.count / 2]) / 2
    }
}

/// Inputs for timing only: uniform in [-1, 1), cheap to draw, same every run.
struct BenchRandom {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func array(count: Int) -> [Float] {
        (0..<count).map { _ in
            state = state &* 6364136223846793005 &+ 1442695040888963407
            return Float(Int32(truncatingIfNeeded: state >> 32)) / Float(Int32.max)
        }
    }
}
