#!/usr/bin/env python3
"""Speed-up against error for the approximate kernels: a sweep of settings, each timed
with `flash` in the same process (paired), plotted as SVG.

    python3 Bench/pareto.py [--attune .build/release/attune] [--out Bench/pareto.svg] [--quick]

Runs `attune bench attention --inputs structured --json` for:
  sparge   causal prefill N=4096, 8 q heads / 2 kv heads, d=128: a sweep of cdfthreshd (tau)
           and simthreshd1 (theta) and block_kv;
  kascade  decode over 32768 keys, 32 q heads / 8 kv heads, d=128 (reuse layers,
           role=1 keep=1): a sweep of fraction (k%).
and reads each run's `versus_flash` (paired speed-up, rel-L1, cosine) and the kernel's
own sparsity stat. Prints a Markdown table and writes an SVG: x = rel-L1 against flash
(log scale), y = speed-up over flash, one series per kernel, points labelled by setting.
Standard library only. The same front on the trained example model, with model-level quality
(KL, top-1, Δperplexity) instead of kernel rel-L1: Bench/pareto_model.py. Timings on a shared machine swing between processes; the ratios
are paired within each run.
"""
import argparse, json, math, subprocess, sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

SPARGE = dict(args=["--kernel", "sparge", "--heads", "8", "--kv-heads", "2", "--q-len", "4096",
                    "--head-dim", "128", "--causal", "--repeats", "5"],
              settings=[{"cdfthreshd": 0.98}, {"cdfthreshd": 0.97, "simthreshd1": 0.3},
                        {"cdfthreshd": 0.95, "block_kv": 32}, {"cdfthreshd": 0.95, "simthreshd1": 0.3, "block_kv": 32},
                        {"cdfthreshd": 0.9, "simthreshd1": 0.3, "block_kv": 32}],
              sparsity="kept_fraction")
KASCADE = dict(args=["--kernel", "kascade", "--heads", "32", "--kv-heads", "8", "--q-len", "1", "--kv-len", "32768",
                     "--head-dim", "128", "--causal", "--param", "role=1", "--param", "keep=1"],
               settings=[{"fraction": f} for f in (0.025, 0.05, 0.1, 0.2, 0.4)],
               sparsity="attended_fraction")


def run(attune, spec, setting):
    cmd = [attune, "bench", "attention", "--inputs", "structured", "--json", *spec["args"]]
    for k, v in setting.items():
        cmd += ["--param", f"{k}={v}"]
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed: {out.stderr.strip()}")
    j = json.loads(out.stdout.strip().splitlines()[-1])
    vs = j["versus_flash"]
    return dict(setting=setting, speedup=vs["speedup_paired"], rel_l1=vs["rel_l1"], cosine=vs["cosine"],
                sparsity=j["kernel_stats"].get(spec["sparsity"], float("nan")), problem=j["problem"])


def label(setting):
    short = {"cdfthreshd": "τ", "simthreshd1": "θ", "block_kv": "bk", "fraction": "k%"}
    return " ".join(f"{short.get(k, k)}={v}" for k, v in setting.items())


def svg(series, path):
    W, H, L, R, T, B = 720, 440, 70, 20, 30, 50
    pts = [p for _, ps in series for p in ps]
    xs = [math.log10(max(p["rel_l1"], 1e-4)) for p in pts]
    ys = [p["speedup"] for p in pts]
    x0, x1 = math.floor(min(xs)), math.ceil(max(xs))
    y0, y1 = 0.0, math.ceil(max(ys + [1.0]) + 0.5)
    X = lambda lx: L + (lx - x0) / max(x1 - x0, 1e-9) * (W - L - R)
    Y = lambda y: H - B - (y - y0) / (y1 - y0) * (H - T - B)
    colors = {"sparge": "#1f77b4", "kascade": "#d62728"}
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-family="sans-serif" font-size="11">',
           f'<rect width="{W}" height="{H}" fill="white"/>',
           f'<text x="{W / 2}" y="18" text-anchor="middle" font-size="13">Approximate kernels: speed-up over flash (paired) vs rel-L1 against flash</text>']
    for e in range(x0, x1 + 1):
        out.append(f'<line x1="{X(e):.1f}" y1="{T}" x2="{X(e):.1f}" y2="{H - B}" stroke="#ddd"/>')
        out.append(f'<text x="{X(e):.1f}" y="{H - B + 16}" text-anchor="middle">1e{e}</text>')
    for y in range(int(y0), int(y1) + 1):
        out.append(f'<line x1="{L}" y1="{Y(y):.1f}" x2="{W - R}" y2="{Y(y):.1f}" stroke="#ddd"/>')
        out.append(f'<text x="{L - 8}" y="{Y(y) + 4:.1f}" text-anchor="end">{y}x</text>')
    out.append(f'<line x1="{L}" y1="{Y(1):.1f}" x2="{W - R}" y2="{Y(1):.1f}" stroke="#888" stroke-dasharray="4 3"/>')
    out.append(f'<text x="{W / 2}" y="{H - 12}" text-anchor="middle">rel-L1 of the output against flash (log scale)</text>')
    out.append(f'<text x="16" y="{H / 2}" text-anchor="middle" transform="rotate(-90 16 {H / 2})">speed-up over flash</text>')
    for i, (name, ps) in enumerate(series):
        c = colors.get(name, "#333")
        ps = sorted(ps, key=lambda p: p["rel_l1"])
        coords = [(X(math.log10(max(p["rel_l1"], 1e-4))), Y(p["speedup"])) for p in ps]
        out.append('<polyline fill="none" stroke="%s" stroke-width="1.5" points="%s"/>' % (c, " ".join(f"{x:.1f},{y:.1f}" for x, y in coords)))
        for j, ((x, y), p) in enumerate(zip(coords, ps)):
            out.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="4" fill="{c}"/>')
            dy = -7 if j % 2 == 0 else 16   # alternate above/below: neighbours do not overlap
            out.append(f'<text x="{x + 6:.1f}" y="{y + dy:.1f}" fill="{c}">{label(p["setting"])}</text>')
        out.append(f'<rect x="{L + 10}" y="{T + 8 + 16 * i}" width="10" height="10" fill="{c}"/>')
        out.append(f'<text x="{L + 26}" y="{T + 17 + 16 * i}">{name}: {ps[0]["problem"]}</text>')
    out.append("</svg>")
    Path(path).write_text("\n".join(out) + "\n")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--attune", default=str(ROOT / ".build/release/attune"))
    ap.add_argument("--out", default=str(ROOT / "Bench/pareto.svg"))
    ap.add_argument("--quick", action="store_true", help="two settings per kernel")
    a = ap.parse_args()
    series = []
    for name, spec in (("sparge", SPARGE), ("kascade", KASCADE)):
        settings = spec["settings"][::2] if a.quick else spec["settings"]
        pts = []
        for s in settings:
            p = run(a.attune, spec, s)
            print(f"{name:8s} {label(s):28s} speed-up {p['speedup']:.2f}x  rel-L1 {p['rel_l1']:.4f}  "
                  f"cosine {p['cosine']:.5f}  {spec['sparsity']} {p['sparsity']:.3f}", file=sys.stderr)
            pts.append(p)
        series.append((name, pts))
    print("| kernel | setting | speed-up over flash | rel-L1 | cosine | kept / attended |")
    print("| --- | --- | --- | --- | --- | --- |")
    for name, pts in series:
        for p in pts:
            print(f"| {name} | {label(p['setting'])} | {p['speedup']:.2f}× | {p['rel_l1']:.4f} | {p['cosine']:.5f} | {p['sparsity']:.3f} |")
    svg(series, a.out)
    print(f"wrote {a.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
