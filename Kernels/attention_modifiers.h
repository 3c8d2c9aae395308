/*
 * attention_modifiers.h — the score modifiers a kernel composes with its
 * softmax (attune_attention.h): ALiBi (a per-head linear bias of the distance
 * from query to key) and attention sinks (a per-head logit in the softmax
 * denominator). Internal, not ABI. The math lives here once; the engine
 * (attention_engine.h) fills each row's slope, position and sink, and a
 * variant's probability hooks call the bias functions on a tile of scores.
 *
 * Units: kernels keep scores in base-2 units (s * log2 e), so slopes and sinks
 * are multiplied by log2 e as well.
 *
 * ALiBi's bias m * (j - p) is formed exactly: j - p is an integer below 2^24 in
 * magnitude (attune_attention_validate checks it), so its fp32 value is exact
 * and the bias is one rounding of the product, whatever the absolute
 * positions. (The BLOOM form m * j, equal under softmax up to a per-row
 * constant, would lose bits at long contexts and shift the LSE.)
 */
#ifndef ATTUNE_ATTENTION_MODIFIERS_H
#define ATTUNE_ATTENTION_MODIFIERS_H

#include "attune_attention.h"
#include "simd.h"

#include <math.h>
#include <stdint.h>

#define ATTUNE_LOG2E 1.4426950408889634

/* Head h's slope in base-2 units; 0 without ALiBi. */
static inline float attention_alibi_slope2(const attune_attention_problem *p, int64_t head) {
    return p->alibi_slopes ? (float)((double)p->alibi_slopes[head] * ATTUNE_LOG2E) : 0.0f;
}

/* Head h's sink in base-2 units; -inf without sinks. */
static inline float attention_sink2(const attune_attention_problem *p, int64_t head) {
    return p->sinks ? (float)((double)p->sinks[head] * ATTUNE_LOG2E) : -INFINITY;
}

/* Wide layout (S^T, row stride rp; a vector is 16 rows of one key): for keys
 * [j0, j0 + n) and every row r < rp, st[jj][r] += slope2[r] * (j0 + jj - apos[r]).
 * Rows with slope 0 (padding, invalid) are unchanged; -inf stays -inf. */
static inline void attention_alibi_wide(float *st, int rp, const float *slope2, const int32_t *apos, int64_t j0,
                                        int n) {
    for (int c = 0; c < rp; c += VL) {
        float d0[VL];
        for (int l = 0; l < VL; l++) d0[l] = (float)(j0 - (int64_t)apos[c + l]);
        const vf m = vf_load(slope2 + c), one = vf_set1(1.0f);
        vf d = vf_load(d0);
        float *col = st + c;
        for (int jj = 0; jj < n; jj++, d = vf_add(d, one)) {
            float *sp = col + (int64_t)jj * rp;
            vf_store(sp, vf_fma(m, d, vf_load(sp)));
        }
    }
}

/* Packed narrow layout of rows [r0, r0 + R) (lane l: row r0 + l % R, key
 * l / R of the vector; 16 / R keys per vector), n keys from j0, padding
 * included (it is -inf and stays so). */
static inline void attention_alibi_packed(float *st, int R, const float *slope2, const int32_t *apos, int r0,
                                          int64_t j0, int n) {
    const int nv = (n * R + VL - 1) / VL, keys_per_vec = VL / R;
    float d0[VL], m0[VL];
    for (int l = 0; l < VL; l++) {
        d0[l] = (float)(j0 + l / R - (int64_t)apos[r0 + l % R]);
        m0[l] = slope2[r0 + l % R];
    }
    const vf m = vf_load(m0), step = vf_set1((float)keys_per_vec);
    vf d = vf_load(d0);
    for (int b = 0; b < nv; b++, d = vf_add(d, step)) vf_store(st + b * VL, vf_fma(m, d, vf_load(st + b * VL)));
}

#endif
