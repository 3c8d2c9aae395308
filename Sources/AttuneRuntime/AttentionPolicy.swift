import AttuneCodegen
import AttuneKernels
import AttunePasses
import Foundation

/// A per-layer kernel policy file (`--attention-policy FILE`):
///
///     {"default": "flash", "layers": {"0": "flash", "3": "flash:kv_splits=4"}}
///
/// Both keys are optional; each value is `NAME[:k=v,...]` as `--attention` takes it.
/// `"decode": {"default": ..., "layers": {...}}` (optional, same form) chooses the kernels
/// decode steps run, as `--decode-attention` and `--layer-decode-attention` do.
/// `"kv": "int8"` and `"weights": "int8"` (optional) choose the KV-cache and weight formats
/// as `--kv` and `--weights` do; those flags, when given, win. `"weights_for":
/// ["model.layers.3.=int8", ...]` (optional) are per-weight rules as `--weights-for` takes
/// them, applied unless `--weights` or `--weights-for` is given; `"kv_layers": {"3": "int8"}`
/// (optional) the KV format of some layers, as `--layer-kv` takes it, applied unless `--kv` or
/// `--layer-kv` is given. `attune tune MODEL` writes
/// them when it chose a format (`--kv-candidates`, `--weights-candidates`), and adds
/// `evidence`: the budgets it met and what it measured.
public enum AttentionPolicy {
    /// Everything a policy file sets.
    public struct Contents {
        public var kernels = KernelOverrides()
        public var kv: KVFormat?
        public var weights: WeightPolicy?
        public var weightRules: [WeightOverride] = []
        public var kvByLayer: [Int: KVFormat] = [:]

        public init() {}
    }

    /// The evidence `attune tune` stored with a policy, in one line; nil when it has none.
    public static func evidenceSummary(_ path: String) -> String? {
        guard let data = try? Data(contentsOf: URL(fileURLWithPath: path)),
              let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
              let e = object["evidence"] as? [String: Any] else { return nil }
        func number(_ key: String, _ format: String) -> String { (e[key] as? Double).map { String(format: format, $0) } ?? "?" }
        let budgets = (e["budgets"] as? [String])?.joined(separator: ", ") ?? "?"
        return "chosen by attune tune under \(budgets) on \(e["data"] as? String ?? "?"): KL \(number("kl_mean", "%.3e")), "
            + "perplexity ×\(number("perplexity_ratio", "%.5f")), top-1 agreement \(number("top1_agreement", "%.4f")), "
            + "prefill \(number("speedup", "%.2f"))x dense (\(e["created"] as? String ?? "?"))"
    }

    public static func load(_ path: String) throws -> KernelOverrides { try contents(path).kernels }

    public static func contents(_ path: String) throws -> Contents {
        let data: Data
        do { data = try Data(contentsOf: URL(fileURLWithPath: path)) } catch {
            throw RuntimeError("\(path): cannot read the attention policy")
        }
        guard let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else {
            throw RuntimeError("\(path): an attention policy is a JSON object {\"default\": ..., \"layers\": {...}}")
        }
        var contents = Contents()
        for key in object.keys where !["default", "layers", "decode", "kv", "kv_layers", "weights", "weights_for", "evidence"].contains(key) {
            throw RuntimeError("\(path): unknown key '\(key)' (expected default, layers, decode, kv, kv_layers, weights, weights_for, evidence)")
        }
        if let kv = object["kv"] {
            guard let text = kv as? String else { throw RuntimeError("\(path): 'kv' must be a string: f32, bf16 or int8") }
            do { contents.kv = try KVFormat(parsing: text) } catch { throw RuntimeError("\(path): kv: \(error)") }
        }
        if let layers = object["kv_layers"] {
            guard let map = layers as? [String: String] else { throw RuntimeError("\(path): 'kv_layers' must map layer numbers to KV formats, like {\"3\": \"int8\"}") }
            for (key, text) in map {
                guard let layer = Int(key), layer >= 0 else { throw RuntimeError("\(path): kv_layers: '\(key)' is not a layer number") }
                do { contents.kvByLayer[layer] = try KVFormat(parsing: text) } catch { throw RuntimeError("\(path): kv_layers: layer \(key): \(error)") }
            }
        }
        if let weights = object["weights"] {
            guard let text = weights as? String else { throw RuntimeError("\(path): 'weights' must be a string like \"int8\"") }
            do { contents.weights = try WeightPolicy(parsing: text) } catch { throw RuntimeError("\(path): weights: \(error)") }
        }
        if let rules = object["weights_for"] {
            guard let texts = rules as? [String] else {
                throw RuntimeError("\(path): 'weights_for' must be a list of \"PATTERN=FORMAT\" strings like \"model.layers.3.=int8\"")
            }
            do { contents.weightRules = try texts.map(WeightOverride.init(parsing:)) } catch { throw RuntimeError("\(path): weights_for: \(error)") }
        }
        if let evidence = object["evidence"], !(evidence is [String: Any]) {
            throw RuntimeError("\(path): 'evidence' must be an object (attune tune writes it)")
        }
        (contents.kernels.global, contents.kernels.byLayer) = try choices(object, path: path, within: "")
        if let decode = object["decode"] {
            guard let d = decode as? [String: Any] else {
                throw RuntimeError("\(path): 'decode' must be an object {\"default\": ..., \"layers\": {...}}")
            }
            for key in d.keys where !["default", "layers"].contains(key) {
                throw RuntimeError("\(path): unknown key 'decode.\(key)' (expected default, layers)")
            }
            (contents.kernels.decodeGlobal, contents.kernels.decodeByLayer) = try choices(d, path: path, within: "decode.")
        }
        return contents
    }

    /// The `default` and `layers` of `object` (the top level or `decode`, named by `within`).
    static func choices(_ object: [String: Any], path: String, within: String) throws -> (KernelChoice?, [Int: KernelChoice]) {
        var global: KernelChoice?, byLayer: [Int: KernelChoice] = [:]
        if let d = object["default"] {
            guard let text = d as? String else { throw RuntimeError("\(path): '\(within)default' must be a string like \"flash:block_kv=128\"") }
            do { global = try KernelChoice(parsing: text) } catch { throw RuntimeError("\(path): \(within)default: \(error)") }
        }
        if let layers = object["layers"] {
            guard let map = layers as? [String: Any] else { throw RuntimeError("\(path): '\(within)layers' must map layer numbers to kernels") }
            for (key, value) in map {
                guard let layer = Int(key), layer >= 0 else { throw RuntimeError("\(path): \(within)layer '\(key)' is not a layer number") }
                guard let text = value as? String else { throw RuntimeError("\(path): \(within)layer \(key) must name a kernel") }
                do { byLayer[layer] = try KernelChoice(parsing: text) } catch {
                    throw RuntimeError("\(path): \(within)layer \(key): \(error)")
                }
            }
        }
        return (global, byLayer)
    }
}
