import XCTest
import AttuneIR
import AttuneKernels
import AttuneModels
@testable import AttunePasses

final class KernelSelectionTests: XCTestCase {
    /// The decoder after attention fusion: attention nodes without a binding.
    func fusedDecoder(_ c: HFConfig) throws -> Graph {
        try Pass.fuseAttention.run(try decoder(c)).graph
    }

    func bindings(_ g: Graph) -> [KernelBinding?] {
        g.nodes.compactMap { if case .attention(let a) = $0.op { a.binding } else { nil } }
    }

    func testBindsFlashByRule() throws {
        let outcome = try Pass.selectKernels().run(try fusedDecoder(try TinyConfigs.mistralWindow()))
        try Verifier.verify(outcome.graph)
        XCTAssertEqual(outcome.stats.matches, 2)
        XCTAssertEqual(bindings(outcome.graph), Array(repeating: KernelBinding(kernel: "flash", reason: "rule: exact softmax → flash"), count: 2))
    }

    func testGlobalAndPerLayerOverrides() throws {
        let overrides = KernelOverrides(global: try KernelChoice(parsing: "flash:block_kv=128"),
                                        byLayer: [1: try KernelChoice(parsing: "flash:block_q=32,kv_splits=2")])
        let outcome = try Pass.selectKernels(overrides).run(try fusedDecoder(try TinyConfigs.llamaGQA()))
        XCTAssertEqual(bindings(outcome.graph), [
            KernelBinding(kernel: "flash", parameters: ["block_kv": 128], reason: "override --attention flash:block_kv=128"),
            KernelBinding(kernel: "flash", parameters: ["block_q": 32, "kv_splits": 2],
                          reason: "override for layer 1: flash:block_q=32,kv_splits=2"),
        ])
    }

    func testCalibratedPhiGoesToUnifiedMaxUnlessPhiIsGiven() throws {
        let g = try fusedDecoder(try TinyConfigs.llamaGQA())
        let heads = g.nodes.compactMap { if case .attention(let a) = $0.op { a.heads } else { nil } }[0]
        let phi = (0..<heads).map { Double($0) / 2 }
        var overrides = KernelOverrides(global: KernelChoice(kernel: "unified_max"), calibratedPhi: [0: phi])
        let bound = bindings(try Pass.selectKernels(overrides).run(g).graph)
        XCTAssertEqual(bound[0]?.tables, ["phi": phi])
        XCTAssertEqual(bound[0]?.reason, "override --attention unified_max; phi per head from calibration")
        XCTAssertEqual(bound[1]?.tables, [:], "layer 1 has no calibration")

        overrides.global = try KernelChoice(parsing: "unified_max:phi=2")
        XCTAssertEqual(bindings(try Pass.selectKernels(overrides).run(g).graph)[0]?.tables, [:], "an explicit phi wins")
        overrides.global = KernelChoice(kernel: "flash")
        XCTAssertEqual(bindings(try Pass.selectKernels(overrides).run(g).graph)[0]?.tables, [:], "only unified_max takes phi")

        overrides = KernelOverrides(global: KernelChoice(kernel: "unified_max"), calibratedPhi: [0: [1, 2, 3]])
        let refused = try Pass.selectKernels(overrides).run(g)
        XCTAssertEqual(refused.stats.refusals, ["calibration has 3 phi values for layer 0, the node has \(heads) q heads": 1])
    }

    func testBindsSigmoidAttentionOnlyToASigmoidKernel() throws {
        let g = try fusedDecoder(try TinyConfigs.llamaSigmoid())
        let outcome = try Pass.selectKernels().run(g)
        XCTAssertEqual(outcome.stats.matches, 2)
        XCTAssertEqual(bindings(outcome.graph).map { $0?.kernel }, ["sigmoid", "sigmoid"])

        let tuned = try Pass.selectKernels(KernelOverrides(global: try KernelChoice(parsing: "sigmoid:block_kv=64"))).run(g)
        XCTAssertEqual(bindings(tuned.graph).map { $0?.parameters["block_kv"] }, [64, 64], "override parameters are kept")

        // Softmax and sigmoid are the model's semantics: neither kernel is swapped in for the other.
        let refused = try Pass.selectKernels(KernelOverrides(global: KernelChoice(kernel: "flash"))).run(g)
        XCTAssertEqual(refused.stats.matches, 0)
        XCTAssertEqual(refused.stats.refusals, ["override --attention flash: 'flash' is not a sigmoid-attention kernel": 2])
        XCTAssertEqual(refused.stats.refusedAt.map(\.label), ["model.layers.0.self_attn", "model.layers.1.self_attn"])
        let softmax = try Pass.selectKernels(KernelOverrides(global: KernelChoice(kernel: "sigmoid"))).run(try fusedDecoder(try TinyConfigs.llamaGQA()))
        XCTAssertEqual(softmax.stats.matches, 0)
        XCTAssertTrue(softmax.stats.refusals.keys.allSatisfy { $0.contains("computes sigmoid attention, this node softmax") }, "\(softmax.stats.refusals)")
    }

    func testParsesKernelChoices() throws {
        XCTAssertEqual(try KernelChoice(parsing: "flash"), KernelChoice(kernel: "flash"))
        let c = try KernelChoice(parsing: "flash:block_kv=128, threads=2")
        XCTAssertEqual(c, KernelChoice(kernel: "flash", parameters: ["block_kv": 128, "threads": 2]))
        XCTAssertEqual(c.description, "flash:block_kv=128,threads=2")
        XCTAssertEqual(try KernelChoice(parsing: c.description), c)
    }

    /// Parameters may declare value names: `precision=bf16` is 1 and prints back by name.
    func testNamedParameterValues() throws {
        let c = try KernelChoice(parsing: "flash:precision=bf16,block_kv=128")
        XCTAssertEqual(c.parameters, ["precision": 1, "block_kv": 128])
        XCTAssertEqual(c.description, "flash:block_kv=128,precision=bf16")
        XCTAssertEqual(try KernelChoice(parsing: "flash:precision=1"), KernelChoice(kernel: "flash", parameters: ["precision": 1]))
        XCTAssertEqual(try KernelChoice(parsing: "flash:precision=int8qk").description, "flash:precision=int8qk")
        XCTAssertThrowsError(try KernelChoice(parsing: "sparge:precision=int8qk"), "sparge has bf16 tiles only")
        XCTAssertThrowsError(try KernelChoice(parsing: "flash:precision=fp8")) { error in
            XCTAssertTrue("\(error)".contains("bf16, f32"), "\(error)")
        }
    }

    func testRejectsBadKernelChoices() {
        for (text, fragment) in [
            ("", "missing kernel name"),
            ("turbo", "unknown kernel 'turbo'; available: flash"),
            ("flash:block_kv", "'block_kv' is not key=number"),
            ("flash:block_kv=big", "'block_kv=big' is not key=number"),
            ("flash:blok_kv=128", "kernel 'flash' has no parameter 'blok_kv'"),
            ("flash:block_kv=1.5", "must be an integer"),
            ("flash:block_q=32,block_q=64", "parameter 'block_q' is given twice"),
        ] {
            XCTAssertThrowsError(try KernelChoice(parsing: text), text) { error in
                XCTAssertTrue("\(error)".contains(fragment), "\(error) lacks \(fragment)")
            }
        }
    }

    func decodeBindings(_ g: Graph) -> [KernelBinding?] {
        g.nodes.compactMap { if case .attention(let a) = $0.op { a.decodeBinding } else { nil } }
    }

    /// A decode override binds `decodeBinding` (per layer first); one equal to the prefill
    /// binding leaves it nil, so such a compile is today's.
    func testDecodeOverridesBindTheDecodeKernel() throws {
        let g = try fusedDecoder(try TinyConfigs.llamaGQA())
        var overrides = KernelOverrides(global: try KernelChoice(parsing: "sparge"))
        overrides.decodeGlobal = KernelChoice(kernel: "flash")
        overrides.decodeByLayer = [1: try KernelChoice(parsing: "unified_max:phi=0")]
        let outcome = try Pass.selectKernels(overrides).run(g)
        XCTAssertEqual(outcome.stats.matches, 2)
        XCTAssertEqual(bindings(outcome.graph).map { $0?.kernel }, ["sparge", "sparge"])
        XCTAssertEqual(decodeBindings(outcome.graph), [
            KernelBinding(kernel: "flash", reason: "override --decode-attention flash"),
            KernelBinding(kernel: "unified_max", parameters: ["phi": 0], reason: "decode override for layer 1: unified_max:phi=0"),
        ])
        // The text form carries both bindings.
        XCTAssertEqual(try TextFormat.parse(TextFormat.print(outcome.graph)), outcome.graph)

        overrides = KernelOverrides(global: try KernelChoice(parsing: "flash:block_kv=64"))
        overrides.decodeGlobal = try KernelChoice(parsing: "flash:block_kv=64")
        XCTAssertEqual(decodeBindings(try Pass.selectKernels(overrides).run(g).graph), [nil, nil], "the same kernel on both phases")
        overrides.global = nil
        overrides.decodeGlobal = KernelChoice(kernel: "flash")
        XCTAssertEqual(decodeBindings(try Pass.selectKernels(overrides).run(g).graph), [nil, nil], "the rule's flash is the same")
    }

    /// Kernels with state the other phase would not see, a normaliser mismatch and a KV
    /// format the decode kernel cannot read are refused, naming the problem.
    func testRefusesDecodeKernelsThatCannotShareState() throws {
        let g = try fusedDecoder(try TinyConfigs.llamaGQA())
        func refusals(_ prefill: String?, _ decode: String, kv: KVFormat = .f32) throws -> [String: Int] {
            var overrides = KernelOverrides(global: try prefill.map { try KernelChoice(parsing: $0) })
            overrides.decodeGlobal = try KernelChoice(parsing: decode)
            overrides.kvFormat = kv
            return try Pass.selectKernels(overrides).run(g).stats.refusals
        }
        XCTAssertEqual(try refusals("hybrid", "flash"), [
            "prefill 'hybrid' and decode 'flash' differ, but 'hybrid' keeps its own K/V store, which the other phase would not see: give both phases the same kernel": 2])
        XCTAssertEqual(try refusals("flash", "hybrid"), [
            "prefill 'flash' and decode 'hybrid' differ, but 'hybrid' keeps its own K/V store, which the other phase would not see: give both phases the same kernel": 2])
        XCTAssertEqual(try refusals("kascade", "flash"), [
            "prefill 'kascade' and decode 'flash' differ, but 'kascade' links key selections across layers, which the other phase would not see: give both phases the same kernel": 2])
        XCTAssertEqual(try refusals("sparge", "flash", kv: .int8), [:], "flash reads int8")
        XCTAssertEqual(try refusals("flash", "sparge", kv: .int8), [
            "override --decode-attention sparge: kernel 'sparge' reads K/V as f32 only, not int8 (flash, unified_max, prefix_shared, kascade and hybrid's hot tier read bf16 and int8)": 2])
        XCTAssertEqual(try refusals(nil, "sigmoid"), [
            "override --decode-attention sigmoid: 'sigmoid' computes sigmoid attention, this node softmax": 2])

        var overrides = KernelOverrides()
        overrides.decodeGlobal = KernelChoice(kernel: "flash")
        let sigmoid = try Pass.selectKernels(overrides).run(try fusedDecoder(try TinyConfigs.llamaSigmoid()))
        XCTAssertEqual(sigmoid.stats.refusals, ["override --decode-attention flash: 'flash' is not a sigmoid-attention kernel": 2])
    }
}
