#!/usr/bin/env python3
"""Gemma 2's real sliding window (4096 keys) past its length: Attune against transformers.

    /work/venv/bin/python Bench/long_window_check.py [--attune PATH] [--prompt 4600] [--new 48]

The fixtures check the window with a window of 6; this checks the real size, where
the window stops covering the context: prefill in chunks that cross the window's
edge, and decode steps whose window slides. One run:

  1. writes a seeded random Gemma2ForCausalLM (f32; hidden 256, 4 heads of 64, 2 kv
     heads, 2 layers: layer 0 sliding with window 4096, layer 1 global; the real soft
     caps 50 / 30; vocabulary 512, so every position's logits fit in memory);
  2. transformers (eager attention, f32) computes the prompt's logits at every
     position and greedily generates --new tokens;
  3. `attune run` (f32 weights, flash) does the same: --logits-out for the prompt,
     its generated ids for the continuation;
  4. prints the largest |Δlogit| over the positions before the window's edge and
     after it (where the sliding layer forgets the prompt's start), and whether the
     greedy continuations agree; for scale, how far the window itself moves the
     logits (transformers with layer 0 made global).

It needs about 1 GB of memory and a minute; nothing is left behind (a temporary folder).
"""
import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

WINDOW = 4096


def make_model(folder, seed):
    import torch
    import transformers
    config = transformers.Gemma2Config(
        vocab_size=512, hidden_size=256, intermediate_size=512, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, head_dim=64, max_position_embeddings=8192,
        sliding_window=WINDOW, layer_types=["sliding_attention", "full_attention"],
        query_pre_attn_scalar=64, attn_logit_softcapping=50.0, final_logit_softcapping=30.0,
        hidden_activation="gelu_pytorch_tanh", rope_parameters={"rope_type": "default", "rope_theta": 10000.0},
        bos_token_id=None, eos_token_id=None, pad_token_id=None, attn_implementation="eager")
    torch.manual_seed(seed)
    model = transformers.Gemma2ForCausalLM(config).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            # Norm weights are the (1 + w) offsets: small noise, as a trained model has.
            p.copy_(torch.randn(p.shape) * (0.1 if name.endswith("norm.weight") else 0.05))
    model.save_pretrained(str(folder), safe_serialization=True)
    return model


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--attune", default=str(Path(__file__).resolve().parent.parent / ".build/release/attune"))
    ap.add_argument("--prompt", type=int, default=4600, help="prompt tokens (> 4096)")
    ap.add_argument("--new", type=int, default=48, help="greedy tokens after the prompt")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    if args.prompt <= WINDOW:
        sys.exit(f"--prompt must exceed the window of {WINDOW} tokens, got {args.prompt}")
    import torch
    torch.set_num_threads(2)
    rng = np.random.default_rng(args.seed)
    ids = rng.integers(0, 512, size=args.prompt).tolist()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "gemma2-window"
        model = make_model(folder, args.seed)
        with torch.no_grad():
            ref = model(torch.tensor([ids])).logits[0].numpy()
            gen = model.generate(torch.tensor([ids]), max_new_tokens=args.new, do_sample=False,
                                 min_new_tokens=args.new)[0, args.prompt:].tolist()
            # The same model with layer 0 global: how far the window moves the logits, so a
            # kernel that ignored it would show (the check can fail).
            model.config.layer_types = ["full_attention", "full_attention"]
            model.model.layers[0].self_attn.sliding_window = None
            unwindowed = model(torch.tensor([ids])).logits[0].numpy()
        del model
        out = Path(tmp) / "logits.npy"
        cmd = [args.attune, "run", str(folder), "--tokens", ",".join(map(str, ids)), "--max-new-tokens", str(args.new),
               "--max-context", str(args.prompt + args.new), "--weights", "f32", "--logits-out", str(out), "--json"]
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode != 0:
            sys.exit(f"attune run failed: {r.stderr.strip()}")
        got = np.load(out)
        generated = json.loads(r.stdout.strip().splitlines()[-1])["generated"]
    diff = np.abs(got - ref).max(axis=1)
    scale = np.abs(ref).max()
    print(f"prompt {args.prompt} tokens, window {WINDOW}, max |logit| {scale:.3f}")
    print(f"max |Δlogit| positions 0..{WINDOW - 1}: {diff[:WINDOW].max():.3e}")
    print(f"max |Δlogit| positions {WINDOW}..{args.prompt - 1} (the window slides): {diff[WINDOW:].max():.3e}")
    effect = np.abs(unwindowed - ref).max(axis=1)
    print(f"for scale: the window itself moves the logits by {effect[:WINDOW].max():.1e} before its edge, "
          f"{effect[WINDOW:].max():.3e} after it")
    agree = sum(a == b for a, b in zip(generated, gen))
    print(f"greedy continuation: {agree}/{args.new} tokens agree (decode steps at positions {args.prompt}..{args.prompt + args.new - 1})")
    ok = diff.max() <= 1e-4 and agree == args.new
    print("ok" if ok else "MISMATCH")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
