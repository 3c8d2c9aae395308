import ArgumentParser
import AttuneCodegen
import AttuneKernels
import AttunePasses
import AttuneRuntime
import AttuneTune
import Foundation

/// Options `compile`, `run` and `inspect` share.
struct CompileOptionsGroup: ParsableArguments {
    @Option(name: .customLong("attention"), help: "Kernel for every attention node: NAME[:k=v,...], e.g. flash:block_kv=128.")
    var attention: String?
    @Option(name: .customLong("layer-attention"), help: "Kernel for one layer: LAYER=NAME[:k=v,...] (repeatable).")
    var layerAttention: [String] = []
    @Option(help: "Kernel for decode steps (one query row) of every attention node, when it should differ from the prefill one: NAME[:k=v,...], e.g. flash.")
    var decodeAttention: String?
    @Option(help: "Decode kernel for one layer: LAYER=NAME[:k=v,...] (repeatable).")
    var layerDecodeAttention: [String] = []
    @Option(help: "JSON policy file: {\"default\": \"flash\", \"layers\": {\"3\": \"flash:kv_splits=4\"}, \"decode\": {\"default\": \"flash\"}}.")
    var attentionPolicy: String?
    @Option(help: "Calibration file from `attune calibrate` (this model's only): unified_max uses its phi per head.")
    var calibration: String?
    @Option(help: "Tuning database to take rule-chosen kernels' parameters from (default: $ATTUNE_TUNING_DB or ~/.cache/attune/tuning.sqlite, if it exists).")
    var tuningDb: String?
    @Flag(help: "Ignore the tuning database.") var noTuning = false
    @Option(help: "Largest number of tokens per forward pass (default 512; longer prompts run in chunks).") var maxChunk: Int?
    @Option(help: "KV-cache capacity in positions (default: the model's max_position_embeddings, capped so the cache fits in available memory).") var maxContext: Int?
    @Flag(help: "Load weights that hold NaN or Inf instead of refusing them.") var allowNonfinite = false
    @Option(help: "KV-cache format: f32, bf16 or int8 (one scale per position and kv head); read by flash, unified_max, prefix_shared, kascade and hybrid's hot tier (Docs/NUMERICS.md gives the error bounds); default f32, or the policy file's \"kv\".")
    var kv: String?
    @Option(help: "KV-cache format of one layer: LAYER=FORMAT (repeatable), e.g. 0=f32 with --kv int8; replaces the policy file's \"kv_layers\" (as --kv does).")
    var layerKv: [String] = []
    @Option(help: "Matmul weights: auto (as stored: bf16 stays bf16, f32 and f16 run in f32), f32, bf16 (f32/f16 rounded at compile), int8 or q4 (4-bit), each [:group=N,scale=f16|f32] (quantised at compile into the cache; group 32 by default); default auto, or the policy file's \"weights\".")
    var weights: String?
    @Option(help: ArgumentHelp("Matmul weights whose checkpoint name contains PATTERN take FORMAT (any --weights value) instead of --weights; repeatable, the first match wins (e.g. --weights q4 --weights-for embed_tokens=int8); replaces the policy file's \"weights_for\" (as --weights does).", valueName: "PATTERN=FORMAT"))
    var weightsFor: [String] = []

    func options() throws -> CompileOptions {
        var overrides = KernelOverrides()
        var policy = AttentionPolicy.Contents()
        if let attentionPolicy {
            policy = try AttentionPolicy.contents(attentionPolicy)
            overrides = policy.kernels
            if let evidence = AttentionPolicy.evidenceSummary(attentionPolicy) { printNote("\(attentionPolicy): \(evidence)") }
        }
        if let attention { overrides.global = try KernelChoice(parsing: attention) }
        if let decodeAttention { overrides.decodeGlobal = try KernelChoice(parsing: decodeAttention) }
        for (items, option) in [(layerAttention, "--layer-attention"), (layerDecodeAttention, "--layer-decode-attention")] {
            for item in items {
                let parts = item.split(separator: "=", maxSplits: 1).map(String.init)
                guard parts.count == 2, let layer = Int(parts[0]), layer >= 0 else {
                    throw CLIError("\(option) expects LAYER=NAME[:k=v,...], got '\(item)'")
                }
                let choice = try KernelChoice(parsing: parts[1])
                if option == "--layer-attention" { overrides.byLayer[layer] = choice } else { overrides.decodeByLayer[layer] = choice }
            }
        }
        var options = CompileOptions(kernels: overrides, maxChunk: maxChunk, maxContext: maxContext,
                                     calibration: try calibration.map { (try Calibration.load($0), $0) })
        options.allowNonfinite = allowNonfinite
        // A flag wins over the policy file's format.
        options.kvFormat = policy.kv ?? .f32
        if kv == nil && layerKv.isEmpty { options.kvFormatByLayer = policy.kvByLayer }
        for item in layerKv {
            let parts = item.split(separator: "=", maxSplits: 1).map(String.init)
            guard parts.count == 2, let layer = Int(parts[0]), layer >= 0 else { throw CLIError("--layer-kv expects LAYER=FORMAT, got '\(item)'") }
            do { options.kvFormatByLayer[layer] = try KVFormat(parsing: parts[1]) } catch let error as KernelError { throw CLIError("--layer-kv \(item): " + error.message) }
        }
        options.weights = policy.weights ?? .auto
        // The file's per-weight rules were chosen on top of its "weights": either flag replaces them.
        if weights == nil && weightsFor.isEmpty { options.weightOverrides = policy.weightRules }
        if let kv {
            do { options.kvFormat = try KVFormat(parsing: kv) } catch let error as KernelError { throw CLIError("--kv: " + error.message) }
        }
        if let weights {
            do { options.weights = try WeightPolicy(parsing: weights) } catch let error as CodegenError { throw CLIError(error.message) }
        }
        if !weightsFor.isEmpty {
            do { options.weightOverrides = try weightsFor.map(WeightOverride.init(parsing:)) } catch let error as CodegenError { throw CLIError(error.message) }
        }
        if !noTuning {
            let path = tuningDb ?? TuningDatabase.defaultPath
            if tuningDb != nil || FileManager.default.fileExists(atPath: path) {
                options.tuning = try DatabaseTuning(try TuningDatabase(path: path))
            }
        }
        return options
    }
}
