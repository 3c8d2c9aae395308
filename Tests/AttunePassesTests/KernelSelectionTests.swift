import XCTest
import AttuneIR
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
}
