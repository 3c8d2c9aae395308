/*
 * attention_tiles_bf16.h — bf16 micro-kernels of the `precision=bf16` attention
 * tiles (flash_bf16.c): Q.K^T and P.V as dot products of bf16 pairs with f32
 * accumulation (AVX512_BF16 `vdpbf16ps`: lane i += a[2i] b[2i] + a[2i+1] b[2i+1]).
 *
 * Each operand is packed so that the two elements a dot product pairs sit side
 * by side:
 *   Q   [dqk/2][rp][2]   pair p of query row r: (q[r][2p], q[r][2p+1])
 *   K   [n][dk32]        a key row, bf16, padded with zeros to a multiple of 32
 *   P   [n/2][rp][2]     pair i of row r: (P[r][2i], P[r][2i+1])
 *   V   [n/2][dvp][2]    pair i of column c: (V[2i][c], V[2i+1][c])
 * so one 32-bit broadcast (a K pair, a P pair) against one vector of 16 query
 * rows (16 V columns) is 32 multiply-adds. Odd lengths are padded with zero
 * pairs. Rounding to bf16 is round-to-nearest-even (Docs/NUMERICS.md).
 *
 * Without AVX512_BF16 the same names fall back to plain loops that round the
 * same way and multiply in f32: correct everywhere, fast only with the
 * instruction.
 */
#ifndef ATTUNE_ATTENTION_TILES_BF16_H
#define ATTUNE_ATTENTION_TILES_BF16_H

#include "bf16_scalar.h"
#include "simd.h"

#include <stdint.h>
#include <string.h>

#if defined(__AVX512BF16__) && defined(__AVX512BW__)

typedef __m512bh vbf; /* 32 bf16 = 16 pairs */

ATTUNE_INLINE vbf vbf_load(const uint16_t *p) { return (vbf)_mm512_loadu_si512((const void *)p); }
/* One pair (two adjacent bf16) in every 32-bit lane. */
ATTUNE_INLINE vbf vbf_pair(const uint16_t *p) {
    int32_t x;
    memcpy(&x, p, sizeof x);
    return (vbf)_mm512_set1_epi32(x);
}
/* acc lane i += a[2i] b[2i] + a[2i+1] b[2i+1] */
ATTUNE_INLINE vf vbf_dot(vf acc, vbf a, vbf b) { return _mm512_dpbf16_ps(acc, a, b); }

/* dst[2i] = bf16(a[i]), dst[2i+1] = bf16(b[i]), i < 16: two f32 vectors as 16 pairs. */
ATTUNE_INLINE void vbf_store_pairs(uint16_t *dst, vf a, vf b) {
    static const uint16_t zip[32] = {0, 16, 1, 17, 2,  18, 3,  19, 4,  20, 5,  21, 6,  22, 7,  23,
                                     8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31};
    __m512i ab = (__m512i)_mm512_cvtne2ps_pbh(b, a); /* [a0..a15 | b0..b15] */
    _mm512_storeu_si512((void *)dst, _mm512_permutexvar_epi16(_mm512_loadu_si512((const void *)zip), ab));
}
/* dst[i] = bf16(a[i]) for i < 16, bf16(b[i - 16]) for i >= 16: 32 consecutive values. */
ATTUNE_INLINE void vbf_store_row(uint16_t *dst, vf a, vf b) {
    _mm512_storeu_si512((void *)dst, (__m512i)_mm512_cvtne2ps_pbh(b, a));
}

#else /* portable fallback: the same rounding, products summed in f32 */

typedef struct { uint16_t v[2 * VL]; } vbf;

ATTUNE_INLINE vbf vbf_load(const uint16_t *p) { vbf r; memcpy(r.v, p, sizeof r.v); return r; }
ATTUNE_INLINE vbf vbf_pair(const uint16_t *p) {
    vbf r;
    for (int i = 0; i < VL; i++) r.v[2 * i] = p[0], r.v[2 * i + 1] = p[1];
    return r;
}
ATTUNE_INLINE vf vbf_dot(vf acc, vbf a, vbf b) {
    float x[VL];
    vf_store(x, acc);
    for (int i = 0; i < VL; i++)
        x[i] += bf16_to_f32(a.v[2 * i]) * bf16_to_f32(b.v[2 * i]) + bf16_to_f32(a.v[2 * i + 1]) * bf16_to_f32(b.v[2 * i + 1]);
    return vf_load(x);
}
ATTUNE_INLINE void vbf_store_pairs(uint16_t *dst, vf a, vf b) {
    float x[VL], y[VL];
    vf_store(x, a);
    vf_store(y, b);
    for (int i = 0; i < VL; i++) dst[2 * i] = bf16_from_f32(x[i]), dst[2 * i + 1] = bf16_from_f32(y[i]);
}
ATTUNE_INLINE void vbf_store_row(uint16_t *dst, vf a, vf b) {
    float x[VL], y[VL];
    vf_store(x, a);
    vf_store(y, b);
    for (int i = 0; i < VL; i++) dst[i] = bf16_from_f32(x[i]), dst[VL + i] = bf16_from_f32(y[i]);
}

#endif

/* 2^x as simd.h's vf_exp2 (same range reduction, exact 0 below -200, NaN stays NaN)
 * with a degree-4 Taylor polynomial of 2^f on [-1/2, 1/2]: relative error < 4.3e-5
 * (|f ln 2|^5 / 5!), enough for probabilities rounded to bf16 (2^-9) next. */
ATTUNE_INLINE vf vf_exp2_bf16(vf x) {
    x = vf_max(vf_set1(-200.0f), x);
    x = vf_min(vf_set1(127.0f), x);
#if defined(__AVX512F__)
    vf n = _mm512_roundscale_ps(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
#else
    vf n;
    for (int i = 0; i < VL; i++) n.v[i] = nearbyintf(x.v[i]);
#endif
    vf f = vf_sub(x, n);
    vf p = vf_set1(9.6181291076284772e-3f);
    p = vf_fma(p, f, vf_set1(5.5504108664821580e-2f));
    p = vf_fma(p, f, vf_set1(2.4022650695910071e-1f));
    p = vf_fma(p, f, vf_set1(6.9314718055994531e-1f));
    p = vf_fma(p, f, vf_set1(1.0f));
#if defined(__AVX512F__)
    return _mm512_scalef_ps(p, n);
#else
    vf r;
    for (int i = 0; i < VL; i++) r.v[i] = isnan(x.v[i]) ? x.v[i] : ldexpf(p.v[i], (int)n.v[i]);
    return r;
#endif
}

/* S^T[kk][c*16..] for RK keys x CV vectors of query rows: dq2 pairs of the packed
 * Q (pair stride 2 rp) against K rows of stride ks2 (bf16 elements). */
ATTUNE_INLINE void qk_bf16_block(const uint16_t *k, int ks2, const uint16_t *q, int rp, int dq2, float *st,
                                 const int RK, const int CV) {
    vf acc[6][4];
    for (int kk = 0; kk < RK; kk++)
        for (int c = 0; c < CV; c++) acc[kk][c] = vf_zero();
    for (int p = 0; p < dq2; p++) {
        vbf qv[4];
        for (int c = 0; c < CV; c++) qv[c] = vbf_load(q + ((int64_t)p * rp + c * VL) * 2);
        for (int kk = 0; kk < RK; kk++) {
            vbf kb = vbf_pair(k + (int64_t)kk * ks2 + 2 * p);
            for (int c = 0; c < CV; c++) acc[kk][c] = vbf_dot(acc[kk][c], qv[c], kb);
        }
    }
    for (int kk = 0; kk < RK; kk++)
        for (int c = 0; c < CV; c++) vf_store(st + (int64_t)kk * rp + c * VL, acc[kk][c]);
}

/* RR rows x CV vectors of columns of P.V over key pairs [ib, ie): acc rows (stride
 * dvp) are scaled by alpha[r] first, or with alpha == NULL the block is summed from
 * zero and then added (blocked summation). P pairs of row r of the block at
 * pt[i * ps + 2 r], V pairs at v[i * vs + 2 c]. */
ATTUNE_INLINE void pv_bf16_block(float *acc, int dvp, const float *alpha, const uint16_t *pt, int ps,
                                 const uint16_t *v, int vs, int ib, int ie, const int RR, const int CV) {
    vf o[6][4];
    for (int r = 0; r < RR; r++) {
        for (int c = 0; c < CV; c++)
            o[r][c] = alpha ? vf_mul(vf_load(acc + (int64_t)r * dvp + c * VL), vf_set1(alpha[r])) : vf_zero();
    }
    for (int i = ib; i < ie; i++) {
        vbf vv[4];
        for (int c = 0; c < CV; c++) vv[c] = vbf_load(v + (int64_t)i * vs + c * 2 * VL);
        const uint16_t *pr = pt + (int64_t)i * ps;
        for (int r = 0; r < RR; r++) {
            vbf pb = vbf_pair(pr + 2 * r);
            for (int c = 0; c < CV; c++) o[r][c] = vbf_dot(o[r][c], vv[c], pb);
        }
    }
    for (int r = 0; r < RR; r++)
        for (int c = 0; c < CV; c++) {
            float *a = acc + (int64_t)r * dvp + c * VL;
            vf_store(a, alpha ? o[r][c] : vf_add(vf_load(a), o[r][c]));
        }
}

#endif
