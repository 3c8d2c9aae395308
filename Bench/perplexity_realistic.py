#!/usr/bin/env python3
"""`attune perplexity` at a realistic size, against transformers on the same windows.

    /work/venv/bin/python Bench/perplexity_realistic.py [--model qwen2.5-0.5b] [--tokens 2048]
        [--context 1024] [--stride 512] [--weights f32] [--compare "--weights f32 --kv int8"]

Makes a random-weight checkpoint at the model's real shapes (Bench/realistic_models.py's
maker, in a temporary folder deleted afterwards), draws --tokens random token ids, and
scores them with `attune perplexity --tokens ids.npy --context C --stride S --json` (release
build, peak RSS from /usr/bin/time -v; `--weights f32` by default, so both tools compute in
float32 on the same weights) and with transformers' sliding-window recipe (the perplexity
guide's: each window scores the tokens no earlier window scored), in float32. Random weights make the perplexity about the vocabulary size;
what matters is that both tools give the same number, and what it costs at this size.
"""
import argparse, json, math, re, subprocess, sys, tempfile, time
from pathlib import Path

import numpy as np

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))
import realistic_models as realistic  # noqa: E402 (the checkpoint maker and the shapes)


def transformers_perplexity(folder, ids, context, stride):
    import torch
    import transformers
    model = transformers.AutoModelForCausalLM.from_pretrained(str(folder), dtype=torch.float32).eval()
    nll, count, previous_end = 0.0, 0, 0
    x = torch.tensor(ids, dtype=torch.long)
    with torch.no_grad():
        for start in range(0, len(ids), stride):
            end = min(start + context, len(ids))
            first = max(start + 1, previous_end)  # the first target no earlier window scored
            logits = model(x[start:end].unsqueeze(0)).logits[0].double()
            logp = torch.log_softmax(logits, dim=-1)
            for t in range(first, end):
                nll -= logp[t - 1 - start, ids[t]].item()
                count += 1
            previous_end = end
            if end == len(ids):
                break
    return math.exp(nll / count), count


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--attune", default=str(realistic.ROOT / ".build/release/attune"))
    ap.add_argument("--model", default="qwen2.5-0.5b", choices=sorted(realistic.MODELS))
    ap.add_argument("--tokens", type=int, default=2048)
    ap.add_argument("--context", type=int, default=1024)
    ap.add_argument("--stride", type=int, default=512)
    ap.add_argument("--weights", default="f32", help="attune's --weights (auto computes bf16 checkpoints in bf16)")
    ap.add_argument("--compare", default="--weights f32 --kv int8")
    a = ap.parse_args()
    spec = realistic.MODELS[a.model]
    with tempfile.TemporaryDirectory(dir="/work") as tmp:
        folder = Path(tmp) / a.model
        t0 = time.time()
        params = realistic.make_checkpoint(folder, spec, seed=1)
        print(f"{a.model}: {params / 1e6:.0f} M parameters ({spec['dtype']}), made in {time.time() - t0:.0f} s", file=sys.stderr)
        ids = np.random.default_rng(1).integers(0, spec["vocab"], a.tokens, dtype=np.int64)
        np.save(Path(tmp) / "ids.npy", ids)
        cmd = ["/usr/bin/time", "-v", a.attune, "perplexity", str(folder), "--tokens", str(Path(tmp) / "ids.npy"),
               "--context", str(a.context), "--stride", str(a.stride), "--weights", a.weights, "--json"]
        if a.compare:
            cmd += ["--compare", a.compare]
        t0 = time.time()
        out = subprocess.run(cmd, capture_output=True, text=True)
        wall = time.time() - t0
        if out.returncode != 0:
            sys.exit(f"{' '.join(cmd)} failed: {out.stderr.strip()}")
        r = json.loads(out.stdout.strip().splitlines()[-1])
        rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", out.stderr).group(1)) / 2**20
        t0 = time.time()
        want, count = transformers_perplexity(folder, ids.tolist(), a.context, a.stride)
        torch_s = time.time() - t0
    print(f"| {a.model} | {a.tokens} tokens, context {a.context}, stride {a.stride} | attune {r['perplexity']:.4f} "
          f"({r['tokens']} scored, {wall:.1f} s wall incl. compile, peak RSS {rss:.2f} GiB) | transformers f32 {want:.4f} "
          f"({count} scored, {torch_s:.1f} s) | relative difference {abs(r['perplexity'] - want) / want:.2e} |")
    if a.compare:
        print(f"| `--compare \"{a.compare}\"` | perplexity {r['compare_perplexity']:.4f} | KL mean {r['kl_mean']:.2e}, p99 {r['kl_p99']:.2e} | "
              f"top-1 {100 * r['top1_agreement']:.2f} % |")


if __name__ == "__main__":
    main()
