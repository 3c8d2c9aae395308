/*
 * linear_bf16.c — matmuls over bf16 weights (contract and error bounds:
 * include/attune_linear_bf16.h).
 *
 * Decode reads every weight once per token, so its matmuls are bound by memory
 * bandwidth: the GEMV path streams the bf16 rows (half the bytes of f32) and widens
 * them in registers. 32 bf16 in a 512-bit register widen to two f32 vectors with one
 * instruction each: `<< 16` gives the even elements, `& 0xffff0000` the odd ones. The
 * activations are split once per call into the same even/odd order, so no shuffle runs
 * in the inner loop.
 *
 * Prefill is bound by multiply-adds: the GEMM path rounds the activations to bf16 and
 * uses `vdpbf16ps` (32 bf16 products per instruction, twice f32 FMA's rate), accumulating
 * in f32. Weights are packed per 32-column panel into the instruction's pair layout
 * (dword j of row k2 = weights (2k2, 2k2+1) of column j) while the panel stays in L2;
 * the micro-kernel keeps a MR x 32 tile of outputs in registers.
 *
 * Work is split over OpenMP threads by output columns, like attune_op_linear_blocks.
 * Without AVX-512 (BF16) the same math runs in plain loops: correct, slower.
 */
#include "attune_linear_bf16.h"
#include "attune_graph_ops.h"
#include "attune_scratch.h"
#include "attune_weights.h"
#include "bf16_scalar.h"
#include "gemv_split.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#ifdef _OPENMP
#include <omp.h>
#endif
#if defined(__AVX512F__) && defined(__AVX512BW__)
#include <immintrin.h>
#endif

#define INLINE static inline __attribute__((always_inline))

/* The decode GEMV prefetches this many bytes ahead of the weights it reads, into L2. With
 * 8 KiB instead of 2 (the distance chosen while these prefetches still went to L1) a decode
 * step took 0.79x the time on TinyLlama-1.1B's shapes, 0.85x on Gemma-2-2B's and about
 * 0.96x on Qwen2.5-0.5B's; 4 KiB was slower than 8, 12-16 KiB no faster (PERFORMANCE.md,
 * "bf16 decode: the prefetch distance"). */
#ifndef GEMV_PREFETCH
#define GEMV_PREFETCH 8192
#endif
/* Below this many multiply-adds a call runs on one thread: forking costs more. */
enum { PARALLEL_MIN_MACS = 1 << 20, PANEL = ATTUNE_BF16_PANEL, GEMM_MR = 8, GEMV_ROWS = 4 };

void attune_f32_to_bf16(const float *src, int64_t n, uint16_t *dst) {
    int64_t i = 0;
#if defined(__AVX512F__) && defined(__AVX512BW__)
    /* The integer form of bf16_from_f32, so every element rounds the same way (the
       hardware conversion would flush subnormals). */
    const __m512i bias = _mm512_set1_epi32(0x7fff), one = _mm512_set1_epi32(1), abs = _mm512_set1_epi32(0x7fffffff),
                  inf = _mm512_set1_epi32(0x7f800000), quiet = _mm512_set1_epi32(0x40);
    for (; i < n; i += 16) {
        const __mmask16 m = n - i >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (n - i)) - 1u);
        __m512i u = _mm512_maskz_loadu_epi32(m, src + i);
        __m512i r = _mm512_srli_epi32(_mm512_add_epi32(u, _mm512_add_epi32(bias, _mm512_and_si512(_mm512_srli_epi32(u, 16), one))), 16);
        __mmask16 nan = _mm512_cmpgt_epu32_mask(_mm512_and_si512(u, abs), inf);
        r = _mm512_mask_or_epi32(r, nan, _mm512_srli_epi32(u, 16), quiet);
        _mm256_mask_storeu_epi16(dst + i, m, _mm512_cvtepi32_epi16(r));
    }
#endif
    for (; i < n; i++) dst[i] = bf16_from_f32(src[i]);
}

enum { ROUND_BLOCK = 1 << 16, F16_STAGE = 1024 };

/* One block of attune_bf16_round; the first overflowing index in it, or -1. */
static int64_t round_block(const void *src, int32_t f16, int64_t n, uint16_t *dst) {
    if (f16) {
        /* Widened through a small f32 stage, so both dtypes round in one place. */
        float stage[F16_STAGE];
        for (int64_t i = 0; i < n; i += F16_STAGE) {
            const int64_t m = n - i < F16_STAGE ? n - i : F16_STAGE;
            const uint16_t *h = (const uint16_t *)src + i;
            int64_t j = 0;
#if defined(__AVX512F__) && defined(__AVX512BW__)
            for (; j + 16 <= m; j += 16) _mm512_storeu_ps(stage + j, _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(const void *)(h + j))));
#endif
            for (; j < m; j++) stage[j] = attune_f16_to_f32(h[j]);
            attune_f32_to_bf16(stage, m, dst + i);
        }
        return -1;   /* f16's largest value, 65504, is far inside bf16's range */
    }
    const float *f = src;
    attune_f32_to_bf16(f, n, dst);
    uint16_t any = 0;
    for (int64_t i = 0; i < n; i++) any |= (uint16_t)((dst[i] & 0x7fff) == 0x7f80);
    if (!any) return -1;
    for (int64_t i = 0; i < n; i++)
        if ((dst[i] & 0x7fff) == 0x7f80 && isfinite(f[i])) return i;
    return -1;
}

int64_t attune_bf16_round(const void *src, int32_t f16, int64_t n, uint16_t *dst) {
    const size_t size = f16 ? 2 : 4;
    const int64_t blocks = (n + ROUND_BLOCK - 1) / ROUND_BLOCK;
    int64_t bad = -1;
#ifdef _OPENMP
#pragma omp parallel for schedule(static) if (blocks > 1)
#endif
    for (int64_t b = 0; b < blocks; b++) {
        const int64_t first = b * ROUND_BLOCK, m = n - first < ROUND_BLOCK ? n - first : ROUND_BLOCK;
        const int64_t at = round_block((const char *)src + (size_t)first * size, f16, m, dst + first);
        if (at >= 0) {
#ifdef _OPENMP
#pragma omp critical(attune_bf16_round_bad)
#endif
            if (bad < 0 || first + at < bad) bad = first + at;
        }
    }
    return bad;
}

int64_t attune_op_embedding_bf16(const uint16_t *table, int64_t vocab, int64_t width,
                                 const int32_t *ids, int64_t rows, float *out) {
    for (int64_t r = 0; r < rows; r++)
        if (ids[r] < 0 || ids[r] >= vocab) return r;
    for (int64_t r = 0; r < rows; r++) {
        const uint16_t *src = table + (int64_t)ids[r] * width;
        for (int64_t i = 0; i < width; i++) out[r * width + i] = bf16_to_f32(src[i]);
    }
    return -1;
}

/* The thread's share of output columns [c0, c1): whole panels, as even as possible. */
static void thread_columns(int64_t out, int64_t *c0, int64_t *c1) {
    int64_t t = 0, nt = 1;
#ifdef _OPENMP
    t = omp_get_thread_num();
    nt = omp_get_num_threads();
#endif
    int64_t per = (out + nt - 1) / nt;
    per = (per + PANEL - 1) / PANEL * PANEL;
    *c0 = t * per < out ? t * per : out;
    *c1 = *c0 + per < out ? *c0 + per : out;
}

/* ---------------------------------------------------------------- GEMV (f32 activations) */

/* Row x[in] in the split order of the weights' widening: per 32-element block, the 16
 * even elements then the 16 odd ones; zeros past `in`. */
static void split_row(const float *x, int64_t in, float *xs) {
    const int64_t blocks = (in + 31) / 32;
    for (int64_t b = 0; b < blocks; b++)
        for (int j = 0; j < 16; j++) {
            const int64_t e = 32 * b + 2 * j;
            xs[32 * b + j] = e < in ? x[e] : 0.0f;
            xs[32 * b + 16 + j] = e + 1 < in ? x[e + 1] : 0.0f;
        }
}

#if defined(__AVX512F__) && defined(__AVX512BW__)
/* Accumulates 32-element block b of one weight row against NR split rows into acc[r][0..1]. */
INLINE void gemv_block(const float *xs, int64_t xstride, const uint16_t *w, int64_t b, __mmask32 m, __m512 acc[][4],
                       const int half, const int NR) {
    const __m512i v = _mm512_maskz_loadu_epi16(m, w + 32 * b);
    const __m512 even = _mm512_castsi512_ps(_mm512_slli_epi32(v, 16));
    const __m512 odd = _mm512_castsi512_ps(_mm512_and_si512(v, _mm512_set1_epi32((int)0xffff0000u)));
    for (int r = 0; r < NR; r++) {
        acc[r][2 * half] = _mm512_fmadd_ps(even, _mm512_loadu_ps(xs + r * xstride + 32 * b), acc[r][2 * half]);
        acc[r][2 * half + 1] = _mm512_fmadd_ps(odd, _mm512_loadu_ps(xs + r * xstride + 32 * b + 16), acc[r][2 * half + 1]);
    }
}

/* y[r * ys] = row r of x · one weight row, for NR rows. The row is read front to back
 * (one sequential stream per thread: the hardware prefetcher follows it, and a software
 * prefetch GEMV_PREFETCH bytes ahead keeps more lines in flight), blocks alternating
 * between two pairs of accumulators so two FMA chains overlap. Every NR sums in the same
 * order, so a row's result does not depend on how many rows run with it. */
INLINE void gemv_row(const float *xs, int64_t xstride, const uint16_t *w, int64_t in, float *y, int64_t ys, const int NR) {
    __m512 acc[GEMV_ROWS][4];
    for (int r = 0; r < NR; r++) acc[r][0] = acc[r][1] = acc[r][2] = acc[r][3] = _mm512_setzero_ps();
    const int64_t full = in / 32, tail = in % 32;
    int64_t b = 0;
    for (; b + 2 <= full; b += 2) {
        _mm_prefetch((const char *)(w + 32 * b) + GEMV_PREFETCH, _MM_HINT_T1);
        _mm_prefetch((const char *)(w + 32 * b) + GEMV_PREFETCH + 64, _MM_HINT_T1);
        gemv_block(xs, xstride, w, b, (__mmask32)0xffffffffu, acc, 0, NR);
        gemv_block(xs, xstride, w, b + 1, (__mmask32)0xffffffffu, acc, 1, NR);
    }
    if (b < full) gemv_block(xs, xstride, w, b++, (__mmask32)0xffffffffu, acc, 0, NR);
    if (tail) gemv_block(xs, xstride, w, b, (__mmask32)((1u << tail) - 1u), acc, (int)(full % 2), NR);
    for (int r = 0; r < NR; r++)
        y[r * ys] = _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(acc[r][0], acc[r][1]), _mm512_add_ps(acc[r][2], acc[r][3])));
}
#else
INLINE void gemv_row(const float *xs, int64_t xstride, const uint16_t *w, int64_t in, float *y, int64_t ys, const int NR) {
    for (int r = 0; r < NR; r++) {
        float s = 0.0f;
        for (int64_t b = 0; 32 * b < in; b++)
            for (int j = 0; j < 32 && 32 * b + j < in; j++)
                s += bf16_to_f32(w[32 * b + j]) * xs[r * xstride + 32 * b + (j % 2 ? 16 : 0) + j / 2];
        y[r * ys] = s;
    }
}
#endif

/* NR (1..GEMV_ROWS) split rows against weight rows [0, n) of w; y row stride ys. */
static void gemv_rows(const float *xs, int64_t xstride, int NR, const uint16_t *w, int64_t in, int64_t n, float *y, int64_t ys) {
#define ROWS(R) for (int64_t c = 0; c < n; c++) gemv_row(xs, xstride, w + c * in, in, y + c, ys, R);
    switch (NR) {
    case 1: ROWS(1) break;
    case 2: ROWS(2) break;
    case 3: ROWS(3) break;
    default: ROWS(4) break;
    }
#undef ROWS
}

/* ---------------------------------------------------------------- GEMM (bf16 activations) */

/* Columns [0, n) (n <= PANEL) of w [*, in] as K2 = ceil(in / 2) rows of PANEL dwords, each
 * the pair (w[j][2k], w[j][2k + 1]); zeros past `in` and past n. */
static void pack_panel(const uint16_t *w, int64_t in, int64_t n, uint32_t *panel) {
    const int64_t k2n = (in + 1) / 2;
    for (int64_t j = 0; j < PANEL; j++) {
        const uint16_t *row = w + j * in;
        if (j >= n) {
            for (int64_t k2 = 0; k2 < k2n; k2++) panel[k2 * PANEL + j] = 0;
            continue;
        }
        for (int64_t k2 = 0; k2 < in / 2; k2++) {
            uint32_t pair;
            memcpy(&pair, row + 2 * k2, 4);
            panel[k2 * PANEL + j] = pair;
        }
        if (in % 2) panel[(k2n - 1) * PANEL + j] = row[in - 1];
    }
}

#if defined(__AVX512BF16__)
/* MR rows of xb (bf16 pairs, k2n dwords per row, rows xs dwords apart) times a packed
 * panel: y[r * ys + j] for j < n (+ bias[j]). */
INLINE void gemm_tile(const uint32_t *xb, int64_t xs, int64_t k2n, const uint32_t *panel, const float *bias, int64_t n,
                      float *y, int64_t ys, const int MR) {
    __m512 acc[GEMM_MR][2];
    for (int r = 0; r < MR; r++) acc[r][0] = acc[r][1] = _mm512_setzero_ps();
    for (int64_t k = 0; k < k2n; k++) {
        const __m512bh b0 = (__m512bh)_mm512_loadu_si512(panel + k * PANEL);
        const __m512bh b1 = (__m512bh)_mm512_loadu_si512(panel + k * PANEL + 16);
        for (int r = 0; r < MR; r++) {
            const __m512bh a = (__m512bh)_mm512_set1_epi32((int)xb[r * xs + k]);
            acc[r][0] = _mm512_dpbf16_ps(acc[r][0], a, b0);
            acc[r][1] = _mm512_dpbf16_ps(acc[r][1], a, b1);
        }
    }
    const __mmask16 m0 = n >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << n) - 1u);
    const __mmask16 m1 = n >= 32 ? (__mmask16)0xffff : n <= 16 ? 0 : (__mmask16)((1u << (n - 16)) - 1u);
    const __m512 bias0 = bias ? _mm512_maskz_loadu_ps(m0, bias) : _mm512_setzero_ps();
    const __m512 bias1 = bias ? _mm512_maskz_loadu_ps(m1, bias + 16) : _mm512_setzero_ps();
    for (int r = 0; r < MR; r++) {
        _mm512_mask_storeu_ps(y + r * ys, m0, _mm512_add_ps(acc[r][0], bias0));
        _mm512_mask_storeu_ps(y + r * ys + 16, m1, _mm512_add_ps(acc[r][1], bias1));
    }
}
#else
INLINE void gemm_tile(const uint32_t *xb, int64_t xs, int64_t k2n, const uint32_t *panel, const float *bias, int64_t n,
                      float *y, int64_t ys, const int MR) {
    for (int r = 0; r < MR; r++)
        for (int64_t j = 0; j < n; j++) {
            float s = 0.0f;
            for (int64_t k = 0; k < k2n; k++) {
                const uint32_t a = xb[r * xs + k], b = panel[k * PANEL + j];
                s += bf16_to_f32((uint16_t)a) * bf16_to_f32((uint16_t)b) + bf16_to_f32((uint16_t)(a >> 16)) * bf16_to_f32((uint16_t)(b >> 16));
            }
            y[r * ys + j] = s + (bias ? bias[j] : 0.0f);
        }
}
#endif

void attune_bf16_gemm_panel(const uint32_t *xb, int64_t xs, int64_t rows, int64_t k2n, const uint32_t *panel,
                            const float *bias, int64_t n, float *y, int64_t ys) {
    int64_t r = 0;
    for (; r + GEMM_MR <= rows; r += GEMM_MR) gemm_tile(xb + r * xs, xs, k2n, panel, bias, n, y + r * ys, ys, GEMM_MR);
    switch (rows - r) {
    case 7: gemm_tile(xb + r * xs, xs, k2n, panel, bias, n, y + r * ys, ys, 7); break;
    case 6: gemm_tile(xb + r * xs, xs, k2n, panel, bias, n, y + r * ys, ys, 6); break;
    case 5: gemm_tile(xb + r * xs, xs, k2n, panel, bias, n, y + r * ys, ys, 5); break;
    case 4: gemm_tile(xb + r * xs, xs, k2n, panel, bias, n, y + r * ys, ys, 4); break;
    case 3: gemm_tile(xb + r * xs, xs, k2n, panel, bias, n, y + r * ys, ys, 3); break;
    case 2: gemm_tile(xb + r * xs, xs, k2n, panel, bias, n, y + r * ys, ys, 2); break;
    case 1: gemm_tile(xb + r * xs, xs, k2n, panel, bias, n, y + r * ys, ys, 1); break;
    default: break;
    }
}

/* ---------------------------------------------------------------- dispatch */

/* Calls f(w rows, count, first output column) for the parts of each block inside [c0, c1). */
#define FOR_BLOCK_PARTS(c0, c1, ...)                                                              \
    do {                                                                                           \
        int64_t start_ = 0;                                                                        \
        for (int64_t b_ = 0; b_ < blocks; start_ += block_rows[b_], b_++) {                        \
            const int64_t lo = (c0) > start_ ? (c0) : start_;                                      \
            const int64_t hi = (c1) < start_ + block_rows[b_] ? (c1) : start_ + block_rows[b_];    \
            if (lo >= hi) continue;                                                                \
            const uint16_t *wp = w[b_] + (lo - start_) * in;                                       \
            __VA_ARGS__                                                                            \
        }                                                                                          \
    } while (0)

static void linear_gemv(const float *x, int64_t rows, int64_t in, const uint16_t *const *w, const int64_t *block_rows,
                        int64_t blocks, int64_t out, const float *bias, float *y) {
    const int64_t stride = (in + 31) / 32 * 32;
    float stack[4096];
    float *xs = rows * stride <= 4096 ? stack : malloc(sizeof(float) * (size_t)(rows * stride));
    if (!xs) abort();   /* a few KiB per activation row; the model's arena is far larger */
    for (int64_t r = 0; r < rows; r++) split_row(x + r * in, in, xs + r * stride);
    const int parallel = rows * in * out >= PARALLEL_MIN_MACS;
    gemv_split split;
    int nt = 1;
#ifdef _OPENMP
    nt = parallel ? omp_get_max_threads() : 1;
#endif
    gemv_split_init(&split, out, 2 * in, nt, 1);
#ifdef _OPENMP
#pragma omp parallel num_threads(nt) if (parallel)
#endif
    {
        int t = 0;
#ifdef _OPENMP
        t = omp_get_thread_num();
#endif
        int64_t c0, c1;
        while (gemv_split_claim(&split, t, &c0, &c1)) {
            FOR_BLOCK_PARTS(c0, c1, {
                for (int64_t r = 0; r < rows; r += GEMV_ROWS) {
                    const int nr = rows - r < GEMV_ROWS ? (int)(rows - r) : GEMV_ROWS;
                    gemv_rows(xs + r * stride, stride, nr, wp, in, hi - lo, y + r * out + lo, out);
                }
            });
            if (bias)
                for (int64_t r = 0; r < rows; r++)
                    for (int64_t c = c0; c < c1; c++) y[r * out + c] += bias[c];
        }
    }
    if (xs != stack) free(xs);
}

/* Activation rows as bf16 pairs (row r: k2n dwords), the GEMM's left operand. */
static uint32_t *activation_pairs(const float *x, int64_t rows, int64_t in, int64_t k2n) {
    uint32_t *xb = attune_scratch_alloc(sizeof(uint32_t) * (size_t)(rows * k2n));
    if (!xb) abort();
    for (int64_t r = 0; r < rows; r++) {
        uint16_t *row = (uint16_t *)(void *)(xb + r * k2n);
        attune_f32_to_bf16(x + r * in, in, row);
        if (in % 2) row[in] = 0;
    }
    return xb;
}

static void linear_gemm(const float *x, int64_t rows, int64_t in, const uint16_t *const *w, const int64_t *block_rows,
                        int64_t blocks, int64_t out, const float *bias, float *y) {
    const int64_t k2n = (in + 1) / 2;
    uint32_t *xb = activation_pairs(x, rows, in, k2n);
#ifdef _OPENMP
#pragma omp parallel if (rows * in * out >= PARALLEL_MIN_MACS)
#endif
    {
        int64_t c0, c1;
        thread_columns(out, &c0, &c1);
        uint32_t *panel = c0 < c1 ? malloc(sizeof(uint32_t) * (size_t)(k2n * PANEL)) : NULL;
        if (c0 < c1 && !panel) abort();
        FOR_BLOCK_PARTS(c0, c1, {
            for (int64_t c = lo; c < hi; c += PANEL) {
                const int64_t n = hi - c < PANEL ? hi - c : PANEL;
                pack_panel(wp + (c - lo) * in, in, n, panel);
                attune_bf16_gemm_panel(xb, k2n, rows, k2n, panel, bias ? bias + c : NULL, n, y + c, out);
            }
        });
        free(panel);
    }
    attune_scratch_free(xb);
}

/* y [rows, inter] = act(x gateᵀ) ⊙ x upᵀ, panel by panel: each gate panel and its up
 * panel go to two thread-local tiles (what linear_gemm writes to y for them) whose
 * product is written, so the [rows, 2 × inter] result never exists. */
static void gated_gemm(const float *x, int64_t rows, int64_t in, const uint16_t *gate_w, const uint16_t *up_w, int64_t inter,
                       int32_t gelu, float *y) {
    const int64_t k2n = (in + 1) / 2;
    uint32_t *xb = activation_pairs(x, rows, in, k2n);
#ifdef _OPENMP
#pragma omp parallel if (rows * in * 2 * inter >= PARALLEL_MIN_MACS)
#endif
    {
        int64_t c0, c1;
        thread_columns(inter, &c0, &c1);
        uint32_t *panel = c0 < c1 ? malloc(sizeof(uint32_t) * (size_t)(k2n * PANEL)) : NULL;
        float *gate = c0 < c1 ? malloc(sizeof(float) * (size_t)(2 * rows * PANEL)) : NULL, *up = gate + rows * PANEL;
        if (c0 < c1 && (!panel || !gate)) abort();
        for (int64_t c = c0; c < c1; c += PANEL) {
            const int64_t n = c1 - c < PANEL ? c1 - c : PANEL;
            pack_panel(gate_w + c * in, in, n, panel);
            attune_bf16_gemm_panel(xb, k2n, rows, k2n, panel, NULL, n, gate, PANEL);
            pack_panel(up_w + c * in, in, n, panel);
            attune_bf16_gemm_panel(xb, k2n, rows, k2n, panel, NULL, n, up, PANEL);
            for (int64_t r = 0; r < rows; r++) attune_gated_product(gate + r * PANEL, up + r * PANEL, n, gelu, y + r * inter + c);
        }
        free(panel);
        free(gate);
    }
    attune_scratch_free(xb);
}

void attune_op_linear_bf16_blocks(const float *x, int64_t rows, int64_t in, const uint16_t *const *w,
                                  const int64_t *block_rows, int64_t blocks, const float *bias, float *y) {
    if (rows <= 0) return;
    int64_t out = 0;
    for (int64_t b = 0; b < blocks; b++) out += block_rows[b];
    if (rows < ATTUNE_BF16_GEMM_MIN_ROWS) linear_gemv(x, rows, in, w, block_rows, blocks, out, bias, y);
    else linear_gemm(x, rows, in, w, block_rows, blocks, out, bias, y);
}

void attune_op_linear_bf16_gated(const float *x, int64_t rows, int64_t in, const uint16_t *w_gate, const uint16_t *w_up,
                                 int64_t inter, int32_t gelu, float *y) {
    if (rows <= 0) return;
    if (rows >= ATTUNE_BF16_GEMM_MIN_ROWS) {
        gated_gemm(x, rows, in, w_gate, w_up, inter, gelu ? 1 : 0, y);
        return;
    }
    /* Decode: [gate | up] for a few rows, then their product. */
    const uint16_t *const w[2] = {w_gate, w_up};
    const int64_t block_rows[2] = {inter, inter};
    float *gu = malloc(sizeof(float) * (size_t)(rows * 2 * inter));
    if (!gu) abort();   /* a few rows of the MLP's width; the model's arena is far larger */
    linear_gemv(x, rows, in, w, block_rows, 2, 2 * inter, NULL, gu);
    (gelu ? attune_op_geglu_epilogue : attune_op_swiglu_epilogue)(gu, rows, inter, y);
    free(gu);
}

void attune_linear_bf16_gemv(const float *x, int64_t rows, int64_t in, const uint16_t *w, int64_t out, float *y) {
    if (rows > 0) linear_gemv(x, rows, in, &w, &out, 1, out, NULL, y);
}

void attune_linear_bf16_gemm(const float *x, int64_t rows, int64_t in, const uint16_t *w, int64_t out, float *y) {
    if (rows > 0) linear_gemm(x, rows, in, &w, &out, 1, out, NULL, y);
}
