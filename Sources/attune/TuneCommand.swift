import ArgumentParser
import AttuneCodegen
import AttuneKernels
import AttunePasses
import AttuneRuntime
import AttuneTensor
import AttuneTune
import Foundation

struct TuneCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tune",
        abstract: "Tune an attention kernel's parameters for a problem and keep the result in the tuning database.",
        discussion: """
        attune tune --kernel NAME [shape options] [--causal] [--space NAME=v1,v2 ...]
        measures the kernel's parameter space on that problem class (lengths rounded up to a \
        power of two): every candidate first passes a numerics check against a float64 \
        reference (exact kernels: max |error| <= 1e-4; approximate ones: rel-L1 <= \
        --error-budget), then is timed (median); the three fastest are re-timed and an A/A run \
        of the defaults gives the noise; a winner that does not beat the defaults by more \
        than the noise is not recorded as better. Records are keyed by kernel source hash, \
        problem class, CPU and ISA features, compiler, flags, thread count and schema, so a \
        record from another machine or toolchain is simply not found. A warm database \
        measures nothing; a grown space measures only the new points.
        attune tune MODEL --error-budget rel_l1=X --data tokens.npy -o policy.json chooses, per \
        attention layer, the fastest candidate (--candidate, repeatable; default flash, \
        unified_max, two sparge settings, hybrid) whose output on that layer's calibration \
        activations is within the budget of dense attention and beats flash by more than the \
        noise; calibrates unified_max's φ on the same data (--calibration-out); writes the \
        choices as an attention policy and reports, end to end, the tuned compile against the \
        dense one (max logit error, KL, top-1 agreement, perplexity, over a prefill and the \
        last tokens of each sequence as decode steps). With --kv-candidates / \
        --weights-candidates and a kl=, ppl= or top1= budget it then tries those formats \
        (weights, then KV; fewest bytes first) and writes the first that keeps every budget \
        and gains (--format-gain: decodes faster beyond the noise, or reads fewer bytes a \
        decode step) into the policy ("kv", "weights"); a format that breaks a budget on the \
        whole model is then tried matmul by matmul (weights) or layer by layer (KV): each \
        group's cost alone, then the cheapest groups per byte saved, by bisection; the groups \
        that keep it go into the policy as "weights_for" rules or "kv_layers".
        attune tune --export FILE.json / --import FILE.json share records between machines \
        (imports keep records of other machines and versions). `attune compile` reads the \
        database (--tuning-db, default the same file) and `inspect --kernels` names the \
        record behind each tuned kernel.

        Database: --db, else $ATTUNE_TUNING_DB, else ~/.cache/attune/tuning.sqlite.
        """
    )

    @Argument(help: "A model to tune layer by layer (Hugging Face folder or .attn); omit to tune one kernel.") var model: String?
    @Option(help: "Model mode: calibration token ids (.npy, [n] or [sequences, n]).") var data: String?
    @Option(name: .shortAndLong, help: "Model mode: the attention policy to write (JSON).") var output: String?
    @Option(help: "Model mode: also write the calibration (φ) the policy's unified_max layers need.") var calibrationOut: String?
    @Option(help: "Model mode: a candidate NAME[:k=v,...] (repeatable; replaces the default set).") var candidate: [String] = []
    @Option(help: "Model mode: KV-cache formats to try once the kernels are chosen, e.g. int8,bf16 (needs a kl=, ppl= or top1= budget).")
    var kvCandidates: String?
    @Option(help: "Model mode: weight formats to try, e.g. q4,int8,bf16 (as --weights takes them; needs a kl=, ppl= or top1= budget).")
    var weightsCandidates: String?
    @Option(help: "Model mode: what a format must gain to be kept: speed (decode steps faster than the current choice beyond the noise; default) or bytes (fewer bytes read per decode step; no timing).")
    var formatGain: String = "speed"
    @Flag(help: "Model mode: try format candidates on the whole model only, not group by group (the group search costs about one compile and calibration run per matmul or layer).")
    var noFormatGroups = false
    @Option(help: "Model mode: also choose this many kascade anchor layers (and head maps) on the data, into --calibration-out.")
    var kascadeAnchors: Int?
    @Option(help: "Kernel to tune.") var kernel: String?
    @OptionGroup var shape: ShapeOptions
    @Flag(help: "Causal mask (bottom-right aligned).") var causal = false
    @Option(parsing: .unconditional, help: "Sliding window.") var window: Int?
    @Option(help: "Candidate values of one parameter, NAME=v1,v2,... (repeatable; replaces its declared candidates).")
    var space: [String] = []
    @Option(help: "Error budget (repeatable): rel_l1=X per layer or kernel (default 0.05); model mode also kl=X (mean KL, nats), ppl=+X% (perplexity increase), top1=X (agreement), measured end to end on --data.")
    var errorBudget: [String] = []
    @Option(help: "Inputs to tune on: random (N(0,1)) or structured (recency, sinks, heavy hitters; Docs/WORKLOADS.md).")
    var inputs: String = "random"
    @Option(help: "Refuse spaces larger than this.") var maxCandidates: Int = 96
    @Option(help: "Least time spent timing each candidate, in seconds.") var minSeconds: Double = 0.2
    @Option(help: "Tuning database file.") var db: String?
    @Option(help: "Write every record to this JSON file.") var export: String?
    @Option(name: .customLong("import"), help: "Add the records of this JSON file.") var importFile: String?
    @Flag(help: "Print one JSON object on the last line.") var json = false

    func run() throws {
        for (path, option) in [(output, "-o"), (calibrationOut, "--calibration-out"), (export, "--export")] {
            if let path { try OutputPath.requireWritableFile(path, option: option) }
        }
        if let model { return try tuneModel(model) }
        if let export {
            let database = try TuningDatabase(path: db ?? TuningDatabase.defaultPath)
            try database.exportJSON().write(to: URL(fileURLWithPath: export), options: .atomic)
            print("exported   \(try database.allRecords().count) records to \(export)")
            return
        }
        if let importFile {
            let database = try TuningDatabase(path: db ?? TuningDatabase.defaultPath)
            try database.requireWritable()
            let data: Data
            do { data = try Data(contentsOf: URL(fileURLWithPath: importFile)) } catch {
                throw CLIError("\(importFile): cannot read: \(FileProblem.reading(importFile, error))")
            }
            print("imported   \(try database.importJSON(data, source: importFile)) records into \(database.path)")
            return
        }
        guard let name = kernel else { throw CLIError("give --kernel NAME, a MODEL, or --export / --import") }
        let k = try KernelRegistry.kernel(named: name)
        var settings = Tuner.Settings()
        settings.maxCandidates = maxCandidates
        settings.minSeconds = minSeconds
        if let budget = try budget() { settings.errorBudget = budget }
        if let model = try modelBudgets().first { throw CLIError("--error-budget \(model) is measured on a model: give MODEL and --data") }
        guard inputs == "random" || inputs == "structured" else { throw CLIError("--inputs must be random or structured, got '\(inputs)'") }
        settings.structuredInputs = inputs == "structured"
        var overrides: [String: [Double]] = [:]
        for item in space {
            let parts = item.split(separator: "=", maxSplits: 1)
            let values = parts.count == 2 ? parts[1].split(separator: ",").compactMap { try? k.parameterValue(String(parts[0]), String($0)) } : []
            guard parts.count == 2, !values.isEmpty, values.count == parts[1].split(separator: ",").count else {
                throw CLIError("--space expects NAME=v1,v2,..., got '\(item)'")
            }
            overrides[String(parts[0])] = values
        }
        let problem = try shape.problem(causal: causal, window: window)
        let tuner = Tuner(kernel: k, problem: problem, settings: settings, reporter: .standardError)
        let points = try tuner.space(overrides: overrides)
        // Opened only once everything else is known to be right, so a refused run leaves
        // no database file behind; tuning writes records, so a read-only one is refused here.
        let database = try TuningDatabase(path: db ?? TuningDatabase.defaultPath)
        try database.requireWritable()
        let outcome = try tuner.tune(space: points, database: database)
        let r = outcome.record
        print("kernel     \(k.name) on \(r.key.problem) (\(points.count) candidates, \(outcome.measured) timed now, \(outcome.rejected.count) failed the numerics check)")
        print("record     \(r.key.id) in \(database.path)")
        print("chosen     \(r.parameters.isEmpty ? "defaults" : describeParameters(r.parameters))\(r.better ? "" : " (nothing beat the baseline by more than the noise)")")
        print("time       \(fmt(r.medianMs, 3)) ms vs baseline \(fmt(r.defaultMs, 3)) ms: \(fmt(r.speedup, 3))x; A/A noise \(fmt(100 * r.noise, 1)) %")
        if json {
            let object: [String: Any] = ["id": r.key.id, "kernel": k.name, "problem": r.key.problem, "parameters": r.parameters,
                                         "median_ms": r.medianMs, "default_ms": r.defaultMs, "speedup": r.speedup, "noise": r.noise,
                                         "better": r.better, "candidates": points.count, "measured": outcome.measured,
                                         "rejected": outcome.rejected.count]
            print(String(decoding: try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]), as: UTF8.self))
        }
    }

    /// The per-layer rel-L1 budget (the last `rel_l1=` given), if any.
    func budget() throws -> Double? {
        var relL1: Double?
        for item in errorBudget {
            if try ModelBudget.parse(item) == nil { relL1 = Double(item.split(separator: "=")[1]) }
        }
        return relL1
    }

    /// `--kv-candidates` and `--weights-candidates`, parsed; one-line errors name the bad item.
    func formatCandidates() throws -> FormatCandidates {
        var f = FormatCandidates()
        for item in kvCandidates.map({ $0.split(separator: ",", omittingEmptySubsequences: false) }) ?? [] {
            do { f.kv.append(try KVFormat(parsing: String(item))) } catch let error as KernelError { throw CLIError("--kv-candidates: " + error.message) }
        }
        // Quantised layouts hold commas (int8:group=64,scale=f32, q4:group=64,scale=f16): an item starting with a key continues the previous one.
        var items: [String] = []
        for part in weightsCandidates.map({ $0.split(separator: ",", omittingEmptySubsequences: false).map(String.init) }) ?? [] {
            if part.hasPrefix("scale=") || part.hasPrefix("group="), let last = items.popLast() { items.append(last + "," + part) } else { items.append(part) }
        }
        for item in items {
            do { f.weights.append(try WeightPolicy(parsing: item)) } catch let error as CodegenError { throw CLIError("--weights-candidates: " + error.message) }
        }
        guard let gain = FormatGain(rawValue: formatGain) else { throw CLIError("--format-gain must be speed or bytes, got '\(formatGain)'") }
        f.gain = gain
        f.groups = !noFormatGroups
        return f
    }

    /// The end-to-end budgets (`kl=`, `ppl=`, `top1=`).
    func modelBudgets() throws -> [ModelBudget] { try errorBudget.compactMap(ModelBudget.parse) }

    func tuneModel(_ path: String) throws {
        guard let data else { throw CLIError("model mode needs --data tokens.npy (calibration token ids)") }
        guard let output else { throw CLIError("model mode needs -o policy.json (where the per-layer choices go)") }
        let (shape, values) = try Npy.readIntegers(contentsOf: URL(fileURLWithPath: data))
        guard shape.count == 1 || shape.count == 2, let n = shape.last, n > 0, shape.first! > 0 else {
            throw CLIError("\(data): token ids must have shape [n] or [sequences, n] with n >= 1, got \(shape)")
        }
        guard values.allSatisfy({ $0 >= 0 && $0 <= Int64(Int32.max) }) else { throw CLIError("\(data): token ids must be in [0, 2^31)") }
        let sequences = stride(from: 0, to: values.count, by: n).map { values[$0..<$0 + n].map { Int32($0) } }
        let candidates = try (candidate.isEmpty ? ModelTuner.defaultCandidates : candidate).map { try KernelChoice(parsing: $0) }
        var tuner = ModelTuner(budget: try budget() ?? 0.05, candidates: candidates)
        tuner.modelBudgets = try modelBudgets()
        tuner.formats = try formatCandidates()
        if !tuner.formats.isEmpty && tuner.modelBudgets.isEmpty {
            throw CLIError("--kv-candidates / --weights-candidates need an end-to-end --error-budget (kl=, ppl= or top1=): a per-layer rel-L1 does not see formats")
        }
        tuner.reporter = .standardError
        if let kascadeAnchors {
            guard calibrationOut != nil else { throw CLIError("--kascade-anchors needs --calibration-out (the anchors are stored there)") }
            tuner.kascade = Calibrator.KascadeRequest(anchors: kascadeAnchors)
        }
        let start = Date()
        let result = try tuner.tune(try ModelSource.load(path), sequences: sequences, toolchain: try Toolchain.detect())
        try result.policyJSON.write(to: URL(fileURLWithPath: output), options: .atomic)
        if let calibrationOut { try result.calibration.encoded().write(to: URL(fileURLWithPath: calibrationOut), options: .atomic) }
        // The choice column fits the longest choice (a tuned sparge spells out its parameters):
        // padding(toLength:) would cut it and run it into the next column.
        let choiceWidth = max(48, (result.layers.map { $0.choice.description.count }.max() ?? 0) + 2)
        print("layer  " + "choice".padding(toLength: choiceWidth, withPad: " ", startingAt: 0) + "vs flash   rel-L1     cosine     over budget")
        for c in result.layers {
            print(String(c.layer).padding(toLength: 7, withPad: " ", startingAt: 0) + c.choice.description.padding(toLength: choiceWidth, withPad: " ", startingAt: 0)
                  + (fmt(c.speedup, 2) + "x").padding(toLength: 11, withPad: " ", startingAt: 0)
                  + String(format: "%.2e", c.relL1).padding(toLength: 11, withPad: " ", startingAt: 0)
                  + fmt(c.cosine, 6).padding(toLength: 11, withPad: " ", startingAt: 0) + "\(c.rejected.count)")
            if let d = c.decode { print("       decode: \(d) (\(fmt(c.decodeSpeedup, 2))x flash at one query row)") }
        }
        for line in result.formatReport { print(line) }
        if !result.weightRules.isEmpty { print("weights_for \(result.weightRules.map(\.description).joined(separator: " "))") }
        if !result.kvByLayer.isEmpty { print("kv_layers  \(result.kvByLayer.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value.rawValue)" }.joined(separator: " "))") }
        let m = result.measurement, c = result.comparison
        print("model      prefill \(fmt(m.tunedMs, 3)) ms vs dense \(fmt(m.denseMs, 3)) ms (\(fmt(m.denseMs / m.tunedMs, 2))x), decode step \(fmt(m.tunedDecodeMs, 3)) ms vs \(fmt(m.denseDecodeMs, 3)) ms (\(fmt(m.denseDecodeMs / m.tunedDecodeMs, 2))x); \(c.positions) positions: max logit error \(String(format: "%.3e", c.maxAbs)), KL mean \(String(format: "%.3e", c.meanKL)), top-1 agreement \(fmt(100 * c.top1Agreement, 1)) %, perplexity ×\(fmt(result.quality.perplexityRatio, 5))")
        if !result.reverted.isEmpty {
            print("budget     \(try modelBudgets().map(\.description).joined(separator: ", ")): layers \(result.reverted.map(String.init).joined(separator: ", ")) went back to flash")
        }
        if let k = result.calibration.kascade {
            print("kascade    anchors \(k.anchors.map(String.init).joined(separator: ", ")) (layer 0 dense); compile kascade layers with --calibration")
        }
        print("wrote      \(output)\(calibrationOut.map { " and \($0)" } ?? "") in \(fmt(Date().timeIntervalSince(start), 1)) s; compile with --attention-policy \(output)\(calibrationOut.map { " --calibration \($0)" } ?? "")")
    }
}
