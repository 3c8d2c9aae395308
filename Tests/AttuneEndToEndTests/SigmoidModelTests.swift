import AttuneIR
import AttuneNumerics
import AttunePasses
import AttuneRuntime
import Foundation
import XCTest

/// The sigmoid-attention fixture (Tests/Fixtures/models/llama_sigmoid): a Llama config with
/// `"attention_normalizer": "sigmoid"` and `"sigmoid_bias": -ln 256`. transformers has no
/// sigmoid attention, so its goldens are the fixture script's numpy float64 forward pass
/// (cross-checked there against transformers with its eager attention patched to sigmoid).
final class SigmoidModelTests: XCTestCase {
    struct Golden: Decodable {
        struct Sequence: Decodable {
            var input_ids: [Int]
            var greedy_new_ids: [Int]
            var logits_f64: String
        }
        var attention_normalizer: String
        var sigmoid_bias: Double
        var sequences: [Sequence]
    }

    static var folder: URL {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Fixtures/models/llama_sigmoid")
    }

    func golden() throws -> Golden {
        try JSONDecoder().decode(Golden.self, from: Data(contentsOf: Self.folder.appendingPathComponent("golden.json")))
    }

    /// A little-endian float64 C-order .npy, kept in float64 (`Npy.read` converts to
    /// float32, whose rounding alone is ~4e-7 on these logits).
    func readF64(_ file: String) throws -> (shape: [Int], data: [Double]) {
        let bytes = [UInt8](try Data(contentsOf: Self.folder.appendingPathComponent(file)))
        guard bytes.count > 10, bytes[0] == 0x93, bytes[1...5].elementsEqual("NUMPY".utf8) else { throw RuntimeError("\(file): not .npy") }
        let major = bytes[6]
        let (headerLen, start) = major == 1 ? (Int(bytes[8]) | Int(bytes[9]) << 8, 10)
            : (Int(bytes[8]) | Int(bytes[9]) << 8 | Int(bytes[10]) << 16 | Int(bytes[11]) << 24, 12)
        let header = String(decoding: bytes[start..<start + headerLen], as: UTF8.self)
        guard header.contains("'descr': '<f8'"), header.contains("'fortran_order': False"),
              let open = header.range(of: "'shape': ("), let close = header[open.upperBound...].firstIndex(of: ")") else {
            throw RuntimeError("\(file): expected a C-order <f8 array, header \(header)")
        }
        let shape = header[open.upperBound..<close].split(separator: ",").compactMap { Int($0.trimmingCharacters(in: .whitespaces)) }
        let count = shape.reduce(1, *), base = start + headerLen
        guard bytes.count == base + 8 * count else { throw RuntimeError("\(file): size mismatch") }
        let data = (0..<count).map { i in
            Double(bitPattern: (0..<8).reduce(UInt64(0)) { $0 | UInt64(bytes[base + 8 * i + $1]) << (8 * $1) })
        }
        return (shape, data)
    }

    /// Measured errors, printed with ATTUNE_PRINT_ERRORS=1.
    func report(_ line: String) {
        if ProcessInfo.processInfo.environment["ATTUNE_PRINT_ERRORS"] != nil { print("sigmoid-model " + line) }
    }

    func testFixtureIsSigmoidAttention() throws {
        let g = try golden()
        XCTAssertEqual(g.attention_normalizer, "sigmoid")
        XCTAssertEqual(g.sigmoid_bias, -Foundation.log(256.0), accuracy: 1e-15)
        let model = try ModelSource.load(Self.folder.path)
        let biases = model.graph.nodes.compactMap { node -> Double? in
            if case .attention(let a) = node.op, case .sigmoid(let b) = a.normalizer { return b }
            return nil
        }
        XCTAssertEqual(biases, [g.sigmoid_bias, g.sigmoid_bias], "both layers' attention must be sigmoid with the config's bias")
    }

    /// The float64 reference interpreter on the imported graph equals the numpy forward.
    func testReferenceInterpreterMatchesNumpyFloat64() throws {
        let g = try golden()
        let model = try ModelSource.load(Self.folder.path)
        let interp = try ReferenceInterpreter(graph: model.graph, weights: model.weights)
        for (i, seq) in g.sequences.enumerated() {
            interp.reset()
            let out = try interp.run(inputs: ["tokens": F64Tensor(ids: seq.input_ids),
                                              "positions": F64Tensor(ids: Array(0..<seq.input_ids.count))])
            let got = try XCTUnwrap(out["logits"])
            let want = try readF64(seq.logits_f64)
            XCTAssertEqual(got.shape, want.shape, "seq \(i)")
            let err = zip(got.data, want.data).map { abs($0 - $1) }.max() ?? .infinity
            XCTAssertLessThanOrEqual(err, 1e-6, "seq \(i) logits")
            report("reference interpreter seq \(i): max |logit - numpy f64| = \(err)")

            var generated: [Int] = []
            var last = Array(got.data.suffix(got.shape[1]))
            var position = seq.input_ids.count
            for _ in seq.greedy_new_ids {
                let next = last.indices.max { last[$0] < last[$1] }!
                generated.append(next)
                let step = try interp.run(inputs: ["tokens": F64Tensor(ids: [next]), "positions": F64Tensor(ids: [position])])
                last = step["logits"]!.data
                position += 1
            }
            XCTAssertEqual(generated, seq.greedy_new_ids, "seq \(i) greedy")
        }
    }

    /// The compiled model (kernel selection binds `sigmoid`, codegen passes the model's bias)
    /// against the numpy float64 logits, prefill in chunks and then greedy decode steps.
    func testCompiledModelMatchesNumpyFloat64() throws {
        let g = try golden()
        let model = try ModelSource.load(Self.folder.path)
        let toolchain = try Toolchain.detect()
        // A chunk of 6 makes the 16-token prompt run as three forward passes.
        let artifacts = try ModelCompiler.compile(model, CompileOptions(maxChunk: 6, maxContext: 64), toolchain: toolchain)
        let bindings = artifacts.report.output.nodes.compactMap { node -> String? in
            if case .attention(let a) = node.op { return a.binding?.kernel }
            return nil
        }
        XCTAssertEqual(bindings, ["sigmoid", "sigmoid"])
        let session = try CompiledModel(artifacts: artifacts)
        for (i, seq) in g.sequences.enumerated() {
            session.reset()
            let logits = try session.prefill(seq.input_ids.map(Int32.init))
            let want = try readF64(seq.logits_f64)
            XCTAssertEqual(logits.count, want.data.count)
            let err = zip(logits, want.data).map { abs(Double($0) - $1) }.max() ?? .infinity
            XCTAssertLessThanOrEqual(err, 1e-4, "seq \(i) logits")
            report("compiled model seq \(i): max |logit - numpy f64| = \(err)")
            var last = Array(logits.suffix(session.vocab))
            var generated: [Int] = []
            for _ in seq.greedy_new_ids {
                let next = last.indices.max { last[$0] < last[$1] }!
                generated.append(next)
                last = try session.decodeStep(Int32(next))
            }
            XCTAssertEqual(generated, seq.greedy_new_ids, "seq \(i) greedy")
        }
    }

    /// The bias is the model's: asking the kernel for another one is refused, not dropped;
    /// repeating the model's own is fine.
    func testAnotherBiasIsRefused() throws {
        let model = try ModelSource.load(Self.folder.path)
        func options(_ bias: Double) throws -> CompileOptions {
            CompileOptions(kernels: KernelOverrides(global: try KernelChoice(parsing: "sigmoid:bias=\(bias)")), maxChunk: 6, maxContext: 64)
        }
        XCTAssertThrowsError(try ModelCompiler.emit(model, try options(-3))) { error in
            XCTAssertTrue("\(error)".contains("a kernel parameter bias=-3.0 would change the model, so it is refused"), "\(error)")
        }
        XCTAssertNoThrow(try ModelCompiler.emit(model, try options(-Foundation.log(256.0))))
    }
}
