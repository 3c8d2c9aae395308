#!/usr/bin/env python3
"""Train Tests/Fixtures/models/example: a small Llama (LlamaForCausalLM) trained on text of this
machine, with its own byte-level BPE tokenizer, published as a Hugging Face checkpoint folder.

    setsid nohup nice -n 5 /work/venv/bin/python Tests/Fixtures/train_example_model.py \
        > /work/.cache-example-train/train.log 2>&1 &  # from the repository root: train, or resume
    /work/venv/bin/python Tests/Fixtures/train_example_model.py --finish    # publish, held-out loss, goldens
    /work/venv/bin/python Tests/Fixtures/train_example_model.py --goldens   # goldens of models/example only

Training is resumable: every 50 steps (--every) it saves model, optimizer, step, elapsed time and the
data-order and torch RNG states to --cache (default $ATTUNE_EXAMPLE_TRAIN_CACHE or
/work/.cache-example-train, outside git; it also caches the tokenizer and token streams), keeping
the last two checkpoints; rerunning the same command resumes from the newest one, and stops if it
was made with another configuration (PHASES, MODEL, LR, ..., the corpus manifest). A resumed run
gives the same weights as an uninterrupted one (checked on --phases 64x2x4,128x1x4: stopping at step
3, 4 or 5, or losing the step-5 checkpoint, then resuming, gives model, optimizer and RNG states equal
to 8 straight steps, byte for byte). --finish, once every step is done, writes the bf16 checkpoint to
--out (default models/example), its held-out loss and the goldens, picking each golden prompt from
candidates by MIN_GAP, and prints the Makefile `example` line for the picked prompt.
(venv: torch, transformers, tokenizers, safetensors; no network.) Deterministic given SEED, the
thread count (2) and the corpus, the files of this machine listed in example_corpus.sha1: the Python
3.11 standard library sources (Debian's /usr/lib/python3.11), /usr/share/common-licenses, and the
.txt/.md/.rst/README/copyright files under /usr/share/doc (each at most 200 kB, duplicates
dropped; the list keeps their SHA-1s, so a rerun reads the same ones or stops).
Files whose path hashes to 0 mod 40 are held out: neither the tokenizer nor the model sees them.
The corpus text is never written to the repository.

Recorded run (AMD EPYC, 2 cores, torch 2.13 CPU, at nice levels while other builds ran):
3,868,928 parameters, 3000 steps / 12.3 M tokens in 130 min of training (resumed twice; about
1.2 s per step on an idle machine, 2.6-7 s under that load), held-out loss 3.189 at 1024 tokens
(perplexity 24.3), 3.228 at 2048 (25.2). An earlier 600-step run reached 4.687 / 4.766.

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
Attune converts bf16 weights today) and greedily generates for three prompts: the first of
EXAMPLE_PROMPTS (English license text; `make example`'s prompt) and of PYTHON_PROMPTS whose greedy
steps all have a top-1/top-2 gap of at least MIN_GAP, and a held-out file's first LONG_PROMPT or more
tokens; they record prompt ids, generated ids and text, the last
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
PHASES = [(1024, 4, 2400), (2048, 2, 600)]
LR, WARMUP, MIN_LR_FRACTION, WEIGHT_DECAY = 2e-3, 100, 0.1, 0.1
DEFAULT_CACHE = "/work/.cache-example-train"  # checkpoints of an unfinished run, outside git
EVAL_WINDOWS = 32  # held-out windows of 2048 tokens (or fewer if the held-out text is shorter)
LONG_PROMPT = 1200
NEW_TOKENS = 48  # as `make example`
LONG_NEW_TOKENS = 32
MIN_GAP = 0.05  # smallest top-1/top-2 logit gap a golden greedy step may have
# Candidate prompts, in order of preference; goldens() takes the first whose greedy continuation has no
# near tie (see MIN_GAP). EXAMPLE_PROMPTS (English license text) give `make example`'s prompt, so they
# hold no double quote, dollar sign or newline (the Makefile line and ExampleRunCLITests split on quotes).
EXAMPLE_PROMPTS = ["This program is free software; you can redistribute it and/or modify it",
                   "Permission is hereby granted, free of charge, to any person obtaining a copy",
                   "Redistribution and use in source and binary forms, with or without",
                   "THIS SOFTWARE IS PROVIDED BY THE COPYRIGHT HOLDERS AND CONTRIBUTORS",
                   "You should have received a copy of the GNU General Public License",
                   "The above copyright notice and this permission notice shall be included in",
                   "This library is free software; you can redistribute it and/or",
                   "Licensed under the Apache License, Version 2.0 (the",
                   "Everyone is permitted to copy and distribute verbatim copies",
                   "        return None"]
PYTHON_PROMPTS = ["def fibonacci(n):\n    \"\"\"Return the n-th Fibonacci number.\"\"\"\n",
                  "def read_lines(path):\n    \"\"\"Return the lines of the file at path.\"\"\"\n",
                  "class Stack:\n    def __init__(self):\n",
                  "def main():\n    parser = argparse.ArgumentParser(",
                  "import os\nimport sys\n\n\ndef "]
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


def prepare(cache):
    """(tokenizer, training ids, held-out ids, held-out docs). The tokenizer and token streams are
    cached in cache/data.pt under the manifest's SHA-1, so a resume skips the tokenizer training
    (a few minutes); they are a pure function of the corpus and SEED either way."""
    import torch
    from tokenizers import Tokenizer
    start = time.time()
    docs = corpus()
    train_docs = [(p, t) for p, t in docs if not is_held_out(p)]
    held_docs = [(p, t) for p, t in docs if is_held_out(p)]
    key = dict(manifest=hashlib.sha1(MANIFEST.read_bytes()).hexdigest(), seed=SEED, vocab=VOCAB, specials=SPECIALS)
    path = cache / "data.pt"
    if path.exists():
        saved = torch.load(path)
        if saved["key"] == key:
            print(f"tokens: {len(saved['data'])} training, {len(saved['held'])} held out (cached in {path})", flush=True)
            return Tokenizer.from_str(saved["tokenizer"]), saved["data"], saved["held"], held_docs
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
    cache.mkdir(parents=True, exist_ok=True)
    torch.save(dict(key=key, tokenizer=tok.to_str(), data=data, held=held), str(path) + ".tmp")
    os.replace(str(path) + ".tmp", path)
    return tok, data, held, held_docs


def run_config(phases):
    """Everything a checkpoint's weights depend on; a resume must match it exactly."""
    return dict(seed=SEED, threads=THREADS, vocab=VOCAB, model=MODEL, phases=[list(p) for p in phases], lr=LR,
                warmup=WARMUP, min_lr_fraction=MIN_LR_FRACTION, weight_decay=WEIGHT_DECAY,
                manifest=hashlib.sha1(MANIFEST.read_bytes()).hexdigest())


def checkpoints(cache):
    return sorted((cache / "checkpoints").glob("step-*.pt"))


def latest_checkpoint(cache, phases):
    """The newest checkpoint (a dict) or None; stops if it was made with another configuration."""
    import torch
    found = checkpoints(cache)
    if not found:
        return None
    ckpt = torch.load(found[-1], weights_only=False)
    if ckpt["config"] != run_config(phases):
        changed = [k for k in ckpt["config"] if ckpt["config"][k] != run_config(phases).get(k)]
        raise SystemExit(f"{found[-1]} was trained with another configuration (changed: {', '.join(changed)}); "
                         f"restore it or use another --cache folder")
    return ckpt


def build(tok):
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM
    torch.manual_seed(SEED)
    eot = tok.token_to_id("<|endoftext|>")
    config = LlamaConfig(vocab_size=tok.get_vocab_size(), bos_token_id=None, eos_token_id=tok.token_to_id("<|im_end|>"),
                         pad_token_id=eot, **MODEL)
    model = LlamaForCausalLM(config)
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": WEIGHT_DECAY}, {"params": no_decay, "weight_decay": 0.0}],
                            lr=LR, betas=(0.9, 0.95), eps=1e-8)
    return model, opt


def train(args):
    """Trains from the latest checkpoint in args.cache (or from scratch) to the end of the phases or
    args.stop_at, saving model, optimizer, step, elapsed time and the data-order generator every
    args.every steps. The learning rate is a function of the step, so it needs no saved state."""
    import torch
    torch.set_num_threads(THREADS)
    tok, data, held, _ = prepare(args.cache)
    model, opt = build(tok)
    print(f"parameters: {sum(p.numel() for p in model.parameters())}", flush=True)
    gen = torch.Generator().manual_seed(SEED)
    step, seconds = 0, 0.0
    ckpt = latest_checkpoint(args.cache, args.phases)
    if ckpt:
        model.load_state_dict(ckpt["model"])
        opt.load_state_dict(ckpt["optimizer"])
        gen.set_state(ckpt["data_order"])
        torch.set_rng_state(ckpt["torch_rng"])
        step, seconds = ckpt["step"], ckpt["seconds"]
        print(f"resumed at step {step} ({seconds / 60:.1f} min trained)", flush=True)
    total = sum(steps for _, _, steps in args.phases)
    stop = min(total, args.stop_at or total)
    (args.cache / "checkpoints").mkdir(parents=True, exist_ok=True)

    def save():
        path = args.cache / "checkpoints" / f"step-{step:06d}.pt"
        torch.save(dict(config=run_config(args.phases), step=step, seconds=seconds, model=model.state_dict(),
                        optimizer=opt.state_dict(), data_order=gen.get_state(), torch_rng=torch.get_rng_state()),
                   str(path) + ".tmp")
        os.replace(str(path) + ".tmp", path)  # a kill while saving leaves the previous checkpoint intact
        for old in checkpoints(args.cache)[:-2]:
            old.unlink()
        print(f"checkpoint {path}", flush=True)

    first = 0
    for length, batch, steps in args.phases:
        for phase_step in range(steps):
            if first + phase_step < step:
                continue
            if step >= stop:
                break
            began = time.time()
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
            seconds += time.time() - began
            if step % 25 == 0 or step == stop:
                print(f"step {step}/{total} len {length} loss {loss.item():.4f} {seconds / 60:.1f} min "
                      f"({time.strftime('%H:%M:%S')})", flush=True)
            if step % args.every == 0 or step == stop:
                save()
        first += steps
    if step == total:
        print(f"training done; now run with --finish", flush=True)


def finish(args):
    """Publishes the completed run's checkpoint as args.out (bf16), then its held-out loss and goldens."""
    import torch
    from transformers import GenerationConfig, LlamaForCausalLM
    torch.set_num_threads(THREADS)
    tok, _, held, _ = prepare(args.cache)
    ckpt = latest_checkpoint(args.cache, args.phases)
    total = sum(steps for _, _, steps in args.phases)
    if not ckpt or ckpt["step"] != total:
        raise SystemExit(f"training is at step {ckpt['step'] if ckpt else 0} of {total}: run without --finish first")
    model, _ = build(tok)
    model.load_state_dict(ckpt["model"])
    eot = tok.token_to_id("<|endoftext|>")
    out = args.out
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    model.to(torch.bfloat16).save_pretrained(out)
    GenerationConfig(bos_token_id=None, eos_token_id=[tok.token_to_id("<|im_end|>"), eot], pad_token_id=eot,
                     do_sample=False).save_pretrained(out)
    write_tokenizer(tok, out)
    # Held-out loss of what is published (bf16 weights computed in float32).
    model = LlamaForCausalLM.from_pretrained(out, dtype=torch.float32).eval()
    results = {"parameters": sum(p.numel() for p in model.parameters()), "steps": total,
               "training_tokens": sum(length * batch * steps for length, batch, steps in args.phases),
               "train_minutes": round(ckpt["seconds"] / 60, 1)}
    for length in (1024, 2048):
        loss, windows = evaluate(model, held, length)
        results[f"held_out_loss_{length}"] = round(loss, 4)
        results[f"held_out_perplexity_{length}"] = round(math.exp(loss), 2)
        results[f"held_out_windows_{length}"] = windows
    results["held_out_tokens"] = len(held)
    print("RESULTS", json.dumps(results), flush=True)
    goldens(out)


def greedy(model, ids, new_tokens):
    """transformers' greedy ids and the smallest top-1/top-2 logit gap over the generated steps."""
    import torch
    with torch.no_grad():
        res = model.generate(torch.tensor([ids]), max_new_tokens=new_tokens, do_sample=False, output_logits=True,
                             return_dict_in_generate=True)
    gaps = [float(torch.topk(step[0], 2).values.diff().abs()) for step in res.logits]
    return res.sequences[0, len(ids):].tolist(), min(gaps)


def pick(name, candidates, tok, model, new_tokens):
    """The first candidate prompt whose greedy continuation keeps every top-1/top-2 gap at least MIN_GAP."""
    for prompt in candidates:
        gap = greedy(model, tok(prompt)["input_ids"], new_tokens)[1]
        print(f"{name} candidate {prompt[:60]!r}: min gap {gap:.4f}", flush=True)
        if gap >= MIN_GAP:
            return prompt
    raise SystemExit(f"no {name} candidate prompt has greedy gaps of at least {MIN_GAP}; add candidates")


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


def goldens(out):
    """golden_text.json and golden_last_logits.npy of the checkpoint in out, with prompts picked from
    the candidates by MIN_GAP; prints the Makefile `example` line for the picked English prompt."""
    import numpy as np
    import torch
    from transformers import AutoTokenizer, LlamaForCausalLM
    torch.set_num_threads(THREADS)
    tok = AutoTokenizer.from_pretrained(out)
    model = LlamaForCausalLM.from_pretrained(out, dtype=torch.float32).eval()
    eos = model.generation_config.eos_token_id
    example = pick("make_example", EXAMPLE_PROMPTS, tok, model, NEW_TOKENS)
    python = pick("python", PYTHON_PROMPTS, tok, model, NEW_TOKENS)
    long_path, long_text = long_prompt(tok, model)
    cases, last_logits = [], []
    for name, prompt in [("make_example", example), ("python", python), ("long", long_text)]:
        ids = tok(prompt)["input_ids"]
        with torch.no_grad():
            logits = model(torch.tensor([ids])).logits[0, -1]
        new_tokens = LONG_NEW_TOKENS if name == "long" else NEW_TOKENS
        generated, gap = greedy(model, ids, new_tokens)
        last_logits.append(logits.numpy())
        cases.append(dict(name=name, source=long_path if name == "long" else None, prompt=prompt, prompt_ids=ids,
                          max_new_tokens=new_tokens, generated=generated, text=tok.decode([t for t in generated if t not in eos], skip_special_tokens=True),
                          min_top2_gap=round(gap, 4), last_argmax=int(logits.argmax()), last_max=round(float(logits.max()), 5)))
        print(name, len(ids), "prompt tokens; min gap", round(gap, 4), repr(cases[-1]["text"]), flush=True)
    np.save(out / "golden_last_logits.npy", np.stack(last_logits).astype(np.float32))
    messages = [dict(role="user", content=CHAT_PROMPT)]
    chat_ids = list(tok.apply_chat_template(messages, add_generation_prompt=True, tokenize=True, return_dict=False))
    chat_out, _ = greedy(model, chat_ids, 64)
    chat = dict(user=CHAT_PROMPT, rendered=tok.apply_chat_template(messages, add_generation_prompt=True, tokenize=False),
                prompt_ids=chat_ids, generated=chat_out,
                text=tok.decode([t for t in chat_out if t not in eos], skip_special_tokens=True))
    print("chat", repr(chat["text"]), flush=True)
    (out / "golden_text.json").write_text(json.dumps(dict(eos_token_ids=eos, cases=cases, chat=chat),
                                                     indent=1, ensure_ascii=False) + "\n")
    print("Makefile `example` recipe line (ExampleRunCLITests finds the golden case by this prompt):\n"
          f"\t.build/release/attune run Tests/Fixtures/models/example --prompt \"{example}\" --max-new-tokens {NEW_TOKENS}",
          flush=True)


def parse_phases(text):
    """'1024x4x2400,2048x2x600' -> [(1024, 4, 2400), (2048, 2, 600)]."""
    try:
        phases = [tuple(int(n) for n in part.split("x")) for part in text.split(",")]
    except ValueError:
        phases = []
    if not phases or any(len(p) != 3 or min(p) < 1 or p[0] > MODEL["max_position_embeddings"] for p in phases):
        raise argparse.ArgumentTypeError(f"{text!r}: expected LENGTHxBATCHxSTEPS[,...] with lengths up to "
                                         f"{MODEL['max_position_embeddings']}")
    return phases


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--finish", action="store_true",
                        help="publish the completed run: bf16 checkpoint in --out, held-out loss, goldens")
    parser.add_argument("--goldens", action="store_true", help="only recompute the goldens of the checkpoint in --out")
    parser.add_argument("--cache", type=Path, default=Path(os.environ.get("ATTUNE_EXAMPLE_TRAIN_CACHE", DEFAULT_CACHE)),
                        help=f"checkpoints and token cache, never committed (default $ATTUNE_EXAMPLE_TRAIN_CACHE or {DEFAULT_CACHE})")
    parser.add_argument("--out", type=Path, default=OUT, help=f"published checkpoint folder (default {OUT})")
    parser.add_argument("--phases", type=parse_phases, default=PHASES, help="LENGTHxBATCHxSTEPS,... (default: PHASES)")
    parser.add_argument("--every", type=int, default=50, help="checkpoint every this many steps (default 50)")
    parser.add_argument("--stop-at", type=int, help="stop (with a checkpoint) after this step; rerun to resume")
    args = parser.parse_args()
    if args.every < 1:
        parser.error("--every must be at least 1")
    if args.goldens:
        goldens(args.out)
    elif args.finish:
        finish(args)
    else:
        train(args)


if __name__ == "__main__":
    main()
