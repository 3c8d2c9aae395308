import AttuneIR
import AttuneNumerics
import AttunePasses
import AttuneRuntime
import Foundation
import XCTest

/// The ALiBi and attention-sink IR fixtures (Tests/Fixtures/ir/llama_alibi, llama_sinks:
/// the llama fixture's graph and weights with `alibi = true`, or a sinks weight per layer,
/// on both attention nodes). Goldens: transformers' Llama in float64 with its eager
/// attention replaced by BLOOM's ALiBi (build_alibi_tensor) or gpt-oss's
/// eager_attention_forward (Tests/Fixtures/make_modifier_models.py); here they are checked
/// against Attune's own float64 interpreter and against the compiled model.
final class ModifierModelTests: XCTestCase {
    struct Golden: Decodable {
        struct Sequence: Decodable {
            var input_ids: [Int]
            var greedy_new_ids: [Int]
            var logits_f64: String
            var max_abs_diff_without_modifier: Double
        }
        var modifier: String
        var sequences: [Sequence]
    }

    static func folder(_ name: String) -> URL {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Fixtures/ir/\(name)")
    }

    func golden(_ name: String) throws -> Golden {
        try JSONDecoder().decode(Golden.self, from: Data(contentsOf: Self.folder(name).appendingPathComponent("golden.json")))
    }

    func load(_ name: String) throws -> LoadedModel {
        try ModelSource.load(Self.folder(name).appendingPathComponent("model.attn").path)
    }

    func readF64(_ name: String, _ file: String) throws -> [Double] {
        let bytes = [UInt8](try Data(contentsOf: Self.folder(name).appendingPathComponent(file)))
        let headerLen = Int(bytes[8]) | Int(bytes[9]) << 8, base = 10 + headerLen
        let header = String(decoding: bytes[10..<base], as: UTF8.self)
        guard bytes[0] == 0x93, bytes[6] == 1, header.contains("'descr': '<f8'"), header.contains("'fortran_order': False") else {
            throw RuntimeError("\(file): expected a version-1 C-order <f8 .npy")
        }
        return (0..<(bytes.count - base) / 8).map { i in
            Double(bitPattern: (0..<8).reduce(UInt64(0)) { $0 | UInt64(bytes[base + 8 * i + $1]) << (8 * $1) })
        }
    }

    func report(_ line: String) {
        if ProcessInfo.processInfo.environment["ATTUNE_PRINT_ERRORS"] != nil { print("modifier-model " + line) }
    }

    func testFixturesCarryTheModifiers() throws {
        for (name, alibi, sinks) in [("llama_alibi", true, false), ("llama_sinks", false, true)] {
            let model = try load(name)
            let nodes = model.graph.nodes.compactMap { node -> AttentionAttrs? in
                if case .attention(let a) = node.op { return a }
                return nil
            }
            XCTAssertEqual(nodes.map(\.alibi), [alibi, alibi], name)
            XCTAssertEqual(nodes.map(\.sinks), [sinks, sinks], name)
            // The modifier moves the logits by units: a model that ignored it would fail below.
            for s in try golden(name).sequences { XCTAssertGreaterThan(s.max_abs_diff_without_modifier, 0.5, name) }
        }
    }

    /// Attune's float64 interpreter (the reference's own ALiBi slopes and sink rule) equals
    /// the torch goldens, prefill and greedy steps over its KV cache.
    func testReferenceInterpreterMatchesTorchFloat64() throws {
        for name in ["llama_alibi", "llama_sinks"] {
            let model = try load(name)
            let interp = try ReferenceInterpreter(graph: model.graph, weights: model.weights)
            for (i, seq) in try golden(name).sequences.enumerated() {
                interp.reset()
                let out = try interp.run(inputs: ["tokens": F64Tensor(ids: seq.input_ids),
                                                  "positions": F64Tensor(ids: Array(0..<seq.input_ids.count))])
                let got = try XCTUnwrap(out["logits"])
                let want = try readF64(name, seq.logits_f64)
                XCTAssertEqual(got.data.count, want.count)
                let err = zip(got.data, want).map { abs($0 - $1) }.max() ?? .infinity
                XCTAssertLessThanOrEqual(err, 1e-9, "\(name) seq \(i) logits")
                report("\(name) interpreter seq \(i): max |logit - torch f64| = \(err)")
                var generated: [Int] = []
                var last = Array(got.data.suffix(got.shape[1]))
                var position = seq.input_ids.count
                for _ in seq.greedy_new_ids {
                    let next = last.indices.max { last[$0] < last[$1] }!
                    generated.append(next)
                    last = try interp.run(inputs: ["tokens": F64Tensor(ids: [next]), "positions": F64Tensor(ids: [position])])["logits"]!.data
                    position += 1
                }
                XCTAssertEqual(generated, seq.greedy_new_ids, "\(name) seq \(i) greedy")
            }
        }
    }

    /// Compiled with each kernel that takes the modifier: logits within 1e-4 of the largest
    /// |logit| of the torch goldens (prefill in chunks of 6), greedy decode ids identical.
    func testCompiledModelsMatchTorchFloat64() throws {
        let toolchain = try Toolchain.detect()
        for (name, kernel) in [("llama_alibi", nil), ("llama_alibi", "unified_max"), ("llama_sinks", nil), ("llama_sinks", "sparge")] {
            let model = try load(name)
            var options = CompileOptions(maxChunk: 6, maxContext: 64)
            if let kernel { options.kernels = KernelOverrides(global: try KernelChoice(parsing: kernel)) }
            let artifacts = try ModelCompiler.compile(model, options, toolchain: toolchain)
            let bindings = artifacts.report.output.nodes.compactMap { node -> String? in
                if case .attention(let a) = node.op { return a.binding?.kernel }
                return nil
            }
            XCTAssertEqual(bindings, Array(repeating: kernel ?? "flash", count: 2), name)
            let session = try CompiledModel(artifacts: artifacts)
            for (i, seq) in try golden(name).sequences.enumerated() {
                session.reset()
                let logits = try session.prefill(seq.input_ids.map(Int32.init))
                let want = try readF64(name, seq.logits_f64)
                let scale = want.map(abs).max() ?? 1
                let err = zip(logits, want).map { abs(Double($0) - $1) }.max() ?? .infinity
                XCTAssertLessThanOrEqual(err, 1e-4 * scale, "\(name) [\(kernel ?? "flash")] seq \(i) logits")
                report("\(name) [\(kernel ?? "flash")] seq \(i): max |logit - torch f64| = \(err) (scale \(scale))")
                var last = Array(logits.suffix(session.vocab))
                var generated: [Int] = []
                for _ in seq.greedy_new_ids {
                    let next = last.indices.max { last[$0] < last[$1] }!
                    generated.append(next)
                    last = try session.decodeStep(Int32(next))
                }
                XCTAssertEqual(generated, seq.greedy_new_ids, "\(name) [\(kernel ?? "flash")] seq \(i) greedy")
            }
        }
    }

    /// Kernels that do not take the modifier are refused with their reason, before any C is built.
    func testKernelsWithoutTheModifierAreRefused() throws {
        for (name, kernel, reason) in [
            ("llama_alibi", "kascade", "kascade does not implement ALiBi (alibi)"),
            ("llama_sinks", "sigmoid", "sigmoid"),
            ("llama_sinks", "hybrid", "hybrid does not implement attention sinks (sinks)"),
        ] {
            let model = try load(name)
            let options = CompileOptions(kernels: KernelOverrides(global: try KernelChoice(parsing: kernel)), maxChunk: 6, maxContext: 64)
            XCTAssertThrowsError(try ModelCompiler.emit(model, options), "\(name) \(kernel)") { error in
                XCTAssertTrue("\(error)".contains(reason), "\(name) \(kernel): \(error)")
            }
        }
    }
}
