#!/usr/bin/env python3
"""Decode speed of Attune against llama.cpp at equal context, alternated round by round.

    python Bench/decode_alternated.py --llama-cpp-dir BUILD_DIR [--attune PATH]
        [--model qwen2.5-0.5b] [--attune-weights bf16] [--llama-types bf16,f16]
        [--llama-pure] [--rounds 5] [--depth 512] [--threads 2] [--workdir DIR] [--keep]

Why a second script: `realistic_models.py` runs each engine once, minutes apart, and this
machine's memory bandwidth switches between levels for minutes at a time, so two decode
rows of one run can sit on different levels (its rows moved by up to 40 % between runs).
Here each round runs every engine once, back to back, in a rotated order, and the
figures are per-round ratios and their median:
  - Attune: `attune run CHECKPOINT --tokens <DEPTH ids> --max-new-tokens 128 --weights W`
    (decode after DEPTH cached positions; cached build, the first call compiles);
  - llama.cpp: `llama-bench -m FILE -p 0 -n 128 -d DEPTH -r 1` on the GGUF of the same
    weights (written and quantised as realistic_models.py does).
Ratios are printed for pairs at the same bytes per weight only (bf16 against bf16 and f16,
int8 against q8_0, q4 against q4_0), so all formats can share one set of rounds:
    --attune-weights bf16,int8,q4 --llama-types bf16,f16,q8_0,q4_0 --llama-pure
Each timed child holds the exclusive lock (/tmp/attune-build.lock) as in realistic_models.py.
"""
import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import realistic_models as rm  # noqa: E402

DECODE = 128


def attune_decode(exe, folder, ids, env, timeout, weights):
    res, _ = rm.attune_call(exe, folder, ids, DECODE, env, timeout, weights)
    if "error" in res:
        raise RuntimeError(res["error"])
    return 1e3 / res["decode_ms_per_token"]


def llama_decode(bench, path, depth, threads, timeout):
    c = rm.run_child([bench, "-m", str(path), "-p", "0", "-n", str(DECODE), "-d", str(depth), "-t", str(threads),
                      "-r", "1", "-o", "json"], timeout=timeout)
    err = c.failure("llama-bench", timeout)
    if err:
        raise RuntimeError(err)
    tests = json.loads(c.out)
    return next(t["avg_ts"] for t in tests if t["n_gen"] == DECODE)


def same_bytes(weights, llama_type):
    """Whether a llama.cpp type is the counterpart of an Attune --weights value (the issue's
    "at the same bytes per weight"): 16-bit against bf16/f16, int8 against q8_0, q4 against
    q4_0, f32 against f32 (`auto` depends on the checkpoint: no pair). Only these pairs get a ratio."""
    family = weights.split(":")[0]
    return llama_type in {"bf16": ("bf16", "f16"), "int8": ("q8_0",),
                          "q4": ("q4_0",), "f32": ("f32",)}.get(family, ())


def alternate(engines, rounds, foreign):
    """Runs every (name, run) of engines once per round, the order rotated by one each round,
    each under the exclusive lock; returns one {name: tok/s} per round."""
    out = []
    for r in range(rounds):
        order = engines[r % len(engines):] + engines[:r % len(engines)]
        got = {}
        for name, run in order:
            with rm.Timed(foreign, name):
                got[name] = run()
        rm.log(f"[round {r + 1}] " + ", ".join(f"{k} {v:.2f}" for k, v in got.items()))
        out.append(got)
    return out


def paired_ratios(weights, types, rounds):
    """{"attune W / llama.cpp T": (median, per-round ratios)} for the same-bytes pairs."""
    out = {}
    for w in weights:
        for t in [t for t in types if same_bytes(w, t)]:
            per = [g[f"attune {w}"] / g[f"llama.cpp {t}"] for g in rounds]
            out[f"attune {w} / llama.cpp {t}"] = (statistics.median(per), per)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--attune", default=str(rm.ROOT / ".build" / "release" / "attune"))
    ap.add_argument("--llama-cpp-dir", required=True, metavar="BUILD_DIR")
    ap.add_argument("--model", default="qwen2.5-0.5b", choices=sorted(rm.MODELS))
    ap.add_argument("--attune-weights", default="bf16", help="comma-separated --weights values")
    ap.add_argument("--llama-types", default="bf16,f16", help="comma-separated llama-quantize types")
    ap.add_argument("--llama-pure", action="store_true",
                    help="quantise q8_0/q4_0 with --pure (every tensor in that type, as Attune's --weights int8/q4)")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--depth", type=int, default=512, help="cached positions before the decoded tokens")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--timeout", type=float, default=900)
    ap.add_argument("--workdir", metavar="DIR")
    ap.add_argument("--keep", action="store_true", help="keep the checkpoint and GGUF files")
    args = ap.parse_args()
    if args.rounds < 1 or args.depth < 1:
        sys.exit("error: --rounds and --depth must be at least 1")
    if not os.access(args.attune, os.X_OK):
        sys.exit(f"error: no attune binary at {args.attune}")
    tools = rm.find_llama_cpp(args.llama_cpp_dir)
    if isinstance(tools, str):
        sys.exit(f"error: {tools}")
    bench, quantize, gguf_py = tools
    weights = [w for w in args.attune_weights.split(",") if w]
    types = [t for t in args.llama_types.split(",") if t]
    rm.Timed.refuse_inherited_lock()

    work = Path(args.workdir or tempfile.mkdtemp(prefix="attune-decode-", dir="/tmp")).resolve()
    work.mkdir(parents=True, exist_ok=True)
    spec = dict(rm.MODELS[args.model])
    folder = work / f"{args.model}-{spec['dtype']}"
    made = [folder, work / f"{args.model}-f32.gguf", work / f"{args.model}-cache"]
    made += [work / f"{args.model}-{t}.gguf" for t in types]
    try:
        rm.log(f"[setup] {args.model}: random checkpoint -> {folder}")
        rm.make_checkpoint(folder, spec, args.seed)
        import numpy as np
        ids = np.random.default_rng(args.seed).integers(0, spec["vocab"], args.depth).tolist()
        gguf = rm.import_gguf(gguf_py)
        rm.write_gguf(folder, spec, made[1], gguf)
        files = {}
        for t in types:
            out = work / f"{args.model}-{t}.gguf"
            flags = ["--pure"] if args.llama_pure and t in rm.LLAMA_QUANTS else []
            c = rm.run_child([quantize, *flags, str(made[1]), str(out), t.upper(), str(args.threads)], timeout=args.timeout)
            if c.failure("llama-quantize", args.timeout):
                sys.exit(f"error: {c.failure('llama-quantize', args.timeout)}")
            files[t] = out
        made[1].unlink()
        env = rm.attune_env(made[2], args.threads)
        for w in weights:  # compile once, outside the rounds
            attune_decode(args.attune, folder, ids[:8], env, args.timeout, w)

        engines = [(f"attune {w}", lambda w=w: attune_decode(args.attune, folder, ids, env, args.timeout, w))
                   for w in weights]
        engines += [(f"llama.cpp {t}", lambda t=t: llama_decode(bench, files[t], args.depth, args.threads,
                                                                 args.timeout)) for t in types]
        foreign = rm.ForeignCPU()
        rounds = alternate(engines, args.rounds, foreign)
    except RuntimeError as e:
        sys.exit(f"error: {e}")
    finally:
        if not args.keep:
            for p in made:
                shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink(missing_ok=True)
            if not args.workdir:
                shutil.rmtree(work, ignore_errors=True)

    print(f"Decode tok/s after {args.depth} positions, {args.model} shape, {args.threads} threads, "
          f"{args.rounds} alternated rounds ({args.attune})")
    print()
    print("| engine | median | min | max |")
    print("| --- | --- | --- | --- |")
    for name, _ in engines:
        v = [g[name] for g in rounds]
        print(f"| {name} | {statistics.median(v):.2f} | {min(v):.2f} | {max(v):.2f} |")
    print()
    for pair, (median, per) in paired_ratios(weights, types, rounds).items():
        print(f"- {pair}: median of per-round ratios {median:.2f}x (rounds: {', '.join(f'{x:.2f}' for x in per)})")
    busy = {k: v for k, v in foreign.phases.items() if v > 0.1}
    if busy:
        print("note: CONTENDED: other processes kept " + ", ".join(f"{v:.2f} core(s) busy during {k}"
                                                                  for k, v in busy.items()))


if __name__ == "__main__":
    main()
