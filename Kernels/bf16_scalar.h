/*
 * bf16_scalar.h — the one scalar f32 <-> bf16 conversion of every kernel (attention
 * tiles, KV caches, bf16 weights). Rounding is to nearest even, as torch's
 * `.to(torch.bfloat16)` rounds, so Attune's bf16 values equal the checkpoints' and
 * transformers'. A NaN stays a NaN (quiet bit set: the rounding carry could otherwise
 * turn a NaN into Inf), Inf stays Inf. Widening is exact.
 */
#ifndef ATTUNE_BF16_SCALAR_H
#define ATTUNE_BF16_SCALAR_H

#include <stdint.h>
#include <string.h>

static inline uint16_t bf16_from_f32(float x) {
    uint32_t u;
    memcpy(&u, &x, sizeof u);
    if ((u & 0x7FFFFFFFu) > 0x7F800000u) return (uint16_t)((u >> 16) | 0x40u);
    u += 0x7FFFu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}

static inline float bf16_to_f32(uint16_t h) {
    uint32_t u = (uint32_t)h << 16;
    float x;
    memcpy(&x, &u, sizeof x);
    return x;
}

#endif
