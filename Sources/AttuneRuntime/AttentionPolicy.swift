import AttunePasses
import Foundation

/// A per-layer kernel policy file (`--attention-policy FILE`):
///
///     {"default": "flash", "layers": {"0": "flash", "3": "flash:kv_splits=4"}}
///
/// Both keys are optional; each value is `NAME[:k=v,...]` as `--attention` takes it.
public enum AttentionPolicy {
    public static func load(_ path: String) throws -> KernelOverrides {
        let data: Data
        do { data = try Data(contentsOf: URL(fileURLWithPath: path)) } catch {
            throw RuntimeError("\(path): cannot read the attention policy")
        }
        guard let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else {
            throw RuntimeError("\(path): an attention policy is a JSON object {\"default\": ..., \"layers\": {...}}")
        }
        var overrides = KernelOverrides()
        for key in object.keys where key != "default" && key != "layers" {
            throw RuntimeError("\(path): unknown key '\(key)' (expected default, layers)")
        }
        if let d = object["default"] {
            guard let text = d as? String else { throw RuntimeError("\(path): 'default' must be a string like \"flash:block_kv=128\"") }
            overrides.global = try KernelChoice(parsing: text)
        }
        if let layers = object["layers"] {
            guard let map = layers as? [String: Any] else { throw RuntimeError("\(path): 'layers' must map layer numbers to kernels") }
            for (key, value) in map {
                guard let layer = Int(key), layer >= 0 else { throw RuntimeError("\(path): layer '\(key)' is not a layer number") }
                guard let text = value as? String else { throw RuntimeError("\(path): layer \(key) must name a kernel") }
                do { overrides.byLayer[layer] = try KernelChoice(parsing: text) } catch {
                    throw RuntimeError("\(path): layer \(key): \(error)")
                }
            }
        }
        return overrides
    }
}
