#!/usr/bin/env python3
"""Attune vs transformers (eager, fp32) vs llama.cpp at real model sizes, in one run.

    python Bench/realistic_models.py [--attune PATH] [--llama-cpp-dir BUILD_DIR]
        [--models qwen2.5-0.5b,tinyllama-1.1b,gemma2-2b] [--tinyllama-dtype float32|bfloat16]
        [--attune-weights f32,bf16,int8,q4] [--llama-half bf16,f16] [--transformers-bf16]
        [--llama-depth N] [--decode-rounds N] [--threads 2] [--timeout 900] [--workdir DIR]
        [--keep] [--json FILE]

Run it with a python that has Bench/requirements.txt and `gguf` installed (e.g.
Bench/.venv after `compare_decoder.py` created it, plus `pip install gguf`; the
`gguf-py` folder of the llama.cpp source is used when `gguf` is missing).

For each model it
  1. writes a seeded random-weight checkpoint (every parameter N(0, 0.02^2), norm
     scale 1) with transformers' save_pretrained (safetensors) in the exact shapes
     of Qwen2.5-0.5B (bf16, tied embeddings, q/k/v biases), TinyLlama-1.1B (f32 or
     bf16, --tinyllama-dtype) and Gemma-2-2B (bf16, tied, head_dim 256, soft caps,
     sliding window 4096 on even layers) into the work folder (default: a new folder in /tmp,
     removed at the end unless --keep; with --workdir the multi-GB files are removed
     unless --keep);
  2. runs transformers (eager attention, fp32 compute, torch threads = --threads) in
     a child process: load time, the 64-token check prompt (last-position logits,
     32 greedy tokens; this is also the warm-up), prefill of 512 tokens (logits of
     the last position only, as generate() does), then 128 greedy decode steps;
  3. runs `attune run --weights W` for each W of --attune-weights (OMP_NUM_THREADS=
     --threads, a private ATTUNE_CACHE_DIR per W that starts empty): a cold call (compile with an empty build cache, 512-token
     prefill, 128 decode steps), the same call again (cached build: load time) whose
     prefill/decode figures are reported, and the 64-token check prompt with
     --logits-out and 32 greedy tokens;
  4. with --llama-cpp-dir: writes an f32 GGUF of the same weights (gguf package;
     tensor names and metadata as llama.cpp's converter writes them for the llama,
     qwen2 and gemma2 archs, with a placeholder SentencePiece vocab of the checkpoint's size),
     quantises it to each of --llama-half (bf16, f16), q8_0 and q4_0 with llama-quantize, and
     runs `llama-bench -p 512 -n 128 -t THREADS -o json` on each;
  5. with --decode-rounds N (and both engines): N rounds that decode once with every
     Attune format and every llama.cpp file, in an order rotated each round, and the median
     per-round ratio of each pair at the same bytes per weight (decode_alternated.py): the
     one-run decode rows above sit minutes apart, and that is where they disagree.

Every timed child runs alone under an exclusive flock on /tmp/attune-build.lock (the
lock builds take shared) and its peak RSS is that child's ru_maxrss from wait4 (taken
in a small wrapper process: see rss_wrapper). A
phase during which other processes used noticeable CPU is reported as CONTENDED.
llama-bench decodes its 128 tokens from an empty context, Attune and transformers
after the 512-token prompt; --llama-depth 512 has llama-bench decode after 512 cached
positions too (its -d), which matters for 4-bit weights: Qwen2.5-0.5B's f32 KV read
after 512 positions is 5 % of its q4 weight read per step. Attune runs that fail or exceed
--timeout are recorded in the table, not fatal.
"""
import argparse, fcntl, json, os, shutil, signal, statistics, subprocess, sys, tempfile, threading, time
from datetime import datetime, timezone
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(BENCH))
from compare_decoder import ForeignCPU  # noqa: E402  (same folder; measures other processes' CPU)

LOCK = "/tmp/attune-build.lock"
PREFILL, DECODE, CHECK_PROMPT, CHECK_NEW = 512, 128, 64, 32
# llama.cpp quantisations benched besides the 16-bit files: the counterparts of --weights int8 and q4.
LLAMA_QUANTS = ("q8_0", "q4_0")
MAX_CONTEXT = 1024  # attune's KV capacity: the 512 + 128 tokens fit, RSS stays comparable
INIT_STD = 0.02

MODELS = {
    "qwen2.5-0.5b": dict(
        cls="Qwen2ForCausalLM", gguf_arch="qwen2", hidden=896, layers=24, heads=14, kv_heads=2,
        intermediate=4864, vocab=151936, tied=True, rope_theta=1e6, max_pos=32768, rms_eps=1e-6,
        dtype="bfloat16"),
    "tinyllama-1.1b": dict(
        cls="LlamaForCausalLM", gguf_arch="llama", hidden=2048, layers=22, heads=32, kv_heads=4,
        intermediate=5632, vocab=32000, tied=False, rope_theta=1e4, max_pos=2048, rms_eps=1e-5,
        dtype="float32"),
    # google/gemma-2-2b's shapes (configuration_gemma2.py's defaults): head_dim 256 is not
    # hidden/heads, sliding window on even layers, soft caps 50 (scores) and 30 (logits).
    "gemma2-2b": dict(
        cls="Gemma2ForCausalLM", gguf_arch="gemma2", hidden=2304, layers=26, heads=8, kv_heads=4,
        head_dim=256, intermediate=9216, vocab=256000, tied=True, rope_theta=1e4, max_pos=8192,
        rms_eps=1e-6, sliding_window=4096, query_pre_attn_scalar=256, attn_softcap=50.0,
        final_softcap=30.0, dtype="bfloat16"),
}


def head_dim(spec):
    return spec.get("head_dim", spec["hidden"] // spec["heads"])


def log(msg):
    print(msg, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- children

class Child:
    """One finished child process: exit status, output, wall time, peak RSS."""

    def __init__(self, rc, out, err, wall_s, maxrss_gib, timed_out):
        self.rc, self.out, self.err = rc, out, err
        self.wall_s, self.maxrss_gib, self.timed_out = wall_s, maxrss_gib, timed_out

    def failure(self, what, timeout):
        if self.timed_out:
            return f"{what}: timed out after {timeout:.0f} s"
        if self.rc:
            tail = " | ".join(self.err.strip().splitlines()[-3:])[-400:]
            return f"{what}: exit status {self.rc}: {tail}"
        return None


def rss_wrapper(argv):
    """`--rss-wrapper FILE CMD...`: run CMD, write its peak RSS (KiB, from wait4) to FILE,
    exit with its status. Linux carries a process's RSS high-water mark across fork and
    exec, so a child forked straight from this (multi-GB) parent would report at least
    the parent's peak; forked from this small wrapper it starts from ~15 MB."""
    out, cmd = argv[0], argv[1:]
    p = subprocess.Popen(cmd)
    _, status, ru = os.wait4(p.pid, 0)
    p.returncode = os.waitstatus_to_exitcode(status)
    Path(out).write_text(f"{ru.ru_maxrss}\n")
    sys.exit(p.returncode if p.returncode >= 0 else 128 - p.returncode)


def run_child(cmd, env=None, timeout=None):
    """Run cmd through rss_wrapper in its own process group, so its peak RSS (with its
    waited-for descendants') is its own. On timeout the whole group is killed."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err, \
            tempfile.NamedTemporaryFile("r") as rss:
        t0 = time.monotonic()
        wrapped = [sys.executable, str(Path(__file__).resolve()), "--rss-wrapper", rss.name, *cmd]
        p = subprocess.Popen(wrapped, stdout=out, stderr=err, env=env, start_new_session=True)
        fired = threading.Event()

        def kill():
            fired.set()
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        timer = threading.Timer(timeout, kill) if timeout else None
        if timer:
            timer.start()
        p.wait()
        wall = time.monotonic() - t0
        if timer:
            timer.cancel()
        out.seek(0)
        err.seek(0)
        kib = rss.read().strip()
        return Child(p.returncode, out.read().decode(errors="replace"), err.read().decode(errors="replace"),
                     wall, int(kib) / (1 << 20) if kib else None, fired.is_set())


class Timed:
    """Exclusive build lock + other-process CPU accounting around one timed phase."""

    def __init__(self, foreign, name):
        self.foreign, self.name = foreign, name

    @staticmethod
    def refuse_inherited_lock():
        """An outer `flock -x LOCK python realistic_models.py` holds the lock through a
        descriptor this process inherits; the first phase's own flock on a new descriptor
        then waits for it forever (and so does everyone else's build). Refused up front."""
        for fd in os.listdir("/proc/self/fd") if os.path.isdir("/proc/self/fd") else []:
            try:
                if os.readlink(f"/proc/self/fd/{fd}") == LOCK:
                    sys.exit(f"error: run without flock: this script takes {LOCK} for each timed phase "
                             f"itself, and an outer lock (inherited descriptor {fd}) would deadlock it")
            except OSError:
                pass

    def __enter__(self):
        self.fd = os.open(LOCK, os.O_RDWR | os.O_CREAT, 0o666)
        t0 = time.monotonic()
        fcntl.flock(self.fd, fcntl.LOCK_EX)
        if time.monotonic() - t0 > 1:
            log(f"[lock] waited {time.monotonic() - t0:.0f} s for {LOCK}")
        self.phase = self.foreign(self.name)
        self.phase.__enter__()

    def __exit__(self, *exc):
        self.phase.__exit__(*exc)
        fcntl.flock(self.fd, fcntl.LOCK_UN)
        os.close(self.fd)


# --------------------------------------------------------------------------- checkpoints

def make_checkpoint(folder, spec, seed):
    """Random weights N(0, 0.02^2) (norm scale 1) in the model's exact shapes, saved
    with save_pretrained in the model's stored dtype. Gemma's RMSNorm multiplies by
    1 + w, so its norm weights are stored as 0. The model is built on the meta device and
    materialised in the stored dtype, each parameter drawn in f32 and rounded into it:
    the same values as drawing into an f32 model and converting it, without holding the
    f32 copy (10 GB for Gemma-2-2B)."""
    import torch
    import transformers
    common = dict(
        vocab_size=spec["vocab"], hidden_size=spec["hidden"], intermediate_size=spec["intermediate"],
        num_hidden_layers=spec["layers"], num_attention_heads=spec["heads"],
        num_key_value_heads=spec["kv_heads"], max_position_embeddings=spec["max_pos"],
        rms_norm_eps=spec["rms_eps"], tie_word_embeddings=spec["tied"],
        rope_parameters={"rope_type": "default", "rope_theta": spec["rope_theta"]},
        bos_token_id=None, eos_token_id=None, pad_token_id=None)
    norm_weight = 1.0
    if spec["cls"] == "Qwen2ForCausalLM":
        config = transformers.Qwen2Config(use_sliding_window=False, hidden_act="silu", **common)
    elif spec["cls"] == "Gemma2ForCausalLM":
        config = transformers.Gemma2Config(
            head_dim=head_dim(spec), hidden_activation="gelu_pytorch_tanh", attention_bias=False,
            sliding_window=spec["sliding_window"], query_pre_attn_scalar=spec["query_pre_attn_scalar"],
            attn_logit_softcapping=spec["attn_softcap"], final_logit_softcapping=spec["final_softcap"],
            **common)
        norm_weight = 0.0
    else:
        config = transformers.LlamaConfig(head_dim=head_dim(spec), attention_bias=False, mlp_bias=False,
                                          hidden_act="silu", **common)
    dtype = getattr(torch, spec["dtype"])
    with torch.device("meta"):
        model = getattr(transformers, spec["cls"])(config)
    model = model.to(dtype).to_empty(device="cpu").eval()
    model.tie_weights()  # to_empty gave lm_head its own tensor
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():  # tied lm_head is not listed separately
            if name.endswith("norm.weight"):
                p.fill_(norm_weight)
            else:
                p.copy_(torch.randn(p.shape, generator=g).mul_(INIT_STD))
    model.save_pretrained(str(folder), safe_serialization=True)
    return sum(p.numel() for p in model.parameters())


# --------------------------------------------------------------------------- transformers

def torch_child(arg):
    """Child-process body: measures transformers on one checkpoint, prints JSON."""
    spec = json.loads(arg)
    import numpy as np
    import torch
    from transformers import AutoModelForCausalLM, DynamicCache
    import inspect
    torch.set_num_threads(spec["threads"])
    t0 = time.perf_counter()
    model = AutoModelForCausalLM.from_pretrained(spec["folder"], dtype=getattr(torch, spec["dtype"]),
                                                 attn_implementation="eager").eval()
    res = {"load_s": time.perf_counter() - t0}
    ckw = "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"

    def greedy(ids, new, keep_all=False):
        cache = DynamicCache(config=model.config)
        t0 = time.perf_counter()
        out = model(input_ids=torch.tensor([ids]), use_cache=True, logits_to_keep=0 if keep_all else 1,
                    **{ckw: cache})
        prefill_s = time.perf_counter() - t0
        last = out.logits[0, -1].float()
        gen = [int(last.argmax())]
        t0 = time.perf_counter()
        for _ in range(new - 1 if new else 0):
            out = model(input_ids=torch.tensor([[gen[-1]]]), use_cache=True, **{ckw: cache})
            gen.append(int(out.logits[0, -1].argmax()))
        return prefill_s, time.perf_counter() - t0, last.numpy(), gen

    with torch.inference_mode():
        _, _, last, gen = greedy(spec["check_ids"], CHECK_NEW)
        np.save(spec["logits_out"], last)
        res["check_generated"] = gen
        # new + 1 tokens: the first comes from the prefill, then `new` timed decode steps
        prefill_s, decode_s, _, _ = greedy(spec["prefill_ids"], DECODE + 1)
    res["prefill_tok_s"] = len(spec["prefill_ids"]) / prefill_s
    res["decode_tok_s"] = DECODE / decode_s
    print(json.dumps(res))


def measure_torch(folder, ids, threads, foreign, name, work, timeout, dtype="float32"):
    """transformers eager in `dtype` (float32: the reference of the logit check; bfloat16:
    the speed row of a bf16 user, torch computing in bf16)."""
    logits = work / f"{name}-torch-{dtype}-last.npy"
    arg = json.dumps({"folder": str(folder), "threads": threads, "check_ids": ids["check"],
                      "prefill_ids": ids["prefill"], "logits_out": str(logits), "dtype": dtype})
    log(f"[transformers] {name} {dtype}: load, check prompt, prefill {PREFILL}, decode {DECODE}")
    with Timed(foreign, f"transformers {name} {dtype}"):
        c = run_child([sys.executable, str(Path(__file__).resolve()), "--torch-child", arg], timeout=timeout)
    err = c.failure("transformers", timeout)
    if err:
        return {"error": err, "peak_rss_gib": c.maxrss_gib}
    res = json.loads(c.out.strip().splitlines()[-1])
    res["peak_rss_gib"] = c.maxrss_gib
    res["logits_path"] = str(logits)
    return res


def drop_page_cache(paths):
    """Evicts files from the page cache, so the engine that maps them next fills it the
    way a reading process does (in large folios, which the kernel maps with 2 MiB
    entries) rather than finding the 4 KiB pages their writer left: as after a reboot or
    a download long ago, and the same for Attune and llama.cpp (both map their weights)."""
    for path in paths:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


# --------------------------------------------------------------------------- attune

def attune_call(exe, folder, ids, new, env, timeout, weights, logits_out=None, repeats=1):
    cmd = [exe, "run", str(folder), "--tokens", ",".join(map(str, ids)), "--max-new-tokens", str(new),
           "--max-context", str(MAX_CONTEXT), "--weights", weights, "--json"]
    if repeats > 1:
        # The median of several prefills, the first of which touches fresh pages: llama-bench
        # likewise warms up before its -r repetitions.
        cmd += ["--repeats", str(repeats)]
    if logits_out:
        cmd += ["--logits-out", str(logits_out)]
    c = run_child(cmd, env=env, timeout=timeout)
    err = c.failure(f"`attune run` ({len(ids)} tokens, {new} new)", timeout)
    if not err:
        try:
            return json.loads(c.out.strip().splitlines()[-1]), c
        except (ValueError, IndexError):
            err = f"`attune run` printed no JSON: {c.out.strip()[-300:]} {c.err.strip()[-300:]}"
    log(f"[attune] {err}")
    return {"error": err}, c


def attune_cache(work, name, weights):
    """The private ATTUNE_CACHE_DIR of one model and --weights value."""
    return work / f"{name}-attune-{weights}-cache"


def attune_env(cache, threads):
    return dict(os.environ, ATTUNE_CACHE_DIR=str(cache), OMP_NUM_THREADS=str(threads))


def measure_attune(exe, folder, ids, threads, foreign, name, work, timeout, weights):
    cache = attune_cache(work, name, weights)
    shutil.rmtree(cache, ignore_errors=True)  # the first call must be a cold compile
    env = attune_env(cache, threads)
    res = {}
    drop_page_cache(sorted(Path(folder).glob("*.safetensors")))
    log(f"[attune] {name} --weights {weights}: cold compile + prefill {PREFILL} + decode {DECODE}")
    with Timed(foreign, f"attune {name} {weights}"):
        cold, c = attune_call(exe, folder, ids["prefill"], DECODE, env, timeout, weights)
    res["cold_peak_rss_gib"], res["cold_wall_s"] = c.maxrss_gib, c.wall_s
    if "error" in cold:
        return dict(res, error=cold["error"])
    res["compile_cold_s"] = cold["compile_ms"] / 1e3
    res["cold_prefill_tok_s"] = PREFILL / (cold["prefill_ms"] / 1e3)
    log(f"[attune] {name} --weights {weights}: cached build + prefill {PREFILL} + decode {DECODE}")
    with Timed(foreign, f"attune {name} {weights}"):
        warm, c = attune_call(exe, folder, ids["prefill"], DECODE, env, timeout, weights, repeats=3)
    res["peak_rss_gib"], res["warm_wall_s"] = c.maxrss_gib, c.wall_s
    if "error" in warm:
        return dict(res, error=warm["error"])
    if not warm.get("build_cached"):
        res["note"] = "the second call reported build_cached=false"
    res["compile_cached_s"] = warm["compile_ms"] / 1e3
    res["prefill_tok_s"] = PREFILL / (warm["prefill_ms"] / 1e3)
    res["decode_tok_s"] = 1e3 / warm["decode_ms_per_token"]
    logits = work / f"{name}-attune-{weights}-logits.npy"
    log(f"[attune] {name} --weights {weights}: check prompt ({CHECK_PROMPT} tokens, logits, {CHECK_NEW} greedy)")
    check, _ = attune_call(exe, folder, ids["check"], CHECK_NEW, env, timeout, weights, logits_out=logits)
    if "error" in check:
        return dict(res, check_error=check["error"])
    res["check_generated"], res["logits_path"] = check["generated"], str(logits)
    return res


# --------------------------------------------------------------------------- llama.cpp

def find_llama_cpp(build_dir):
    """(llama-bench, llama-quantize, gguf-py folder or None), or an error string."""
    d = Path(build_dir).resolve()
    tools = {}
    for tool in ("llama-bench", "llama-quantize"):
        hits = [p for p in (d / tool, d / "bin" / tool) if os.access(p, os.X_OK)]
        if not hits:
            return f"no {tool} in {d} or {d / 'bin'}"
        tools[tool] = str(hits[0])
    gguf_py = next((p / "gguf-py" for p in [d, *d.parents][:3] if (p / "gguf-py" / "gguf").is_dir()), None)
    return tools["llama-bench"], tools["llama-quantize"], gguf_py


def import_gguf(gguf_py):
    try:
        import gguf
    except ImportError:
        if not gguf_py:
            raise SystemExit("error: no `gguf` package and no gguf-py next to --llama-cpp-dir")
        sys.path.insert(0, str(gguf_py))
        try:
            import gguf
        except ImportError as e:
            raise SystemExit(f"error: {gguf_py} needs {e.name}; `pip install gguf` into {sys.executable}'s env")
    return gguf


def gguf_tensor_name(hf, arch):
    """Hugging Face parameter name -> llama.cpp GGUF tensor name (llama, qwen2 and gemma2
    archs; Gemma 2's four norms a layer as llama.cpp's converter names them)."""
    fixed = {"model.embed_tokens.weight": "token_embd.weight", "model.norm.weight": "output_norm.weight",
             "lm_head.weight": "output.weight"}
    if hf in fixed:
        return fixed[hf]
    parts = hf.split(".")  # model.layers.N.<module>.<proj>.<weight|bias>
    if parts[:2] != ["model", "layers"]:
        raise ValueError(f"unexpected tensor {hf}")
    local = {"input_layernorm": "attn_norm", "post_attention_layernorm": "ffn_norm",
             "self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k", "self_attn.v_proj": "attn_v",
             "self_attn.o_proj": "attn_output", "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up",
             "mlp.down_proj": "ffn_down"}
    if arch == "gemma2":
        local |= {"post_attention_layernorm": "post_attention_norm", "pre_feedforward_layernorm": "ffn_norm",
                  "post_feedforward_layernorm": "post_ffw_norm"}
    local = local[".".join(parts[3:-1])]
    return f"blk.{parts[2]}.{local}.{parts[-1]}"


def write_gguf(folder, spec, path, gguf):
    """f32 GGUF of the checkpoint, written one tensor at a time (Gemma-2-2B's is 10 GB).
    The llama arch rotates interleaved pairs, so its q/k rows are permuted from HF's
    half-split order (as llama.cpp's converter does); qwen2 and gemma2 keep HF's order.
    gemma2's norms multiply by w where HF's multiply by 1 + w, so the converter's + 1 is
    applied, and its attention scale is 1/sqrt(head_dim) for 26 layers (llama.cpp's
    gemma2.cpp), which equals query_pre_attn_scalar^-0.5 for 2B's 256. The vocab is a
    placeholder SentencePiece list of the right size: unk/bos/eos, the 256 byte tokens,
    then filler pieces."""
    import numpy as np
    from safetensors import safe_open
    arch = spec["gguf_arch"]
    if arch == "gemma2" and spec["query_pre_attn_scalar"] != head_dim(spec):
        raise SystemExit(f"error: llama.cpp's gemma2 scales scores by head_dim^-0.5; "
                         f"query_pre_attn_scalar {spec['query_pre_attn_scalar']} differs")
    w = gguf.GGUFWriter(str(path), arch)
    w.add_name(path.stem)
    w.add_context_length(spec["max_pos"])
    w.add_embedding_length(spec["hidden"])
    w.add_block_count(spec["layers"])
    w.add_feed_forward_length(spec["intermediate"])
    w.add_head_count(spec["heads"])
    w.add_head_count_kv(spec["kv_heads"])
    w.add_rope_dimension_count(head_dim(spec))
    w.add_rope_freq_base(spec["rope_theta"])
    w.add_layer_norm_rms_eps(spec["rms_eps"])
    if arch == "gemma2":
        w.add_key_length(head_dim(spec))
        w.add_value_length(head_dim(spec))
        w.add_attn_logit_softcapping(spec["attn_softcap"])
        w.add_final_logit_softcapping(spec["final_softcap"])
        w.add_sliding_window(spec["sliding_window"])
    w.add_file_type(gguf.LlamaFileType.ALL_F32)
    n = spec["vocab"]
    tokens = ["<unk>", "<s>", "</s>"] + [f"<0x{b:02X}>" for b in range(256)]
    tokens += [f"\u2581t{i}" for i in range(n - len(tokens))]
    types = [gguf.TokenType.UNKNOWN, gguf.TokenType.CONTROL, gguf.TokenType.CONTROL] + \
        [gguf.TokenType.BYTE] * 256 + [gguf.TokenType.NORMAL] * (n - 259)
    w.add_tokenizer_model("llama")
    w.add_token_list(tokens)
    w.add_token_scores([-float(i) for i in range(n)])
    w.add_token_types(types)
    w.add_unk_token_id(0)
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)

    def permute(t, heads):
        return t.reshape(heads, 2, t.shape[0] // heads // 2, *t.shape[1:]).swapaxes(1, 2).reshape(t.shape)

    def tensor(f, hf):
        t = f.get_tensor(hf).float().numpy()
        if arch == "llama" and hf.endswith("q_proj.weight"):
            t = permute(t, spec["heads"])
        elif arch == "llama" and hf.endswith("k_proj.weight"):
            t = permute(t, spec["kv_heads"])
        elif arch == "gemma2" and hf.endswith("norm.weight"):
            t = t + 1
        return np.ascontiguousarray(t, dtype=np.float32)

    files = sorted(folder.glob("*.safetensors"))
    names = {}  # tensor infos first, then the data in the same order
    for file in files:
        with safe_open(str(file), framework="pt") as f:
            for hf in f.keys():
                shape = f.get_slice(hf).get_shape()
                w.add_tensor_info(gguf_tensor_name(hf, arch), shape, np.dtype(np.float32),
                                  4 * int(np.prod(shape)))
                names.setdefault(file, []).append(hf)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_ti_data_to_file()
    for file, hfs in names.items():
        with safe_open(str(file), framework="pt") as f:
            for hf in hfs:
                w.write_tensor_data(tensor(f, hf))
    w.close()


def measure_llama_cpp(tools, folder, spec, name, work, threads, halves, reps, foreign, timeout, bench_f32=True, pure=False,
                      depth=0):
    bench, quantize, gguf_py = tools
    gguf = import_gguf(gguf_py)
    f32 = work / f"{name}-f32.gguf"
    log(f"[llama.cpp] {name}: writing {f32.name}")
    write_gguf(folder, spec, f32, gguf)
    files = {"f32": f32} if bench_f32 else {}
    for q in (*halves, *LLAMA_QUANTS):
        out = work / f"{name}-{q}.gguf"
        log(f"[llama.cpp] {name}: llama-quantize -> {q}")
        # --pure: every tensor in the named type (by default the output projection, or a tied
        # embedding table, stays wider): the same bytes per weight as Attune's int8 / q4.
        flags = ["--pure"] if pure and q in LLAMA_QUANTS else []
        c = run_child([quantize, *flags, str(f32), str(out), q.upper(), str(threads)], timeout=timeout)
        err = c.failure("llama-quantize", timeout)
        files[q] = err or out
    rows = {}
    for q, path in files.items():
        if isinstance(path, str):
            rows[q] = {"error": path}
            continue
        drop_page_cache([path])
        # With a depth, -d 0,DEPTH: prefill from an empty context, decode after DEPTH positions.
        depths = ["-d", f"0,{depth}"] if depth else []
        log(f"[llama.cpp] {name} {q}: llama-bench -p {PREFILL} -n {DECODE} -t {threads} -r {reps} {' '.join(depths)}")
        with Timed(foreign, f"llama.cpp {name} {q}"):
            c = run_child([bench, "-m", str(path), "-p", str(PREFILL), "-n", str(DECODE), "-t", str(threads),
                           "-r", str(reps), *depths, "-o", "json"], timeout=timeout)
        err = c.failure("llama-bench", timeout)
        if err:
            rows[q] = {"error": err}
            continue
        try:
            tests = json.loads(c.out)
            pp = next(t for t in tests if t["n_prompt"] == PREFILL and t["n_gen"] == 0 and t.get("n_depth", 0) == 0)
            tg = next(t for t in tests if t["n_gen"] == DECODE and t["n_prompt"] == 0 and t.get("n_depth", 0) == depth)
            tg0 = next(t for t in tests if t["n_gen"] == DECODE and t["n_prompt"] == 0 and t.get("n_depth", 0) == 0)
        except (ValueError, StopIteration, KeyError) as e:
            rows[q] = {"error": f"llama-bench output not understood ({e}): {c.out[-300:]}"}
            continue
        rows[q] = {"prefill_tok_s": pp["avg_ts"], "prefill_stddev": pp["stddev_ts"],
                   "decode_tok_s": tg["avg_ts"], "decode_stddev": tg["stddev_ts"],
                   "peak_rss_gib": c.maxrss_gib, "file_gib": path.stat().st_size / (1 << 30),
                   "decode_depth": depth, "decode_tok_s_empty_context": tg0["avg_ts"], "build_commit": pp.get("build_commit"), "cpu_info": pp.get("cpu_info")}
    return rows


def measure_decode_alternated(exe, bench, r, folder, name, work, ids, threads, rounds, foreign, timeout):
    """Decode after the prompt's len(ids) positions, every Attune format (its cached build) and
    every llama.cpp file that benched, alternated round by round: one-run rows sit minutes
    apart, and this machine's bandwidth level changes over minutes (decode_alternated.py)."""
    import decode_alternated as da  # imports this module: loaded here, not at the top
    weights = [w for w, a in r["attune"].items() if "decode_tok_s" in a]
    types = [q for q, l in r["llama_cpp"].items() if "decode_tok_s" in l]
    engines = [(f"attune {w}", lambda w=w: da.attune_decode(exe, folder, ids, attune_env(attune_cache(work, name, w), threads),
                                                            timeout, w)) for w in weights]
    engines += [(f"llama.cpp {q}", lambda q=q: da.llama_decode(bench, work / f"{name}-{q}.gguf", len(ids), threads, timeout))
                for q in types]
    log(f"[alternated] {name}: {rounds} rounds of {', '.join(n for n, _ in engines)}")
    try:
        per_round = da.alternate(engines, rounds, foreign)
    except RuntimeError as e:
        return {"error": str(e)}
    return {"rounds": per_round, "depth": len(ids),
            "ratios": {k: {"median": m, "rounds": per} for k, (m, per) in da.paired_ratios(weights, types, per_round).items()}}


# --------------------------------------------------------------------------- comparison

def compare(attune, torch_res):
    """max |Δ| of the last-position logits and greedy agreement, Attune vs transformers."""
    import numpy as np
    if "logits_path" not in attune or "logits_path" not in torch_res:
        return {}
    ours = np.load(attune["logits_path"])
    ref = np.load(torch_res["logits_path"])
    if ours.ndim != 2 or ours.shape[1] != ref.shape[0]:
        return {"error": f"attune logits shape {ours.shape}, transformers' last row {ref.shape}"}
    a, b = attune["check_generated"], torch_res["check_generated"]
    prefix = next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
    return {"max_abs_diff": float(np.abs(ours[-1] - ref).max()), "ref_max_abs": float(np.abs(ref).max()),
            "greedy_prefix": prefix, "greedy_same": sum(x == y for x, y in zip(a, b)), "greedy_n": len(b)}


def fmt(v, spec):
    return "-" if v is None else format(v, spec)


def table(results, args):
    head = ["model", "tool", "precision", "load/compile s", f"prefill {PREFILL} tok/s",
            f"decode {DECODE} tok/s", "peak RSS GiB", "max abs Δlogit vs transformers",
            f"greedy {CHECK_NEW} agree"]
    rows = []
    for name, r in results.items():
        dt = r["dtype"]
        t = r["transformers"]
        rows.append([name, "transformers eager", f"f32 (from {dt})", fmt(t.get("load_s"), ".2f"),
                     fmt(t.get("prefill_tok_s"), ".1f"), fmt(t.get("decode_tok_s"), ".2f"),
                     fmt(t.get("peak_rss_gib"), ".2f"), "(reference)", "(reference)"]
                    if "error" not in t and "skipped" not in t else
                    [name, "transformers eager", "f32", "skipped: " + t["skipped"]] if "skipped" in t else
                    [name, "transformers eager", "f32", "FAILED: " + t["error"]])
        if r["attune"].get("skipped"):
            rows.append([name, "attune", dt, "skipped: " + r["attune"]["skipped"]])
        tb = r.get("transformers_bf16")
        if tb:
            rows.append([name, "transformers eager", f"bf16 (from {dt})", fmt(tb.get("load_s"), ".2f"),
                         fmt(tb.get("prefill_tok_s"), ".1f"), fmt(tb.get("decode_tok_s"), ".2f"),
                         fmt(tb.get("peak_rss_gib"), ".2f"), "-", "-"] if "error" not in tb else
                        [name, "transformers eager", "bf16", "FAILED: " + tb["error"]])
        for w, a in r["attune"].items():
            if w == "skipped":
                continue
            c = r["check"].get(w, {})
            precision = f"{w} weights (stored {dt})"
            if "compile_cached_s" in a:
                greedy = (f"{c['greedy_prefix']}/{c['greedy_n']} prefix" if "greedy_prefix" in c else
                          "-" if not c else c["error"])
                rows.append([name, "attune", precision,
                             f"{a['compile_cold_s']:.1f} cold, {a['compile_cached_s']:.2f} cached",
                             fmt(a["prefill_tok_s"], ".1f"), fmt(a["decode_tok_s"], ".2f"),
                             f"{fmt(a['peak_rss_gib'], '.2f')} (cold {fmt(a['cold_peak_rss_gib'], '.2f')})",
                             fmt(c.get("max_abs_diff"), ".2e") if "check_error" not in a else "FAILED",
                             greedy if "check_error" not in a else "FAILED"])
            else:
                rows.append([name, "attune", precision, "FAILED: " + a["error"].replace("|", "/")])
        for q, l in r["llama_cpp"].items():
            if "error" in l:
                rows.append([name, "llama.cpp", q, "FAILED: " + l["error"].replace("|", "/")])
            else:
                rows.append([name, "llama.cpp", q, "-",
                             f"{l['prefill_tok_s']:.1f} ± {l['prefill_stddev']:.1f}",
                             f"{l['decode_tok_s']:.2f} ± {l['decode_stddev']:.2f}",
                             fmt(l["peak_rss_gib"], ".2f"), "-", "-"])
    out = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    for row in rows:
        out.append("| " + " | ".join(row + [""] * (len(head) - len(row))) + " |")
    return "\n".join(out)


def ratios(results):
    out = {}
    for name, r in results.items():
        for w, a in r["attune"].items():
            if w == "skipped" or "prefill_tok_s" not in a:
                continue
            refs = {"transformers": r["transformers"],
                    **({"transformers bf16": r["transformers_bf16"]} if "transformers_bf16" in r else {}), **{f"llama.cpp {q}": l for q, l in r["llama_cpp"].items()},
                    **{f"attune {v}": b for v, b in r["attune"].items() if v not in ("skipped", w)}}
            for ref_name, ref in refs.items():
                if "prefill_tok_s" in ref:
                    out[f"{name}: attune {w} / {ref_name}"] = {
                        "prefill": a["prefill_tok_s"] / ref["prefill_tok_s"],
                        "decode": a["decode_tok_s"] / ref["decode_tok_s"]}
    return out


def weight_bytes(spec, weights):
    """Bytes per matmul weight in the format Attune runs it: int8 (groups of 32, f16
    scales) 1.0625, q4 0.5625, bf16 2, f32 4 (`auto`: as stored, f16 widened)."""
    if weights.startswith("int8"):
        return 1.0625
    if weights.startswith("q4"):
        return 0.5625
    half = weights == "bf16" or (weights == "auto" and spec["dtype"] == "bfloat16")
    return 2 if half else 4


def decode_bytes_per_token(spec, n_params, weights):
    """Bytes one decode step reads: every weight once (an untied embedding table only a
    row) in the format Attune runs it, plus the f32 K/V of the average cached length."""
    read = n_params - (0 if spec["tied"] else spec["vocab"] * spec["hidden"])
    kv = spec["layers"] * 2 * spec["kv_heads"] * head_dim(spec) * 4 * (PREFILL + DECODE // 2)
    return read * weight_bytes(spec, weights) + kv


def read_bandwidth_gbps(exe, threads, timeout):
    """The same-run streaming read bandwidth: `attune bench`'s probe (Kernels/bench_baselines.c)."""
    c = run_child([exe, "bench", "attention", "--q-len", "1", "--kv-len", "4096", "--heads", "8", "--threads", str(threads), "--json"],
                  timeout=timeout)
    if c.failure("attune bench", timeout):
        return None
    try:
        return json.loads(c.out.strip().splitlines()[-1])["read_gbps"]
    except (ValueError, IndexError, KeyError):
        return None


def memory_bound_gib(spec, n_params, weights):
    """Stored weights (in the format Attune runs them) + the f32 KV cache of MAX_CONTEXT
    positions + 10 %: the peak-RSS target of issue 13."""
    kv = spec["layers"] * 2 * spec["kv_heads"] * head_dim(spec) * MAX_CONTEXT * 4
    return (n_params * weight_bytes(spec, weights) + kv) * 1.1 / (1 << 30)


# --------------------------------------------------------------------------- main

def main():
    if len(sys.argv) == 3 and sys.argv[1] == "--torch-child":
        return torch_child(sys.argv[2])
    if len(sys.argv) > 3 and sys.argv[1] == "--rss-wrapper":
        return rss_wrapper(sys.argv[2:])
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--attune", metavar="PATH", default=str(ROOT / ".build" / "release" / "attune"),
                    help="attune binary (default: .build/release/attune of this repository)")
    ap.add_argument("--llama-cpp-dir", metavar="DIR",
                    help="llama.cpp build folder with llama-bench and llama-quantize (its source, with "
                         "gguf-py, above it); without it the llama.cpp rows are skipped")
    ap.add_argument("--models", default=",".join(MODELS), help=f"comma-separated, of {', '.join(MODELS)}")
    ap.add_argument("--tinyllama-dtype", choices=["float32", "bfloat16"], default="float32",
                    help="stored dtype of the TinyLlama checkpoint (Qwen2.5 is always bf16)")
    ap.add_argument("--llama-half", default="bf16",
                    help="llama.cpp's 16-bit rows, comma-separated of bf16, f16 (besides f32, q8_0 and q4_0)")
    ap.add_argument("--attune-weights", default="f32,bf16",
                    help="attune rows: comma-separated --weights values (f32, bf16, int8, q4, auto)")
    ap.add_argument("--llama-reps", type=int, default=3, help="llama-bench -r")
    ap.add_argument("--llama-depth", type=int, default=0, metavar="N",
                    help="llama-bench decodes after N cached positions (-d 0,N; the prefill stays at depth 0): "
                         "512 matches Attune's decode after the 512-token prompt")
    ap.add_argument("--decode-rounds", type=int, default=0, metavar="N",
                    help="after the phases above, N rounds that each decode once with every Attune format and "
                         "every llama.cpp file (rotated order, decode_alternated.py), after 512 positions; "
                         "reports the median per-round ratio of each same-bytes pair")
    ap.add_argument("--llama-skip-f32", action="store_true",
                    help="bench llama.cpp's 16-bit, q8_0 and q4_0 files only (the f32 GGUF is still written: they are quantised from it)")
    ap.add_argument("--llama-pure", action="store_true",
                    help="llama-quantize --pure for q8_0 and q4_0 (every tensor, the output projection "
                         "included, in that type: Attune's bytes per weight)")
    ap.add_argument("--layers", type=int, metavar="N",
                    help="override the layer count (width and vocabulary stay): a cut-down model whose "
                         "transformers f32 reference fits in memory; rows are named MODEL-NL")
    ap.add_argument("--no-transformers", action="store_true",
                    help="skip transformers (no reference logits: Attune's check rows stay empty); for "
                         "shapes whose f32 copy does not fit, with a --layers run for correctness")
    ap.add_argument("--transformers-bf16", action="store_true",
                    help="also time transformers eager computing in bf16 (a bf16 user's speed row; the "
                         "logit check stays against its f32 run)")
    ap.add_argument("--threads", type=int, default=2, help="OMP_NUM_THREADS, torch threads, llama-bench -t")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--timeout", type=float, default=900, help="seconds per child run (default 900)")
    ap.add_argument("--workdir", metavar="DIR", help="work folder (default: a new folder in /tmp)")
    ap.add_argument("--keep", action="store_true", help="keep checkpoints, GGUF files and attune's cache")
    ap.add_argument("--wait-idle", type=float, default=0, metavar="SECONDS",
                    help="before measuring, wait up to this long for other processes to go quiet")
    ap.add_argument("--json", metavar="FILE", help="also write all figures as JSON to FILE")
    args = ap.parse_args()
    names = [m.strip() for m in args.models.split(",") if m.strip()]
    halves = [h.strip() for h in args.llama_half.split(",") if h.strip()]
    if not halves or any(h not in ("bf16", "f16") for h in halves):
        ap.error(f"--llama-half takes bf16 and/or f16, got '{args.llama_half}'")
    attune_weights = [w.strip() for w in args.attune_weights.split(",") if w.strip()]
    if not attune_weights or any(w not in ("f32", "bf16", "int8", "q4", "auto") for w in attune_weights):
        ap.error(f"--attune-weights takes f32, bf16, int8, q4 and/or auto, got '{args.attune_weights}'")
    if args.decode_rounds < 0:
        ap.error("--decode-rounds must be 0 or more")
    unknown = [m for m in names if m not in MODELS]
    if unknown or not names:
        ap.error(f"unknown model(s) {unknown}; choose from {', '.join(MODELS)}")
    Timed.refuse_inherited_lock()
    attune_skip = None
    if not os.access(args.attune, os.X_OK):
        attune_skip = f"no attune binary at {args.attune} (build it or pass --attune PATH)"
    llama_tools, llama_note = None, "no --llama-cpp-dir given"
    if args.llama_cpp_dir:
        found = find_llama_cpp(args.llama_cpp_dir)
        if isinstance(found, str):
            llama_note = found
        else:
            llama_tools, llama_note = found, None
    try:
        import numpy, torch, transformers, safetensors  # noqa: F401  (fail before any work)
    except ImportError as e:
        sys.exit(f"error: {e.name} is missing from {sys.executable}; see Bench/requirements.txt")

    if args.workdir:
        work = Path(args.workdir).resolve()
        work.mkdir(parents=True, exist_ok=True)
    else:
        work = Path(tempfile.mkdtemp(prefix="attune-realistic-", dir="/tmp"))
    attune_commit = None
    if not attune_skip:
        # The commit of the repository the binary was built in, if it lies in one.
        src = Path(args.attune).resolve().parent
        g = subprocess.run(["git", "-C", str(src), "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
        attune_commit = g.stdout.strip() or None
    foreign = ForeignCPU()
    results, created = {}, []
    try:
        if args.wait_idle > 0:
            foreign.wait_idle(args.wait_idle)
        for model in names:
            spec = dict(MODELS[model])
            if model == "tinyllama-1.1b":
                spec["dtype"] = args.tinyllama_dtype
            name = model
            if args.layers:
                spec["layers"], name = args.layers, f"{model}-{args.layers}L"
            folder = work / f"{name}-{spec['dtype']}"
            created += [folder] + [work / f"{name}-torch-{d}-last.npy" for d in ("float32", "bfloat16")]
            created += [work / f"{name}-attune-{w}-logits.npy" for w in attune_weights]
            log(f"[setup] {name}: random {spec['cls']} ({spec['dtype']}) -> {folder}")
            n_params = make_checkpoint(folder, spec, args.seed)
            import numpy as np
            rng = np.random.default_rng(args.seed)
            ids = {"check": rng.integers(0, spec["vocab"], CHECK_PROMPT).tolist(),
                   "prefill": rng.integers(0, spec["vocab"], PREFILL).tolist()}
            r = {"dtype": {"float32": "f32", "bfloat16": "bf16"}[spec["dtype"]], "params": n_params,
                 "spec": spec, "memory_bound_gib": {w: memory_bound_gib(spec, n_params, w) for w in attune_weights}}
            if args.no_transformers:
                r["transformers"] = {"skipped": "--no-transformers"}
            else:
                r["transformers"] = measure_torch(folder, ids, args.threads, foreign, name, work, args.timeout)
                if args.transformers_bf16:
                    r["transformers_bf16"] = measure_torch(folder, ids, args.threads, foreign, name, work,
                                                           args.timeout, "bfloat16")
            if attune_skip:
                r["attune"] = {"skipped": attune_skip}
            else:
                r["attune"] = {}
                with Timed(foreign, "read probe"):
                    r["read_gbps"] = read_bandwidth_gbps(args.attune, args.threads, args.timeout)
                for w in attune_weights:
                    created.append(attune_cache(work, name, w))
                    r["attune"][w] = measure_attune(args.attune, folder, ids, args.threads, foreign, name, work,
                                                    args.timeout, w)
            r["check"] = {w: compare(a, r["transformers"]) for w, a in r["attune"].items() if w != "skipped"}
            r["llama_cpp"] = {}
            if llama_tools:
                created += [work / f"{name}-{q}.gguf" for q in ("f32", *halves, *LLAMA_QUANTS)]
                r["llama_cpp"] = measure_llama_cpp(llama_tools, folder, spec, name, work, args.threads,
                                                   halves, args.llama_reps, foreign, args.timeout,
                                                   bench_f32=not args.llama_skip_f32, pure=args.llama_pure, depth=args.llama_depth)
                if args.decode_rounds and not attune_skip:
                    r["decode_alternated"] = measure_decode_alternated(
                        args.attune, llama_tools[0], r, folder, name, work, ids["prefill"], args.threads, args.decode_rounds,
                        foreign, args.timeout)
            results[name] = r
    finally:
        if not args.keep:
            if args.workdir:
                for p in created:
                    shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink(missing_ok=True)
            else:
                shutil.rmtree(work, ignore_errors=True)

    import torch
    when = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    print(f"Realistic model sizes, {when}; attune {attune_commit or '-'} ({args.attune}); "
          f"torch {torch.__version__}, transformers {transformers.__version__}; {args.threads} threads; "
          f"random weights N(0, {INIT_STD}^2)")
    print()
    print(table(results, args))
    print()
    rat = ratios(results)
    for k, v in rat.items():
        print(f"- {k}: prefill {v['prefill']:.2f}x, decode {v['decode']:.2f}x (tok/s ratio; > 1 = attune faster)")
    notes = []
    for name, r in results.items():
        alt = r.get("decode_alternated")
        if alt and "error" in alt:
            notes.append(f"{name}: alternated decode rounds failed: {alt['error']}")
        elif alt:
            n = len(alt["rounds"])
            medians = ", ".join(f"{e} {statistics.median(g[e] for g in alt['rounds']):.2f}" for e in alt["rounds"][0])
            print(f"- {name}: decode alternated, {n} rounds after {alt['depth']} positions, median tok/s: {medians}")
            for pair, v in alt["ratios"].items():
                print(f"- {name}: {pair} decode, alternated: median of per-round ratios {v['median']:.2f}x "
                      f"(rounds: {', '.join(f'{x:.2f}' for x in v['rounds'])})")
    if llama_note:
        notes.append(f"llama.cpp skipped: {llama_note}")
    for name, r in results.items():
        for w, a in r["attune"].items():
            if w == "skipped":
                continue
            if a.get("note"):
                notes.append(f"{name} {w}: {a['note']}")
            if a.get("check_error"):
                notes.append(f"{name} {w}: attune check run failed: {a['check_error']}")
            c = r["check"].get(w, {})
            if "max_abs_diff" in c:
                notes.append(f"{name} {w}: transformers' last-position logits reach |{c['ref_max_abs']:.2f}|; "
                             f"greedy tokens equal at {c['greedy_same']}/{c['greedy_n']} positions")
            if "decode_tok_s" in a and r.get("read_gbps"):
                gbps = a["decode_tok_s"] * decode_bytes_per_token(r["spec"],
                                                                  r["params"], w) / 1e9
                notes.append(f"{name} {w}: decode reads {gbps:.1f} GB/s = {100 * gbps / r['read_gbps']:.0f} % of the "
                             f"same-run streaming read ({r['read_gbps']:.1f} GB/s)")
            if "peak_rss_gib" in a:
                bound = r["memory_bound_gib"][w] if w in r["memory_bound_gib"] else None
                notes.append(f"{name} {w}: peak RSS {a['peak_rss_gib']:.2f} GiB; stored weights + KV + 10 % = "
                             f"{fmt(bound, '.2f')} GiB")
    busy = {k: v for k, v in foreign.phases.items() if v > 0.1}
    if busy:
        notes.append("CONTENDED: other processes kept " + ", ".join(
            f"{v:.2f} core(s) busy during {k}" for k, v in busy.items())
            + f" (machine has {os.cpu_count()}); those figures are unreliable, rerun on an idle machine")
    for n in notes:
        print(f"note: {n}")
    if args.json:
        Path(args.json).write_text(json.dumps({
            "date": when, "attune": args.attune, "attune_commit": attune_commit, "threads": args.threads,
            "torch_version": torch.__version__, "transformers_version": transformers.__version__,
            "prefill_tokens": PREFILL, "decode_tokens": DECODE, "check_prompt": CHECK_PROMPT,
            "results": results, "ratios": rat, "foreign_cpu_cores": foreign.phases, "notes": notes},
            indent=1) + "\n")


if __name__ == "__main__":
    main()
