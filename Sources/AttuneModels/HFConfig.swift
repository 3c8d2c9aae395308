import AttuneTensor
import Foundation

/// A Hugging Face `config.json` for one of the decoder families Attune
/// imports, decoded and checked for consistency.
///
/// Keys, defaults and per-architecture behaviour follow `transformers`; what
/// differs between the families is data, in `ArchitectureSpec.of`:
/// - `num_key_value_heads` absent or null: equal to `num_attention_heads`;
///   `head_dim` absent: the family's default (Qwen3: 128), else
///   `hidden_size / num_attention_heads`, which must then divide exactly;
///   `rope_theta` 10000; `rms_norm_eps` 1e-6 (Phi-3: 1e-5);
///   `tie_word_embeddings` false; `hidden_act` "silu" (the only one accepted);
///   `max_position_embeddings` 2048 (Llama), 131072 (Mistral), 32768 (Qwen2,
///   Qwen3), 4096 (Phi-3).
/// - Biases: Llama and Qwen3 have q/k/v/o biases iff `attention_bias`; Qwen2
///   always has q/k/v biases and no o bias; Mistral and Phi-3 have none.
///   Llama's `mlp_bias: true` is rejected.
/// - Sliding window: Mistral applies `sliding_window` (absent: 4096, null:
///   none) to every layer, Phi-3 likewise (absent: none). Qwen2 and Qwen3 apply
///   it only if `use_sliding_window`, and then to the layers `layer_types`
///   marks `"sliding_attention"`, or if that is absent to layers
///   `>= max_window_layers` (default 28). Llama has none. `layer_types`, where
///   present, must have one entry per layer, each "full_attention" (legacy
///   "attention") or "sliding_attention", as transformers' validation demands.
/// - RoPE: `rope_theta` + `rope_scaling`, or transformers v5's `rope_parameters`,
///   of type default, linear, dynamic, yarn, longrope or llama3 (`RopeScaling`).
///   `partial_rotary_factor` rotates the first `int(head_dim · factor)` channels
///   of each head in the families whose attention applies it (Phi-3); Llama,
///   Qwen2/3 and Mistral rotate whole heads, as transformers does.
/// - Gemma 2 (`ArchitectureSpec.Gemma`): `hidden_activation` "gelu_pytorch_tanh"
///   (the only one accepted; `hidden_act` is not read), `query_pre_attn_scalar` 256,
///   `attn_logit_softcapping` 50 and `final_logit_softcapping` 30 (null: none),
///   `head_dim` 256, `max_position_embeddings` 8192, `tie_word_embeddings` true,
///   sliding windows on the layers `layer_types` marks, else on even layers
///   (`sliding_window` 4096); `use_bidirectional_attention: true` is refused.
///   Other Gemma architectures are refused by name.
/// - `quantization_config` (a quantized export) is refused.
/// - Attune's own keys: `attention_normalizer` ("softmax" default, or
///   "sigmoid") and `sigmoid_bias` (a number, only with "sigmoid").
/// The size keys `vocab_size`, `hidden_size`, `intermediate_size`,
/// `num_hidden_layers` and `num_attention_heads` are required: their
/// transformers defaults describe some 7B model, never the file at hand.
/// Integer keys must be written as integers (`4096`, not `4096.0`).
/// Sizes must lie in `1 ..< 2^31` (the kernel ABI's range), layers in
/// `1 ... 10000`.
public struct HFConfig: Sendable, Equatable {
    public enum Architecture: String, CaseIterable, Sendable {
        case llama = "LlamaForCausalLM"
        case qwen2 = "Qwen2ForCausalLM"
        case mistral = "MistralForCausalLM"
        case qwen3 = "Qwen3ForCausalLM"
        case phi3 = "Phi3ForCausalLM"
        case gemma2 = "Gemma2ForCausalLM"

        /// What this family changes in the shared decoder.
        public var spec: ArchitectureSpec { .of(self) }
    }

    /// How attention turns scores into weights. Not a transformers key:
    /// Attune's own, so a checkpoint trained with sigmoid attention can say so.
    public enum AttentionNormalizer: String, Sendable {
        case softmax
        case sigmoid
    }

    /// The gated MLP's activation: `hidden_act` (Llama-shaped families) or Gemma 2's
    /// `hidden_activation`.
    public enum MLPActivation: String, Sendable {
        case silu
        /// gelu's tanh approximation (`gelu_pytorch_tanh`), Gemma's GeGLU.
        case geluTanh = "gelu_pytorch_tanh"
    }

    public let architecture: Architecture
    public let vocabSize: Int
    public let hiddenSize: Int
    public let intermediateSize: Int
    public let numHiddenLayers: Int
    public let numAttentionHeads: Int
    public let numKeyValueHeads: Int
    public let headDim: Int
    public let ropeTheta: Double
    /// The RoPE variant and its parameters; `rope.frequencies` is what the IR rotates by.
    public let rope: RopeScaling
    /// Channels of each head that RoPE rotates (`rope.rotaryDim`).
    public var rotaryDim: Int { rope.rotaryDim }
    public let rmsNormEps: Double
    public let maxPositionEmbeddings: Int
    /// If true, the checkpoint need hold only one of `model.embed_tokens.weight`
    /// and `lm_head.weight`, which then serves both; a file holding both uses
    /// each for its own layer, as transformers does (`check` resolves which).
    public let tieWordEmbeddings: Bool
    /// q_proj, k_proj and v_proj have biases.
    public let qkvBias: Bool
    /// o_proj has a bias.
    public let outputBias: Bool
    /// q and k are RMS-normalised per head before RoPE (`q_norm`, `k_norm`).
    public var qkNorm: Bool { architecture.spec.qkNorm }
    /// `torch_dtype` (or v5's `dtype`) as written; informational only, since
    /// the tensors' own dtypes are what is read.
    public let torchDtype: String?
    public let attentionNormalizer: AttentionNormalizer
    /// The sigmoid bias b in `sigmoid(q·k·scale + b)`; nil means the
    /// attention's default. Only set with `attentionNormalizer == .sigmoid`.
    public let sigmoidBias: Double?
    /// One entry per layer.
    private let slidingWindows: [Int?]
    public let activation: MLPActivation
    /// The attention's score scale: `query_pre_attn_scalar^-0.5` (Gemma 2), else `head_dim^-0.5`.
    public let attentionScale: Double
    /// Gemma 2's `attn_logit_softcapping` (scores become c·tanh(s/c)); nil = none.
    public let attnLogitSoftcap: Double?
    /// Gemma 2's `final_logit_softcapping` on the logits; nil = none.
    public let finalLogitSoftcap: Double?

    /// The sliding-window size of layer `layer` (keys at most `window - 1`
    /// positions back are visible), or nil for full attention.
    ///
    /// - Precondition: `0 <= layer < numHiddenLayers`.
    public func slidingWindow(layer: Int) -> Int? {
        slidingWindows[layer]
    }

    /// Reads `config.json` at `url` (a file, or a folder holding `config.json`).
    public init(contentsOf url: URL) throws {
        var isDirectory: ObjCBool = false
        let file = FileManager.default.fileExists(atPath: url.path, isDirectory: &isDirectory) && isDirectory.boolValue
            ? url.appendingPathComponent("config.json") : url
        let data: Data
        do {
            data = try Data(contentsOf: file)
        } catch {
            throw ModelImportError("\(file.path): cannot read: \(FileProblem.reading(file.path, error))")
        }
        try self.init(json: data, name: file.path)
    }

    /// Decodes the contents of a `config.json`; `name` only labels errors.
    ///
    /// - Throws: `ModelImportError` "<name>: <problem>" naming the key at fault.
    public init(json data: Data, name: String) throws {
        let root: JSON
        do {
            root = try JSONParser.parse(data)
        } catch {
            throw ModelImportError("\(name): not valid JSON: \(error.reason) at byte \(error.offset)")
        }
        guard case .object(let object) = root else {
            throw ModelImportError("\(name): not a JSON object (it is \(root.kind))")
        }
        do {
            try self.init(ConfigReader(object))
        } catch let problem as ConfigReader.Problem {
            throw ModelImportError("\(name): \(problem.reason)")
        }
    }

    private init(_ r: ConfigReader) throws {
        typealias Problem = ConfigReader.Problem
        let supported = Architecture.allCases.map(\.rawValue).joined(separator: ", ")
        guard let archList = r["architectures"] else {
            throw Problem("missing key 'architectures' (supported: \(supported))")
        }
        guard case .array(let archs) = archList, case .string(let first)? = archs.first else {
            throw Problem("architectures must be a non-empty array of strings (supported: \(supported))")
        }
        guard let arch = Architecture(rawValue: first) else {
            if first.hasPrefix("Gemma") {
                // Gemma 1 lacks the post-norms and soft-caps; Gemma 3 adds q/k norms, local RoPE
                // bases and image inputs: each a different decoder, not a config variant.
                throw Problem("unsupported architecture \(quoted(first)): of the Gemma family only Gemma2ForCausalLM is supported (supported: \(supported))")
            }
            throw Problem("unsupported architecture \(quoted(first)) (supported: \(supported))")
        }
        architecture = arch
        // A quantized export stores packed integer tensors and scales in place of the
        // weights; its numbers are not the ones this importer reads.
        if r.has("quantization_config") {
            throw Problem("quantization_config is set: quantized checkpoints are not supported (only F32, BF16 and F16 weights)")
        }

        vocabSize = try r.size("vocab_size")
        hiddenSize = try r.size("hidden_size")
        intermediateSize = try r.size("intermediate_size")
        numHiddenLayers = try r.size("num_hidden_layers", max: 10_000)
        numAttentionHeads = try r.size("num_attention_heads")
        numKeyValueHeads = try r.size("num_key_value_heads", default: numAttentionHeads)
        guard numAttentionHeads % numKeyValueHeads == 0 else {
            throw Problem("num_attention_heads \(numAttentionHeads) is not divisible by num_key_value_heads \(numKeyValueHeads)")
        }
        let spec = arch.spec
        if r.has("head_dim") {
            headDim = try r.size("head_dim")
        } else if let def = spec.defaultHeadDim {
            // transformers' attention reads config.head_dim as is, so null is no default.
            if r["head_dim"] != nil { throw Problem("head_dim is null; \(first) needs an integer (default \(def) when absent)") }
            headDim = def
        } else {
            guard hiddenSize % numAttentionHeads == 0 else {
                throw Problem("hidden_size \(hiddenSize) is not divisible by num_attention_heads \(numAttentionHeads), and head_dim is not given")
            }
            headDim = hiddenSize / numAttentionHeads
        }
        // The q, k and v rows together are one dimension of the merged (or Phi-3's fused)
        // projection; bounding it keeps every shape product below 2^62.
        let qkvRows = (numAttentionHeads + 2 * numKeyValueHeads).multipliedReportingOverflow(by: headDim)
        guard !qkvRows.overflow, qkvRows.partialValue <= Int(Int32.max) else {
            throw Problem("(num_attention_heads + 2·num_key_value_heads)·head_dim is \(qkvRows.overflow ? "too large" : String(qkvRows.partialValue)), expected at most \(Int32.max)")
        }
        // RoPE rotates pairs of channels.
        guard headDim % 2 == 0 else { throw Problem("head_dim \(headDim) must be even for rotary embeddings") }

        if let gemma = spec.gemma {
            // Gemma2Config.validate_architecture, though head_dim is its own key.
            guard hiddenSize % numAttentionHeads == 0 else {
                throw Problem("hidden_size \(hiddenSize) is not a multiple of num_attention_heads \(numAttentionHeads) (Gemma2Config requires it)")
            }
            // Gemma2MLP reads hidden_activation only; checkpoints also carry hidden_act, unused.
            let act = try r.string("hidden_activation") ?? MLPActivation.geluTanh.rawValue
            guard act == MLPActivation.geluTanh.rawValue else {
                throw Problem("hidden_activation \(quoted(act)) is not supported (only 'gelu_pytorch_tanh')")
            }
            activation = .geluTanh
            attentionScale = 1 / (try r.positiveDouble("query_pre_attn_scalar") ?? gemma.defaultQueryPreAttnScalar).squareRoot()
            attnLogitSoftcap = try r.softcap("attn_logit_softcapping", default: gemma.defaultAttnSoftcap)
            finalLogitSoftcap = try r.softcap("final_logit_softcapping", default: gemma.defaultFinalSoftcap)
            if try r.bool("use_bidirectional_attention") == true {
                throw Problem("use_bidirectional_attention true is not supported (only causal decoders)")
            }
        } else {
            let hiddenAct = try r.string("hidden_act") ?? "silu"
            guard hiddenAct == "silu" else {
                throw Problem("hidden_act \(quoted(hiddenAct)) is not supported (only 'silu')")
            }
            activation = .silu
            attentionScale = 1 / Double(headDim).squareRoot()
            attnLogitSoftcap = nil
            finalLogitSoftcap = nil
        }
        rmsNormEps = try r.positiveDouble("rms_norm_eps") ?? spec.defaultRMSNormEps
        maxPositionEmbeddings = try r.size("max_position_embeddings", default: spec.defaultMaxPositions)
        let topLevelOriginal = try spec.topLevelOriginalMaxPositions.map { try r.size("original_max_position_embeddings", default: $0) }
        rope = try RopeScaling(r, headDim: headDim, maxPositionEmbeddings: maxPositionEmbeddings, appliesPartialRotary: spec.partialRotary,
                               topLevelOriginal: topLevelOriginal)
        ropeTheta = rope.theta
        tieWordEmbeddings = try r.bool("tie_word_embeddings") ?? spec.defaultTiedEmbeddings
        torchDtype = try r.string("torch_dtype") ?? r.string("dtype")

        if spec.hasMLPBiasKey, try r.bool("mlp_bias") == true { throw Problem("mlp_bias true is not supported") }
        switch spec.biases {
        case .none:
            qkvBias = false
            outputBias = false
        case .qkvAlways:
            qkvBias = true
            outputBias = false
        case .attentionBiasKey:
            let bias = try r.bool("attention_bias") ?? false
            qkvBias = bias
            outputBias = bias
        }
        let layerTypes = try Self.layerTypes(r, layers: numHiddenLayers)
        switch spec.slidingWindow {
        case .none:
            slidingWindows = Array(repeating: nil, count: numHiddenLayers)
        case .everyLayer(let def):
            let window = try r.window("sliding_window", default: def)
            slidingWindows = Array(repeating: window, count: numHiddenLayers)
        case .qwen:
            slidingWindows = try Self.qwenSlidingWindows(r, layers: numHiddenLayers, layerTypes: layerTypes)
        case .alternating:
            // configuration_gemma2.py: layer_types defaults to sliding on even layers ((i + 1) % 2).
            let window = try r.window("sliding_window", default: 4096)
            let sliding = layerTypes ?? (0..<numHiddenLayers).map { $0 % 2 == 0 }
            slidingWindows = sliding.map { $0 ? window : nil }
        }

        let normalizer = try r.string("attention_normalizer") ?? "softmax"
        guard let n = AttentionNormalizer(rawValue: normalizer) else {
            throw Problem("attention_normalizer \(quoted(normalizer)) is not supported (only 'softmax' or 'sigmoid')")
        }
        if n == .sigmoid, spec.gemma != nil {
            throw Problem("attention_normalizer 'sigmoid' is not supported for \(first): its soft-capped scores are softmax attention's")
        }
        attentionNormalizer = n
        sigmoidBias = try r.finiteDouble("sigmoid_bias")
        if sigmoidBias != nil && n != .sigmoid {
            throw Problem("sigmoid_bias is set but attention_normalizer is 'softmax'; it applies only to 'sigmoid'")
        }
    }

    /// `layer_types` checked as transformers' `validate_layer_type` does (one entry per
    /// layer), limited to the attention kinds Attune computes: true = sliding.
    private static func layerTypes(_ r: ConfigReader, layers: Int) throws -> [Bool]? {
        guard let types = r["layer_types"], !types.isNull else { return nil }
        guard case .array(let list) = types else {
            throw ConfigReader.Problem("layer_types is \(types.kind), expected an array of \(layers) strings, one per layer")
        }
        guard list.count == layers else {
            throw ConfigReader.Problem("layer_types has length \(list.count); num_hidden_layers is \(layers)")
        }
        return try list.enumerated().map { i, t in
            switch t {
            case .string("sliding_attention"): return true
            case .string("full_attention"), .string("attention"): return false
            case .string(let other):
                throw ConfigReader.Problem("layer_types[\(i)] \(quoted(other)) is not supported (only 'full_attention' or 'sliding_attention')")
            default: throw ConfigReader.Problem("layer_types[\(i)] is \(t.kind), expected a string")
            }
        }
    }

    private static func qwenSlidingWindows(_ r: ConfigReader, layers: Int, layerTypes: [Bool]?) throws -> [Int?] {
        // transformers ignores sliding_window (often set to some large value)
        // unless use_sliding_window is true, so only then is it read.
        guard try r.bool("use_sliding_window") == true,
              let window = try r.window("sliding_window", default: 4096)
        else {
            return Array(repeating: nil, count: layers)
        }
        let maxWindowLayers = try r.count("max_window_layers") ?? 28
        let sliding = layerTypes ?? (0..<layers).map { $0 >= maxWindowLayers }
        return sliding.map { $0 ? window : nil }
    }
}

/// Typed access to a config object's keys, with messages that name the key.
struct ConfigReader {
    struct Problem: Error {
        let reason: String
        init(_ reason: String) { self.reason = reason }
    }

    let object: JSONObject
    init(_ object: JSONObject) { self.object = object }

    subscript(key: String) -> JSON? { object[key] }

    /// Present and not null.
    func has(_ key: String) -> Bool { object[key].map { !$0.isNull } ?? false }

    /// An integer in `1 ... max`; `default` when absent or null.
    func size(_ key: String, default def: Int? = nil, max: Int = Int(Int32.max)) throws -> Int {
        guard let v = try integer(key) else {
            if let def { return def }
            throw Problem("missing key \(quoted(key))")
        }
        guard v >= 1 && v <= max else { throw Problem("\(key) is \(v), expected 1 ... \(max)") }
        return v
    }

    /// A window size: `default` when absent, nil (no window) when null.
    func window(_ key: String, default def: Int?) throws -> Int? {
        guard let v = object[key] else { return def }
        if v.isNull { return nil }
        return try size(key)
    }

    /// A non-negative integer, or nil when absent or null.
    func count(_ key: String) throws -> Int? {
        guard let v = try integer(key) else { return nil }
        guard v >= 0 else { throw Problem("\(key) is \(v), expected a non-negative integer") }
        return v
    }

    private func integer(_ key: String) throws -> Int? {
        guard let v = object[key], !v.isNull else { return nil }
        guard case .number(let n) = v, n.isIntegerLiteral else {
            throw Problem("\(key) must be an integer, found \(v.describe)")
        }
        guard let i = n.int else { throw Problem("\(key) \(n.literal) is too large") }
        return i
    }

    func finiteDouble(_ key: String) throws -> Double? {
        guard let v = object[key], !v.isNull else { return nil }
        guard case .number(let n) = v, n.double.isFinite else {
            throw Problem("\(key) must be a finite number, found \(v.describe)")
        }
        return n.double
    }

    /// A soft-cap: `default` when absent, nil (none) when null, else a positive number
    /// (transformers divides by it).
    func softcap(_ key: String, default def: Double) throws -> Double? {
        guard let v = object[key] else { return def }
        if v.isNull { return nil }
        return try positiveDouble(key)
    }

    func positiveDouble(_ key: String) throws -> Double? {
        guard let d = try finiteDouble(key) else { return nil }
        guard d > 0 else { throw Problem("\(key) must be positive, found \(d)") }
        return d
    }

    func bool(_ key: String) throws -> Bool? {
        guard let v = object[key], !v.isNull else { return nil }
        guard case .bool(let b) = v else { throw Problem("\(key) must be true or false, found \(v.describe)") }
        return b
    }

    func string(_ key: String) throws -> String? {
        guard let v = object[key], !v.isNull else { return nil }
        guard case .string(let s) = v else { throw Problem("\(key) must be a string, found \(v.describe)") }
        return s
    }
}

extension JSON {
    var isNull: Bool {
        if case .null = self { return true }
        return false
    }

    /// The value itself when short, else its kind.
    var describe: String {
        switch self {
        case .number(let n): return n.literal
        case .bool(let b): return String(b)
        case .string(let s): return quoted(s)
        default: return kind
        }
    }
}
