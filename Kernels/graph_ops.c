/*
 * graph_ops.c — the dense and elementwise operations of compiled decoder graphs
 * (see attune_graph_ops.h). Attention lives in its own kernels; matmuls go to
 * OpenBLAS; everything here is memory-bound row work, vectorised with simd.h
 * and parallelised over rows when there are enough of them.
 */
#include "attune_graph_ops.h"
#include "simd.h"
#include "attention_softcap.h"

#include <cblas.h>
#include <math.h>
#include <string.h>

#ifdef _OPENMP
#include <omp.h>
#endif

/* Rows below this run on one thread: forking costs more than the work. */
enum { PARALLEL_MIN_ELEMENTS = 1 << 16 };

int64_t attune_op_embedding(const float *table, int64_t vocab, int64_t width,
                            const int32_t *ids, int64_t rows, float *out) {
    for (int64_t r = 0; r < rows; r++)
        if (ids[r] < 0 || ids[r] >= vocab) return r;
    for (int64_t r = 0; r < rows; r++) memcpy(out + r * width, table + (int64_t)ids[r] * width, sizeof(float) * (size_t)width);
    return -1;
}

/* Matmuls run on OpenMP threads, each calling single-threaded OpenBLAS on its
 * share of the output columns. Letting OpenBLAS start its own threads instead
 * makes its spinning pool and OpenMP's fight over the cores between nodes:
 * measured 2x slower prefill on 2 cores (Docs/PERFORMANCE.md). */
enum { LINEAR_PARALLEL_MIN_FLOPS = 1 << 20, LINEAR_COLUMN_ALIGN = 16 };

void attune_op_linear(const float *x, int64_t rows, int64_t in, const float *w, int64_t out,
                      const float *bias, float *y) {
    attune_op_linear_blocks(x, rows, in, &w, &out, 1, bias, y);
}

/* Output columns [c0, c1) of the blocked weight: the part of each block inside them. */
static void linear_columns(const float *x, int64_t rows, int64_t in, const float *const *w, const int64_t *block_rows,
                           int64_t blocks, int64_t out, int64_t c0, int64_t c1, float *y) {
    int64_t start = 0;
    for (int64_t b = 0; b < blocks; start += block_rows[b], b++) {
        int64_t lo = c0 > start ? c0 : start, hi = c1 < start + block_rows[b] ? c1 : start + block_rows[b];
        if (lo >= hi) continue;
        const float *ws = w[b] + (lo - start) * in;
        if (rows == 1) {
            cblas_sgemv(CblasRowMajor, CblasNoTrans, (int)(hi - lo), (int)in, 1.0f, ws, (int)in, x, 1, 0.0f, y + lo, 1);
        } else {
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)rows, (int)(hi - lo), (int)in, 1.0f, x, (int)in,
                        ws, (int)in, 0.0f, y + lo, (int)out);
        }
    }
}

void attune_op_linear_blocks(const float *x, int64_t rows, int64_t in, const float *const *w, const int64_t *block_rows,
                             int64_t blocks, const float *bias, float *y) {
    if (rows == 0) return;
    int64_t out = 0;
    for (int64_t b = 0; b < blocks; b++) out += block_rows[b];
    if (openblas_get_num_threads() != 1) openblas_set_num_threads(1);
#ifdef _OPENMP
#pragma omp parallel if (rows * in * out >= LINEAR_PARALLEL_MIN_FLOPS)
#endif
    {
        int64_t t = 0, nt = 1;
#ifdef _OPENMP
        t = omp_get_thread_num();
        nt = omp_get_num_threads();
#endif
        int64_t per = (out + nt - 1) / nt;
        per = (per + LINEAR_COLUMN_ALIGN - 1) / LINEAR_COLUMN_ALIGN * LINEAR_COLUMN_ALIGN;
        int64_t c0 = t * per, c1 = c0 + per < out ? c0 + per : out;
        if (c0 < c1) {
            linear_columns(x, rows, in, w, block_rows, blocks, out, c0, c1, y);
            if (bias)
                for (int64_t r = 0; r < rows; r++)
                    for (int64_t c = c0; c < c1; c++) y[r * out + c] += bias[c];
        }
    }
}

static float sum_squares(const float *x, int64_t n) {
    vf acc = vf_zero();
    int64_t i = 0;
    for (; i + VL <= n; i += VL) {
        vf v = vf_load(x + i);
        acc = vf_fma(v, v, acc);
    }
    if (i < n) {
        vf v = vf_load_n(x + i, vm_first((int)(n - i)));
        acc = vf_fma(v, v, acc);
    }
    return vf_hsum(acc);
}

static void rms_row(const float *x, const float *w, int64_t width, float eps, float *out) {
    float inv = 1.0f / sqrtf(sum_squares(x, width) / (float)width + eps);
    for (int64_t i = 0; i < width; i++) out[i] = x[i] * inv * w[i];
}

void attune_op_rms_norm(const float *x, const float *w, int64_t rows, int64_t width, float eps, float *out) {
#ifdef _OPENMP
#pragma omp parallel for schedule(static) if (rows * width >= PARALLEL_MIN_ELEMENTS)
#endif
    for (int64_t r = 0; r < rows; r++) rms_row(x + r * width, w, width, eps, out + r * width);
}

void attune_op_add_rms_norm(const float *a, const float *b, const float *w, int64_t rows, int64_t width,
                            float eps, float *sum, float *out) {
#ifdef _OPENMP
#pragma omp parallel for schedule(static) if (rows * width >= PARALLEL_MIN_ELEMENTS)
#endif
    for (int64_t r = 0; r < rows; r++) {
        float *s = sum + r * width;
        for (int64_t i = 0; i < width; i++) s[i] = a[r * width + i] + b[r * width + i];
        rms_row(s, w, width, eps, out + r * width);
    }
}

void attune_op_head_rms_norm(float *x, int64_t stride, const float *w, int64_t rows, int64_t heads,
                             int64_t head_dim, float eps) {
#ifdef _OPENMP
#pragma omp parallel for schedule(static) if (rows * heads * head_dim >= PARALLEL_MIN_ELEMENTS)
#endif
    for (int64_t r = 0; r < rows; r++)
        for (int64_t h = 0; h < heads; h++) {
            float *v = x + r * stride + h * head_dim;
            rms_row(v, w, head_dim, eps, v);  /* in place: each element is read before it is written */
        }
}

void attune_op_layer_norm(const float *x, const float *w, const float *bias, int64_t rows, int64_t width,
                          float eps, float *out) {
    for (int64_t r = 0; r < rows; r++) {
        const float *xr = x + r * width;
        double mean = 0, var = 0;
        for (int64_t i = 0; i < width; i++) mean += xr[i];
        mean /= (double)width;
        for (int64_t i = 0; i < width; i++) var += (xr[i] - mean) * (xr[i] - mean);
        float inv = (float)(1.0 / sqrt(var / (double)width + eps));
        for (int64_t i = 0; i < width; i++) out[r * width + i] = (float)(xr[i] - mean) * inv * w[i] + bias[i];
    }
}

void attune_op_rope_freqs(float *x, int64_t stride, const int32_t *positions, int64_t rows, int64_t heads,
                          int64_t head_dim, int64_t rotary_dim, const double *inv_freq, double scaling) {
    const int64_t half = rotary_dim / 2;
    for (int64_t r = 0; r < rows; r++) {
        /* Angles in double: fp32 angles lose ~1e-4 rad by position 2000. */
        float cs[half > 0 ? half : 1], sn[half > 0 ? half : 1];
        for (int64_t i = 0; i < half; i++) {
            double angle = (double)positions[r] * inv_freq[i];
            cs[i] = (float)(cos(angle) * scaling);
            sn[i] = (float)(sin(angle) * scaling);
        }
        for (int64_t h = 0; h < heads; h++) {
            float *v = x + r * stride + h * head_dim;
            for (int64_t i = 0; i < half; i++) {
                float x1 = v[i], x2 = v[i + half];
                v[i] = x1 * cs[i] - x2 * sn[i];
                v[i + half] = x2 * cs[i] + x1 * sn[i];
            }
        }
    }
}

void attune_op_rope(float *x, int64_t stride, const int32_t *positions, int64_t rows, int64_t heads,
                    int64_t head_dim, int64_t rotary_dim, double theta) {
    const int64_t half = rotary_dim / 2;
    double inv_freq[half > 0 ? half : 1];
    for (int64_t i = 0; i < half; i++) inv_freq[i] = pow(theta, -2.0 * (double)i / (double)rotary_dim);
    attune_op_rope_freqs(x, stride, positions, rows, heads, head_dim, rotary_dim, inv_freq, 1.0);
}

int64_t attune_rope_length(const int32_t *positions, int64_t rows) {
    int64_t length = 0;
    for (int64_t r = 0; r < rows; r++)
        if ((int64_t)positions[r] + 1 > length) length = (int64_t)positions[r] + 1;
    return length;
}

void attune_rope_dynamic_ntk(double *inv_freq, int64_t rotary_dim, double theta, double factor,
                             int64_t original_length, int64_t length) {
    /* transformers' _compute_dynamic_ntk_parameters with seq_len = max(length, original). */
    const double n = (double)(length > original_length ? length : original_length);
    const double d = (double)rotary_dim;
    const double base = theta * pow(factor * n / (double)original_length - (factor - 1.0), d / (d - 2.0));
    for (int64_t i = 0; i < rotary_dim / 2; i++) inv_freq[i] = 1.0 / pow(base, (double)(2 * i) / d);
}

void attune_op_add(const float *a, const float *b, int64_t n, int64_t nb, float *out) {
    if (nb == n) {
        for (int64_t i = 0; i < n; i++) out[i] = a[i] + b[i];
        return;
    }
    for (int64_t i = 0; i < n; i += nb)
        for (int64_t j = 0; j < nb; j++) out[i + j] = a[i + j] + b[j];
}

void attune_op_mul(const float *a, const float *b, int64_t n, int64_t nb, float *out) {
    if (nb == n) {
        for (int64_t i = 0; i < n; i++) out[i] = a[i] * b[i];
        return;
    }
    for (int64_t i = 0; i < n; i += nb)
        for (int64_t j = 0; j < nb; j++) out[i + j] = a[i + j] * b[j];
}

void attune_op_scale(const float *x, int64_t n, float factor, float *out) {
    for (int64_t i = 0; i < n; i++) out[i] = x[i] * factor;
}

static inline float silu1(float x) { return x / (1.0f + expf(-x)); }

static inline float gelu1(float x) {
    const float k = 0.7978845608028654f; /* sqrt(2/pi) */
    return 0.5f * x * (1.0f + tanhf(k * (x + 0.044715f * x * x * x)));
}

void attune_op_silu(const float *x, int64_t n, float *out) {
    for (int64_t i = 0; i < n; i++) out[i] = silu1(x[i]);
}

void attune_op_gelu(const float *x, int64_t n, float *out) {
    for (int64_t i = 0; i < n; i++) out[i] = gelu1(x[i]);
}

/* silu(g) = g / (1 + e^-g), with e^-g = 2^(-g log2 e) from the vector exp2. */
ATTUNE_INLINE vf vf_silu(vf g) {
    return vf_div(g, vf_add(vf_set1(1.0f), vf_exp2(vf_mul(g, vf_set1(-1.4426950408889634f)))));
}

/* gelu's tanh approximation, 16 lanes: the tanh of attention_softcap.h. */
ATTUNE_INLINE vf vf_gelu(vf x) {
    const vf inner = vf_mul(vf_set1(0.7978845608028654f), vf_fma(vf_mul(vf_set1(0.044715f), x), vf_mul(x, x), x));
    return vf_mul(vf_mul(vf_set1(0.5f), x), vf_add(vf_set1(1.0f), vf_tanh(inner)));
}

/* out = act(gate) * up over n elements; `gelu` is a constant in each loop's caller, so
 * each activation gets its own loop with no branch inside. */
ATTUNE_INLINE void gated(const float *g, const float *u, int64_t n, float *o, int gelu) {
    int64_t i = 0;
    for (; i + VL <= n; i += VL) {
        vf gv = vf_load(g + i);
        vf_store(o + i, vf_mul(gelu ? vf_gelu(gv) : vf_silu(gv), vf_load(u + i)));
    }
    for (; i < n; i++) o[i] = (gelu ? gelu1(g[i]) : silu1(g[i])) * u[i];
}

void attune_gated_product(const float *gate, const float *up, int64_t n, int32_t gelu, float *out) {
    if (gelu) gated(gate, up, n, out, 1);
    else gated(gate, up, n, out, 0);
}

/* out[r] = act(gate[r]) * up[r] over rows of [gate | up] (inter each). */
ATTUNE_INLINE void gated_rows(const float *gu, int64_t rows, int64_t inter, float *out, int gelu) {
#ifdef _OPENMP
#pragma omp parallel for schedule(static) if (rows * inter >= PARALLEL_MIN_ELEMENTS)
#endif
    for (int64_t r = 0; r < rows; r++) gated(gu + r * 2 * inter, gu + r * 2 * inter + inter, inter, out + r * inter, gelu);
}

void attune_op_swiglu_epilogue(const float *gu, int64_t rows, int64_t inter, float *out) {
    gated_rows(gu, rows, inter, out, 0);
}

void attune_op_geglu_epilogue(const float *gu, int64_t rows, int64_t inter, float *out) {
    gated_rows(gu, rows, inter, out, 1);
}

void attune_op_softcap(const float *x, int64_t n, float cap, float *out) {
    if (out != x) memcpy(out, x, sizeof(float) * (size_t)n);
    attune_softcap_scores(out, n, cap);
}

void attune_op_softmax_rows(const float *x, int64_t rows, int64_t width, float *out) {
    for (int64_t r = 0; r < rows; r++) {
        const float *xr = x + r * width;
        float m = -INFINITY;
        for (int64_t i = 0; i < width; i++) m = xr[i] > m ? xr[i] : m;
        float *o = out + r * width;
        if (m == -INFINITY) {
            for (int64_t i = 0; i < width; i++) o[i] = 0.0f;
            continue;
        }
        double s = 0;
        for (int64_t i = 0; i < width; i++) {
            o[i] = expf(xr[i] - m);
            s += o[i];
        }
        float inv = (float)(1.0 / s);
        for (int64_t i = 0; i < width; i++) o[i] *= inv;
    }
}

void attune_op_kv_append(float *cache, int64_t at, const float *src, int64_t src_stride, int64_t rows, int64_t width) {
    for (int64_t r = 0; r < rows; r++) memcpy(cache + (at + r) * width, src + r * src_stride, sizeof(float) * (size_t)width);
}

void attune_op_kv_scatter(float *cache, const int64_t *slot, const float *src, int64_t src_stride, int64_t rows, int64_t width) {
    for (int64_t r = 0; r < rows; r++) memcpy(cache + slot[r] * width, src + r * src_stride, sizeof(float) * (size_t)width);
}

void attune_op_copy_columns(const float *src, int64_t src_stride, int64_t col, int64_t rows, int64_t width, float *dst) {
    for (int64_t r = 0; r < rows; r++) memcpy(dst + r * width, src + r * src_stride + col, sizeof(float) * (size_t)width);
}
