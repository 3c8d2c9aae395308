import AttuneIR
import FuzzSupport

// libFuzzer entry point for the `.attn` text parser. Each input (decoded as
// UTF-8, invalid bytes replaced) is either rejected with a one-line
// `IRError`, or parsed into a verified graph that prints, re-parses and
// prints again to the same text (TextFormat's round-trip promise). Anything
// else is reported as a crash so that libFuzzer saves the input.

@_cdecl("FuzzTextFormat_main")
public func entry(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    runLibFuzzer(argc, argv, fuzz)
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let input = UnsafeBufferPointer(start: data, count: size)  // data may be nil when size is 0
    let text = String(decoding: input, as: UTF8.self)
    let graph: Graph
    do {
        graph = try TextFormat.parse(text)
    } catch let e as IRError {
        if e.message.contains("\n") { fatalError("multi-line message: \(e.message)") }
        return 0
    } catch {
        fatalError("unexpected error type \(type(of: error)): \(error)")
    }
    let printed = TextFormat.print(graph)
    do {
        let again = TextFormat.print(try TextFormat.parse(printed))
        if again != printed { fatalError("round trip changed the text:\n\(printed)\n---\n\(again)") }
    } catch {
        fatalError("printed graph does not parse back: \(error)\n\(printed)")
    }
    return 0
}
