import Foundation

/// The committed metrics every case is compared with, and the rules that decide a
/// regression (Docs/NUMERICS.md).
///
/// A metric regresses when it exceeds its absolute tolerance (exact kernels and compiled
/// models must stay at fp32 rounding whatever the baseline says) or when it grows by more
/// than `factor` over the baseline plus a floor (so a baseline of 0 does not make every
/// rounding difference a failure). A case in the baseline that no longer runs is a
/// regression too; a new case passes and is reported as new.
public struct Baseline: Codable, Sendable, Equatable {
    public var version: Int = 1
    public var factor: Double = 2
    public var cases: [String: [String: Double]]

    public init(cases: [String: [String: Double]]) { self.cases = cases }

    public init(_ results: [CheckCase]) {
        cases = Dictionary(uniqueKeysWithValues: results.map { ($0.id, $0.metrics) })
    }

    public static func load(_ path: String) throws -> Baseline {
        let data: Data
        do { data = try Data(contentsOf: URL(fileURLWithPath: path)) } catch { throw CheckError("\(path): cannot read the baseline (run attune check --update-baseline)") }
        let decoder = JSONDecoder()
        decoder.nonConformingFloatDecodingStrategy = .convertFromString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        do { return try decoder.decode(Baseline.self, from: data) } catch { throw CheckError("\(path): not an attune check baseline (\(error))") }
    }

    public func write(_ path: String) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        // A contract broken on purpose (a non-zero row that sees no key) records ∞.
        encoder.nonConformingFloatEncodingStrategy = Self.nonFinite
        try encoder.encode(self).write(to: URL(fileURLWithPath: path), options: .atomic)
    }

    static let nonFinite = JSONEncoder.NonConformingFloatEncodingStrategy.convertToString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")

    /// Absolute tolerances by case kind and metric; nil = no absolute bound.
    static func tolerance(_ c: CheckCase, _ metric: String) -> Double? {
        switch (c.kind, metric) {
        case (_, "nan_mismatch"): return 0
        case (.determinism, _): return 0
        // Exact kernels: fp32 rounding on ordinary problems. Where plain fp32 attention itself
        // comes within 3× of these (|q·k| ≈ 1e4: the scores' own rounding), the dynamo rule
        // in `contract_ratio`, relative to that reach, is the judge instead.
        case (.kernel, "max_abs") where c.exact && (c.eager["max_abs"] ?? 0) <= 1e-4 / 3: return 1e-4
        case (.kernel, "rel_l1") where c.exact && (c.eager["rel_l1"] ?? 0) <= 1e-5 / 3: return 1e-5
        case (_, "contract_ratio"): return 1
        case (_, "empty_row_nonzero"): return 0
        case (.kernel, "scope_mismatch"): return 0
        case (.kernel, "bf16_bound_ratio"), (.kernel, "int8qk_bound_ratio"): return 1
        case (.model, "format_bound_ratio"): return 1
        case (.model, "max_logit_error") where c.exact: return 1e-3
        case (.model, "top1_miss") where c.exact: return 0
        case (.inputs, "max_abs") where c.exact: return 1e-4
        default: return nil
        }
    }

    /// Below this, growth over the baseline is rounding, not a regression.
    static func floor(_ metric: String) -> Double {
        switch metric {
        case "max_abs", "max_logit_error": return 1e-6
        case "rel_l1": return 1e-6
        case "kl_mean", "cosine_gap": return 1e-7
        case "top1_miss": return 0.02
        case "nmse": return 1e-12
        case "rmse": return 1e-7
        case "rmse_ratio", "contract_ratio": return 0.1
        default: return 0
        }
    }

    /// Metrics that measure a case against its kernel's (or format's) documented contract:
    /// over 1 is "outside contract", whatever the baseline says.
    /// `empty_row_nonzero` is the ABI's own promise (O = 0 in rows that see no key): over 0.
    public static let contractMetrics: Set<String> = ["contract_ratio", "bf16_bound_ratio", "int8qk_bound_ratio", "format_bound_ratio",
                                                           "empty_row_nonzero"]

    public struct Regression: Sendable, Equatable {
        public var caseID: String
        public var metric: String
        public var value: Double
        public var baseline: Double?
        public var limit: Double
        public var outsideContract: Bool {
            Baseline.contractMetrics.contains(metric) && !(value <= (metric == "empty_row_nonzero" ? 0 : 1))
        }
    }

    /// `covers`: which baseline cases the run was meant to produce (a part or kernel left out
    /// on purpose is not missing); by default every case of a kind that ran.
    public func regressions(_ results: [CheckCase], covers: ((String) -> Bool)? = nil) -> [Regression] {
        var out: [Regression] = []
        let seen = Set(results.map(\.id))
        for c in results {
            for (metric, value) in c.metrics.sorted(by: { $0.key < $1.key }) {
                let base = cases[c.id]?[metric]
                var limit = Double.infinity
                if let t = Self.tolerance(c, metric) { limit = min(limit, t) }
                if let base { limit = min(limit, max(base * factor, base + Self.floor(metric))) }
                if !(value <= limit) { out.append(Regression(caseID: c.id, metric: metric, value: value, baseline: base, limit: limit)) }
            }
        }
        let expected = covers ?? { id in results.contains(where: { $0.kind.rawValue == id.split(separator: "/").first.map(String.init) }) }
        for id in cases.keys.sorted() where !seen.contains(id) && expected(id) {
            out.append(Regression(caseID: id, metric: "missing", value: .nan, baseline: nil, limit: .nan))
        }
        return out
    }
}

public struct CheckError: Error, CustomStringConvertible {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}
