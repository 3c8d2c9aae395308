/*
 * simd.h — the 16-lane fp32 vector vocabulary the kernels are written in.
 *
 * With AVX-512 (this project's machines) every operation is one or two
 * instructions; without it the same names fall back to plain loops the
 * compiler can vectorise, so the kernels stay correct on any x86-64 or ARM
 * machine, only slower.
 *
 * NaN rule: vf_max/vf_min return `x` when it is NaN (clamping must never turn
 * a NaN input into a finite value, or NaNs would silently vanish).
 */
#ifndef ATTUNE_SIMD_H
#define ATTUNE_SIMD_H

#include <math.h>
#include <stdint.h>

#define VL 16
#define ATTUNE_INLINE static inline __attribute__((always_inline))

#if defined(__AVX512F__)
#include <immintrin.h>

typedef __m512 vf;
typedef __mmask16 vmask;

ATTUNE_INLINE vf vf_zero(void) { return _mm512_setzero_ps(); }
ATTUNE_INLINE vf vf_set1(float x) { return _mm512_set1_ps(x); }
ATTUNE_INLINE vf vf_load(const float *p) { return _mm512_loadu_ps(p); }
ATTUNE_INLINE void vf_store(float *p, vf x) { _mm512_storeu_ps(p, x); }
/* First n lanes (0..16) from memory, zeros elsewhere; never reads past n. */
ATTUNE_INLINE vmask vm_first(int n) { return (vmask)(n >= 16 ? 0xFFFF : ((1u << n) - 1u)); }
ATTUNE_INLINE vf vf_load_n(const float *p, vmask m) { return _mm512_maskz_loadu_ps(m, p); }
ATTUNE_INLINE void vf_store_n(float *p, vf x, vmask m) { _mm512_mask_storeu_ps(p, m, x); }
ATTUNE_INLINE vf vf_add(vf a, vf b) { return _mm512_add_ps(a, b); }
ATTUNE_INLINE vf vf_sub(vf a, vf b) { return _mm512_sub_ps(a, b); }
ATTUNE_INLINE vf vf_mul(vf a, vf b) { return _mm512_mul_ps(a, b); }
ATTUNE_INLINE vf vf_div(vf a, vf b) { return _mm512_div_ps(a, b); }
ATTUNE_INLINE vf vf_fma(vf a, vf b, vf c) { return _mm512_fmadd_ps(a, b, c); }
/* max(lo, x), NaN-propagating in x. */
ATTUNE_INLINE vf vf_max(vf lo, vf x) { return _mm512_max_ps(lo, x); }
ATTUNE_INLINE vf vf_min(vf hi, vf x) { return _mm512_min_ps(hi, x); }
ATTUNE_INLINE float vf_hsum(vf x) { return _mm512_reduce_add_ps(x); }
ATTUNE_INLINE vmask vf_eq(vf a, vf b) { return _mm512_cmp_ps_mask(a, b, _CMP_EQ_OQ); }
/* a <= b; false when either is NaN */
ATTUNE_INLINE vmask vf_le(vf a, vf b) { return _mm512_cmp_ps_mask(a, b, _CMP_LE_OQ); }
/* where m: a, else b */
ATTUNE_INLINE vf vf_blend(vmask m, vf a, vf b) { return _mm512_mask_blend_ps(m, b, a); }

/* Lane r of the int vector [lo_r, hi_r) contains j? (per-row visibility). */
typedef __m512i vi;
ATTUNE_INLINE vi vi_load(const int32_t *p) { return _mm512_loadu_si512((const void *)p); }
ATTUNE_INLINE vmask vi_in_range(vi lo, vi hi, int32_t j) {
    vi jj = _mm512_set1_epi32(j);
    return _mm512_cmple_epi32_mask(lo, jj) & _mm512_cmplt_epi32_mask(jj, hi);
}
/* Lanes of a equal to x (a row's document id against a key's). */
ATTUNE_INLINE vmask vi_eq1(vi a, int32_t x) { return _mm512_cmpeq_epi32_mask(a, _mm512_set1_epi32(x)); }

/* 2^f for f in [-1/2, 1/2]: degree-7 Taylor polynomial, relative error < 5e-9. */
ATTUNE_INLINE vf vf_exp2_fraction(vf f) {
    vf p = vf_set1(1.5252733804059840e-5f);
    p = vf_fma(p, f, vf_set1(1.5403530393381608e-4f));
    p = vf_fma(p, f, vf_set1(1.3333558146428443e-3f));
    p = vf_fma(p, f, vf_set1(9.6181291076284772e-3f));
    p = vf_fma(p, f, vf_set1(5.5504108664821580e-2f));
    p = vf_fma(p, f, vf_set1(2.4022650695910071e-1f));
    p = vf_fma(p, f, vf_set1(6.9314718055994531e-1f));
    return vf_fma(p, f, vf_set1(1.0f));
}

/* 2^x for x <= 0-ish arguments of softmax; exact 0 below -200, NaN stays NaN.
 * Degree-7 Taylor polynomial of 2^f on [-1/2, 1/2]: relative error < 5e-9. */
ATTUNE_INLINE vf vf_exp2(vf x) {
    x = vf_max(vf_set1(-200.0f), x);
    x = vf_min(vf_set1(127.0f), x);
    vf n = _mm512_roundscale_ps(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    return _mm512_scalef_ps(vf_exp2_fraction(vf_sub(x, n)), n);
}

/* out lane k = sum of all lanes of acc[k], k < 16. */
ATTUNE_INLINE vf vf_transpose_sum16(vf acc[16]) {
    /* Halving tree: after level L a vector holds 2^L keys, each spread over
     * 16 >> L lanes; combining two vectors keeps the lane order. */
    static const int32_t lo4[16] = {0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30};
    static const int32_t hi4[16] = {1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31};
    const vi ilo = _mm512_loadu_si512((const void *)lo4), ihi = _mm512_loadu_si512((const void *)hi4);
    vf l1[8], l2[4], l3[2];
    /* Level 1: fold each vector's upper 256 bits onto its lower ones and put
     * two keys side by side (8 partials each). Levels 2..4: sum the even and
     * odd lanes of the concatenation of two vectors, which halves the
     * partials per key and doubles the keys per vector, keeping key order. */
    for (int i = 0; i < 8; i++) {
        vf x = acc[2 * i], y = acc[2 * i + 1];
        /* [x.lo | y.lo] + [x.hi | y.hi] */
        l1[i] = _mm512_add_ps(_mm512_shuffle_f32x4(x, y, 0x44), _mm512_shuffle_f32x4(x, y, 0xEE));
    }
    for (int i = 0; i < 4; i++) {
        vf a = _mm512_permutex2var_ps(l1[2 * i], ilo, l1[2 * i + 1]);
        vf b = _mm512_permutex2var_ps(l1[2 * i], ihi, l1[2 * i + 1]);
        l2[i] = _mm512_add_ps(a, b);
    }
    for (int i = 0; i < 2; i++) {
        vf a = _mm512_permutex2var_ps(l2[2 * i], ilo, l2[2 * i + 1]);
        vf b = _mm512_permutex2var_ps(l2[2 * i], ihi, l2[2 * i + 1]);
        l3[i] = _mm512_add_ps(a, b);
    }
    vf a = _mm512_permutex2var_ps(l3[0], ilo, l3[1]);
    vf b = _mm512_permutex2var_ps(l3[0], ihi, l3[1]);
    return _mm512_add_ps(a, b);
}

/* Packed row groups: in the narrow decode layout lane l of a vector holds
 * row l % R (R = 1, 2, 4, 8 or 16) of key l / R. */
ATTUNE_INLINE __m512i vi_iota_(void) {
    return _mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0);
}
/* lane l = p[l % R]; reads only p[0..R). */
ATTUNE_INLINE vf vf_row_spread(const float *p, int R) {
    __m512i idx = _mm512_and_si512(vi_iota_(), _mm512_set1_epi32(R - 1));
    return _mm512_permutexvar_ps(idx, _mm512_maskz_loadu_ps(vm_first(R), p));
}
ATTUNE_INLINE vi vi_row_spread(const int32_t *p, int R) {
    __m512i idx = _mm512_and_si512(vi_iota_(), _mm512_set1_epi32(R - 1));
    return _mm512_permutexvar_epi32(idx, _mm512_maskz_loadu_epi32(vm_first(R), p));
}
/* Every lane gets the max (sum) over the lanes of its row: a butterfly over
 * the lane-index bits above R. NaN propagation as in vf_max. */
ATTUNE_INLINE vf vf_row_max(vf x, int R) {
    for (int s = R; s < 16; s *= 2)
        x = vf_max(x, _mm512_permutexvar_ps(_mm512_xor_si512(vi_iota_(), _mm512_set1_epi32(s)), x));
    return x;
}
ATTUNE_INLINE vf vf_row_sum(vf x, int R) {
    for (int s = R; s < 16; s *= 2)
        x = vf_add(x, _mm512_permutexvar_ps(_mm512_xor_si512(vi_iota_(), _mm512_set1_epi32(s)), x));
    return x;
}
/* Lane l: lo <= j0 + l / R < hi (lo, hi spread by row). */
ATTUNE_INLINE vmask vi_keys_in_range(vi lo, vi hi, int32_t j0, int R) {
    vi j = _mm512_add_epi32(_mm512_set1_epi32(j0),
                            _mm512_srlv_epi32(vi_iota_(), _mm512_set1_epi32(__builtin_ctz((unsigned)R))));
    return _mm512_cmple_epi32_mask(lo, j) & _mm512_cmplt_epi32_mask(j, hi);
}

#else /* portable fallback */

typedef struct { float v[VL]; } vf;
typedef uint32_t vmask;
typedef struct { int32_t v[VL]; } vi;

ATTUNE_INLINE vf vf_zero(void) { vf r; for (int i = 0; i < VL; i++) r.v[i] = 0.0f; return r; }
ATTUNE_INLINE vf vf_set1(float x) { vf r; for (int i = 0; i < VL; i++) r.v[i] = x; return r; }
ATTUNE_INLINE vf vf_load(const float *p) { vf r; for (int i = 0; i < VL; i++) r.v[i] = p[i]; return r; }
ATTUNE_INLINE void vf_store(float *p, vf x) { for (int i = 0; i < VL; i++) p[i] = x.v[i]; }
ATTUNE_INLINE vmask vm_first(int n) { return n >= 16 ? 0xFFFFu : ((1u << n) - 1u); }
ATTUNE_INLINE vf vf_load_n(const float *p, vmask m) { vf r; for (int i = 0; i < VL; i++) r.v[i] = (m >> i & 1u) ? p[i] : 0.0f; return r; }
ATTUNE_INLINE void vf_store_n(float *p, vf x, vmask m) { for (int i = 0; i < VL; i++) if (m >> i & 1u) p[i] = x.v[i]; }
#define ATTUNE_LANEWISE(name, expr) \
    ATTUNE_INLINE vf name(vf a, vf b) { vf r; for (int i = 0; i < VL; i++) { float x = a.v[i], y = b.v[i]; r.v[i] = (expr); } return r; }
ATTUNE_LANEWISE(vf_add, x + y)
ATTUNE_LANEWISE(vf_sub, x - y)
ATTUNE_LANEWISE(vf_mul, x * y)
ATTUNE_LANEWISE(vf_div, x / y)
ATTUNE_LANEWISE(vf_max, (isnan(y) || y > x) ? y : x)
ATTUNE_LANEWISE(vf_min, (isnan(y) || y < x) ? y : x)
#undef ATTUNE_LANEWISE
ATTUNE_INLINE vf vf_fma(vf a, vf b, vf c) { vf r; for (int i = 0; i < VL; i++) r.v[i] = fmaf(a.v[i], b.v[i], c.v[i]); return r; }
ATTUNE_INLINE float vf_hsum(vf x) { float s = 0.0f; for (int i = 0; i < VL; i++) s += x.v[i]; return s; }
ATTUNE_INLINE vmask vf_eq(vf a, vf b) { vmask m = 0; for (int i = 0; i < VL; i++) m |= (vmask)(a.v[i] == b.v[i]) << i; return m; }
ATTUNE_INLINE vmask vf_le(vf a, vf b) { vmask m = 0; for (int i = 0; i < VL; i++) m |= (vmask)(a.v[i] <= b.v[i]) << i; return m; }
ATTUNE_INLINE vf vf_blend(vmask m, vf a, vf b) { vf r; for (int i = 0; i < VL; i++) r.v[i] = (m >> i & 1u) ? a.v[i] : b.v[i]; return r; }
ATTUNE_INLINE vi vi_load(const int32_t *p) { vi r; for (int i = 0; i < VL; i++) r.v[i] = p[i]; return r; }
ATTUNE_INLINE vmask vi_in_range(vi lo, vi hi, int32_t j) {
    vmask m = 0; for (int i = 0; i < VL; i++) m |= (vmask)(lo.v[i] <= j && j < hi.v[i]) << i; return m;
}
ATTUNE_INLINE vmask vi_eq1(vi a, int32_t x) { vmask m = 0; for (int i = 0; i < VL; i++) m |= (vmask)(a.v[i] == x) << i; return m; }
ATTUNE_INLINE vf vf_exp2(vf x) {
    vf r; for (int i = 0; i < VL; i++) r.v[i] = isnan(x.v[i]) ? x.v[i] : (x.v[i] < -200.0f ? 0.0f : exp2f(x.v[i])); return r;
}
ATTUNE_INLINE vf vf_row_spread(const float *p, int R) { vf r; for (int i = 0; i < VL; i++) r.v[i] = p[i % R]; return r; }
ATTUNE_INLINE vi vi_row_spread(const int32_t *p, int R) { vi r; for (int i = 0; i < VL; i++) r.v[i] = p[i % R]; return r; }
ATTUNE_INLINE vf vf_row_max(vf x, int R) {
    vf r;
    for (int i = 0; i < VL; i++) {
        float m = x.v[i % R];
        for (int k = i % R + R; k < VL; k += R) m = (isnan(x.v[k]) || x.v[k] > m) ? x.v[k] : m;
        r.v[i] = m;
    }
    return r;
}
ATTUNE_INLINE vf vf_row_sum(vf x, int R) {
    vf r;
    for (int i = 0; i < VL; i++) {
        float t = 0.0f;
        for (int k = i % R; k < VL; k += R) t += x.v[k];
        r.v[i] = t;
    }
    return r;
}
ATTUNE_INLINE vmask vi_keys_in_range(vi lo, vi hi, int32_t j0, int R) {
    vmask m = 0; for (int i = 0; i < VL; i++) m |= (vmask)(lo.v[i] <= j0 + i / R && j0 + i / R < hi.v[i]) << i;
    return m;
}
ATTUNE_INLINE vf vf_transpose_sum16(vf acc[16]) { vf r; for (int k = 0; k < VL; k++) r.v[k] = vf_hsum(acc[k]); return r; }

#endif

#endif /* ATTUNE_SIMD_H */
