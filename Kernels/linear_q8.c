/*
 * linear_q8.c — linear layers with int8 or 4-bit weights: the stored formats (layout
 * and rounding rules in include/attune_linear_q8.h and attune_linear_q4.h; a q4
 * superblock is the int8 one with vectors 2u and 2u+1 packed into the low and high
 * nibbles of one), quantisation, and the two kernels: an AVX512-VNNI GEMV for decode
 * and, for prefill, the bf16 GEMM's panel step (linear_bf16.c) over panels
 * dequantised to bf16 (dequantised f32 tiles + SGEMM without AVX512-BF16). Every
 * static function takes the code width `bits` (8 or 4); the two differ only where
 * codes are stored and read (put_code, code_at, unsigned_codes, superblock's loop over
 * the code vectors). Measurements behind the choices: Docs/PERFORMANCE.md.
 */
#include "attune_linear_q8.h"
#include "attune_linear_q4.h"
#include "attention_internal.h"
#include "attune_linear_bf16.h"
#include "attune_graph_ops.h"
#include "gemv_split.h"

#include <cblas.h>
#include <math.h>
#include <string.h>

#ifdef _OPENMP
#include <omp.h>
#endif

#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VNNI__)
#include <immintrin.h>
#define Q8_VNNI 1
#endif

/* RUN: weights per 32-bit lane of the layout (and activation quantisation run);
 * SB: weights per superblock = 16 lanes × RUN. */
enum { RUN = 32, SB = 512, LANES = 16, VECS = RUN / 4 };

/* Below this many weight bytes a call stays on one thread: forking costs more. */
#ifndef PARALLEL_MIN_BYTES
#define PARALLEL_MIN_BYTES (1 << 16)
#endif

/* The decode GEMV prefetches rows this many bytes ahead of the ones it reads, into L2
 * (prefetcht1): L1 prefetches (prefetcht0) measured 1.3-1.7x slower on every Qwen2.5-0.5B
 * shape, as they evict lines before use; 8 KiB beat 4 KiB on gate/up and the vocabulary
 * (Docs/PERFORMANCE.md, "Decode: where a token's time goes"). */
#ifndef PREFETCH
#define PREFETCH 8192
#endif

/* Four rows of up to this many bytes are prefetched in one burst (dot_rows4), longer ones
 * superblock by superblock four rows ahead. A longer burst stalls the stream: four
 * 2304-wide q4 rows are 81 prefetches in a row (5184 bytes), and Gemma-2-2B's q4 GEMVs ran
 * 1.15-1.22x faster spread; four rows of more than 4 KiB also put the spread prefetch far
 * enough ahead, while shorter ones (896 wide) measured slower spread (Docs/PERFORMANCE.md,
 * "q4 decode on Gemma-2-2B's shapes"). */
#ifndef BURST_MAX
#define BURST_MAX 4096
#endif

/* Prefill dequantises this many bytes of f32 weight rows per tile (an L2-sized share). */
enum { TILE_BYTES = 512 << 10, TILE_ROW_ALIGN = 16 };

/* The largest code magnitude of a format: int8 codes are -127..127, q4 codes -7..7. */
static int qmax_of(int bits) { return bits == 4 ? 7 : 127; }

static const char *check(int64_t in, int64_t group, int32_t scale, int bits) {
#define REASON(text) (bits == 4 ? "q4 weights: " text : "int8 weights: " text)
    if (scale != ATTUNE_Q8_SCALE_F32 && scale != ATTUNE_Q8_SCALE_F16) return REASON("the scale type must be f32 or f16");
    if (in <= 0 || in % RUN) return REASON("the input width must be a positive multiple of 32");
    if (group <= 0 || group % RUN || in % group)
        return REASON("the group size must be a multiple of 32 that divides the input width");
    if (group != in && SB % group && group % SB)
        return REASON("the group size must divide 512, be a multiple of 512 or equal the input width");
    return NULL;
#undef REASON
}

static int64_t scale_bytes(int32_t scale) { return scale == ATTUNE_Q8_SCALE_F16 ? 2 : 4; }

static int64_t row_bytes_of(int64_t in, int64_t group, int32_t scale, int bits) {
    if (check(in, group, scale, bits)) return -1;
    return in * bits / 8 + in / group * scale_bytes(scale);
}

/* Bytes of a superblock's codes: `lanes` runs of 32 weights, bits/8 bytes each. */
static int64_t code_bytes(int lanes, int bits) { return (int64_t)lanes * RUN * bits / 8; }

/* Lanes (runs of 32) of the superblock starting at weight s0. */
static int sb_lanes(int64_t in, int64_t s0) { return in - s0 >= SB ? LANES : (int)((in - s0) / RUN); }

/* Scales stored in the superblock starting at s0: the groups that start in it. */
static int sb_scales(int64_t group, int64_t s0, int lanes) {
    return group <= SB ? lanes * RUN / (int)group : (s0 % group == 0);
}

/* Byte offset, inside a superblock's quants, of its weight j (0 ≤ j < lanes·32). */
static int64_t stored_offset(int64_t j, int lanes) {
    int64_t lane = j / RUN, k = j % RUN;
    return k / 4 * 4 * lanes + lane * 4 + k % 4;
}

/* The signed code stored for the weight at int8 offset `at` (stored_offset) of a
 * superblock's codes: int8 keeps it in that byte; q4 keeps vector v's byte in the
 * low (v even) or high (v odd) nibble of vector v/2's, as q + 8. */
static int code_at(const uint8_t *p, int64_t at, int lanes, int bits) {
    if (bits == 8) return (int8_t)p[at];
    const int64_t vb = 4 * lanes, v = at / vb;
    return ((p[v / 2 * vb + at % vb] >> (4 * (v & 1))) & 15) - 8;
}

/* Stores code q at int8 offset `at` (q4: into a zeroed superblock). */
static void put_code(uint8_t *p, int64_t at, int lanes, int bits, int q) {
    if (bits == 8) {
        p[at] = (uint8_t)q;
        return;
    }
    const int64_t vb = 4 * lanes, v = at / vb;
    p[v / 2 * vb + at % vb] |= (uint8_t)((q + 8) << (4 * (v & 1)));
}

static float load_scale(const uint8_t *p, int32_t scale) {
    if (scale == ATTUNE_Q8_SCALE_F16) {
        _Float16 h;
        memcpy(&h, p, sizeof h);
        return (float)h;
    }
    float s;
    memcpy(&s, p, sizeof s);
    return s;
}

/* The scale of a run with largest magnitude amax, as stored: max|w| / qmax (127 or 7)
 * rounded to the stored precision and nudged up one unit when rounding went down so
 * far that |w| / s could reach qmax + 1/2 (q would then leave [-qmax, qmax]). Returns 0
 * when it does not fit (f16 overflow). */
static int make_scale(float amax, int qmax, int32_t scale, float *used) {
    const float top = (float)qmax + 0.5f;
    float s = amax / (float)qmax;
    if (scale == ATTUNE_Q8_SCALE_F16) {
        if (!(s <= 65504.0f)) return 0;
        _Float16 h = (_Float16)s;
        if ((float)h * top < amax) {
            uint16_t bits;
            memcpy(&bits, &h, sizeof bits);
            bits++;
            memcpy(&h, &bits, sizeof h);
        }
        if (!((float)h <= 65504.0f)) return 0;
        *used = (float)h;
    } else {
        if (s * top < amax) s = nextafterf(s, INFINITY);
        *used = s;
    }
    return 1;
}

static int8_t quantize_one(float w, float s, int qmax) {
    if (s == 0.0f) return 0;
    float q = rintf(w / s), top = (float)qmax;
    return (int8_t)(q > top ? top : q < -top ? -top : q);
}

/* One row of `in` f32 weights into its stored bytes; 0 when it cannot be stored. */
static int quantize_row(const float *w, int64_t in, int64_t group, int32_t scale, int bits, float *group_scale,
                        uint8_t *dst) {
    int64_t sbytes = scale_bytes(scale);
    for (int64_t g = 0; g < in / group; g++) {
        float amax = 0.0f;
        for (int64_t i = g * group; i < (g + 1) * group; i++) {
            if (!isfinite(w[i])) return 0;
            amax = fmaxf(amax, fabsf(w[i]));
        }
        if (!make_scale(amax, qmax_of(bits), scale, &group_scale[g])) return 0;
    }
    for (int64_t s0 = 0; s0 < in; s0 += SB) {
        int lanes = sb_lanes(in, s0);
        int nsc = sb_scales(group, s0, lanes);
        for (int i = 0; i < nsc; i++) {
            /* group_scale holds the stored value exactly (f16 scales were rounded to it). */
            float s = group_scale[(s0 + (group <= SB ? i * group : 0)) / group];
            if (scale == ATTUNE_Q8_SCALE_F16) {
                _Float16 h = (_Float16)s;
                memcpy(dst, &h, sizeof h);
            } else {
                memcpy(dst, &s, sizeof s);
            }
            dst += sbytes;
        }
        /* A run of 32 lies in one group (groups are multiples of 32): one scale per lane,
           no division per weight (compile time quantises whole checkpoints). */
        memset(dst, 0, (size_t)code_bytes(lanes, bits));
        for (int l = 0; l < lanes; l++) {
            const float s = group_scale[(s0 + (int64_t)l * RUN) / group];
            for (int k = 0; k < RUN; k++)
                put_code(dst, stored_offset(l * RUN + k, lanes), lanes, bits, quantize_one(w[s0 + l * RUN + k], s, qmax_of(bits)));
        }
        dst += code_bytes(lanes, bits);
    }
    return 1;
}

/* Source dtypes of quantize(). */
enum { SRC_F32, SRC_BF16, SRC_F16 };

/* Rows of w (f32, or bf16/f16 bits) quantised into dst; OpenMP over rows (compile time
 * quantises whole checkpoints: a 1.1B model is 10^9 weights). Returns -1, the first row
 * that cannot be stored, or -2 when scratch memory cannot be allocated. */
static int64_t quantize(const void *w, int src, int64_t out, int64_t in, int64_t group, int32_t scale, int bits,
                        void *dst) {
    if (check(in, group, scale, bits)) return 0;
    int64_t row_bytes = row_bytes_of(in, group, scale, bits), bad = -1;
#ifdef _OPENMP
#pragma omp parallel if (out * in >= (1 << 20))
#endif
    {
        int64_t t = 0, n = 1, first_bad = -1;
#ifdef _OPENMP
        t = omp_get_thread_num();
        n = omp_get_num_threads();
#endif
        float *tmp = attune_scratch_alloc(sizeof(float) * (size_t)(in + in / group));
        int64_t r0 = out * t / n, r1 = out * (t + 1) / n;
        if (!tmp) first_bad = INT64_MAX;   /* reported as -2 */
        for (int64_t r = r0; r < r1 && first_bad < 0 && tmp; r++) {
            const float *row = src == SRC_F32 ? (const float *)w + r * in : tmp;
            const uint16_t *h = (const uint16_t *)w + r * in;
            if (src == SRC_BF16)
                for (int64_t i = 0; i < in; i++) {
                    uint32_t bits = (uint32_t)h[i] << 16;
                    memcpy(&tmp[i], &bits, sizeof bits);
                }
            if (src == SRC_F16)
                for (int64_t i = 0; i < in; i++) {
                    _Float16 v;
                    memcpy(&v, &h[i], sizeof v);
                    tmp[i] = (float)v;
                }
            if (!quantize_row(row, in, group, scale, bits, tmp + in, (uint8_t *)dst + r * row_bytes)) first_bad = r;
        }
        attune_scratch_free(tmp);
#ifdef _OPENMP
#pragma omp critical(attune_q8_quantize)
#endif
        if (first_bad >= 0 && (bad < 0 || first_bad < bad)) bad = first_bad;
    }
    return bad == INT64_MAX ? -2 : bad;
}

/* ŵ of one stored row into dst, in natural order (stored = 0) or in the int8 stored
 * order of the codes (stored = 1, what the prefill tiles use). */
static void decode_row(const uint8_t *p, int64_t in, int64_t group, int32_t scale, int bits, int stored, float *dst) {
    int64_t sbytes = scale_bytes(scale);
    float lane_scale[LANES], current = 0.0f;
    for (int64_t s0 = 0; s0 < in; s0 += SB) {
        int lanes = sb_lanes(in, s0);
        int nsc = sb_scales(group, s0, lanes);
        if (group > SB && nsc) current = load_scale(p, scale);
        for (int l = 0; l < lanes; l++)
            lane_scale[l] = group > SB ? current : load_scale(p + (int64_t)l * RUN / group * sbytes, scale);
        p += nsc * sbytes;
        for (int64_t j = 0; j < (int64_t)lanes * RUN; j++) {
            int64_t at = stored_offset(j, lanes);
            dst[s0 + (stored ? at : j)] = (float)code_at(p, at, lanes, bits) * lane_scale[j / RUN];
        }
        p += code_bytes(lanes, bits);
    }
}

static void dequantize(const void *q, int64_t out, int64_t in, int64_t group, int32_t scale, int bits, float *w) {
    int64_t row_bytes = row_bytes_of(in, group, scale, bits);
    if (row_bytes < 0) return;
    for (int64_t r = 0; r < out; r++) decode_row((const uint8_t *)q + r * row_bytes, in, group, scale, bits, 0, w + r * in);
}

static int64_t embedding(const void *table, int64_t vocab, int64_t width, int64_t group, int32_t scale, int bits,
                         const int32_t *ids, int64_t rows, float *out) {
    for (int64_t r = 0; r < rows; r++)
        if (ids[r] < 0 || ids[r] >= vocab) return r;
    int64_t row_bytes = row_bytes_of(width, group, scale, bits);
    for (int64_t r = 0; r < rows; r++)
        decode_row((const uint8_t *)table + ids[r] * row_bytes, width, group, scale, bits, 0, out + r * width);
    return -1;
}

/* ---- activations (decode) ------------------------------------------------- */

/* x's rows quantised per run of 32, in the int8 weights' stored order: xq [rows, in]
 * int8, sx [rows, in/32] scales (NaN for a run holding a non-finite value), corr
 * [rows, in/32] = -offset · Σ q of the run (cancels the offset that makes the weight
 * codes unsigned: 128 for int8, 8 for q4). */
typedef struct {
    int8_t *xq;
    float *sx;
    int32_t *corr;
} q8_act;

/* One run of 32 activations: its scale (NaN when the run holds a non-finite value,
 * which then reaches every output it feeds) and q; returns Σ q. Same rounding as
 * the weights (f32 scale). */
static int32_t quantize_activation_run(const float *x, float *s, int8_t *q) {
    float amax = 0.0f;
    int finite = 1;
#ifdef Q8_VNNI
    __m512 x0 = _mm512_loadu_ps(x), x1 = _mm512_loadu_ps(x + 16);
    /* fpclass 0x99: QNaN, +Inf, -Inf, SNaN */
    finite = !(_mm512_fpclass_ps_mask(x0, 0x99) | _mm512_fpclass_ps_mask(x1, 0x99));
    if (finite) amax = _mm512_reduce_max_ps(_mm512_max_ps(_mm512_abs_ps(x0), _mm512_abs_ps(x1)));
#else
    for (int i = 0; i < RUN; i++) {
        finite &= isfinite(x[i]);
        amax = fmaxf(amax, fabsf(x[i]));
    }
#endif
    float scale = amax / 127.0f;
    if (scale * 127.5f < amax) scale = nextafterf(scale, INFINITY);
    if (!finite) scale = NAN;
    *s = scale;
    if (!finite || scale == 0.0f) {
        memset(q, 0, RUN);
        return 0;
    }
#ifdef Q8_VNNI
    const __m512 sv = _mm512_set1_ps(scale), hi = _mm512_set1_ps(127.0f), lo = _mm512_set1_ps(-127.0f);
    __m512i q0 = _mm512_cvtps_epi32(_mm512_max_ps(lo, _mm512_min_ps(hi, _mm512_roundscale_ps(_mm512_div_ps(x0, sv), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC))));
    __m512i q1 = _mm512_cvtps_epi32(_mm512_max_ps(lo, _mm512_min_ps(hi, _mm512_roundscale_ps(_mm512_div_ps(x1, sv), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC))));
    _mm_storeu_si128((__m128i *)q, _mm512_cvtepi32_epi8(q0));
    _mm_storeu_si128((__m128i *)(q + 16), _mm512_cvtepi32_epi8(q1));
    return _mm512_reduce_add_epi32(_mm512_add_epi32(q0, q1));
#else
    int32_t sum = 0;
    for (int i = 0; i < RUN; i++) sum += q[i] = quantize_one(x[i], scale, 127);
    return sum;
#endif
}

static void quantize_activations(const float *x, int64_t rows, int64_t in, int32_t offset, q8_act *a) {
    int64_t runs = in / RUN;
    for (int64_t r = 0; r < rows; r++)
        for (int64_t g = 0; g < runs; g++) {
            int8_t q[RUN];
            int32_t sum = quantize_activation_run(x + r * in + g * RUN, &a->sx[r * runs + g], q);
            int64_t s0 = g / LANES * SB;
            int lanes = sb_lanes(in, s0);
            /* Run g is lane g % 16 of its superblock: 4 bytes in each of its 8 vectors. */
            for (int v = 0; v < VECS; v++) memcpy(a->xq + r * in + s0 + v * 4 * lanes + g % LANES * 4, q + 4 * v, 4);
            a->corr[r * runs + g] = -offset * sum;
        }
}

void attune_q8_round_activations(const float *x, int64_t rows, int64_t in, float *xhat) {
    for (int64_t r = 0; r < rows; r++)
        for (int64_t g = 0; g < in / RUN; g++) {
            float s;
            int8_t q[RUN];
            (void)quantize_activation_run(x + r * in + g * RUN, &s, q);
            for (int i = 0; i < RUN; i++) xhat[r * in + g * RUN + i] = (float)q[i] * s;
        }
}

/* ---- decode GEMV ------------------------------------------------------------ */

#ifdef Q8_VNNI
/* How a row's superblocks find their weight scales (fixed per call). */
typedef struct {
    int64_t group;
    int32_t scale;
    int sb_per_group;   /* groups spanning superblocks: a scale every this many */
    __m512i lane_index; /* groups within a superblock: lane -> its scale */
} q8_scales;

static q8_scales scales_of(int64_t group, int32_t scale) {
    int idx[LANES];
    for (int l = 0; l < LANES; l++) idx[l] = group <= SB ? l * RUN / (int)group : 0;
    q8_scales sc = {group, scale, group <= SB ? 0 : (int)((group + SB - 1) / SB), _mm512_loadu_si512(idx)};
    return sc;
}

/* Up to 16 scales at p as f32; `exact` reads only the n stored ones (masked), else a
 * full vector whose extra lanes (the quants that follow) the lane index never picks. */
static inline __attribute__((always_inline)) __m512 load_scales(const uint8_t *p, int n, int32_t scale, int exact) {
    __mmask16 m = (__mmask16)(exact ? (1u << n) - 1u : 0xFFFF);
    return scale == ATTUNE_Q8_SCALE_F16 ? _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, p)) : _mm512_maskz_loadu_ps(m, p);
}

/* The 64 bytes of stored vector u of a superblock's codes (int8: vector u; q4: the
 * nibbles of vectors 2u and 2u+1): a full load unless `exact`, which reads only the
 * row's own bytes. */
static inline __attribute__((always_inline)) __m512i code_vector(const uint8_t *p, int u, int lanes, int exact) {
    const __mmask64 bm = exact && lanes != LANES ? (1ULL << (4 * lanes)) - 1ULL : ~0ULL;
    const uint8_t *at = p + u * 4 * lanes;
    return exact ? _mm512_maskz_loadu_epi8(bm, at) : _mm512_loadu_si512(at);
}

/* The codes of int8 vector v (0..7) of a superblock as unsigned bytes: int8 codes
 * offset by 128 (one XOR), q4 codes (already q + 8) unpacked from the low or high
 * nibbles of vector v/2 (what the prefill dequantiser reads). */
static inline __attribute__((always_inline)) __m512i unsigned_codes(const uint8_t *p, int v, int lanes, int bits,
                                                                    int exact) {
    const __m512i w = code_vector(p, bits == 8 ? v : v / 2, lanes, exact);
    if (bits == 8) return _mm512_xor_si512(w, _mm512_set1_epi8((char)0x80));
    return _mm512_and_si512(v & 1 ? _mm512_srli_epi16(w, 4) : w, _mm512_set1_epi8(0x0F));
}

/* One superblock of `lanes` runs for R activation rows: 8 × (one weight vector, R
 * vpdpbusd) leave each run's exact integer dot product in its lane; one convert and
 * one FMA per row scale them. Weight loads are full 64-byte loads unless `exact`:
 * masked loads that miss the caches measured 2-3x slower here (AMD EPYC), so a
 * short last superblock reads past its end into the next row (lanes beyond `lanes`
 * are zeroed after the load), and only the last row of a block loads exactly.
 *
 * A q4 load holds two vectors. The low nibbles are masked out (one AND); the high ones
 * are used in place as 16 × code (the load XOR its low nibbles: one op instead of a
 * shift and an AND) in sums of their own, exact multiples of 16 that one arithmetic
 * shift per superblock brings back (|16 × 15 × 127| × 16 products per lane is far inside
 * int32). The run sums are the same integers, so the outputs are the same bits; the
 * kernel's compute rate on rows held in L2 rose 1.05-1.08x (Docs/PERFORMANCE.md, "q4
 * decode on Gemma-2-2B's shapes"). */
static inline __attribute__((always_inline)) void superblock(const int R, const int lanes, const int exact,
                                                             const int bits, const uint8_t *p, const q8_act *a,
                                                             int64_t in, int64_t runs, int64_t s0, __m512 ws,
                                                             __m512 *acc) {
    const __mmask16 m = (__mmask16)(lanes == LANES ? 0xFFFF : (1u << lanes) - 1u);
    const int64_t g0 = s0 / RUN;
    const int8_t *x = a->xq + s0;   /* int8 vector v of row r: x + r * in + v * 4 * lanes */
    __m512i isum[ATTUNE_Q8_GEMV_MAX_ROWS];
    /* Full superblocks use no masked instruction at all: on this CPU a masked op with a
     * memory operand misses the caches slowly even when its mask is all ones. */
    const int full = lanes == LANES;
    for (int r = 0; r < R; r++)
        isum[r] = full ? _mm512_loadu_si512(a->corr + r * runs + g0) : _mm512_maskz_loadu_epi32(m, a->corr + r * runs + g0);
    if (bits == 8)
        for (int v = 0; v < VECS; v++) {
            __m512i w = unsigned_codes(p, v, lanes, bits, exact);
            if (!full) w = _mm512_maskz_mov_epi32(m, w); /* lanes past a short superblock: next row's bytes */
            for (int r = 0; r < R; r++) isum[r] = _mm512_dpbusd_epi32(isum[r], w, _mm512_loadu_si512(x + r * in + v * 4 * lanes));
        }
    else {
        __m512i high16[ATTUNE_Q8_GEMV_MAX_ROWS];
        for (int r = 0; r < R; r++) high16[r] = _mm512_setzero_si512();
        for (int u = 0; u < VECS / 2; u++) {
            __m512i w = code_vector(p, u, lanes, exact);
            if (!full) w = _mm512_maskz_mov_epi32(m, w);
            const __m512i low = _mm512_and_si512(w, _mm512_set1_epi8(0x0F)), high = _mm512_xor_si512(w, low);
            for (int r = 0; r < R; r++) {
                isum[r] = _mm512_dpbusd_epi32(isum[r], low, _mm512_loadu_si512(x + r * in + 2 * u * 4 * lanes));
                high16[r] = _mm512_dpbusd_epi32(high16[r], high, _mm512_loadu_si512(x + r * in + (2 * u + 1) * 4 * lanes));
            }
        }
        for (int r = 0; r < R; r++) isum[r] = _mm512_add_epi32(isum[r], _mm512_srai_epi32(high16[r], 4));
    }
    for (int r = 0; r < R; r++) {
        /* maskz: lanes past a short superblock may hold a stray (even NaN) scale. */
        __m512 s = full ? _mm512_mul_ps(ws, _mm512_loadu_ps(a->sx + r * runs + g0))
                        : _mm512_maskz_mul_ps(m, ws, _mm512_maskz_loadu_ps(m, a->sx + r * runs + g0));
        acc[r] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum[r]), s, acc[r]);
    }
}

/* The scales of the superblock at p (advancing p past them); `k` counts superblocks
 * of a group spanning several, `current` holds its scale. */
static inline __attribute__((always_inline)) __m512 superblock_scales(const uint8_t **p, int lanes, int exact,
                                                                      const q8_scales *sc, int *k, __m512 *current) {
    const int64_t sbytes = scale_bytes(sc->scale);
    if (sc->sb_per_group == 0) {
        int n = lanes * RUN / (int)sc->group;
        __m512 ws = _mm512_permutexvar_ps(sc->lane_index, load_scales(*p, n, sc->scale, exact));
        *p += n * sbytes;
        return ws;
    }
    if (*k == 0) {
        *current = _mm512_set1_ps(load_scale(*p, sc->scale));
        *p += sbytes;
    }
    *k = *k + 1 == sc->sb_per_group ? 0 : *k + 1;
    return *current;
}

/* y_r = ŵ_row · x̂_r for R activation rows (R a constant after inlining). `exact`:
 * fewer than 64 readable bytes follow the row (the last row of its block). */
static inline __attribute__((always_inline)) void dot_row(const int R, const int bits, const uint8_t *p, int exact,
                                                          const q8_act *a, int64_t in, const q8_scales *sc, float *out) {
    const int64_t runs = in / RUN, full = in / SB * SB;
    __m512 acc[ATTUNE_Q8_GEMV_MAX_ROWS], current = _mm512_setzero_ps();
    int k = 0;
    for (int r = 0; r < R; r++) acc[r] = _mm512_setzero_ps();
    for (int64_t s0 = 0; s0 < full; s0 += SB) {
        __m512 ws = superblock_scales(&p, LANES, 0, sc, &k, &current);
        superblock(R, LANES, 0, bits, p, a, in, runs, s0, ws, acc);
        p += code_bytes(LANES, bits);
    }
    if (full < in) {
        int lanes = (int)((in - full) / RUN);
        __m512 ws;
        if (exact) {
            ws = superblock_scales(&p, lanes, 1, sc, &k, &current);
            superblock(R, lanes, 1, bits, p, a, in, runs, full, ws, acc);
        } else {
            ws = superblock_scales(&p, lanes, 0, sc, &k, &current);
            superblock(R, lanes, 0, bits, p, a, in, runs, full, ws, acc);
        }
    }
    for (int r = 0; r < R; r++) out[r] = _mm512_reduce_add_ps(acc[r]);
}

/* dot_row for four consecutive rows of one block, none of them the block's last (R = 1,
 * decode): each row's arithmetic is dot_row's, so the bits do not depend on the grouping;
 * four independent chains keep more loads in flight. Short rows (four of them within
 * BURST_MAX bytes: 896 wide) prefetch the bytes PREFETCH past the group in one burst;
 * long rows (`spread`: 2304 wide in q4, 4864 in int8) prefetch, superblock by superblock,
 * the same place of the next four rows, as a burst that long stalls the loads behind it
 * and one that far ahead would leave gaps (1.5x slower at 4864 wide). */
static inline __attribute__((always_inline)) void dot_rows4(const int bits, const int spread, const uint8_t *p, int64_t row_bytes,
                                                            const q8_act *a, int64_t in, const q8_scales *sc,
                                                            float *out) {
    const int64_t runs = in / RUN;
    const uint8_t *q[4] = {p, p + row_bytes, p + 2 * row_bytes, p + 3 * row_bytes};
    __m512 acc[4], current[4];
    int k[4] = {0, 0, 0, 0};
    for (int i = 0; i < 4; i++) acc[i] = current[i] = _mm512_setzero_ps();
    if (!spread)
        for (int64_t o = 0; o < 4 * row_bytes; o += 64) _mm_prefetch((const char *)p + PREFETCH + o, _MM_HINT_T1);
    for (int64_t s0 = 0; s0 < in; s0 += SB) {
        const int lanes = sb_lanes(in, s0);
        if (spread)
            for (int i = 0; i < 4; i++)
                for (int64_t o = 0; o < code_bytes(lanes, bits) + 64; o += 64)
                    _mm_prefetch((const char *)q[i] + 4 * row_bytes + o, _MM_HINT_T1);
        for (int i = 0; i < 4; i++) {
            __m512 ws = superblock_scales(&q[i], lanes, 0, sc, &k[i], &current[i]);
            if (lanes == LANES) superblock(1, LANES, 0, bits, q[i], a, in, runs, s0, ws, &acc[i]);
            else superblock(1, lanes, 0, bits, q[i], a, in, runs, s0, ws, &acc[i]);
            q[i] += code_bytes(lanes, bits);
        }
    }
    for (int i = 0; i < 4; i++) out[i] = _mm512_reduce_add_ps(acc[i]);
}
#else
/* Portable version of the same sums (same integer dot products, same scaling). */
static void dot_row_portable(int R, const uint8_t *p, const q8_act *a, int64_t in, int64_t group, int32_t scale,
                             int bits, float *out) {
    const int64_t runs = in / RUN, sbytes = scale_bytes(scale);
    float acc[ATTUNE_Q8_GEMV_MAX_ROWS][LANES] = {{0}}, current = 0.0f;
    for (int64_t s0 = 0, sb = 0; s0 < in; s0 += SB, sb++) {
        int lanes = sb_lanes(in, s0), nsc = sb_scales(group, s0, lanes);
        float ws[LANES];
        if (group > SB && nsc) current = load_scale(p, scale);
        for (int l = 0; l < lanes; l++) ws[l] = group > SB ? current : load_scale(p + (int64_t)l * RUN / group * sbytes, scale);
        p += nsc * sbytes;
        for (int r = 0; r < R; r++)
            for (int l = 0; l < lanes; l++) {
                int32_t sum = 0;
                for (int k = 0; k < RUN; k++) {
                    int64_t at = stored_offset(l * RUN + k, lanes);
                    sum += code_at(p, at, lanes, bits) * a->xq[r * in + s0 + at];
                }
                acc[r][l] += (float)sum * (ws[l] * a->sx[r * runs + sb * LANES + l]);
            }
        p += code_bytes(lanes, bits);
    }
    for (int r = 0; r < R; r++) {
        float t = 0.0f;
        for (int l = 0; l < LANES; l++) t += acc[r][l];
        out[r] = t;
    }
}
#endif

/* A blocked weight and its code width; row_at finds stored row `r`. */
typedef struct {
    const void *const *w;
    const int64_t *block_rows;
    int64_t blocks, row_bytes;
    int bits;
} q8_weight;

static const uint8_t *row_at(const q8_weight *wt, int64_t r) {
    for (int64_t b = 0; b < wt->blocks; r -= wt->block_rows[b], b++)
        if (r < wt->block_rows[b]) return (const uint8_t *)wt->w[b] + r * wt->row_bytes;
    return NULL;
}

/* Output rows [r0, r1) of the GEMV for R ≤ 8 activation rows; `bits` is wt->bits as a
 * constant (gemv inlines one copy per width). */
static inline __attribute__((always_inline)) void gemv_rows(const int bits, const q8_weight *wt, const q8_act *a,
                                                            int R, int64_t in, int64_t out, int64_t group,
                                                            int32_t scale, const float *bias, float *y, int64_t r0,
                                                            int64_t r1) {
    if (r0 >= r1) return;
    int64_t b = 0, start = 0;
    while (r0 >= start + wt->block_rows[b]) start += wt->block_rows[b++];
    const uint8_t *p = (const uint8_t *)wt->w[b] + (r0 - start) * wt->row_bytes;
#ifdef Q8_VNNI
    q8_scales sc = scales_of(group, scale);
#endif
    for (int64_t r = r0; r < r1; r++) {
        if (r == start + wt->block_rows[b]) {
            start += wt->block_rows[b++];
            while (wt->block_rows[b] == 0) b++;
            p = (const uint8_t *)wt->w[b];
        }
        float v[ATTUNE_Q8_GEMV_MAX_ROWS];
#ifdef Q8_VNNI
        if (R == 1 && r + 4 <= r1 && (start + wt->block_rows[b] - r - 4) * wt->row_bytes >= 64) {
            if (4 * wt->row_bytes > BURST_MAX) dot_rows4(bits, 1, p, wt->row_bytes, a, in, &sc, v);
            else dot_rows4(bits, 0, p, wt->row_bytes, a, in, &sc, v);
            for (int i = 0; i < 4; i++) y[r + i] = v[i] + (bias ? bias[r + i] : 0.0f);
            p += 4 * wt->row_bytes;
            r += 3;
            continue;
        }
        int exact = (start + wt->block_rows[b] - 1 - r) * wt->row_bytes < 64;
        switch (R) {
#define Q8_CASE(n) case n: dot_row(n, bits, p, exact, a, in, &sc, v); break;
            Q8_CASE(1) Q8_CASE(2) Q8_CASE(3) Q8_CASE(4) Q8_CASE(5) Q8_CASE(6) Q8_CASE(7) Q8_CASE(8)
#undef Q8_CASE
        }
#else
        dot_row_portable(R, p, a, in, group, scale, bits, v);
#endif
        for (int i = 0; i < R; i++) y[i * out + r] = v[i] + (bias ? bias[r] : 0.0f);
        p += wt->row_bytes;
    }
}

/* rows ≤ ATTUNE_Q8_GEMV_MAX_ROWS */
static int gemv(const float *x, int64_t rows, int64_t in, const q8_weight *wt, int64_t out, int64_t group,
                int32_t scale, const float *bias, float *y, int nt) {
    int64_t runs = in / RUN;
    q8_act a;
    /* + 64: the kernel's full-vector loads of a short last superblock read past the end. */
    a.xq = attune_scratch_alloc((size_t)(rows * in + 64));
    a.sx = attune_scratch_alloc(sizeof(float) * (size_t)(rows * runs));
    a.corr = attune_scratch_alloc(sizeof(int32_t) * (size_t)(rows * runs));
    if (!a.xq || !a.sx || !a.corr) {
        attune_scratch_free(a.xq); attune_scratch_free(a.sx); attune_scratch_free(a.corr);
        return -1;
    }
    quantize_activations(x, rows, in, wt->bits == 4 ? 8 : 128, &a);
    const int parallel = nt > 1 && out * wt->row_bytes >= PARALLEL_MIN_BYTES;
    gemv_split split;
    gemv_split_init(&split, out, wt->row_bytes, parallel ? nt : 1, 4);
#ifdef _OPENMP
#pragma omp parallel num_threads(nt) if (parallel)
#endif
    {
        int t = 0;
#ifdef _OPENMP
        t = omp_get_thread_num();
#endif
        int64_t r0, r1;
        while (gemv_split_claim(&split, t, &r0, &r1)) {
            if (wt->bits == 4) gemv_rows(4, wt, &a, (int)rows, in, out, group, scale, bias, y, r0, r1);
            else gemv_rows(8, wt, &a, (int)rows, in, out, group, scale, bias, y, r0, r1);
        }
    }
    attune_scratch_free(a.xq); attune_scratch_free(a.sx); attune_scratch_free(a.corr);
    return 0;
}

/* ---- prefill ----------------------------------------------------------------- */

#if defined(Q8_VNNI) && defined(__AVX512BF16__)
/* Prefill with bf16 dot products: the bf16 GEMM's own step (attune_bf16_gemm_panel,
 * vdpbf16ps with f32 accumulation, linear_bf16.c) over panels of 32 weight rows
 * dequantised to bf16 in its packed layout. Activations are permuted into the weights'
 * stored order (the sum is the same sum in another order) and rounded to bf16 pairs once
 * per call, split over the threads; each panel is dequantised row by row into contiguous
 * pair words, then transposed in registers 16 x 16 dwords at a time (a scatter per 16
 * words measured half the bf16 GEMM's speed, Docs/PERFORMANCE.md). Rounding ŵ and x to
 * bf16 adds at most 2^-8 relative per product (Docs/NUMERICS.md). */
enum { PANEL = ATTUNE_BF16_PANEL, TRANSPOSE = 16 };

/* Activation row x [in] in the weights' stored order, as bf16 pairs xw [in/2]. */
static void activation_pairs(const float *x, int64_t in, float *tmp, uint32_t *xw) {
    for (int64_t s0 = 0; s0 < in; s0 += SB) {
        int lanes = sb_lanes(in, s0);
        for (int v = 0; v < VECS; v++)
            for (int l = 0; l < lanes; l++) memcpy(tmp + s0 + v * 4 * lanes + 4 * l, x + s0 + l * RUN + 4 * v, 4 * sizeof(float));
    }
    attune_f32_to_bf16(tmp, in, (uint16_t *)xw);
}

/* One stored row's ŵ rounded to bf16, as in/2 pair words in the int8 stored order. */
static inline __attribute__((always_inline)) void dequantize_row_pairs(const int bits, const uint8_t *p, int64_t in,
                                                                       const q8_scales *sc, uint32_t *dst) {
    __m512i expand[4];   /* byte 16c + e of a vector belongs to lane 4c + e/4 */
    for (int c = 0; c < 4; c++)
        expand[c] = _mm512_add_epi32(_mm512_set1_epi32(4 * c), _mm512_srli_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15), 2));
    __m512 current = _mm512_setzero_ps();
    int k = 0;
    for (int64_t s0 = 0; s0 < in; s0 += SB) {
        const int lanes = sb_lanes(in, s0), bytes = 4 * lanes;
        __m512 ws = superblock_scales(&p, lanes, 1, sc, &k, &current), lane_scale[4];
        for (int c = 0; c < 4; c++) lane_scale[c] = _mm512_permutexvar_ps(expand[c], ws);
        for (int v = 0; v < VECS; v++) {
            const __m512i w = _mm512_sub_epi8(unsigned_codes(p, v, lanes, bits, 1), _mm512_set1_epi8((char)(bits == 4 ? 8 : 128)));
            const __m128i b[4] = {_mm512_extracti32x4_epi32(w, 0), _mm512_extracti32x4_epi32(w, 1),
                                  _mm512_extracti32x4_epi32(w, 2), _mm512_extracti32x4_epi32(w, 3)};
            for (int h = 0; h < 2 && 32 * h < bytes; h++) {
                __m512 f0 = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(b[2 * h])), lane_scale[2 * h]);
                __m512 f1 = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(b[2 * h + 1])), lane_scale[2 * h + 1]);
                int words = (bytes - 32 * h) / 2;
                _mm512_mask_storeu_epi32(dst + (s0 + v * bytes + 32 * h) / 2, (__mmask16)(words >= 16 ? 0xFFFF : (1u << words) - 1u),
                                         (__m512i)_mm512_cvtne2ps_pbh(f1, f0));
            }
        }
        p += code_bytes(lanes, bits);
    }
}

/* r[i] = row i of a 16 x 16 dword block -> r[j] = column j. */
static inline __attribute__((always_inline)) void transpose16(__m512i r[16]) {
    __m512i t[16], u[16];
    for (int i = 0; i < 16; i += 2) {
        t[i] = _mm512_unpacklo_epi32(r[i], r[i + 1]);
        t[i + 1] = _mm512_unpackhi_epi32(r[i], r[i + 1]);
    }
    /* u[4g + c], 128-bit lane L: rows 4g..4g+3 of column 4L + c */
    for (int g = 0; g < 16; g += 4) {
        u[g] = _mm512_unpacklo_epi64(t[g], t[g + 2]);
        u[g + 1] = _mm512_unpackhi_epi64(t[g], t[g + 2]);
        u[g + 2] = _mm512_unpacklo_epi64(t[g + 1], t[g + 3]);
        u[g + 3] = _mm512_unpackhi_epi64(t[g + 1], t[g + 3]);
    }
    for (int c = 0; c < 4; c++) {
        __m512i a0 = _mm512_shuffle_i32x4(u[c], u[4 + c], 0x44), a1 = _mm512_shuffle_i32x4(u[c], u[4 + c], 0xEE);
        __m512i b0 = _mm512_shuffle_i32x4(u[8 + c], u[12 + c], 0x44), b1 = _mm512_shuffle_i32x4(u[8 + c], u[12 + c], 0xEE);
        r[c] = _mm512_shuffle_i32x4(a0, b0, 0x88);
        r[4 + c] = _mm512_shuffle_i32x4(a0, b0, 0xDD);
        r[8 + c] = _mm512_shuffle_i32x4(a1, b1, 0x88);
        r[12 + c] = _mm512_shuffle_i32x4(a1, b1, 0xDD);
    }
}

/* Rows [c0, c0 + cols) of the weight as a bf16 panel (in/2 rows of PANEL pair words;
 * columns past `cols` zero), through `rowbuf` (TRANSPOSE rows of in/2 words). */
static void pack_panel(const q8_weight *wt, int64_t in, const q8_scales *sc, int64_t c0, int cols, uint32_t *rowbuf,
                       uint32_t *panel) {
    const int64_t kp = in / 2;   /* a multiple of 16: in is a multiple of 32 */
    for (int j0 = 0; j0 < PANEL; j0 += TRANSPOSE) {
        for (int j = 0; j < TRANSPOSE; j++) {
            if (j0 + j < cols && wt->bits == 4) dequantize_row_pairs(4, row_at(wt, c0 + j0 + j), in, sc, rowbuf + j * kp);
            else if (j0 + j < cols) dequantize_row_pairs(8, row_at(wt, c0 + j0 + j), in, sc, rowbuf + j * kp);
            else memset(rowbuf + j * kp, 0, sizeof(uint32_t) * (size_t)kp);
        }
        for (int64_t k0 = 0; k0 < kp; k0 += TRANSPOSE) {
            __m512i r[TRANSPOSE];
            for (int j = 0; j < TRANSPOSE; j++) r[j] = _mm512_loadu_si512(rowbuf + j * kp + k0);
            transpose16(r);
            for (int k = 0; k < TRANSPOSE; k++) _mm512_storeu_si512(panel + (k0 + k) * PANEL + j0, r[k]);
        }
    }
}

/* y = x ŵᵀ (+ bias). With gated ≥ 0 the weight is [gate; up] (out = 2 × inter rows) and
 * y [rows, inter] = act(x gateᵀ) ⊙ x upᵀ (act = silu, or gelu when gated is 1): each
 * gate panel and its up panel go to two thread-local tiles whose product is written, so
 * the [rows, 2 × inter] result never exists (19 MiB at 512 rows of Qwen2.5-0.5B) and is
 * neither written nor read back. The tiles hold what the ungated call writes to y.
 * consume: x itself, writable and dead after the call; row r's bf16 pairs then go over
 * its first half (activation_pairs reads the row whole before writing), rows in dwords
 * apart, instead of into rows × in/2 dwords of scratch. */
static int gemm(const float *x, int64_t rows, int64_t in, const q8_weight *wt, int64_t out, int64_t group,
                int32_t scale, const float *bias, int gated, float *consume, float *y, int nt) {
    const int64_t kp = in / 2, tile = gated >= 0 ? rows * PANEL : 0;
    const int64_t per_thread = in + kp * (PANEL + TRANSPOSE) + 2 * tile;   /* tmp row, panel, rowbuf, gate/up tiles */
    const int64_t width = gated >= 0 ? out / 2 : out;                      /* y's columns */
    const int64_t xs = consume ? in : kp;                                  /* xw's row stride */
    uint32_t *xw = consume ? (uint32_t *)(void *)consume : attune_scratch_alloc(sizeof(uint32_t) * (size_t)(rows * kp));
    uint32_t *work = attune_scratch_alloc(sizeof(uint32_t) * (size_t)(nt * per_thread));
    if (!xw || !work) {
        if (!consume) attune_scratch_free(xw);
        attune_scratch_free(work);
        return -1;
    }
    q8_scales sc = scales_of(group, scale);
#ifdef _OPENMP
#pragma omp parallel num_threads(nt) if (nt > 1)
#endif
    {
        int64_t t = 0, n = 1;
#ifdef _OPENMP
        t = omp_get_thread_num();
        n = omp_get_num_threads();
#endif
        uint32_t *mine = work + t * per_thread, *panel = mine + in, *rowbuf = panel + kp * PANEL;
        float *gate = (float *)(rowbuf + kp * TRANSPOSE), *up = gate + tile;
        for (int64_t r = rows * t / n; r < rows * (t + 1) / n; r++) activation_pairs(x + r * in, in, (float *)mine, xw + r * xs);
#ifdef _OPENMP
#pragma omp barrier
#endif
        int64_t np = (width + PANEL - 1) / PANEL;
        for (int64_t p = np * t / n; p < np * (t + 1) / n; p++) {
            int64_t c0 = p * PANEL;
            int cols = (int)(width - c0 < PANEL ? width - c0 : PANEL);
            pack_panel(wt, in, &sc, c0, cols, rowbuf, panel);
            if (gated < 0) {
                attune_bf16_gemm_panel(xw, xs, rows, kp, panel, bias ? bias + c0 : NULL, cols, y + c0, out);
                continue;
            }
            attune_bf16_gemm_panel(xw, xs, rows, kp, panel, NULL, cols, gate, PANEL);
            pack_panel(wt, in, &sc, width + c0, cols, rowbuf, panel);
            attune_bf16_gemm_panel(xw, xs, rows, kp, panel, NULL, cols, up, PANEL);
            for (int64_t r = 0; r < rows; r++) attune_gated_product(gate + r * PANEL, up + r * PANEL, cols, gated, y + r * width + c0);
        }
    }
    if (!consume) attune_scratch_free(xw);
    attune_scratch_free(work);
    return 0;
}
#define GATED_GEMM 1
#else
/* Without AVX512-BF16: tiles of weight rows dequantised to f32, then SGEMM. */

/* x's rows with columns permuted into the weights' stored order (any order of the sum
 * is the same sum, and the weights then dequantise without a transpose). */
static void permute_columns(const float *x, int64_t rows, int64_t in, float *xp) {
    for (int64_t s0 = 0; s0 < in; s0 += SB) {
        int lanes = sb_lanes(in, s0);
        for (int64_t j = 0; j < (int64_t)lanes * RUN; j++) {
            int64_t at = s0 + stored_offset(j, lanes);
            for (int64_t r = 0; r < rows; r++) xp[r * in + at] = x[r * in + s0 + j];
        }
    }
}


/* y = x ŵᵀ with x's columns permuted into the weights' stored order, so each tile of
 * weight rows is dequantised straight (no transpose) and SGEMM sums in that order. */
static int gemm(const float *x, int64_t rows, int64_t in, const q8_weight *wt, int64_t out, int64_t group,
                int32_t scale, const float *bias, int gated, float *consume, float *y, int nt) {
    (void)gated;     /* GATED_GEMM 0: linear_blocks applies the product after the call */
    (void)consume;   /* the permuted copy reads columns of all rows at once: it keeps its scratch */
    int64_t tile = TILE_BYTES / (int64_t)sizeof(float) / in / TILE_ROW_ALIGN * TILE_ROW_ALIGN;
    if (tile < TILE_ROW_ALIGN) tile = TILE_ROW_ALIGN;
    float *xp = attune_scratch_alloc(sizeof(float) * (size_t)(rows * in));
    float *tiles = attune_scratch_alloc(sizeof(float) * (size_t)(nt * tile * in));
    if (!xp || !tiles) {
        attune_scratch_free(xp); attune_scratch_free(tiles);
        return -1;
    }
    permute_columns(x, rows, in, xp);
    if (openblas_get_num_threads() != 1) openblas_set_num_threads(1);
#ifdef _OPENMP
#pragma omp parallel num_threads(nt) if (nt > 1)
#endif
    {
        int64_t t = 0, n = 1;
#ifdef _OPENMP
        t = omp_get_thread_num();
        n = omp_get_num_threads();
#endif
        int64_t per = (out + n - 1) / n;
        per = (per + TILE_ROW_ALIGN - 1) / TILE_ROW_ALIGN * TILE_ROW_ALIGN;
        int64_t c0 = t * per, c1 = c0 + per < out ? c0 + per : out;
        float *buf = tiles + t * tile * in;
        for (int64_t t0 = c0; t0 < c1; t0 += tile) {
            int64_t nb = c1 - t0 < tile ? c1 - t0 : tile;
            for (int64_t r = 0; r < nb; r++) decode_row(row_at(wt, t0 + r), in, group, scale, wt->bits, 1, buf + r * in);
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)rows, (int)nb, (int)in, 1.0f, xp, (int)in, buf,
                        (int)in, 0.0f, y + t0, (int)out);
            if (bias)
                for (int64_t r = 0; r < rows; r++)
                    for (int64_t c = t0; c < t0 + nb; c++) y[r * out + c] += bias[c];
        }
    }
    attune_scratch_free(xp); attune_scratch_free(tiles);
    return 0;
}
#define GATED_GEMM 0
#endif

/* gated: -1, or the activation of a gated product (0 silu, 1 gelu; gemm's comment). The
 * GEMV path, and the GEMM without bf16 panels, compute [gate | up] into scratch first:
 * at decode that is a few rows. consume: x, when the caller lets the GEMM overwrite it
 * (gemm's comment), else NULL. */
static int32_t linear_blocks(const float *x, int64_t rows, int64_t in, const void *const *w, const int64_t *block_rows,
                             int64_t blocks, int64_t group, int32_t scale, int bits, const float *bias, int gated,
                             float *consume, float *y, int32_t threads) {
    int64_t out = 0;
    for (int64_t b = 0; b < blocks; b++) out += block_rows[b];
    if (rows <= 0 || out == 0) return 0;
    q8_weight wt = {w, block_rows, blocks, row_bytes_of(in, group, scale, bits), bits};
    int nt = 1;
#ifdef _OPENMP
    nt = threads > 0 ? threads : omp_get_max_threads();
#else
    (void)threads;
#endif
    const int use_gemv = rows <= ATTUNE_Q8_GEMV_MAX_ROWS;
    if (gated < 0 || (!use_gemv && GATED_GEMM))
        return use_gemv ? gemv(x, rows, in, &wt, out, group, scale, bias, y, nt)
                        : gemm(x, rows, in, &wt, out, group, scale, bias, gated, consume, y, nt);
    float *gu = attune_scratch_alloc(sizeof(float) * (size_t)(rows * out));
    int rc = !gu ? -1 : use_gemv ? gemv(x, rows, in, &wt, out, group, scale, bias, gu, nt)
                                 : gemm(x, rows, in, &wt, out, group, scale, bias, -1, NULL, gu, nt);
    if (rc == 0) (gated ? attune_op_geglu_epilogue : attune_op_swiglu_epilogue)(gu, rows, out / 2, y);
    attune_scratch_free(gu);
    return rc;
}

/* ---- the two formats' entry points -------------------------------------------- */

/* Defines attune_q8_* (bits 8) and attune_q4_* (bits 4) as declared in their headers. */
#define QUANTIZED_FORMAT(prefix, bits)                                                                                   \
    const char *prefix##_check(int64_t in, int64_t group, int32_t scale) { return check(in, group, scale, bits); }     \
    int64_t prefix##_row_bytes(int64_t in, int64_t group, int32_t scale) {                                             \
        return row_bytes_of(in, group, scale, bits);                                                                   \
    }                                                                                                                  \
    int64_t prefix##_quantize_f32(const float *w, int64_t out, int64_t in, int64_t group, int32_t scale, void *dst) { \
        return quantize(w, SRC_F32, out, in, group, scale, bits, dst);                                                 \
    }                                                                                                                  \
    int64_t prefix##_quantize_bf16(const uint16_t *w, int64_t out, int64_t in, int64_t group, int32_t scale,          \
                                   void *dst) {                                                                        \
        return quantize(w, SRC_BF16, out, in, group, scale, bits, dst);                                                \
    }                                                                                                                  \
    int64_t prefix##_quantize_f16(const uint16_t *w, int64_t out, int64_t in, int64_t group, int32_t scale,           \
                                  void *dst) {                                                                         \
        return quantize(w, SRC_F16, out, in, group, scale, bits, dst);                                                 \
    }                                                                                                                  \
    void prefix##_dequantize(const void *q, int64_t out, int64_t in, int64_t group, int32_t scale, float *w) {        \
        dequantize(q, out, in, group, scale, bits, w);                                                                 \
    }                                                                                                                  \
    int64_t prefix##_embedding(const void *table, int64_t vocab, int64_t width, int64_t group, int32_t scale,         \
                               const int32_t *ids, int64_t rows, float *out) {                                         \
        return embedding(table, vocab, width, group, scale, bits, ids, rows, out);                                     \
    }                                                                                                                  \
    int32_t prefix##_linear_blocks(const float *x, int64_t rows, int64_t in, const void *const *w,                    \
                                   const int64_t *block_rows, int64_t blocks, int64_t group, int32_t scale,           \
                                   const float *bias, float *y, int32_t threads) {                                     \
        return linear_blocks(x, rows, in, w, block_rows, blocks, group, scale, bits, bias, -1, NULL, y, threads);     \
    }                                                                                                                  \
    int32_t prefix##_linear(const float *x, int64_t rows, int64_t in, const void *w, int64_t out, int64_t group,      \
                            int32_t scale, const float *bias, float *y, int32_t threads) {                             \
        return linear_blocks(x, rows, in, &w, &out, 1, group, scale, bits, bias, -1, NULL, y, threads);                \
    }                                                                                                                  \
    int32_t prefix##_linear_gated(const float *x, int64_t rows, int64_t in, const void *w_gate, const void *w_up,      \
                                  int64_t inter, int64_t group, int32_t scale, int32_t gelu, float *y,                 \
                                  int32_t threads) {                                                                   \
        const void *w[2] = {w_gate, w_up};                                                                             \
        const int64_t block_rows[2] = {inter, inter};                                                                  \
        return linear_blocks(x, rows, in, w, block_rows, 2, group, scale, bits, NULL, gelu ? 1 : 0, NULL, y, threads); \
    }                                                                                                                  \
    int32_t prefix##_linear_consuming(float *x, int64_t rows, int64_t in, const void *w, int64_t out, int64_t group,   \
                                      int32_t scale, const float *bias, float *y, int32_t threads) {                   \
        return linear_blocks(x, rows, in, &w, &out, 1, group, scale, bits, bias, -1, x, y, threads);                   \
    }

QUANTIZED_FORMAT(attune_q8, 8)
QUANTIZED_FORMAT(attune_q4, 4)
