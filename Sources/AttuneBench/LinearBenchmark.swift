import AttuneTensor
import CAttuneKernels
import Foundation

/// What `attune bench linear` measures for one shape. Field names are the JSON keys.
public struct LinearBenchResult: Codable, Sendable {
    public var weights: String
    public var rows: Int
    public var width: Int
    public var out: Int
    public var group: Int
    public var threads: Int
    /// Bytes one call reads from the stored weights (quants + scales).
    public var weight_bytes: Int
    public var ms_median: Double
    public var gbps: Double
    public var gflops: Double
    /// Same shape through `attune_op_linear` on f32 weights (what compiled models run today).
    public var f32_ms_median: Double
    public var speedup_vs_f32: Double
    /// Same shape through `attune_op_linear_bf16_blocks` on bf16 weights (`--weights bf16`).
    public var bf16_ms_median: Double
    public var speedup_vs_bf16: Double
    /// Streaming read of 256 MiB (median of 3 passes), same threads, between the kernel's rounds.
    public var read_gbps: Double
    /// Median over rounds of (kernel GB/s) / (that round's read GB/s).
    public var ratio_to_read: Double
    /// OpenBLAS SGEMM 2048³, same threads, same rounds (prefill shapes only, else 0).
    public var sgemm_gflops: Double
    public var ratio_to_sgemm: Double
    public var rounds: Int
}

/// One linear layer, y = x·Wᵀ, with int8 or 4-bit weights (`bits`) against the f32 and bf16 paths and the
/// machine's read bandwidth and SGEMM rate, all measured in alternating rounds of one
/// process so that load from other processes hits each alike. Weights are cycled
/// through enough copies (≥ 256 MiB) that every call reads them from memory, as a
/// decode step does.
public struct LinearBenchmark {
    public var rows: Int, width: Int, out: Int
    /// Code width: 8 (int8, Kernels/include/attune_linear_q8.h) or 4 (q4, attune_linear_q4.h).
    public var bits: Int = 8
    public var group: Int = 32
    public var scale: Int32 = Int32(ATTUNE_Q8_SCALE_F16)
    public var threads: Int = 0
    public var rounds: Int = 7
    public var coldBytes: Int = 256 << 20

    public init(rows: Int, width: Int, out: Int) {
        (self.rows, self.width, self.out) = (rows, width, out)
    }

    /// Why the shape cannot be benchmarked, or nil.
    public func validationError() -> String? {
        if rows < 1 || out < 1 { return "--rows and --out must be >= 1" }
        if bits != 8 && bits != 4 { return "the weights are 8- or 4-bit" }
        if let reason = (bits == 4 ? attune_q4_check : attune_q8_check)(Int64(width), Int64(group), scale) { return String(cString: reason) }
        return nil
    }

    public func run() throws -> LinearBenchResult {
        if let e = validationError() { throw BenchError(e) }
        let (rowBytesOf, quantize, linear) = bits == 4 ? (attune_q4_row_bytes, attune_q4_quantize_f32, attune_q4_linear)
                                                       : (attune_q8_row_bytes, attune_q8_quantize_f32, attune_q8_linear)
        let rowBytes = Int(rowBytesOf(Int64(width), Int64(group), scale))
        let qBytes = rowBytes * out, fBytes = 4 * width * out, hBytes = 2 * width * out
        let qCopies = max(1, (coldBytes + qBytes - 1) / qBytes), fCopies = max(1, (coldBytes + fBytes - 1) / fBytes)
        let hCopies = max(1, (coldBytes + hBytes - 1) / hBytes)
        try SystemMemory.require(qBytes * qCopies + fBytes * (fCopies + 1) + hBytes * hCopies + coldBytes + 8 * rows * (width + out),
                                 for: "linear \(rows)x\(width)->\(out) with its cold copies")

        var rng = BenchRandom(seed: 42)
        let w = rng.array(count: width * out).map { $0 * 0.05 }
        let x = rng.array(count: rows * width)
        var q = [UInt8](repeating: 0, count: qBytes * qCopies)
        try q.withUnsafeMutableBytes { buf in
            let bad = quantize(w, Int64(out), Int64(width), Int64(group), scale, buf.baseAddress)
            if bad != -1 { throw BenchError("cannot quantise the benchmark weights (row \(bad))") }
            for c in 1..<qCopies {
                memcpy(buf.baseAddress! + c * qBytes, buf.baseAddress!, qBytes)
            }
        }
        var f = [Float](repeating: 0, count: width * out * fCopies)
        for c in 0..<fCopies { f.replaceSubrange((c * width * out)..<((c + 1) * width * out), with: w) }
        var h = [UInt16](repeating: 0, count: width * out * hCopies)
        h.withUnsafeMutableBufferPointer { hb in
            attune_f32_to_bf16(w, Int64(width * out), hb.baseAddress)
            for c in 1..<hCopies { (hb.baseAddress! + c * width * out).update(from: hb.baseAddress!, count: width * out) }
        }
        var y = [Float](repeating: 0, count: rows * out)
        let prefill = rows > Int(ATTUNE_Q8_GEMV_MAX_ROWS)

        var qTimes: [Double] = [], fTimes: [Double] = [], hTimes: [Double] = [], reads: [Double] = [], ratios: [Double] = []
        var sgemms: [Double] = [], sgemmRatios: [Double] = []
        try q.withUnsafeBytes { qb in
            try f.withUnsafeBufferPointer { fb in
              try h.withUnsafeBufferPointer { hb in
                try y.withUnsafeMutableBufferPointer { yb in
                    func q8Pass() throws -> Double {
                        var ts: [Double] = []
                        for c in 0..<qCopies {
                            let t0 = attune_bench_now()
                            let rc = linear(x, Int64(rows), Int64(width), qb.baseAddress! + c * qBytes, Int64(out),
                                                      Int64(group), scale, nil, yb.baseAddress, Int32(threads))
                            ts.append(attune_bench_now() - t0)
                            if rc != 0 { throw BenchError("the quantised kernel could not allocate its scratch") }
                        }
                        return Self.median(ts)
                    }
                    func f32Pass() -> Double {
                        var ts: [Double] = []
                        for c in 0..<fCopies {
                            let t0 = attune_bench_now()
                            attune_op_linear(x, Int64(rows), Int64(width), fb.baseAddress! + c * width * out, Int64(out), nil, yb.baseAddress)
                            ts.append(attune_bench_now() - t0)
                        }
                        return Self.median(ts)
                    }
                    func bf16Pass() -> Double {
                        var ts: [Double] = []
                        var outRows = Int64(out)
                        for c in 0..<hCopies {
                            var block: UnsafePointer<UInt16>? = hb.baseAddress! + c * width * out
                            let t0 = attune_bench_now()
                            attune_op_linear_bf16_blocks(x, Int64(rows), Int64(width), &block, &outRows, 1, nil, yb.baseAddress)
                            ts.append(attune_bench_now() - t0)
                        }
                        return Self.median(ts)
                    }
                    _ = try q8Pass()
                    _ = f32Pass()
                    _ = bf16Pass()
                    for _ in 0..<rounds {
                        let tq = try q8Pass()
                        qTimes.append(tq)
                        fTimes.append(f32Pass())
                        hTimes.append(bf16Pass())
                        // Median of 3 passes over as many bytes as the weight copies: a 64 MiB
                        // buffer read ~1.5x faster than DRAM here (the 32 MiB L3 keeps part of
                        // a repeated stream), one long pass absorbs every stall of a busy machine.
                        let read = attune_bench_read_gbps(coldBytes, Int32(threads), 3)
                        reads.append(read)
                        ratios.append(Double(qBytes) / tq * 1e-9 / read)
                        if prefill {
                            let sgemm = attune_bench_sgemm_gflops(2048, Int32(threads), 1)
                            sgemms.append(sgemm)
                            sgemmRatios.append(2 * Double(rows * width * out) / tq * 1e-9 / sgemm)
                        }
                    }
                }
              }
            }
        }
        let tq = Self.median(qTimes), tf = Self.median(fTimes), th = Self.median(hTimes)
        return LinearBenchResult(
            weights: bits == 4 ? "q4" : "q8", rows: rows, width: width, out: out, group: group,
            threads: threads > 0 ? threads : Int(attune_kernels_max_threads()), weight_bytes: qBytes,
            ms_median: tq * 1e3, gbps: Double(qBytes) / tq * 1e-9, gflops: 2 * Double(rows * width * out) / tq * 1e-9,
            f32_ms_median: tf * 1e3, speedup_vs_f32: tf / tq, bf16_ms_median: th * 1e3, speedup_vs_bf16: th / tq, read_gbps: Self.median(reads),
            ratio_to_read: Self.median(ratios), sgemm_gflops: prefill ? Self.median(sgemms) : 0,
            ratio_to_sgemm: prefill ? Self.median(sgemmRatios) : 0, rounds: rounds)
    }

    static func median(_ xs: [Double]) -> Double {
        let s = xs.sorted()
        return s.count % 2 == 1 ? s[s.count / 2] : (s[s.count / 2 - 1] + s[s.count / 2]) / 2
    }
}

/// The matmul shapes (in → out) of the models the precision work targets.
public enum LinearShapes {
    public static let models: [String: [(name: String, width: Int, out: Int)]] = [
        "qwen2.5-0.5b": [("qkv", 896, 1152), ("o", 896, 896), ("gate_up", 896, 2 * 4864), ("down", 4864, 896),
                         ("lm_head", 896, 151_936)],
        "tinyllama-1.1b": [("qkv", 2048, 2560), ("o", 2048, 2048), ("gate_up", 2048, 2 * 5632), ("down", 5632, 2048),
                           ("lm_head", 2048, 32000)],
    ]
}

public struct BenchError: Error, CustomStringConvertible {
    public var description: String
    public init(_ d: String) { description = d }
}
