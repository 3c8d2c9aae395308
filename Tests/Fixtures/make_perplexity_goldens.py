"""Perplexity goldens for `attune perplexity` (PerplexityTests): transformers' logits, in
float64 log-softmax, over Tests/Fixtures/perplexity/text.txt with the windowing Attune
documents (windows of `context` tokens advancing by `stride`, each scoring the tokens no
earlier window scored, from the tokens before them in the window).

Run: /path/to/venv/bin/python Tests/Fixtures/make_perplexity_goldens.py
"""
import json
import math
import os

import torch
from tokenizers import Tokenizer
from transformers import AutoModelForCausalLM

HERE = os.path.dirname(os.path.abspath(__file__))
MODELS = ["llama_text", "example"]
SETTINGS = [(64, 64), (64, 32), (128, 48)]


def windows(n, context, stride):
    out, previous_end, start = [], 0, 0
    while start < n:
        end = min(start + context, n)
        out.append((start, end, max(start + 1, previous_end)))
        previous_end = end
        if end == n:
            break
        start += stride
    return out


def main():
    text = open(os.path.join(HERE, "perplexity", "text.txt"), encoding="utf-8").read()
    goldens = {}
    for name in MODELS:
        folder = os.path.join(HERE, "models", name)
        if not os.path.exists(os.path.join(folder, "tokenizer.json")):
            continue
        ids = Tokenizer.from_file(os.path.join(folder, "tokenizer.json")).encode(text).ids
        # Attune encodes with the post-processor's special tokens, as `tokenizers` does.
        model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
        cases = []
        for context, stride in SETTINGS:
            nll, count = 0.0, 0
            for start, end, first in windows(len(ids), context, stride):
                with torch.no_grad():
                    logits = model(torch.tensor([ids[start:end]])).logits[0].double()
                logp = torch.log_softmax(logits, dim=-1)
                for t in range(first, end):
                    nll -= logp[t - 1 - start, ids[t]].item()
                    count += 1
            cases.append({"context": context, "stride": stride, "tokens": count, "nll_mean": nll / count,
                          "perplexity": math.exp(nll / count)})
        goldens[name] = {"text_tokens": len(ids), "cases": cases}
    with open(os.path.join(HERE, "perplexity", "goldens.json"), "w") as f:
        json.dump(goldens, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
