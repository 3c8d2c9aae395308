#!/usr/bin/env python3
"""Speed against model quality for the approximate kernels and formats on the trained example
model (Tests/Fixtures/models/example), at contexts where attention matters.

    /work/venv/bin/python Bench/pareto_model.py [--attune .build/release/attune] [--context 2048]
        [--sequences 2] [--decode 128] [--repeats 3] [--budgets 0.001,0.01] [--quick] [--only 'NAME;NAME'] [--tune-formats]

Text: held-out files of the example model's corpus (the files of this machine listed in
Tests/Fixtures/example_corpus.sha1 that the training script holds out — neither the tokenizer
nor the model saw them), encoded with the model's tokenizer, joined by <|endoftext|> as in
training, cut into --sequences windows of --context tokens spread over the stream.

Each candidate (a kernel policy, a KV or weight format) runs through `attune bench model
--decode N`: the dense compile (flash, f32 KV, stored weights) and the candidate alternate in
one process, so the speed-ups are paired. The first context-N tokens of a window are
prefilled (chunks of --max-chunk, default 512), the last N are teacher-forced decode steps at
a context of up to --context keys. Quality is over every position: KL(dense ‖ candidate),
top-1 agreement and Δperplexity on the held-out next tokens.

Then `attune tune --error-budget kl=B` runs for each budget on the same windows and its
policy is measured the same way: what the tuner picks and what it costs. With --tune-formats
the tuner may also choose the KV-cache and weight formats (int8/bf16 KV, int8 weights).

Needs the venv (tokenizers, numpy). Prints a Markdown table (stdout) and progress (stderr).
"""
import argparse, json, subprocess, sys, tempfile
from pathlib import Path

import numpy as np
from tokenizers import Tokenizer

ROOT = Path(__file__).resolve().parent.parent
MODEL = ROOT / "Tests/Fixtures/models/example"
sys.path.insert(0, str(ROOT / "Tests/Fixtures"))
import train_example_model as training  # noqa: E402 (the corpus and the held-out rule)

CANDIDATES = [
    ("flash bf16 tiles", ["--attention", "flash:precision=bf16"]),
    ("unified_max", ["--attention", "unified_max"]),
    ("sparge defaults", ["--attention", "sparge"]),
    ("sparge τ=0.9 θ=0.3 bk=32", ["--attention", "sparge:cdfthreshd=0.9,simthreshd1=0.3,block_kv=32"]),
    ("kascade k=10 %", ["--attention", "kascade"]),
    ("kascade k=25 %", ["--attention", "kascade:fraction=0.25"]),
    ("kascade k=5 %, min_k=32", ["--attention", "kascade:fraction=0.05,min_k=32"]),
    ("hybrid window 512, budget 0.25", ["--attention", "hybrid:window=512"]),
    ("hybrid window 256, budget 0.5", ["--attention", "hybrid:window=256,cold_budget=0.5"]),
    ("hybrid window 256, budget 0.25, int8 cold", ["--attention", "hybrid:window=256,cold_dtype=2"]),
    ("KV bf16", ["--kv", "bf16"]),
    ("KV int8", ["--kv", "int8"]),
    ("hybrid window 512, budget 0.25, KV int8 (hot tier int8)", ["--attention", "hybrid:window=512", "--kv", "int8"]),
    ("weights int8", ["--weights", "int8"]),
]
QUICK = {"flash bf16 tiles", "sparge defaults", "kascade k=10 %", "hybrid window 512, budget 0.25", "KV int8"}


def held_out_windows(context, count):
    tok = Tokenizer.from_file(str(MODEL / "tokenizer.json"))
    eot = tok.token_to_id("<|endoftext|>")
    texts = [t for p, t in training.corpus() if training.is_held_out(p)]
    ids = []
    for enc in tok.encode_batch(texts):
        ids += enc.ids + [eot]
    if len(ids) < context * count:
        sys.exit(f"the held-out text has {len(ids)} tokens, fewer than {count} windows of {context}")
    step = len(ids) // count
    return np.array([ids[i * step:i * step + context] for i in range(count)], dtype=np.int64), len(ids)


def bench(attune, data, decode, repeats, flags):
    cmd = [attune, "bench", "model", str(MODEL), "--data", data, "--decode", str(decode),
           "--repeats", str(repeats), "--json", *flags]
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed: {out.stderr.strip()}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def tuned_policy(attune, data, budget, folder, formats):
    path = Path(folder) / f"policy-kl{budget}.json"
    cmd = [attune, "tune", str(MODEL), "--data", data, "--error-budget", f"kl={budget}", "-o", str(path)]
    if formats:
        cmd += ["--kv-candidates", "int8,bf16", "--weights-candidates", "int8"]
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed: {out.stderr.strip()}")
    policy = json.loads(path.read_text())
    layers = policy.get("layers", {})
    summary = policy.get("default", "flash") + "".join(f", layer {k}: {v}" for k, v in sorted(layers.items()))
    summary += "".join(f", decode layer {k}: {v}" for k, v in sorted(policy.get("decode", {}).get("layers", {}).items()))
    summary += "".join(f", {key} {policy[key]}" for key in ("kv", "weights") if key in policy)
    return path, summary


def row(name, r):
    dppl = 100 * (r["candidate_perplexity"] - r["baseline_perplexity"]) / r["baseline_perplexity"]
    return (f"| {name} | {r['speedup']:.2f}× | {r['decode_speedup']:.2f}× | {r['kl_mean']:.2e} | {r['decode_kl_mean']:.2e} | "
            f"{100 * r['top1_agreement']:.1f} % | {dppl:+.3f} % |")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--attune", default=str(ROOT / ".build/release/attune"))
    ap.add_argument("--context", type=int, default=2048)
    ap.add_argument("--sequences", type=int, default=2)
    ap.add_argument("--decode", type=int, default=128)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--budgets", default="0.001,0.01", help="KL budgets for attune tune, comma-separated ('' = none)")
    ap.add_argument("--quick", action="store_true", help="five candidates")
    ap.add_argument("--only", help="run only these candidates (names as in the table, separated by ';'; '' = none)")
    ap.add_argument("--tune-formats", action="store_true",
                    help="let attune tune also choose the KV and weight formats (--kv-candidates int8,bf16 --weights-candidates int8)")
    a = ap.parse_args()
    windows, total = held_out_windows(a.context, a.sequences)
    with tempfile.TemporaryDirectory() as tmp:
        data = str(Path(tmp) / "held_out.npy")
        np.save(data, windows)
        print(f"held-out stream {total} tokens; {a.sequences} windows of {a.context}, last {a.decode} decoded", file=sys.stderr)
        rows = []
        for name, flags in CANDIDATES:
            if (a.quick and name not in QUICK) or (a.only is not None and name not in a.only.split(";")):
                continue
            r = bench(a.attune, data, a.decode, a.repeats, flags)
            print(f"{name}: {json.dumps(r, sort_keys=True)}", file=sys.stderr)
            rows.append(row(name, r))
        for budget in filter(None, a.budgets.split(",")):
            path, summary = tuned_policy(a.attune, data, budget, tmp, a.tune_formats)
            r = bench(a.attune, data, a.decode, a.repeats, ["--attention-policy", str(path)])
            print(f"tune kl={budget}: {summary}: {json.dumps(r, sort_keys=True)}", file=sys.stderr)
            formats = " (formats too)" if a.tune_formats else ""
            rows.append(row(f"`tune --error-budget kl={budget}`{formats} → {summary}", r))
    print(f"| candidate (vs flash, f32 KV, bf16 weights) | prefill speed-up | decode speed-up | KL mean | KL mean, decoded | top-1 | Δppl |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
