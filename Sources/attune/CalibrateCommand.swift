import ArgumentParser
import AttuneIR
import AttuneKernels
import AttuneRuntime
import AttuneTensor
import Foundation

struct CalibrateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "calibrate",
        abstract: "Measure attention-score statistics on calibration tokens and store unified_max's phi per (layer, head).",
        discussion: """
        --data is a .npy of integer token ids: shape [n] (one sequence) or [sequences, n]. Each \
        sequence runs from an empty cache through the float64 reference interpreter; for every \
        layer and q head the maximum score of each query row is recorded. The file (JSON) holds \
        the statistics, phi = the median row maximum, and the model's hash: `--calibration FILE` \
        on compile/run/inspect refuses it for any other model.
        --kascade --anchors K also measures, row by row, how much of each layer's own top-k \
        probability mass an earlier layer's top-k keeps (per kv-head pair, minimum over rows), \
        and picks K anchor layers (layer 1 first; layer 0 stays dense) by dynamic programming, \
        with a head map per reuse layer. Measure with the kascade settings you compile with \
        (--param fraction=, min_k=, tile=).
        """
    )

    @Argument(help: "Hugging Face model folder or .attn file.") var model: String
    @Option(help: "Token ids (.npy, integers, [n] or [sequences, n]).") var data: String
    @Option(name: .shortAndLong, help: "Calibration file to write (JSON).") var output: String
    @Flag(help: "Also choose kascade anchor layers and head maps.") var kascade = false
    @Option(help: "With --kascade: number of anchor layers.") var anchors: Int = 2
    @Option(name: .customLong("param"), help: "With --kascade: kascade setting name=value (fraction, min_k, tile; repeatable).")
    var params: [String] = []

    func run() throws {
        try OutputPath.requireWritableFile(output, option: "-o")
        let (shape, values) = try Npy.readIntegers(contentsOf: URL(fileURLWithPath: data))
        guard shape.count == 1 || shape.count == 2, let n = shape.last, n > 0, shape.first! > 0 else {
            throw CLIError("\(data): token ids must have shape [n] or [sequences, n] with n >= 1, got \(shape)")
        }
        let sequences = stride(from: 0, to: values.count, by: n).map { start in
            values[start..<start + n].map { Int32(clamping: $0) }
        }
        if let bad = values.first(where: { $0 < 0 || $0 > Int64(Int32.max) }) {
            throw CLIError("\(data): token id \(bad) is not a valid id")
        }
        // Everything the calibration would trip on is checked before it runs (it takes
        // minutes on a real model): settings, then ids and anchors against the model.
        var request: Calibrator.KascadeRequest?
        if kascade {
            let parameters = try parseParameters(params)
            try KascadeKernel().checkParameters(parameters)
            request = Calibrator.KascadeRequest(anchors: anchors, parameters: parameters)
        } else if !params.isEmpty {
            throw CLIError("--param is for --kascade")
        }
        let loaded = try ModelSource.load(model)
        if let vocab = Self.vocabulary(loaded.graph), let i = values.firstIndex(where: { $0 >= Int64(vocab) }) {
            throw CLIError("\(data): token \(i % n + 1) of sequence \(i / n + 1) is \(values[i]), outside the vocabulary of \(vocab) (ids 0...\(vocab - 1))")
        }
        if kascade {
            let layers = Set(loaded.graph.nodes.compactMap { node -> Int? in
                if case .kvAppend(let layer, _) = node.op { return layer } else { return nil }
            }).count
            guard anchors >= 1, anchors <= layers - 1 else {
                throw CLIError("--anchors must be in 1...\(max(1, layers - 1)) for \(layers) layers, got \(anchors)")
            }
        }
        let start = Date()
        let calibration = try Calibrator.calibrate(loaded, sequences: sequences, kascade: request, progress: { done, total in
            FileHandle.standardError.write(Data("calibrated \(done)/\(total) sequences\n".utf8))
        })
        try calibration.encoded().write(to: URL(fileURLWithPath: output), options: .atomic)
        print("model      \(calibration.model) (hash \(calibration.modelHash))")
        print("data       \(calibration.sequences) sequences, \(calibration.tokens) tokens, \(fmt(Date().timeIntervalSince(start), 2)) s")
        print("layer  phi (min .. max over heads)   row max (min .. max)   rows outside fp32 window")
        for layer in calibration.layers {
            let phis = layer.heads.map(\.phi)
            let lo = layer.heads.map(\.rowMaxMin).min()!, hi = layer.heads.map(\.rowMaxMax).max()!
            let outside = layer.heads.map(\.rowsOutsideWindow).reduce(0, +)
            print("\(String(layer.layer).padding(toLength: 5, withPad: " ", startingAt: 0))  \(fmt(phis.min()!, 3)) .. \(fmt(phis.max()!, 3))".padding(toLength: 37, withPad: " ", startingAt: 0)
                  + "\(fmt(lo, 3)) .. \(fmt(hi, 3))".padding(toLength: 23, withPad: " ", startingAt: 0) + "\(outside)")
        }
        if let k = calibration.kascade {
            print("kascade    anchors \(k.anchors.map(String.init).joined(separator: ", ")) (layer 0 dense), objective \(fmt(k.objective, 4)); fraction \(k.fraction), min_k \(k.minK), tile \(k.tile)")
            for (layer, map) in k.headMapsByLayer.sorted(by: { $0.key < $1.key }) {
                let anchor = k.anchors.last { $0 < layer }!
                print("           layer \(layer) reuses layer \(anchor), kv heads → \(map.map(String.init).joined(separator: " ")), score \(fmt(k.scores[layer][anchor], 4))")
            }
        }
        print("wrote      \(output)")
    }

    /// Rows of the graph's embedding table (nil for a graph without one).
    static func vocabulary(_ graph: Graph) -> Int? {
        for node in graph.nodes {
            if case .embedding = node.op, let table = node.inputs.first {
                return graph.nodes[table.node].types[table.result].shape.first?.fixedValue
            }
        }
        return nil
    }
}
