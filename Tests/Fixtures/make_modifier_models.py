#!/usr/bin/env python3
"""ALiBi and attention-sink variants of the tiny llama fixture, as Attune IR (.attn).

Writes Tests/Fixtures/ir/{llama_alibi,llama_sinks}/: model.attn (the llama graph of
Tests/Snapshots/llama.attn with its kernel bindings removed and the modifier added to
both attention nodes), model.safetensors (the llama fixture's weights; for sinks also
`model.layers.{i}.self_attn.sinks`, f32[4], gpt-oss's name), golden.json and
logits_<i>_f64.npy.

Goldens come from transformers' LlamaForCausalLM on the same weights in true float64
(make_tiny_models.TrueFloat64), with its eager attention replaced by transformers' own
formulas for the modifier:
  alibi: BLOOM's build_alibi_tensor (modeling_bloom.py) — slope_h * j added to every
         score before the causal mask, slopes from _get_alibi_slopes. Attune's IR and
         kernels add slope_h * (j - p) instead; the two differ by slope_h * p, a constant
         per query row, which softmax cancels (the script checks that too).
  sinks: gpt-oss's eager_attention_forward (modeling_gpt_oss.py), called as is on a
         module holding `sinks`.
Greedy ids: 8 steps of full float64 re-forwards. Run it with the project venv:
    /work/venv/bin/python Tests/Fixtures/make_modifier_models.py
Deterministic (seeded sinks, float64 throughout). Tests:
Tests/AttuneEndToEndTests/ModifierModelTests.swift.
"""
import json, re, sys
from pathlib import Path

FIXTURES = Path(__file__).resolve().parent
sys.path.insert(0, str(FIXTURES))
from make_tiny_models import SEQUENCES, MAX_NEW_TOKENS, TrueFloat64  # noqa: E402

LLAMA = FIXTURES / "models" / "llama"
SNAPSHOT = FIXTURES.parent / "Snapshots" / "llama.attn"
OUT = FIXTURES / "ir"
SINK_SEED = 7


def graph_text(name, modifier, heads):
    """The llama snapshot graph, unbound, with `modifier` on every attention node."""
    lines = []
    for line in SNAPSHOT.read_text().splitlines():
        if line.startswith("graph "):
            line = f"graph {name} {{"
        m = re.match(r"(\s*)(%\d+) = attention\((.*?)\) \{(.*?)\}(.*)", line)
        if m:
            indent, lhs, args, attrs, rest = m.groups()
            attrs = re.sub(r', kernel = "[^"]*", kernel_reason = "[^"]*"', "", attrs)
            layer = re.search(r"model\.layers\.(\d+)\.", rest).group(1)
            if modifier == "alibi":
                attrs = "alibi = true, " + attrs
            else:
                sink = f"%sinks{layer}"
                lines.append(f'{indent}{sink} = weight() {{name = "model.layers.{layer}.self_attn.sinks"}} : f32[{heads}]'
                             f"  # model.layers.{layer}.self_attn.sinks")
                args += ", " + sink
                attrs = attrs + ", sinks = true"
            line = f"{indent}{lhs} = attention({args}) {{{attrs}}}{rest}"
        lines.append(line)
    assert "kernel" not in "\n".join(lines), "bindings left in the graph"
    return "\n".join(lines) + "\n"


def main():
    import numpy as np, torch
    from torch import nn
    import transformers
    from safetensors.torch import load_file, save_file
    from transformers import LlamaForCausalLM
    import transformers.models.llama.modeling_llama as ml
    from transformers.models.bloom.modeling_bloom import build_alibi_tensor, _get_alibi_slopes
    from transformers.models.gpt_oss.modeling_gpt_oss import eager_attention_forward as gpt_oss_eager
    transformers.logging.set_verbosity_error()
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)

    model = LlamaForCausalLM.from_pretrained(LLAMA, dtype=torch.float32, attn_implementation="eager").double().eval()
    cfg = model.config
    heads = cfg.num_attention_heads
    weights = load_file(LLAMA / "model.safetensors")

    def alibi_eager(module, query, key, value, attention_mask, scaling, dropout=0.0, **kw):
        # BLOOM's bias (no padding: the mask of ones), broadcast over the query rows.
        k = ml.repeat_kv(key, module.num_key_value_groups)
        v = ml.repeat_kv(value, module.num_key_value_groups)
        s = k.shape[2]
        alibi = build_alibi_tensor(torch.ones(1, s, dtype=torch.float64), heads, torch.float64).view(1, heads, 1, s)
        w = torch.matmul(query, k.transpose(2, 3)) * scaling + alibi
        if attention_mask is not None:
            w = w + attention_mask
        w = nn.functional.softmax(w, dim=-1)
        return torch.matmul(w, v).transpose(1, 2).contiguous(), w

    def distance_eager(module, query, key, value, attention_mask, scaling, dropout=0.0, **kw):
        # Attune's form slope * (j - p), p = the query's position (bottom-right aligned).
        k = ml.repeat_kv(key, module.num_key_value_groups)
        v = ml.repeat_kv(value, module.num_key_value_groups)
        t, s = query.shape[2], k.shape[2]
        slopes = _get_alibi_slopes(heads, query.device).to(torch.float64)
        dist = torch.arange(s, dtype=torch.float64)[None, :] - (s - t + torch.arange(t, dtype=torch.float64))[:, None]
        w = torch.matmul(query, k.transpose(2, 3)) * scaling + slopes[None, :, None, None] * dist
        if attention_mask is not None:
            w = w + attention_mask
        w = nn.functional.softmax(w, dim=-1)
        return torch.matmul(w, v).transpose(1, 2).contiguous(), w

    def run(ids, attention):
        saved = ml.eager_attention_forward
        ml.eager_attention_forward = attention
        try:
            with torch.no_grad():
                return model(torch.tensor([ids])).logits[0].numpy()
        finally:
            ml.eager_attention_forward = saved

    # Sinks: seeded, near the log-mass of a row (the scores here are a few units), so each
    # takes a real share of its row.
    gen = torch.Generator().manual_seed(SINK_SEED)
    sinks = {i: (1.5 + torch.randn(heads, generator=gen, dtype=torch.float64)).to(torch.float32)
             for i in range(cfg.num_hidden_layers)}

    with TrueFloat64():
        plain = ml.eager_attention_forward
        for name, attention in (("llama_alibi", alibi_eager), ("llama_sinks", gpt_oss_eager)):
            folder = OUT / name
            folder.mkdir(parents=True, exist_ok=True)
            stored = dict(weights)
            if name == "llama_sinks":
                for i, layer in enumerate(model.model.layers):
                    layer.self_attn.sinks = nn.Parameter(sinks[i].double(), requires_grad=False)
                    stored[f"model.layers.{i}.self_attn.sinks"] = sinks[i].clone()
            golden = dict(modifier="alibi" if name == "llama_alibi" else "sinks", sequences=[],
                          torch=torch.__version__, transformers=transformers.__version__)
            if name == "llama_alibi":
                golden["alibi_slopes"] = _get_alibi_slopes(heads, "cpu").tolist()
                golden["alibi_formula"] = "BLOOM build_alibi_tensor: slope_h * j; Attune: slope_h * (j - p)"
            else:
                golden["sinks"] = {str(i): s.tolist() for i, s in sinks.items()}
                golden["sinks_formula"] = "gpt_oss eager_attention_forward"
            for i, ids in enumerate(SEQUENCES):
                logits = run(ids, attention)
                np.save(folder / f"logits_{i}_f64.npy", logits)
                seq = list(ids)
                for _ in range(MAX_NEW_TOKENS):
                    seq.append(int(run(seq, attention)[-1].argmax()))
                entry = dict(input_ids=ids, greedy_new_ids=seq[len(ids):], logits_f64=f"logits_{i}_f64.npy",
                             max_abs_diff_without_modifier=float(np.abs(logits - run(ids, plain)).max()))
                if name == "llama_alibi":
                    entry["max_abs_diff_distance_form"] = float(np.abs(logits - run(ids, distance_eager)).max())
                golden["sequences"].append(entry)
            if name == "llama_sinks":
                for layer in model.model.layers:
                    del layer.self_attn.sinks
            save_file({k: v.contiguous() for k, v in sorted(stored.items())}, folder / "model.safetensors")
            (folder / "model.attn").write_text(graph_text(name, golden["modifier"], heads))
            (folder / "golden.json").write_text(json.dumps(golden, indent=2) + "\n")
            print(name, json.dumps([{k: v for k, v in s.items() if k.startswith("max") or k == "greedy_new_ids"}
                                    for s in golden["sequences"]]))


if __name__ == "__main__":
    main()
