import ArgumentParser
import AttuneCheck
import AttuneKernels
import Foundation

struct CheckCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check",
        abstract: "Regression-test numerics: every kernel, every bundled model, determinism; against a committed baseline.",
        discussion: """
        The built-in suite runs every kernel on a fixed, seeded set of edge-case problems \
        (decode, prefill, GQA/MQA/MHA, odd and unequal head dims, windows, rows that see no \
        key, poisoned masked keys, huge scores), every bundled model compiled with each exact \
        kernel (and the approximate ones at their defaults on the 8-layer fixture) against \
        the float64 goldens, and determinism (two runs, 1 and 2 threads, bit for bit). Every \
        kernel case also reports ggml's NMSE and PyTorch dynamo's RMSE rule against plain fp32 \
        attention, and is held to its kernel's documented contract (exact kernels: those rules; \
        approximate ones: their error bound on the problems they are for): a case over it is \
        "outside contract" whatever the baseline says. Each case's metrics are compared with the baseline (default Tests/Baselines/check.json): \
        a metric over its absolute tolerance, or more than the baseline's factor (2x) over \
        its baseline value, is a regression; the command then prints a table of them and \
        exits 1. --update-baseline rewrites the file on purpose. --inputs DIR checks your own \
        q/k/v .npy for every kernel. --report FILE.html writes a self-contained page with \
        plots. Docs/NUMERICS.md explains metrics, tolerances and how to add a case.
        """
    )

    @Option(help: "Baseline file (JSON).") var baseline: String?
    @Flag(help: "Write the current metrics as the new baseline.") var updateBaseline = false
    @Option(help: "Check captured q.npy/k.npy/v.npy (this folder or its subfolders) for every kernel, instead of the suite.")
    var inputs: String?
    @Option(help: "Write an HTML report here.") var report: String?
    @Option(help: "Run only these parts of the suite: kernels, models, determinism (comma-separated).") var only: String?
    @Option(help: "Run the kernel and determinism cases of these kernels only (comma-separated names).") var kernel: String?
    @Flag(help: "Print one JSON object on the last line.") var json = false

    static var sourceRoot: URL {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    }

    func run() throws {
        if let report { try OutputPath.requireWritableFile(report, option: "--report") }
        let cases: [CheckCase]
        var covers: ((String) -> Bool)?
        let baselinePath = baseline ?? Self.sourceRoot.appendingPathComponent("Tests/Baselines/check.json").path
        if let inputs {
            cases = try InputsCheck.run(URL(fileURLWithPath: inputs))
        } else {
            var parts = Set(CheckSuite.Part.allCases)
            if let only {
                parts = try Set(only.split(separator: ",").map { name in
                    guard let p = CheckSuite.Part(rawValue: String(name)) else { throw CLIError("--only: '\(name)' is not kernels, models or determinism") }
                    return p
                })
            }
            var suite = CheckSuite(fixtures: Self.sourceRoot.appendingPathComponent("Tests/Fixtures/models"))
            if let kernel {
                let names = Set(kernel.split(separator: ",").map(String.init))
                let known = Set(KernelRegistry.all.map(\.name))
                if let bad = names.first(where: { !known.contains($0) }) {
                    throw CLIError("--kernel: '\(bad)' is not a kernel (\(known.sorted().joined(separator: ", ")))")
                }
                suite.kernelNames = names
            }
            covers = { [suite, parts] id in suite.covers(id, parts) }
            let terminal = isatty(2) != 0
            suite.progress = { done, total, current in
                if terminal {
                    let width = 30, filled = total > 0 ? done * width / total : width
                    FileHandle.standardError.write(Data("\r\u{1B}[K[\(String(repeating: "#", count: filled))\(String(repeating: ".", count: width - filled))] \(done)/\(total) \(current)\(done == total ? "\n" : "")".utf8))
                }
            }
            cases = try suite.run(parts)
        }
        if updateBaseline {
            guard inputs == nil else { throw CLIError("--update-baseline is for the built-in suite, not --inputs") }
            var merged = (try? Baseline.load(baselinePath)) ?? Baseline(cases: [:])
            for c in cases { merged.cases[c.id] = c.metrics }
            try merged.write(baselinePath)
            print("baseline   \(cases.count) cases written to \(baselinePath)")
            return
        }
        let base: Baseline? = inputs == nil ? try Baseline.load(baselinePath) : nil
        let regressions = (base ?? Baseline(cases: [:])).regressions(cases, covers: covers)
        let newCases = cases.filter { base != nil && base!.cases[$0.id] == nil }.count
        if let report {
            try HTMLReport.render(cases, baseline: base, regressions: regressions, title: "attune check").write(toFile: report, atomically: true, encoding: .utf8)
        }
        let counts = Dictionary(grouping: cases, by: \.kind).mapValues(\.count)
        print("check      \(cases.count) cases (\(counts.sorted { $0.key.rawValue < $1.key.rawValue }.map { "\($0.value) \($0.key.rawValue)" }.joined(separator: ", ")))\(newCases > 0 ? ", \(newCases) new (not in the baseline)" : "")")
        if inputs != nil {
            for c in cases {
                print("\(c.id.count >= 44 ? c.id : c.id.padding(toLength: 44, withPad: " ", startingAt: 0)) max_abs \(String(format: "%.3e", c.metrics["max_abs"] ?? .nan))  rel_l1 \(String(format: "%.3e", c.metrics["rel_l1"] ?? .nan))  cosine gap \(String(format: "%.3e", c.metrics["cosine_gap"] ?? .nan))")
            }
        }
        let judged = cases.filter { $0.contract != nil }
        let outOfScope = judged.filter { $0.contract?.outOfScope != nil }
        // One line per case outside its contract (its first such metric), then the other regressions.
        var seen = Set<String>()
        let outside = regressions.filter { $0.outsideContract && seen.insert($0.caseID).inserted }
        let others = regressions.filter { !$0.outsideContract }
        if !judged.isEmpty {
            print("contracts  \(judged.count - outOfScope.count) kernel cases held to their kernel's contract, \(outside.count) outside contract; \(outOfScope.count) out of scope (no claim: \(Set(outOfScope.map { $0.id.split(separator: "/")[1] }).sorted().joined(separator: ", ")))")
        }
        if !outside.isEmpty {
            print("OUTSIDE CONTRACT  \(outside.count) cases (the baseline does not excuse these):")
            let byID = Dictionary(cases.map { ($0.id, $0) }, uniquingKeysWith: { a, _ in a })
            for r in outside {
                var bound = byID[r.caseID]?.contract?.bound ?? (r.metric == "format_bound_ratio" ? "the format's logit bound" : "the bf16 bound")
                let metrics = byID[r.caseID]?.metrics ?? [:]
                if (metrics["empty_row_nonzero"] ?? 0) > 0 { bound = "O = 0 in rows that see no key (the ABI); " + bound }
                if (metrics["nan_mismatch"] ?? 0) > 0 { bound = "NaN exactly where the reference has it; " + bound }
                print((r.caseID.count >= 47 ? r.caseID + " " : r.caseID.padding(toLength: 48, withPad: " ", startingAt: 0))
                      + String(format: "%@ %.3e > 1   ", r.metric, r.value) + bound)
            }
        }
        if !others.isEmpty {
            print("REGRESSED  \(others.count) metrics:")
            print("case".padding(toLength: 48, withPad: " ", startingAt: 0) + "metric".padding(toLength: 18, withPad: " ", startingAt: 0) + "now          baseline     limit")
            for r in others {
                print((r.caseID.count >= 47 ? r.caseID + " " : r.caseID.padding(toLength: 48, withPad: " ", startingAt: 0)) + r.metric.padding(toLength: 18, withPad: " ", startingAt: 0)
                      + String(format: "%-12.3e %-12@ %.3e", r.value, r.baseline.map { String(format: "%.3e", $0) } ?? "—", r.limit))
            }
        }
        if regressions.isEmpty {
            print("ok         no metric regressed and no case outside its contract\(base == nil ? "" : " against \(baselinePath)")")
        }
        if let report { print("report     \(report)") }
        if json {
            let object: [String: Any] = ["cases": cases.count, "regressions": regressions.map { ["case": $0.caseID, "metric": $0.metric, "value": $0.value.isFinite ? $0.value as Any : "\($0.value)" as Any] },
                                         "outside_contract": outside.map(\.caseID), "out_of_scope": outOfScope.map(\.id)]
            print(String(decoding: try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]), as: UTF8.self))
        }
        if !regressions.isEmpty { throw ExitCode(1) }
    }
}
