/*
 * attune_attention.h — the one ABI every Attune attention kernel implements.
 *
 * Problem: for every batch b and query head h (kv head g = h / (Hq / Hkv)),
 *
 *     s(i,j)     = scale * Q[b,h,i,:] . K[b,g,j,:]
 *                  (with softcap c > 0: c * tanh(s(i,j) / c), before the mask)
 *                  (with alibi_slopes: + m_h * (j - (q_offset + i)), after the cap)
 *     O[b,h,i,:] = sum_j softmax_j( s(i,j) + mask(i,j) ) * V[b,g,j,:]
 *     LSE[b,h,i] = ln sum_j exp( s(i,j) )   over visible j
 *                  (with sinks: the sink term e^(z_h) joins the denominator and the LSE)
 *
 * Masking (bottom-right aligned, the KV-cache convention): query row i sits at
 * absolute position p = q_offset + i. Key j is visible iff
 *     (!causal || j <= p)  and  (window == 0 || j > p - window).
 * and, with masks (doc_ids, block_mask: below), the key is in the query's document
 * and its block's bit is set.
 * A row with no visible key (or kv_len == 0) gives O = 0 and LSE = -inf.
 *
 * Layout: element strides for batch, head and row; the last dimension of every
 * tensor must be contiguous (stride 1). Q/K/V are read only and never written.
 * O and LSE must not overlap Q, K or V.
 *
 * Errors: every entry point validates its arguments first and returns a
 * non-zero attune_status code with a message in `status->message`; kernels
 * never abort the process.
 */
#ifndef ATTUNE_ATTENTION_H
#define ATTUNE_ATTENTION_H

#include <stdint.h>
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Status codes returned by every entry point. */
typedef enum {
    ATTUNE_OK = 0,
    ATTUNE_ERR_INVALID_ARGUMENT = 1, /* shape, stride, scale, window, params */
    ATTUNE_ERR_UNSUPPORTED = 2,      /* valid problem this kernel cannot do */
    ATTUNE_ERR_OUT_OF_MEMORY = 3,
} attune_status_code;

typedef struct {
    int32_t code;          /* attune_status_code */
    char message[256];     /* NUL-terminated; empty on success */
} attune_status;

/* Element strides of a rank-4 tensor [batch, heads, rows, dim]; dim stride is 1. */
typedef struct {
    int64_t batch;
    int64_t head;
    int64_t row;
} attune_strides;

/* Sentinel for `q_offset`: use kv_len - q_len. */
#define ATTUNE_Q_OFFSET_DEFAULT INT64_MIN

/* ---------------------------------------------------------------------------
 * KV element formats. K and V may be stored in a narrower format than fp32
 * (a KV cache in bf16 or int8 halves or quarters the bytes decode reads). The
 * problem's `kv` field says which; `t->k` and `t->v` then point at elements of
 * that format (cast to const float *), and every K/V stride counts elements of
 * that format. Kernels dequantise tiles in registers (or while packing prefill
 * tiles); no kernel makes an fp32 copy of the cache. The format is exact
 * input: a kernel computes attention over the dequantised values
 *     bf16: x = the bf16 value (the top 16 bits of an fp32);
 *     int8: x = q * s, q in [-127, 127], s the fp32 scale of the element's
 *           (batch, kv head, key) (attune_kv_quantize writes both).
 * Kernels that read only fp32 K/V refuse other formats with
 * ATTUNE_ERR_UNSUPPORTED (attune_attention_validate does it for them).
 * --------------------------------------------------------------------------- */
typedef enum {
    ATTUNE_KV_F32 = 0,
    ATTUNE_KV_BF16 = 1,  /* uint16_t elements, round-to-nearest-even from fp32 */
    ATTUNE_KV_INT8 = 2,  /* int8_t elements, symmetric, one fp32 scale per (batch, kv head, key) */
} attune_kv_format;

typedef struct {
    int32_t format;                  /* attune_kv_format; 0 (f32) after attune_attention_problem_init */
    const float *k_scale, *v_scale;  /* int8: scale of key/value row (b, g, j) at
                                        b * stride.batch + g * stride.head + j * stride.row */
    attune_strides k_scale_stride, v_scale_stride;
} attune_kv_storage;

/* Bytes per K/V element of a format (0 for an unknown format). */
int64_t attune_kv_element_bytes(int32_t format);
/* "f32", "bf16", "int8" or "unknown". */
const char *attune_kv_format_name(int32_t format);

/* Quantises `rows` rows of `heads` x `dim` fp32 values (row r, head h, element d at
 * src[r * src_row_stride + h * dim + d]) into `format` elements at
 * dst + (r * dst_row_stride + h * dim + d) * element bytes; int8 also writes the
 * scale of (row r, head h) to scale[r * scale_row_stride + h] (scale may be NULL
 * otherwise). int8: s = max_d |x_d| / 127 and q = round-to-nearest(x / s); a row
 * of zeros has s = 0; a row holding NaN or Inf gets s = NaN, so it dequantises to
 * NaN rather than to plausible numbers. bf16 keeps NaN and Inf. */
void attune_kv_quantize(int32_t format, int64_t rows, int64_t heads, int64_t dim,
                        const float *src, int64_t src_row_stride,
                        void *dst, int64_t dst_row_stride, float *scale, int64_t scale_row_stride);
/* The stored values back as fp32 (the exact values kernels compute with), same layout. */
void attune_kv_dequantize(int32_t format, int64_t rows, int64_t heads, int64_t dim,
                          const void *src, int64_t src_row_stride, const float *scale, int64_t scale_row_stride,
                          float *dst, int64_t dst_row_stride);

typedef struct {
    int64_t batch;
    int64_t q_heads;
    int64_t kv_heads;   /* q_heads % kv_heads == 0 (MHA, GQA, MQA) */
    int64_t q_len;
    int64_t kv_len;     /* may be 0 */
    int64_t qk_dim;     /* head dim of Q and K */
    int64_t v_dim;      /* head dim of V and O; may differ from qk_dim */
    attune_strides q_stride, k_stride, v_stride, o_stride;
    int64_t lse_stride_batch, lse_stride_head; /* LSE rows are contiguous */
    float scale;        /* finite; attune_attention_problem_init sets 1/sqrt(qk_dim) */
    int32_t causal;     /* 0 or 1 */
    int64_t q_offset;   /* absolute position of query row 0, or ATTUNE_Q_OFFSET_DEFAULT */
    int64_t window;     /* 0 = none; otherwise >= 1 keys ending at the query's position */
    attune_kv_storage kv; /* K/V element format (zeroed by init: fp32) */
    float softcap;      /* 0 = none; c > 0 (finite): logit soft-capping, s -> c tanh(s / c)
                           (Gemma 2's attn_logit_softcapping). Only kernels that pass
                           ATTUNE_ACCEPTS_SOFTCAP to attune_attention_validate_kv take it;
                           the others refuse it with ATTUNE_ERR_UNSUPPORTED. */
    const float *alibi_slopes; /* NULL = none; else q_heads finite slopes m_h: ALiBi, the
                           score of query row i (absolute position p = q_offset + i) and
                           key j gains m_h * (j - p), after the soft-cap, before the mask
                           (attune_alibi_slopes gives the standard slopes). Only kernels
                           that pass ATTUNE_ACCEPTS_ALIBI take it. */
    const float *sinks; /* NULL = none; else q_heads finite sink logits z_h (gpt-oss): a
                           term e^(z_h) joins every row's softmax denominator (and its
                           max) and contributes no value, so O = sum_j e^(s_j) V_j /
                           (e^(z_h) + sum_j e^(s_j)) and LSE = ln(e^(z_h) + sum_j e^(s_j));
                           a row that sees no key gives O = 0, LSE = z_h. Only kernels
                           that pass ATTUNE_ACCEPTS_SINKS take it. */
    /* Masks with holes (FlexAttention's mask_mod / block masks, flash-attn's varlen
       packing). Both are keyed by absolute position, so they need every query position
       to be a key position: q_offset >= 0 and q_offset + q_len <= kv_len. A key hidden
       by either is never counted in the softmax; masks only hide (causal and window
       still apply). Only kernels that pass ATTUNE_ACCEPTS_MASKS take them. */
    const int32_t *doc_ids; /* NULL = none; else kv_len document ids, shared by every batch
                           and head: query row i (position p = q_offset + i) sees key j
                           only if doc_ids[j] == doc_ids[p]. Any ids; non-decreasing ids
                           (packed documents) make each row's keys one interval. */
    const uint8_t *block_mask; /* NULL = none; else an nb x nb bit matrix, nb =
                           ceil(kv_len / mask_block), shared by every batch and head: bit
                           (qb * nb + kb) (byte >> 3, bit & 7, least significant first)
                           cleared hides keys [kb B, kb B + B) from the queries at positions
                           [qb B, qb B + B), B = mask_block. */
    int64_t mask_block; /* B >= 1, the block of block_mask (ignored without it) */
    struct attune_mask_stats *mask_stats; /* NULL, or where a kernel that takes masks
                           writes what its tile skipping did (attune_mask_stats) */
} attune_attention_problem;

/* What the masks saved one call (written, not added to). A tile is one (q tile, KV
 * tile) pair of the kernel's tiling; `tiles` counts those computed, `skipped_tiles`
 * those the causal/window mask alone would have computed but the masks made
 * invisible, so tiles / (tiles + skipped_tiles) is the fraction still computed. */
typedef struct attune_mask_stats {
    int64_t tiles;
    int64_t skipped_tiles;
    int64_t masked_tiles;  /* computed tiles that needed the element mask (partly visible) */
} attune_mask_stats;

/* The tensors of one call. `lse` may be NULL. */
typedef struct {
    const float *q;
    const float *k;
    const float *v;
    float *o;
    float *lse;
} attune_attention_tensors;

/* Fills a problem for contiguous [B, H, L, D] tensors with default scale,
 * q_offset, no mask. */
void attune_attention_problem_init(attune_attention_problem *p,
                                   int64_t batch, int64_t q_heads, int64_t kv_heads,
                                   int64_t q_len, int64_t kv_len,
                                   int64_t qk_dim, int64_t v_dim);

/* Validates a problem and its tensors; ATTUNE_OK or a code with a message. */
int32_t attune_attention_validate(const attune_attention_problem *p,
                                  const attune_attention_tensors *t,
                                  attune_status *status);

/* attune_attention_validate for a kernel that reads the K/V formats whose bits
 * are set in `formats` (bit 1 << attune_kv_format); others are refused with
 * ATTUNE_ERR_UNSUPPORTED naming `kernel`. attune_attention_validate itself
 * accepts fp32 K/V only. `formats` may also carry the score modifiers the
 * kernel implements (ATTUNE_ACCEPTS_*); a problem using another is refused. */
#define ATTUNE_ACCEPTS_SOFTCAP 0x10000u /* p->softcap (above every format bit) */
#define ATTUNE_ACCEPTS_ALIBI 0x20000u   /* p->alibi_slopes */
#define ATTUNE_ACCEPTS_SINKS 0x40000u   /* p->sinks */
#define ATTUNE_ACCEPTS_MASKS 0x80000u   /* p->doc_ids, p->block_mask */
int32_t attune_attention_validate_kv(const attune_attention_problem *p,
                                     const attune_attention_tensors *t,
                                     uint32_t formats, const char *kernel,
                                     attune_status *status);

/* The standard ALiBi slopes of `heads` q heads (Press et al.; BLOOM's
 * build_alibi_tensor): with n the largest power of two <= heads, head h < n
 * gets 2^(-8 (h + 1) / n); the remaining heads take every other slope of the
 * 2n sequence, 2^(-4 (2k + 1) / n) for k = 0, 1, ... */
void attune_alibi_slopes(int64_t heads, float *slopes);

/* The q_offset in force (resolves ATTUNE_Q_OFFSET_DEFAULT). */
int64_t attune_attention_q_offset(const attune_attention_problem *p);

/* Number of (query, key) pairs visible under the mask, per (batch, q head).
 * Benchmarks count FLOPs from it. */
int64_t attune_attention_visible_pairs(const attune_attention_problem *p);

/* ---------------------------------------------------------------------------
 * Log-sum-exp merge — the shared primitive of split-KV decode, two-tier and
 * prefix/suffix attention. Part s holds a normalised output O_s (n_rows x dim,
 * row stride o_row_stride[s]) and its LSE_s per row. Then
 *     L* = ln sum_s exp(L_s),   O = sum_s exp(L_s - L*) O_s
 * skipping parts whose L_s = -inf; all parts -inf gives O = 0, L* = -inf.
 * `out` may alias part 0 (it is read before it is written, row by row).
 * --------------------------------------------------------------------------- */
void attune_lse_merge_rows(int32_t n_parts, int64_t n_rows, int64_t dim,
                           const float *const *parts, const int64_t *part_row_stride,
                           const float *const *part_lse,
                           float *out, int64_t out_row_stride, float *out_lse);

/* ---------------------------------------------------------------------------
 * flash — tiled online-softmax attention (FlashAttention-2 style), fp32.
 * --------------------------------------------------------------------------- */
typedef enum {
    ATTUNE_GEMM_AUTO = 0,   /* per-shape choice measured in Docs/PERFORMANCE.md */
    ATTUNE_GEMM_NATIVE = 1, /* hand-written AVX-512 micro-kernels */
    ATTUNE_GEMM_BLAS = 2,   /* OpenBLAS sgemm for full tiles */
} attune_gemm_backend;

/* Arithmetic of the prefill (wide, >= 16 rows) tiles' inner products. Softmax
 * state, accumulators and outputs are f32 either way; decode tiles stay f32. */
typedef enum {
    ATTUNE_PRECISION_F32 = 0,
    ATTUNE_PRECISION_BF16 = 1, /* Q.K^T and P.V on bf16-rounded operands (vdpbf16ps), f32 sums */
    ATTUNE_PRECISION_INT8QK = 2, /* flash only: Q.K^T on int8 (K smoothed, per-row/per-key scales;
                                    vpdpbusd), P.V as bf16 */
} attune_precision;

typedef struct {
    int32_t block_q;    /* query rows per tile (heads of a kv group are stacked); 0 = default */
    int32_t block_kv;   /* keys per tile; 0 = default */
    int32_t kv_splits;  /* KV chunks per (batch, kv head, q tile), merged by LSE; 0 = auto */
    int32_t threads;    /* OpenMP threads; 0 = runtime default */
    int32_t gemm;       /* attune_gemm_backend */
    int32_t precision;  /* attune_precision; bf16 takes precedence over gemm in wide tiles */
} attune_flash_params;

/* The defaults the kernel uses for zeros in `params` (for reporting). */
void attune_flash_resolve_params(const attune_attention_problem *p,
                                 const attune_flash_params *in,
                                 attune_flash_params *out);

int32_t attune_flash_attention(const attune_attention_problem *p,
                               const attune_attention_tensors *t,
                               const attune_flash_params *params,
                               attune_status *status);

/* ---------------------------------------------------------------------------
 * prefix_shared — a batch of sequences sharing a P-key prefix (Hydragen): the
 * prefix attended once for all sequences' stacked queries, each suffix on its
 * own, merged by log-sum-exp. Only batch 0's prefix K/V rows are read.
 * --------------------------------------------------------------------------- */
typedef struct {
    int64_t prefix_len;        /* P >= 1 keys shared by every sequence */
    attune_flash_params flash; /* tiles and threads of both passes */
} attune_prefix_shared_params;

int32_t attune_prefix_shared_attention(const attune_attention_problem *p,
                                       const attune_attention_tensors *t,
                                       const attune_prefix_shared_params *params,
                                       attune_status *status);

/* ---------------------------------------------------------------------------
 * Ragged prefix-shared attention for compiled models' batched sequences: G
 * groups of query rows, group g being n_g consecutive new rows of one sequence
 * whose keys are [shared prefix (P keys) | its own suffix]. The prefix pass
 * attends every row of every group at once (non-causal: all rows are past the
 * prefix); each group's suffix pass attends its own keys, causal and
 * bottom-right (the group's rows are its suffix's last n_g keys); the two are
 * merged by log-sum-exp. Both passes go through `attend`, so any softmax
 * kernel that writes LSE can run them (the generated module passes the
 * node's kernel). `base` gives heads, dims, scale and causal; its lengths,
 * strides, q_offset and LSE strides are set here; window must be 0.
 * --------------------------------------------------------------------------- */
typedef int32_t (*attune_attend_fn)(void *ctx, const attune_attention_problem *p,
                                    const attune_attention_tensors *t, attune_status *status);

typedef struct {
    const float *q; int64_t q_row_stride;   /* rows x (q_heads * qk_dim), heads side by side */
    float *o; int64_t o_row_stride;         /* rows x (q_heads * v_dim) */
    int64_t rows;
    const float *prefix_k, *prefix_v;       /* P shared rows, row strides below */
    int64_t prefix_len;                     /* P >= 0 */
    int64_t k_row_stride, v_row_stride;     /* of the prefix and every suffix */
    int64_t groups;
    const int64_t *first, *count;           /* each group's query rows */
    const float *const *suffix_k, *const *suffix_v;
    const int64_t *suffix_len;              /* each group's own keys, its new rows included (>= count) */
} attune_prefix_batch;

int32_t attune_prefix_batch_attention(const attune_attention_problem *base, const attune_prefix_batch *b,
                                      attune_attend_fn attend, void *ctx, attune_status *status);

/* ---------------------------------------------------------------------------
 * kascade — top-k keys chosen in an anchor layer and reused by later layers
 * (Kascade, ALGORITHMS.md §5), fp32, causal only.
 *
 * Query positions are grouped in tiles of `tile` positions (tile t holds
 * positions [t*tile, (t+1)*tile)). For a query in tile t the keys are split
 * into its history [0, t*tile) and its own tile (attended densely, causal).
 * From the history, an anchor keeps per (batch, kv head, tile) the `count`
 * keys with the most attention mass: exact softmax probabilities summed over
 * the q heads sharing the kv head and over the tile's query rows, where
 *     count = history <= min_k ? history : min(history, max(min_k, floor(fraction * history))).
 * Anchor and reuse layers both attend over (selected history keys + own tile)
 * with the softmax renormalised over them; a reuse layer reads the anchor's
 * selection through `head_map` (its kv head g uses the anchor's kv head
 * head_map[g]). fraction >= 1 (or histories <= min_k) keeps every key: exact.
 * --------------------------------------------------------------------------- */
typedef struct {
    double fraction;        /* k%: share of the history kept, (0, 1]; 0 = default 0.10 */
    int32_t min_k;          /* keep at least this many history keys (or all); 0 = default 128 */
    int32_t tile;           /* query positions per tile, [1, 256]; 0 = default 32 */
    int32_t threads;        /* OpenMP threads; 0 = runtime default */
    int64_t *attended_keys_out; /* may be NULL: receives sum over (batch, kv head, tile) of
                                   selected + own-tile keys, for reporting sparsity */
    int64_t *dense_keys_out;    /* may be NULL: the same sum for dense attention (history +
                                   own tile), the denominator of the attended fraction */
} attune_kascade_params;

/* The selection of one call: entry (b, slot, g) holds the selected history key
 * positions, ascending, at idx + ((b * slots + slot) * kv_heads + g) * k_cap;
 * slot = t - first_tile, first_tile = q_offset / tile. Unused slots are -1. */
typedef struct {
    int32_t *idx;
    int64_t k_cap;          /* >= attune_kascade_capacity's k_cap */
    int64_t slots;          /* >= attune_kascade_capacity's slots */
} attune_kascade_indices;

/* Selected history keys for a history of `history` keys. */
int64_t attune_kascade_budget(int64_t history, const attune_kascade_params *params);
/* What a selection for `p` needs: k_cap per entry and tile slots per batch. */
void attune_kascade_capacity(const attune_attention_problem *p, const attune_kascade_params *params,
                             int64_t *k_cap, int64_t *slots);
/* Anchor: selects (writes `out`) and attends over the selection. */
int32_t attune_kascade_anchor(const attune_attention_problem *p, const attune_attention_tensors *t,
                              const attune_kascade_params *params, const attune_kascade_indices *out,
                              attune_status *status);
/* Reuse: attends over an anchor's selection for the same query positions. */
int32_t attune_kascade_reuse(const attune_attention_problem *p, const attune_attention_tensors *t,
                             const attune_kascade_params *params, const attune_kascade_indices *selection,
                             const int32_t *head_map, attune_status *status);

/* ---------------------------------------------------------------------------
 * Build facts, for benchmarks and bug reports.
 * --------------------------------------------------------------------------- */
int32_t attune_kernels_openmp_enabled(void);
int32_t attune_kernels_max_threads(void);
int32_t attune_kernels_has_avx512(void);

/* ---------------------------------------------------------------------------
 * sigmoid — tiled sigmoid attention (FlashSigmoid), fp32. Not softmax:
 *     O[b,h,i,:] = sum_{j visible} sigmoid(scale * Q[b,h,i,:] . K[b,g,j,:] + bias) * V[b,g,j,:]
 * with no normalisation across keys; masked keys contribute exactly 0, a row
 * with no visible key gives O = 0, split-KV partials are summed. There is no
 * log-sum-exp: when `t->lse` is given every row's LSE is written as 0.
 * --------------------------------------------------------------------------- */
typedef struct {
    int32_t block_q;    /* query rows per tile (heads of a kv group are stacked); 0 = default 64 */
    int32_t block_kv;   /* keys per tile; 0 = default 256 */
    int32_t kv_splits;  /* KV chunks per (batch, kv head, q tile), summed; 0 = auto */
    int32_t threads;    /* OpenMP threads; 0 = runtime default */
    float bias;         /* b, the model's; must be finite (NULL params: 0) */
    int32_t precision;  /* attune_precision of the wide (prefill) tiles */
} attune_sigmoid_params;

int32_t attune_sigmoid_attention(const attune_attention_problem *p,
                                 const attune_attention_tensors *t,
                                 const attune_sigmoid_params *params,
                                 attune_status *status);

/* ---------------------------------------------------------------------------
 * unified_max — split-KV attention with one fixed max phi per q head instead
 * of a running max (FlashDecoding++'s asynchronised softmax), fp32. Each KV
 * split accumulates f_s = sum e^(x - phi) v and l_s = sum e^(x - phi) with no
 * rescaling; O = sum f_s / sum l_s, LSE = phi + ln sum l_s (x = scale q.k).
 * Exact: a row whose scores leave the safe range around phi (Kernels/
 * unified_max.c: max x - phi <= (127 - ceil log2 split_len) ln 2 per split,
 * >= (ceil log2 kv_len - 102) ln 2 per row), or whose sums are not finite, is
 * recomputed by attune_flash_attention and counted. A wrong phi costs time only.
 * --------------------------------------------------------------------------- */
typedef struct {
    int32_t block_kv;            /* keys per tile; 0 = default 256 */
    int32_t kv_splits;           /* KV chunks per (batch, kv head, q tile), summed; 0 = auto */
    int32_t threads;             /* OpenMP threads; 0 = runtime default */
    float phi;                   /* fixed max, natural-log score units (the units of LSE); finite */
    const float *phi_per_head;   /* [q_heads] per-head phi (calibrated), or NULL = `phi` for all */
    int64_t phi_per_head_count;  /* number of values at phi_per_head: q_heads, or 0 when NULL */
    int64_t *fallback_rows_out;  /* may be NULL; receives the number of rows recomputed by flash */
} attune_unified_max_params;

/* `params` may be NULL: defaults and phi = 0. */
int32_t attune_unified_max_attention(const attune_attention_problem *p,
                                     const attune_attention_tensors *t,
                                     const attune_unified_max_params *params,
                                     attune_status *status);

/* ---------------------------------------------------------------------------
 * hybrid — a two-tier KV cache (Kernels/hybrid_kv.c) and attention over it
 * (Kernels/hybrid.c), merged by log-sum-exp (ALGORITHMS.md §6, HGCA).
 *
 * One cache holds one sequence's K/V of one layer, for every kv head:
 *   hot tier:  the most recent tokens, fp32, dense per head, attended exactly
 *              by `flash`;
 *   cold tier: every older token, in whole blocks of `block` keys, stored as
 *              f32, bf16 or int8 (see attune_hybrid_cold_dtype), in anonymous
 *              memory or in a memory-mapped file that grows as tokens move
 *              cold, plus per-(block, head) summaries (per-dim min and max of
 *              the stored keys) kept in RAM for selection.
 * Tokens move from hot to cold one whole block at a time: after every append
 * cold_len = max(0, floor((len - window) / block)) * block, so the hot tier
 * holds between `window` and `window + block - 1` tokens once len >= window
 * (all of them before). A generated module owns one cache per layer: create it
 * at model load, append each step's new K/V rows, attend, reset per sequence.
 * Not thread-safe: one append/attention at a time per cache.
 * --------------------------------------------------------------------------- */
typedef enum {
    ATTUNE_HYBRID_COLD_F32 = 0,  /* exact copy (hybrid == dense attention with budget all) */
    ATTUNE_HYBRID_COLD_BF16 = 1, /* round-to-nearest-even bf16, K and V */
    ATTUNE_HYBRID_COLD_INT8 = 2, /* symmetric int8: K scale per (block, head, dim),
                                    V scale per (token, head); scale = max|x| / 127 */
} attune_hybrid_cold_dtype;

typedef struct {
    int64_t kv_heads;
    int64_t qk_dim;
    int64_t v_dim;
    int64_t window;        /* >= 1 hot tokens, kept in hot_format */
    int32_t cold_dtype;    /* attune_hybrid_cold_dtype */
    int32_t block;         /* cold keys per block: a multiple of 16 in [16, 1024] */
    int64_t max_tokens;    /* capacity; 0 = 1 << 22. Virtual address space is reserved
                              for it up front, memory is committed as tokens arrive */
    const char *cold_path; /* NULL: cold tier in anonymous memory; else a file created
                              (truncated) here, grown with ftruncate in chunks and mapped
                              MAP_SHARED, so the cold tier may exceed RAM */
    int32_t release_written; /* file-backed only: madvise(MADV_DONTNEED) cold pages once
                                written, so only the pages attention reads stay resident */
    int32_t hot_format;    /* attune_kv_format of the hot tier (0 = f32): bf16 or int8 rows
                              as attune_kv_quantize writes them (int8: a scale per token
                              and head), read by flash in place; a block moving cold is
                              dequantised and then stored in cold_dtype */
} attune_hybrid_kv_config;

typedef struct attune_hybrid_kv attune_hybrid_kv; /* opaque */

int32_t attune_hybrid_kv_create(const attune_hybrid_kv_config *config, attune_hybrid_kv **out,
                                attune_status *status);
/* Unmaps and closes; the cold file, if any, is left on disk. NULL is ignored. */
void attune_hybrid_kv_destroy(attune_hybrid_kv *cache);
/* Appends n tokens for every kv head: K row (head g, token t) at
 * k + g * k_head_stride + t * k_row_stride (qk_dim contiguous floats), V alike. */
int32_t attune_hybrid_kv_append(attune_hybrid_kv *cache, int64_t n,
                                const float *k, int64_t k_head_stride, int64_t k_row_stride,
                                const float *v, int64_t v_head_stride, int64_t v_row_stride,
                                attune_status *status);
/* Empties both tiers (keeps the memory and the file's size for reuse). */
void attune_hybrid_kv_reset(attune_hybrid_kv *cache);
/* Tokens in total, in the hot tier, in the cold tier (any pointer may be NULL). */
void attune_hybrid_kv_lengths(const attune_hybrid_kv *cache, int64_t *total, int64_t *hot, int64_t *cold);
/* The stored (dequantised) K and V rows of token `pos` of kv head `head`;
 * k_out holds qk_dim floats, v_out v_dim (either may be NULL). */
int32_t attune_hybrid_kv_read(const attune_hybrid_kv *cache, int64_t head, int64_t pos,
                              float *k_out, float *v_out, attune_status *status);
/* Bytes of the cold tier's store (file size when file-backed) and of the summaries. */
void attune_hybrid_kv_footprint(const attune_hybrid_kv *cache, int64_t *cold_bytes, int64_t *summary_bytes);

typedef struct {
    double cold_budget;  /* (0, 1]: fraction of visible cold blocks per kv head (rounded up);
                            > 1: that many blocks (an integer); >= all blocks: exact */
    int32_t threads;     /* OpenMP threads; 0 = runtime default */
    int32_t schedule;    /* 0: hot pass on one thread concurrently with cold items on the
                            others (one work queue); 1: hot with all threads, then cold */
    attune_flash_params hot; /* tiles of the hot pass (threads is set by `schedule`) */
} attune_hybrid_params;

typedef struct {
    int64_t hot_keys, cold_keys;   /* tiers' lengths at the call */
    int64_t selected_cold_keys;    /* summed over kv heads */
    double selected_fraction;      /* selected / (cold_keys * kv_heads); 0 when no cold keys */
    double select_ms, attend_ms;   /* summary scoring + top-k; the whole call */
} attune_hybrid_stats;

/* Attention of one sequence's queries over everything the cache holds.
 * q: q_heads x q_len x qk_dim at q + h * q_head_stride + i * q_row_stride;
 * o: q_heads x q_len x v_dim likewise; lse: q_heads x q_len (h * q_len + i), may be NULL.
 * Query row i sits at position q_offset + i (ATTUNE_Q_OFFSET_DEFAULT: len - q_len);
 * causal is bottom-right aligned as in the ABI; q_heads % kv_heads == 0.
 * Hot tier: flash, exact. Cold tier: per kv head, each block is scored by the
 * upper bound max over the group's query rows of sum_d max(q_d min_d, q_d max_d)
 * (Quest-style; exact bound for the stored keys), the top ceil(budget * blocks)
 * blocks are attended exactly (stored values dequantised in registers), and the
 * two tiers' (O, LSE) are merged by attune_lse_merge_rows. */
int32_t attune_hybrid_attention(attune_hybrid_kv *cache, int64_t q_heads, int64_t q_len,
                                const float *q, int64_t q_head_stride, int64_t q_row_stride,
                                float *o, int64_t o_head_stride, int64_t o_row_stride, float *lse,
                                float scale, int32_t causal, int64_t q_offset,
                                const attune_hybrid_params *params, attune_hybrid_stats *stats,
                                attune_status *status);

/* ---------------------------------------------------------------------------
 * sparge — block-sparse softmax attention (SpargeAttn, ALGORITHMS.md §4), fp32.
 * Approximate. Per (batch, q head) and q block of `block_q` rows:
 *   stage 1 (prediction): K smoothed by its token mean per (batch, kv head);
 *     block self-similarity = mean of the Gram matrix of L2-normalised rows;
 *     pooled scores scale * mean(q block) . mean(k block) over visible k
 *     blocks, non-similar k blocks excluded, row softmax; kept: the fewest
 *     blocks (by probability, descending) whose cumulative probability
 *     reaches cdfthreshd, plus every block of a non-similar q block, every
 *     non-similar k block, block 0 with `sink`, and under causal/window masks
 *     the blocks holding each row's last visible key;
 *   stage 2: online softmax (flash's tiles) over the kept blocks only; per
 *     16-row micro-tile, a tile whose row maxima all trail the running maxima
 *     by >= pvthreshd (base-2 units: scores scale * log2(e) * q.k) skips exp,
 *     the l update and P.V.
 * Masks are applied per element inside kept blocks (as flash does). Exact
 * (= flash to fp32 rounding) when cdfthreshd >= 1 and pvthreshd >= 200.
 * Full description, defaults and measured trade-offs: Docs/KERNELS.md.
 * --------------------------------------------------------------------------- */
typedef struct {
    int64_t kept_blocks;    /* (batch, q head, q block, k block) kept */
    int64_t visible_blocks; /* ... that some row of the q block can see */
    double kept_fraction;   /* kept / visible; 0 when nothing is visible */
    int64_t pv_tiles;       /* (16-row micro-tile, KV tile) pairs with live rows the kernel visited */
    int64_t pv_skipped;     /* ... whose exp and P.V were skipped by pvthreshd */
    double skipped_pv_fraction; /* pv_skipped / pv_tiles */
    double predict_ms;      /* prediction time, summed over threads / threads */
    double total_ms;        /* the whole call */
} attune_sparge_stats;

typedef struct {
    int32_t block_q;     /* query rows per block, multiple of 16 in [16, 512]; 0 = default 64 */
    int32_t block_kv;    /* keys per block, multiple of 16 in [16, 1024]; 0 = default 64 */
    float simthreshd1;   /* theta in [-1, 1]: a block is similar iff its self-similarity > theta */
    float cdfthreshd;    /* tau in (0, 1]: cumulative pooled probability to keep; 1 = every block */
    float pvthreshd;     /* lambda >= 0, base-2 units; >= 200 (or +inf) = never skip */
    int32_t sink;        /* 1: always keep k block 0 */
    int32_t threads;     /* OpenMP threads; 0 = runtime default */
    attune_sparge_stats *stats_out; /* may be NULL */
    uint8_t *mask_out;   /* may be NULL: the block mask, [batch][q_heads][ceil(q_len / block_q)]
                            [ceil(kv_len / block_kv)], 1 = attended (0 also for blocks no row
                            of the q block can see); for reports, not needed to run */
    int32_t precision;   /* attune_precision of stage 2's tiles (prediction stays f32) */
} attune_sparge_params;

/* The defaults: block_q 64, block_kv 64, theta 0.6, tau 0.98, lambda 50, sink 1. */
void attune_sparge_default_params(attune_sparge_params *params);

/* `params` may be NULL: the defaults. */
int32_t attune_sparge_attention(const attune_attention_problem *p,
                                const attune_attention_tensors *t,
                                const attune_sparge_params *params,
                                attune_status *status);

#ifdef __cplusplus
}
#endif
#endif /* ATTUNE_ATTENTION_H */
