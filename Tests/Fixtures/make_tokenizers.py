#!/usr/bin/env python3
"""Small Hugging Face tokenizers with golden encodings, for Tests/AttuneTextTests.

Run with the project venv (no network):

    /work/venv/bin/python Tests/Fixtures/make_tokenizers.py

Trains small BPE models with the `tokenizers` package on the Python standard
library sources of this machine, writes each as `tokenizers/<name>/` in the
layout of a Hugging Face checkpoint (tokenizer.json, tokenizer_config.json,
special_tokens_map.json) and a `golden.json` with, per test string, the ids
from `tokenizers` itself (with and without special tokens), the ids
`transformers` gives through AutoTokenizer (which applies tokenizer_config's
add_bos_token / add_eos_token), and the decoded texts. The structure of each
tokenizer.json copies the family it is named after; the vocabularies are small.
"""
import glob
import json
import os
import random
import sys

from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "tokenizers")

GPT2_PATTERN = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"
LLAMA3_PATTERN = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
QWEN2_PATTERN = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"

# Test strings: every one is encoded by every tokenizer.
CORPUS = [
    "",
    " ",
    "Hello world",
    "Hello, world! How's it going? I'm fine; they'll see. We've IT'S DON'T",
    "  leading spaces and trailing spaces   ",
    " one leading space",
    "multiple     spaces\tand\ttabs\n\nnew lines\r\nwindows\n   indented\n",
    "\n\n\n",
    "\t",
    "digits 0 12 345 6789 1234567890 3.14159 1e-5 -42",
    "punctuation!!! ??? ... --- (parens) [brackets] {braces} <angle> @#$%^&*_+=|\\/~`",
    "def f(x):\n    return x ** 2  # square\n",
    "accented: café naïve résumé Ångström façade Müller señor",
    "decomposed: cafe\u0301 n\u0303",
    "CJK: 你好，世界。日本語のテキスト、한국어 텍스트",
    "emoji: 😀 👍🏽 👨‍👩‍👧‍👦 🏳️‍🌈 ❤️",
    "mixed: Приве́т мир, γειά σου κόσμε, مرحبا بالعالم, שלום עולם, नमस्ते",
    "'s 'S 'll 'LL 'Re x's",
    "a" * 300,
    "超" * 40 + " long CJK run",
    "symbols ∑∫√∞ ≤≥ → ← ™ © ® € £ ¥ ½ ¼ \u00a0nbsp\u2003em\u3000ideographic",
    "control \x01\x02 and zero width \u200b\u200d joiner",
    "ﬁ ligature and ℌ and ① and Ⅻ",
]

# Random mixtures of the pieces the split patterns treat differently, for edge cases.
FRAGMENTS = ["the", "The", " ", "  ", "\t", "\n", "\r\n", " \n ", "'s", "'S", "'ll", "'Re", "'x", "'", "7", "42",
             "12345", "3.5", ",", "!", "?!", "...", "--", "(", ")", "_", "é", "e\u0301", "Ω", "ß", "ſ", "日本", "語", "한",
             "😀", "👨‍👩‍👧", "🏽", "\u00a0", "\u2003", "\u200b", "\x00", "\x7f", "ﬁ", "①", "Ⅻ", "٣", "\u0300", "<", ">", "|"]


def random_strings(count):
    rng = random.Random(1234)
    return ["".join(rng.choice(FRAGMENTS) for _ in range(rng.randint(1, 24))) for _ in range(count)]


# Per-family strings with special tokens in the text.
SPECIAL_STRINGS = {
    "byte": [
        "<|begin_of_text|>Hello<|eot_id|>",
        "text before <|eot_id|> text after",
        "<|eot_id|><|eot_id|>",
        "x <mask>  y",
        "a zzword b zzwords azzword zzword",
        "keep Ωtok   after",
    ],
    "sp": [
        "<s>Hello</s>",
        "zzword and zzword, x<mask>y and  <mask>  z",
        "text <s> inside </s> text",
        " <unk> literal",
        "</s></s>",
    ],
}


def training_text():
    files = sorted(glob.glob("/usr/lib/python3.11/*.py"))
    texts = []
    for path in files:
        with open(path, encoding="utf-8", errors="replace") as f:
            texts.append(f.read())
    # A few non-ASCII lines so accented letters and CJK get merges too.
    texts += ["café naïve résumé façade Müller señor Ångström " * 20, "你好世界日本語テキスト한국어 " * 20]
    return texts


def train_byte_level(pattern, vocab_size, special, normalizer=None, ignore_merges=False):
    tok = Tokenizer(models.BPE(ignore_merges=ignore_merges))
    if normalizer is not None:
        tok.normalizer = normalizer
    if pattern == GPT2_PATTERN:
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    else:
        tok.pre_tokenizer = pre_tokenizers.Sequence([
            pre_tokenizers.Split(Regex(pattern), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=False),
        ])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, min_frequency=2, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), special_tokens=special)
    tok.train_from_iterator(training_text(), trainer=trainer)
    return tok


def gpt2():
    tok = train_byte_level(GPT2_PATTERN, 4000, ["<|endoftext|>"])
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    # Added tokens with each matching option.
    tok.add_special_tokens([AddedToken("<mask>", lstrip=True, special=True, normalized=False)])
    tok.add_tokens([AddedToken("zzword", single_word=True, normalized=False),
                    AddedToken("Ωtok", rstrip=True, normalized=True)])
    tok.add_special_tokens([AddedToken("<|begin_of_text|>", special=True, normalized=False),
                            AddedToken("<|eot_id|>", special=True, normalized=False)])
    config = {"bos_token": "<|endoftext|>", "eos_token": "<|endoftext|>", "unk_token": "<|endoftext|>",
              "add_bos_token": False, "model_max_length": 1024, "tokenizer_class": "GPT2Tokenizer"}
    return tok, config


def llama3():
    tok = train_byte_level(LLAMA3_PATTERN, 5000, [], ignore_merges=True)
    specials = ["<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"]
    tok.add_special_tokens([AddedToken(s, special=True, normalized=False) for s in specials])
    bos = tok.token_to_id("<|begin_of_text|>")
    tok.post_processor = processors.Sequence([
        processors.ByteLevel(add_prefix_space=True, trim_offsets=False, use_regex=True),
        processors.TemplateProcessing(single="<|begin_of_text|> $A", pair="<|begin_of_text|> $A <|begin_of_text|>:1 $B:1",
                                      special_tokens=[("<|begin_of_text|>", bos)]),
    ])
    config = {"bos_token": "<|begin_of_text|>", "eos_token": "<|eot_id|>", "model_max_length": 131072,
              "tokenizer_class": "PreTrainedTokenizerFast"}
    return tok, config


def qwen2():
    tok = train_byte_level(QWEN2_PATTERN, 5000, [], normalizer=normalizers.NFC())
    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    tok.add_special_tokens([AddedToken(s, special=True, normalized=False) for s in specials])
    tok.post_processor = processors.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False)
    config = {"bos_token": None, "eos_token": "<|im_end|>", "pad_token": "<|endoftext|>", "errors": "replace",
              "model_max_length": 32768, "tokenizer_class": "Qwen2Tokenizer"}
    return tok, config


def sentencepiece_vocab(vocab_size):
    """A Llama-2-shaped vocabulary: <unk> <s> </s>, the 256 <0xNN> byte tokens, then BPE pieces."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always", split=True)
    trainer = trainers.BpeTrainer(vocab_size=vocab_size - 259, min_frequency=2, show_progress=False, limit_alphabet=120)
    tok.train_from_iterator(training_text(), trainer=trainer)
    trained = json.loads(tok.to_str())["model"]
    vocab = {"<unk>": 0, "<s>": 1, "</s>": 2}
    for b in range(256):
        vocab["<0x%02X>" % b] = len(vocab)
    for piece, _ in sorted(trained["vocab"].items(), key=lambda kv: kv[1]):
        if piece not in vocab:
            vocab[piece] = len(vocab)
    return vocab, trained["merges"]


def sp_tokenizer(vocab, merges, metaspace):
    spec = {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": [
            {"id": i, "content": c, "single_word": False, "lstrip": False, "rstrip": False, "normalized": False, "special": True}
            for i, c in enumerate(["<unk>", "<s>", "</s>"])
        ],
        "model": {"type": "BPE", "dropout": None, "unk_token": "<unk>", "continuing_subword_prefix": None,
                  "end_of_word_suffix": None, "fuse_unk": True, "byte_fallback": True, "ignore_merges": False,
                  "vocab": vocab, "merges": merges},
        "post_processor": {
            "type": "TemplateProcessing",
            "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
            "pair": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                     {"SpecialToken": {"id": "<s>", "type_id": 1}}, {"Sequence": {"id": "B", "type_id": 1}}],
            "special_tokens": {"<s>": {"id": "<s>", "ids": [1], "tokens": ["<s>"]}},
        },
    }
    if metaspace:  # Mistral / newer Llama conversions
        spec["normalizer"] = None
        spec["pre_tokenizer"] = {"type": "Metaspace", "replacement": "▁", "prepend_scheme": "first", "split": False}
        spec["decoder"] = {"type": "Metaspace", "replacement": "▁", "prepend_scheme": "first", "split": False}
    else:  # Llama 2 / TinyLlama
        spec["normalizer"] = {"type": "Sequence", "normalizers": [
            {"type": "Prepend", "prepend": "▁"}, {"type": "Replace", "pattern": {"String": " "}, "content": "▁"}]}
        spec["pre_tokenizer"] = None
        spec["decoder"] = {"type": "Sequence", "decoders": [
            {"type": "Replace", "pattern": {"String": "▁"}, "content": " "}, {"type": "ByteFallback"},
            {"type": "Fuse"}, {"type": "Strip", "content": " ", "start": 1, "stop": 0}]}
    order = ["version", "truncation", "padding", "added_tokens", "normalizer", "pre_tokenizer", "model", "post_processor", "decoder"]
    return Tokenizer.from_str(json.dumps({k: spec[k] for k in order}))


def write(name, tok, config, family):
    import transformers
    folder = os.path.join(OUT, name)
    os.makedirs(folder, exist_ok=True)
    tok.save(os.path.join(folder, "tokenizer.json"), pretty=False)
    with open(os.path.join(folder, "tokenizer_config.json"), "w") as f:
        json.dump(config, f, indent=2, ensure_ascii=False)
        f.write("\n")
    specials = {k: config[k] for k in ("bos_token", "eos_token", "unk_token", "pad_token") if config.get(k)}
    with open(os.path.join(folder, "special_tokens_map.json"), "w") as f:
        json.dump(specials, f, indent=2, ensure_ascii=False)
        f.write("\n")
    tok = Tokenizer.from_file(os.path.join(folder, "tokenizer.json"))
    hf = transformers.AutoTokenizer.from_pretrained(folder)
    cases = []
    for text in CORPUS + SPECIAL_STRINGS[family] + random_strings(80):
        with_special = tok.encode(text, add_special_tokens=True).ids
        cases.append({
            "text": text,
            "ids": with_special,
            "ids_no_special": tok.encode(text, add_special_tokens=False).ids,
            "ids_transformers": hf(text)["input_ids"],
            "decoded": tok.decode(with_special, skip_special_tokens=False),
            "decoded_skip_special": tok.decode(with_special, skip_special_tokens=True),
        })
    golden = {"tokenizers_version": __import__("tokenizers").__version__, "transformers_version": transformers.__version__,
              "vocab_size": tok.get_vocab_size(with_added_tokens=True), "cases": cases}
    with open(os.path.join(folder, "golden.json"), "w") as f:
        json.dump(golden, f, indent=1, ensure_ascii=False)
        f.write("\n")
    print(name, tok.get_vocab_size(), os.path.getsize(os.path.join(folder, "tokenizer.json")), "bytes")


# Variants of the fixtures above for the options they do not exercise: each patches
# tokenizer.json (top-level keys replaced; "model" keys merged into the model) and records
# the encodings of `tokenizers` in variants.json.
VARIANTS = [
    ("gpt2_bpe", "prefix_space", {"pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True}}),
    ("gpt2_bpe", "lowercase_nfkc", {"normalizer": {"type": "Sequence", "normalizers": [{"type": "NFKC"}, {"type": "Lowercase"}]}}),
    ("gpt2_bpe", "nfd_no_regex", {"normalizer": {"type": "NFD"},
                                  "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": False}}),
    ("llama3_bpe", "split_space_previous", {"pre_tokenizer": {"type": "Sequence", "pretokenizers": [
        {"type": "Split", "pattern": {"String": " "}, "behavior": "MergedWithPrevious", "invert": False},
        {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": False}]}}),
    ("llama3_bpe", "split_removed_contiguous", {"pre_tokenizer": {"type": "Sequence", "pretokenizers": [
        {"type": "Split", "pattern": {"String": "e"}, "behavior": "Removed", "invert": False},
        {"type": "Split", "pattern": {"String": " "}, "behavior": "Contiguous", "invert": False},
        {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": False}]}}),
    ("llama3_bpe", "split_inverted_next", {"pre_tokenizer": {"type": "Sequence", "pretokenizers": [
        {"type": "Split", "pattern": {"String": "a"}, "behavior": "MergedWithNext", "invert": True},
        {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": False}]},
        "model": {"ignore_merges": False}}),
    ("llama3_bpe", "gpt2_split_regex", {"pre_tokenizer": {"type": "Sequence", "pretokenizers": [
        {"type": "Split", "pattern": {"Regex": GPT2_PATTERN}, "behavior": "Isolated", "invert": False},
        {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": False}]}}),
    ("llama2_sp", "unk_fused", {"model": {"byte_fallback": False, "fuse_unk": True}}),
    ("llama2_sp", "unk_not_fused", {"model": {"byte_fallback": False, "fuse_unk": False}}),
    ("mistral_sp", "metaspace_always_split", {
        "pre_tokenizer": {"type": "Metaspace", "replacement": "▁", "prepend_scheme": "always", "split": True},
        "decoder": {"type": "Metaspace", "replacement": "▁", "prepend_scheme": "always", "split": True}}),
    ("mistral_sp", "metaspace_never", {
        "pre_tokenizer": {"type": "Metaspace", "replacement": "▁", "prepend_scheme": "never", "split": False},
        "decoder": {"type": "Metaspace", "replacement": "▁", "prepend_scheme": "never", "split": False}}),
    ("llama2_sp", "normalized_added_tokens", {"added_tokens": [
        {"id": i, "content": c, "single_word": False, "lstrip": False, "rstrip": False, "normalized": False, "special": True}
        for i, c in enumerate(["<unk>", "<s>", "</s>"])] + [
        {"id": 4000, "content": "zzword", "single_word": False, "lstrip": False, "rstrip": False, "normalized": True, "special": False},
        {"id": 4001, "content": "<mask>", "single_word": False, "lstrip": True, "rstrip": True, "normalized": True, "special": True}]}),
    ("mistral_sp", "no_decoder_roberta", {"decoder": None,
                                          "post_processor": {"type": "RobertaProcessing", "sep": ["</s>", 2], "cls": ["<s>", 1],
                                                             "trim_offsets": True, "add_prefix_space": False}}),
]


def write_variants():
    out = []
    for base, name, patch in VARIANTS:
        spec = json.load(open(os.path.join(OUT, base, "tokenizer.json"), encoding="utf-8"))
        for key, value in patch.items():
            if key == "model":
                spec["model"].update(value)
            else:
                spec[key] = value
        tok = Tokenizer.from_str(json.dumps(spec))
        cases = []
        for text in CORPUS + SPECIAL_STRINGS["sp" if base.endswith("_sp") else "byte"] + random_strings(20):
            ids = tok.encode(text).ids
            cases.append({"text": text, "ids": ids, "ids_no_special": tok.encode(text, add_special_tokens=False).ids,
                          "decoded": tok.decode(ids, skip_special_tokens=False),
                          "decoded_skip_special": tok.decode(ids, skip_special_tokens=True)})
        out.append({"base": base, "name": name, "patch": patch, "cases": cases})
    with open(os.path.join(OUT, "variants.json"), "w") as f:
        json.dump(out, f, ensure_ascii=False)
        f.write("\n")


def main():
    tok, config = gpt2()
    write("gpt2_bpe", tok, config, "byte")
    tok, config = llama3()
    write("llama3_bpe", tok, config, "byte")
    tok, config = qwen2()
    write("qwen2_bpe", tok, config, "byte")
    vocab, merges = sentencepiece_vocab(4000)
    config = {"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>", "add_bos_token": True, "add_eos_token": False,
              "model_max_length": 2048, "tokenizer_class": "PreTrainedTokenizerFast"}
    write("llama2_sp", sp_tokenizer(vocab, merges, metaspace=False), config, "sp")
    # add_eos_token differs from the tokenizer.json template: transformers rebuilds the template.
    config = {"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>", "add_bos_token": True, "add_eos_token": True,
              "model_max_length": 32768, "tokenizer_class": "PreTrainedTokenizerFast"}
    write("mistral_sp", sp_tokenizer(vocab, merges, metaspace=True), config, "sp")
    write_variants()


if __name__ == "__main__":
    sys.exit(main())
