import AttuneIR
import AttuneKernels
import AttuneRuntime
import Foundation

extension ModelTuner {
    /// KV caches layer by layer (`GroupSearch`): a group is one layer's K and V cache
    /// (`--layer-kv`), saving the bytes a cached position takes (a decode step reads every
    /// cached position of every layer).
    func mixKV(_ model: LoadedModel, to format: KVFormat, movable: Set<Int>?, options: inout CompileOptions, tuned: inout CompiledModel,
               measurement: inout Measurement, dense: CompiledModel, sequences: [[Int32]],
               compile: (CompileOptions) throws -> CompiledModel) throws -> GroupMix {
        let layers = Set(model.graph.nodes.compactMap { node -> Int? in
            if case .kvAppend(let layer, _) = node.op { return layer }
            return nil
        }).sorted()
        let base = options
        func bytes(_ byLayer: [Int: KVFormat]) -> Int { ModelCompiler.kvBytesPerPosition(model.graph, base.kvFormat, byLayer: byLayer) }
        let current = bytes(base.kvFormatByLayer)
        let search = GroupSearch(option: "kv=\(format.rawValue)", format: format.rawValue, labels: layers.map { "layer \($0)" },
                                 saving: layers.map { current - bytes(base.kvFormatByLayer.merging([$0: format]) { $1 }) },
                                 unit: "a cached position", bytes: current, movable: movable) { moved in
            var o = base
            for g in moved { o.kvFormatByLayer[layers[g]] = format }
            return o
        }
        return try mix(search, options: &options, tuned: &tuned, measurement: &measurement, dense: dense, sequences: sequences, compile: compile)
    }
}
