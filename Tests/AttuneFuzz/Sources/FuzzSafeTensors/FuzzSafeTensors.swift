import Foundation
import FuzzSupport
import AttuneModels

// libFuzzer entry point for the safetensors reader. The contract checked
// (see SafeTensorsFile): the input is either rejected with a one-line
// `ModelImportError` that names the file, or accepted, and then every tensor
// reads back with exactly its declared byte count. Anything else is reported
// as a crash so that libFuzzer saves the input.

let name = "fuzz.safetensors"

@_cdecl("FuzzSafeTensors_main")
public func entry(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    runLibFuzzer(argc, argv, fuzz)
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let input = UnsafeBufferPointer(start: data, count: size)  // data may be nil when size is 0
    let bytes = Data(buffer: input)
    let file: SafeTensorsFile
    do {
        file = try SafeTensorsFile(data: bytes, name: name)
    } catch let e as ModelImportError {
        check(e.message.hasPrefix(name + ": ") && !e.message.contains("\n"), "bad message: \(e.message)")
        return 0
    } catch {
        fatalError("unexpected error type \(type(of: error)): \(error)")
    }
    for t in file.tensorNames {
        do {
            let info = try file.info(t)
            let n = try file.withRawBytes(of: t) { $0.count }
            check(n == info.byteCount && n == info.elementCount * info.dtype.size, "tensor \(t): \(n) bytes for \(info)")
            if info.dtype.convertsToFloat {
                check(try file.floats(t).count == info.elementCount, "tensor \(t): wrong float count")
            }
        } catch {
            fatalError("accepted file, but tensor \(t) does not read: \(error)")
        }
    }
    return 0
}

func check(_ ok: @autoclosure () throws -> Bool, _ what: @autoclosure () -> String) {
    guard (try? ok()) == true else { fatalError(what()) }
}
