/*
 * gemv_ab.c — two builds of Kernels/linear_q8.c (old_ and new_ symbol prefixes, made by
 * Bench/gemv_ab.sh) on one model's decode GEMV shapes, q4 and int8, one activation row,
 * in one process: GB/s of weight bytes against the CLI's streaming read
 * (attune_bench_read_gbps: 256 MiB, two threads) measured in the same rounds, and whether
 * old and new wrote the same bits. Used for
 * Docs/PERFORMANCE.md, "q4 decode on Gemma-2-2B's shapes".
 *
 *   gemv_ab ROUNDS gemma2-2b|qwen2.5-0.5b [hot]
 *
 * Each timing is one call on each of as many weight copies as make 256 MiB of q4 (the
 * caches hold none of them when it is read again), two threads; the four variants
 * rotate their order every round and medians are printed. `hot` instead times 400 calls
 * on 256 rows (128 per gated half) on one thread: rows that stay in L2, so the figure is
 * the kernel's compute rate, not the memory's.
 */
#include "attune_bench.h"

#include <omp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#define ENTRY_POINTS(p)                                                                                            \
    int64_t p##_attune_q4_row_bytes(int64_t, int64_t, int32_t);                                                    \
    int64_t p##_attune_q8_row_bytes(int64_t, int64_t, int32_t);                                                    \
    int64_t p##_attune_q4_quantize_f32(const float *, int64_t, int64_t, int64_t, int32_t, void *);                 \
    int64_t p##_attune_q8_quantize_f32(const float *, int64_t, int64_t, int64_t, int32_t, void *);                 \
    int32_t p##_attune_q4_linear(const float *, int64_t, int64_t, const void *, int64_t, int64_t, int32_t,         \
                                 const float *, float *, int32_t);                                                 \
    int32_t p##_attune_q8_linear(const float *, int64_t, int64_t, const void *, int64_t, int64_t, int32_t,         \
                                 const float *, float *, int32_t);                                                 \
    int32_t p##_attune_q4_linear_gated(const float *, int64_t, int64_t, const void *, const void *, int64_t,       \
                                       int64_t, int32_t, int32_t, float *, int32_t);                               \
    int32_t p##_attune_q8_linear_gated(const float *, int64_t, int64_t, const void *, const void *, int64_t,       \
                                       int64_t, int32_t, int32_t, float *, int32_t);
ENTRY_POINTS(old)
ENTRY_POINTS(new)

enum { GROUP = 32, SCALE_F16 = 1, MAX_ROUNDS = 64, HOT_CALLS = 400 };

typedef struct {
    const char *name;
    int64_t in, out; /* out: rows of each half when gated */
    int gated;
} shape;

/* A model's decode matmuls: fused q/k/v, o, gate+up (GeGLU or SwiGLU), down, the vocabulary. */
static const shape gemma[] = {{"qkv", 2304, 4096, 0}, {"o", 2048, 2304, 0}, {"gate_up", 2304, 9216, 1},
                              {"down", 9216, 2304, 0}, {"lm_head", 2304, 256000, 0}};
static const shape qwen[] = {{"qkv", 896, 1152, 0}, {"o", 896, 896, 0}, {"gate_up", 896, 4864, 1},
                             {"down", 4864, 896, 0}, {"lm_head", 896, 151936, 0}};

/* One variant: a build (old, new) and a width (q4, int8). */
typedef struct {
    const char *name;
    int q4, is_new;
} variant;
static const variant variants[4] = {{"old q4", 1, 0}, {"new q4", 1, 1}, {"old q8", 0, 0}, {"new q8", 0, 1}};

/* Zeroed memory on 2 MiB pages, as the runtime maps weights. */
static void *huge(size_t n) {
    const size_t a = 2u << 20;
    n = (n + a - 1) / a * a;
    void *p = aligned_alloc(a, n);
    if (!p) { fprintf(stderr, "out of memory (%zu bytes)\n", n); exit(1); }
    madvise(p, n, MADV_HUGEPAGE);
    memset(p, 0, n);
    return p;
}

static uint64_t rng = 88172645463325252ull;
static float uniform(void) { /* in [-1, 1) */
    rng ^= rng << 13; rng ^= rng >> 7; rng ^= rng << 17;
    return (float)((double)(rng >> 11) * 0x1p-53) * 2 - 1;
}

static int by_value(const void *a, const void *b) {
    const double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}
static double median(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, by_value);
    return v[n / 2];
}

static void call(const variant *v, const shape *s, const float *x, const uint8_t *w, int64_t half_bytes, float *y,
                 int threads) {
    if (s->gated) {
        if (v->q4) (v->is_new ? new_attune_q4_linear_gated : old_attune_q4_linear_gated)(x, 1, s->in, w, w + half_bytes, s->out, GROUP, SCALE_F16, 1, y, threads);
        else (v->is_new ? new_attune_q8_linear_gated : old_attune_q8_linear_gated)(x, 1, s->in, w, w + half_bytes, s->out, GROUP, SCALE_F16, 1, y, threads);
    } else if (v->q4) (v->is_new ? new_attune_q4_linear : old_attune_q4_linear)(x, 1, s->in, w, s->out, GROUP, SCALE_F16, NULL, y, threads);
    else (v->is_new ? new_attune_q8_linear : old_attune_q8_linear)(x, 1, s->in, w, s->out, GROUP, SCALE_F16, NULL, y, threads);
}

int main(int argc, char **argv) {
    const int rounds = argc > 1 ? atoi(argv[1]) : 0, hot = argc > 3 && !strcmp(argv[3], "hot");
    const shape *shapes = argc > 2 && !strcmp(argv[2], "gemma2-2b") ? gemma : argc > 2 && !strcmp(argv[2], "qwen2.5-0.5b") ? qwen : NULL;
    if (rounds < 1 || rounds > MAX_ROUNDS || !shapes) {
        fprintf(stderr, "usage: gemv_ab ROUNDS(1-%d) gemma2-2b|qwen2.5-0.5b [hot]\n", MAX_ROUNDS);
        return 1;
    }
    const int threads = hot ? 1 : 2;
    const size_t probe_bytes = 256u << 20;
    for (int si = 0; si < 5; si++) {
        shape s = shapes[si];
        if (hot) s.out = s.gated ? 128 : 256;
        const int64_t rows = s.gated ? 2 * s.out : s.out;
        const int64_t row_bytes[2] = {old_attune_q8_row_bytes(s.in, GROUP, SCALE_F16), old_attune_q4_row_bytes(s.in, GROUP, SCALE_F16)};
        const int64_t bytes[2] = {rows * row_bytes[0], rows * row_bytes[1]}; /* [q4]: one copy of the weight */
        const int copies = hot ? 1 : (int)((256ll << 20) / bytes[1]) + 1, calls = hot ? HOT_CALLS : copies;
        uint8_t *w[2];
        for (int q4 = 0; q4 < 2; q4++) w[q4] = huge((size_t)(bytes[q4] * copies));
        const int64_t chunk = 4096;
        float *f = malloc(sizeof(float) * (size_t)(chunk * s.in));
        for (int64_t r0 = 0; r0 < rows; r0 += chunk) {
            const int64_t n = rows - r0 < chunk ? rows - r0 : chunk;
            for (int64_t i = 0; i < n * s.in; i++) f[i] = 0.02f * uniform();
            if (new_attune_q8_quantize_f32(f, n, s.in, GROUP, SCALE_F16, w[0] + r0 * row_bytes[0]) != -1 ||
                new_attune_q4_quantize_f32(f, n, s.in, GROUP, SCALE_F16, w[1] + r0 * row_bytes[1]) != -1) {
                fprintf(stderr, "quantisation failed\n");
                return 1;
            }
        }
        free(f);
        for (int q4 = 0; q4 < 2; q4++)
            for (int c = 1; c < copies; c++) memcpy(w[q4] + c * bytes[q4], w[q4], (size_t)bytes[q4]);
        float *x = malloc(sizeof(float) * (size_t)s.in), *y[4];
        for (int64_t i = 0; i < s.in; i++) x[i] = uniform() * (i % 97 ? 1.0f : 8.0f); /* a few outliers per run set */
        for (int v = 0; v < 4; v++) y[v] = calloc((size_t)s.out, sizeof(float));
        double gbs[4][MAX_ROUNDS], probe_gbs[MAX_ROUNDS], ratio[2][MAX_ROUNDS];
        for (int round = -1; round < rounds; round++) { /* round -1 warms up */
            for (int j = 0; j < 4; j++) {
                const int vi = (j + (round < 0 ? 0 : round)) % 4;
                const variant *v = &variants[vi];
                const double t0 = omp_get_wtime();
                for (int c = 0; c < calls; c++) call(v, &s, x, w[v->q4] + (hot ? 0 : c) * bytes[v->q4], s.out * row_bytes[v->q4], y[vi], threads);
                if (round >= 0) gbs[vi][round] = (double)bytes[v->q4] * calls / (omp_get_wtime() - t0) / 1e9;
            }
            if (round >= 0) {
                probe_gbs[round] = attune_bench_read_gbps(probe_bytes, 2, 1);   /* the CLI's probe */
                ratio[0][round] = gbs[1][round] / gbs[0][round];
                ratio[1][round] = gbs[3][round] / gbs[2][round];
            }
        }
        const double p = median(probe_gbs, rounds);
        printf("%-8s %5lld -> %-6lld %6.1f MB q4 x%-3d probe %5.1f GB/s |", s.name, (long long)s.in, (long long)rows,
               bytes[1] / 1e6, copies, p);
        for (int v = 0; v < 4; v++) {
            const double g = median(gbs[v], rounds);
            printf(" %s %5.1f (%3.0f %%)", variants[v].name, g, 100 * g / p);
        }
        printf(" | new/old q4 %.3f q8 %.3f | same bits q4 %s q8 %s\n", median(ratio[0], rounds), median(ratio[1], rounds),
               memcmp(y[0], y[1], sizeof(float) * (size_t)s.out) ? "NO" : "yes",
               memcmp(y[2], y[3], sizeof(float) * (size_t)s.out) ? "NO" : "yes");
        fflush(stdout);
        for (int q4 = 0; q4 < 2; q4++) free(w[q4]);
        free(x);
        for (int v = 0; v < 4; v++) free(y[v]);
    }
    return 0;
}
