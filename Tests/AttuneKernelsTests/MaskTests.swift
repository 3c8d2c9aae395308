import AttuneKernels
import AttuneNumerics
import AttuneTensor
import CAttuneKernels
import XCTest

/// Document masks and block bitmasks (`AttentionProblem.documentIDs`, `blockMask`) against
/// the float64 reference on every path of flash, unified_max and sigmoid, and sparge (exact
/// and pruning); the engine's tile skipping (counted tiles); the unmasked path unchanged;
/// refusals and bad input.
final class MaskTests: XCTestCase {
    /// Documents of these lengths (must sum to the problem's keys).
    static func docs(_ p: AttentionProblem, _ lengths: [Int]) -> AttentionProblem {
        var p = p
        p.documentIDs = try! AttentionProblem.documentIDs(lengths: lengths, kvLen: p.kvLen)
        return p
    }

    /// flash's paths with packed documents whose boundaries fall inside q tiles and KV tiles.
    static let flashShapes: [(String, AttentionProblem, KernelParameters)] = [
        ("prefill GQA 6/2, wide tiles", docs(.init(qHeads: 6, kvHeads: 2, qLen: 67, kvLen: 131, qkDim: 64, causal: true), [40, 50, 41]), [:]),
        ("prefill, sgemm tiles", docs(.init(qHeads: 3, qLen: 40, kvLen: 300, qkDim: 32, causal: true), [100, 150, 50]), ["gemm": 2]),
        ("sliding window", docs(.init(qHeads: 2, qLen: 50, kvLen: 80, qkDim: 16, causal: true, window: 7), [30, 25, 25]), [:]),
        ("decode MHA (narrow, 1 row), q_offset", docs(.init(qHeads: 5, qLen: 1, kvLen: 700, qkDim: 64, causal: true, qOffset: 650), [600, 100]), [:]),
        ("decode GQA 2 (narrow, 2 rows)", docs(.init(qHeads: 6, kvHeads: 3, qLen: 1, kvLen: 333, qkDim: 16, causal: true), [300, 33]), [:]),
        ("decode GQA 4, split KV", docs(.init(qHeads: 12, kvHeads: 3, qLen: 1, kvLen: 2100, qkDim: 32, causal: true), [1000, 1100]),
         ["kv_splits": 3]),
        ("prefill, split KV", docs(.init(qHeads: 2, qLen: 20, kvLen: 1500, qkDim: 16, causal: true), [700, 790, 10]), ["kv_splits": 4]),
        ("short q tile (narrow rows)", docs(.init(qHeads: 2, qLen: 3, kvLen: 90, qkDim: 24, vDim: 8, causal: true), [45, 44, 1]), [:]),
        ("non-causal, q_offset", docs(.init(qHeads: 3, qLen: 9, kvLen: 40, qkDim: 16, qOffset: 10), [12, 8, 20]), [:]),
        ("batch 2, GQA 4/2, non-causal packed prefill, a one-key document",
         docs(.init(batch: 2, qHeads: 4, kvHeads: 2, qLen: 100, kvLen: 100, qkDim: 32), [30, 1, 69]), ["block_kv": 64]),
        ("causal packed prefill, small tiles", docs(.init(qHeads: 4, kvHeads: 1, qLen: 200, kvLen: 200, qkDim: 16, causal: true),
                                                   [50, 70, 80]), ["block_q": 32, "block_kv": 32]),
    ]

    static func harness(_ name: String, _ p: AttentionProblem, kernel: String = "flash", _ parameters: KernelParameters = [:],
                        maxAbs: Double = 2e-5) -> HarnessCase {
        HarnessCase(name: name, problem: p, kernel: kernel, parameters: parameters, maxAbs: maxAbs, lseRel: 2e-6, qScale: 2, kScale: 2)
    }

    func testFlashDocumentsOnEveryPath() {
        for (name, p, params) in Self.flashShapes {
            let c = Self.harness(name, p, params)
            Harness.check(c)
            assertMaskMatters(c)
        }
    }

    /// Ids that are not sorted (documents interleaved in runs of 7): rows' keys have holes,
    /// so partly visible tiles take the element mask.
    func testFlashInterleavedDocuments() {
        for (name, p, params) in Self.flashShapes {
            var p = p
            p.documentIDs = (0..<p.kvLen).map { Int32($0 / 7 % 3) }
            let c = Self.harness("interleaved, " + name, p, params)
            Harness.check(c)
            assertMaskMatters(c)
        }
    }

    /// Random bitmasks (half the blocks, blocks of 16 and 64), alone and with documents;
    /// q blocks with no set bit leave rows that see nothing (O = 0, LSE = -inf).
    func testFlashBlockMasks() throws {
        for (name, p, params) in Self.flashShapes {
            for block in [16, 64] {
                var p = p
                p.blockMask = .random(block: block, kvLen: p.kvLen, density: 0.5, seed: UInt64(block))
                Harness.check(Self.harness("bitmask \(block), " + name, p, params))
                p.documentIDs = nil
                let c = Self.harness("bitmask \(block) alone, " + name, p, params)
                Harness.check(c)
            }
        }
        // Rows with nothing visible: a bitmask whose q block 1 is all cleared.
        var p = AttentionProblem(qHeads: 2, qLen: 64, kvLen: 64, qkDim: 16, causal: true)
        p.blockMask = BlockMask(block: 16, kvLen: 64) { qb, _ in qb != 1 }
        let x = AttentionInputs(p, seed: 5)
        for (kernel, params) in [("flash", [:]), ("unified_max", [:]), ("flash", ["precision": 1.0]), ("flash", ["precision": 2.0])] as [(String, KernelParameters)] {
            let out = try KernelRegistry.kernel(named: kernel).run(p, q: x.q, k: x.k, v: x.v, parameters: params)
            for h in 0..<2 {
                for i in 16..<32 {
                    XCTAssertEqual(out.lse.data[h * 64 + i], -.infinity, "\(kernel) row \(i)")
                    XCTAssertEqual(out.o.data[(h * 64 + i) * 16..<(h * 64 + i + 1) * 16].map(abs).max(), 0, "\(kernel) row \(i)")
                }
            }
            if params.isEmpty { Harness.check(Self.harness("empty q block", p, kernel: kernel)) }
        }
    }

    /// bf16 and int8 Q.K^T tiles take the masks (approximate, to the bf16 bound's scale).
    func testFlashReducedPrecisionTiles() throws {
        var p = Self.docs(.init(qHeads: 6, kvHeads: 2, qLen: 128, kvLen: 256, qkDim: 64, causal: true), [100, 60, 96])
        p.blockMask = .random(block: 32, kvLen: 256, density: 0.7, seed: 9)
        let x = AttentionInputs(p, seed: 3, qScale: 2, kScale: 2)
        let ref = try ReferenceBridge.softmax(p, x)
        var plain = p
        plain.documentIDs = nil
        plain.blockMask = nil
        let unmasked = try ReferenceBridge.softmax(plain, x)
        for precision in [1.0, 2.0] {
            let out = try FlashKernel().run(p, q: x.q, k: x.k, v: x.v, parameters: ["precision": precision])
            // No worse than the same tiles without masks against their own reference.
            let free = try FlashKernel().run(plain, q: x.q, k: x.k, v: x.v, parameters: ["precision": precision])
            let bound = max(1e-2, 1.5 * ErrorMetrics.compare(free.o.data, unmasked.o).maxAbs)
            XCTAssertLessThanOrEqual(ErrorMetrics.compare(out.o.data, ref.o).maxAbs, bound, "precision \(precision)")
            XCTAssertGreaterThan(ErrorMetrics.compare(out.o.data, unmasked.o).maxAbs, 0.1, "precision \(precision)")
            XCTAssertEqual(out.o.data.filter { $0.isNaN }.count, 0)
        }
    }

    /// Masks compose with soft-capping, ALiBi and sinks (hidden entries set after the cap).
    func testComposesWithModifiers() {
        for (name, p, params) in Self.flashShapes.prefix(7) {
            var p = p
            p.softcap = 3
            p.alibiSlopes = AttentionProblem.standardALiBiSlopes(heads: p.qHeads)
            p.sinks = ModifierTests.sinks(p.qHeads)
            p.blockMask = .random(block: 16, kvLen: p.kvLen, density: 0.6, seed: 4)
            Harness.check(Self.harness("all modifiers, " + name, p, params))
        }
    }

    func testUnifiedMaxAndSigmoid() {
        for (name, p, params) in Self.flashShapes where params["gemm"] == nil {
            var params = params
            params["block_q"] = nil
            var interleaved = p
            interleaved.documentIDs = (0..<p.kvLen).map { Int32($0 / 5 % 2) }
            var bits = p
            bits.blockMask = .random(block: 16, kvLen: p.kvLen, density: 0.5, seed: 2)
            for (label, q) in [("docs", p), ("interleaved", interleaved), ("bitmask", bits)] {
                Harness.check(Self.harness("unified_max \(label) " + name, q, kernel: "unified_max", params))
                var sp = params
                sp["bias"] = -1
                Harness.check(Self.harness("sigmoid \(label) " + name, q, kernel: "sigmoid", sp, maxAbs: 1e-4))
            }
        }
    }

    /// sparge with its prediction off (cdfthreshd 1, no P.V skip) is exact: the masks pass
    /// through the engine's tile test and element mask on the key source's runs, f32 and
    /// bf16 tiles, decode through the wide tiles, with ALiBi and sinks.
    func testSpargeExact() {
        let exact: KernelParameters = ["cdfthreshd": 1, "pvthreshd": 200]
        let shapes = Self.flashShapes.filter { $0.2["gemm"] == nil && $0.2["kv_splits"] == nil }
        for (name, p, _) in shapes {
            var interleaved = p
            interleaved.documentIDs = (0..<p.kvLen).map { Int32($0 / 7 % 3) }
            var bits = p
            bits.documentIDs = nil
            bits.blockMask = .random(block: 16, kvLen: p.kvLen, density: 0.5, seed: 11)
            var both = p
            both.blockMask = .random(block: 32, kvLen: p.kvLen, density: 0.7, seed: 12)
            for (label, q) in [("docs", p), ("interleaved", interleaved), ("bitmask", bits), ("docs+bitmask", both)] {
                for params in [exact, exact.merging(["block_q": 32, "block_kv": 32]) { $1 }] {
                    Harness.check(Self.harness("sparge \(label) \(params) " + name, q, kernel: "sparge", params))
                }
            }
            var modified = both
            modified.alibiSlopes = AttentionProblem.standardALiBiSlopes(heads: p.qHeads)
            modified.sinks = ModifierTests.sinks(p.qHeads)
            Harness.check(Self.harness("sparge alibi sinks docs+bitmask " + name, modified, kernel: "sparge", exact))
        }
    }

    /// sparge's prediction over masked blocks, at its defaults on structured inputs (it
    /// prunes): close to the float64 reference, and a key block the masks hide from every
    /// row of a q block is never kept (the blocks the kernel reports keeping).
    func testSpargePrediction() throws {
        var p = Self.docs(.init(qHeads: 4, kvHeads: 2, qLen: 1024, kvLen: 1024, qkDim: 128, causal: true), [300, 400, 324])
        p.blockMask = BlockMask(block: 64, kvLen: 1024) { qb, kb in qb == kb || (qb + kb) % 3 != 0 }
        let x = AttentionInputs(structured: p, seed: 7)
        let out = try SpargeKernel().run(p, q: x.q, k: x.k, v: x.v)
        let m = ErrorMetrics.compare(out.o.data, try ReferenceBridge.softmax(p, x).o)
        print("sparge masked defaults structured: \(m) kept \(out.stats["kept_fraction"]!) skipped blocks \(out.stats["skipped_tiles"]!)")
        XCTAssertLessThan(out.stats["kept_fraction"] ?? 1, 0.95, "the prediction prunes")
        XCTAssertLessThanOrEqual(m.relL1, 0.05, "\(m)")
        XCTAssertEqual(m.nanCount, 0)
        // bf16 tiles take the element mask too: no worse than the same tiles without masks.
        let exactBF16: KernelParameters = ["precision": 1, "cdfthreshd": 1, "pvthreshd": 200]
        var plain = p
        plain.documentIDs = nil
        plain.blockMask = nil
        let bf16 = try SpargeKernel().run(p, q: x.q, k: x.k, v: x.v, parameters: exactBF16)
        let free = try SpargeKernel().run(plain, q: x.q, k: x.k, v: x.v, parameters: exactBF16)
        let bound = max(1e-2, 1.5 * ErrorMetrics.compare(free.o.data, try ReferenceBridge.softmax(plain, x).o).maxAbs)
        XCTAssertLessThanOrEqual(ErrorMetrics.compare(bf16.o.data, try ReferenceBridge.softmax(p, x).o).maxAbs, bound)
        let kept = try XCTUnwrap(SpargeKernel().keptKeys(p) { (x.q, x.k, x.v) })
        var hidden = 0
        for (qb, row) in kept.enumerated() {
            for (kb, isKept) in row.enumerated() {
                let seen = p.blockMask!.isSet(qb, kb, kvLen: 1024) && (qb * 64..<qb * 64 + 64).contains { i in
                    (kb * 64..<max(kb * 64, min(kb * 64 + 64, i + 1))).contains { j in p.documentIDs![j] == p.documentIDs![i] }
                }
                if !seen { hidden += 1 }
                XCTAssertTrue(seen || !isKept, "q block \(qb) keeps key block \(kb), which the masks hide")
            }
        }
        XCTAssertGreaterThan(hidden, 100)
    }

    /// A bitmask that clears a row's own block but keeps a later one leaves the row's
    /// interval ending at its own (hidden) position: sparge keeps the block of the last key
    /// the row does see, so heavy pruning never leaves a row that sees keys with none
    /// (the reference's LSE is finite exactly where sparge's is).
    func testSpargeNeverLeavesASeeingRowWithoutKeys() throws {
        let pruning: KernelParameters = ["block_q": 64, "block_kv": 64, "simthreshd1": -1, "cdfthreshd": 0.05]
        var failures = 0
        for seed in 0..<6 {
            var p = AttentionProblem(qHeads: 2, kvHeads: 1, qLen: 512, kvLen: 512, qkDim: 32, causal: true)
            // About 60 % of the off-diagonal blocks set, a different pattern per seed.
            p.blockMask = BlockMask(block: 32, kvLen: 512) { qb, kb in qb != kb && (qb &* 73856093 ^ kb &* 19349663 ^ seed &* 83492791) % 5 < 3 }
            let x = AttentionInputs(structured: p, seed: UInt64(seed))
            let out = try SpargeKernel().run(p, q: x.q, k: x.k, v: x.v, parameters: pruning)
            let reference = try ReferenceBridge.softmax(p, x).lse
            for (i, lse) in out.lse.data.enumerated() where reference[i].isFinite != lse.isFinite { failures += 1 }
        }
        XCTAssertEqual(failures, 0, "rows whose LSE is finite in exactly one of sparge and the reference")
    }

    /// sparge counts the masks' work in its blocks: four documents of 256 keys, blocks of
    /// 64 x 64, every visible block kept: the same 64 of 256 (non-causal) and 40 of 136
    /// (causal) blocks per head as flash's tiles of that size.
    func testSpargeBlockCounts() throws {
        for (causal, computed, plain) in [(false, 64, 256), (true, 40, 136)] {
            let p = Self.docs(.init(qHeads: 4, kvHeads: 2, qLen: 1024, kvLen: 1024, qkDim: 16, causal: causal), [256, 256, 256, 256])
            let x = AttentionInputs(p, seed: 1)
            let out = try SpargeKernel().run(p, q: x.q, k: x.k, v: x.v, parameters: ["block_q": 64, "block_kv": 64, "cdfthreshd": 1])
            XCTAssertEqual(out.stats["tiles"], Double(computed) * 4, "causal \(causal)")
            XCTAssertEqual(out.stats["visible_blocks"], Double(computed) * 4, "causal \(causal)")
            XCTAssertEqual(out.stats["skipped_tiles"], Double(plain - computed) * 4, "causal \(causal)")
            XCTAssertEqual(out.stats["masked_tiles"], 0, "causal \(causal): sorted documents have no holes")
        }
    }

    /// Keys of other documents hold NaN/Inf: packed documents are never read (each row's
    /// keys are its document's interval).
    func testOtherDocumentsPoisonStaysOut() throws {
        let p = Self.docs(.init(qHeads: 4, kvHeads: 2, qLen: 64, kvLen: 192, qkDim: 32, causal: true), [128, 64])
        for poison in [Float.nan, .infinity] {
            var x = AttentionInputs(p, seed: 6, qScale: 2, kScale: 2)
            x.poison(keys: Array(0..<128), with: poison, p)
            for kernel in ["flash", "unified_max", "sparge"] {
                let out = try KernelRegistry.kernel(named: kernel).run(p, q: x.q, k: x.k, v: x.v)
                var clean = x
                clean.poison(keys: Array(0..<128), with: 0, p)
                let ref = try ReferenceBridge.softmax(p, clean)
                XCTAssertLessThanOrEqual(ErrorMetrics.compare(out.o.data, ref.o).maxAbs, 2e-5, "\(kernel) \(poison)")
                XCTAssertEqual(ErrorMetrics.compare(out.o.data, ref.o).nanCount, 0, "\(kernel) \(poison)")
            }
        }
    }

    /// The tiles the engine computes: 4 documents of 256 keys, tiles of 64 x 64. Non-causal:
    /// each q tile visits its own document's 4 KV tiles of 16, exactly 1/4. Causal: q tile t
    /// visits t % 4 + 1 tiles instead of t + 1 (40 of 136 per head).
    func testTileSkipping() throws {
        for (causal, computed, plain) in [(false, 64, 256), (true, 40, 136)] {
            var p = Self.docs(.init(qHeads: 4, kvHeads: 2, qLen: 1024, kvLen: 1024, qkDim: 16, causal: causal), [256, 256, 256, 256])
            let x = AttentionInputs(p, seed: 1)
            let params: KernelParameters = ["block_q": 64, "block_kv": 64, "kv_splits": 1]
            let out = try FlashKernel().run(p, q: x.q, k: x.k, v: x.v, parameters: params)
            // block_q 64 holds 64 positions of one q head: the counts above are per q head.
            let heads = 4.0
            XCTAssertEqual(out.stats["tiles"], Double(computed) * heads, "causal \(causal)")
            XCTAssertEqual(out.stats["skipped_tiles"], Double(plain - computed) * heads, "causal \(causal)")
            XCTAssertEqual(out.stats["masked_tiles"], 0, "causal \(causal): sorted documents have no holes")
            // The same counts from unified_max and sigmoid (the engine counts, not the variant).
            for kernel in ["unified_max", "sigmoid"] {
                let o = try KernelRegistry.kernel(named: kernel).run(p, q: x.q, k: x.k, v: x.v,
                                                                      parameters: ["block_kv": 64, "kv_splits": 1])
                XCTAssertEqual(o.stats["skipped_fraction"] ?? 0, 1 - Double(computed) / Double(plain), accuracy: 0.05, kernel)
            }
            // A bitmask hiding every other block on top: partly visible tiles get the element mask.
            p.blockMask = BlockMask(block: 32, kvLen: 1024) { ($0 + $1) % 2 == 0 || $0 == $1 }
            let masked = try FlashKernel().run(p, q: x.q, k: x.k, v: x.v, parameters: params)
            XCTAssertGreaterThan(masked.stats["masked_tiles"] ?? 0, 0)
            Harness.check(Self.harness("skipping, causal \(causal)", p, params))
        }
    }

    /// Skipping from the bitmask alone: a block-diagonal bitmask over 4 blocks of 256.
    func testBitmaskSkipping() throws {
        var p = AttentionProblem(qHeads: 2, qLen: 1024, kvLen: 1024, qkDim: 16)
        p.blockMask = BlockMask(block: 256, kvLen: 1024) { $0 == $1 }
        let x = AttentionInputs(p, seed: 1)
        let out = try FlashKernel().run(p, q: x.q, k: x.k, v: x.v, parameters: ["block_q": 64, "block_kv": 64, "kv_splits": 1])
        XCTAssertEqual(out.stats["skipped_fraction"], 0.75)
    }

    /// Masks that hide nothing (one document, every bit set) give the unmasked output bit for
    /// bit: no element mask, the same tiles in the same order.
    func testOpenMasksChangeNoBit() throws {
        for (name, p, params) in Self.flashShapes {
            var plain = p
            plain.documentIDs = nil
            let x = AttentionInputs(plain, seed: 8)
            var open = plain
            open.documentIDs = [Int32](repeating: 7, count: p.kvLen)
            open.blockMask = BlockMask(block: 16, kvLen: p.kvLen) { _, _ in true }
            for kernel in ["flash", "unified_max"] where params["gemm"] == nil || kernel == "flash" {
                let k = try KernelRegistry.kernel(named: kernel)
                let params = kernel == "flash" ? params : [:]
                let a = try k.run(plain, q: x.q, k: x.k, v: x.v, parameters: params)
                let b = try k.run(open, q: x.q, k: x.k, v: x.v, parameters: params)
                XCTAssertEqual(a.o.data.map(\.bitPattern), b.o.data.map(\.bitPattern), "\(kernel) \(name)")
                XCTAssertEqual(a.lse.data.map(\.bitPattern), b.lse.data.map(\.bitPattern), "\(kernel) \(name)")
            }
        }
    }

    /// Visible pairs (the benchmarks' FLOP count) follow the masks.
    func testVisiblePairs() throws {
        let p = Self.docs(.init(qHeads: 1, qLen: 10, kvLen: 10, qkDim: 8, causal: true), [4, 6])
        XCTAssertEqual(p.visiblePairs, 10 + 21)
        var q = p
        q.documentIDs = nil
        q.blockMask = BlockMask(block: 5, kvLen: 10) { qb, kb in qb == kb }
        XCTAssertEqual(q.visiblePairs, 15 + 15)
    }

    func testRefusalsAndBadInput() throws {
        let p = Self.docs(.init(qHeads: 2, qLen: 8, kvLen: 8, qkDim: 16, causal: true), [3, 5])
        for kernel in ["flash", "unified_max", "sigmoid", "sparge"] {
            XCTAssertEqual(try KernelRegistry.kernel(named: kernel).unsupportedReasons(p), [], kernel)
        }
        for kernel in KernelRegistry.all where ["kascade", "hybrid", "prefix_shared"].contains(kernel.name) {
            XCTAssertTrue(kernel.unsupportedReasons(p).contains(
                "\(kernel.name) does not implement document or block masks (masks); flash, unified_max, sigmoid and sparge do"),
                "\(kernel.name): \(kernel.unsupportedReasons(p))")
        }
        XCTAssertThrowsError(try AttentionProblem.documentIDs(lengths: [3, 4], kvLen: 8)) {
            XCTAssertEqual("\($0)", "document lengths 3,4 sum to 7, not to the 8 keys")
        }
        XCTAssertThrowsError(try AttentionProblem.documentIDs(lengths: [8, 0], kvLen: 8)) {
            XCTAssertEqual("\($0)", "document lengths must be >= 1, got 0")
        }
        var bad = p
        bad.documentIDs = [0, 0, 1]
        XCTAssertEqual(bad.validationError(), "document ids have 3 entries but the problem has 8 keys")
        bad = p
        bad.qOffset = 2
        XCTAssertEqual(bad.validationError(), "masks need every query position to be a key position (q_offset 2, q_len 8, kv_len 8)")
        bad = p
        bad.documentIDs = nil
        bad.blockMask = BlockMask(block: 4, bits: [0xFF, 0xFF])
        XCTAssertEqual(bad.validationError(), "the block mask has 2 bytes but 2x2 blocks of 4 need 1")
        // In C: a kernel that does not pass ATTUNE_ACCEPTS_MASKS refuses, naming it.
        var c = p.cProblem
        var status = attune_status()
        let message = { withUnsafeBytes(of: status.message) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) } }
        p.withModifiers(&c) { c in
            XCTAssertEqual(attune_attention_validate_kv(&c, nil, 1, "kascade", &status), Int32(ATTUNE_ERR_UNSUPPORTED.rawValue))
            XCTAssertEqual(message(), "kascade does not implement masks (doc_ids)")
            c.block_mask = UnsafePointer(bitPattern: 1)
            c.mask_block = 0
            XCTAssertEqual(attune_attention_validate_kv(&c, nil, 1 | ATTUNE_ACCEPTS_MASKS, "flash", &status),
                           Int32(ATTUNE_ERR_INVALID_ARGUMENT.rawValue))
            XCTAssertEqual(message(), "mask_block must be in [1, 2^31), got 0")
            c.block_mask = nil
        }
    }

    /// The masked reference differs from the unmasked one on these inputs.
    private func assertMaskMatters(_ c: HarnessCase, file: StaticString = #filePath, line: UInt = #line) {
        let x = AttentionInputs(c.problem, seed: c.seed, qScale: c.qScale, kScale: c.kScale)
        var plain = c.problem
        plain.documentIDs = nil
        plain.blockMask = nil
        let (a, b) = (try? ReferenceBridge.softmax(c.problem, x), try? ReferenceBridge.softmax(plain, x))
        let o = zip(a?.o ?? [], b?.o ?? []).map { abs($0 - $1) }.max() ?? 0
        XCTAssertGreaterThan(o, 1e-2, c.name, file: file, line: line)
    }
}
