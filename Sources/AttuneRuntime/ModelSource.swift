import AttuneIR
import AttuneModels
import AttuneTensor
import Foundation

/// A model as `attune compile/run/inspect` take it: the graph and where its weights come from.
public struct LoadedModel {
    public var name: String
    public var graph: Graph
    public var weights: AttuneIR.WeightSource
    /// Present for Hugging Face folders.
    public var config: HFConfig?
}

public enum ModelSource {
    /// `path` is a Hugging Face folder (`config.json` + safetensors) or an `.attn` file,
    /// whose weights (if it has any) are read from the `.safetensors` file of the same name.
    public static func load(_ path: String) throws -> LoadedModel {
        let url = URL(fileURLWithPath: path)
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: url.path, isDirectory: &isDir) else {
            throw RuntimeError("\(path): no such file or folder")
        }
        if isDir.boolValue { return try huggingFace(url) }
        guard url.pathExtension == "attn" else {
            throw RuntimeError("\(path): expected a Hugging Face folder (with config.json) or an .attn file")
        }
        return try textGraph(url)
    }

    static func huggingFace(_ dir: URL) throws -> LoadedModel {
        guard FileManager.default.fileExists(atPath: dir.appendingPathComponent("config.json").path) else {
            throw RuntimeError("\(dir.path): no config.json; a model folder needs config.json and model.safetensors (or an index with shards)")
        }
        let config = try HFConfig(contentsOf: dir)
        let checkpoint = try Checkpoint(directory: dir)
        let tensors = try config.check(checkpoint)
        let name = cIdentifier(dir.lastPathComponent)
        let graph = try DecoderGraph.build(config, tensors: tensors, name: name) { tensor in try dtype(of: tensor, in: checkpoint) }
        return LoadedModel(name: name, graph: graph, weights: checkpoint, config: config)
    }

    static func textGraph(_ file: URL) throws -> LoadedModel {
        let text: String
        do { text = try String(contentsOf: file, encoding: .utf8) } catch {
            throw RuntimeError("\(file.path): cannot read: \(FileProblem.reading(file.path, error))")
        }
        let graph: Graph
        do { graph = try TextFormat.parse(text) } catch { throw RuntimeError("\(file.path): \(error)") }
        let weightsFile = file.deletingPathExtension().appendingPathExtension("safetensors")
        var weights: AttuneIR.WeightSource = DictionaryWeights([:])
        if !graph.weights.isEmpty {
            guard FileManager.default.fileExists(atPath: weightsFile.path) else {
                throw RuntimeError("\(file.path) uses \(graph.weights.count) weights; expected them in \(weightsFile.path)")
            }
            let store = try SafeTensorsFile(contentsOf: weightsFile)
            for (name, type) in graph.weights {
                let info = try store.info(name)
                let dims = type.shape.compactMap(\.fixedValue)
                guard dims.count == type.rank, dims == info.shape else {
                    throw RuntimeError("weight '\(name)': the graph declares \(type), \(weightsFile.lastPathComponent) has shape \(info.shape)")
                }
            }
            weights = store
        }
        return LoadedModel(name: cIdentifier(graph.name), graph: graph, weights: weights, config: nil)
    }

    static func dtype(of tensor: String, in store: any TensorStore) throws -> DType {
        switch try store.info(tensor).dtype {
        case .f32: return .f32
        case .bf16: return .bf16
        case .f16: return .f16
        case let other: throw RuntimeError("tensor '\(tensor)' has dtype \(other.rawValue); weights must be F32, BF16 or F16")
        }
    }

    /// A C identifier made from a folder or graph name.
    static func cIdentifier(_ s: String) -> String {
        var out = String(s.map { $0.isLetter || $0.isNumber || $0 == "_" ? $0 : "_" })
        if out.isEmpty || out.first!.isNumber { out = "m_" + out }
        return out.lowercased()
    }
}
