import AttuneKernels
import AttuneTensor
import Foundation

/// `attune check --inputs DIR`: captured attention inputs (e.g. dumped from a PyTorch
/// model) checked for every kernel against the float64 reference. DIR holds q.npy, k.npy,
/// v.npy ([B, Hq, Lq, D], [B, Hkv, Lk, D], [B, Hkv, Lk, Dv]) and optionally problem.json
/// ({"causal": true, "window": 128, "q_offset": 0, "scale": 0.088}); or subfolders that
/// each do.
public enum InputsCheck {
    public static func run(_ dir: URL) throws -> [CheckCase] {
        let fm = FileManager.default
        var folders: [URL] = []
        if fm.fileExists(atPath: dir.appendingPathComponent("q.npy").path) { folders = [dir] }
        else {
            let subs = (try? fm.contentsOfDirectory(at: dir, includingPropertiesForKeys: nil)) ?? []
            folders = subs.filter { fm.fileExists(atPath: $0.appendingPathComponent("q.npy").path) }.sorted { $0.path < $1.path }
        }
        guard !folders.isEmpty else { throw CheckError("\(dir.path): no q.npy/k.npy/v.npy here or in a subfolder") }
        var cases: [CheckCase] = []
        for folder in folders {
            let (problem, q, k, v) = try load(folder)
            for kernel in KernelRegistry.all where KernelCheck.supports(kernel, problem) && !kernel.isComposition {
                let params = KernelCheck.parameters(kernel, problem)
                let out = try kernel.run(problem, q: q, k: k, v: v, parameters: params)
                let ref = try KernelCheck.reference(kernel, problem, (q, k, v), bias: params["bias"] ?? 0)
                var (metrics, rows) = KernelCheck.compare(out.o.data, ref, problem)
                let bias = kernel.normalizer == .sigmoid ? Float(params["bias"] ?? 0) : nil
                metrics.merge(KernelCheck.dynamo(out.o.data, ref, problem, (q, k, v), sigmoidBias: bias, lowPrecision: false).metrics) { $1 }
                cases.append(CheckCase(id: "inputs/\(folder.lastPathComponent)/\(kernel.name)", kind: .inputs, exact: kernel.isExact,
                                       metrics: metrics, rowError: rows))
            }
        }
        return cases
    }

    static func load(_ folder: URL) throws -> (AttentionProblem, Tensor, Tensor, Tensor) {
        let q = try Npy.read(contentsOf: folder.appendingPathComponent("q.npy"))
        let k = try Npy.read(contentsOf: folder.appendingPathComponent("k.npy"))
        let v = try Npy.read(contentsOf: folder.appendingPathComponent("v.npy"))
        guard q.shape.count == 4, k.shape.count == 4, v.shape.count == 4 else {
            throw CheckError("\(folder.path): q, k, v must be [B, H, L, D] (got \(q.shape), \(k.shape), \(v.shape))")
        }
        let meta = try problemSettings(folder.appendingPathComponent("problem.json"))
        let problem = AttentionProblem(batch: q.shape[0], qHeads: q.shape[1], kvHeads: k.shape[1], qLen: q.shape[2], kvLen: k.shape[2],
                                       qkDim: q.shape[3], vDim: v.shape[3], scale: meta.scale.map(Float.init),
                                       causal: meta.causal, qOffset: meta.qOffset, window: meta.window)
        if let error = problem.validationError() { throw CheckError("\(folder.path): \(error)") }
        for (name, t, shape) in [("k", k, problem.kShape), ("v", v, problem.vShape)] where t.shape != shape {
            throw CheckError("\(folder.path): \(name).npy has shape \(t.shape), expected \(shape) for q \(q.shape)")
        }
        return (problem, q, k, v)
    }

    /// problem.json, strictly: unknown or mistyped keys are refused by name (a misspelt
    /// "casual" once silently ran a non-causal check).
    static func problemSettings(_ url: URL) throws -> (causal: Bool, window: Int?, qOffset: Int?, scale: Double?) {
        guard FileManager.default.fileExists(atPath: url.path) else { return (false, nil, nil, nil) }
        let data: Data
        do { data = try Data(contentsOf: url) } catch { throw CheckError("\(url.path): cannot read: \(FileProblem.reading(url.path, error))") }
        let object: Any
        do { object = try JSONSerialization.jsonObject(with: data) } catch {
            let detail = (error as NSError).userInfo["NSDebugDescription"] as? String ?? "not parseable"
            throw CheckError("\(url.path): not valid JSON: \(detail)")
        }
        guard let meta = object as? [String: Any] else { throw CheckError("\(url.path): expected a JSON object like {\"causal\": true}") }
        let known = ["causal", "window", "q_offset", "scale"]
        if let unknown = meta.keys.sorted().first(where: { !known.contains($0) }) {
            throw CheckError("\(url.path): unknown key '\(unknown)' (keys: \(known.joined(separator: ", ")))")
        }
        // JSON true/false arrive as NSNumbers of type "c" (char); numbers as other types.
        func isBool(_ v: Any) -> Bool { (v as? NSNumber).map { String(cString: $0.objCType) == "c" } ?? false }
        func integer(_ key: String) throws -> Int? {
            guard let v = meta[key] else { return nil }
            guard !isBool(v), let n = v as? NSNumber, let i = Int(exactly: n.doubleValue) else {
                throw CheckError("\(url.path): '\(key)' must be an integer, got \(v)")
            }
            return i
        }
        var causal = false
        if let v = meta["causal"] {
            guard isBool(v), let b = v as? Bool else { throw CheckError("\(url.path): 'causal' must be true or false, got \(v)") }
            causal = b
        }
        var scale: Double?
        if let v = meta["scale"] {
            guard !isBool(v), let n = v as? NSNumber else { throw CheckError("\(url.path): 'scale' must be a number, got \(v)") }
            scale = n.doubleValue
        }
        return (causal, try integer("window"), try integer("q_offset"), scale)
    }
}
