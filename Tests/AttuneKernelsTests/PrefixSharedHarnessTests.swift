import AttuneKernels
import XCTest

/// `prefix_shared` against the float64 reference on batches whose sequences share a prefix.
final class PrefixSharedHarnessTests: XCTestCase {
    func row(_ name: String, _ p: AttentionProblem, prefix: Int, _ extra: KernelParameters = [:]) -> HarnessCase {
        var params = extra
        params["prefix_len"] = Double(prefix)
        return HarnessCase(name: name, problem: p, kernel: "prefix_shared", parameters: params, sharedPrefix: prefix)
    }

    func testDecodeAndChunkedPrefillOverASharedPrefix() {
        Harness.check(row("decode B8 GQA", .init(batch: 8, qHeads: 8, kvHeads: 2, qLen: 1, kvLen: 700, qkDim: 128, causal: true), prefix: 600))
        Harness.check(row("decode, prefix = all keys", .init(batch: 4, qHeads: 4, qLen: 1, kvLen: 300, qkDim: 64, causal: true), prefix: 300))
        Harness.check(row("suffix chunk, causal", .init(batch: 3, qHeads: 4, kvHeads: 1, qLen: 37, kvLen: 500, qkDim: 64, causal: true), prefix: 463))
        Harness.check(row("q_offset at prefix end", .init(batch: 2, qHeads: 2, qLen: 20, kvLen: 120, qkDim: 80, vDim: 64, causal: true, qOffset: 99), prefix: 100))
        Harness.check(row("non-causal", .init(batch: 5, qHeads: 2, qLen: 3, kvLen: 257, qkDim: 96), prefix: 1))
        Harness.check(row("batch 1", .init(batch: 1, qHeads: 2, qLen: 1, kvLen: 1000, qkDim: 128, causal: true), prefix: 513, ["block_kv": 64]))
        Harness.check(HarnessCase(name: "poison past the suffix", problem: .init(batch: 2, qHeads: 2, qLen: 4, kvLen: 300, qkDim: 64, causal: true, qOffset: 200),
                                  kernel: "prefix_shared", parameters: ["prefix_len": 150], poison: .nan, sharedPrefix: 150))
    }

    func testRejectsWhatItCannotDo() {
        let x = AttentionInputs(.init(batch: 2, qHeads: 2, qLen: 10, kvLen: 50, qkDim: 16, causal: true), seed: 1)
        let k = PrefixSharedKernel()
        XCTAssertThrowsError(try k.run(.init(batch: 2, qHeads: 2, qLen: 10, kvLen: 50, qkDim: 16, causal: true), q: x.q, k: x.k, v: x.v)) {
            XCTAssertTrue("\($0)".contains("prefix_len"), "\($0)")
        }
        XCTAssertThrowsError(try k.run(.init(batch: 2, qHeads: 2, qLen: 10, kvLen: 50, qkDim: 16, causal: true), q: x.q, k: x.k, v: x.v,
                                       parameters: ["prefix_len": 45])) {
            XCTAssertTrue("\($0)".contains("past the prefix"), "\($0)")
        }
        XCTAssertFalse(k.unsupportedReasons(.init(batch: 2, qHeads: 2, qLen: 1, kvLen: 50, qkDim: 16, window: 8)).isEmpty)
    }
}
