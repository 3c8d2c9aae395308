#!/usr/bin/env python3
"""Bit-identity A/B of attention kernels between two `attune` binaries.

Runs `attune kernel run` with each binary on the same inputs and problems and
compares the O and LSE files byte for byte, and the kernel's counters (the
`stats:` line, without its timings). Usage:

    Bench/kernel_ab_outputs.py OLD_ATTUNE NEW_ATTUNE [--kernels sparge,flash] [--masks] [--models] [--work DIR]

--masks runs document-id and block-bitmask masks (alone, under the causal mask,
with a window, with the modifiers) instead of the plain cases, for the kernels that
take them; the tile counts of the stats line are compared too.

--models runs kascade inside compiled models instead (Tests/Fixtures/models/llama_deep):
prefill logits and greedy decode tokens of `attune run` (anchor and reuse layers, f32
and int8 KV caches, with and without a calibrated head map), and the calibration file
itself; a binary compiles models from the kernel sources built into it.

Inputs: uniform random (numpy, seeded; a few with NaN/Inf planted in K/V) and the
structured ones of `attune kernel generate`. Exit status 1 when any case differs.
"""
import argparse
import os
import re
import subprocess
import sys
import zlib

import numpy as np


def shapes():
    # (name, B, Hq, Hkv, Lq, Lk, D, Dv)
    return [
        ("prefill-h4-n300", 1, 4, 2, 300, 300, 64, 64),
        ("prefill-b2-mha", 2, 2, 2, 130, 130, 32, 48),
        ("prefill-gqa-n700", 1, 8, 2, 700, 700, 64, 64),
        ("suffix-q100-k600", 1, 4, 4, 100, 600, 64, 64),
        ("decode-k1000", 1, 8, 2, 1, 1000, 128, 128),
        ("decode-mqa-b2", 2, 4, 1, 1, 513, 64, 80),
        ("short-q3-k77", 1, 2, 1, 3, 77, 16, 16),
    ]


def cases(kernel):
    masks = [[], ["--causal"], ["--causal", "--window", "96"]]
    mods = [[], ["--alibi"], ["--sinks", "0.5"]]
    if kernel == "sparge":
        params = [[], ["cdfthreshd=1", "pvthreshd=200"], ["cdfthreshd=0.7", "pvthreshd=4"],
                  ["block_q=32", "block_kv=48", "simthreshd1=0.2"], ["block_kv=512", "sink=0"],
                  ["precision=bf16"], ["precision=bf16", "cdfthreshd=0.8", "pvthreshd=6"]]
    elif kernel == "flash":
        params = [[], ["kv_splits=3"], ["block_q=16", "block_kv=64"], ["precision=bf16"], ["gemm=2"]]
    elif kernel == "sigmoid":
        params = [["bias=-4"], ["bias=-2", "kv_splits=3"], ["precision=bf16"]]
        mods = [[], ["--alibi"]]
    elif kernel == "kascade":
        # anchor (select, then attend) and reuse (role=1: the anchor's selection, then
        # attend); odd and partial tiles; fraction=1 takes the exact path, and with
        # fraction=0.6 or 1 decode-k1000 splits its selected keys (k_cap >= 512).
        params = [[], ["role=1"], ["fraction=0.05", "min_k=16", "tile=16"],
                  ["fraction=0.2", "min_k=8", "tile=7", "role=1"], ["fraction=1"],
                  ["fraction=0.6", "min_k=16", "tile=64", "role=1"]]
        mods = [[], ["--kv", "bf16"], ["--kv", "int8"]]
    else:
        params = [[], ["kv_splits=3"]]
    return masks, mods, params


def mask_cases(lk):
    """Document and block masks for a key length: three packed documents, and random
    bitmasks at two densities and block sizes."""
    a, b = max(1, lk * 2 // 7), max(1, lk // 3)
    docs = ["--document-lengths", f"{a},{b},{lk - a - b}"]
    return [docs, ["--causal"] + docs, ["--causal", "--window", "96"] + docs,
            ["--block-mask", "random:0.3:5", "--mask-block", "64"],
            ["--causal", "--block-mask", "random:0.6:3", "--mask-block", "32"],
            ["--causal"] + docs + ["--block-mask", "random:0.7:9", "--mask-block", "16"]]


def write_inputs(work, attune, name, b, hq, hkv, lq, lk, d, dv):
    out = {}
    rng = np.random.default_rng(zlib.crc32(name.encode()))
    for kind in ("random", "nan", "structured"):
        dirn = os.path.join(work, name, kind)
        os.makedirs(dirn, exist_ok=True)
        if kind == "structured":
            if d != dv:
                continue
            subprocess.run([attune, "kernel", "generate", "--batch", str(b), "--heads", str(hq), "--kv-heads",
                            str(hkv), "--q-len", str(lq), "--kv-len", str(lk), "--head-dim", str(d), "--out", dirn],
                           check=True, capture_output=True)
        else:
            q = rng.uniform(-1, 1, (b, hq, lq, d)).astype(np.float32)
            k = rng.uniform(-1, 1, (b, hkv, lk, d)).astype(np.float32)
            v = rng.uniform(-1, 1, (b, hkv, lk, dv)).astype(np.float32)
            if kind == "nan":
                k[0, 0, lk // 3, 1] = np.nan
                v[-1, -1, lk - 1, 0] = np.inf
            for n, a in (("q", q), ("k", k), ("v", v)):
                np.save(os.path.join(dirn, n + ".npy"), a)
        out[kind] = dirn
    return out


def run(attune, dirn, kernel, flags, params, tag):
    o, lse = os.path.join(dirn, f"o-{tag}.npy"), os.path.join(dirn, f"lse-{tag}.npy")
    cmd = [attune, "kernel", "run", "--kernel", kernel, "--q", f"{dirn}/q.npy", "--k", f"{dirn}/k.npy",
           "--v", f"{dirn}/v.npy", "--out", o, "--lse", lse, "--threads", "2"] + flags
    for p in params:
        cmd += ["--param", p]
    r = subprocess.run(cmd, capture_output=True, text=True)
    stats = re.sub(r"\w*(ms|_ms)=[^ ,]*", "", r.stderr.strip())
    if r.returncode != 0:
        return None, None, "error: " + r.stderr.strip()
    return open(o, "rb").read(), open(lse, "rb").read(), stats


def model_cases():
    """kascade in compiled models: the `attune run` cases (name, arguments) and the
    `attune calibrate --kascade` arguments."""
    fixtures = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "Tests", "Fixtures", "models")
    model = os.path.join(fixtures, "llama_deep")
    tokens = ",".join(str(3 + 7 * i % 50) for i in range(40))
    attention = ["kascade:fraction=0.25,min_k=2,tile=4", "kascade:fraction=0.1,min_k=4,tile=16"]
    runs = []
    for a in attention:
        for kv in ("f32", "int8"):
            runs.append((f"{a} --kv {kv}", [model, "--tokens", tokens, "--max-new-tokens", "6", "--attention", a,
                                            "--kv", kv]))
    cal = [model, "--data", os.path.join(model, "calibration_tokens.npy"), "--kascade", "--anchors", "2",
           "--param", "fraction=0.25", "--param", "min_k=2", "--param", "tile=4"]
    return runs, cal


def run_models(old, new, work):
    runs, cal = model_cases()
    os.makedirs(work, exist_ok=True)
    total = differ = 0
    files = {}
    for tag, binary in (("old", old), ("new", new)):
        out = os.path.join(work, f"calibration-{tag}.json")
        r = subprocess.run([binary, "calibrate"] + cal + ["-o", out], capture_output=True, text=True)
        files[tag] = open(out, "rb").read() if r.returncode == 0 else "error: " + r.stderr
    total += 1
    if files["old"] != files["new"]:
        differ += 1
        print("DIFFER: calibrate --kascade")
    # the calibrated runs read the head maps of the old binary's file, so only the runs differ
    calibrated = os.path.join(work, "calibration-old.json")
    runs += [(name + " --calibration", args + ["--calibration", calibrated]) for name, args in runs]
    for name, args in runs:
        got = {}
        for tag, binary in (("old", old), ("new", new)):
            logits = os.path.join(work, f"logits-{tag}.npy")
            r = subprocess.run([binary, "run"] + args + ["--logits-out", logits], capture_output=True, text=True)
            # the generated tokens (the other lines are timings)
            tokens = [line for line in r.stdout.splitlines() if line.startswith("generated")]
            got[tag] = (open(logits, "rb").read(), tokens) if r.returncode == 0 else (None, "error: " + r.stderr)
        total += 1
        if got["old"] != got["new"]:
            differ += 1
            what = "logits" if got["old"][0] != got["new"][0] else "tokens/error"
            print(f"DIFFER ({what}): run {name}\n  old: {got['old'][1]}\n  new: {got['new'][1]}")
    print(f"{total} model cases, {differ} differ (kascade in llama_deep)")
    return differ


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("old")
    ap.add_argument("new")
    ap.add_argument("--kernels", default="sparge")
    ap.add_argument("--masks", action="store_true", help="also document and block masks")
    ap.add_argument("--models", action="store_true", help="kascade in compiled models instead of kernel runs")
    ap.add_argument("--work", default="/tmp/kernel_ab")
    a = ap.parse_args()
    if a.models:
        sys.exit(1 if run_models(a.old, a.new, os.path.join(a.work, "models")) else 0)
    total = differ = refused = 0
    for name, *dims in shapes():
        inputs = write_inputs(a.work, a.new, name, *dims)
        for kernel in a.kernels.split(","):
            masks, mods, params = cases(kernel)
            for kind, dirn in inputs.items():
                # every mask without modifiers, every modifier under the causal mask
                combos = [(m, [], p) for m in masks for p in params]
                combos += [(["--causal"], m, p) for m in mods if m for p in params]
                if a.masks:
                    mc = mask_cases(dims[4])
                    combos = [(m, [], p) for m in mc for p in params]
                    combos += [(mc[1], m, p) for m in mods if m for p in params]
                for mask, mod, prm in combos:
                    ro = run(a.old, dirn, kernel, mask + mod, prm, "old")
                    rn = run(a.new, dirn, kernel, mask + mod, prm, "new")
                    total += 1
                    refused += ro[0] is None and rn[0] is None
                    if ro != rn:
                        differ += 1
                        what = "O" if ro[0] != rn[0] else "LSE" if ro[1] != rn[1] else "stats/error"
                        print(f"DIFFER ({what}): {kernel} {name}/{kind} {' '.join(mask + mod)} {' '.join(prm)}\n"
                              f"  old: {ro[2]}\n  new: {rn[2]}")
    print(f"{total} cases ({refused} refused by both, same message), {differ} differ ({a.kernels})")
    sys.exit(1 if differ else 0)


if __name__ == "__main__":
    main()
