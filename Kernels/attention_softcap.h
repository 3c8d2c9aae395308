/*
 * attention_softcap.h — logit soft-capping (Gemma 2's attn_logit_softcapping,
 * Grok): every score s becomes c * tanh(s / c) before the mask and the
 * softmax (attune_attention.h, `softcap`). The math lives here, once; a kernel
 * calls attune_softcap_scores on a tile of scores right after forming them.
 *
 * Units: c * tanh(s / c) commutes with a change of units, so a kernel that
 * keeps scores in base-2 units (s * log2 e, as flash does) passes the cap in
 * the same units (c * log2 e) and gets the capped base-2 score.
 */
#ifndef ATTUNE_ATTENTION_SOFTCAP_H
#define ATTUNE_ATTENTION_SOFTCAP_H

#include "simd.h"

#include <stdint.h>

/* 1 / x for x >= 1: with AVX-512 the 14-bit estimate and one Newton step (about 1 ulp,
 * a third of a division's time), else the division. */
ATTUNE_INLINE vf softcap_recip(vf x) {
#if defined(__AVX512F__)
    const vf r = _mm512_rcp14_ps(x);
    return vf_mul(r, vf_sub(vf_set1(2.0f), vf_mul(x, r)));
#else
    return vf_div(vf_set1(1.0f), x);
#endif
}

/* tanh, lane by lane, odd and NaN-propagating; relative error < 1.5e-7 (about
 * 1 ulp) over all finite inputs, exactly +-1 from |y| ~ 9 on. |y| < 0.625:
 * y + y^3 P(y^2), P a degree-5 least-squares fit of (tanh y - y) / y^3 on
 * Chebyshev nodes (fitted for Attune; 7.8e-8 measured in fp32); above it
 * 1 - 2 / (e^(2|y|) + 1), where tanh >= 0.55 keeps the cancellation small. */
ATTUNE_INLINE vf vf_tanh(vf y) {
    const vf zero = vf_zero();
    const vf a = vf_max(vf_sub(zero, y), y); /* |y|; NaN stays NaN */
    const vf z = vf_mul(a, a);
    vf p = vf_set1(0.0022958428041292508f);
    p = vf_fma(p, z, vf_set1(-0.0083469861176278266f));
    p = vf_fma(p, z, vf_set1(0.02176996466357365f));
    p = vf_fma(p, z, vf_set1(-0.053959406813452855f));
    p = vf_fma(p, z, vf_set1(0.13333304286022896f));
    p = vf_fma(p, z, vf_set1(-0.33333333178045982f));
    const vf small = vf_fma(vf_mul(a, z), p, a);
    const vf e = vf_exp2(vf_mul(a, vf_set1(2.8853900817779268f))); /* e^(2a) = 2^(2 a log2 e) */
    const vf big = vf_sub(vf_set1(1.0f), vf_mul(vf_set1(2.0f), softcap_recip(vf_add(e, vf_set1(1.0f)))));
    const vf t = vf_blend(vf_le(a, vf_set1(0.625f)), small, big);
    return vf_blend(vf_le(zero, y), t, vf_sub(zero, t));
}

/* s[i] = cap * tanh(s[i] / cap) for i < n (cap > 0, in the scores' units). */
static inline void attune_softcap_scores(float *s, int64_t n, float cap) {
    const vf c = vf_set1(cap), inv = vf_set1(1.0f / cap);
    int64_t i = 0;
    for (; i + VL <= n; i += VL) vf_store(s + i, vf_mul(c, vf_tanh(vf_mul(vf_load(s + i), inv))));
    if (i < n) {
        const vmask m = vm_first((int)(n - i));
        vf_store_n(s + i, vf_mul(c, vf_tanh(vf_mul(vf_load_n(s + i, m), inv))), m);
    }
}

#endif
