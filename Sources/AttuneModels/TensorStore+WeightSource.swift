import AttuneIR
import Foundation

// Checkpoints feed graph weights directly: `floats(_:)` converts F32/BF16/F16 to fp32,
// `location(_:)` tells compiled modules where to map them from.
extension TensorStore {
    public func weightLocation(_ name: String) throws -> WeightLocation? {
        let info = try info(name)
        let dtype: DType
        switch info.dtype {
        case .f32: dtype = .f32
        case .bf16: dtype = .bf16
        case .f16: dtype = .f16
        default: return nil
        }
        // In-memory stores (a fuzzer's bytes) name no real file.
        guard FileManager.default.fileExists(atPath: info.file) else { return nil }
        let path = URL(fileURLWithPath: info.file).standardizedFileURL.path
        return WeightLocation(path: path, offset: info.fileOffset, dtype: dtype, count: info.elementCount)
    }
}

extension Checkpoint: AttuneIR.WeightSource {
    public func location(_ name: String) throws -> WeightLocation? { try weightLocation(name) }
}

extension SafeTensorsFile: AttuneIR.WeightSource {
    public func location(_ name: String) throws -> WeightLocation? { try weightLocation(name) }
}
