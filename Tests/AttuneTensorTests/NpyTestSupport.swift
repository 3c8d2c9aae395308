import Foundation
import XCTest
import AttuneTensor

/// Builds a .npy file around an arbitrary header text, so tests can state the
/// exact header they feed the reader. The header is padded like numpy's (to a
/// 64-byte boundary, ending in '\n') unless `pad` is false.
func makeNpy(header: String, major: UInt8 = 1, minor: UInt8 = 0, payload: [UInt8] = [], pad: Bool = true) -> Data {
    let fieldSize = major == 1 ? 2 : 4
    var h = Array(header.utf8)
    if pad {
        let unpadded = 8 + fieldSize + h.count + 1
        h += [UInt8](repeating: 0x20, count: (64 - unpadded % 64) % 64) + [0x0A]
    }
    var out: [UInt8] = [0x93, 0x4E, 0x55, 0x4D, 0x50, 0x59, major, minor]
    for i in 0..<fieldSize { out.append(UInt8(truncatingIfNeeded: h.count >> (8 * i))) }
    return Data(out + h + payload)
}

/// The header numpy writes for a float32 C-order array, minus padding.
func f4Header(_ shape: String, descr: String = "<f4") -> String {
    "{'descr': '\(descr)', 'fortran_order': False, 'shape': \(shape), }"
}

func floatBytes(_ xs: [Float]) -> [UInt8] {
    xs.flatMap { x in withUnsafeBytes(of: x.bitPattern.littleEndian) { Array($0) } }
}

func doubleBytes(_ xs: [Double]) -> [UInt8] {
    xs.flatMap { x in withUnsafeBytes(of: x.bitPattern.littleEndian) { Array($0) } }
}

/// Asserts that reading `data` fails with a `TensorError` whose message names
/// the file and contains every one of `fragments`.
func assertRejects(
    _ data: Data, _ fragments: String..., name: String = "case.npy",
    file: StaticString = #filePath, line: UInt = #line
) {
    do {
        let t = try Npy.read(data: data, name: name)
        XCTFail("expected rejection containing \(fragments), got tensor of shape \(t.shape)", file: file, line: line)
    } catch let e as TensorError {
        XCTAssertTrue(e.message.hasPrefix("\(name): "), "message does not name the file: \(e.message)", file: file, line: line)
        XCTAssertFalse(e.message.contains("\n"), "message is not one line: \(e.message)", file: file, line: line)
        for f in fragments {
            XCTAssertTrue(e.message.contains(f), "message \(e.message.debugDescription) lacks \(f.debugDescription)", file: file, line: line)
        }
    } catch {
        XCTFail("expected TensorError, got \(error)", file: file, line: line)
    }
}

/// Bitwise comparison, so NaN payloads and signed zeros count.
func assertSameBits(_ a: Tensor, _ b: Tensor, file: StaticString = #filePath, line: UInt = #line) {
    XCTAssertEqual(a.shape, b.shape, file: file, line: line)
    XCTAssertEqual(a.data.map(\.bitPattern), b.data.map(\.bitPattern), file: file, line: line)
}
