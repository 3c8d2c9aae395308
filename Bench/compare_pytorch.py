#!/usr/bin/env python3
"""Compare Attune's flash-attention kernel with PyTorch's CPU SDPA (fp32).

    python3 Bench/compare_pytorch.py [--only prefill|decode] [--threads 2] [--json]

On first run this creates Bench/.venv and installs Bench/requirements.txt into
it (CPU-only torch, pinned), then re-executes itself with the venv's python.
Attune is run as `attune bench attention ... --json`; its last stdout line is
a JSON object. Both sides count 4*d FLOPs per visible (query, key) pair per
head, so the GFLOP/s columns are directly comparable.
"""
import argparse, hashlib, json, os, shutil, statistics, subprocess, sys, time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
VENV = BENCH / ".venv"
REQS = BENCH / "requirements.txt"


def ensure_venv():
    """Create/refresh Bench/.venv, then exec this script with its python."""
    py = VENV / "bin" / "python"
    if Path(sys.prefix).resolve() == VENV.resolve() or os.environ.get("ATTUNE_BENCH_VENV"):
        return
    if not py.exists():
        print(f"[setup] creating {VENV}", file=sys.stderr)
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True, stdout=sys.stderr)
    marker = VENV / ".requirements.sha256"
    want = hashlib.sha256(REQS.read_bytes()).hexdigest()
    if not marker.exists() or marker.read_text().strip() != want:
        print(f"[setup] installing {REQS.name} into the venv (torch is large; be patient)",
              file=sys.stderr)
        pip = [str(py), "-m", "pip", "install", "-r", str(REQS)]
        if subprocess.run(pip, stdout=sys.stderr).returncode:  # keep stdout clean for --json
            sys.exit("error: pip install into Bench/.venv failed (see above)")
        marker.write_text(want + "\n")
    os.environ["ATTUNE_BENCH_VENV"] = "1"
    os.execv(str(py), [str(py), str(Path(__file__).resolve())] + sys.argv[1:])


def default_shapes(only):
    # (name, B, Hq, Hkv, Lq, Lk, D, causal)
    pre = [(f"prefill N={n}", 1, 8, 8, n, n, 128, True) for n in (512, 2048, 4096)]
    # A single query at the end of the cache sees every key, so decode is run
    # non-causal (identical result, and no mask bookkeeping on either side).
    dec = [(f"decode KV={kv}", 1, 32, 8, 1, kv, 128, False) for kv in (4096, 16384)]
    return {"prefill": pre, "decode": dec}.get(only, pre + dec)


def parse_shape(spec):
    """'BxHqxHkvxLqxLkxD' with optional trailing 'c' for causal, e.g. 1x8x8x512x512x128c."""
    causal = spec.endswith("c")
    try:
        b, hq, hkv, lq, lk, d = (int(x) for x in spec.rstrip("c").split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"bad shape {spec!r}; want BxHqxHkvxLqxLkxD[c]")
    if hq % hkv or (causal and lq > lk):
        raise argparse.ArgumentTypeError(f"bad shape {spec!r}: need Hq % Hkv == 0, Lq <= Lk")
    return (spec, b, hq, hkv, lq, lk, d, causal)


def attention_flops(b, hq, lq, lk, d, causal):
    # Attune's causal mask is bottom-right aligned: query i sits at position
    # lk - lq + i and sees keys 0..lk-lq+i.  For lq == lk that is N(N+1)/2 pairs.
    pairs = lq * (lk - lq) + lq * (lq + 1) // 2 if causal else lq * lk
    return 4.0 * d * pairs * b * hq


def find_attune(explicit):
    if explicit:
        if not os.access(explicit, os.X_OK):
            sys.exit(f"error: --attune {explicit} is not an executable file")
        return explicit
    binary = ROOT / ".build" / "release" / "attune"
    if not binary.exists():
        if not shutil.which("swift"):
            sys.exit("error: no .build/release/attune and no `swift` on PATH; pass --attune PATH")
        print("[setup] building attune: swift build -c release --product attune", file=sys.stderr)
        rc = subprocess.run(["swift", "build", "-c", "release", "--product", "attune"],
                            cwd=ROOT).returncode
        if rc or not binary.exists():
            sys.exit("error: `swift build -c release --product attune` failed (the package may be "
                     "mid-edit); fix the build or pass --attune PATH, or use --torch-only")
    return str(binary)


def run_attune(exe, shape, threads, extra):
    _, b, hq, hkv, lq, lk, d, causal = shape
    cmd = [exe, "bench", "attention", "--kernel", "flash", "--batch", str(b), "--heads", str(hq),
           "--kv-heads", str(hkv), "--q-len", str(lq), "--kv-len", str(lk), "--head-dim", str(d)]
    cmd += (["--causal"] if causal else []) + ["--threads", str(threads), "--json"] + extra
    p = subprocess.run(cmd, capture_output=True, text=True)
    lines = p.stdout.strip().splitlines()
    try:
        if p.returncode:
            raise ValueError(f"exit status {p.returncode}")
        res = json.loads(lines[-1])
        missing = {"ms_median", "ms_min", "ms_max", "gflops", "kv_gbps",
                   "sgemm_gflops", "read_gbps"} - set(res)
        if missing:
            raise ValueError(f"JSON lacks {sorted(missing)}")
        return res
    except (ValueError, IndexError) as e:
        sys.exit(f"error: attune failed for {shape[0]} ({e})\n  cmd: {' '.join(cmd)}\n"
                 f"  stdout tail: {lines[-3:]}\n  stderr tail: {p.stderr.strip()[-600:]}")


def run_torch(shape, threads, warmup, repeats, gqa_native):
    import torch
    import torch.nn.functional as F
    torch.set_num_threads(threads)
    _, b, hq, hkv, lq, lk, d, causal = shape
    g = torch.Generator().manual_seed(0)
    q = torch.randn(b, hq, lq, d, generator=g)
    k = torch.randn(b, hkv, lk, d, generator=g)
    v = torch.randn(b, hkv, lk, d, generator=g)
    kw = {}
    if hq != hkv:
        if gqa_native:
            kw["enable_gqa"] = True
        else:  # materialise shared heads outside the timed region
            k, v = (t.repeat_interleave(hq // hkv, dim=1).contiguous() for t in (k, v))
    if causal and lq == lk:
        # PyTorch's is_causal is top-left aligned, Attune's bottom-right; they
        # coincide when lq == lk, so the fast is_causal path is fair here.
        kw["is_causal"] = True
    elif causal:  # explicit bottom-right mask (may route torch to a slower path)
        kw["attn_mask"] = torch.ones(lq, lk, dtype=torch.bool).tril(diagonal=lk - lq)
    times = []
    with torch.inference_mode():
        for i in range(warmup + repeats):
            t0 = time.perf_counter()
            F.scaled_dot_product_attention(q, k, v, **kw)
            if i >= warmup:
                times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times), min(times), max(times)


def probe_gqa():
    import torch
    import torch.nn.functional as F
    x, kv = torch.randn(1, 4, 2, 8), torch.randn(1, 2, 2, 8)
    try:
        F.scaled_dot_product_attention(x, kv, kv, enable_gqa=True)
        return True
    except (TypeError, RuntimeError):
        return False


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--only", choices=["prefill", "decode"], help="run one group of default shapes")
    ap.add_argument("--shapes", type=parse_shape, nargs="+", metavar="BxHqxHkvxLqxLkxD[c]",
                    help="custom shapes instead of the defaults, e.g. 1x8x8x512x512x128c")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=10, help="timed torch runs per shape")
    ap.add_argument("--attune", metavar="PATH", help="attune binary (default: .build/release/attune)")
    ap.add_argument("--attune-arg", action="append", default=[], metavar="ARG",
                    help="extra argument passed through to attune (repeatable)")
    ap.add_argument("--torch-only", action="store_true", help="skip attune entirely")
    ap.add_argument("--json", action="store_true", help="print the table as JSON on the last line")
    args = ap.parse_args()
    ensure_venv()
    import torch

    exe = None if args.torch_only else find_attune(args.attune)
    shapes = args.shapes or default_shapes(args.only)
    gqa_native = probe_gqa()
    notes = [f"torch {torch.__version__}, fp32, {args.threads} thread(s), "
             f"median of {args.repeats} after {args.warmup} warm-up"]
    if any(s[2] != s[3] for s in shapes) and not gqa_native:
        notes.append("SDPA has no enable_gqa here: K/V were repeat_interleave'd before timing")
    if any(s[7] and s[4] != s[5] for s in shapes):
        notes.append("causal Lq != Lk: torch uses an explicit bottom-right bool mask")

    rows = []
    for shape in shapes:
        name, b, hq, hkv, lq, lk, d, causal = shape
        flops = attention_flops(b, hq, lq, lk, d, causal)
        print(f"[run] {name}", file=sys.stderr, flush=True)
        t_med, t_min, t_max = run_torch(shape, args.threads, args.warmup, args.repeats, gqa_native)
        row = {"shape": name, "batch": b, "heads": hq, "kv_heads": hkv, "q_len": lq,
               "kv_len": lk, "head_dim": d, "causal": causal, "gflop": flops / 1e9,
               "torch_ms": t_med, "torch_ms_min": t_min, "torch_ms_max": t_max,
               "torch_gflops": flops / t_med / 1e6}
        if exe:
            a = run_attune(exe, shape, args.threads, args.attune_arg)
            ours = flops / a["ms_median"] / 1e6
            if abs(ours - a["gflops"]) > 0.02 * max(ours, 1e-9):
                notes.append(f"{name}: attune reports {a['gflops']:.1f} GFLOP/s, "
                             f"4*d*pairs/ms_median gives {ours:.1f}")
            row.update({f"attune_{k}": v for k, v in a.items()})
            row["speedup"] = t_med / a["ms_median"]
            row["attune_vs_sgemm"] = a["gflops"] / a["sgemm_gflops"] if a["sgemm_gflops"] else None
            row["attune_vs_read_bw"] = a["kv_gbps"] / a["read_gbps"] if a["read_gbps"] else None
        rows.append(row)

    fmt = lambda v, spec: "-" if v is None else format(v, spec)
    hdr = ["shape", "torch ms", "torch GF/s", "attune ms", "attune GF/s",
           "torch/attune", "attune/sgemm", "attune/read-bw"]
    table = [[r["shape"], fmt(r["torch_ms"], ".3f"), fmt(r["torch_gflops"], ".1f"),
              fmt(r.get("attune_ms_median"), ".3f"), fmt(r.get("attune_gflops"), ".1f"),
              fmt(r.get("speedup"), ".2f") + ("x" if "speedup" in r else ""),
              fmt(r.get("attune_vs_sgemm"), ".0%"), fmt(r.get("attune_vs_read_bw"), ".0%")]
             for r in rows]
    widths = [max(len(str(c)) for c in col) for col in zip(hdr, *table)]
    for line in [hdr, ["-" * w for w in widths]] + table:
        print("  ".join(str(c).rjust(w) if i else str(c).ljust(w)
                        for i, (c, w) in enumerate(zip(line, widths))))
    for n in notes:
        print(f"note: {n}")
    if args.json:
        print(json.dumps({"threads": args.threads, "torch_version": torch.__version__,
                          "enable_gqa": gqa_native, "notes": notes, "rows": rows}))


if __name__ == "__main__":
    main()
