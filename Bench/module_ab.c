/*
 * module_ab.c — decode speed of two compiled builds of one model in one process: both
 * shared libraries are loaded (RTLD_LOCAL, so each keeps its own kernels), and every round
 * prefills the same prompt and times STEPS decode steps on each, the order swapped every
 * round. Built and run by Bench/module_ab.sh; used for Docs/PERFORMANCE.md, "bf16 decode:
 * the prefetch distance".
 *
 *   module_ab A.so A.manifest B.so B.manifest ROUNDS PROMPT STEPS
 *
 * Why in one process: this machine's read bandwidth moves by up to 30 % between minutes,
 * and two `attune run` processes seconds apart can sit on different levels. Here the two
 * builds' blocks are a second or two apart, and the figure is the median of per-round
 * ratios. The decoded tokens are a fixed sequence, not greedy ones, so both builds do the
 * same work whatever their logits. Two models in one process map the same weight pages and
 * share the memory system: a build that streams worse can lose more here than alone (the
 * bf16 prefetch change on Qwen2.5-0.5B: 0.87x here, ~0.95x across processes), so confirm
 * a gain across processes before quoting it.
 */
#include <dlfcn.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

typedef struct attune_model attune_model;

typedef struct {
    const char *path;
    attune_model *(*open)(const char *, char *, size_t);
    int (*prefill_last)(attune_model *, const int32_t *, int64_t, float *);
    int (*decode_step)(attune_model *, int32_t, float *);
    void (*reset)(attune_model *);
    const char *(*error)(const attune_model *);
    int64_t (*vocab)(void);
    int64_t (*max_context)(void);
    attune_model *m;
} build;

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static void *symbol(void *lib, const char *path, const char *name) {
    void *p = dlsym(lib, name);
    if (!p) {
        fprintf(stderr, "error: %s has no %s: not an Attune model library\n", path, name);
        exit(1);
    }
    return p;
}

static void load(build *b, const char *so, const char *manifest) {
    void *lib = dlopen(so, RTLD_NOW | RTLD_LOCAL);
    if (!lib) {
        fprintf(stderr, "error: cannot load %s: %s\n", so, dlerror());
        exit(1);
    }
    b->path = so;
    b->open = (attune_model * (*)(const char *, char *, size_t)) symbol(lib, so, "attune_model_open");
    b->prefill_last = (int (*)(attune_model *, const int32_t *, int64_t, float *))symbol(lib, so, "attune_model_prefill_last");
    b->decode_step = (int (*)(attune_model *, int32_t, float *))symbol(lib, so, "attune_model_decode_step");
    b->reset = (void (*)(attune_model *))symbol(lib, so, "attune_model_reset");
    b->error = (const char *(*)(const attune_model *))symbol(lib, so, "attune_model_error");
    b->vocab = (int64_t(*)(void))symbol(lib, so, "attune_model_vocab");
    b->max_context = (int64_t(*)(void))symbol(lib, so, "attune_model_max_context");
    char error[512];
    b->m = b->open(manifest, error, sizeof error);
    if (!b->m) {
        fprintf(stderr, "error: %s: %s\n", manifest, error);
        exit(1);
    }
}

static long count(const char *arg, const char *what, long lo) {
    char *end;
    errno = 0;
    long v = strtol(arg, &end, 10);
    if (end == arg || *end || errno || v < lo) {
        fprintf(stderr, "error: %s must be a whole number >= %ld, got '%s'\n", what, lo, arg);
        exit(2);
    }
    return v;
}

/* Milliseconds per decode step of b after prefilling tokens[0, prompt). */
static double time_steps(build *b, const int32_t *tokens, long prompt, long steps, float *logits) {
    b->reset(b->m);
    if (b->prefill_last(b->m, tokens, prompt, logits)) {
        fprintf(stderr, "error: %s: prefill: %s\n", b->path, b->error(b->m));
        exit(1);
    }
    const double t0 = now();
    for (long s = 0; s < steps; s++)
        if (b->decode_step(b->m, tokens[(prompt + s) % prompt], logits)) {
            fprintf(stderr, "error: %s: decode: %s\n", b->path, b->error(b->m));
            exit(1);
        }
    return (now() - t0) * 1e3 / (double)steps;
}

static int ascending(const void *a, const void *b) {
    const double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, long n) {
    qsort(v, (size_t)n, sizeof *v, ascending);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

int main(int argc, char **argv) {
    if (argc != 8) {
        fprintf(stderr, "usage: %s A.so A.manifest B.so B.manifest ROUNDS PROMPT STEPS\n", argv[0]);
        return 2;
    }
    const long rounds = count(argv[5], "ROUNDS", 1), prompt = count(argv[6], "PROMPT", 1), steps = count(argv[7], "STEPS", 1);
    build b[2];
    load(&b[0], argv[1], argv[2]);
    load(&b[1], argv[3], argv[4]);
    if (b[0].vocab() != b[1].vocab() || prompt + steps > b[0].max_context() || prompt + steps > b[1].max_context()) {
        fprintf(stderr, "error: the builds must share a vocabulary and hold PROMPT + STEPS = %ld positions (contexts %lld, %lld)\n",
                prompt + steps, (long long)b[0].max_context(), (long long)b[1].max_context());
        return 2;
    }
    const int64_t vocab = b[0].vocab();
    int32_t *tokens = malloc(sizeof(int32_t) * (size_t)prompt);
    float *logits = malloc(sizeof(float) * (size_t)vocab);
    double *ta = malloc(sizeof(double) * (size_t)rounds), *tb = malloc(sizeof(double) * (size_t)rounds),
           *ratio = malloc(sizeof(double) * (size_t)rounds);
    if (!tokens || !logits || !ta || !tb || !ratio) {
        fprintf(stderr, "error: out of memory\n");
        return 1;
    }
    uint64_t x = 0x9e3779b97f4a7c15u; /* a fixed pseudo-random prompt: the same every run */
    for (long i = 0; i < prompt; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        tokens[i] = (int32_t)(x % (uint64_t)vocab);
    }
    printf("round  A ms/step  B ms/step  B/A\n");
    for (long r = 0; r < rounds; r++) {
        const int first = (int)(r % 2);
        double t[2];
        t[first] = time_steps(&b[first], tokens, prompt, steps, logits);
        t[1 - first] = time_steps(&b[1 - first], tokens, prompt, steps, logits);
        ta[r] = t[0], tb[r] = t[1], ratio[r] = t[1] / t[0];
        printf("%5ld  %9.2f  %9.2f  %.3f\n", r + 1, t[0], t[1], ratio[r]);
        fflush(stdout);
    }
    long below = 0;
    for (long r = 0; r < rounds; r++) below += ratio[r] < 1.0;
    const double ma = median(ta, rounds), mb = median(tb, rounds), mr = median(ratio, rounds);
    printf("medians: A %.2f ms, B %.2f ms a step; B/A per round %.3f (B faster in %ld of %ld rounds)\n", ma, mb, mr, below, rounds);
    return 0;
}
