import AttuneKernels
import AttuneCodegen
import AttuneIR
import AttunePasses
import AttuneTensor
import Foundation

public struct CompileOptions: Sendable {
    /// `--attention NAME[:k=v,...]` and per-layer choices.
    public var kernels: KernelOverrides
    /// Largest forward chunk; nil = 512.
    public var maxChunk: Int?
    /// KV-cache capacity; nil = the model's max_position_embeddings, capped by available memory.
    public var maxContext: Int?
    /// `--calibration FILE`: checked against the model, then its phi goes to `unified_max`.
    public var calibration: (file: Calibration, path: String)?
    /// Tuned parameters for rule-chosen kernels (`attune tune`'s database).
    public var tuning: (any TunedKernelSource)?
    /// Load weights holding NaN or Inf instead of refusing them (`--allow-nonfinite`).
    public var allowNonfinite = false
    /// How the KV cache stores K and V (`--kv f32|bf16|int8`).
    public var kvFormat: KVFormat = .f32
    /// Layers storing K and V in another format (`--layer-kv LAYER=FORMAT`).
    public var kvFormatByLayer: [Int: KVFormat] = [:]
    /// Format of the matmul weights (`--weights`): as stored by default.
    public var weights: WeightPolicy = .auto
    /// Per-weight exceptions (`--weights-for PATTERN=FORMAT`), the first match wins.
    public var weightOverrides: [WeightOverride] = []
    /// The caller will run packed documents (`attune run --document-lengths`): a model that
    /// cannot (`EmittedModule.packedRefusal`) is refused after code generation, before the build.
    public var packedDocuments = false

    public init(kernels: KernelOverrides = KernelOverrides(), maxChunk: Int? = nil, maxContext: Int? = nil,
                calibration: (file: Calibration, path: String)? = nil) {
        self.kernels = kernels
        self.maxChunk = maxChunk
        self.maxContext = maxContext
        self.calibration = calibration
    }
}

/// Everything one compilation produced.
public struct CompiledArtifacts {
    public var report: PipelineReport
    public var module: EmittedModule
    public var library: URL
    /// The weights manifest the library opens (`WeightsManifest`).
    public var manifest: URL
    /// The shared library came from the build cache.
    public var cached: Bool
    /// What the user should know about the compile (e.g. a capped KV cache), one line each.
    public var notes: [String]
    public var seconds: Double
}

/// Import → passes → C → shared library, the steps `attune compile` and `attune run` share.
public enum ModelCompiler {
    public static func lower(_ model: LoadedModel, _ options: CompileOptions) throws -> PipelineReport {
        try lower(model, options, codegen: try codegenOptions(model, options))
    }

    /// `codegen`: the chunk and context `contextPlan` chose (computed once per compile: it
    /// reads the machine's available memory).
    static func lower(_ model: LoadedModel, _ options: CompileOptions, codegen: CodegenOptions) throws -> PipelineReport {
        var kernels = options.kernels
        // A choice for a layer the model does not have would be silently unused.
        let layers = Set(model.graph.nodes.compactMap { node -> Int? in
            if case .kvAppend(let layer, _) = node.op { return layer }
            return nil
        })
        for (chosen, option) in [(Array(kernels.byLayer.keys), "--layer-attention"), (Array(kernels.decodeByLayer.keys), "--layer-decode-attention"),
                                 (Array(options.kvFormatByLayer.keys), "--layer-kv")] {
            if let missing = chosen.sorted().first(where: { !layers.contains($0) }) {
                let have = layers.isEmpty ? "no attention layers" : "layers \(layers.min()!)...\(layers.max()!)"
                throw RuntimeError("a per-layer choice (\(option) or a policy file) names layer \(missing), but the model has \(have)")
            }
        }
        kernels.kvFormat = options.kvFormat
        kernels.kvFormatByLayer = options.kvFormatByLayer
        if let (file, path) = options.calibration {
            try file.check(against: model, path: path)
            kernels.calibratedPhi = file.phiByLayer
            if let k = file.kascade {
                kernels.kascadeAnchors = k.anchors
                kernels.kascadeHeadMaps = k.headMapsByLayer
            }
        }
        kernels.selectionContext = codegen.maxContext
        let tuning = options.tuning.map { (source: $0, rows: codegen.maxChunk, context: codegen.maxContext) }
        return try Pipeline.standard(kernels: kernels, tuning: tuning).run(model.graph)
    }

    public static func codegenOptions(_ model: LoadedModel, _ options: CompileOptions) throws -> CodegenOptions {
        try contextPlan(model, options).options
    }

    /// The codegen options of a planned chunk and context; a `--weights-for` pattern that
    /// names no weight of the model is a typo, refused before any work.
    static func codegen(_ model: LoadedModel, _ options: CompileOptions, chunk: Int, context: Int) throws -> CodegenOptions {
        let names = model.graph.weights.map(\.name)
        for o in options.weightOverrides where !names.contains(where: { $0.contains(o.pattern) }) {
            let example = names.first { $0.contains("proj") } ?? names.first ?? "none"
            throw RuntimeError("--weights-for \(o.pattern)=\(o.policy.description): no weight of this model has '\(o.pattern)' in its name (names look like '\(example)')")
        }
        var codegen = CodegenOptions(maxChunk: chunk, maxContext: context, kvFormat: options.kvFormat, weights: options.weights)
        codegen.weightOverrides = options.weightOverrides
        codegen.kvFormatByLayer = options.kvFormatByLayer
        return codegen
    }

    /// The chunk and KV-cache capacity, and what the user should know about the capacity:
    /// by default the model's `max_position_embeddings`, capped so the KV cache (in the `--kv` format,
    /// allocated lazily: pages count only once written) plus the weights fit in the memory
    /// available now.
    public static func contextPlan(_ model: LoadedModel, _ options: CompileOptions,
                                   availableBytes: Int? = SystemMemory.availableBytes) throws -> (options: CodegenOptions, notes: [String]) {
        // 512 rows keep sgemm near its peak; 256 measured ~10% slower prefill (Docs/PERFORMANCE.md).
        let chunk = options.maxChunk ?? 512
        guard chunk >= 1 else { throw RuntimeError("--max-chunk must be >= 1, got \(chunk)") }
        let trained = model.config?.maxPositionEmbeddings
        var notes: [String] = []
        if let asked = options.maxContext {
            guard asked >= 1 else { throw RuntimeError("--max-context must be >= 1, got \(asked)") }
            let (bytes, overflow) = kvBytesPerPosition(model.graph, options.kvFormat, byLayer: options.kvFormatByLayer).multipliedReportingOverflow(by: asked)
            try SystemMemory.require(overflow ? nil : bytes, for: "--max-context \(asked) (the \(options.kvFormat.rawValue) KV cache)")
            if let trained, asked > trained {
                notes.append("--max-context \(asked) is beyond the model's max_position_embeddings \(trained): positions past it were not trained")
            }
            return (try codegen(model, options, chunk: chunk, context: asked), notes)
        }
        var context = trained ?? 4096
        let perPosition = kvBytesPerPosition(model.graph, options.kvFormat, byLayer: options.kvFormatByLayer)
        // Weights counted as f32 (the most a slot can take in memory): an upper bound.
        let weights = model.graph.weights.reduce(0) { $0 + 4 * $1.type.shape.reduce(1) { $0 * ($1.fixedValue ?? 1) } }
        if let available = availableBytes, weights > available {
            // Mapped weights still run (pages come from disk as they are read), as with
            // llama.cpp's mmap, so this is said, not refused.
            notes.append("the weights take up to \(gib(weights)) and \(gib(available)) of memory is available: expect pages to be read from disk on every token")
        }
        if let available = availableBytes, perPosition > 0 {
            let fits = max(0, (available - weights) * 9 / 10) / perPosition
            if fits < context {
                let capped = max(256, fits / 256 * 256)
                notes.append("KV cache capped at \(capped) positions: the model's \(context) need \(gib(context * perPosition)) and \(gib(available)) of memory is available (use --max-context to choose)")
                context = capped
            }
        }
        return (try codegen(model, options, chunk: chunk, context: context), notes)
    }

    /// Bytes of K and V one position adds over all layers, stored as `format` (`byLayer` for
    /// the layers it names): its elements,
    /// and for int8 one fp32 scale per kv head (the heads of the attention reading the cache).
    public static func kvBytesPerPosition(_ graph: Graph, _ format: KVFormat = .f32, byLayer: [Int: KVFormat] = [:]) -> Int {
        graph.nodes.indices.reduce(0) { total, i in
            let node = graph.nodes[i]
            guard case .kvAppend(let layer, _) = node.op, let width = graph.type(of: node.inputs[0]).shape.last?.fixedValue else { return total }
            let format = byLayer[layer] ?? format
            var scales = 0
            if format == .int8 {
                let heads = graph.nodes.lazy.compactMap { n -> Int? in
                    guard case .attention(let a) = n.op, n.inputs[1].node == i || n.inputs[2].node == i else { return nil }
                    return a.kvHeads
                }.first
                scales = 4 * (heads ?? 1)
            }
            return total + format.elementBytes * width + scales
        }
    }

    static func gib(_ bytes: Int) -> String { String(format: "%.1f GiB", Double(bytes) / Double(1 << 30)) }

    public static func emit(_ model: LoadedModel, _ options: CompileOptions) throws -> (PipelineReport, EmittedModule) {
        try emit(model, options, codegen: try codegenOptions(model, options))
    }

    static func emit(_ model: LoadedModel, _ options: CompileOptions, codegen: CodegenOptions) throws -> (PipelineReport, EmittedModule) {
        let report = try lower(model, options, codegen: codegen)
        // An attention left without a kernel cannot be compiled: say why selection refused it.
        if let refusal = report.stats(of: "select-kernels")?.refusedAt.first {
            throw RuntimeError("node %\(refusal.node)\(refusal.label.map { " (\($0))" } ?? ""): no attention kernel: \(refusal.reason)")
        }
        let module = try CEmitter.emit(report.output, weights: model.weights, options: codegen)
        return (report, module)
    }

    public static func compile(_ model: LoadedModel, _ options: CompileOptions, toolchain: Toolchain) throws -> CompiledArtifacts {
        let start = Date()
        let plan = try contextPlan(model, options)
        let (report, module) = try emit(model, options, codegen: plan.options)
        if options.packedDocuments, let refusal = module.packedRefusal {
            throw RuntimeError("this model cannot run packed documents: \(refusal)")
        }
        let built = try toolchain.build(module)
        let manifest = try WeightsManifest.cached(module, cacheDirectory: toolchain.cacheDirectory, allowNonfinite: options.allowNonfinite)
        return CompiledArtifacts(report: report, module: module, library: built.library, manifest: manifest,
                                 cached: built.cached, notes: plan.notes, seconds: Date().timeIntervalSince(start))
    }
}
