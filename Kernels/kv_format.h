/*
 * kv_format.h — K/V element formats inside the kernels (attune_kv_format):
 * addressing, scalar conversion and 16-lane loads that widen bf16 or int8 to
 * fp32 in registers. Internal; the ABI is in attune_attention.h.
 */
#ifndef ATTUNE_KV_FORMAT_H
#define ATTUNE_KV_FORMAT_H

#include "attune_attention.h"
#include "bf16_scalar.h"
#include "simd.h"

#include <stdint.h>
#include <string.h>

enum { KV_F32 = ATTUNE_KV_F32, KV_BF16 = ATTUNE_KV_BF16, KV_INT8 = ATTUNE_KV_INT8 };

/* The `formats` mask of attune_attention_validate_kv for a kernel reading every format. */
#define ATTUNE_KV_ALL_FORMATS ((1u << ATTUNE_KV_F32) | (1u << ATTUNE_KV_BF16) | (1u << ATTUNE_KV_INT8))

/* Element `i` of a K/V array of format FMT (a compile-time constant in the kernels). */
ATTUNE_INLINE const void *kv_at(const void *base, int64_t i, const int FMT) {
    return (const char *)base + i * (FMT == KV_F32 ? 4 : FMT == KV_BF16 ? 2 : 1);
}

/* The same for a format known at run time. */
static inline const void *kv_at_rt(const void *base, int64_t i, int fmt) {
    return (const char *)base + i * (fmt == KV_F32 ? 4 : fmt == KV_BF16 ? 2 : 1);
}

/* Lanes of mask m from p widened to fp32, 0 elsewhere; int8 gives the integer q
 * (its scale is applied to the dot product or probability, once per key). */
#if defined(__AVX512F__)
#include <immintrin.h>
ATTUNE_INLINE vf kv_load_n(const void *p, vmask m, const int FMT) {
    if (FMT == KV_F32) return _mm512_maskz_loadu_ps(m, p);
    if (FMT == KV_BF16)
        return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(m, p)), 16));
    return _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_maskz_loadu_epi8(m, p)));
}
#else
ATTUNE_INLINE vf kv_load_n(const void *p, vmask m, const int FMT) {
    vf r;
    for (int i = 0; i < VL; i++) {
        if (!(m >> i & 1u)) r.v[i] = 0.0f;
        else if (FMT == KV_F32) r.v[i] = ((const float *)p)[i];
        else if (FMT == KV_BF16) r.v[i] = bf16_to_f32(((const uint16_t *)p)[i]);
        else r.v[i] = (float)((const int8_t *)p)[i];
    }
    return r;
}
#endif

/* K (is_v = 0) or V row j of batch b, kv head g as stored (p->kv.format), and its
 * int8 scale (1 for the other formats). For the tiles that pack K/V once per call
 * (flash_bf16.c, flash_int8qk.c) and so read any format. */
static inline const void *kv_stored_row(const attune_attention_problem *p, const attune_attention_tensors *t, int is_v,
                                        int64_t b, int64_t g, int64_t j, float *scale) {
    const attune_strides *st = is_v ? &p->v_stride : &p->k_stride;
    *scale = 1.0f;
    if (p->kv.format == ATTUNE_KV_INT8) {
        const attune_strides *ss = is_v ? &p->kv.v_scale_stride : &p->kv.k_scale_stride;
        *scale = (is_v ? p->kv.v_scale : p->kv.k_scale)[b * ss->batch + g * ss->head + j * ss->row];
    }
    return kv_at_rt(is_v ? t->v : t->k, b * st->batch + g * st->head + j * st->row, p->kv.format);
}

/* Lanes [c, c + VL) of mask m of a stored row, widened to fp32 (an int8 element times
 * its row's scale, one fp32 rounding: the value a kernel computes with over this cache). */
ATTUNE_INLINE vf kv_load_stored(const void *row, int c, vmask m, int fmt, float scale) {
    if (fmt == KV_F32) return vf_load_n((const float *)row + c, m);
    if (fmt == KV_BF16) return kv_load_n(kv_at(row, c, KV_BF16), m, KV_BF16);
    vf x = vf_mul(kv_load_n(kv_at(row, c, KV_INT8), m, KV_INT8), vf_set1(scale));
    /* The stored value is the rounded product: without this barrier -ffp-contract=fast
       fuses it into the caller's next add (int8qk's k - mu) and skips the rounding. */
#if defined(__AVX512F__)
    __asm__("" : "+v"(x));
#else
    __asm__("" : "+m"(x));
#endif
    return x;
}

#endif
