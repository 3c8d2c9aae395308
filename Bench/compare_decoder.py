#!/usr/bin/env python3
"""Compare a whole Llama-style decoder in Attune with PyTorch/transformers (fp32, CPU).

    python3 Bench/compare_decoder.py [--layers 1] [--threads 2] [--torch-compile] [--json]

On first run this creates Bench/.venv and installs Bench/requirements.txt into
it (CPU-only torch, transformers, safetensors; pinned), then re-executes itself
with the venv's python.

What it does, all in one run:
  1. writes a seeded random-weight LlamaForCausalLM checkpoint (hidden 1024,
     8 heads x 128, 8 kv heads, intermediate 2816, vocab 256, --layers layers,
     fp32, max_position_embeddings 4096) with save_pretrained (safetensors)
     into a temporary folder (or --workdir);
  2. times transformers on it (eager attention, fp32, torch.set_num_threads):
     prefill of --prefill-tokens tokens, and one decode step on top of a
     --decode-context-token cache (every timed step starts from the same cache:
     the DynamicCache is cropped back by one token after each step);
     with --torch-compile also torch.compile'd prefill/decode and compile time;
  3. times `attune run` on the same folder with OMP_NUM_THREADS=--threads and
     a private, initially empty ATTUNE_CACHE_DIR, so the first call is a cold
     compile (kernel archive + model), the second a cold model build with the
     kernel archive cached, and later calls hit the build cache (warm compile);
  4. measures the machine's memory read bandwidth with numpy (sum of a large
     float32 array, 1 and --threads threads) and expresses each decode step as
     a fraction of it: bytes per step = decoder + final norm + lm_head weights
     (the embedding table is not counted: a step reads one row of it) + the KV
     cache read (context * layers * 2 * kv_heads * head_dim * 4).

  5. checks that both ran the same model: attune's prefill logits (--logits-out)
     against transformers' (max |diff|, argmax agreement).

torch.compile's compile time is measured with a private, empty inductor cache.
The machine is small (2 cores), so a concurrent build or test run ruins the
figures: the script measures the CPU time other processes used during each
phase and prints a CONTENDED note when it is noticeable; --wait-idle SECONDS
waits for a quiet machine before starting. attune compiles Kernels/*.c of its
source tree at run time; ATTUNE_KERNELS_DIR (inherited) points it elsewhere.

The table goes to stdout; --json adds one JSON object on the last line. Exit
status 1 if attune failed (the torch figures are still printed).
"""
import argparse, hashlib, json, os, shutil, statistics, subprocess, sys, tempfile, time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
VENV = BENCH / ".venv"
REQS = BENCH / "requirements.txt"

# Model shape (the issue's decoder layer); only the layer count is a flag.
HIDDEN, HEADS, KV_HEADS, HEAD_DIM, INTERMEDIATE = 1024, 8, 8, 128, 2816
VOCAB, MAX_POS, ROPE_THETA, RMS_EPS = 256, 4096, 10000.0, 1e-5
MAX_CONTEXT = 4096


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def ensure_venv():
    """Create/refresh Bench/.venv, then exec this script with its python."""
    py = VENV / "bin" / "python"
    if Path(sys.prefix).resolve() == VENV.resolve() or os.environ.get("ATTUNE_BENCH_VENV"):
        return
    if not py.exists():
        log(f"[setup] creating {VENV}")
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True, stdout=sys.stderr)
    marker = VENV / ".requirements.sha256"
    want = hashlib.sha256(REQS.read_bytes()).hexdigest()
    if not marker.exists() or marker.read_text().strip() != want:
        log(f"[setup] installing {REQS.name} into the venv (torch is large; be patient)")
        pip = [str(py), "-m", "pip", "install", "-r", str(REQS)]
        if subprocess.run(pip, stdout=sys.stderr).returncode:  # keep stdout clean for --json
            sys.exit("error: pip install into Bench/.venv failed (see above)")
        marker.write_text(want + "\n")
    os.environ["ATTUNE_BENCH_VENV"] = "1"
    os.execv(str(py), [str(py), str(Path(__file__).resolve())] + sys.argv[1:])


def find_attune(explicit):
    if explicit:
        if not os.access(explicit, os.X_OK):
            sys.exit(f"error: --attune {explicit} is not an executable file")
        return explicit
    binary = ROOT / ".build" / "release" / "attune"
    if not binary.exists():
        if not shutil.which("swift"):
            sys.exit("error: no .build/release/attune and no `swift` on PATH; pass --attune PATH")
        log("[setup] building attune: swift build -c release --product attune")
        rc = subprocess.run(["swift", "build", "-c", "release", "--product", "attune"],
                            cwd=ROOT, stdout=sys.stderr).returncode
        if rc or not binary.exists():
            sys.exit("error: `swift build -c release --product attune` failed (the package may be "
                     "mid-edit); fix the build or pass --attune PATH, or use --torch-only")
    return str(binary)


class ForeignCPU:
    """CPU time other processes used while a phase ran (from /proc/stat minus our own
    process and its waited-for children), as average busy cores. The machine has few
    cores, so anything well above 0 means the figures of that phase are contended."""

    @staticmethod
    def _sample():
        try:
            with open("/proc/stat") as f:
                v = [int(x) for x in f.readline().split()[1:]]
            busy = (v[0] + v[1] + v[2] + v[5] + v[6] + (v[7] if len(v) > 7 else 0)) / os.sysconf("SC_CLK_TCK")
        except (OSError, ValueError, IndexError):
            return None
        t = os.times()
        own = t.user + t.system + t.children_user + t.children_system
        return busy, own + ForeignCPU._live_descendants(), time.monotonic()

    @staticmethod
    def _live_descendants():
        """CPU seconds of our still-running descendants (e.g. torch.compile's worker pool),
        which os.times() only counts once they have exited and been waited for."""
        me, parent, cpu = os.getpid(), {}, {}
        for d in os.listdir("/proc"):
            if not d.isdigit():
                continue
            try:
                with open(f"/proc/{d}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
                parent[int(d)] = int(fields[1])
                # utime + stime + cutime + cstime (its own waited-for children, e.g. a C++ compiler)
                cpu[int(d)] = sum(int(x) for x in fields[11:15]) / os.sysconf("SC_CLK_TCK")
            except (OSError, ValueError, IndexError):
                pass
        total = 0.0
        for pid in cpu:
            p, seen = parent.get(pid), 0
            while p and p != me and seen < 64:
                p, seen = parent.get(p), seen + 1
            if p == me and pid != me:
                total += cpu[pid]
        return total

    def __init__(self):
        self.phases, self._acc = {}, {}

    def wait_idle(self, limit_s, threshold=0.15, window_s=2.0):
        """Wait (at most limit_s) until other processes use < threshold cores over window_s."""
        deadline = time.monotonic() + limit_s
        while True:
            a = self._sample()
            time.sleep(window_s)
            b = self._sample()
            if not a or not b:
                return None
            load = max(0.0, ((b[0] - a[0]) - (b[1] - a[1])) / (b[2] - a[2]))
            if load < threshold or time.monotonic() >= deadline:
                return load
            log(f"[idle] other processes use {load:.2f} cores; waiting")

    def __call__(self, name):
        mon = self

        class Phase:
            def __enter__(self):
                self.start = mon._sample()

            def __exit__(self, *exc):
                end = mon._sample()
                if self.start and end and end[2] > self.start[2]:
                    other = (end[0] - self.start[0]) - (end[1] - self.start[1])
                    cpu, wall = mon._acc.get(name, (0.0, 0.0))
                    mon._acc[name] = (cpu + other, wall + end[2] - self.start[2])
                    cpu, wall = mon._acc[name]
                    mon.phases[name] = max(0.0, cpu / wall)
        return Phase()


# --------------------------------------------------------------------------- checkpoint

def make_checkpoint(folder, layers, seed):
    """Seeded random LlamaForCausalLM saved with save_pretrained (fp32 safetensors)."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM
    config = LlamaConfig(
        vocab_size=VOCAB, hidden_size=HIDDEN, intermediate_size=INTERMEDIATE,
        num_hidden_layers=layers, num_attention_heads=HEADS, num_key_value_heads=KV_HEADS,
        head_dim=HEAD_DIM, hidden_act="silu", max_position_embeddings=MAX_POS,
        rms_norm_eps=RMS_EPS, rope_parameters={"rope_type": "default", "rope_theta": ROPE_THETA},
        tie_word_embeddings=False, attention_bias=False, mlp_bias=False,
        bos_token_id=None, eos_token_id=None, pad_token_id=None)
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config).to(torch.float32).eval()
    # Explicit seeded init (independent of transformers' init code): linear weights
    # N(0, 1/fan_in) keep activations O(1) through the layers; norms 1 + N(0, 0.1^2).
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("norm.weight"):
                p.copy_(1.0 + 0.1 * torch.randn(p.shape, generator=g))
            elif "embed_tokens" in name:
                p.copy_(torch.randn(p.shape, generator=g))
            else:
                p.copy_(torch.randn(p.shape, generator=g) / p.shape[-1] ** 0.5)
    model.save_pretrained(str(folder), safe_serialization=True)
    read_bytes = sum(p.numel() * p.element_size() for n, p in model.named_parameters()
                     if "embed_tokens" not in n)
    total_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
    return read_bytes, total_bytes


# --------------------------------------------------------------------------- bandwidth

def read_bandwidth(threads, mib, repeats):
    """GB/s of np.sum over a float32 array, with 1 and `threads` threads (median)."""
    import numpy as np
    from concurrent.futures import ThreadPoolExecutor
    a = np.ones(mib * (1 << 20) // 4, dtype=np.float32)  # touched, so pages are resident
    nbytes = a.nbytes

    def one():
        t0 = time.perf_counter()
        a.sum()
        return time.perf_counter() - t0

    a.sum()
    single = statistics.median(one() for _ in range(repeats))
    out = {"read_gbps_1t": nbytes / single / 1e9}
    if threads > 1:
        parts = np.array_split(a, threads)
        with ThreadPoolExecutor(threads) as pool:  # numpy releases the GIL in the reduction
            def multi():
                t0 = time.perf_counter()
                list(pool.map(np.sum, parts))
                return time.perf_counter() - t0
            multi()
            out[f"read_gbps_{threads}t"] = nbytes / statistics.median(multi() for _ in range(repeats)) / 1e9
    out["read_gbps"] = max(out.values())
    out["array_mib"], out["repeats"] = mib, repeats
    del a
    return out


# --------------------------------------------------------------------------- torch

def cache_kwarg(model):
    import inspect
    params = inspect.signature(model.forward).parameters
    return "cache" if "cache" in params else "past_key_values"


def torch_measure(folder, threads, prefill_ids, decode_ids, warmup, repeats, decode_steps,
                  do_compile, foreign):
    import torch
    from transformers import DynamicCache, LlamaForCausalLM
    torch.set_num_threads(threads)
    model = LlamaForCausalLM.from_pretrained(str(folder), dtype=torch.float32,
                                             attn_implementation="eager").eval()
    ckw = cache_kwarg(model)
    res, logits = {}, None

    def prefill(fn, ids):
        cache = DynamicCache(config=model.config)
        out = fn(input_ids=ids, use_cache=True, **{ckw: cache})
        return out, cache

    def time_prefill(fn, ids, n_warm, n_rep):
        times = []
        for i in range(n_warm + n_rep):
            t0 = time.perf_counter()
            out, _ = prefill(fn, ids)
            dt = (time.perf_counter() - t0) * 1e3
            if i >= n_warm:
                times.append(dt)
        return times, out

    def time_decode(fn, cache, ctx, token, n_warm, n_rep):
        times = []
        for i in range(n_warm + n_rep):
            t0 = time.perf_counter()
            fn(input_ids=token, use_cache=True, **{ckw: cache})
            dt = (time.perf_counter() - t0) * 1e3
            cache.crop(-1)  # back to the same ctx-token cache for the next step
            if cache.get_seq_length() != ctx:
                raise RuntimeError(f"cache length {cache.get_seq_length()} after crop, want {ctx}")
            if i >= n_warm:
                times.append(dt)
        return times

    p_ids = torch.tensor([prefill_ids])
    d_ids = torch.tensor([decode_ids])
    token = torch.tensor([[decode_ids[-1]]])
    with torch.inference_mode(), foreign("torch eager"):
        log(f"[torch] eager prefill {len(prefill_ids)} tokens")
        times, out = time_prefill(model, p_ids, warmup, repeats)
        logits = out.logits[0].float().numpy()
        res["eager_prefill_ms"] = statistics.median(times)
        res["eager_prefill_ms_min"] = min(times)
        log(f"[torch] eager decode step at {len(decode_ids)} cached tokens")
        t0 = time.perf_counter()
        _, cache = prefill(model, d_ids)
        res["eager_prefill_decode_ctx_ms"] = (time.perf_counter() - t0) * 1e3
        times = time_decode(model, cache, len(decode_ids), token, warmup, decode_steps)
        res["eager_decode_ms"] = statistics.median(times)
        res["eager_decode_ms_min"] = min(times)

    if do_compile:
        with torch.inference_mode():
            try:
                compiled = torch.compile(model)
                log("[torch] torch.compile prefill (first call compiles)")
                with foreign("torch.compile compiling"):
                    t0 = time.perf_counter()
                    prefill(compiled, p_ids)
                    first = time.perf_counter() - t0
                with foreign("torch.compile timing"):
                    times, _ = time_prefill(compiled, p_ids, warmup, repeats)
                res["compile_prefill_ms"] = statistics.median(times)
                res["compile_prefill_compile_s"] = first - res["compile_prefill_ms"] / 1e3
                log("[torch] torch.compile decode step (first call compiles)")
                with foreign("torch.compile compiling"):
                    t0 = time.perf_counter()
                    compiled(input_ids=token, use_cache=True, **{ckw: cache})
                    first = time.perf_counter() - t0
                    cache.crop(-1)
                with foreign("torch.compile timing"):
                    times = time_decode(compiled, cache, len(decode_ids), token, warmup, decode_steps)
                res["compile_decode_ms"] = statistics.median(times)
                res["compile_decode_compile_s"] = first - res["compile_decode_ms"] / 1e3
            except Exception as e:  # report, keep the eager figures
                res["compile_error"] = f"{type(e).__name__}: {str(e).strip().splitlines()[0][:300]}"
                log(f"[torch] torch.compile failed: {res['compile_error']}")
    return res, logits


# --------------------------------------------------------------------------- attune

class AttuneError(Exception):
    pass


def run_attune(exe, folder, ids, new_tokens, env, extra, repeats=1, logits_out=None):
    cmd = [exe, "run", str(folder), "--tokens", ",".join(map(str, ids)),
           "--max-new-tokens", str(new_tokens), "--json", "--max-context", str(MAX_CONTEXT)]
    if repeats > 1:
        cmd += ["--repeats", str(repeats)]
    if logits_out:
        cmd += ["--logits-out", str(logits_out)]
    cmd += extra
    p = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if p.returncode and "ATTUNE_KERNELS_DIR" not in env and "error:" in p.stderr and "Kernels/" in p.stderr:
        p.stderr += ("\n  (attune compiles Kernels/*.c of the source tree at run time; if someone is "
                     "mid-edit there, retry later or set ATTUNE_KERNELS_DIR to a consistent copy)")
    lines = p.stdout.strip().splitlines()
    shown = " ".join(c if len(c) < 60 else c[:40] + f"...({len(ids)} ids)" for c in cmd)
    try:
        if p.returncode:
            raise ValueError(f"exit status {p.returncode}")
        res = json.loads(lines[-1])
        missing = {"prefill_ms", "decode_ms_per_token", "compile_ms", "build_cached"} - set(res)
        if missing:
            raise ValueError(f"JSON lacks {sorted(missing)}")
        return res
    except (ValueError, IndexError) as e:
        err = p.stderr.strip()
        if len(err) > 2000:
            err = err[:1200] + "\n  [...]\n" + err[-700:]
        raise AttuneError(f"attune failed ({e})\n  cmd: {shown}\n  stdout tail: {lines[-3:]}\n"
                          f"  stderr: {err}")


def attune_measure(exe, folder, cache_dir, threads, prefill_ids, decode_ids, runs, repeats,
                   decode_steps, extra, logits_path):
    env = dict(os.environ, ATTUNE_CACHE_DIR=str(cache_dir), OMP_NUM_THREADS=str(threads))
    help_text = subprocess.run([exe, "run", "--help"], capture_output=True, text=True).stdout
    inner = repeats if "--repeats" in help_text else 1
    res = {"prefill_repeats_per_call": inner}
    log("[attune] cold compile (empty build cache) + prefill")
    first = run_attune(exe, folder, prefill_ids, 0, env, extra, inner)
    if first["build_cached"]:
        res["note_cold"] = "first call reported build_cached=true: the cache was not empty"
    res["compile_cold_s"] = first["compile_ms"] / 1e3
    # Same cache, model folder removed: a cold model build with the kernel archive cached.
    shutil.rmtree(Path(cache_dir) / "modules", ignore_errors=True)
    log("[attune] cold model build (kernel archive cached) + prefill, writing logits")
    second = run_attune(exe, folder, prefill_ids, 0, env, extra, inner, logits_out=logits_path)
    res["compile_cold_model_s"] = second["compile_ms"] / 1e3
    prefills, warm = [first["prefill_ms"], second["prefill_ms"]], []
    for i in range(runs):
        log(f"[attune] warm prefill {i + 1}/{runs}")
        r = run_attune(exe, folder, prefill_ids, 0, env, extra, inner)
        if not r["build_cached"]:
            res["note_warm"] = "a warm call reported build_cached=false"
        warm.append(r["compile_ms"] / 1e3)
        prefills.append(r["prefill_ms"])
    res["compile_warm_s"] = statistics.median(warm)
    # Per-call figures are themselves medians of `inner` prefills; take the median of the
    # warm calls (the two cold ones ran right after compiling; listed for reference).
    res["prefill_ms"] = statistics.median(prefills[2:])
    res["prefill_ms_all_calls"] = prefills
    decodes = []
    for i in range(runs):
        log(f"[attune] decode {decode_steps} steps after {len(decode_ids)} tokens ({i + 1}/{runs})")
        r = run_attune(exe, folder, decode_ids, decode_steps, env, extra)
        decodes.append(r["decode_ms_per_token"])
        res["prefill_decode_ctx_ms"] = r["prefill_ms"]
    res["decode_ms"] = statistics.median(decodes)
    res["decode_ms_all_calls"] = decodes
    # Cross-check of the numpy figure: attune's own streaming-read probe (OpenMP, same threads).
    cmd = [exe, "bench", "attention", "--heads", str(HEADS), "--kv-heads", str(KV_HEADS), "--q-len", "1",
           "--kv-len", str(len(decode_ids)), "--head-dim", str(HEAD_DIM), "--threads", str(threads), "--json"]
    p = subprocess.run(cmd, capture_output=True, text=True, env=env)
    try:
        res["probe_read_gbps"] = float(json.loads(p.stdout.strip().splitlines()[-1])["read_gbps"])
    except (ValueError, IndexError, KeyError, TypeError):
        res["probe_error"] = f"`{' '.join(cmd[1:])}` gave no read_gbps: {p.stderr.strip()[-300:]}"
    return res


# --------------------------------------------------------------------------- main

def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--layers", type=int, default=1, help="decoder layers (default 1)")
    ap.add_argument("--threads", type=int, default=2, help="torch threads and attune's OMP_NUM_THREADS")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--prefill-tokens", type=int, default=512)
    ap.add_argument("--decode-context", type=int, default=2048, help="cached tokens before the timed decode step")
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=7, help="timed prefills per measurement")
    ap.add_argument("--decode-steps", type=int, default=16,
                    help="timed torch decode steps (median) and attune --max-new-tokens")
    ap.add_argument("--attune-runs", type=int, default=3, help="warm `attune run` calls for prefill, and calls for decode")
    ap.add_argument("--torch-compile", action="store_true", help="also time torch.compile (slow to compile)")
    ap.add_argument("--bw-mib", type=int, default=512, help="array size for the numpy read bandwidth")
    ap.add_argument("--attune", metavar="PATH", help="attune binary (default: .build/release/attune)")
    ap.add_argument("--attune-arg", action="append", default=[], metavar="ARG",
                    help="extra argument passed through to `attune run` (repeatable)")
    ap.add_argument("--torch-only", action="store_true", help="skip attune entirely")
    ap.add_argument("--workdir", metavar="DIR",
                    help="keep the checkpoint and attune's build cache here (default: a temp dir, removed)")
    ap.add_argument("--wait-idle", type=float, default=0, metavar="SECONDS",
                    help="before measuring, wait up to this long for other processes to go quiet")
    ap.add_argument("--json", action="store_true", help="print the figures as JSON on the last line")
    args = ap.parse_args()
    if args.prefill_tokens + 1 > MAX_CONTEXT or args.decode_context + args.decode_steps > MAX_CONTEXT:
        ap.error(f"prompt + new tokens must fit in the {MAX_CONTEXT}-token context")
    ensure_venv()
    import numpy as np
    import torch

    exe = None if args.torch_only else find_attune(args.attune)
    tmp = None
    if args.workdir:
        work = Path(args.workdir).resolve()
        if (work / "attune-cache").exists():
            shutil.rmtree(work / "attune-cache")  # the cold compile needs an empty cache
        work.mkdir(parents=True, exist_ok=True)
    else:
        tmp = tempfile.TemporaryDirectory(prefix="attune-decoder-bench-")
        work = Path(tmp.name)
    folder, cache_dir = work / f"llama-{args.layers}l", work / "attune-cache"
    # A private, empty inductor cache: torch.compile's reported compile time is a cold one
    # (torch is imported above, but inductor reads this variable when it first compiles).
    if args.torch_compile and "TORCHINDUCTOR_CACHE_DIR" not in os.environ:
        shutil.rmtree(work / "inductor-cache", ignore_errors=True)
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = str(work / "inductor-cache")

    foreign = ForeignCPU()
    try:
        log(f"[setup] writing a {args.layers}-layer random checkpoint to {folder}")
        read_bytes, total_bytes = make_checkpoint(folder, args.layers, args.seed)
        rng = np.random.default_rng(args.seed)
        prefill_ids = rng.integers(0, VOCAB, args.prefill_tokens).tolist()
        decode_ids = rng.integers(0, VOCAB, args.decode_context).tolist()
        kv_bytes = args.decode_context * args.layers * 2 * KV_HEADS * HEAD_DIM * 4
        step_bytes = read_bytes + kv_bytes

        if args.wait_idle > 0:
            foreign.wait_idle(args.wait_idle)
        log(f"[bw] numpy sum over {args.bw_mib} MiB float32")
        with foreign("bandwidth"):
            bw = read_bandwidth(args.threads, args.bw_mib, 9)

        attune, attune_error = {}, None
        if exe:
            try:
                with foreign("attune"):
                    attune = attune_measure(exe, folder, cache_dir, args.threads, prefill_ids, decode_ids,
                                            args.attune_runs, args.repeats, args.decode_steps,
                                            args.attune_arg, work / "attune_logits.npy")
            except AttuneError as e:
                attune_error = str(e)
                log(f"[attune] {attune_error}")

        torch_res, torch_logits = torch_measure(folder, args.threads, prefill_ids, decode_ids,
                                                args.warmup, args.repeats, args.decode_steps,
                                                args.torch_compile, foreign)
        check = None
        lp = work / "attune_logits.npy"
        if lp.exists():
            ours = np.load(lp)
            if ours.shape == torch_logits.shape:
                err = float(np.abs(ours - torch_logits).max())
                check = {"max_abs_diff": err, "ref_max_abs": float(np.abs(torch_logits).max()),
                         "argmax_agree": float((ours.argmax(-1) == torch_logits.argmax(-1)).mean())}
            else:
                check = {"error": f"attune logits shape {ours.shape} vs torch {torch_logits.shape}"}
    finally:
        if tmp:
            tmp.cleanup()

    # ------------------------------------------------------------------ report
    fmt = lambda v, spec: "-" if v is None else format(v, spec)
    ratio = lambda a, b: None if a is None or b is None else a / b
    gbps = lambda ms: None if ms is None else step_bytes / (ms * 1e-3) / 1e9
    t_pre, t_dec = torch_res.get("eager_prefill_ms"), torch_res.get("eager_decode_ms")
    c_pre, c_dec = torch_res.get("compile_prefill_ms"), torch_res.get("compile_decode_ms")
    a_pre, a_dec = attune.get("prefill_ms"), attune.get("decode_ms")
    bwv = bw["read_gbps"]

    rows = [
        ["", "torch eager"] + (["torch.compile"] if args.torch_compile else []) + ["attune",
         "attune/eager"] + (["attune/compile"] if args.torch_compile else []),
        [f"prefill {args.prefill_tokens} tok (ms)", fmt(t_pre, ".2f")]
        + ([fmt(c_pre, ".2f")] if args.torch_compile else [])
        + [fmt(a_pre, ".2f"), fmt(ratio(a_pre, t_pre), ".2f")]
        + ([fmt(ratio(a_pre, c_pre), ".2f")] if args.torch_compile else []),
        [f"decode @{args.decode_context} (ms/tok)", fmt(t_dec, ".3f")]
        + ([fmt(c_dec, ".3f")] if args.torch_compile else [])
        + [fmt(a_dec, ".3f"), fmt(ratio(a_dec, t_dec), ".2f")]
        + ([fmt(ratio(a_dec, c_dec), ".2f")] if args.torch_compile else []),
        ["decode GB/s (bytes/step / time)", fmt(gbps(t_dec), ".1f")]
        + ([fmt(gbps(c_dec), ".1f")] if args.torch_compile else []) + [fmt(gbps(a_dec), ".1f")],
        ["decode / numpy read bandwidth", fmt(ratio(gbps(t_dec), bwv), ".0%")]
        + ([fmt(ratio(gbps(c_dec), bwv), ".0%")] if args.torch_compile else [])
        + [fmt(ratio(gbps(a_dec), bwv), ".0%")],
    ]
    probe = attune.get("probe_read_gbps")
    rows += [] if not probe else [
        ["decode / attune read probe", fmt(ratio(gbps(t_dec), probe), ".0%")]
        + ([fmt(ratio(gbps(c_dec), probe), ".0%")] if args.torch_compile else [])
        + [fmt(ratio(gbps(a_dec), probe), ".0%")],
    ]
    rows = [r + [""] * (len(rows[0]) - len(r)) for r in rows]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    print(f"decoder: {args.layers} layer(s), hidden {HIDDEN}, {HEADS}x{HEAD_DIM} heads, "
          f"{KV_HEADS} kv heads, ffn {INTERMEDIATE}, vocab {VOCAB}, fp32; {args.threads} thread(s); "
          f"torch {torch.__version__}")
    for i, r in enumerate(rows):
        print("  ".join((c.ljust(w) if j == 0 else c.rjust(w)) for j, (c, w) in enumerate(zip(r, widths))))
        if i == 0:
            print("  ".join("-" * w for w in widths))
    print(f"bytes per decode step: {step_bytes / 1e6:.1f} MB = weights {read_bytes / 1e6:.1f} MB "
          f"(decoder + final norm + lm_head) + KV {kv_bytes / 1e6:.1f} MB; checkpoint {total_bytes / 1e6:.1f} MB")
    print("read bandwidth (numpy sum, %d MiB, median of %d): " % (bw["array_mib"], bw["repeats"])
          + ", ".join(f"{k[10:]} {v:.1f} GB/s" for k, v in bw.items() if k.startswith("read_gbps_"))
          + (f"; attune's own read probe ({args.threads}t, `attune bench attention`) {probe:.1f} GB/s"
             if probe else ""))
    if attune:
        print(f"attune compile: cold {attune['compile_cold_s']:.2f} s (empty cache, incl. kernel archive), "
              f"cold model {attune['compile_cold_model_s']:.2f} s (kernel archive cached), "
              f"warm {attune['compile_warm_s']:.2f} s (build cache hit)")
    if args.torch_compile and "compile_prefill_compile_s" in torch_res:
        print(f"torch.compile: compile {torch_res['compile_prefill_compile_s']:.1f} s (prefill shape)"
              + (f", {torch_res['compile_decode_compile_s']:.1f} s (decode shape)"
                 if "compile_decode_compile_s" in torch_res else ""))
    notes = [f"torch: eager attention, DynamicCache, median of {args.repeats} prefills / "
             f"{args.decode_steps} decode steps after {args.warmup} warm-up; each decode step "
             f"starts from the same {args.decode_context}-token cache (cropped back after each step)",
             ] + ([f"attune: OMP_NUM_THREADS={args.threads}, --max-context {MAX_CONTEXT}; prefill = median over "
                   f"{args.attune_runs} warm calls of `run --repeats {attune['prefill_repeats_per_call']}`; "
                   f"decode = decode_ms_per_token over steps {args.decode_context}.."
                   f"{args.decode_context + args.decode_steps - 1} (median of calls)"] if attune else [])
    if check:
        if "error" in check:
            notes.append(f"logits check: {check['error']}")
        else:
            notes.append(f"logits check ({args.prefill_tokens}-token prefill, attune vs torch): max |diff| "
                         f"{check['max_abs_diff']:.2e} (logits up to {check['ref_max_abs']:.1f}), argmax "
                         f"agrees on {check['argmax_agree']:.1%} of positions")
    for k in ("note_cold", "note_warm", "probe_error"):
        if k in attune:
            notes.append(attune[k])
    busy = {k: v for k, v in foreign.phases.items() if v > 0.1}
    if busy:
        notes.append("CONTENDED: other processes kept " + ", ".join(
            f"{v:.2f} core(s) busy during the {k} phase" for k, v in busy.items())
            + f" (machine has {os.cpu_count()}); those figures are unreliable, rerun on an idle machine")
    if "compile_error" in torch_res:
        notes.append(f"torch.compile failed: {torch_res['compile_error']}")
    if attune_error:
        notes.append(attune_error)
    for n in notes:
        print(f"note: {n}")
    if args.json:
        print(json.dumps({
            "layers": args.layers, "threads": args.threads, "torch_version": torch.__version__,
            "prefill_tokens": args.prefill_tokens, "decode_context": args.decode_context,
            "torch": torch_res, "attune": attune, "attune_error": attune_error,
            "bandwidth": bw, "bytes_per_decode_step": step_bytes, "weight_bytes_read": read_bytes,
            "kv_bytes_read": kv_bytes,
            "prefill_ratio_attune_over_eager": ratio(a_pre, t_pre),
            "prefill_ratio_attune_over_compile": ratio(a_pre, c_pre),
            "decode_ratio_attune_over_eager": ratio(a_dec, t_dec),
            "decode_ratio_attune_over_compile": ratio(a_dec, c_dec),
            "attune_decode_bw_fraction": ratio(gbps(a_dec), bwv),
            "attune_decode_probe_bw_fraction": ratio(gbps(a_dec), attune.get("probe_read_gbps")),
            "torch_decode_bw_fraction": ratio(gbps(t_dec), bwv),
            "logits_check": check, "foreign_cpu_cores": foreign.phases, "notes": notes}))
    if attune_error:
        sys.exit(1)  # the table and JSON are out; still tell scripts that attune failed


if __name__ == "__main__":
    main()
