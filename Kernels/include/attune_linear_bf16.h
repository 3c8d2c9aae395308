/*
 * attune_linear_bf16.h — matmuls and the embedding gather over bf16 weights, read
 * where they lie (a checkpoint's mapping) without an f32 copy.
 *
 * bf16 is the upper half of an IEEE f32: widening a weight is exact (a 16-bit shift).
 * Two paths, chosen by the number of activation rows:
 *  - GEMV (rows < ATTUNE_BF16_GEMM_MIN_ROWS, decode): f32 activations, weights widened
 *    in registers, f32 fused multiply-adds. Error: f32 accumulation only, as sgemv.
 *  - GEMM (more rows, prefill): activations rounded to bf16 (round to nearest even),
 *    AVX512-BF16 `vdpbf16ps` with f32 accumulation. Error per output, with
 *    S = sum_i |x_i w_i|: |y - y_exact| <= (2^-8 + in * 2^-24) * S, 2^-8 being the
 *    relative rounding of an activation to bf16's 8 significant bits (unit roundoff).
 * Docs/NUMERICS.md states both bounds; Tests/AttuneKernelsTests/LinearBF16Tests asserts them.
 */
#ifndef ATTUNE_LINEAR_BF16_H
#define ATTUNE_LINEAR_BF16_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Activation rows from which the GEMM path runs (measured: Docs/PERFORMANCE.md). */
#define ATTUNE_BF16_GEMM_MIN_ROWS 8

/* y = x wᵀ + bias, x f32 [rows, in], w bf16 [out, in] given as `blocks` row blocks
 * (block b: block_rows[b] rows at w[b], as attune_op_linear_blocks), bias f32 [out] or
 * NULL, y f32 [rows, out]. Picks the GEMV or GEMM path by rows. */
void attune_op_linear_bf16_blocks(const float *x, int64_t rows, int64_t in, const uint16_t *const *w,
                                  const int64_t *block_rows, int64_t blocks, const float *bias, float *y);

/* A gated MLP's first matmul and its product in one call (SwiGLU, GeGLU):
 * y [rows, inter] = act(x gateᵀ) ⊙ (x upᵀ), act = silu, or gelu's tanh form when gelu ≠ 0,
 * gate and up bf16 [inter, in]. The same values as attune_op_linear_bf16_blocks over
 * {w_gate, w_up} followed by attune_op_swiglu_epilogue / attune_op_geglu_epilogue, without
 * the [rows, 2 × inter] intermediate in prefill. */
void attune_op_linear_bf16_gated(const float *x, int64_t rows, int64_t in, const uint16_t *w_gate, const uint16_t *w_up,
                                 int64_t inter, int32_t gelu, float *y);

/* out[r] = table[ids[r]] widened to f32; returns -1, or the first r whose id is outside
 * [0, vocab) (nothing written then). */
int64_t attune_op_embedding_bf16(const uint16_t *table, int64_t vocab, int64_t width,
                                 const int32_t *ids, int64_t rows, float *out);

/* The two paths on their own (single weight block, no bias), for tests and benchmarks:
 * y [rows, out] = x wᵀ with f32 activations (GEMV) or bf16-rounded ones (GEMM). */
void attune_linear_bf16_gemv(const float *x, int64_t rows, int64_t in, const uint16_t *w, int64_t out, float *y);
void attune_linear_bf16_gemm(const float *x, int64_t rows, int64_t in, const uint16_t *w, int64_t out, float *y);

/* The GEMM path's step, for other weight formats that dequantise to bf16 (linear_q8.c):
 * y[r * ys + j] (+ bias[j]) for r < rows, j < n ≤ ATTUNE_BF16_PANEL, from activations
 * xb (bf16 pairs: row r is k2n dwords starting at dword r * xs, dword k = elements 2k,
 * 2k + 1) and a packed panel (k2n rows of ATTUNE_BF16_PANEL dwords; dword j of row k =
 * the pair 2k, 2k + 1 of weight row j, zeros for j ≥ n). Single-threaded; vdpbf16ps with
 * f32 accumulation. */
#define ATTUNE_BF16_PANEL 32
void attune_bf16_gemm_panel(const uint32_t *xb, int64_t xs, int64_t rows, int64_t k2n, const uint32_t *panel,
                            const float *bias, int64_t n, float *y, int64_t ys);

/* dst[i] = src[i] rounded to bf16, to nearest even (NaN stays NaN, quiet). */
void attune_f32_to_bf16(const float *src, int64_t n, uint16_t *dst);

/* Weights rounded to bf16 at compile time (--weights bf16 on an f32 or f16 checkpoint,
 * into the compile cache): dst[i] = src[i] rounded to nearest even as attune_f32_to_bf16,
 * src f32 (f16 = 0) or f16 (f16 = 1: widened exactly, then rounded), on all threads for
 * large n. Returns -1, or the first i whose finite src[i] rounded to ±Inf (beyond bf16's
 * largest finite value, about 3.39e38; no f16 value is). NaN and Inf stay what they are. */
int64_t attune_bf16_round(const void *src, int32_t f16, int64_t n, uint16_t *dst);

#ifdef __cplusplus
}
#endif
#endif
