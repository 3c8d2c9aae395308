"""Writes the small seed inputs for the fuzz harnesses (see Docs/FUZZING.md).

Seeds are tiny valid files, one per feature the parser handles, so that
libFuzzer starts from inputs that get past the first checks. Re-run after
changing it: `python3 Tests/AttuneFuzz/Seeds/make_seeds.py` (needs numpy).
"""
import io
import json
import os
import struct

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))


def safetensors(tensors, metadata=None, pad_to=8):
    """tensors: list of (name, dtype, shape, raw bytes), laid out in order."""
    header, data = {}, b""
    for name, dtype, shape, raw in tensors:
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [len(data), len(data) + len(raw)]}
        data += raw
    if metadata is not None:
        header["__metadata__"] = metadata
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % pad_to)
    return struct.pack("<Q", len(text)) + text + data


def write(folder, name, data):
    os.makedirs(os.path.join(HERE, folder), exist_ok=True)
    with open(os.path.join(HERE, folder, name), "wb") as f:
        f.write(data)


f32 = np.arange(6, dtype="<f4").tobytes()
write("safetensors", "f32_bf16_f16_i64.safetensors", safetensors([
    ("embed.weight", "F32", [2, 3], f32),
    ("norm.weight", "BF16", [3], struct.pack("<3H", 0x3F80, 0x7FC0, 0x0001)),
    ("lm_head.weight", "F16", [1, 2], struct.pack("<2H", 0x3C00, 0x7C00)),
    ("ids", "I64", [1], struct.pack("<q", 3)),
], metadata={"format": "pt"}))
write("safetensors", "scalar_empty_unaligned.safetensors", safetensors([
    ("s", "F32", [], struct.pack("<f", 9.0)),
    ("empty", "F32", [0, 4], b""),
    ("b", "BOOL", [2], b"\x01\x00"),
], pad_to=1))
write("safetensors", "empty_header.safetensors", safetensors([]))


def npy(array, version=None):
    buf = io.BytesIO()
    if version is None:
        np.save(buf, array)
    else:
        np.lib.format.write_array(buf, array, version=version)
    return buf.getvalue()


write("npy", "f4_2x3.npy", npy(np.arange(6, dtype="<f4").reshape(2, 3)))
write("npy", "f8_scalar.npy", npy(np.array(1.5, dtype="<f8")))
write("npy", "f4_big_endian.npy", npy(np.array([1, 2], dtype=">f4")))
write("npy", "i8_tokens.npy", npy(np.array([[1, 2, 3]], dtype="<i8")))
write("npy", "u2_big_endian.npy", npy(np.array([7, 8], dtype=">u2")))
write("npy", "i1_empty.npy", npy(np.zeros((0, 3), dtype="i1")))
write("npy", "f4_v2.npy", npy(np.ones(2, dtype="<f4"), version=(2, 0)))
write("npy", "f4_v3.npy", npy(np.ones(1, dtype="<f4"), version=(3, 0)))


# Text-side files: small tokenizers cut from the committed fixtures (the first 300 ids
# and the merges among them, so inputs stay small enough to mutate quickly), the fixture
# models' config.json files and the published chat templates.
FIXTURES = os.path.join(HERE, "..", "..", "Fixtures")


def small_tokenizer(path, keep=300):
    with open(path) as f:
        tok = json.load(f)
    model = tok["model"]
    vocab = {t: i for t, i in model["vocab"].items() if i < keep}
    merges = []
    for m in model.get("merges", []):
        a, b = m if isinstance(m, list) else m.split(" ", 1)
        if a in vocab and b in vocab and a + b in vocab:
            merges.append(m)
    model["vocab"], model["merges"] = vocab, merges
    tok["added_tokens"] = [t for t in tok.get("added_tokens", [])][:4]
    return json.dumps(tok, ensure_ascii=False, separators=(",", ":")).encode()


for name in sorted(os.listdir(os.path.join(FIXTURES, "tokenizers"))):
    path = os.path.join(FIXTURES, "tokenizers", name, "tokenizer.json")
    if os.path.exists(path):
        write("tokenizer", name + ".json", small_tokenizer(path))
for name in sorted(os.listdir(os.path.join(FIXTURES, "models"))):
    path = os.path.join(FIXTURES, "models", name, "config.json")
    if os.path.exists(path):
        with open(path, "rb") as f:
            write("config", name + ".json", f.read())
for name in sorted(os.listdir(os.path.join(FIXTURES, "chat_templates"))):
    if name.endswith(".jinja"):
        with open(os.path.join(FIXTURES, "chat_templates", name), "rb") as f:
            write("chat_template", name, f.read())
