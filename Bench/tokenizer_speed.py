#!/usr/bin/env python3
"""Encoding speed: Attune's tokenizer against the `tokenizers` package, same text, same run.

    swift build -c release --product attune
    flock -x /tmp/attune-build.lock /work/venv/bin/python Bench/tokenizer_speed.py [TOKENIZER_DIR...]

Default folders: the fixtures in Tests/Fixtures/tokenizers. The text is 1 MB of English
prose (Vim's help files, present on this machine; or --text-file). Both sides encode the
same string with special tokens, best of 3 after loading, one thread; the ids must be equal.
Prints MB/s for each and the ratio Attune / tokenizers.
"""
import argparse
import glob
import json
import os
import re
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def english_text(size):
    files = sorted(glob.glob("/usr/share/vim/vim*/doc/*.txt"))
    if not files:
        sys.exit("no text: pass --text-file")
    data = b"".join(open(f, "rb").read() for f in files)[:size]
    return data.decode("utf-8", errors="ignore")


def main():
    os.environ["RAYON_NUM_THREADS"] = "1"
    os.environ["TOKENIZERS_PARALLELISM"] = "false"
    from tokenizers import Tokenizer

    ap = argparse.ArgumentParser()
    ap.add_argument("dirs", nargs="*")
    ap.add_argument("--text-file")
    ap.add_argument("--attune", default=os.path.join(ROOT, ".build/release/attune"))
    args = ap.parse_args()
    dirs = args.dirs or sorted(glob.glob(os.path.join(ROOT, "Tests/Fixtures/tokenizers/*/")))
    text = open(args.text_file, encoding="utf-8", newline="").read() if args.text_file else english_text(1_000_000)
    path = "/tmp/attune_tokenizer_speed.txt"
    with open(path, "w", encoding="utf-8", newline="") as f:
        f.write(text)
    nbytes = len(text.encode("utf-8"))
    print(f"text: {nbytes} bytes")
    print(f"{'tokenizer':<14} {'tokens':>8} {'tokenizers MB/s':>16} {'attune MB/s':>12} {'ratio':>6}")
    for d in dirs:
        tok = Tokenizer.from_file(os.path.join(d, "tokenizer.json"))
        best = float("inf")
        for _ in range(3):
            t = time.perf_counter()
            ids = tok.encode(text).ids
            best = min(best, time.perf_counter() - t)
        run = subprocess.run([args.attune, "tokenize", d, "--text-file", path, "--timing"], capture_output=True, text=True, check=True)
        attune_ids = json.loads(run.stdout)
        seconds = float(re.search(r"in ([0-9.]+) s", run.stderr).group(1))
        if attune_ids != ids:
            sys.exit(f"{d}: ids differ from tokenizers")
        name = os.path.basename(os.path.normpath(d))
        print(f"{name:<14} {len(ids):>8} {nbytes / best / 1e6:>16.2f} {nbytes / seconds / 1e6:>12.2f} {best / seconds:>6.2f}")


if __name__ == "__main__":
    main()
