import AttuneKernels
import AttunePasses
import AttuneRuntime
import XCTest

/// The compiled model's packed prefill (`attune_model_prefill_packed`) as a library: its
/// last-row variant, the state it leaves, and what it refuses. (Packed logits against
/// separate runs and transformers: `PackedRunCLITests`.)
final class PackedDocumentsTests: XCTestCase {
    static let documents: [[Int32]] = [[5, 120, 33, 33, 71], [9], [1, 17, 42, 99, 3, 64, 127, 8, 55, 23, 77]]

    func session(kernel: String = "flash", decode: String? = nil) throws -> CompiledModel {
        let model = try ModelSource.load(try GoldenModel("llama").folder.path)
        var kernels = KernelOverrides(global: try KernelChoice(parsing: kernel))
        if let decode { kernels.decodeGlobal = try KernelChoice(parsing: decode) }
        let artifacts = try ModelCompiler.compile(model, CompileOptions(kernels: kernels, maxChunk: 4, maxContext: 64), toolchain: try Toolchain.detect())
        return try CompiledModel(artifacts: artifacts)
    }

    func testLastRowsStateAndRefusals() throws {
        let m = try session()
        XCTAssertNil(m.packedRefusal)
        let tokens = Self.documents.flatMap { $0 }, lengths = Self.documents.map(\.count)
        let all = try m.prefillPacked(tokens, lengths: lengths)
        XCTAssertEqual(m.length, tokens.count)
        // The packed cache continues no document: everything but reset is refused.
        for (what, call) in [("decode", { _ = try m.decodeStep(1) }), ("prefill", { _ = try m.prefill([1]) }),
                             ("fork", { try m.fork(2) }), ("truncate", { try m.truncate(to: 3) }),
                             ("packed", { _ = try m.prefillPacked([1], lengths: [1]) })] as [(String, () throws -> Void)] {
            XCTAssertThrowsError(try call(), what) {
                XCTAssertTrue("\($0)".contains("the cache holds 3 packed documents: reset before"), "\(what): \($0)")
            }
        }
        m.reset()
        // Each document's last row, from chunks of 4 that cross the documents.
        let last = try m.prefillPackedLast(tokens, lengths: lengths)
        var end = 0
        for (d, n) in lengths.enumerated() {
            end += n
            let want = Array(all[(end - 1) * m.vocab..<end * m.vocab])
            XCTAssertLessThanOrEqual(zip(last[d], want).map { abs($0 - $1) }.max() ?? .infinity, 1e-5, "document \(d)")
        }
        // After reset the model is an ordinary one again; a packed prefill needs an empty cache.
        m.reset()
        let alone = try m.prefill(Self.documents[2])
        XCTAssertLessThanOrEqual(zip(alone, all.suffix(alone.count)).map { abs($0 - $1) }.max() ?? .infinity, 1e-5)
        XCTAssertThrowsError(try m.prefillPacked([1, 2], lengths: [1, 1])) {
            XCTAssertTrue("\($0)".contains("a packed prefill starts on an empty cache; 11 positions are cached"), "\($0)")
        }
        m.reset()
        XCTAssertThrowsError(try m.prefillPacked([1, 2, 3], lengths: [3, 0])) { XCTAssertTrue("\($0)".contains("document 1 has length 0"), "\($0)") }
        XCTAssertThrowsError(try m.prefillPacked([], lengths: [])) { XCTAssertTrue("\($0)".contains("at least one document"), "\($0)") }
        XCTAssertThrowsError(try m.prefillPacked([1, 500], lengths: [1, 1])) { XCTAssertTrue("\($0)".contains("outside the vocabulary"), "\($0)") }
        XCTAssertEqual(m.length, 0, "a failed packed prefill leaves an empty cache")
        XCTAssertNoThrow(try m.decodeStep(1))
    }

    /// A model bound to a kernel without masks says so before any token runs (`ModelCompiler`
    /// refuses it only when asked to pack). A decode binding counts too: sparge, which takes
    /// masks, packs; no kernel without masks can be a decode binding of its own (kascade and
    /// hybrid need both phases, prefix_shared binds to no node).
    func testKernelsWithoutMasksAreRefused() throws {
        XCTAssertNil(try session(decode: "sparge").packedRefusal)
        let m = try session(kernel: "kascade")
        XCTAssertEqual(m.packedRefusal,
                       "layer 1: kascade does not implement document or block masks (masks); flash, unified_max, sigmoid and sparge do")
        XCTAssertThrowsError(try m.prefillPacked([1, 2], lengths: [1, 1])) {
            XCTAssertTrue("\($0)".contains("this model cannot run packed documents: layer 1: kascade"), "\($0)")
        }
        XCTAssertEqual(m.length, 0)
    }
}
