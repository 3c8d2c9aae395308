/*
 * attune_graph_ops.h — the non-attention operations generated model code calls.
 *
 * All tensors are fp32, row-major, with `rows` rows of `width` contiguous elements
 * unless a stride says otherwise. Outputs may alias inputs where noted ("in place
 * allowed"). The math of each function is the one Sources/AttuneIR/Op.swift states
 * for the op of the same name; the float64 reference interpreter is the check.
 */
#ifndef ATTUNE_GRAPH_OPS_H
#define ATTUNE_GRAPH_OPS_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* out[r] = table[ids[r]]; returns -1 when every id is inside [0, vocab), otherwise
 * the index r of the first id that is not (nothing is written then). */
int64_t attune_op_embedding(const float *table, int64_t vocab, int64_t width,
                            const int32_t *ids, int64_t rows, float *out);

/* y = x wᵀ + bias, x [rows, in], w [out, in], bias [out] or NULL, y [rows, out]. */
void attune_op_linear(const float *x, int64_t rows, int64_t in, const float *w, int64_t out,
                      const float *bias, float *y);

/* The same with w given as `blocks` row blocks laid end to end: block b holds
 * block_rows[b] rows of `in` floats at w[b]. Merged projections (QKV, gate/up) use it
 * so the checkpoint's separate tensors are read where they lie, never concatenated. */
void attune_op_linear_blocks(const float *x, int64_t rows, int64_t in, const float *const *w, const int64_t *block_rows,
                             int64_t blocks, const float *bias, float *y);

/* out = x / sqrt(mean(x²) + eps) * w per row; in place allowed. */
void attune_op_rms_norm(const float *x, const float *w, int64_t rows, int64_t width, float eps, float *out);

/* sum = a + b; out = rms_norm(sum). sum may alias a or b. */
void attune_op_add_rms_norm(const float *a, const float *b, const float *w, int64_t rows, int64_t width,
                            float eps, float *sum, float *out);

/* out = (x - mean) / sqrt(var + eps) * w + bias per row; in place allowed. */
void attune_op_layer_norm(const float *x, const float *w, const float *bias, int64_t rows, int64_t width,
                          float eps, float *out);

/* RMSNorm of each head of x's rows, in place (row stride `stride`, `heads` groups of
 * `head_dim` starting at column 0, one weight[head_dim] shared by every head). */
void attune_op_head_rms_norm(float *x, int64_t stride, const float *w, int64_t rows, int64_t heads,
                             int64_t head_dim, float eps);

/* Rotary embedding, Hugging Face "rotate half" layout, in place on x's rows
 * (row stride `stride`, heads of `head_dim` starting at column 0). */
void attune_op_rope(float *x, int64_t stride, const int32_t *positions, int64_t rows, int64_t heads,
                    int64_t head_dim, int64_t rotary_dim, double theta);

/* The same with inverse frequencies inv_freq[rotary_dim / 2] (angle = position * inv_freq[i])
 * and cos/sin multiplied by `scaling` (transformers' attention_scaling); the pass-through
 * columns >= rotary_dim are not scaled. */
void attune_op_rope_freqs(float *x, int64_t stride, const int32_t *positions, int64_t rows, int64_t heads,
                          int64_t head_dim, int64_t rotary_dim, const double *inv_freq, double scaling);

/* The total length a forward pass over `positions` reaches, max(positions) + 1: the
 * length transformers' length-dependent RoPE types (dynamic, longrope) use. */
int64_t attune_rope_length(const int32_t *positions, int64_t rows);

/* Dynamic NTK RoPE: inv_freq[rotary_dim / 2] for a pass reaching `length`, with base
 * theta * (factor * L / original - (factor - 1))^(d / (d - 2)), L = max(length, original),
 * d = rotary_dim (> 2). */
void attune_rope_dynamic_ntk(double *inv_freq, int64_t rotary_dim, double theta, double factor,
                             int64_t original_length, int64_t length);

/* out[i] = a[i] ∘ b[i % nb] for i < n, ∘ = + or *; in place allowed. */
void attune_op_add(const float *a, const float *b, int64_t n, int64_t nb, float *out);
void attune_op_mul(const float *a, const float *b, int64_t n, int64_t nb, float *out);
void attune_op_scale(const float *x, int64_t n, float factor, float *out);
void attune_op_silu(const float *x, int64_t n, float *out);
void attune_op_gelu(const float *x, int64_t n, float *out);

/* gu [rows, 2*inter] (gate columns, then up columns) -> out [rows, inter] = silu(g) * u. */
void attune_op_swiglu_epilogue(const float *gu, int64_t rows, int64_t inter, float *out);
/* The same with gelu (tanh approximation) for silu: Gemma's GeGLU, out = gelu(g) * u. */
void attune_op_geglu_epilogue(const float *gu, int64_t rows, int64_t inter, float *out);
/* One row's product: out[i] = act(gate[i]) * up[i] for i < n, act = silu or (gelu ≠ 0)
 * gelu, the same arithmetic as the two epilogues; for the gated matmuls (attune_linear_*
 * _gated), which apply it panel by panel. */
void attune_gated_product(const float *gate, const float *up, int64_t n, int32_t gelu, float *out);

/* out[i] = cap * tanh(x[i] / cap), cap > 0 (Gemma 2's final logit soft-capping); in place allowed. */
void attune_op_softcap(const float *x, int64_t n, float cap, float *out);

/* Softmax over each row of width `width`; in place allowed. */
void attune_op_softmax_rows(const float *x, int64_t rows, int64_t width, float *out);

/* Copies `rows` rows into cache rows [at, at + rows) (row width `width`). */
void attune_op_kv_append(float *cache, int64_t at, const float *src, int64_t src_stride, int64_t rows, int64_t width);

/* Copies row r of src into cache row slot[r] (batched sequences: each row to its own sequence's rows). */
void attune_op_kv_scatter(float *cache, const int64_t *slot, const float *src, int64_t src_stride, int64_t rows, int64_t width);

/* Copies columns [col, col + width) of src [rows, src_stride] into dst [rows, width]. */
void attune_op_copy_columns(const float *src, int64_t src_stride, int64_t col, int64_t rows, int64_t width, float *dst);

#ifdef __cplusplus
}
#endif
#endif
