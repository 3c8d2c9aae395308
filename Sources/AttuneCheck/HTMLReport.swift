import Foundation

/// `attune check --report FILE.html`: one self-contained page (inline SVG, no scripts, no
/// external files) with the error of every case against its baseline, where in the
/// sequence kernels err, the kascade key masks, and the regressions.
public enum HTMLReport {
    public static func render(_ cases: [CheckCase], baseline: Baseline?, regressions: [Baseline.Regression], title: String) -> String {
        let failed = Set(regressions.map(\.caseID))
        let outside = Set(regressions.filter(\.outsideContract).map(\.caseID))
        var h = """
        <!DOCTYPE html>
        <html><head><meta charset="utf-8"><title>\(esc(title))</title>
        <style>
        body { font-family: sans-serif; margin: 24px; color: #222; }
        table { border-collapse: collapse; font-size: 12px; margin: 8px 0 20px; }
        td, th { border: 1px solid #ccc; padding: 3px 8px; text-align: right; }
        td:first-child, th:first-child { text-align: left; }
        .bad { color: #b00; font-weight: bold; } .ok { color: #070; } .scope { color: #888; }
        td.outside { background: #fdd; color: #b00; font-weight: bold; }
        h2 { margin-top: 32px; }
        </style></head><body>
        <h1>\(esc(title))</h1>
        <p>\(cases.count) cases; <span class="\(regressions.isEmpty ? "ok" : "bad")">\(regressions.isEmpty ? "no regressions" : "\(regressions.count) regressions in \(failed.count) cases")</span>\(baseline == nil ? " (no baseline)" : ", against the committed baseline (growth factor \(baseline!.factor)×)").</p>
        """
        if !outside.isEmpty {
            h += "<p class=\"bad\">\(outside.count) cases outside contract: their kernel's documented bound is exceeded, whatever the baseline says.</p>"
        }
        if !regressions.isEmpty {
            h += "<h2>Regressions</h2><table><tr><th>case</th><th>metric</th><th>now</th><th>baseline</th><th>limit</th></tr>"
            for r in regressions {
                h += "<tr><td>\(esc(r.caseID))</td><td>\(r.metric)</td><td class=\"bad\">\(num(r.value))</td><td>\(r.baseline.map(num) ?? "—")</td><td>\(num(r.limit))</td></tr>"
            }
            h += "</table>"
        }
        let kernels = cases.filter { $0.kind == .kernel }
        h += contracts(kernels, outside: outside)
        h += "<h2>Kernels: rel-L1 against the float64 reference</h2><p>Bar: now; black tick: baseline. Red: a regressed case.</p>"
        h += bars(kernels, metric: "rel_l1", baseline: baseline, failed: failed)
        let models = cases.filter { $0.kind == .model }
        h += "<h2>Compiled models: max logit error against the float64 goldens</h2>"
        h += bars(models, metric: "max_logit_error", baseline: baseline, failed: failed)
        h += table(models, ["max_logit_error", "kl_mean", "top1_miss"], failed)
        h += "<h2>Where in the sequence the error sits</h2><p>Largest |error| of each query row (over heads and dims), prefill cases, log scale.</p>"
        h += rowPlot(kernels.filter { $0.rowError.count > 1 && $0.id.hasSuffix("/prefill-causal") })
        for c in kernels where !c.mask.isEmpty && c.mask.count > 1 {
            if c.id.hasPrefix("kernel/sparge/") {
                h += "<h2>sparge: kept blocks of \(esc(c.id))</h2><p>Row: query block; column: key block (batch 0, q head 0, 64 × 64 blocks, defaults). Dark: kept.</p>"
            } else {
                h += "<h2>kascade: attended keys of \(esc(c.id))</h2><p>Row: query tile; column: key (batch 0, kv head 0). Dark: attended (selected history + own tile).</p>"
            }
            h += maskImage(c.mask)
        }
        let det = cases.filter { $0.kind == .determinism }
        h += "<h2>Determinism</h2><p>Largest difference between two runs, and between 1 and 2 threads (0 = identical bits).</p>"
        h += table(det, ["rerun_diff", "threads_diff"], failed)
        let inputs = cases.filter { $0.kind == .inputs }
        if !inputs.isEmpty {
            h += "<h2>Your inputs</h2>" + table(inputs, ["max_abs", "rel_l1", "cosine_gap", "nan_mismatch"], failed)
        }
        h += "<h2>All kernel cases</h2>" + table(kernels, ["max_abs", "rel_l1", "cosine_gap", "nmse", "rmse_ratio", "nan_mismatch"], failed)
        h += "</body></html>\n"
        return h
    }

    /// Every kernel case against its kernel's contract: the bound, NMSE (ggml), the dynamo
    /// RMSE ratio, measured / bound, and the verdict — "outside contract" in red, cases the
    /// kernel is not meant for in grey with the reason.
    static func contracts(_ kernels: [CheckCase], outside: Set<String>) -> String {
        let judged = kernels.filter { $0.contract != nil }
        guard !judged.isEmpty else { return "" }
        var h = "<h2>Kernel contracts</h2><p>NMSE = Σ(O − O₆₄)² / Σ O₆₄² (ggml test-backend-ops; flash attention bound 5e-4). "
        h += "RMSE ratio = RMSE(O, O₆₄) / (m · RMSE(fp32 eager, O₆₄) + 1e-5) (PyTorch dynamo, m = 2, or 3 under 1000 elements; ≤ 1 passes). "
        h += "Contract ratio = measured / the kernel's documented bound (Docs/NUMERICS.md): over 1 is outside contract.</p>"
        h += "<table><tr><th>case</th><th>contract</th><th>nmse</th><th>rmse_ratio</th><th>rel_l1</th><th>contract_ratio</th><th>verdict</th></tr>"
        for c in judged {
            let v = c.contract!
            let verdict: String
            if outside.contains(c.id) { verdict = "<td class=\"outside\">outside contract</td>" }
            else if let reason = v.outOfScope { verdict = "<td class=\"scope\">out of scope: \(esc(reason))</td>" }
            else { verdict = "<td class=\"ok\">inside</td>" }
            h += "<tr><td\(outside.contains(c.id) ? " class=\"outside\"" : "")>\(esc(c.id))</td><td>\(esc(v.bound))</td>"
            h += ["nmse", "rmse_ratio", "rel_l1", "contract_ratio"].map { "<td>\(num(c.metrics[$0] ?? .nan))</td>" }.joined() + verdict + "</tr>"
        }
        return h + "</table>"
    }

    static func esc(_ s: String) -> String {
        s.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;").replacingOccurrences(of: ">", with: "&gt;")
    }

    static func num(_ x: Double) -> String { x.isNaN ? "—" : (x == 0 ? "0" : String(format: "%.3g", x)) }

    static func table(_ cases: [CheckCase], _ metrics: [String], _ failed: Set<String>) -> String {
        var h = "<table><tr><th>case</th>" + metrics.map { "<th>\($0)</th>" }.joined() + "</tr>"
        for c in cases {
            h += "<tr><td class=\"\(failed.contains(c.id) ? "bad" : "")\">\(esc(c.id))</td>" + metrics.map { "<td>\(num(c.metrics[$0] ?? .nan))</td>" }.joined() + "</tr>"
        }
        return h + "</table>"
    }

    /// Horizontal bars on a log scale, one per case.
    static func bars(_ cases: [CheckCase], metric: String, baseline: Baseline?, failed: Set<String>) -> String {
        guard !cases.isEmpty else { return "" }
        let rowH = 14, left = 330, width = 460, height = cases.count * rowH + 30
        let lo = -12.0, hi = 1.0
        func x(_ v: Double) -> Double {
            let l = log10(max(v, 1e-12))
            return Double(left) + (min(max(l, lo), hi) - lo) / (hi - lo) * Double(width)
        }
        var s = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(left + width + 20)\" height=\"\(height)\" font-size=\"10\" font-family=\"sans-serif\">"
        for e in stride(from: Int(lo), through: Int(hi), by: 2) {
            let gx = x(pow(10, Double(e)))
            s += "<line x1=\"\(gx)\" y1=\"0\" x2=\"\(gx)\" y2=\"\(height - 18)\" stroke=\"#eee\"/><text x=\"\(gx)\" y=\"\(height - 5)\" text-anchor=\"middle\">1e\(e)</text>"
        }
        for (i, c) in cases.enumerated() {
            let y = i * rowH
            let v = c.metrics[metric] ?? 0
            let color = failed.contains(c.id) ? "#d62728" : (c.exact ? "#2ca02c" : "#1f77b4")
            s += "<text x=\"\(left - 4)\" y=\"\(y + 10)\" text-anchor=\"end\">\(esc(c.id))</text>"
            s += "<rect x=\"\(left)\" y=\"\(y + 2)\" width=\"\(max(0, x(v) - Double(left)))\" height=\"\(rowH - 4)\" fill=\"\(color)\"/>"
            if let b = baseline?.cases[c.id]?[metric] {
                s += "<line x1=\"\(x(b))\" y1=\"\(y)\" x2=\"\(x(b))\" y2=\"\(y + rowH)\" stroke=\"#000\" stroke-width=\"2\"/>"
            }
        }
        return s + "</svg>"
    }

    /// One polyline per case: row index against log10 of the row's largest error.
    static func rowPlot(_ cases: [CheckCase]) -> String {
        guard !cases.isEmpty else { return "<p>(no prefill cases)</p>" }
        let w = 760, h = 260, l = 50, b = 30
        let n = cases.map(\.rowError.count).max()!
        let lo = -9.0, hi = 0.0
        func px(_ i: Int) -> Double { Double(l) + Double(i) / Double(max(n - 1, 1)) * Double(w - l - 10) }
        func py(_ e: Double) -> Double { Double(h - b) - (min(max(log10(max(e, 1e-12)), lo), hi) - lo) / (hi - lo) * Double(h - b - 10) }
        let colors = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf"]
        var s = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(w)\" height=\"\(h + 16 * cases.count)\" font-size=\"10\" font-family=\"sans-serif\">"
        for e in stride(from: Int(lo), through: Int(hi), by: 3) {
            s += "<line x1=\"\(l)\" y1=\"\(py(pow(10, Double(e))))\" x2=\"\(w)\" y2=\"\(py(pow(10, Double(e))))\" stroke=\"#eee\"/><text x=\"\(l - 4)\" y=\"\(py(pow(10, Double(e))) + 3)\" text-anchor=\"end\">1e\(e)</text>"
        }
        s += "<text x=\"\(w / 2)\" y=\"\(h - 8)\" text-anchor=\"middle\">query row (0 … \(n - 1))</text>"
        for (k, c) in cases.enumerated() {
            let color = colors[k % colors.count]
            let points = c.rowError.enumerated().map { "\(px($0.offset)),\(py($0.element))" }.joined(separator: " ")
            s += "<polyline fill=\"none\" stroke=\"\(color)\" stroke-width=\"1.2\" points=\"\(points)\"/>"
            s += "<rect x=\"\(l)\" y=\"\(h + 16 * k)\" width=\"10\" height=\"10\" fill=\"\(color)\"/><text x=\"\(l + 14)\" y=\"\(h + 16 * k + 9)\">\(esc(c.id))</text>"
        }
        return s + "</svg>"
    }

    /// The mask as an image: one cell per (tile, key), keys grouped to at most 400 columns.
    static func maskImage(_ mask: [[Bool]]) -> String {
        let keys = mask.first?.count ?? 0
        let group = max(1, (keys + 399) / 400)
        let cols = (keys + group - 1) / group, cell = max(2, min(16, 400 / max(cols, 1))), rowH = max(2, min(16, 300 / max(mask.count, 1)))
        var s = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(cols * cell + 2)\" height=\"\(mask.count * rowH + 2)\">"
        s += "<rect width=\"100%\" height=\"100%\" fill=\"#f4f4f4\"/>"
        for (r, row) in mask.enumerated() {
            for c in 0..<cols {
                let hit = row[(c * group)..<min(keys, (c + 1) * group)].contains(true)
                if hit { s += "<rect x=\"\(1 + c * cell)\" y=\"\(1 + r * rowH)\" width=\"\(cell)\" height=\"\(rowH)\" fill=\"#1f3b73\"/>" }
            }
        }
        return s + "</svg>"
    }
}
