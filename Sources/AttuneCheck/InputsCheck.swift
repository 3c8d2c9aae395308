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
            for kernel in KernelRegistry.all where KernelCheck.supports(kernel, problem) && kernel.name != "prefix_shared" {
                let params = KernelCheck.parameters(kernel, problem)
                let out = try kernel.run(problem, q: q, k: k, v: v, parameters: params)
                let ref = try KernelCheck.reference(kernel, problem, (q, k, v), bias: params["bias"] ?? 0)
                let (metrics, rows) = KernelCheck.compare(out.o.data, ref, problem)
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
        var meta: [String: Any] = [:]
        let metaURL = folder.appendingPathComponent("problem.json")
        if FileManager.default.fileExists(atPath: metaURL.path) {
            guard let object = try JSONSerialization.jsonObject(with: Data(contentsOf: metaURL)) as? [String: Any] else {
                throw CheckError("\(metaURL.path): expected a JSON object")
            }
            meta = object
        }
        let problem = AttentionProblem(batch: q.shape[0], qHeads: q.shape[1], kvHeads: k.shape[1], qLen: q.shape[2], kvLen: k.shape[2],
                                       qkDim: q.shape[3], vDim: v.shape[3], scale: (meta["scale"] as? Double).map(Float.init),
                                       causal: meta["causal"] as? Bool ?? false, qOffset: meta["q_offset"] as? Int,
                                       window: meta["window"] as? Int)
        if let error = problem.validationError() { throw CheckError("\(folder.path): \(error)") }
        for (name, t, shape) in [("k", k, problem.kShape), ("v", v, problem.vShape)] where t.shape != shape {
            throw CheckError("\(folder.path): \(name).npy has shape \(t.shape), expected \(shape) for q \(q.shape)")
        }
        return (problem, q, k, v)
    }
}
