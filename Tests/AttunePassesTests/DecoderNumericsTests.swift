import XCTest
import AttuneIR
import AttuneModels
@testable import AttunePasses

/// The fused decoder computes the same logits as the unfused one on the float64
/// reference interpreter: after a 7-token prefill and two decode steps (so the KV cache,
/// the bottom-right causal mask and the sliding window all matter).
final class DecoderNumericsTests: XCTestCase {
    let prompt = [3, 17, 8, 25, 1, 39, 12]
    let decodeSteps = [30, 6]

    func assertSameLogits(_ c: HFConfig, dtype: DType = .f32, file: StaticString = #filePath, line: UInt = #line) throws {
        let unfused = try decoder(c, dtype: dtype)
        let weights = randomWeights(for: unfused)
        let report = try Pipeline.standard().run(unfused)
        // Every intermediate graph too, so a wrong pass is named by the failure.
        for step in report.steps {
            let diff = try maxLogitDifference(unfused, step.graph, weights: weights, prompt: prompt, decode: decodeSteps)
            XCTAssertLessThanOrEqual(diff, 1e-9, "after \(step.pass)", file: file, line: line)
        }
    }

    func testLlamaWithGQA() throws { try assertSameLogits(try TinyConfigs.llamaGQA()) }
    func testQwen2WithBiasesInBF16() throws { try assertSameLogits(try TinyConfigs.qwen2Biases(), dtype: .bf16) }
    func testMistralWithSlidingWindow() throws { try assertSameLogits(try TinyConfigs.mistralWindow()) }
    func testQwen3WithQKNormInBF16() throws { try assertSameLogits(try TinyConfigs.qwen3QKNorm(), dtype: .bf16) }
    func testPhi3WithFusedProjections() throws { try assertSameLogits(try TinyConfigs.phi3Fused()) }
    func testLlamaWithSigmoidAttention() throws { try assertSameLogits(try TinyConfigs.llamaSigmoid()) }
    func testGemma2WithSoftcapsInBF16() throws { try assertSameLogits(try TinyConfigs.gemma2(), dtype: .bf16) }
}
