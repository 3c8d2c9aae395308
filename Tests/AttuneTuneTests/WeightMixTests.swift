import AttuneCodegen
import AttuneIR
import AttuneKernels
import AttunePasses
import AttuneRuntime
import AttuneTensor
@testable import AttuneTune
import Foundation
import XCTest

/// Weight formats group by group (WeightMix.swift) on the 2-layer fixture: 10 groups, so
/// a search is about 15 small compiles.
final class WeightMixTests: XCTestCase {
    var model: LoadedModel!
    /// Two seeded sequences of 48 ids: on them int8 everywhere costs KL 2.1e-3, the 8
    /// groups but the embedding table and layer 0's q/k/v 6.1e-4.
    let sequences: [[Int32]] = {
        var state: UInt64 = 5
        return (0..<2).map { _ in (0..<48).map { _ in
            state = state &* 6364136223846793005 &+ 1442695040888963407
            return Int32(state >> 33) % 128
        } }
    }()
    let int8 = WeightPolicy.quantized(QuantizedLayout(bits: 8))

    override func setUpWithError() throws {
        let folder = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Fixtures/models/llama")
        model = try ModelSource.load(folder.path)
    }

    /// The format of the slot holding the weight named `name`.
    static func format(of name: String, in module: EmittedModule) -> WeightFormat? {
        module.constants.first { $0.parts.contains { $0.name == name } }?.format
    }

    func tuner(_ budget: ModelBudget) -> ModelTuner {
        var t = ModelTuner(budget: 0.05, candidates: [KernelChoice(kernel: "flash")])
        t.pairs = 3
        t.modelBudgets = [budget]
        t.formats = FormatCandidates(weights: [int8], gain: .bytes)
        return t
    }

    /// The groups are the matmuls as compiled (merged q/k/v and gate/up together), and the
    /// rules name whole layers where they can, giving every weight its format.
    func testGroupsFollowTheMatmulsAndRulesRoundTrip() throws {
        let layout = try WeightLayout(model, CompileOptions(maxChunk: 8, maxContext: 64))
        XCTAssertEqual(layout.groups.map(\.label), ["model.embed_tokens"] + (0..<2).flatMap { l in
            ["self_attn.q_proj+k_proj+v_proj", "self_attn.o_proj", "mlp.gate_proj+up_proj", "mlp.down_proj"].map { "model.layers.\(l).\($0)" }
        } + ["lm_head"])
        XCTAssertEqual(layout.groups.map(\.isLookupOnly), [true] + Array(repeating: false, count: 9))
        // f32: a decode step reads one 64-wide row of the table, all of a 160 × 64 down_proj.
        XCTAssertEqual(layout.stepBytes(0), 4 * 64)
        XCTAssertEqual(layout.stepBytes(4), 4 * 160 * 64)
        XCTAssertEqual(layout.stepBytes(4, in: int8), 160 * 64 + 160 * 2 * 2, "a code a weight and an f16 scale per 32")

        // Layer 1 whole, layer 0's o_proj and lm_head alone.
        let policies: [Int: WeightPolicy] = [2: int8, 5: int8, 6: int8, 7: int8, 8: int8, 9: .bf16]
        let rules = try ModelTuner.weightRules(layout.groups, policies, base: .auto)
        XCTAssertEqual(rules.map(\.description), ["model.layers.0.self_attn.o_proj.weight=int8", "model.layers.1.=int8", "lm_head.weight=bf16"])
        var options = CompileOptions(maxChunk: 8, maxContext: 64)
        options.weightOverrides = rules
        let (_, module) = try ModelCompiler.emit(model, options)
        for (g, group) in layout.groups.enumerated() {
            for name in group.names {
                XCTAssertEqual(Self.format(of: name, in: module), (policies[g] ?? .f32).format(stored: .f32), name)
            }
        }
        XCTAssertEqual(ModelTuner.layerPrefix("model.layers.13.mlp.down_proj.weight"), "model.layers.13.")
        XCTAssertFalse("model.layers.13.mlp.down_proj.weight".contains(ModelTuner.layerPrefix("model.layers.1.mlp.weight")!))
        XCTAssertNil(ModelTuner.layerPrefix("lm_head.weight"))

        let q = ModelQuality(meanKL: 5e-4, maxKL: 1, top1Agreement: 0.98, maxAbs: 1, perplexityRatio: 1.002, positions: 10)
        XCTAssertEqual(ModelBudget.kl(1e-3).share(of: q), 0.5, accuracy: 1e-12)
        XCTAssertEqual(ModelBudget.top1(0.96).share(of: q), 0.5, accuracy: 1e-9)
        XCTAssertEqual(ModelBudget.perplexity(relativeIncrease: 0.01).share(of: q), 0.2, accuracy: 1e-9)
        XCTAssertEqual(ModelBudget.kl(0).share(of: q), .infinity)
    }

    /// int8 everywhere breaks kl=1e-3; the search keeps the budget with most groups in int8,
    /// the policy compiles exactly those slots as int8, and re-measured, the budget holds.
    func testAMixKeepsTheBudgetTheWholeFormatBreaks() throws {
        let toolchain = try Toolchain.detect()
        let r = try tuner(.kl(1e-3)).tune(model, sequences: sequences, toolchain: toolchain)
        let whole = try XCTUnwrap(r.formatTrials.first)
        XCTAssertEqual(whole.option, "weights=int8")
        XCTAssertTrue(whole.outcome.hasPrefix("over kl=0.001"), whole.summary)
        XCTAssertGreaterThan(try XCTUnwrap(whole.quality).meanKL, 1e-3)
        let mix = try XCTUnwrap(r.formatTrials.last)
        XCTAssertTrue(mix.accepted, mix.summary)
        XCTAssertNil(r.weights, "the base stays as stored")
        XCTAssertFalse(r.weightRules.isEmpty)
        XCTAssertLessThanOrEqual(r.quality.meanKL, 1e-3)
        XCTAssertGreaterThan(r.quality.meanKL, 0, "the result's quality is the mix's")
        XCTAssertEqual(r.groupSteps.filter { $0.contains(" alone on ") }.count, 10, "every group measured alone")
        XCTAssertFalse(r.groupSteps.contains { $0.contains("does not compile") }, "an int8 table alone links the q8 kernels' helpers too")
        XCTAssertLessThanOrEqual(r.groupSteps.filter { $0.contains(" cheapest groups ") }.count, 4, "bisection over 10: at most ⌈log₂ 10⌉")
        XCTAssertEqual(r.formatReport.first, "format     \(whole.summary)")
        XCTAssertEqual(r.formatReport.last, "format     \(mix.summary)")

        // The policy file carries the rules; compiled with them, the slots have those formats.
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("attune-policy-\(UUID().uuidString).json")
        defer { try? FileManager.default.removeItem(at: file) }
        try r.policyJSON.write(to: file)
        let contents = try AttentionPolicy.contents(file.path)
        XCTAssertEqual(contents.weightRules, r.weightRules)
        XCTAssertNil(contents.weights)
        var options = CompileOptions(maxContext: 48)
        options.weightOverrides = contents.weightRules
        let (_, module) = try ModelCompiler.emit(model, options)
        let layout = try WeightLayout(model, options)
        var moved = 0, kept: [String] = []
        for group in layout.groups {
            let formats = Set(group.names.map { Self.format(of: $0, in: module) })
            XCTAssertEqual(formats.count, 1, group.label)
            if formats.first == int8.format(stored: .f32) { moved += 1 } else {
                XCTAssertEqual(formats.first, .f32, group.label)
                kept.append(group.label)
            }
        }
        // The two costliest per byte saved (alone: 69 % of the budget for 0.2 kB a step, 76 % for 24 kB).
        XCTAssertEqual(kept, ["model.embed_tokens", "model.layers.0.self_attn.q_proj+k_proj+v_proj"])
        XCTAssertTrue(mix.option.hasPrefix("weights=int8 on \(moved) of 10 groups"), mix.option)
        XCTAssertTrue((1..<10).contains(moved), "a mix: \(moved) groups int8")
        XCTAssertLessThan(layout.stepBytes, try WeightLayout(model, CompileOptions(maxContext: 48)).stepBytes)

        // Measured again from the policy: the budget holds, to the same KL.
        let dense = try CompiledModel(artifacts: try ModelCompiler.compile(model, CompileOptions(maxContext: 48), toolchain: toolchain))
        let mixed = try CompiledModel(artifacts: try ModelCompiler.compile(model, options, toolchain: toolchain))
        let again = try ModelTuner.compare(dense: dense, tuned: mixed, sequences: sequences, runs: 1)
        XCTAssertEqual(again.quality.meanKL, r.quality.meanKL, accuracy: 1e-9)
        XCTAssertLessThanOrEqual(again.quality.meanKL, 1e-3)
    }

    /// A budget no group keeps alone leaves the weights as stored, with every group's cost said.
    func testABudgetNoGroupKeepsLeavesTheStoredWeights() throws {
        let r = try tuner(.kl(1e-9)).tune(model, sequences: sequences, toolchain: try Toolchain.detect())
        XCTAssertNil(r.weights)
        XCTAssertTrue(r.weightRules.isEmpty)
        XCTAssertEqual(r.formatTrials.map(\.option), ["weights=int8"], "no mix to try")
        XCTAssertEqual(r.groupSteps.filter { $0.hasSuffix(", over") }.count, 10, r.groupSteps.joined(separator: "\n"))
        XCTAssertEqual(r.groupSteps.last, "weights no group keeps every budget in int8 alone: they stay as they are")
        XCTAssertEqual(r.quality.maxAbs, 0, "flash against flash, stored weights")
        let object = try XCTUnwrap(try JSONSerialization.jsonObject(with: r.policyJSON) as? [String: Any])
        XCTAssertNil(object["weights_for"])
        XCTAssertNil(object["weights"])
    }
}
