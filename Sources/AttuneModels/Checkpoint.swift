import AttuneTensor
import Foundation

/// The weights of a Hugging Face checkpoint folder.
///
/// The folder holds either `model.safetensors`, or `model.safetensors.index.json`
/// (`{"weight_map": {tensor: shard file}, "metadata": {...}}`) and the shard
/// files it names. Like `transformers`, the single file wins when both exist.
///
/// Opening maps and validates every file and checks that each tensor the
/// index lists is in its shard, so a broken checkpoint fails here, naming the
/// tensor and the shard, rather than halfway through a model build. For a
/// sharded checkpoint the index is authoritative: tensors a shard holds but
/// the index does not list are not part of the checkpoint (as in
/// `transformers`). Shard names must be plain file names in the folder.
public final class Checkpoint: TensorStore {
    public static let singleFileName = "model.safetensors"
    public static let indexFileName = "model.safetensors.index.json"

    /// The folder's path.
    public let path: String
    public let tensorNames: [String]
    private let fileOf: [String: SafeTensorsFile]

    /// Opens the checkpoint in `directory`.
    ///
    /// - Throws: `ModelImportError` if neither file exists, the index is
    ///   malformed, a shard is missing or invalid, or a listed tensor is not in
    ///   its shard.
    public init(directory: URL) throws {
        path = directory.path
        let single = directory.appendingPathComponent(Self.singleFileName)
        let index = directory.appendingPathComponent(Self.indexFileName)
        let fm = FileManager.default
        if fm.fileExists(atPath: single.path) {
            let file = try SafeTensorsFile(contentsOf: single)
            fileOf = Dictionary(uniqueKeysWithValues: file.tensorNames.map { ($0, file) })
        } else if fm.fileExists(atPath: index.path) {
            fileOf = try Self.openShards(index: index, directory: directory)
        } else {
            throw ModelImportError("\(path): no \(Self.singleFileName) or \(Self.indexFileName) in this folder")
        }
        tensorNames = fileOf.keys.sorted()
    }

    public func info(_ name: String) throws -> SafeTensorInfo {
        try file(of: name).info(name)
    }

    public func withRawBytes<R>(of name: String, _ body: (UnsafeRawBufferPointer) throws -> R) throws -> R {
        try file(of: name).withRawBytes(of: name, body)
    }

    private func file(of name: String) throws -> SafeTensorsFile {
        guard let f = fileOf[name] else { throw ModelImportError("\(path): missing tensor \(quoted(name))") }
        return f
    }

    private static func openShards(index: URL, directory: URL) throws -> [String: SafeTensorsFile] {
        let indexPath = index.path
        func fail(_ reason: String) -> ModelImportError { ModelImportError("\(indexPath): \(reason)") }

        let data: Data
        do {
            data = try Data(contentsOf: index)
        } catch {
            throw fail("cannot read: \(FileProblem.reading(index.path, error))")
        }
        let json: JSON
        do {
            json = try JSONParser.parse(data)
        } catch {
            throw fail("not valid JSON: \(error.reason) at byte \(error.offset)")
        }
        guard case .object(let top) = json else { throw fail("not a JSON object (it is \(json.kind))") }
        guard let mapValue = top["weight_map"] else { throw fail("missing key 'weight_map'") }
        guard case .object(let map) = mapValue else { throw fail("weight_map is \(mapValue.kind), expected an object") }

        // Each shard is opened once, in index order, and reported with the
        // first tensor the index places in it.
        var shards: [String: SafeTensorsFile] = [:]
        var fileOf: [String: SafeTensorsFile] = [:]
        for (tensor, shardValue) in map.entries {
            guard case .string(let shard) = shardValue else {
                throw fail("weight_map entry for tensor \(quoted(tensor)) is \(shardValue.kind), expected a shard file name")
            }
            guard !shard.isEmpty, shard != ".", shard != "..", !shard.contains("/"), !shard.contains("\0") else {
                throw fail("tensor \(quoted(tensor)): shard name \(quoted(shard)) is not a plain file name in the checkpoint folder")
            }
            let file: SafeTensorsFile
            if let open = shards[shard] {
                file = open
            } else {
                let url = directory.appendingPathComponent(shard)
                guard FileManager.default.fileExists(atPath: url.path) else {
                    throw fail("shard \(quoted(shard)) listed for tensor \(quoted(tensor)) does not exist")
                }
                file = try SafeTensorsFile(contentsOf: url)
                shards[shard] = file
            }
            guard (try? file.info(tensor)) != nil else {
                throw fail("tensor \(quoted(tensor)) is listed in shard \(quoted(shard)), which does not contain it")
            }
            fileOf[tensor] = file
        }
        return fileOf
    }
}
