import Foundation
import FuzzSupport
import AttuneTensor

// libFuzzer entry point for the `.npy` reader, both its float and its
// integer paths. Each input is either rejected with a one-line `TensorError`
// naming the file, or decoded into values consistent with the shape; anything
// else is reported as a crash so that libFuzzer saves the input.

let name = "fuzz.npy"

@_cdecl("FuzzNpy_main")
public func entry(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    runLibFuzzer(argc, argv, fuzz)
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let input = UnsafeBufferPointer(start: data, count: size)  // data may be nil when size is 0
    let bytes = Data(buffer: input)
    expectOneLine {
        let t = try Npy.read(data: bytes, name: name)
        check(t.data.count == product(t.shape), "float tensor: \(t.data.count) values for shape \(t.shape)")
    }
    expectOneLine {
        let (shape, values) = try Npy.readIntegers(data: bytes, name: name)
        check(values.count == product(shape), "integers: \(values.count) values for shape \(shape)")
    }
    // A slice whose indices do not start at 0, as `Data` read from the
    // middle of a buffer would be: the reader must not assume `startIndex == 0`.
    if size > 0 {
        var shifted = Data([0])
        shifted.append(bytes)
        let slice = shifted[1...]
        expectOneLine { _ = try Npy.read(data: slice, name: name) }
    }
    return 0
}

func expectOneLine(_ body: () throws -> Void) {
    do {
        try body()
    } catch let e as TensorError {
        check(e.message.hasPrefix(name + ": ") && !e.message.contains("\n"), "bad message: \(e.message)")
    } catch {
        fatalError("unexpected error type \(type(of: error)): \(error)")
    }
}

/// The element count of an accepted shape. Checked arithmetic that stops at a
/// zero: `(2**62, 4, 0)` holds no elements and is valid, but a plain left-to-
/// right product would overflow before reaching the zero.
func product(_ shape: [Int]) -> Int {
    if shape.contains(0) { return 0 }
    return shape.reduce(1) { n, d in
        let (p, overflow) = n.multipliedReportingOverflow(by: d)
        if overflow { fatalError("accepted shape \(shape) whose element count overflows") }
        return p
    }
}

func check(_ ok: Bool, _ what: @autoclosure () -> String) {
    if !ok { fatalError(what()) }
}
