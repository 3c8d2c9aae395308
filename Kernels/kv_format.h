/*
 * kv_format.h — K/V element formats inside the kernels (attune_kv_format):
 * addressing, scalar conversion and 16-lane loads that widen bf16 or int8 to
 * fp32 in registers. Internal; the ABI is in attune_attention.h.
 */
#ifndef ATTUNE_KV_FORMAT_H
#define ATTUNE_KV_FORMAT_H

#include "attune_attention.h"
#include "simd.h"

#include <stdint.h>
#include <string.h>

enum { KV_F32 = ATTUNE_KV_F32, KV_BF16 = ATTUNE_KV_BF16, KV_INT8 = ATTUNE_KV_INT8 };

/* The `formats` mask of attune_attention_validate_kv for a kernel reading every format. */
#define ATTUNE_KV_ALL_FORMATS ((1u << ATTUNE_KV_F32) | (1u << ATTUNE_KV_BF16) | (1u << ATTUNE_KV_INT8))

/* Round to nearest even; NaN stays a (quiet) NaN, Inf stays Inf. */
static inline uint16_t kv_to_bf16(float x) {
    uint32_t u;
    memcpy(&u, &x, 4);
    if ((u & 0x7FFFFFFFu) > 0x7F800000u) return (uint16_t)((u >> 16) | 0x40u);
    u += 0x7FFFu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}

static inline float kv_from_bf16(uint16_t h) {
    uint32_t u = (uint32_t)h << 16;
    float x;
    memcpy(&x, &u, 4);
    return x;
}

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
        else if (FMT == KV_BF16) r.v[i] = kv_from_bf16(((const uint16_t *)p)[i]);
        else r.v[i] = (float)((const int8_t *)p)[i];
    }
    return r;
}
#endif

#endif
