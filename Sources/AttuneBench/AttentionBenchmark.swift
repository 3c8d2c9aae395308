import AttuneKernels
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
    /// K and V bytes of the problem read once, per second.
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

    public init(kernel: any AttentionKernel, problem: AttentionProblem, parameters: KernelParameters, threads: Int) {
        self.kernel = kernel
        self.problem = problem
        self.parameters = parameters
        self.threads = threads
    }

    public func run() throws -> AttentionBenchResult {
        let reasons = kernel.unsupportedReasons(problem)
        if !reasons.isEmpty {
            throw KernelError("kernel '\(kernel.name)' cannot run \(problem): " + reasons.joined(separator: "; "))
        }
        var params = parameters
        if threads > 0 { params["threads"] = Double(threads) }
        try kernel.checkParameters(params)

        var rng = BenchRandom(seed: 42)
        let q = rng.array(count: problem.qShape.reduce(1, *))
        let k = rng.array(count: problem.kShape.reduce(1, *))
        let v = rng.array(count: problem.vShape.reduce(1, *))
        var o = [Float](repeating: 0, count: problem.oShape.reduce(1, *))
        var lse = [Float](repeating: 0, count: problem.lseShape.reduce(1, *))

        var times: [Double] = []
        var stats: KernelRunStats = [:]
        try q.withUnsafeBufferPointer { qb in
            try k.withUnsafeBufferPointer { kb in
                try v.withUnsafeBufferPointer { vb in
                    try o.withUnsafeMutableBufferPointer { ob in
                        try lse.withUnsafeMutableBufferPointer { lb in
                            let (op, lp) = (ob.baseAddress!, lb.baseAddress)
                            let call = {
                                stats = try kernel.run(problem, q: qb.baseAddress!, k: kb.baseAddress ?? qb.baseAddress!,
                                               v: vb.baseAddress ?? qb.baseAddress!, o: op, lse: lp, parameters: params)
                            }
                            for _ in 0..<warmup { try call() }
                            let start = attune_bench_now()
                            while times.count < repeats || (attune_bench_now() - start < minSeconds && times.count < 10_000) {
                                let t0 = attune_bench_now()
                                try call()
                                times.append(attune_bench_now() - t0)
                            }
                        }
                    }
                }
            }
        }
        times.sort()
        let median = times.count % 2 == 1 ? times[times.count / 2] : (times[times.count / 2 - 1] + times[times.count / 2]) / 2
        let pairs = Double(problem.visiblePairs) * Double(problem.batch * problem.qHeads)
        let flops = pairs * 2 * Double(problem.qkDim + problem.vDim)
        let kvBytes = Double(problem.batch * problem.kvHeads * problem.kvLen * (problem.qkDim + problem.vDim) * 4)
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
            ratio_to_sgemm: gflops / sgemm, ratio_to_read: gbps / read, kernel_stats: stats)
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
