/*
 * attune_linear_q4.h — linear layers (y = x·Wᵀ + bias) with 4-bit weights, the
 * counterpart of llama.cpp's Q4_0 (groups of 32 weights along a row, one f16 scale
 * each: 4.5 bits a weight) in the int8 format's layout (attune_linear_q8.h).
 *
 * Quantisation is symmetric: each group of `group` consecutive weights of one output
 * row shares a scale s = max|w| / 7 (rounded to the stored precision, then nudged up
 * by one unit if needed so that |w| / s < 7.5), and stores q = rint(w / s) (ties to
 * even) in [-7, 7] as the code q + 8 (1..15; 0 is never written); the weight it
 * stands for is ŵ = q·s, so |w − ŵ| ≤ s/2 for every element (Docs/NUMERICS.md). Q4_0
 * instead maps the group's signed extreme to -8 with s = max|w| / 8, whose error
 * reaches s (not s/2) for weights of the opposite sign; the symmetric rule keeps one
 * bound for every weight.
 *
 * STORAGE LAYOUT: rows of attune_q4_row_bytes() bytes back to back; a row is split
 * into superblocks of 512 weights as for int8, each
 *
 *   scales : one per weight group that starts in it (as int8)
 *   codes  : 4 vectors of 4·lanes bytes; byte b of vector u holds in its low nibble
 *            the code int8 would store in byte b of its vector 2u, in its high nibble
 *            that of vector 2u + 1.
 *
 * so one 64-byte load, masked with 0x0F and shifted by 4, gives two vectors of
 * unsigned codes laid out exactly as int8's, which meet the same int8 activations.
 * Requirements are int8's (attune_q4_check).
 *
 * KERNELS. Decode (rows ≤ ATTUNE_Q8_GEMV_MAX_ROWS): activations quantised per run of
 * 32 exactly as for int8 (attune_q8_round_activations gives what the kernel
 * multiplies by); u8×s8 VNNI dot products of the codes q + 8 against them (high
 * nibbles unshifted, as 16·(q + 8), in sums of their own that are divided by 16 exactly
 * once per superblock), the offset cancelled exactly by starting each run's sum at
 * −8·Σ of its activations; f32 accumulation of the scaled per-run sums. Prefill:
 * int8's bf16 panel path, panels of 32 rows unpacked to bf16 ŵ as they are used.
 * Nothing is ever dequantised to a full copy.
 */
#ifndef ATTUNE_LINEAR_Q4_H
#define ATTUNE_LINEAR_Q4_H

#include "attune_linear_q8.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Each as its attune_q8_ namesake (scale codes ATTUNE_Q8_SCALE_*), for 4-bit codes. */
const char *attune_q4_check(int64_t in, int64_t group, int32_t scale);
int64_t attune_q4_row_bytes(int64_t in, int64_t group, int32_t scale);
/* With f16 scales a group fails when max|w| > 7·65504. */
int64_t attune_q4_quantize_f32(const float *w, int64_t out, int64_t in, int64_t group, int32_t scale, void *dst);
int64_t attune_q4_quantize_bf16(const uint16_t *w, int64_t out, int64_t in, int64_t group, int32_t scale, void *dst);
int64_t attune_q4_quantize_f16(const uint16_t *w, int64_t out, int64_t in, int64_t group, int32_t scale, void *dst);
void attune_q4_dequantize(const void *q, int64_t out, int64_t in, int64_t group, int32_t scale, float *w);
int64_t attune_q4_embedding(const void *table, int64_t vocab, int64_t width, int64_t group, int32_t scale,
                            const int32_t *ids, int64_t rows, float *out);
int32_t attune_q4_linear_blocks(const float *x, int64_t rows, int64_t in, const void *const *w,
                                const int64_t *block_rows, int64_t blocks, int64_t group, int32_t scale,
                                const float *bias, float *y, int32_t threads);
int32_t attune_q4_linear(const float *x, int64_t rows, int64_t in, const void *w, int64_t out, int64_t group,
                         int32_t scale, const float *bias, float *y, int32_t threads);
int32_t attune_q4_linear_gated(const float *x, int64_t rows, int64_t in, const void *w_gate, const void *w_up,
                               int64_t inter, int64_t group, int32_t scale, int32_t gelu, float *y, int32_t threads);
int32_t attune_q4_linear_consuming(float *x, int64_t rows, int64_t in, const void *w, int64_t out, int64_t group,
                                   int32_t scale, const float *bias, float *y, int32_t threads);

#ifdef __cplusplus
}
#endif
#endif
