@testable import AttuneKernels
import AttuneRuntime
import CAttuneKernels
import Foundation
import XCTest

/// Each kernel's `CParameterFields` makes both the C initializer compiled graphs use and
/// the struct `run` passes. Compiling the initializer with the system C compiler and
/// reading the struct back through the same key paths proves the two agree: a C name
/// bound to the wrong key path, or a literal that does not read back, fails here.
final class KernelParameterMarshallingTests: XCTestCase {
    /// One kernel's list, checked with every parameter set to a distinct non-default
    /// value (so a field written only when non-zero is written too).
    struct Case {
        var cType: String
        var initializer: String
        var size: Int
        /// Whether C's bytes, read through the key paths, give the values Swift's struct holds.
        var agrees: ([UInt8]) -> (ok: Bool, detail: String)
    }

    static func makeCase<K: CParameterKernel>(_ kernel: K) -> Case {
        let fields = K.cFields
        var given: KernelParameters = [:]
        for (i, field) in fields.fields.enumerated() {
            let spec = kernel.parameters.first { $0.name == field.parameter }!
            given[field.parameter] = spec.isInteger ? Double(i + 1) : Double(i) + 0.375
        }
        let swift = fields.values(of: kernel.cStruct(given))
        return Case(cType: String(describing: K.CParams.self), initializer: kernel.cInitializer(given),
                    size: MemoryLayout<K.CParams>.size) { bytes in
            var s = fields.zero()
            withUnsafeMutableBytes(of: &s) { $0.copyBytes(from: bytes) }
            let c = fields.values(of: s)
            return (c == swift && swift == given, "\(kernel.name): C \(c), Swift \(swift), given \(given)")
        }
    }

    func testCInitializersAndStructsAgree() throws {
        let kernels = KernelRegistry.all.compactMap { $0 as? any CParameterKernel }
        XCTAssertEqual(kernels.map(\.name), KernelRegistry.all.map(\.name), "every kernel declares its C fields")
        let cases = kernels.map { Self.makeCase($0) }
        XCTAssertEqual(cases.first?.cType, "attune_flash_params")
        var program = ["#include <stdio.h>", "#include \"attune_attention.h\"",
                       "static void dump(const void *p, size_t n) {",
                       "    for (size_t i = 0; i < n; i++) printf(\"%02x\", ((const unsigned char *)p)[i]);",
                       "    printf(\"\\n\");", "}", "int main(void) {"]
        for (i, c) in cases.enumerated() {
            program += ["    static const \(c.cType) p\(i) = \(c.initializer);", "    dump(&p\(i), sizeof p\(i));"]
        }
        program += ["    return 0;", "}"]

        let toolchain = try Toolchain.detect()
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("attune-marshal-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let source = dir.appendingPathComponent("params.c"), binary = dir.appendingPathComponent("params")
        try program.joined(separator: "\n").write(to: source, atomically: true, encoding: .utf8)
        try Toolchain.run([toolchain.compiler, "-std=c11", "-Wall", "-Werror",
                           "-I" + toolchain.kernelsDirectory.appendingPathComponent("include").path,
                           source.path, "-o", binary.path])
        let lines = try Toolchain.run([binary.path]).split(separator: "\n")
        XCTAssertEqual(lines.count, cases.count)
        for (c, line) in zip(cases, lines) {
            let bytes = stride(from: 0, to: line.count, by: 2).map { i -> UInt8 in
                let start = line.index(line.startIndex, offsetBy: i)
                return UInt8(line[start..<line.index(start, offsetBy: 2)], radix: 16)!
            }
            XCTAssertEqual(bytes.count, c.size, c.cType)
            let (ok, detail) = c.agrees(bytes)
            XCTAssertTrue(ok, detail)
        }
    }

    /// Every declared parameter reaches C: it is a field, or the kernel says it passes it
    /// apart (and then it is not also a field).
    func testEveryParameterIsMarshalled() {
        for case let kernel as any CParameterKernel in KernelRegistry.all {
            let (fields, apart) = Self.names(kernel)
            XCTAssertEqual(fields.count + apart.count, kernel.parameters.count, kernel.name)
            XCTAssertEqual(Set(fields).union(apart), Set(kernel.parameters.map(\.name)), kernel.name)
        }
    }

    static func names<K: CParameterKernel>(_ kernel: K) -> (fields: [String], apart: [String]) {
        (K.cFields.fields.map(\.parameter), K.cFields.passedApart)
    }

    /// A field written only when non-zero keeps C generated before its parameter existed
    /// unchanged; the defaults of every other field are written.
    func testPrecisionIsWrittenOnlyWhenSet() {
        let flash = FlashKernel()
        XCTAssertEqual(flash.cInitializer([:]), "{.block_q = 0, .block_kv = 0, .kv_splits = 0, .threads = 0, .gemm = 0}")
        XCTAssertEqual(flash.cInitializer(["precision": 1, "block_q": 32]),
                       "{.block_q = 32, .block_kv = 0, .kv_splits = 0, .threads = 0, .gemm = 0, .precision = 1}")
        // Declared defaults fill what the caller leaves out (sparge's are not zero).
        let sparge = SpargeKernel().cStruct(["cdfthreshd": 0.5])
        XCTAssertEqual([sparge.block_q, sparge.block_kv, sparge.sink], [64, 64, 1])
        XCTAssertEqual([sparge.simthreshd1, sparge.cdfthreshd, sparge.pvthreshd], [0.6, 0.5, 50])
    }
}
