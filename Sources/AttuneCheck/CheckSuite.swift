import AttuneCodegen
import AttuneKernels
import AttunePasses
import AttuneRuntime
import AttuneTensor
import Foundation

/// One checked case: its metrics (all "lower is better") and what the report draws.
public struct CheckCase: Sendable {
    public enum Kind: String, Sendable, Codable { case kernel, model, determinism, inputs }
    public var id: String
    public var kind: Kind
    public var exact: Bool
    public var metrics: [String: Double]
    /// Largest error of each query row (kernel cases), for "where in the sequence".
    public var rowError: [Double] = []
    /// Kept/selected key mask of a sparse kernel (rows × columns of 0/1), if it has one.
    public var mask: [[Bool]] = []
    public var note: String = ""
    /// What the kernel promises on this case (kernel cases): `metrics["contract_ratio"]` is
    /// its measured / bound; a case outside the kernel's scope has no ratio and says why.
    public var contract: ContractVerdict? = nil
    /// The fp32 eager reference's own errors on the problem (kernel cases): what fp32 reaches.
    public var eager: [String: Double] = [:]

    public init(id: String, kind: Kind, exact: Bool, metrics: [String: Double], rowError: [Double] = [], mask: [[Bool]] = [], note: String = "",
                contract: ContractVerdict? = nil, eager: [String: Double] = [:]) {
        self.id = id; self.kind = kind; self.exact = exact; self.metrics = metrics
        self.rowError = rowError; self.mask = mask; self.note = note
        self.contract = contract; self.eager = eager
    }
}

/// The built-in suite of `attune check`: every kernel on every edge-case problem it
/// accepts, every bundled model compiled with each exact kernel (and the approximate ones
/// at their defaults on the deep fixture) against the float64 goldens, and determinism.
public struct CheckSuite {
    public var fixtures: URL
    /// `ATTUNE_CHECK_BREAK_KERNEL`: the named kernel's output is perturbed (tests only).
    public var brokenKernel: BreakSwitch?
    public var progress: (_ done: Int, _ total: Int, _ current: String) -> Void = { _, _, _ in }
    /// `--kernel`: the kernel and determinism cases of these kernels only (nil: every kernel).
    public var kernelNames: Set<String>?

    public init(fixtures: URL, brokenKernel: BreakSwitch? = BreakSwitch(ProcessInfo.processInfo.environment["ATTUNE_CHECK_BREAK_KERNEL"])) {
        self.fixtures = fixtures
        self.brokenKernel = brokenKernel
    }

    public enum Part: String, CaseIterable, Sendable { case kernels, models, determinism }

    /// Whether a baseline case belongs to what `run(parts)` runs, so one that did not run is
    /// missing (a regression) only then.
    public func covers(_ id: String, _ parts: Set<Part>) -> Bool {
        let fields = id.split(separator: "/").map(String.init)
        guard let part = fields.first.flatMap({ $0 == "kernel" ? Part.kernels : $0 == "model" ? .models : Part(rawValue: $0) }),
              parts.contains(part) else { return false }
        guard let names = kernelNames, part != .models, fields.count > 1 else { return true }
        return names.contains(String(fields[1].prefix { $0 != ":" }))
    }

    public func run(_ parts: Set<Part> = Set(Part.allCases)) throws -> [CheckCase] {
        var cases: [CheckCase] = []
        var jobs: [(String, () throws -> [CheckCase])] = []
        let kernels = KernelRegistry.all.filter { kernelNames?.contains($0.name) ?? true }
        if parts.contains(.kernels) {
            for kernel in kernels {
                for variant in [[:]] + KernelCheck.variants(kernel) {
                    let label = KernelCheck.label(kernel, variant)
                    for c in KernelProblem.suite where KernelCheck.supports(kernel, c.problem) {
                        jobs.append(("kernel \(label) \(c.name)", { [self] in
                            let r = try KernelCheck.run(kernel, c, variant: variant, breakSwitch: brokenKernel)
                            var out = CheckCase(id: "kernel/\(label)/\(c.name)", kind: .kernel, exact: kernel.isExact(with: variant),
                                                metrics: r.metrics, rowError: r.rowError, contract: r.contract, eager: r.eager)
                            if variant.isEmpty { out.mask = kernel.keptKeys(c.problem, inputs: c.inputs) ?? [] }
                            return [out]
                        }))
                    }
                }
                // Which problems it accepts: KernelScope's table.
                for row in KernelScope.table {
                    jobs.append(("kernel \(kernel.name) scope \(row.name)", {
                        let mismatch = KernelScope.mismatch(kernel, row)
                        return [CheckCase(id: "kernel/\(kernel.name)/scope/\(row.name)", kind: .kernel, exact: kernel.isExact,
                                          metrics: ["scope_mismatch": mismatch == nil ? 0 : 1], note: mismatch ?? "")]
                    }))
                }
            }
        }
        if parts.contains(.models) {
            for (model, kernels) in Self.modelKernels {
                for kernel in kernels {
                    jobs.append(("model \(model) \(kernel)", { [self] in [try ModelCheck.run(fixtures.appendingPathComponent(model), model: model, kernel: kernel)] }))
                }
            }
            jobs.append(("model example", { [self] in try ExampleModelCheck.run(fixtures.appendingPathComponent("example")) }))
            for (model, format) in Self.modelFormats {
                jobs.append(("model \(model) \(format.label)", { [self] in
                    [try ModelCheck.run(fixtures.appendingPathComponent(model), model: model, kernel: format.kernel, format: format)]
                }))
            }
        }
        if parts.contains(.determinism) {
            for kernel in kernels where !kernel.isComposition {
                for c in KernelProblem.suite.prefix(3) where kernel.unsupportedReasons(c.problem).isEmpty {
                    jobs.append(("determinism \(kernel.name) \(c.name)", { [Determinism.check(kernel, c)].compactMap { $0 } }))
                }
            }
        }
        for (i, job) in jobs.enumerated() {
            progress(i, jobs.count, job.0)
            cases += try job.1()
        }
        progress(jobs.count, jobs.count, "done")
        return cases
    }

    /// Bundled models and the kernels each is compiled with: every exact kernel a compiled
    /// graph can bind (sigmoid attention only with `sigmoid`), and on the 8-layer fixture
    /// the approximate ones at their defaults; flash's bf16 tiles on three of them, its int8
    /// Q·Kᵀ tiles on two.
    static let modelKernels: [(String, [String])] = [
        ("llama", ["flash", "unified_max", "flash:precision=bf16", "flash:precision=int8qk"]), ("qwen2", ["flash", "unified_max"]), ("mistral", ["flash", "unified_max"]),
        ("qwen3", ["flash", "unified_max"]), ("phi3", ["flash", "unified_max"]),
        // Soft-capped attention binds only to flash.
        ("gemma2", ["flash", "flash:precision=bf16"]),
        ("llama_sigmoid", ["sigmoid"]), ("llama_deep", ["flash", "unified_max", "sparge", "kascade", "hybrid", "flash:precision=bf16",
                                                    "flash:precision=int8qk"]),
    ]
}

/// A storage format a compiled model can use (`--kv`, `--weights`), and the bound on its
/// logit error as a fraction of the largest |logit| (Docs/NUMERICS.md): bf16 weights on
/// the GEMM path 6·2⁻⁸ (derived); int8 weights 32/254 (NUMERICS.md, "int8 weights in
/// compiled models"); q4 weights 16/254 + 16/14 (int8's weight share scaled by the 254/14
/// larger step, NUMERICS.md "4-bit weights"); the KV formats 2 % and 5 %, about 1.7× the worst measured on the fixtures
/// (KVCacheFormatModelTests).
public struct ModelFormat: Sendable {
    public var label: String
    /// The attention binding compiled with it.
    public var kernel = KernelRegistry.exactDefault.name
    public var kv: KVFormat = .f32
    public var weights: WeightPolicy = .f32
    public var relativeBound: Double
}

extension CheckSuite {
    /// Every fixture with a KV cache format and, on the f32 fixtures (whose matmuls are
    /// otherwise f32), bf16 weights: checked against the float64 goldens with the format's bound.
    /// gemma2 has the KV formats only: its logits are soft-capped at 3, which shrinks their
    /// largest magnitude (the bound's scale) but not the error of logits near 0, where tanh
    /// is the identity, so the weights' derived bounds do not apply (bf16: measured 1.58 of it).
    static let modelFormats: [(String, ModelFormat)] = ["llama", "qwen2", "mistral", "qwen3", "phi3", "gemma2"].flatMap { model in
        [(model, ModelFormat(label: "kv=bf16", kv: .bf16, relativeBound: 0.02)),
         (model, ModelFormat(label: "kv=int8", kv: .int8, relativeBound: 0.05))]
            + (model == "gemma2" ? [] : [(model, ModelFormat(label: "weights=bf16", weights: .bf16, relativeBound: 6.0 / 256)),
                                         (model, ModelFormat(label: "weights=int8", weights: .quantized(QuantizedLayout(bits: 8)), relativeBound: 32.0 / 254)),
                                         (model, ModelFormat(label: "weights=q4", weights: .quantized(QuantizedLayout(bits: 4)), relativeBound: 16.0 / 254 + 16.0 / 14))])
    } + [KVFormat.bf16, .int8].map { kv in
        // hybrid's hot tier in the KV format; its exact configuration (f32 cold tier, every
        // block), so the KV format's bound applies as to flash.
        ("llama", ModelFormat(label: "kv=\(kv.rawValue)", kernel: "hybrid:window=4,block=16,cold_dtype=0,cold_budget=1", kv: kv,
                              relativeBound: kv == .bf16 ? 0.02 : 0.05))
    }
}

/// A compiled fixture against its float64 golden logits.
enum ModelCheck {
    static func run(_ folder: URL, model: String, kernel: String, format: ModelFormat? = nil) throws -> CheckCase {
        let loaded = try ModelSource.load(folder.path)
        let golden = try JSONSerialization.jsonObject(with: Data(contentsOf: folder.appendingPathComponent("golden.json"))) as? [String: Any]
        guard let sequence = (golden?["sequences"] as? [[String: Any]])?.first, let ids = sequence["input_ids"] as? [Int],
              let file = sequence["logits_f64"] as? String else {
            throw RuntimeError("\(folder.path)/golden.json: no sequence with input_ids and logits_f64")
        }
        let reference = try Npy.read(contentsOf: folder.appendingPathComponent(file))
        var options = CompileOptions(kernels: KernelOverrides(global: try KernelChoice(parsing: kernel)), maxChunk: 8, maxContext: 128)
        // The attention kernels' cases: matmuls in f32, whatever the fixture stores, so the
        // tolerances measure the kernel (bf16 weights have their own bound, NUMERICS.md).
        options.weights = format?.weights ?? .f32
        options.kvFormat = format?.kv ?? .f32
        let session = try CompiledModel(artifacts: try ModelCompiler.compile(loaded, options, toolchain: try Toolchain.detect()))
        let logits = try session.prefill(ids.map(Int32.init))
        // The golden is float64; read back as float32 it keeps 24 bits, far below the errors here.
        let c = LogitComparison(baseline: reference.data, candidate: logits, vocab: session.vocab)
        let nmse = AccuracyRules.nmse(logits, reference.data.map(Double.init))
        if let format {
            // The format's own bound, relative to the logits' scale: at most 1 whatever the baseline says.
            let scale = Double(reference.data.map(abs).max() ?? 1)
            return CheckCase(id: "model/\(model)/\(kernel)+\(format.label)", kind: .model, exact: false,
                             metrics: ["max_logit_error": c.maxAbs, "kl_mean": c.meanKL, "top1_miss": 1 - c.top1Agreement,
                                       "format_bound_ratio": c.maxAbs / (format.relativeBound * scale), "nmse": nmse])
        }
        let choice = try KernelChoice(parsing: kernel)
        let exact = (try? KernelRegistry.kernel(named: choice.kernel))?.isExact(with: choice.parameters) ?? false
        return CheckCase(id: "model/\(model)/\(kernel)", kind: .model, exact: exact,
                         metrics: ["max_logit_error": c.maxAbs, "kl_mean": c.meanKL, "top1_miss": 1 - c.top1Agreement, "nmse": nmse])
    }
}

/// Two runs give the same bits; 1 and 2 threads give the same bits (every kernel splits
/// work by the shape, not the thread count — Docs/NUMERICS.md).
enum Determinism {
    static func check(_ kernel: any AttentionKernel, _ c: KernelProblem) -> CheckCase? {
        let x = c.inputs()
        var params = KernelCheck.parameters(kernel, c.problem)
        guard kernel.parameters.contains(where: { $0.name == "threads" }) else { return nil }
        do {
            params["threads"] = 2
            let a = try kernel.run(c.problem, q: x.q, k: x.k, v: x.v, parameters: params).o.data
            let b = try kernel.run(c.problem, q: x.q, k: x.k, v: x.v, parameters: params).o.data
            params["threads"] = 1
            let one = try kernel.run(c.problem, q: x.q, k: x.k, v: x.v, parameters: params).o.data
            func diff(_ u: [Float], _ v: [Float]) -> Double {
                zip(u, v).reduce(0.0) { r, p in (p.0.bitPattern == p.1.bitPattern) ? r : max(r, abs(Double(p.0) - Double(p.1)).isNaN ? 1 : max(abs(Double(p.0) - Double(p.1)), 1e-30)) }
            }
            return CheckCase(id: "determinism/\(kernel.name)/\(c.name)", kind: .determinism, exact: true,
                             metrics: ["rerun_diff": diff(a, b), "threads_diff": diff(a, one)])
        } catch {
            return CheckCase(id: "determinism/\(kernel.name)/\(c.name)", kind: .determinism, exact: true,
                             metrics: ["rerun_diff": 1, "threads_diff": 1], note: "\(error)")
        }
    }
}
