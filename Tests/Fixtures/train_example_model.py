#!/usr/bin/env python3
"""Train Tests/Fixtures/models/example: a small Llama (LlamaForCausalLM) trained on text of this
machine, with its own byte-level BPE tokenizer, published as a Hugging Face checkpoint folder.

    nice -n 10 /work/venv/bin/python Tests/Fixtures/train_example_model.py            # train + goldens
    /work/venv/bin/python Tests/Fixtures/train_example_model.py --goldens             # goldens only

(venv: torch, transformers, tokenizers, safetensors; no network.) Deterministic given SEED, the
thread count (2) and the corpus, the files of this machine listed in example_corpus.sha1: the Python
3.11 standard library sources (Debian's /usr/lib/python3.11), /usr/share/common-licenses, and the
.txt/.md/.rst/README/copyright files under /usr/share/doc (each at most 200 kB, duplicates
dropped; the list keeps their SHA-1s, so a rerun reads the same ones or stops).
Files whose path hashes to 0 mod 40 are held out: neither the tokenizer nor the model sees them.
The corpus text is never written to the repository.

Recorded run (AMD EPYC, 2 cores, torch 2.13 CPU, nice 10 while other builds and benchmarks ran):
3,868,928 parameters, 600 steps / 2.46 M tokens in 55 min (about 1.2 s per step on an idle machine,
5-9 s under that load), held-out loss 4.687 at 1024 tokens (perplexity 108.5), 4.766 at 2048
(117.5). That is undertrained: the continuations are code-shaped but repetitive. More steps in
PHASES (on an idle machine 3000 steps fit in about an hour) is the way to a better example; rerun,
then pick PROMPTS whose greedy gaps clear MIN_GAP and update the Makefile's `example` prompt.

Model: hidden 256, 4 layers, 8 query heads / 2 KV heads (head_dim 32), SiLU MLP 704, vocab 4096,
tied embeddings, RoPE theta 10000, max_position_embeddings 2048. Trained with AdamW on random
windows of the concatenated training files (each file followed by <|endoftext|>): first at
sequence length 1024, then 2048. Source files repeat identifiers and structure over thousands of
tokens, so copying from far back in the context lowers the loss: the aim is attention heads
that learn it (at this training length the model has not got far: held-out loss at 2048 tokens
is not below the loss at 1024).

A few percent of the training text is ChatML conversations built from docstrings ("What does
json.dumps do?" -> its docstring's first paragraph), meant to make `--chat` answer in that
shape; undertrained, the model mostly learnt to emit <|im_end|> (EOS) at line ends from them.

Goldens (golden_text.json): transformers loads the committed bf16 checkpoint as float32 (as
Attune converts bf16 weights today) and greedily generates for a few prompts, one of them a held-out
file's first LONG_PROMPT or more tokens; they record prompt ids, generated ids and text, the last
position's logits and the smallest top-1/top-2 logit gap seen while generating.
"""
import argparse
import ast
import glob
import hashlib
import json
import math
import os
import random
import shutil
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
OUT = HERE / "models" / "example"
MANIFEST = HERE / "example_corpus.sha1"  # the corpus's files (not their text), see corpus()
sys.path.insert(0, str(HERE))
from make_tokenizers import LLAMA3_PATTERN  # noqa: E402 (the split regex Attune's tokenizer tests cover)

SEED = 1234
THREADS = 2
VOCAB = 4096
SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
CHAT_TEMPLATE = ("{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + "
                 "'<|im_end|>' + '\\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}")
MODEL = dict(hidden_size=256, num_hidden_layers=4, num_attention_heads=8, num_key_value_heads=2, head_dim=32,
             intermediate_size=704, max_position_embeddings=2048, rope_theta=10000.0, rms_norm_eps=1e-5,
             tie_word_embeddings=True, initializer_range=0.02)
# (sequence length, sequences per step, steps): 4096 tokens per step.
PHASES = [(1024, 4, 480), (2048, 2, 120)]
LR, WARMUP, MIN_LR_FRACTION, WEIGHT_DECAY = 2e-3, 40, 0.1, 0.1
EVAL_WINDOWS = 32  # held-out windows of 2048 tokens (or fewer if the held-out text is shorter)
LONG_PROMPT = 1200
NEW_TOKENS = 48  # as `make example`
LONG_NEW_TOKENS = 32
MIN_GAP = 0.05  # smallest top-1/top-2 logit gap a golden greedy step may have
# Prompts whose greedy continuation has no near tie (see MIN_GAP); the first is `make example`'s.
PROMPTS = ["        return None",
           "def fibonacci(n):\n    \"\"\"Return the n-th Fibonacci number.\"\"\"\n"]
CHAT_PROMPT = "What does os.path.join do?"


def is_held_out(path):
    return int(hashlib.sha1(path.encode()).hexdigest(), 16) % 40 == 0


def read(path):
    with open(path, encoding="utf-8", errors="replace") as f:
        return f.read()


def corpus():
    """[(path, text)] sorted by path, duplicates (by content) dropped. The files and SHA-1s of the
    committed model's corpus are in MANIFEST; when it exists exactly those are read (installing a
    package adds files under /usr/share/doc), and a missing or changed one stops the run."""
    if MANIFEST.exists():
        docs = []
        for line in MANIFEST.read_text().splitlines():
            digest, path = line.split("  ", 1)
            text = read(path) if os.path.isfile(path) else ""
            if hashlib.sha1(text.encode()).hexdigest() != digest:
                raise SystemExit(f"{path}: missing or changed since the example model was trained ({MANIFEST.name})")
            docs.append((path, text))
        return docs
    paths = [p for p in glob.glob("/usr/lib/python3.11/**/*.py", recursive=True) if "-packages/" not in p]
    paths += glob.glob("/usr/share/common-licenses/*")
    for pattern in ["*.txt", "*.md", "*.rst", "README*", "copyright"]:
        paths += [p for p in glob.glob("/usr/share/doc/**/" + pattern, recursive=True) if not p.endswith(".gz")]
    seen, docs = set(), []
    for path in sorted(set(paths)):
        if not os.path.isfile(path) or os.path.islink(path) or os.path.getsize(path) > 200_000:
            continue
        text = read(path)
        digest = hashlib.sha1(text.encode()).digest()
        if len(text) < 200 or digest in seen:
            continue
        seen.add(digest)
        docs.append((path, text))
    MANIFEST.write_text("".join(f"{hashlib.sha1(t.encode()).hexdigest()}  {p}\n" for p, t in docs))
    return docs


def docstring_chats(path, text):
    """ChatML conversations from the docstrings of a module's public top-level functions and classes."""
    if not path.startswith("/usr/lib/python3.11/") or not path.endswith(".py"):
        return []
    module = path[len("/usr/lib/python3.11/"):-3].replace("/", ".").removesuffix(".__init__")
    try:
        tree = ast.parse(text)
    except (SyntaxError, ValueError):
        return []
    chats = []
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)) and not node.name.startswith("_"):
            doc = ast.get_docstring(node)
            if doc and len(doc) > 40:
                answer = doc.split("\n\n")[0].strip()
                chats.append(f"<|im_start|>user\nWhat does {module}.{node.name} do?<|im_end|>\n"
                             f"<|im_start|>assistant\n{answer}<|im_end|>\n")
    return chats


def train_tokenizer(texts):
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    tok = Tokenizer(models.BPE(ignore_merges=True))
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(LLAMA3_PATTERN), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=False),
    ])
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False)
    trainer = trainers.BpeTrainer(vocab_size=VOCAB, min_frequency=2, show_progress=False, special_tokens=SPECIALS,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(texts, trainer=trainer)
    tok.add_special_tokens([AddedToken(s, special=True, normalized=False) for s in SPECIALS])
    return tok


def write_tokenizer(tok, folder):
    tok.save(str(folder / "tokenizer.json"), pretty=False)
    config = {"bos_token": None, "eos_token": "<|im_end|>", "pad_token": "<|endoftext|>", "unk_token": None,
              "add_bos_token": False, "model_max_length": MODEL["max_position_embeddings"],
              "tokenizer_class": "PreTrainedTokenizerFast", "chat_template": CHAT_TEMPLATE}
    (folder / "tokenizer_config.json").write_text(json.dumps(config, indent=2) + "\n")
    specials = {"eos_token": "<|im_end|>", "pad_token": "<|endoftext|>"}
    (folder / "special_tokens_map.json").write_text(json.dumps(specials, indent=2) + "\n")


def cosine_lr(step, total):
    if step < WARMUP:
        return LR * (step + 1) / WARMUP
    progress = (step - WARMUP) / max(1, total - WARMUP)
    return LR * (MIN_LR_FRACTION + (1 - MIN_LR_FRACTION) * 0.5 * (1 + math.cos(math.pi * progress)))


def evaluate(model, held, length):
    import torch
    windows = min(EVAL_WINDOWS, len(held) // length)
    step = len(held) // windows
    total = 0.0
    with torch.no_grad():
        for i in range(windows):
            x = held[i * step:i * step + length].unsqueeze(0)
            total += model(input_ids=x, labels=x).loss.item()
    return total / windows, windows


def train():
    import torch
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM
    torch.manual_seed(SEED)
    torch.set_num_threads(THREADS)
    start = time.time()
    docs = corpus()
    train_docs = [(p, t) for p, t in docs if not is_held_out(p)]
    held_docs = [(p, t) for p, t in docs if is_held_out(p)]
    chats = [c for p, t in train_docs for c in docstring_chats(p, t)]
    rng = random.Random(SEED)
    rng.shuffle(chats)
    # Conversations in groups of 8, so one window holds several turns and their shape.
    texts = [t for _, t in train_docs] + ["".join(chats[i:i + 8]) for i in range(0, len(chats), 8)]
    rng.shuffle(texts)
    print(f"corpus: {len(train_docs)} training files ({sum(len(t) for _, t in train_docs) / 1e6:.1f} MB), "
          f"{len(chats)} docstring chats, {len(held_docs)} held-out files "
          f"({sum(len(t) for _, t in held_docs) / 1e6:.1f} MB)", flush=True)
    tok = train_tokenizer(texts)
    eot = tok.token_to_id("<|endoftext|>")

    def stream(items):
        ids = []
        for enc in tok.encode_batch(items):
            ids += enc.ids + [eot]
        return torch.tensor(ids, dtype=torch.long)

    data = stream(texts)
    held = stream([t for _, t in held_docs])
    print(f"tokens: {len(data)} training, {len(held)} held out; tokenizer {time.time() - start:.0f} s", flush=True)

    config = LlamaConfig(vocab_size=tok.get_vocab_size(), bos_token_id=None, eos_token_id=tok.token_to_id("<|im_end|>"),
                         pad_token_id=eot, **MODEL)
    model = LlamaForCausalLM(config)
    params = sum(p.numel() for p in model.parameters())
    print(f"parameters: {params}", flush=True)
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": WEIGHT_DECAY}, {"params": no_decay, "weight_decay": 0.0}],
                            lr=LR, betas=(0.9, 0.95), eps=1e-8)
    total = sum(steps for _, _, steps in PHASES)
    gen = torch.Generator().manual_seed(SEED)
    step, train_start = 0, time.time()
    for length, batch, steps in PHASES:
        for _ in range(steps):
            for group in opt.param_groups:
                group["lr"] = cosine_lr(step, total)
            offsets = torch.randint(0, len(data) - length, (batch,), generator=gen)
            x = torch.stack([data[o:o + length] for o in offsets.tolist()])
            model.train()
            with torch.autocast("cpu", dtype=torch.bfloat16):  # bf16 matmuls (avx512_bf16), float32 master weights
                loss = model(input_ids=x, labels=x).loss
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            step += 1
            if step % 25 == 0 or step == total:
                print(f"step {step}/{total} len {length} loss {loss.item():.4f} "
                      f"{(time.time() - train_start) / 60:.1f} min", flush=True)
    train_minutes = (time.time() - train_start) / 60
    model.eval()

    if OUT.exists():
        shutil.rmtree(OUT)
    OUT.mkdir(parents=True)
    model.to(torch.bfloat16).save_pretrained(OUT)
    GenerationConfig(bos_token_id=None, eos_token_id=[tok.token_to_id("<|im_end|>"), eot], pad_token_id=eot,
                     do_sample=False).save_pretrained(OUT)
    write_tokenizer(tok, OUT)
    # Held-out loss of what was committed (bf16 weights computed in float32).
    model = LlamaForCausalLM.from_pretrained(OUT, dtype=torch.float32).eval()
    results = {"parameters": params, "training_tokens": sum(length * batch * steps for length, batch, steps in PHASES),
               "train_minutes": round(train_minutes, 1), "total_minutes": round((time.time() - start) / 60, 1)}
    for length in (1024, 2048):
        loss, windows = evaluate(model, held, length)
        results[f"held_out_loss_{length}"] = round(loss, 4)
        results[f"held_out_perplexity_{length}"] = round(math.exp(loss), 2)
        results[f"held_out_windows_{length}"] = windows
    results["held_out_tokens"] = len(held)
    print("RESULTS", json.dumps(results), flush=True)
    return results


def greedy(model, ids, new_tokens):
    """transformers' greedy ids and the smallest top-1/top-2 logit gap over the generated steps."""
    import torch
    with torch.no_grad():
        res = model.generate(torch.tensor([ids]), max_new_tokens=new_tokens, do_sample=False, output_logits=True,
                             return_dict_in_generate=True)
    gaps = [float(torch.topk(step[0], 2).values.diff().abs()) for step in res.logits]
    return res.sequences[0, len(ids):].tolist(), min(gaps)


def long_prompt(tok, model):
    """A held-out Python file (the longest first) cut at a line end after at least LONG_PROMPT tokens,
    the first whose greedy continuation keeps every top-1/top-2 gap at least MIN_GAP."""
    held = sorted(((p, t) for p, t in corpus() if is_held_out(p) and p.endswith(".py")), key=lambda pt: -len(pt[1]))
    for path, text in held:
        ids = tok(text)["input_ids"]
        cuts = [n for n in range(LONG_PROMPT, min(len(ids), LONG_PROMPT + 400)) if tok.decode(ids[n - 1:n]).endswith("\n")]
        for n in cuts[:4]:
            prompt = tok.decode(ids[:n])
            if tok(prompt)["input_ids"] == ids[:n] and greedy(model, ids[:n], LONG_NEW_TOKENS)[1] >= MIN_GAP:
                return path, prompt
    raise SystemExit("no held-out Python file gives a long prompt with clear greedy margins")


def goldens():
    import numpy as np
    import torch
    from transformers import AutoTokenizer, LlamaForCausalLM
    torch.set_num_threads(THREADS)
    tok = AutoTokenizer.from_pretrained(OUT)
    model = LlamaForCausalLM.from_pretrained(OUT, dtype=torch.float32).eval()
    eos = model.generation_config.eos_token_id
    long_path, long_text = long_prompt(tok, model)
    cases, last_logits = [], []
    for name, prompt in [("make_example", PROMPTS[0]), ("python", PROMPTS[1]), ("long", long_text)]:
        ids = tok(prompt)["input_ids"]
        with torch.no_grad():
            logits = model(torch.tensor([ids])).logits[0, -1]
        new_tokens = LONG_NEW_TOKENS if name == "long" else NEW_TOKENS
        generated, gap = greedy(model, ids, new_tokens)
        assert gap >= MIN_GAP, f"{name}: greedy top-2 gap {gap:.4f} is below {MIN_GAP}; choose another prompt"
        last_logits.append(logits.numpy())
        cases.append(dict(name=name, source=long_path if name == "long" else None, prompt=prompt, prompt_ids=ids,
                          max_new_tokens=new_tokens, generated=generated, text=tok.decode([t for t in generated if t not in eos], skip_special_tokens=True),
                          min_top2_gap=round(gap, 4), last_argmax=int(logits.argmax()), last_max=round(float(logits.max()), 5)))
        print(name, len(ids), "prompt tokens; min gap", round(gap, 4), repr(cases[-1]["text"]), flush=True)
    np.save(OUT / "golden_last_logits.npy", np.stack(last_logits).astype(np.float32))
    messages = [dict(role="user", content=CHAT_PROMPT)]
    chat_ids = list(tok.apply_chat_template(messages, add_generation_prompt=True, tokenize=True, return_dict=False))
    chat_out, _ = greedy(model, chat_ids, 64)
    chat = dict(user=CHAT_PROMPT, rendered=tok.apply_chat_template(messages, add_generation_prompt=True, tokenize=False),
                prompt_ids=chat_ids, generated=chat_out,
                text=tok.decode([t for t in chat_out if t not in eos], skip_special_tokens=True))
    print("chat", repr(chat["text"]), flush=True)
    (OUT / "golden_text.json").write_text(json.dumps(dict(eos_token_ids=eos, cases=cases, chat=chat),
                                                     indent=1, ensure_ascii=False) + "\n")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--goldens", action="store_true", help="only recompute golden_text.json from the checkpoint")
    args = parser.parse_args()
    if not args.goldens:
        train()
    goldens()


if __name__ == "__main__":
    main()
