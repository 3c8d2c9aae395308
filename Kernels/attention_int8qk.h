/*
 * attention_int8qk.h — flash's `precision=int8qk` wide tiles (flash_int8qk.c),
 * SageAttention-style: Q.K^T on int8 operands with AVX512-VNNI `vpdpbusd`
 * (64 multiply-adds of bytes per instruction, int32 sums), scores dequantised
 * to f32; the softmax state stays f32 and P.V is the bf16 tiles' (attention_bf16.h).
 * Decode (narrow) tiles stay f32.
 *
 * Quantisation (Docs/NUMERICS.md, "int8 Q.K^T tiles"):
 *   K  smoothed: k~_j = k_j - mu, mu the mean of the keys some query sees (one
 *      per batch x kv head, finite key rows only; past 512 keys, of an even
 *      sample of about 256 of them: flash_int8qk.c), then per key j:
 *      sk_j = max_d |k~_jd| / 127, k8_jd = round(k~_jd / sk_j), stored as
 *      k8 + 128 (unsigned: `vpdpbusd` multiplies unsigned by signed bytes);
 *   Q  per query row r of the work item (scaled by scale * log2 e):
 *      sq_r = max_d |q'_rd| / 127, q8_rd = round(q'_rd / sq_r);
 *   s_rj = sq_r sk_j (sum_d q8_rd (k8_jd + 128) - 128 sum_d q8_rd) + q'_r . mu
 * The last term (f32, from the unquantised q') restores the exact score, so
 * the tile's max, the LSE and split merges mean what they do in f32; the
 * smoothing only shrinks what is quantised (a shared offset in the keys, which
 * trained models have, would otherwise eat the int8 range). The -128 sum q8
 * correction is the accumulator's starting value, so it costs nothing per key.
 *
 * Granularity: per key and per query row, the finest the tile layout allows
 * for free. Tiles start wherever a split or a window starts, so a per-tile K
 * scale could not be fixed at packing time; a per-key scale is one broadcast
 * multiply per 16 scores in the dequantising epilogue (the dot products are
 * qk_dim / 4 instructions per 16 scores). A row or key with NaN/Inf gets a
 * NaN scale: its scores are NaN (f32 gives NaN or +-inf there).
 */
#ifndef ATTUNE_ATTENTION_INT8QK_H
#define ATTUNE_ATTENTION_INT8QK_H

#include "attune_attention.h"

#include <stddef.h>
#include <stdint.h>

/* The quantised K of one call, keys [klo, klo + klen) of every batch x kv head:
 * k8 [heads][klen][ks4] (k8 + 128, zero-padded dims hold 128), kscale
 * [heads][klen], mean [heads][dk] (dk = qk_dim). */
typedef struct {
    const attune_attention_problem *p;
    const attune_attention_tensors *t;
    int64_t q_offset;
    uint8_t *k8;
    float *kscale, *mean;
    int64_t klo, klen;
    int ks4;
    size_t bytes; /* of the buffer k8 starts (kept between calls: attune_kept_take) */
} attune_int8qk_k;

#define ATTUNE_INT8QK_HIDDEN __attribute__((visibility("hidden")))

/* Once per call (0: out of memory); release frees. */
ATTUNE_INT8QK_HIDDEN int attune_int8qk_prepack(attune_int8qk_k *kk, int threads);
ATTUNE_INT8QK_HIDDEN void attune_int8qk_release(attune_int8qk_k *kk);
/* A work item's quantised Q of rp rows: q8 [qk_dim/4][rp][4], then f32 sq[rp],
 * f32 q'.mu [rp] and the int32 correction -128 sum q8 [rp]. */
ATTUNE_INT8QK_HIDDEN int8_t *attune_int8qk_alloc_q(int rp, int64_t qk_dim);
/* Quantises the scaled, row-minor Q (qt, [qk_dim][rp]) of batch x kv head bg. */
ATTUNE_INT8QK_HIDDEN void attune_int8qk_pack_q(const attune_int8qk_k *kk, const float *qt, int8_t *q8, int rp, int64_t bg);
/* S^T (f32, [n][rp], base-2 units) of keys [j0, j0 + n) of bg into st. */
ATTUNE_INT8QK_HIDDEN void attune_int8qk_scores(const attune_int8qk_k *kk, const int8_t *q8, float *st, int rp, int64_t bg,
                                               int64_t j0, int n);

#endif
