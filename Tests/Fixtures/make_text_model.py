#!/usr/bin/env python3
"""Make Tests/Fixtures/models/llama_text: a tiny random-weight Llama whose vocabulary is the
llama3_bpe test tokenizer's, with that tokenizer, and golden generations from transformers.

    ATTUNE_FIXTURES_VENV=1 /path/to/venv/python Tests/Fixtures/make_text_model.py

(the venv of make_tiny_models.py: torch, transformers, tokenizers). Deterministic.

generation_config.json names two end-of-sequence ids, the tokenizer's <|eot_id|> and one
that greedy decoding of the first prompt produces after a few tokens, so the goldens show
generation stopping at an id of an EOS list; `ignore_eos` goldens continue past it.
"""
import json, shutil
from pathlib import Path
import torch
from transformers import AutoTokenizer, GenerationConfig, LlamaConfig, LlamaForCausalLM

FIXTURES = Path(__file__).resolve().parent
SRC = FIXTURES / "tokenizers" / "llama3_bpe"
OUT = FIXTURES / "models" / "llama_text"
PROMPTS = ["The quick brown fox", "def main():\n    return", "  Leading spaces, digits 12345 and café"]
NEW = 12


def main():
    torch.manual_seed(7)
    torch.set_num_threads(1)
    tok = AutoTokenizer.from_pretrained(SRC)
    config = LlamaConfig(vocab_size=len(tok), hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                         num_key_value_heads=2, head_dim=16, intermediate_size=128, max_position_embeddings=256,
                         tie_word_embeddings=True, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                         pad_token_id=None)
    model = LlamaForCausalLM(config)
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0, 0.3)
    model.eval()
    if OUT.exists():
        shutil.rmtree(OUT)
    # Stored in bf16 (as checkpoints ship); generated in fp32 from what was stored.
    model.to(torch.bfloat16).save_pretrained(OUT)
    model = LlamaForCausalLM.from_pretrained(OUT, dtype=torch.float32)
    model.eval()
    # Greedy ids of the first prompt without any EOS: the fourth becomes the second EOS id.
    ids0 = tok(PROMPTS[0], return_tensors="pt").input_ids
    free = model.generate(ids0, max_new_tokens=NEW, do_sample=False, eos_token_id=None, pad_token_id=0)[0, ids0.shape[1]:].tolist()
    eos = [tok.eos_token_id, free[3]]
    model.generation_config.eos_token_id = eos
    GenerationConfig(bos_token_id=tok.bos_token_id, eos_token_id=eos, do_sample=False).save_pretrained(OUT)
    for name in ["tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"]:
        shutil.copy(SRC / name, OUT / name)
    cases = []
    for prompt in PROMPTS:
        ids = tok(prompt, return_tensors="pt").input_ids
        for ignore_eos in [False, True]:
            kw = dict(eos_token_id=None) if ignore_eos else {}
            out = model.generate(ids, max_new_tokens=NEW, do_sample=False, pad_token_id=0, **kw)[0, ids.shape[1]:].tolist()
            cases.append(dict(prompt=prompt, ignore_eos=ignore_eos, prompt_ids=ids[0].tolist(), generated=out,
                              text=tok.decode([t for t in out if t not in eos] if not ignore_eos else out,
                                              skip_special_tokens=True)))
    # --chat: the prompt ids apply_chat_template gives with the committed Llama 3 template.
    template = (FIXTURES / "chat_templates" / "llama3.jinja").read_text()
    chats = []
    for system, user in [(None, "Hello there"), ("Be brief.", "What is 2 + 2?\nAnswer: ")]:
        messages = ([dict(role="system", content=system)] if system else []) + [dict(role="user", content=user)]
        ids = tok.apply_chat_template(messages, chat_template=template, add_generation_prompt=True, tokenize=True,
                                      return_dict=False)
        chats.append(dict(system=system, user=user, prompt_ids=list(ids)))
    (OUT / "golden_text.json").write_text(json.dumps(dict(max_new_tokens=NEW, eos_token_ids=eos, cases=cases, chat=chats),
                                                      indent=1) + "\n")
    print(json.dumps(cases, indent=1))


if __name__ == "__main__":
    main()
