#!/usr/bin/env python3
"""Same-run speed A/B of `attune bench attention` between two attune binaries.

Each round runs every case with both binaries (the order alternates by round),
each run under `flock -x /tmp/attune-build.lock` so no build or test shares the
cores while it measures; it prints per case the median over rounds of each
binary's median ms, new/old, and the median and range of the per-round ratios.

    Bench/bench_attention_ab.py OLD_ATTUNE NEW_ATTUNE --rounds 5 \\
        --case "sparge prefill2k: --kernel sparge --q-len 2048 --causal --inputs structured"

A case is "NAME: bench attention arguments"; --json and --repeats are added.
"""
import argparse
import json
import shlex
import statistics
import subprocess


def bench(binary, args, repeats):
    cmd = ["flock", "-x", "/tmp/attune-build.lock", binary, "bench", "attention", *args, "--repeats", str(repeats),
           "--json"]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])["ms_median"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("old")
    ap.add_argument("new")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--case", action="append", required=True)
    a = ap.parse_args()
    cases = [(c.split(":", 1)[0], shlex.split(c.split(":", 1)[1])) for c in a.case]
    ms = {(name, which): [] for name, _ in cases for which in ("old", "new")}
    for rnd in range(a.rounds):
        order = ("old", "new") if rnd % 2 == 0 else ("new", "old")
        for name, args in cases:
            for which in order:
                ms[name, which].append(bench(a.old if which == "old" else a.new, args, a.repeats))
        print(f"round {rnd + 1}: " + ", ".join(f"{n} {ms[n, 'old'][-1]:.3f}/{ms[n, 'new'][-1]:.3f}" for n, _ in cases),
              flush=True)
    print("| case | old ms | new ms | new/old | per-round ratio median (range) |")
    print("| --- | --- | --- | --- | --- |")
    for name, _ in cases:
        o, n = statistics.median(ms[name, "old"]), statistics.median(ms[name, "new"])
        ratios = [y / x for x, y in zip(ms[name, "old"], ms[name, "new"])]
        print(f"| {name} | {o:.3f} | {n:.3f} | {n / o:.2f} | {statistics.median(ratios):.2f} "
              f"({min(ratios):.2f}–{max(ratios):.2f}) |")


if __name__ == "__main__":
    main()
