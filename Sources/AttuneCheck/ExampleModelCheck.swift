import AttuneRuntime
import AttuneTensor
import AttuneText
import Foundation

/// The trained example model (Tests/Fixtures/models/example) as a model case (issue 15
/// item 4d): a model with real attention, where the random-weight fixtures attend almost
/// uniformly. Compiled with f32 matmuls (its bf16 weights widened exactly), as transformers
/// computes the goldens:
///
/// - `model/example/flash`: the last-position logits of the golden prompts (one of 1200
///   tokens of a held-out file) against transformers' (`golden_last_logits.npy`). Only
///   summation order differs: measured 1.0e-6 of the logits' scale; the contract is 1e-4
///   of the scale (`contract_ratio`), and the most likely token must agree.
/// - `model/example/perplexity`: perplexity of `Tests/Fixtures/perplexity/text.txt` with
///   the model's own tokenizer against transformers' committed value (`goldens.json`, the
///   case with the longest context): measured 7.6e-8 relative, contract 1e-6.
enum ExampleModelCheck {
    static let logitBound = 1e-4
    static let perplexityBound = 1e-6

    static func run(_ folder: URL) throws -> [CheckCase] {
        let loaded = try ModelSource.load(folder.path)
        var options = CompileOptions(maxContext: 2048)
        options.weights = .f32
        let session = try CompiledModel(artifacts: try ModelCompiler.compile(loaded, options, toolchain: try Toolchain.detect()))
        return [try logits(folder, session), try perplexity(folder, session)]
    }

    static func logits(_ folder: URL, _ session: CompiledModel) throws -> CheckCase {
        guard let golden = try JSONSerialization.jsonObject(with: Data(contentsOf: folder.appendingPathComponent("golden_text.json"))) as? [String: Any],
              let cases = golden["cases"] as? [[String: Any]] else {
            throw RuntimeError("\(folder.path)/golden_text.json: no cases")
        }
        let want = try Npy.read(contentsOf: folder.appendingPathComponent("golden_last_logits.npy"))
        var worst = 0.0, misses = 0.0, maxAbs = 0.0
        for (i, c) in cases.enumerated() {
            guard let ids = c["prompt_ids"] as? [Int] else { throw RuntimeError("\(folder.path)/golden_text.json: case \(i) has no prompt_ids") }
            session.reset()
            let got = try session.prefillLast(ids.map(Int32.init))
            let row = Array(want.data[i * session.vocab..<(i + 1) * session.vocab])
            let scale = Double(row.map(abs).max() ?? 1)
            let err = Double(zip(got, row).map { abs($0 - $1) }.max() ?? .infinity)
            worst = max(worst, err / scale)
            maxAbs = max(maxAbs, err)
            if got.indices.max(by: { got[$0] < got[$1] }) != row.indices.max(by: { row[$0] < row[$1] }) { misses += 1 }
        }
        return CheckCase(id: "model/example/flash", kind: .model, exact: false,
                         metrics: ["max_logit_error": maxAbs, "relative_logit_error": worst, "top1_miss": misses / Double(cases.count),
                                   "contract_ratio": misses > 0 ? .infinity : worst / logitBound])
    }

    static func perplexity(_ folder: URL, _ session: CompiledModel) throws -> CheckCase {
        let root = folder.deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("perplexity")
        guard let goldens = try JSONSerialization.jsonObject(with: Data(contentsOf: root.appendingPathComponent("goldens.json"))) as? [String: Any],
              let cases = (goldens["example"] as? [String: Any])?["cases"] as? [[String: Any]],
              let golden = cases.max(by: { ($0["context"] as? Int ?? 0) < ($1["context"] as? Int ?? 0) }),
              let context = golden["context"] as? Int, let stride = golden["stride"] as? Int, let want = golden["perplexity"] as? Double else {
            throw RuntimeError("\(root.path)/goldens.json: no example case with context, stride and perplexity")
        }
        let text = try String(contentsOf: root.appendingPathComponent("text.txt"), encoding: .utf8)
        let ids = try Tokenizer(directory: folder).encode(text)
        let report = try Perplexity.run(session, tokens: ids, context: context, stride: stride)
        let rel = abs(report.perplexity - want) / want
        return CheckCase(id: "model/example/perplexity", kind: .model, exact: false,
                         metrics: ["perplexity_rel_diff": rel, "contract_ratio": rel / perplexityBound])
    }
}
