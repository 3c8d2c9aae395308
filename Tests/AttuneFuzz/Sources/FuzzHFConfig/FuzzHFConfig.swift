import AttuneModels
import Foundation
import FuzzSupport

// libFuzzer entry point for config.json. Each input is either refused with a one-line
// `ModelImportError` naming the file, or decodes to a configuration whose sizes are
// consistent (positive, heads dividing the hidden size as the importer requires).

@_cdecl("FuzzHFConfig_main")
public func entry(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    runLibFuzzer(argc, argv, fuzz)
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let bytes = Data(UnsafeBufferPointer(start: data, count: size))
    let config: HFConfig
    do {
        config = try HFConfig(json: bytes, name: "config.json")
    } catch let e as ModelImportError {
        let text = "\(e)"
        if text.contains("\n") { fatalError("multi-line message: \(text)") }
        if !text.hasPrefix("config.json") { fatalError("message does not name the file: \(text)") }
        return 0
    } catch {
        fatalError("unexpected error type \(type(of: error)): \(error)")
    }
    if config.vocabSize <= 0 || config.numHiddenLayers <= 0 { fatalError("accepted non-positive sizes: \(config)") }
    return 0
}
