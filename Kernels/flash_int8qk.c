/*
 * flash_int8qk.c — the int8 Q.K^T of flash's `precision=int8qk` wide tiles
 * (attention_int8qk.h has the method and the quantisation rule): K smoothed
 * and quantised once per call, Q once per work item, scores with
 * AVX512-VNNI `vpdpbusd` and a dequantising epilogue. The rest of the tile
 * (softmax, bf16 P.V) is the bf16 tiles' (flash_bf16.c).
 *
 * Packed operands, so that one 32-bit broadcast of a key's four bytes against
 * one vector of 16 query rows x 4 dims is 64 multiply-adds:
 *   Q  [qk_dim/4][rp][4]  int8, dims 4p..4p+3 of row r side by side
 *   K  [klen][ks4]        uint8 (k8 + 128) per key, ks4 = qk_dim rounded up to 4
 * Padded dims are 0 in Q (and 128 in K), so they add nothing. The int32 sums
 * cannot overflow: |sum| <= qk_dim * 255 * 127 < 2^31 for qk_dim < 66 000.
 *
 * Without AVX512-VNNI the same integer sums run as plain loops: identical
 * scores, slowly.
 */
#include "attention_int8qk.h"
#include "attention_bf16.h"
#include "attention_internal.h"
#include "kv_format.h"
#include "simd.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

#ifdef _OPENMP
#include <omp.h>
#endif

enum { QK_KEYS = 6, QK_COLS = 4, PACK_KEYS = 64, MEAN_SAMPLES = 256 };

/* Key j of batch x kv head bg as stored, and its int8 scale (kv_stored_row). */
static const void *k_row(const attune_int8qk_k *kk, int64_t bg, int64_t j, float *scale) {
    const attune_attention_problem *p = kk->p;
    return kv_stored_row(p, kk->t, 0, bg / p->kv_heads, bg % p->kv_heads, j, scale);
}

/* Lanes of x that are finite (x - x is 0 for finite x, NaN for NaN and Inf). */
ATTUNE_INLINE vmask finite_lanes(vf x) { return vf_eq(vf_sub(x, x), vf_zero()); }
ATTUNE_INLINE vf vf_abs(vf x) { return vf_max(x, vf_sub(vf_zero(), x)); }

#if defined(__AVX512F__)
ATTUNE_INLINE float vf_hmax(vf x) { return _mm512_reduce_max_ps(x); }
/* round(x) + 128 as bytes, the first n lanes (x within [-127, 127]). */
ATTUNE_INLINE void store_key_bytes(uint8_t *dst, vf x, int n) {
    const __m512i i = _mm512_add_epi32(_mm512_cvtps_epi32(x), _mm512_set1_epi32(128));
    _mm512_mask_cvtepi32_storeu_epi8(dst, vm_first(n), i);
}
#else
ATTUNE_INLINE float vf_hmax(vf x) {
    float m = x.v[0];
    for (int i = 1; i < VL; i++) m = x.v[i] > m ? x.v[i] : m;
    return m;
}
ATTUNE_INLINE void store_key_bytes(uint8_t *dst, vf x, int n) {
    for (int i = 0; i < n; i++) dst[i] = (uint8_t)((int)rintf(x.v[i]) + 128);
}
#endif

/* mu of bg: the mean of its finite key rows (0 when there are none), over every
 * key when there are at most 2 MEAN_SAMPLES, else over every step-th key from klo
 * (step = klen / MEAN_SAMPLES): any mu keeps the scores exact (q'.mu is added
 * back), it only has to remove the keys' shared offset, and reading every key
 * twice (mean, then quantisation) cost 8 % of a causal N=2048 call. */
ATTUNE_INLINE void key_mean_fmt(attune_int8qk_k *kk, int64_t bg, const int FMT) {
    const int dk = (int)kk->p->qk_dim;
    float *mu = kk->mean + bg * dk;
    int64_t count = 0;
    const int64_t step = kk->klen > 2 * MEAN_SAMPLES ? kk->klen / MEAN_SAMPLES : 1;
    memset(mu, 0, sizeof(float) * (size_t)dk);
    for (int64_t j = kk->klo; j < kk->klo + kk->klen; j += step) {
        float s;
        const void *k = k_row(kk, bg, j, &s);
        vmask finite = vm_first(VL);
        for (int d = 0; d < dk; d += VL) finite &= finite_lanes(kv_load_stored(k, d, vm_first(dk - d), FMT, s));
        if (finite != vm_first(VL)) continue;
        for (int d = 0; d < dk; d += VL) {
            const vmask m = vm_first(dk - d);
            vf_store_n(mu + d, vf_add(vf_load_n(mu + d, m), kv_load_stored(k, d, m, FMT, s)), m);
        }
        count++;
    }
    const float inv = count ? 1.0f / (float)count : 0.0f;
    for (int d = 0; d < dk; d++) mu[d] *= inv;
}

/* Keys [j0, j1) of bg: k8 + 128 and the scale, per key. */
ATTUNE_INLINE void quantise_keys_fmt(attune_int8qk_k *kk, int64_t bg, int64_t j0, int64_t j1, const int FMT) {
    const int dk = (int)kk->p->qk_dim, ks4 = kk->ks4;
    const float *mu = kk->mean + bg * dk;
    for (int64_t j = j0; j < j1; j++) {
        float s;
        const void *k = k_row(kk, bg, j, &s);
        uint8_t *dst = kk->k8 + (bg * kk->klen + (j - kk->klo)) * ks4;
        float *scale = kk->kscale + bg * kk->klen + (j - kk->klo);
        vf amax = vf_zero();
        vmask finite = vm_first(VL);
        for (int d = 0; d < dk; d += VL) {
            const vmask m = vm_first(dk - d);
            const vf x = vf_sub(kv_load_stored(k, d, m, FMT, s), vf_load_n(mu + d, m));
            finite &= finite_lanes(x);
            amax = vf_max(amax, vf_abs(x));
        }
        memset(dst + dk, 128, (size_t)(ks4 - dk));
        if (finite != vm_first(VL)) {
            memset(dst, 128, (size_t)dk);
            *scale = NAN;
            continue;
        }
        const float top = vf_hmax(amax);
        const vf inv = vf_set1(top > 0.0f ? 127.0f / top : 0.0f);
        for (int d = 0; d < dk; d += VL) {
            const vmask m = vm_first(dk - d);
            store_key_bytes(dst + d, vf_mul(vf_sub(kv_load_stored(k, d, m, FMT, s), vf_load_n(mu + d, m)), inv), dk - d < VL ? dk - d : VL);
        }
        *scale = top / 127.0f;
    }
}

/* K may be a bf16/int8 cache: its stored values (an int8 element times its row's scale)
 * are smoothed and quantised as fp32 keys holding them would be, so the scores are
 * bit-identical to int8qk over such fp32 keys. One instance per format. */
static void key_mean(attune_int8qk_k *kk, int64_t bg) {
    switch (kk->p->kv.format) {
    case KV_BF16: key_mean_fmt(kk, bg, KV_BF16); break;
    case KV_INT8: key_mean_fmt(kk, bg, KV_INT8); break;
    default: key_mean_fmt(kk, bg, KV_F32); break;
    }
}

static void quantise_keys(attune_int8qk_k *kk, int64_t bg, int64_t j0, int64_t j1) {
    switch (kk->p->kv.format) {
    case KV_BF16: quantise_keys_fmt(kk, bg, j0, j1, KV_BF16); break;
    case KV_INT8: quantise_keys_fmt(kk, bg, j0, j1, KV_INT8); break;
    default: quantise_keys_fmt(kk, bg, j0, j1, KV_F32); break;
    }
}

int attune_int8qk_prepack(attune_int8qk_k *kk, int threads) {
    const attune_attention_problem *p = kk->p;
    int64_t hi;
    attune_visible_keys(kk->p, kk->q_offset, &kk->klo, &hi);
    kk->klen = hi - kk->klo;
    kk->ks4 = (int)((p->qk_dim + 3) / 4 * 4);
    const int64_t heads = p->batch * p->kv_heads;
    const size_t kbytes = ((size_t)(heads * kk->klen * kk->ks4) + 63) / 64 * 64;
    const size_t sbytes = (sizeof(float) * (size_t)(heads * kk->klen) + 63) / 64 * 64;
    uint8_t *buf = attune_kept_take(ATTUNE_KEPT_INT8QK_K, kbytes + sbytes + sizeof(float) * (size_t)(heads * p->qk_dim) + 64, &kk->bytes);
    if (!buf) return 0;
    kk->k8 = buf;
    kk->kscale = (float *)(buf + kbytes);
    kk->mean = (float *)(buf + kbytes + sbytes);
    const int64_t chunks = (kk->klen + PACK_KEYS - 1) / PACK_KEYS, n = heads * chunks;
    (void)threads;
#ifdef _OPENMP
#pragma omp parallel num_threads(threads)
#endif
    {
#ifdef _OPENMP
#pragma omp for schedule(static)
#endif
        for (int64_t bg = 0; bg < heads; bg++) key_mean(kk, bg);
#ifdef _OPENMP
#pragma omp for schedule(static)
#endif
        for (int64_t it = 0; it < n; it++) {
            const int64_t j0 = kk->klo + it % chunks * PACK_KEYS, end = kk->klo + kk->klen;
            quantise_keys(kk, it / chunks, j0, j0 + PACK_KEYS < end ? j0 + PACK_KEYS : end);
        }
    }
    return 1;
}

void attune_int8qk_release(attune_int8qk_k *kk) {
    attune_kept_give(ATTUNE_KEPT_INT8QK_K, kk->k8, kk->bytes);
    kk->k8 = NULL;
    kk->kscale = kk->mean = NULL;
}

static size_t q_bytes(int rp, int64_t qk_dim) { return (size_t)((qk_dim + 3) / 4) * 4 * (size_t)rp; }

int8_t *attune_int8qk_alloc_q(int rp, int64_t qk_dim) {
    return attune_scratch_alloc(q_bytes(rp, qk_dim) + 3 * sizeof(float) * (size_t)rp);
}

#if defined(__AVX512F__)
/* Four dims of 16 rows (x[e] = dim 4p + e, already times 127 / max) as rounded bytes
 * in the packed order, 4 per row; returns their sum per row. */
ATTUNE_INLINE __m512i store_q_group(int8_t *dst, const vf x[4]) {
    const __m512i lo = _mm512_set1_epi32(-127), hi = _mm512_set1_epi32(127), byte = _mm512_set1_epi32(0xFF);
    __m512i packed = _mm512_setzero_si512(), sum = _mm512_setzero_si512();
    for (int e = 0; e < 4; e++) {
        const __m512i i = _mm512_min_epi32(hi, _mm512_max_epi32(lo, _mm512_cvtps_epi32(x[e])));
        sum = _mm512_add_epi32(sum, i);
        packed = _mm512_or_si512(packed, _mm512_slli_epi32(_mm512_and_si512(i, byte), 8 * e));
    }
    _mm512_storeu_si512((void *)dst, packed);
    return sum;
}
#endif

void attune_int8qk_pack_q(const attune_int8qk_k *kk, const float *qt, int8_t *q8, int rp, int64_t bg) {
    const int dk = (int)kk->p->qk_dim, dq4 = (dk + 3) / 4;
    const float *mu = kk->mean + bg * dk;
    float *sq = (float *)(q8 + q_bytes(rp, dk)), *cq = sq + rp;
    int32_t *corr = (int32_t *)(cq + rp);
    for (int c = 0; c < rp; c += VL) {
        /* Row maxima and non-finite rows; q'.mu. */
        vf amax = vf_zero(), dot = vf_zero();
        vmask finite = vm_first(VL);
        for (int d = 0; d < dk; d++) {
            const vf x = vf_load(qt + (int64_t)d * rp + c);
            finite &= finite_lanes(x);
            amax = vf_max(amax, vf_abs(x));
            dot = vf_fma(x, vf_set1(mu[d]), dot);
        }
        /* A row with NaN/Inf gets scale NaN (its q8 are whatever the rounding gives). */
        const vmask nonzero = finite & (vmask)~vf_eq(amax, vf_zero());
        const vf inv = vf_blend(nonzero, vf_div(vf_set1(127.0f), amax), vf_zero());
        vf_store(sq + c, vf_blend(finite, vf_mul(amax, vf_set1(1.0f / 127.0f)), vf_set1(NAN)));
        vf_store(cq + c, dot);
#if defined(__AVX512F__)
        __m512i sum = _mm512_setzero_si512();
        for (int p = 0; p < dq4; p++) {
            vf x[4];
            for (int e = 0; e < 4; e++)
                x[e] = 4 * p + e < dk ? vf_mul(vf_load(qt + (int64_t)(4 * p + e) * rp + c), inv) : vf_zero();
            sum = _mm512_add_epi32(sum, store_q_group(q8 + ((int64_t)p * rp + c) * 4, x));
        }
        _mm512_storeu_si512((void *)(corr + c), _mm512_mullo_epi32(sum, _mm512_set1_epi32(-128)));
#else
        float iv[VL];
        vf_store(iv, inv);
        for (int r = 0; r < VL; r++) {
            int32_t total = 0;
            for (int d = 0; d < 4 * dq4; d++) {
                const float x = d < dk ? qt[(int64_t)d * rp + c + r] * iv[r] : 0.0f;
                const int v = (int)rintf(fmaxf(-127.0f, fminf(127.0f, x))); /* NaN rows: any value */
                q8[((int64_t)(d / 4) * rp + c + r) * 4 + d % 4] = (int8_t)v;
                total += v;
            }
            corr[c + r] = -128 * total;
        }
#endif
    }
}

/* S^T[kk][c*16..] of RK keys x CV vectors of query rows: dq4 groups of four dims
 * of the packed Q (group stride 4 rp) against K rows of stride ks4 bytes, then
 * s = sq sk (int sum) + cq. */
#if defined(__AVX512VNNI__) && defined(__AVX512F__)
ATTUNE_INLINE void qk_int8_block(const uint8_t *k, int ks4, const float *sk, const int8_t *q, const float *sq,
                                 const float *cq, const int32_t *corr, int rp, int dq4, float *st, const int RK,
                                 const int CV) {
    __m512i acc[QK_KEYS][QK_COLS];
    for (int c = 0; c < CV; c++) {
        const __m512i init = _mm512_loadu_si512((const void *)(corr + c * VL));
        for (int kk = 0; kk < RK; kk++) acc[kk][c] = init;
    }
    for (int p = 0; p < dq4; p++) {
        __m512i qv[QK_COLS];
        for (int c = 0; c < CV; c++) qv[c] = _mm512_loadu_si512((const void *)(q + ((int64_t)p * rp + c * VL) * 4));
        for (int kk = 0; kk < RK; kk++) {
            int32_t x;
            memcpy(&x, k + (int64_t)kk * ks4 + 4 * p, sizeof x);
            const __m512i kb = _mm512_set1_epi32(x);
            for (int c = 0; c < CV; c++) acc[kk][c] = _mm512_dpbusd_epi32(acc[kk][c], kb, qv[c]);
        }
    }
    for (int c = 0; c < CV; c++) {
        const vf s = vf_load(sq + c * VL), o = vf_load(cq + c * VL);
        for (int kk = 0; kk < RK; kk++)
            vf_store(st + (int64_t)kk * rp + c * VL,
                     vf_fma(_mm512_cvtepi32_ps(acc[kk][c]), vf_mul(s, vf_set1(sk[kk])), o));
    }
}
#else
ATTUNE_INLINE void qk_int8_block(const uint8_t *k, int ks4, const float *sk, const int8_t *q, const float *sq,
                                 const float *cq, const int32_t *corr, int rp, int dq4, float *st, const int RK,
                                 const int CV) {
    for (int kk = 0; kk < RK; kk++)
        for (int r = 0; r < CV * VL; r++) {
            int32_t a = corr[r];
            for (int d = 0; d < 4 * dq4; d++) a += (int32_t)k[(int64_t)kk * ks4 + d] * q[((int64_t)(d / 4) * rp + r) * 4 + d % 4];
            st[(int64_t)kk * rp + r] = fmaf((float)a, sq[r] * sk[kk], cq[r]);
        }
}
#endif

void attune_int8qk_scores(const attune_int8qk_k *kk, const int8_t *q8, float *st_all, int rp, int64_t bg, int64_t j0,
                          int n) {
    const int ks4 = kk->ks4, dq4 = ks4 / 4;
    const float *sq_all = (const float *)(q8 + q_bytes(rp, kk->p->qk_dim)), *cq_all = sq_all + rp;
    const int32_t *corr_all = (const int32_t *)(cq_all + rp);
    for (int c0 = 0; c0 < rp / VL; c0 += QK_COLS) {
        const int cv = rp / VL - c0 < QK_COLS ? rp / VL - c0 : QK_COLS;
        const int8_t *q = q8 + (int64_t)c0 * VL * 4;
        const float *sq = sq_all + c0 * VL, *cq = cq_all + c0 * VL;
        const int32_t *corr = corr_all + c0 * VL;
        for (int jj = 0; jj < n; jj += QK_KEYS) {
            const int64_t key = bg * kk->klen + (j0 + jj - kk->klo);
            const uint8_t *k = kk->k8 + key * ks4;
            const float *sk = kk->kscale + key;
            float *st = st_all + (int64_t)jj * rp + c0 * VL;
#define QK_CV(RK)                                                                  \
    switch (cv) {                                                                  \
    case 4: qk_int8_block(k, ks4, sk, q, sq, cq, corr, rp, dq4, st, RK, 4); break;  \
    case 3: qk_int8_block(k, ks4, sk, q, sq, cq, corr, rp, dq4, st, RK, 3); break;  \
    case 2: qk_int8_block(k, ks4, sk, q, sq, cq, corr, rp, dq4, st, RK, 2); break;  \
    default: qk_int8_block(k, ks4, sk, q, sq, cq, corr, rp, dq4, st, RK, 1); break; \
    }
            switch (n - jj < QK_KEYS ? n - jj : QK_KEYS) {
            case 6: QK_CV(6) break;
            case 5: QK_CV(5) break;
            case 4: QK_CV(4) break;
            case 3: QK_CV(3) break;
            case 2: QK_CV(2) break;
            default: QK_CV(1) break;
            }
#undef QK_CV
        }
    }
}
