/*
 * kv_quant.c — writing and reading K/V in the narrow formats of the attention
 * ABI (attune_kv_format): what a compiled model's cache append stores, and
 * the exact values kernels compute with (tests build their float64
 * references from attune_kv_dequantize).
 */
#include "attune_attention.h"
#include "kv_format.h"

#include <math.h>
#include <stdint.h>

/* One head's `dim` values to int8 with one scale: s = max|x| / 127, q = rint(x / s).
 * x / s is computed as x * (127 / max): within an ulp of x / s, and |q| <= 127 holds
 * because |x| <= max. Non-finite input gives s = NaN (the row reads back as NaN). */
static float quantize_int8(const float *x, int64_t dim, int8_t *q) {
    float m = 0.0f;
    int finite = 1;
    for (int64_t d = 0; d < dim; d++) {
        float a = fabsf(x[d]);
        if (!(a <= 3.4028234663852886e38f)) finite = 0; /* NaN or Inf */
        else if (a > m) m = a;
    }
    if (!finite || m == 0.0f) {
        for (int64_t d = 0; d < dim; d++) q[d] = 0; /* not memset: gcc warns a negative dim would overflow it */
        return finite ? 0.0f : NAN;
    }
    const float inv = 127.0f / m;
    for (int64_t d = 0; d < dim; d++) q[d] = (int8_t)lrintf(x[d] * inv);
    return m / 127.0f;
}

void attune_kv_quantize(int32_t format, int64_t rows, int64_t heads, int64_t dim,
                        const float *src, int64_t src_row_stride,
                        void *dst, int64_t dst_row_stride, float *scale, int64_t scale_row_stride) {
    for (int64_t r = 0; r < rows; r++) {
        const float *x = src + r * src_row_stride;
        switch (format) {
        case ATTUNE_KV_F32:
            memcpy((float *)dst + r * dst_row_stride, x, sizeof(float) * (size_t)(heads * dim));
            break;
        case ATTUNE_KV_BF16: {
            uint16_t *y = (uint16_t *)dst + r * dst_row_stride;
            for (int64_t i = 0; i < heads * dim; i++) y[i] = bf16_from_f32(x[i]);
            break;
        }
        case ATTUNE_KV_INT8: {
            int8_t *y = (int8_t *)dst + r * dst_row_stride;
            for (int64_t h = 0; h < heads; h++)
                scale[r * scale_row_stride + h] = quantize_int8(x + h * dim, dim, y + h * dim);
            break;
        }
        default: break;
        }
    }
}

void attune_kv_dequantize(int32_t format, int64_t rows, int64_t heads, int64_t dim,
                          const void *src, int64_t src_row_stride, const float *scale, int64_t scale_row_stride,
                          float *dst, int64_t dst_row_stride) {
    for (int64_t r = 0; r < rows; r++) {
        float *y = dst + r * dst_row_stride;
        switch (format) {
        case ATTUNE_KV_F32:
            memcpy(y, (const float *)src + r * src_row_stride, sizeof(float) * (size_t)(heads * dim));
            break;
        case ATTUNE_KV_BF16: {
            const uint16_t *x = (const uint16_t *)src + r * src_row_stride;
            for (int64_t i = 0; i < heads * dim; i++) y[i] = bf16_to_f32(x[i]);
            break;
        }
        case ATTUNE_KV_INT8: {
            const int8_t *x = (const int8_t *)src + r * src_row_stride;
            for (int64_t h = 0; h < heads; h++) {
                const float s = scale[r * scale_row_stride + h];
                for (int64_t d = 0; d < dim; d++) y[h * dim + d] = (float)x[h * dim + d] * s;
            }
            break;
        }
        default: break;
        }
    }
}
