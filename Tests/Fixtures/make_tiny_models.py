#!/usr/bin/env python3
"""Generate Attune's tiny Hugging Face test checkpoints and their golden logits.

    python3 Tests/Fixtures/make_tiny_models.py [NAME ...]   (no names: every model)

On first run this creates Tests/Fixtures/.venv and installs
Tests/Fixtures/requirements.txt into it (CPU-only torch, everything pinned),
then re-executes itself with the venv's python. Nothing is downloaded from a
model hub: the weights are random, drawn from a fixed seed.

Writes Tests/Fixtures/models/{llama,qwen2,mistral,llama_deep,llama_sigmoid,qwen3,phi3,gemma2,llama_rope_*}/
(see README.md there for the layout) and Tests/Fixtures/rope_tables.json (name: rope_tables). Running it twice on the same machine gives byte-identical files.

Float64 note: `model.double()` alone is NOT a float64 computation in
transformers -- RMSNorm, the attention softmax and the RoPE cos/sin are all
forced through float32 inside the modeling code (Qwen3's q_norm/k_norm are the
same RMSNorm class, and Phi-3 and Gemma 2 have the same three spots). For the *_f64.npy goldens
those three spots are patched to stay in the input dtype, and the result is
cross-checked against an independent numpy float64 forward pass that reads the
safetensors files directly.

llama_sigmoid is a Llama checkpoint whose config asks for Attune's sigmoid
attention ("attention_normalizer": "sigmoid", "sigmoid_bias"). transformers has
no sigmoid attention, so its goldens (float64 logits, greedy ids) come from the
numpy float64 forward pass itself; transformers is used only to cross-check
that forward: with softmax attention against TrueFloat64, and with its eager
attention patched to sigmoid (SigmoidEager) as a second implementation.
"""
import hashlib, json, math, os, re, shutil, subprocess, sys
from pathlib import Path

FIXTURES = Path(__file__).resolve().parent
VENV = FIXTURES / ".venv"
REQS = FIXTURES / "requirements.txt"
OUT = FIXTURES / "models"

SEED = 1
SEQUENCES = [
    [1, 17, 42, 99, 3, 64, 127, 8, 55, 23, 77, 0, 91, 34, 110, 12],  # 16 tokens
    [5, 120, 33, 33, 71],                                            # 5 tokens
]
MAX_NEW_TOKENS = 8

# Random-init scales (HF's initializer_range=0.02 gives near-uniform logits).
STD_EMBED = 0.3
STD_LINEAR = 0.2
STD_BIAS = 0.1
STD_NORM_NOISE = 0.1   # norm weights are 1 + N(0, this)


def ensure_venv():
    """Create/refresh Tests/Fixtures/.venv, then exec this script with its python."""
    py = VENV / "bin" / "python"
    if Path(sys.prefix).resolve() == VENV.resolve() or os.environ.get("ATTUNE_FIXTURES_VENV"):
        return
    if not py.exists():
        print(f"[setup] creating {VENV}", file=sys.stderr)
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
    # Keep the venv out of git even if the repo's .gitignore doesn't list it
    # (Python >= 3.13's venv writes the same file itself).
    if not (VENV / ".gitignore").exists():
        (VENV / ".gitignore").write_text("*\n")
    marker = VENV / ".requirements.sha256"
    want = hashlib.sha256(REQS.read_bytes()).hexdigest()
    if not marker.exists() or marker.read_text().strip() != want:
        print(f"[setup] installing {REQS.name} into the venv (torch is large; be patient)",
              file=sys.stderr)
        if subprocess.run([str(py), "-m", "pip", "install", "-r", str(REQS)]).returncode:
            sys.exit("error: pip install into Tests/Fixtures/.venv failed (see above)")
        marker.write_text(want + "\n")
    os.environ["ATTUNE_FIXTURES_VENV"] = "1"
    os.execv(str(py), [str(py), str(Path(__file__).resolve())] + sys.argv[1:])


# --------------------------------------------------------------------------- models

def model_specs():
    import torch
    from transformers import (Gemma2Config, Gemma2ForCausalLM, LlamaConfig, LlamaForCausalLM,
                              MistralConfig, MistralForCausalLM, Phi3Config, Phi3ForCausalLM,
                              Qwen2Config, Qwen2ForCausalLM, Qwen3Config, Qwen3ForCausalLM)
    common = dict(vocab_size=128, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                  max_position_embeddings=256, hidden_act="silu",
                  bos_token_id=None, eos_token_id=None, pad_token_id=None)
    return [
        dict(name="llama", cls=LlamaForCausalLM, store_dtype=torch.float32, shards=1,
             config=LlamaConfig(**common, num_key_value_heads=2, head_dim=16, intermediate_size=160,
                                rope_parameters={"rope_type": "default", "rope_theta": 10000.0},
                                rms_norm_eps=1e-5, tie_word_embeddings=False)),
        dict(name="qwen2", cls=Qwen2ForCausalLM, store_dtype=torch.bfloat16, shards=1,
             config=Qwen2Config(**common, num_key_value_heads=1, intermediate_size=128,
                                rope_parameters={"rope_type": "default", "rope_theta": 1000000.0},
                                rms_norm_eps=1e-6, tie_word_embeddings=True,
                                use_sliding_window=False)),
        dict(name="mistral", cls=MistralForCausalLM, store_dtype=torch.float16, shards=2,
             config=MistralConfig(**common, num_key_value_heads=2, head_dim=16, intermediate_size=128,
                                  rope_parameters={"rope_type": "default", "rope_theta": 10000.0},
                                  rms_norm_eps=1e-5, tie_word_embeddings=False, sliding_window=6)),
        # Deeper Llama for layer-to-layer features (kascade anchors and reuse, calibration):
        # 8 layers, with committed calibration tokens (calibration_tokens.npy).
        dict(name="llama_deep", cls=LlamaForCausalLM, store_dtype=torch.float32, shards=1,
             calibration_tokens=(4, 96),
             config=LlamaConfig(**{**common, "num_hidden_layers": 8}, num_key_value_heads=2, head_dim=16,
                                intermediate_size=160,
                                rope_parameters={"rope_type": "default", "rope_theta": 10000.0},
                                rms_norm_eps=1e-5, tie_word_embeddings=False)),
        # Attune's sigmoid attention (FlashSigmoid): O = sum_j sigmoid(q.k/sqrt(d) + b) v_j,
        # b = -ln(max_position_embeddings). Goldens from numpy (see build_sigmoid).
        dict(name="llama_sigmoid", cls=LlamaForCausalLM, store_dtype=torch.float32, shards=1, sigmoid=True,
             config=LlamaConfig(**common, num_key_value_heads=2, head_dim=16, intermediate_size=160,
                                rope_parameters={"rope_type": "default", "rope_theta": 10000.0},
                                rms_norm_eps=1e-5, tie_word_embeddings=False,
                                attention_normalizer="sigmoid", sigmoid_bias=-math.log(256))),
        # Qwen3: per-head RMSNorm of q and k before RoPE, explicit head_dim 32 (not
        # hidden/heads = 16), attention_bias (q/k/v and o biases), bf16.
        dict(name="qwen3", cls=Qwen3ForCausalLM, store_dtype=torch.bfloat16, shards=1,
             config=Qwen3Config(**common, num_key_value_heads=2, head_dim=32, intermediate_size=128,
                                rope_parameters={"rope_type": "default", "rope_theta": 1000000.0},
                                rms_norm_eps=1e-6, attention_bias=True, tie_word_embeddings=False,
                                use_sliding_window=False)),
        # Phi-3: fused qkv_proj and gate_up_proj, partial rotary (12 of 16 channels, as
        # Phi-4-mini's Phi3ForCausalLM does), a sliding window on every layer, no RoPE scaling.
        dict(name="phi3", cls=Phi3ForCausalLM, store_dtype=torch.float32, shards=1,
             config=Phi3Config(**common, num_key_value_heads=2, intermediate_size=128,
                               rope_parameters={"rope_type": "default", "rope_theta": 10000.0,
                                                "partial_rotary_factor": 0.75},
                               rms_norm_eps=1e-5, tie_word_embeddings=False, sliding_window=6)),
        # Gemma 2: three layers alternating sliding (window 6 < the 16-token prompt) and
        # global; head_dim 16 != hidden/heads = 12; query_pre_attn_scalar 24 (not head_dim);
        # Gemma 2's soft-caps 50/30 scaled by 1/10 (5 and 3) so that tanh bites on these
        # small random scores and logits (build checks it); tied embeddings; embedding
        # scale sqrt(48), not a power of two; (1 + w) norms with w centred on 0, except the
        # post-attention/feedforward norms (w around 2) and linears at std 0.3: with tied
        # embeddings the sqrt(hidden)-scaled input embedding otherwise dominates the residual
        # and every greedy step repeats the last token.
        dict(name="gemma2", cls=Gemma2ForCausalLM, store_dtype=torch.float32, shards=1, norm_offset=True,
             post_norm_weight=2.0, std_linear=0.3,
             config=Gemma2Config(**{k: v for k, v in common.items() if k != "hidden_act"} | {"hidden_size": 48,
                                 "num_hidden_layers": 3},
                                 num_key_value_heads=2, head_dim=16, intermediate_size=96,
                                 hidden_activation="gelu_pytorch_tanh", query_pre_attn_scalar=24,
                                 rope_parameters={"rope_type": "default", "rope_theta": 10000.0},
                                 rms_norm_eps=1e-6, tie_word_embeddings=True, sliding_window=6,
                                 attn_logit_softcapping=5.0, final_logit_softcapping=3.0)),
    ] + rope_specs(common)


# Scaled-RoPE Llamas (sizes as `llama`). `legacy`: config.json rewritten to the published
# spelling, top-level rope_theta + rope_scaling with the type under that key. The
# length-dependent types (dynamic at max_position_embeddings, longrope at
# original_max_position_embeddings) switch at 8, so the 16-token prompt runs past it and
# the 5-token one crosses it while generating.
ROPE_FIXTURES = [
    ("llama_rope_linear", 256, None, {"rope_type": "linear", "factor": 2.0}),
    ("llama_rope_dynamic", 8, "type", {"rope_type": "dynamic", "factor": 3.0}),
    ("llama_rope_yarn", 256, None, {"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 8,
                                    "beta_fast": 2.0, "beta_slow": 0.05, "mscale": 1.0, "mscale_all_dim": 0.5,
                                    "truncate": False}),
    ("llama_rope_longrope", 256, "rope_type", {
        "rope_type": "longrope", "original_max_position_embeddings": 8,
        "short_factor": [1.0, 1.02, 1.05, 1.1, 1.2, 1.35, 1.5, 1.7],
        "long_factor": [1.0, 1.3, 1.9, 2.8, 4.0, 6.5, 9.0, 12.0]}),
    ("llama_rope_llama3", 256, "rope_type", {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                                             "high_freq_factor": 4.0, "original_max_position_embeddings": 32}),
]


def rope_specs(common):
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM
    specs = []
    for name, max_positions, legacy, rope in ROPE_FIXTURES:
        specs.append(dict(
            name=name, cls=LlamaForCausalLM, store_dtype=torch.float32, shards=1, legacy_rope=legacy,
            length_dependent_rope=rope["rope_type"] in ("dynamic", "longrope"),
            config=LlamaConfig(**{**common, "max_position_embeddings": max_positions}, num_key_value_heads=2,
                               head_dim=16, intermediate_size=160, rope_parameters={**rope, "rope_theta": 10000.0},
                               rms_norm_eps=1e-5, tie_word_embeddings=False)))
    return specs


def rope_inv_freq_f64(rp, head_dim, max_positions, seq_len):
    """Float64 inverse frequencies and attention scaling for standardized rope_parameters
    `rp`, for a forward pass reaching `seq_len`: transformers' formulas
    (modeling_rope_utils.py), written again in numpy float64. Plain RoPE rotates the whole
    head (Llama's own default ignores partial_rotary_factor)."""
    import numpy as np
    kind, base = rp.get("rope_type", "default"), float(rp["rope_theta"])
    dim = head_dim if kind == "default" else int(head_dim * rp.get("partial_rotary_factor", 1.0))
    expo = np.arange(0, dim, 2, dtype=np.float64) / dim
    plain = 1.0 / base ** expo
    if kind == "default":
        return plain, 1.0
    if kind == "linear":
        return plain / rp["factor"], 1.0
    if kind == "dynamic":
        n, f = max(seq_len, max_positions), rp["factor"]
        return 1.0 / (base * (f * n / max_positions - (f - 1)) ** (dim / (dim - 2))) ** expo, 1.0
    orig = rp["original_max_position_embeddings"]
    if kind == "yarn":
        f = rp["factor"] if rp["factor"] is not None else max_positions / orig
        def mscale(scale, m=1.0):
            return 1.0 if scale <= 1 else 0.1 * m * math.log(scale) + 1.0
        scaling = rp.get("attention_factor")
        if scaling is None:
            ms, msa = rp.get("mscale"), rp.get("mscale_all_dim")
            scaling = mscale(f, ms) / mscale(f, msa) if ms and msa else mscale(f)
        def corr(rot):
            return dim * math.log(orig / (rot * 2 * math.pi)) / (2 * math.log(base))
        low, high = corr(rp.get("beta_fast") or 32), corr(rp.get("beta_slow") or 1)
        if rp.get("truncate", True):
            low, high = math.floor(low), math.ceil(high)
        low, high = max(low, 0), min(high, dim - 1)
        if low == high:
            high += 0.001
        extrapolation = 1.0 - np.clip((np.arange(dim // 2, dtype=np.float64) - low) / (high - low), 0, 1)
        pos = base ** expo
        return (1.0 / (f * pos)) * (1 - extrapolation) + (1.0 / pos) * extrapolation, scaling
    if kind == "longrope":
        f = rp.get("factor") or max_positions / orig
        scaling = rp.get("attention_factor")
        if scaling is None:
            scaling = 1.0 if f <= 1 else math.sqrt(1 + math.log(f) / math.log(orig))
        ext = np.array(rp["long_factor"] if seq_len > orig else rp["short_factor"], dtype=np.float64)
        return 1.0 / (ext * base ** expo), scaling
    if kind == "llama3":
        f, lo, hi = rp["factor"], rp["low_freq_factor"], rp["high_freq_factor"]
        wavelen = 2 * math.pi / plain
        scaled = np.where(wavelen > orig / lo, plain / f, plain)
        smooth = (orig / wavelen - lo) / (hi - lo)
        smoothed = (1 - smooth) * scaled / f + smooth * scaled
        medium = ~(wavelen < orig / hi) & ~(wavelen > orig / lo)
        return np.where(medium, smoothed, scaled), 1.0
    raise ValueError(f"rope_type {kind}")


def rope_tables(out):
    """Tests/Fixtures/rope_tables.json: transformers' own inv_freq (float32) and attention
    scaling, from LlamaRotaryEmbedding after one forward over positions 0..seq_len-1 (so
    dynamic_rope_update picks or recomputes the table), for configs in both spellings and
    the options' edge cases; each is also checked against rope_inv_freq_f64."""
    import numpy as np
    import torch
    from transformers import LlamaConfig
    from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS
    from transformers.models.llama.modeling_llama import LlamaRotaryEmbedding
    base = {"hidden_size": 64, "num_attention_heads": 4, "head_dim": 16, "max_position_embeddings": 64}
    lr = {"short_factor": [1.0, 1.1, 1.2, 1.5, 2.0, 2.5, 3.0, 4.0], "long_factor": [2.0, 3.0, 4.0, 6.0, 8.0, 10.0, 12.0, 16.0]}
    cases = [
        ({"rope_theta": 500000.0, "rope_scaling": None}, [8]),
        ({"rope_parameters": {"rope_type": "linear", "factor": 4.0, "rope_theta": 1000.0}}, [8]),
        ({"rope_theta": 10000.0, "rope_scaling": {"type": "dynamic", "factor": 2.0}}, [8, 64, 65, 200]),
        ({"rope_parameters": {"rope_type": "dynamic", "factor": 0.5, "rope_theta": 10000.0}}, [100]),
        ({"rope_scaling": {"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 16}}, [8]),
        ({"rope_scaling": {"rope_type": "yarn", "factor": None, "original_max_position_embeddings": 16,
                           "truncate": False, "beta_fast": 8, "beta_slow": 0.5}}, [8]),
        ({"rope_scaling": {"rope_type": "yarn", "factor": 8.0, "mscale": 0.707, "mscale_all_dim": 0.707}}, [8]),
        ({"rope_scaling": {"rope_type": "yarn", "factor": 2.0, "attention_factor": 0.9, "beta_fast": 0,
                           "original_max_position_embeddings": 32}}, [8]),
        ({"rope_theta": 10000.0, "rope_scaling": {"type": "longrope", **lr, "original_max_position_embeddings": 16}}, [16, 17]),
        ({"rope_parameters": {"rope_type": "longrope", **lr, "factor": 1.0, "original_max_position_embeddings": 16}}, [40]),
        ({"rope_parameters": {"rope_type": "longrope", **lr, "attention_factor": 1.25}}, [64, 65]),
        ({"rope_theta": 500000.0, "rope_scaling": {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                                                   "high_freq_factor": 4.0, "original_max_position_embeddings": 32}}, [8]),
    ]
    # partial_rotary_factor: Llama's attention cannot use it, so these call transformers'
    # init functions directly (the architectures that apply it share them).
    partial = [
        ({"partial_rotary_factor": 0.5, "rope_parameters": {"rope_type": "linear", "factor": 2.0, "rope_theta": 10000.0}}, [8]),
        ({"rope_parameters": {"rope_type": "yarn", "factor": 4.0, "partial_rotary_factor": 0.75,
                              "original_max_position_embeddings": 16}}, [8]),
        ({"partial_rotary_factor": 0.5, "rope_scaling": {"type": "dynamic", "factor": 2.0}}, [100]),
        ({"partial_rotary_factor": 0.5, "rope_scaling": {"type": "longrope", "short_factor": lr["short_factor"][:4],
                                                         "long_factor": lr["long_factor"][:4]}}, [65]),
    ]
    entries = []
    for (extra, lengths), applies_partial in [(c, False) for c in cases] + [(c, True) for c in partial]:
        config_json = {"architectures": ["LlamaForCausalLM"], **base, **extra}
        for n in lengths:
            cfg = LlamaConfig.from_dict(json.loads(json.dumps(config_json)))
            rp = cfg.rope_parameters
            if applies_partial:
                inv, scaling = ROPE_INIT_FUNCTIONS[rp["rope_type"]](cfg, None, seq_len=n)
            else:
                emb = LlamaRotaryEmbedding(cfg)
                emb(torch.zeros(1), torch.arange(n)[None])
                inv, scaling = emb.inv_freq, emb.attention_scaling
            inv = inv.to(torch.float32).numpy()
            ref, ref_scaling = rope_inv_freq_f64(rp, 16, 64, n)
            assert inv.shape == ref.shape and np.allclose(inv, ref, rtol=2e-6, atol=0), (extra, n, inv, ref)
            assert abs(float(scaling) - ref_scaling) < 1e-12, (extra, n, scaling, ref_scaling)
            entries.append(dict(config=config_json, applies_partial_rotary=applies_partial, length=n,
                                inv_freq=[float(x) for x in inv], attention_scaling=float(scaling)))
    text = json.dumps(dict(
        note="transformers' inv_freq (float32) and attention_scaling after one forward over positions "
             "0..length-1; made by make_tiny_models.py rope_tables", entries=entries), indent=1)
    out.write_text(text + "\n")
    print(f"  rope_tables: {len(entries)} entries", file=sys.stderr)


def init_weights(model, seed, norm_offset=False, post_norm_weight=0.0, std_linear=STD_LINEAR):
    """Deterministic, larger-than-default random init (in place, float32). norm_offset:
    the norms multiply by (1 + w) (Gemma), so w is the noise alone, plus
    post_norm_weight for Gemma's post_* norms."""
    import torch
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():  # tied params appear once
            if name.endswith("norm.weight"):
                base = (post_norm_weight if ".post_" in name else 0.0) if norm_offset else 1.0
                p.copy_(base + STD_NORM_NOISE * torch.randn(p.shape, generator=g))
            elif name.endswith(".bias"):
                p.copy_(STD_BIAS * torch.randn(p.shape, generator=g))
            elif "embed_tokens" in name:
                p.copy_(STD_EMBED * torch.randn(p.shape, generator=g))
            else:
                p.copy_(std_linear * torch.randn(p.shape, generator=g))


def safetensors_header(path):
    with open(path, "rb") as f:
        n = int.from_bytes(f.read(8), "little")
        return json.loads(f.read(n))


def checkpoint_tensors(folder):
    """{name: (dtype string, shape, file)} from every safetensors file in folder."""
    out = {}
    for f in sorted(folder.glob("*.safetensors")):
        for k, v in safetensors_header(f).items():
            if k != "__metadata__":
                out[k] = (v["dtype"], v["shape"], f.name)
    return out


# --------------------------------------------------------------------------- float64

class TrueFloat64:
    """Context manager: make transformers' llama/qwen2/mistral code compute in the
    input dtype where it hard-codes float32 (RMSNorm, softmax, RoPE)."""

    def __enter__(self):
        import torch
        from torch import nn
        import transformers.models.llama.modeling_llama as ml
        import transformers.models.qwen2.modeling_qwen2 as mq
        import transformers.models.mistral.modeling_mistral as mm
        import transformers.models.qwen3.modeling_qwen3 as mq3
        import transformers.models.phi3.modeling_phi3 as mp3
        import transformers.models.gemma2.modeling_gemma2 as mg2

        def rms_forward(self, x):
            var = x.pow(2).mean(-1, keepdim=True)
            return self.weight * (x * torch.rsqrt(var + self.variance_epsilon))

        def gemma_rms_forward(self, x):  # Gemma2RMSNorm without its .float(): x_hat * (1 + w)
            var = x.pow(2).mean(-1, keepdim=True)
            return (x * torch.rsqrt(var + self.eps)) * (1.0 + self.weight)

        def rope_forward(self, x, position_ids):
            cfg = self.config
            head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
            if self.rope_type == "default":
                assert self.attention_scaling == 1.0
                dim = int(head_dim * cfg.rope_parameters.get("partial_rotary_factor", 1.0))
                base = float(cfg.rope_parameters["rope_theta"])
                inv = 1.0 / (base ** (torch.arange(0, dim, 2, dtype=torch.float64) / dim))
                scaling = 1.0
            else:  # scaled RoPE: the table for this pass's length, max(position_ids) + 1
                inv, scaling = rope_inv_freq_f64(cfg.rope_parameters, head_dim, cfg.max_position_embeddings,
                                                 int(position_ids.max()) + 1)
                inv = torch.from_numpy(inv)
            freqs = position_ids[..., None].to(torch.float64) * inv
            emb = torch.cat((freqs, freqs), dim=-1)
            return (emb.cos() * scaling).to(x.dtype), (emb.sin() * scaling).to(x.dtype)

        def make_eager(repeat_kv):
            def eager(module, query, key, value, attention_mask, scaling, dropout=0.0, softcap=None, **kw):
                k = repeat_kv(key, module.num_key_value_groups)
                v = repeat_kv(value, module.num_key_value_groups)
                w = torch.matmul(query, k.transpose(2, 3)) * scaling
                if softcap is not None:  # Gemma 2, as its eager_attention_forward
                    w = torch.tanh(w / softcap) * softcap
                if attention_mask is not None:
                    w = w + attention_mask
                w = nn.functional.softmax(w, dim=-1)  # in query dtype
                return torch.matmul(w, v).transpose(1, 2).contiguous(), w
            return eager

        self.saved = []
        for mod, prefix in ((ml, "Llama"), (mq, "Qwen2"), (mm, "Mistral"), (mq3, "Qwen3"), (mp3, "Phi3"),
                            (mg2, "Gemma2")):
            norm, rope = getattr(mod, prefix + "RMSNorm"), getattr(mod, prefix + "RotaryEmbedding")
            self.saved += [(norm, "forward", norm.forward), (rope, "forward", rope.forward),
                           (mod, "eager_attention_forward", mod.eager_attention_forward)]
            norm.forward = gemma_rms_forward if mod is mg2 else rms_forward
            rope.forward = rope_forward
            mod.eager_attention_forward = make_eager(mod.repeat_kv)
        return self

    def __exit__(self, *exc):
        for obj, attr, val in reversed(self.saved):
            setattr(obj, attr, val)


class SigmoidEager:
    """Context manager (inside TrueFloat64): llama's eager attention computes
    sigmoid(q k^T * scaling + bias) * v instead of softmax, masked keys 0."""

    def __init__(self, bias):
        self.bias = bias

    def __enter__(self):
        import torch
        import transformers.models.llama.modeling_llama as ml
        bias = self.bias

        def eager(module, query, key, value, attention_mask, scaling, dropout=0.0, **kw):
            k = ml.repeat_kv(key, module.num_key_value_groups)
            v = ml.repeat_kv(value, module.num_key_value_groups)
            w = torch.matmul(query, k.transpose(2, 3)) * scaling + bias
            if attention_mask is not None:
                if attention_mask.dtype == torch.bool:
                    w = w.masked_fill(~attention_mask, float("-inf"))
                else:
                    w = w + attention_mask  # dtype min where masked: sigmoid is exactly 0
            w = torch.sigmoid(w)
            return torch.matmul(w, v).transpose(1, 2).contiguous(), w

        self.saved = ml.eager_attention_forward
        ml.eager_attention_forward = eager
        return self

    def __exit__(self, *exc):
        import transformers.models.llama.modeling_llama as ml
        ml.eager_attention_forward = self.saved


def stable_sigmoid(z):
    import numpy as np
    e = np.exp(-np.abs(z))
    return np.where(z >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


def numpy_reference(folder, spec, ids, normalizer="softmax"):
    """Independent float64 forward pass from the safetensors files (numpy only).
    normalizer "sigmoid": attention weights sigmoid(s + sigmoid_bias), masked 0,
    no normalisation across keys."""
    import numpy as np
    from safetensors.torch import load_file
    import torch
    sd = {}
    for f in sorted(folder.glob("*.safetensors")):
        sd.update({k: v.to(torch.float64).numpy() for k, v in load_file(str(f)).items()})
    c = spec["config"]
    H, Hkv, L = c.num_attention_heads, c.num_key_value_heads, c.num_hidden_layers
    D = getattr(c, "head_dim", None) or c.hidden_size // H
    R = int(D * c.rope_parameters.get("partial_rotary_factor", 1.0))  # rotated channels per head
    theta = float(c.rope_parameters["rope_theta"])
    window = getattr(c, "sliding_window", None)
    eps = c.rms_norm_eps
    T = len(ids)
    gemma = c.model_type == "gemma2"
    # Gemma 2: sliding window only on the layers layer_types marks; scores scaled by
    # query_pre_attn_scalar^-0.5 and soft-capped, as are the logits.
    windows = [window if not gemma or c.layer_types[l] == "sliding_attention" else None for l in range(L)]
    scale = c.query_pre_attn_scalar ** -0.5 if gemma else 1.0 / math.sqrt(D)
    attn_cap = c.attn_logit_softcapping if gemma else None
    final_cap = c.final_logit_softcapping if gemma else None

    def rms(x, w):
        return (1.0 + w if gemma else w) * (x / np.sqrt((x * x).mean(-1, keepdims=True) + eps))

    def gelu_tanh(x):
        return 0.5 * x * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x ** 3)))

    def lin(x, name):
        y = x @ sd[name + ".weight"].T
        return y + sd[name + ".bias"] if name + ".bias" in sd else y

    if c.rope_parameters.get("rope_type", "default") == "default":
        inv, scaling = 1.0 / theta ** (np.arange(0, R, 2, dtype=np.float64) / R), 1.0
    else:
        inv, scaling = rope_inv_freq_f64(c.rope_parameters, D, c.max_position_embeddings, T)
    ang = np.arange(T, dtype=np.float64)[:, None] * inv[None, :]
    cos = np.cos(np.concatenate([ang, ang], -1)) * scaling
    sin = np.sin(np.concatenate([ang, ang], -1)) * scaling

    def rope(x):  # [T, heads, D], rotate-half convention on the first R channels
        r, rest = x[..., :R], x[..., R:]
        rot = np.concatenate([-r[..., R // 2:], r[..., :R // 2]], -1)
        return np.concatenate([r * cos[:, None, :] + rot * sin[:, None, :], rest], -1)

    qi, ki = np.arange(T)[:, None], np.arange(T)[None, :]
    x = sd["model.embed_tokens.weight"][ids]
    if gemma:  # transformers' embed_scale: a float32 tensor of sqrt(hidden)
        x = x * float(np.float32(c.hidden_size ** 0.5))
    for l in range(L):
        p = f"model.layers.{l}."
        allowed = ki <= qi
        if windows[l] is not None:
            allowed &= ki > qi - windows[l]
        h = rms(x, sd[p + "input_layernorm.weight"])
        if p + "self_attn.qkv_proj.weight" in sd:  # Phi-3: q rows, k rows, v rows
            qkv = lin(h, p + "self_attn.qkv_proj")
            q, k, v = np.split(qkv, [H * D, (H + Hkv) * D], axis=-1)
        else:
            q, k, v = (lin(h, p + f"self_attn.{n}_proj") for n in "qkv")
        q, k, v = q.reshape(T, H, D), k.reshape(T, Hkv, D), v.reshape(T, Hkv, D)
        if p + "self_attn.q_norm.weight" in sd:  # Qwen3: RMSNorm per head, before RoPE
            q, k = rms(q, sd[p + "self_attn.q_norm.weight"]), rms(k, sd[p + "self_attn.k_norm.weight"])
        q, k = rope(q), rope(k)
        out = np.empty((T, H, D))
        for hh in range(H):
            kv = hh // (H // Hkv)
            s = q[:, hh, :] @ k[:, kv, :].T * scale
            if attn_cap is not None:
                s = attn_cap * np.tanh(s / attn_cap)
            if normalizer == "sigmoid":
                w = np.where(allowed, stable_sigmoid(s + c.sigmoid_bias), 0.0)
                out[:, hh, :] = w @ v[:, kv, :]
                continue
            s = np.where(allowed, s, -np.inf)
            s = np.exp(s - s.max(-1, keepdims=True))
            out[:, hh, :] = (s / s.sum(-1, keepdims=True)) @ v[:, kv, :]
        o = lin(out.reshape(T, H * D), p + "self_attn.o_proj")
        if gemma:
            o = rms(o, sd[p + "post_attention_layernorm.weight"])
        x = x + o
        h = rms(x, sd[p + ("pre_feedforward_layernorm.weight" if gemma else "post_attention_layernorm.weight")])
        if p + "mlp.gate_up_proj.weight" in sd:  # Phi-3: gate rows, then up rows
            g, u = np.split(lin(h, p + "mlp.gate_up_proj"), 2, axis=-1)
        else:
            g, u = lin(h, p + "mlp.gate_proj"), lin(h, p + "mlp.up_proj")
        act = gelu_tanh(g) if gemma else g / (1.0 + np.exp(-g))
        down = lin(act * u, p + "mlp.down_proj")
        x = x + (rms(down, sd[p + "post_feedforward_layernorm.weight"]) if gemma else down)
    x = rms(x, sd["model.norm.weight"])
    head = sd.get("lm_head.weight", sd["model.embed_tokens.weight"])
    logits = x @ head.T
    return final_cap * np.tanh(logits / final_cap) if final_cap is not None else logits


def rewrite_rope_legacy(folder, type_key):
    """config.json in the published pre-v5 spelling: top-level rope_theta and rope_scaling
    (type under `type_key`), as Llama 3.1 / Phi-3 checkpoints carry them."""
    path = folder / "config.json"
    cfg = json.loads(path.read_text())
    rope = dict(cfg.pop("rope_parameters"))
    cfg["rope_theta"] = rope.pop("rope_theta")
    kind = rope.pop("rope_type")
    cfg["rope_scaling"] = {type_key: kind, **rope}
    path.write_text(json.dumps(cfg, indent=2, sort_keys=True) + "\n")


def check_rope(model, config):
    """The reloaded model runs the intended RoPE, and rope_inv_freq_f64 agrees with
    transformers' own float32 tables at the lengths the goldens use."""
    import numpy as np
    import torch
    from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS
    rp = model.config.rope_parameters
    want = config.rope_parameters
    for k, v in want.items():
        assert rp.get(k) == v, f"reloaded rope_parameters[{k}] = {rp.get(k)}, want {v}"
    for n in sorted({len(ids) + k for ids in SEQUENCES for k in range(MAX_NEW_TOKENS + 1)}):
        inv, scaling = ROPE_INIT_FUNCTIONS[rp["rope_type"]](model.config, None, seq_len=n)
        ref, ref_scaling = rope_inv_freq_f64(rp, config.head_dim, config.max_position_embeddings, n)
        assert np.allclose(inv.numpy(), ref, rtol=2e-6, atol=0), (n, inv, ref)
        assert abs(scaling - ref_scaling) < 1e-12, (n, scaling, ref_scaling)


# --------------------------------------------------------------------------- main

def dump_golden(folder, golden):
    text = json.dumps(golden, indent=2)
    # Keep integer lists (token ids) on one line.
    text = re.sub(r"\[\s*(-?\d+(?:,\s*-?\d+)*)\s*\]",
                  lambda m: "[" + ", ".join(re.split(r",\s*", m.group(1))) + "]", text)
    (folder / "golden.json").write_text(text + "\n")


def build_sigmoid(spec, torch_version, transformers_version):
    """A checkpoint with sigmoid attention; goldens from the numpy float64 forward."""
    import numpy as np
    import torch
    name, cls, config = spec["name"], spec["cls"], spec["config"]
    folder = OUT / name
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)

    # 1. Random model, float32, saved as transformers writes it (the config keeps the
    #    two sigmoid keys; transformers itself ignores them).
    torch.manual_seed(SEED)
    config._attn_implementation = "eager"
    model = cls(config).to(torch.float32).eval()
    init_weights(model, SEED + sum(map(ord, name)), spec.get("norm_offset", False), spec.get("post_norm_weight", 0.0),
                 spec.get("std_linear", STD_LINEAR))
    model.save_pretrained(str(folder))
    del model
    cfg = json.loads((folder / "config.json").read_text())
    assert cfg.get("attention_normalizer") == "sigmoid", cfg
    assert cfg.get("sigmoid_bias") == config.sigmoid_bias, cfg
    tensors = checkpoint_tensors(folder)
    assert sorted({d for d, _, _ in tensors.values()}) == ["F32"]
    assert "lm_head.weight" in tensors and sorted({f for _, _, f in tensors.values()}) == ["model.safetensors"]

    # 2. Cross-checks of the numpy forward on this checkpoint: with softmax it must equal
    #    transformers in true float64 (everything but the attention weights), and with
    #    sigmoid it must equal transformers' eager code patched to sigmoid.
    model = cls.from_pretrained(str(folder), dtype=torch.float32, attn_implementation="eager").eval().double()
    cross_softmax = cross_sigmoid = 0.0
    with torch.no_grad():
        for ids in SEQUENCES:
            with TrueFloat64():
                l64 = model(input_ids=torch.tensor([ids])).logits[0].numpy()
                with SigmoidEager(config.sigmoid_bias):
                    s64 = model(input_ids=torch.tensor([ids])).logits[0].numpy()
            cross_softmax = max(cross_softmax, float(np.abs(numpy_reference(folder, spec, ids) - l64).max()))
            cross_sigmoid = max(cross_sigmoid, float(np.abs(numpy_reference(folder, spec, ids, "sigmoid") - s64).max()))
    del model
    assert cross_softmax < 1e-10, f"{name}: numpy softmax forward differs from transformers by {cross_softmax}"
    assert cross_sigmoid < 1e-10, f"{name}: numpy sigmoid forward differs from patched transformers by {cross_sigmoid}"

    # 3. Goldens: float64 logits and greedy continuations, all from numpy.
    seqs = []
    for i, ids in enumerate(SEQUENCES):
        l64 = numpy_reference(folder, spec, ids, "sigmoid")
        softmax = numpy_reference(folder, spec, ids)
        assert float(np.abs(l64 - softmax).max()) > 1e-1, f"{name}: sigmoid attention has no effect"
        seq, gaps = list(ids), []
        for _ in range(MAX_NEW_TOKENS):
            last = numpy_reference(folder, spec, seq, "sigmoid")[-1]
            top2 = np.sort(last)[-2:]
            gaps.append(float(top2[1] - top2[0]))
            seq.append(int(last.argmax()))
        gap = min(gaps)
        assert gap > 1e-3, f"{name}[{i}]: greedy step with top-2 logit gap {gap}; change SEED"
        np.save(folder / f"logits_{i}_f64.npy", l64)
        seqs.append(dict(input_ids=ids, greedy_new_ids=seq[len(ids):], logits_f64=f"logits_{i}_f64.npy",
                         min_top2_logit_gap_greedy=gap, max_abs_logit=float(np.abs(l64).max())))
        print(f"  {name}[{i}] T={len(ids)} greedy {seqs[i]['greedy_new_ids']} gap {gap:.3e}", file=sys.stderr)
    print(f"  {name}: numpy vs transformers softmax {cross_softmax:.1e}, vs patched sigmoid {cross_sigmoid:.1e}",
          file=sys.stderr)

    dump_golden(folder, dict(
        model=name,
        architecture=cls.__name__,
        checkpoint_dtype="float32",
        seed=SEED,
        transformers_version=transformers_version,
        torch_version=torch_version,
        attention_normalizer="sigmoid",
        sigmoid_bias=config.sigmoid_bias,
        logits_layout="[T, vocab] row-major; logits_<i>_f64.npy float64",
        compute="numpy float64 forward pass from the safetensors file (numpy_reference, "
                "normalizer sigmoid); greedy ids by full re-forward per step; transformers has no "
                "sigmoid attention",
        max_abs_diff_numpy_vs_transformers_softmax_f64=cross_softmax,
        max_abs_diff_numpy_vs_patched_transformers_sigmoid_f64=cross_sigmoid,
        sequences=seqs,
    ))


def build(spec, torch_version, transformers_version):
    import numpy as np
    import torch
    name, cls, config = spec["name"], spec["cls"], spec["config"]
    if spec.get("sigmoid"):
        return build_sigmoid(spec, torch_version, transformers_version)
    folder = OUT / name
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)

    # 1. Random model, stored in the target dtype.
    torch.manual_seed(SEED)
    config._attn_implementation = "eager"
    model = cls(config).to(torch.float32).eval()
    init_weights(model, SEED + sum(map(ord, name)), spec.get("norm_offset", False), spec.get("post_norm_weight", 0.0),
                 spec.get("std_linear", STD_LINEAR))
    model = model.to(spec["store_dtype"])
    save_kw = {}
    if spec["shards"] > 1:
        # Smallest shard size (in 1 KiB steps) that gives exactly the wanted shard count.
        from huggingface_hub import split_torch_state_dict_into_shards
        nbytes = sum(p.numel() * p.element_size() for p in model.parameters())  # tied: once
        size = nbytes // spec["shards"]
        while len(split_torch_state_dict_into_shards(
                model.state_dict(), max_shard_size=size).filename_to_tensors) > spec["shards"]:
            size += 1024
        save_kw["max_shard_size"] = size
    model.save_pretrained(str(folder), **save_kw)
    del model
    if spec.get("legacy_rope"):
        rewrite_rope_legacy(folder, spec["legacy_rope"])

    # 2. Check what was written.
    tensors = checkpoint_tensors(folder)
    want = {torch.float32: "F32", torch.bfloat16: "BF16", torch.float16: "F16"}[spec["store_dtype"]]
    dtypes = sorted({d for d, _, _ in tensors.values()})
    assert dtypes == [want], f"{name}: stored dtypes {dtypes}, want {want}"
    has_lm_head = "lm_head.weight" in tensors
    assert has_lm_head == (not config.tie_word_embeddings), f"{name}: lm_head present={has_lm_head}"
    files = sorted({f for _, _, f in tensors.values()})
    assert len(files) == spec["shards"], f"{name}: {len(files)} safetensors files"
    if spec["shards"] > 1:
        assert (folder / "model.safetensors.index.json").exists()
    else:
        assert files == ["model.safetensors"]
    for f in folder.glob("*.safetensors"):
        assert safetensors_header(f).get("__metadata__") == {"format": "pt"}, f

    # 3. Reload exactly as stored, compute in float32.
    def load(**overrides):
        m = cls.from_pretrained(str(folder), dtype=torch.float32, attn_implementation="eager",
                                **overrides)
        return m.eval()

    model = load()
    if spec.get("legacy_rope") is not None or config.rope_parameters.get("rope_type") != "default":
        check_rope(model, config)
    if config.tie_word_embeddings:
        assert model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr()
    seqs, max_diff = [], 0.0
    for i, ids in enumerate(SEQUENCES):
        x = torch.tensor([ids])
        with torch.no_grad():
            l32 = model(input_ids=x).logits[0].numpy().astype(np.float32)
            gen = model.generate(input_ids=x, attention_mask=torch.ones_like(x),
                                 max_new_tokens=MAX_NEW_TOKENS, do_sample=False,
                                 min_new_tokens=0, return_dict_in_generate=True, output_logits=True)
        new = gen.sequences[0, len(ids):].tolist()
        assert len(new) == MAX_NEW_TOKENS, f"{name}: generated {len(new)} tokens"
        if spec.get("length_dependent_rope"):
            # Cached generation rotates each step's keys with the table of that step's length,
            # so only generate's own logits describe it (a full re-forward uses one table).
            steps = torch.stack([l[0] for l in gen.logits])
        else:
            # Greedy continuation must agree with argmax of a full re-forward.
            with torch.no_grad():
                full = model(input_ids=gen.sequences).logits[0]
            steps = full[len(ids) - 1:-1]
        assert steps.argmax(-1).tolist() == new, f"{name}: generate/forward mismatch"
        top2 = steps.topk(2, dim=-1).values
        gap = float((top2[:, 0] - top2[:, 1]).min())
        assert gap > 1e-3, f"{name}[{i}]: greedy step with top-2 logit gap {gap}; change SEED"
        np.save(folder / f"logits_{i}.npy", l32)
        seqs.append(dict(input_ids=ids, greedy_new_ids=new, logits=f"logits_{i}.npy",
                         logits_f64=f"logits_{i}_f64.npy", min_top2_logit_gap_greedy=gap))

    # 4. Float64: HF's model.double() as is (informational), then true float64.
    model = model.double()
    hf_double_diff = 0.0
    with torch.no_grad():
        for i, ids in enumerate(SEQUENCES):
            naive = model(input_ids=torch.tensor([ids])).logits[0].numpy()
            with TrueFloat64():
                l64 = model(input_ids=torch.tensor([ids])).logits[0].numpy()
            assert l64.dtype == np.float64
            ref = numpy_reference(folder, spec, ids)
            ref_diff = float(np.abs(ref - l64).max())
            assert ref_diff < 1e-10, f"{name}[{i}]: numpy reference differs by {ref_diff}"
            np.save(folder / f"logits_{i}_f64.npy", l64)
            l32 = np.load(folder / f"logits_{i}.npy")
            d = float(np.abs(l32.astype(np.float64) - l64).max())
            seqs[i]["max_abs_diff_f32_vs_f64"] = d
            seqs[i]["max_abs_logit"] = float(np.abs(l64).max())
            seqs[i]["argmax_f64_equals_argmax_f32"] = bool((l64.argmax(-1) == l32.argmax(-1)).all())
            max_diff = max(max_diff, d)
            hf_double_diff = max(hf_double_diff, float(np.abs(naive - l64).max()))
            print(f"  {name}[{i}] T={len(ids)} f32-vs-f64 {d:.3e}  numpy-ref-vs-f64 {ref_diff:.1e}"
                  f"  greedy {seqs[i]['greedy_new_ids']}", file=sys.stderr)
    del model

    golden = dict(
        model=name,
        architecture=cls.__name__,
        checkpoint_dtype=str(spec["store_dtype"]).replace("torch.", ""),
        seed=SEED,
        transformers_version=transformers_version,
        torch_version=torch_version,
        logits_layout="[T, vocab] row-major; logits_<i>.npy float32, logits_<i>_f64.npy float64",
        compute="weights as stored, upcast to float32 (logits_<i>.npy, greedy ids) "
                "or float64 (logits_<i>_f64.npy); eager attention",
        max_abs_diff_f32_vs_f64=max_diff,
        max_abs_diff_hf_double_vs_f64=hf_double_diff,
        sequences=seqs,
    )

    # 5. Mistral: the sliding window must change the logits of the long sequence.
    if getattr(config, "sliding_window", None):
        # Gemma 2's cache needs a window for sliding layers: drop them by layer type instead.
        layer_types = getattr(config, "layer_types", None)
        nowin = (load(layer_types=["full_attention"] * len(layer_types)) if config.model_type == "gemma2"
                 else load(sliding_window=None))
        diffs = []
        with torch.no_grad():
            for i, ids in enumerate(SEQUENCES):
                l = nowin(input_ids=torch.tensor([ids])).logits[0].numpy()
                diffs.append(float(np.abs(l - np.load(folder / f"logits_{i}.npy")).max()))
        assert diffs[0] > 1e-2, f"{name}: sliding window has no effect ({diffs[0]})"
        assert all(d == 0.0 for d, ids in zip(diffs, SEQUENCES) if len(ids) <= config.sliding_window)
        golden["sliding_window"] = config.sliding_window
        golden["sliding_window_rule"] = "query q sees keys k with q - window < k <= q (window keys incl. itself)"
        golden["max_abs_diff_vs_no_sliding_window"] = diffs
        print(f"  {name}: logits change without the window by {diffs}", file=sys.stderr)

    # 5b. Gemma 2: each soft-cap must change the logits (tanh is not near-linear here).
    if getattr(config, "attn_logit_softcapping", None):
        golden["attn_logit_softcapping"] = config.attn_logit_softcapping
        golden["final_logit_softcapping"] = config.final_logit_softcapping
        for key in ("attn_logit_softcapping", "final_logit_softcapping"):
            uncapped = load(**{key: None})
            with torch.no_grad():
                d = max(float(np.abs(uncapped(input_ids=torch.tensor([ids])).logits[0].numpy()
                                     - np.load(folder / f"logits_{i}.npy")).max()) for i, ids in enumerate(SEQUENCES))
            assert d > 0.1, f"{name}: {key} barely matters ({d})"
            golden[f"max_abs_diff_without_{key}"] = d
            print(f"  {name}: logits change without {key} by {d:.3f}", file=sys.stderr)

    # 6. Fixed calibration tokens for `attune calibrate` (int64 [sequences, n], seeded).
    if spec.get("calibration_tokens"):
        rows, n = spec["calibration_tokens"]
        rng = np.random.default_rng(SEED + 1)
        np.save(folder / "calibration_tokens.npy", rng.integers(0, config.vocab_size, size=(rows, n), dtype=np.int64))
        golden["calibration_tokens"] = "calibration_tokens.npy"

    dump_golden(folder, golden)


def main():
    ensure_venv()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    import numpy, safetensors, torch, transformers
    transformers.logging.set_verbosity_error()
    torch.set_num_threads(1)  # fixed reduction order -> reproducible float32 logits
    torch.use_deterministic_algorithms(True)
    print(f"torch {torch.__version__}, transformers {transformers.__version__}, "
          f"safetensors {safetensors.__version__}, numpy {numpy.__version__}", file=sys.stderr)
    only = set(sys.argv[1:])  # model names to (re)build; none = all
    for spec in model_specs():
        if not only or spec["name"] in only:
            build(spec, torch.__version__, transformers.__version__)
    if not only or "rope_tables" in only:
        rope_tables(FIXTURES / "rope_tables.json")
    total = 0
    for f in sorted(OUT.rglob("*")):
        if f.is_file():
            total += f.stat().st_size
            print(f"{f.stat().st_size:9d}  {f.relative_to(FIXTURES)}")
    print(f"{total:9d}  total")


if __name__ == "__main__":
    main()
