/*
 * attune_linear_q8.h — linear layers (y = x·Wᵀ + bias) with int8 weights.
 *
 * Quantisation is symmetric: each group of `group` consecutive weights of one
 * output row shares a scale s = max|w| / 127 (rounded to the stored precision,
 * then nudged up by one unit if needed so that |w| / s < 127.5), and stores
 * q = rint(w / s) (ties to even) in [-127, 127]; the weight it stands for is ŵ = q·s, so
 * |w − ŵ| ≤ s/2 for every element (Docs/NUMERICS.md). A group of zeros has
 * s = 0. group = in is per-output-channel quantisation.
 *
 * STORAGE LAYOUT (written once into the compile cache, then mmapped): `out`
 * rows of attune_q8_row_bytes() bytes each, back to back, no padding, no
 * alignment needed (the kernels never read outside the rows they are given). A row is split into superblocks of 512 weights (the last
 * may be shorter: `lanes` = its weight count / 32, 1..16). A superblock is
 *
 *   scales : one per weight group that starts in it (f16 or f32, little endian)
 *   quants : 8 vectors of 4·lanes int8; vector v holds, for lane l = 0..lanes-1,
 *            the 4 weights l·32 + 4v .. l·32 + 4v + 3 of the superblock.
 *
 * so one 64-byte load holds 4 weights of each of 16 runs of 32, and the 32-bit
 * lanes of a VNNI dot product (`vpdpbusd`) never mix two runs: 8 of them leave
 * each run's exact integer dot product in its own lane, scaled once per
 * superblock. Scales of groups of 32 are per lane; groups of 64..512 span
 * several lanes; a group of 512·k weights, or of the whole row (group = in),
 * spans whole superblocks and stores its scale in the superblock where it
 * starts, the first of the row for per-channel scales.
 *
 * Requirements (attune_q8_check): in a positive multiple of 32; group a
 * multiple of 32 that divides in and divides 512, is a multiple of 512 or is in.
 *
 * KERNELS. Decode (rows ≤ ATTUNE_Q8_GEMV_MAX_ROWS) quantises each activation
 * row to int8 per run of 32 (scale max|x|/127, same rounding as the weights)
 * and takes u8×s8 VNNI dot products (the stored int8 weights are offset by 128
 * at load, one XOR, to make them unsigned; the offset is cancelled exactly by
 * starting each run's sum at −128·Σ of its activations),
 * f32 accumulation of the scaled per-run sums; OpenMP over output rows (one
 * activation row: four weight rows at a time, same arithmetic per row). Longer
 * inputs (prefill) dequantise panels of 32 weight rows to bf16 in the bf16 GEMM's
 * packed layout and run its step (attune_bf16_gemm_panel: vdpbf16ps, f32
 * accumulation) with the activations rounded to bf16 (not int8). Without
 * AVX512-VNNI the GEMV runs in portable C; without AVX512-BF16 prefill dequantises
 * f32 tiles for SGEMM. attune_linear_q4.h is the same layout and kernels with 4-bit codes.
 */
#ifndef ATTUNE_LINEAR_Q8_H
#define ATTUNE_LINEAR_Q8_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Scale storage of a quantised weight. */
enum { ATTUNE_Q8_SCALE_F32 = 0, ATTUNE_Q8_SCALE_F16 = 1 };

/* Up to this many rows run the int8 GEMV; more run the prefill path (bf16 panels). */
enum { ATTUNE_Q8_GEMV_MAX_ROWS = 8 };

/* NULL when (in, group, scale) describe a storable weight, else a one-line reason. */
const char *attune_q8_check(int64_t in, int64_t group, int32_t scale);

/* Bytes of one stored row (quants + scales); -1 when attune_q8_check fails. */
int64_t attune_q8_row_bytes(int64_t in, int64_t group, int32_t scale);

/* Quantise w [out, in] (f32, or bf16/f16 given as their raw uint16 bits) into dst
 * (out · attune_q8_row_bytes bytes). Returns -1 when done, else the first row
 * that cannot be stored (a non-finite weight, or with f16 scales a group whose
 * scale exceeds f16's range, max|w| > 127·65504), or -2 when scratch memory cannot be
 * allocated; dst is then unspecified. The
 * format must pass attune_q8_check (else returns 0 without writing). */
int64_t attune_q8_quantize_f32(const float *w, int64_t out, int64_t in, int64_t group, int32_t scale, void *dst);
int64_t attune_q8_quantize_bf16(const uint16_t *w, int64_t out, int64_t in, int64_t group, int32_t scale, void *dst);
int64_t attune_q8_quantize_f16(const uint16_t *w, int64_t out, int64_t in, int64_t group, int32_t scale, void *dst);

/* ŵ [out, in] in natural order from the stored form: what the kernels multiply by. */
void attune_q8_dequantize(const void *q, int64_t out, int64_t in, int64_t group, int32_t scale, float *w);

/* out[r] = ŵ row ids[r] of a quantised table [vocab, width] (an embedding gather);
 * returns -1, or the first r whose id is outside [0, vocab) (nothing written then). */
int64_t attune_q8_embedding(const void *table, int64_t vocab, int64_t width, int64_t group, int32_t scale,
                            const int32_t *ids, int64_t rows, float *out);

/* The activations the GEMV multiplies by: each run of 32 of x [rows, in]
 * quantised and dequantised exactly as the kernel does (for tests and error
 * budgets). A run with a non-finite value becomes NaN. */
void attune_q8_round_activations(const float *x, int64_t rows, int64_t in, float *xhat);

/* y [rows, out] = x [rows, in] · ŵᵀ + bias (bias [out] or NULL) with w stored as
 * above: `blocks` row blocks, block b holding block_rows[b] rows at w[b] (merged
 * projections keep their checkpoint tensors apart). threads 0 = all. Returns 0,
 * or -1 when scratch memory cannot be allocated (y untouched). */
int32_t attune_q8_linear_blocks(const float *x, int64_t rows, int64_t in, const void *const *w,
                                const int64_t *block_rows, int64_t blocks, int64_t group, int32_t scale,
                                const float *bias, float *y, int32_t threads);

/* One block. */
int32_t attune_q8_linear(const float *x, int64_t rows, int64_t in, const void *w, int64_t out, int64_t group,
                         int32_t scale, const float *bias, float *y, int32_t threads);

/* A gated MLP's first matmul and its product in one call (SwiGLU, GeGLU):
 * y [rows, inter] = act(x · ĝᵀ) ⊙ (x · ûᵀ), act = silu, or gelu's tanh form when gelu ≠ 0,
 * with gate and up [inter, in] stored as above. The same values as attune_q8_linear_blocks
 * over {w_gate, w_up} followed by attune_op_swiglu_epilogue / attune_op_geglu_epilogue,
 * without the [rows, 2 × inter] intermediate in prefill. Returns as attune_q8_linear_blocks. */
int32_t attune_q8_linear_gated(const float *x, int64_t rows, int64_t in, const void *w_gate, const void *w_up,
                               int64_t inter, int64_t group, int32_t scale, int32_t gelu, float *y, int32_t threads);

/* attune_q8_linear for an x that nothing reads afterwards (a gated MLP's product, the
 * down projection's input): the same y, bit for bit, but a prefill call (more than
 * ATTUNE_Q8_GEMV_MAX_ROWS rows) writes its bf16 copy of each row over the first half of
 * that row of x instead of into scratch (4.75 MiB for 512 rows of a 4864-wide input),
 * leaving x's values unspecified. */
int32_t attune_q8_linear_consuming(float *x, int64_t rows, int64_t in, const void *w, int64_t out, int64_t group,
                                   int32_t scale, const float *bias, float *y, int32_t threads);

#ifdef __cplusplus
}
#endif
#endif
