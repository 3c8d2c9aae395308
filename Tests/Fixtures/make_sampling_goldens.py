#!/usr/bin/env python3
"""Goldens for Attune's sampler and generation settings, computed by transformers itself.

Writes Tests/Fixtures/sampling/:

  processors.json  For fixed logit vectors and generation settings: the names of the
                   logits processors transformers' `generate` builds (in its order) and
                   the scores they output (null where a token is filtered out, i.e. -inf).
                   Built with the real `GenerationMixin._prepare_generation_config` and
                   `_get_logits_processor` of a tiny Llama, so defaults (top_k 50, ...)
                   and the rules for which processor is active are transformers' own.
  configs.json     generation_config.json / config.json pairs and the settings transformers
                   generates with after loading them (the model-loading fallback rules and
                   the global defaults applied).
  random.json      The first outputs of Attune's PRNG (xoshiro256** seeded by SplitMix64,
                   see Docs/TEXT.md), from this independent Python implementation.

Run with the project venv (no downloads):
    /work/venv/bin/python Tests/Fixtures/make_sampling_goldens.py
Deterministic: every vector comes from a seeded numpy generator, and the script refuses
vectors where a top-p or min-p boundary is closer than 1e-5 to the threshold, so float32
(torch) versus float64 (Attune) rounding cannot flip a golden mask.
"""

import json
import os
import shutil
import tempfile
import warnings

import numpy as np
import torch
from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM
from transformers.utils import logging as hf_logging

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "sampling")
MARGIN = 1e-5

hf_logging.set_verbosity_error()
warnings.filterwarnings("ignore")
torch.manual_seed(0)


def tiny_model():
    # No bos/eos: MinLength and friends must not appear; the processors depend only on the settings.
    cfg = LlamaConfig(vocab_size=16, hidden_size=8, intermediate_size=16, num_hidden_layers=1,
                      num_attention_heads=2, num_key_value_heads=2, bos_token_id=None, eos_token_id=None,
                      pad_token_id=None)
    return LlamaForCausalLM(cfg)


def processors_for(model, settings, prompt_len):
    gc, _ = model._prepare_generation_config(GenerationConfig(**settings))
    return model._get_logits_processor(generation_config=gc, input_ids_seq_length=prompt_len,
                                       device="cpu", model_kwargs={})


def margins_ok(scores, settings):
    """True if no top-p / min-p decision sits within MARGIN of its threshold (float64 view)."""
    s = np.asarray(scores, dtype=np.float64)
    finite = s[np.isfinite(s)]
    if len(np.unique(finite)) != len(finite):
        return False
    p = np.exp(finite - finite.max())
    p /= p.sum()
    if settings.get("top_p") is not None and settings["top_p"] < 1.0:
        asc = np.sort(p)
        cum = np.cumsum(asc)
        if len(cum) > 1 and np.min(np.abs(cum[:-1] - (1.0 - settings["top_p"]))) < MARGIN:  # the top token is always kept
            return False
    if settings.get("min_p") is not None:
        if np.min(np.abs(p / p.max() - settings["min_p"])) < MARGIN:
            return False
    return True


def staged_scores(procs, ids, logits):
    """The final scores and the input of every processor (each is checked for safe margins)."""
    x = logits
    stages = []
    for proc in procs:
        stages.append(x)
        x = proc(ids, x)
    return x, stages


def processor_cases():
    model = tiny_model()
    rng = np.random.default_rng(20261203)
    specs = [
        ("greedy_defaults", {}, 24, 0),
        ("do_sample_defaults_topk50", {"do_sample": True}, 80, 0),
        ("greedy_ignores_warpers", {"do_sample": False, "temperature": 0.5, "top_k": 3, "top_p": 0.5,
                                    "repetition_penalty": 1.3}, 24, 6),
        ("temperature", {"do_sample": True, "temperature": 0.7, "top_k": 0}, 24, 0),
        ("top_k_5", {"do_sample": True, "top_k": 5}, 40, 0),
        ("top_k_1", {"do_sample": True, "top_k": 1}, 40, 0),
        ("top_p_0_9", {"do_sample": True, "top_k": 0, "top_p": 0.9}, 64, 0),
        ("top_p_0_3_hot", {"do_sample": True, "top_k": 0, "top_p": 0.3, "temperature": 1.7}, 200, 0),
        ("top_p_0", {"do_sample": True, "top_k": 0, "top_p": 0.0}, 32, 0),
        # More tokens than Attune's top-p score bins (1024): the binned path.
        ("top_p_0_8_large_vocab", {"do_sample": True, "top_k": 0, "top_p": 0.8, "temperature": 1.3}, 3000, 0),
        ("min_p_0_1", {"do_sample": True, "top_k": 0, "min_p": 0.1}, 64, 0),
        ("min_p_0_3_cold", {"do_sample": True, "top_k": 0, "min_p": 0.3, "temperature": 0.6}, 64, 0),
        ("all_filters", {"do_sample": True, "temperature": 0.8, "top_k": 20, "top_p": 0.85, "min_p": 0.05,
                         "repetition_penalty": 1.2}, 300, 40),
        ("repetition_penalty_reward", {"do_sample": True, "top_k": 0, "repetition_penalty": 0.7}, 32, 12),
        ("chi_square", {"do_sample": True, "temperature": 0.9, "top_k": 7, "top_p": 0.95,
                        "repetition_penalty": 1.1}, 10, 4),
    ]
    cases = []
    for name, settings, vocab, history_len in specs:
        procs = processors_for(model, settings, history_len)
        for _ in range(1000):
            logits = torch.tensor(rng.normal(0.0, 2.5, size=vocab), dtype=torch.float32)
            if name == "chi_square":
                logits = torch.tensor(rng.normal(0.0, 1.0, size=vocab), dtype=torch.float32)
            history = rng.integers(0, vocab, size=history_len).tolist()
            if history_len:
                history += history[:3]  # repeated ids are penalised once
            ids = torch.tensor([history], dtype=torch.long) if history else torch.zeros((1, 0), dtype=torch.long)
            out, stages = staged_scores(procs, ids, logits[None].clone())
            if all(margins_ok(s[0].numpy(), settings) for s in stages + [out]):
                break
        else:
            raise SystemExit(f"{name}: no vector with safe margins")
        cases.append(case_json(name, settings, logits, history, procs, out[0]))
    cases.append(tie_case(model))
    cases.append(out_of_vocab_history_case(model))
    return cases


def tie_case(model):
    # transformers' top-k keeps every token equal to the k-th largest score.
    settings = {"do_sample": True, "top_k": 2}
    logits = torch.tensor([1.0, 2.0, 3.0, 3.0, 3.0, 0.5, -1.0], dtype=torch.float32)
    procs = processors_for(model, settings, 0)
    out = procs(torch.zeros((1, 0), dtype=torch.long), logits[None].clone())
    return case_json("top_k_ties_kept", settings, logits, [], procs, out[0])


def out_of_vocab_history_case(model):
    # Ids beyond the logits row (an embedding larger than lm_head) are ignored; zero stays zero.
    settings = {"do_sample": False, "repetition_penalty": 2.0}
    logits = torch.tensor([0.0, -1.5, 2.5, 4.0, -0.25], dtype=torch.float32)
    history = [0, 1, 2, 7, 2, 1]
    procs = processors_for(model, settings, len(history))
    out = procs(torch.tensor([history], dtype=torch.long), logits[None].clone())
    return case_json("repetition_penalty_out_of_vocab", settings, logits, history, procs, out[0])


def case_json(name, settings, logits, history, procs, out):
    return {
        "name": name,
        "settings": settings,
        "settings_json": json.dumps(settings),  # written verbatim as generation_config.json by the tests
        "logits": [float(v) for v in logits.tolist()],
        "history": history,
        "processors": [type(p).__name__ for p in procs],
        "scores": [None if not np.isfinite(v) else float(v) for v in out.tolist()],
    }


SETTINGS_KEYS = ["do_sample", "temperature", "top_k", "top_p", "min_p", "repetition_penalty", "eos_token_id",
                 "bos_token_id", "pad_token_id", "max_length", "max_new_tokens", "stop_strings"]


def config_cases():
    model = tiny_model()
    specs = [
        ("generation_config_only", {"do_sample": True, "temperature": 0.6, "top_p": 0.9, "eos_token_id": [151645, 151643],
                                    "bos_token_id": 151643, "pad_token_id": 151643},
         {"eos_token_id": 2, "bos_token_id": 1}),
        ("generation_config_wins_whole", {"do_sample": True}, {"eos_token_id": 7, "temperature": 0.3}),
        ("single_eos_int", {"eos_token_id": 2, "max_length": 4096}, {}),
        ("greedy_with_temperature", {"do_sample": False, "temperature": 0.1, "top_k": 5}, {}),
        ("max_new_tokens", {"max_new_tokens": 64, "max_length": 100, "repetition_penalty": 1.05, "min_p": 0.02}, {}),
        ("stop_strings", {"stop_strings": ["###", "\nUser:"], "top_k": 0}, {}),
        ("nulls_are_unset", {"temperature": None, "top_k": None, "eos_token_id": None}, {"eos_token_id": 3}),
        ("fallback_config_json", None, {"eos_token_id": [5, 6], "bos_token_id": 1, "temperature": 0.3,
                                        "do_sample": True, "max_length": 512}),
        ("fallback_text_config", None, {"bos_token_id": None, "eos_token_id": 2,
                                        "text_config": {"eos_token_id": 9, "bos_token_id": 3, "top_p": 0.5}}),
        ("fallback_nothing", None, {"vocab_size": 10}),
    ]
    cases = []
    for name, gen, cfg in specs:
        d = tempfile.mkdtemp()
        try:
            with open(os.path.join(d, "config.json"), "w") as f:
                json.dump(cfg, f)
            if gen is not None:
                with open(os.path.join(d, "generation_config.json"), "w") as f:
                    json.dump(gen, f)
                loaded = GenerationConfig.from_pretrained(d)
            else:
                # What `from_pretrained` does when generation_config.json is missing (generation/utils.py).
                loaded = GenerationConfig.from_pretrained(d, config_file_name="config.json", _from_model_config=True)
        finally:
            shutil.rmtree(d)
        has_default_max_length = loaded.max_length is None
        model.generation_config = loaded
        gc, _ = model._prepare_generation_config(None)
        expected = {k: getattr(gc, k) for k in SETTINGS_KEYS}
        expected["max_length_is_default"] = has_default_max_length
        cases.append({"name": name, "generation_config": None if gen is None else json.dumps(gen),
                      "config": json.dumps(cfg), "expected": expected})
    return cases


MASK = (1 << 64) - 1


def splitmix_next(state):
    state = (state + 0x9E3779B97F4A7C15) & MASK
    return state, mix64(state)


def mix64(z):
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
    return z ^ (z >> 31)


def rotl(x, k):
    return ((x << k) | (x >> (64 - k))) & MASK


def xoshiro_outputs(seed, stream, n):
    state = seed ^ mix64(stream)
    s = []
    for _ in range(4):
        state, out = splitmix_next(state)
        s.append(out)
    outs = []
    for _ in range(n):
        result = (rotl((s[1] * 5) & MASK, 7) * 9) & MASK
        t = (s[1] << 17) & MASK
        s[2] ^= s[0]
        s[3] ^= s[1]
        s[1] ^= s[2]
        s[0] ^= s[3]
        s[2] ^= t
        s[3] = rotl(s[3], 45)
        outs.append(str(result))  # decimal strings: JSON numbers lose bits beyond 2^53
    return outs


def random_cases():
    return [{"seed": str(seed), "stream": stream, "outputs": xoshiro_outputs(seed, stream, 6)}
            for seed, stream in [(0, 0), (42, 0), (42, 1), (42, 7), (2**64 - 1, 3)]]


def write(name, obj):
    with open(os.path.join(OUT, name), "w") as f:
        json.dump(obj, f, indent=1, allow_nan=False)
        f.write("\n")


if __name__ == "__main__":
    os.makedirs(OUT, exist_ok=True)
    write("processors.json", processor_cases())
    write("configs.json", config_cases())
    write("random.json", random_cases())
    print("wrote", OUT)
