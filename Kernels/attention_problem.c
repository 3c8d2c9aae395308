/*
 * attention_problem.c — defaults, validation and mask arithmetic of the
 * attention ABI (attune_attention.h), shared by every kernel.
 */
#include "attune_attention.h"
#include "attention_internal.h"

#include <float.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#ifdef _OPENMP
#include <omp.h>
#endif

static void contiguous(attune_strides *s, int64_t heads, int64_t rows, int64_t dim) {
    s->row = dim;
    s->head = rows * dim;
    s->batch = heads * rows * dim;
}

void attune_attention_problem_init(attune_attention_problem *p,
                                   int64_t batch, int64_t q_heads, int64_t kv_heads,
                                   int64_t q_len, int64_t kv_len,
                                   int64_t qk_dim, int64_t v_dim) {
    memset(p, 0, sizeof *p);
    p->batch = batch;
    p->q_heads = q_heads;
    p->kv_heads = kv_heads;
    p->q_len = q_len;
    p->kv_len = kv_len;
    p->qk_dim = qk_dim;
    p->v_dim = v_dim;
    contiguous(&p->q_stride, q_heads, q_len, qk_dim);
    contiguous(&p->k_stride, kv_heads, kv_len, qk_dim);
    contiguous(&p->v_stride, kv_heads, kv_len, v_dim);
    contiguous(&p->o_stride, q_heads, q_len, v_dim);
    p->lse_stride_head = q_len;
    p->lse_stride_batch = q_heads * q_len;
    p->scale = qk_dim > 0 ? (float)(1.0 / sqrt((double)qk_dim)) : 1.0f;
    p->q_offset = ATTUNE_Q_OFFSET_DEFAULT;
}

int32_t attune_fail(attune_status *status, int32_t code, const char *fmt, ...) {
    if (status) {
        status->code = code;
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(status->message, sizeof status->message, fmt, ap);
        va_end(ap);
    }
    return code;
}

int32_t attune_ok(attune_status *status) {
    if (status) {
        status->code = ATTUNE_OK;
        status->message[0] = '\0';
    }
    return ATTUNE_OK;
}

/* Byte range [first, last] touched by a rank-4 strided tensor, for overlap checks. */
static void span(const void *base, int64_t elem_bytes, int64_t n0, int64_t n1, int64_t n2, int64_t n3,
                 const attune_strides *s, const char **lo, const char **hi) {
    int64_t last = (n0 - 1) * s->batch + (n1 - 1) * s->head + (n2 - 1) * s->row + (n3 - 1);
    *lo = (const char *)base;
    *hi = (const char *)base + (last + 1) * elem_bytes - 1;
}

int64_t attune_kv_element_bytes(int32_t format) {
    switch (format) {
    case ATTUNE_KV_F32: return 4;
    case ATTUNE_KV_BF16: return 2;
    case ATTUNE_KV_INT8: return 1;
    default: return 0;
    }
}

const char *attune_kv_format_name(int32_t format) {
    switch (format) {
    case ATTUNE_KV_F32: return "f32";
    case ATTUNE_KV_BF16: return "bf16";
    case ATTUNE_KV_INT8: return "int8";
    default: return "unknown";
    }
}

static int overlaps(const char *a0, const char *a1, const char *b0, const char *b1) {
    return a0 <= b1 && b0 <= a1;
}

#define DIM_LIMIT ((int64_t)1 << 31)
/* Head dims of real models are at most 256 (a few 512); 4096 leaves room and keeps a
 * mistyped dim (100000) from starting hours of work. hybrid's store has the same bound. */
#define HEAD_DIM_LIMIT 4096

/* The K/V format of `p`: known, read by the kernel, with int8 scales that can be addressed. */
static int32_t validate_format(const attune_attention_problem *p, const attune_attention_tensors *t,
                               uint32_t formats, const char *kernel, attune_status *status) {
    const attune_kv_storage *kv = &p->kv;
    if (attune_kv_element_bytes(kv->format) == 0)
        return attune_fail(status, ATTUNE_ERR_INVALID_ARGUMENT,
                           "kv format %d is not one of 0 (f32), 1 (bf16), 2 (int8)", kv->format);
    if (!(formats >> kv->format & 1u)) {
        if (kernel)
            return attune_fail(status, ATTUNE_ERR_UNSUPPORTED, "%s does not read K/V stored as %s",
                               kernel, attune_kv_format_name(kv->format));
        return attune_fail(status, ATTUNE_ERR_UNSUPPORTED,
                           "K/V stored as %s: this kernel reads f32 K/V only", attune_kv_format_name(kv->format));
    }
    if (kv->format != ATTUNE_KV_INT8) return ATTUNE_OK;
    const attune_strides *ss[2] = {&kv->k_scale_stride, &kv->v_scale_stride};
    for (int i = 0; i < 2; i++)
        if (ss[i]->batch < 0 || ss[i]->head < 0 || ss[i]->row < 0)
            return attune_fail(status, ATTUNE_ERR_INVALID_ARGUMENT, "int8 %s scale strides must be non-negative",
                               i ? "v" : "k");
    if (t && p->kv_len > 0 && (!kv->k_scale || !kv->v_scale))
        return attune_fail(status, ATTUNE_ERR_INVALID_ARGUMENT, "int8 K/V needs k_scale and v_scale");
    return ATTUNE_OK;
}

static int32_t validate(const attune_attention_problem *p, const attune_attention_tensors *t,
                        uint32_t formats, const char *kernel, attune_status *status);

/* ALiBi slopes and sink logits: finite, one per q head, and taken by the kernel.
 * ALiBi's offsets j - p are formed as int32 and converted to fp32 exactly, so
 * every (query position, key) pair must lie within 2^24 of each other. */
static int32_t validate_modifiers(const attune_attention_problem *p, uint32_t formats, const char *kernel,
                                  attune_status *status) {
    const char *who = kernel ? kernel : "this kernel";
    const struct { const float *table; const char *name, *what; uint32_t bit; } mods[] = {
        {p->alibi_slopes, "alibi_slopes", "ALiBi", ATTUNE_ACCEPTS_ALIBI},
        {p->sinks, "sinks", "attention sinks", ATTUNE_ACCEPTS_SINKS},
    };
    for (size_t m = 0; m < 2; m++) {
        if (!mods[m].table) continue;
        if (!(formats & mods[m].bit))
            return attune_fail(status, ATTUNE_ERR_UNSUPPORTED, "%s does not implement %s (%s)", who, mods[m].what,
                               mods[m].name);
        for (int64_t h = 0; h < p->q_heads && h < DIM_LIMIT; h++)
            if (!isfinite(mods[m].table[h]))
                return attune_fail(status, ATTUNE_ERR_INVALID_ARGUMENT, "%s[%lld] must be finite, got %g",
                                   mods[m].name, (long long)h, (double)mods[m].table[h]);
    }
    if (p->alibi_slopes) {
        const int64_t off = attune_attention_q_offset(p), limit = (int64_t)1 << 24;
        const int64_t far_key = p->kv_len - 1 - off, far_query = off + p->q_len - 1;
        if (far_key >= limit || far_query >= limit || -far_key >= limit || -far_query >= limit)
            return attune_fail(status, ATTUNE_ERR_INVALID_ARGUMENT,
                               "alibi needs query positions and keys within 2^24 of each other (q_offset %lld, "
                               "q_len %lld, kv_len %lld)",
                               (long long)off, (long long)p->q_len, (long long)p->kv_len);
    }
    return ATTUNE_OK;
}

/* Document ids and the block bitmask: taken by the kernel, keyed by positions that
 * are keys (every query's), and a block size that addresses the bitmask. */
static int32_t validate_masks(const attune_attention_problem *p, uint32_t formats, const char *kernel,
                              attune_status *status) {
    if (!p->doc_ids && !p->block_mask) return ATTUNE_OK;
    if (!(formats & ATTUNE_ACCEPTS_MASKS))
        return attune_fail(status, ATTUNE_ERR_UNSUPPORTED, "%s does not implement masks (%s)",
                           kernel ? kernel : "this kernel", p->doc_ids ? "doc_ids" : "block_mask");
    const int64_t off = attune_attention_q_offset(p);
    if (off < 0 || off + p->q_len > p->kv_len)
        return attune_fail(status, ATTUNE_ERR_INVALID_ARGUMENT,
                           "masks need every query position to be a key position (q_offset %lld, q_len %lld, "
                           "kv_len %lld)",
                           (long long)off, (long long)p->q_len, (long long)p->kv_len);
    if (p->block_mask && (p->mask_block < 1 || p->mask_block >= DIM_LIMIT))
        return attune_fail(status, ATTUNE_ERR_INVALID_ARGUMENT, "mask_block must be in [1, 2^31), got %lld",
                           (long long)p->mask_block);
    return ATTUNE_OK;
}

int attune_mask_visible(const attune_attention_problem *p, int64_t pos, int64_t j) {
    if (p->doc_ids && p->doc_ids[j] != p->doc_ids[pos]) return 0;
    if (p->block_mask) {
        const int64_t b = p->mask_block, nb = (p->kv_len + b - 1) / b, bit = pos / b * nb + j / b;
        if (!(p->block_mask[bit >> 3] >> (bit & 7) & 1)) return 0;
    }
    return 1;
}

void attune_alibi_slopes(int64_t heads, float *slopes) {
    int64_t n = 1;
    while (n * 2 <= heads) n *= 2;
    for (int64_t h = 0; h < heads; h++) {
        /* The first n heads: 2^(-8 (h + 1) / n); the rest: odd powers of 2^(-4 / n). */
        double e = h < n ? -8.0 * (double)(h + 1) / (double)n : -4.0 * (double)(2 * (h - n) + 1) / (double)n;
        slopes[h] = (float)exp2(e);
    }
}

int32_t attune_attention_validate(const attune_attention_problem *p, const attune_attention_tensors *t,
                                  attune_status *status) {
    return validate(p, t, 1u << ATTUNE_KV_F32, NULL, status);
}

int32_t attune_attention_validate_kv(const attune_attention_problem *p, const attune_attention_tensors *t,
                                     uint32_t formats, const char *kernel, attune_status *status) {
    return validate(p, t, formats, kernel, status);
}

static int32_t validate(const attune_attention_problem *p, const attune_attention_tensors *t,
                        uint32_t formats, const char *kernel, attune_status *status) {
    if (!p) return attune_fail(status, ATTUNE_ERR_INVALID_ARGUMENT, "problem is NULL");
    int32_t rc = validate_format(p, t, formats, kernel, status);
    if (rc != ATTUNE_OK) return rc;
    const int64_t kv_bytes = attune_kv_element_bytes(p->kv.format);
    const struct { const char *name; int64_t value; int64_t min; } dims[] = {
        {"batch", p->batch, 1}, {"q_heads", p->q_heads, 1}, {"kv_heads", p->kv_heads, 1},
        {"q_len", p->q_len, 1}, {"kv_len", p->kv_len, 0}, {"qk_dim", p->qk_dim, 1},
        {"v_dim", p->v_dim, 1},
    };
    for (size_t i = 0; i < sizeof dims / sizeof dims[0]; i++) {
        if (dims[i].value < dims[i].min || dims[i].value >= DIM_LIMIT)
            return attune_fail(status, ATTUNE_ERR_INVALID_ARGUMENT, "%s = %lld is out of range [%lld, 2^31)",
                               dims[i].name, (long long)dims[i].value, (long long)dims[i].min);
    }
    if (p->qk_dim > HEAD_DIM_LIMIT || p->v_dim > HEAD_DIM_LIMIT)
        return attune_fail(status, ATTUNE_ERR_INVALID_ARGUMENT, "%s = %lld is above %d, the largest head dim Attune's kernels take",
                           p->qk_dim > HEAD_DIM_LIMIT ? "qk_dim" : "v_dim",
                           (long long)(p->qk_dim > HEAD_DIM_LIMIT ? p->qk_dim : p->v_dim), HEAD_DIM_LIMIT);
    if (p->q_heads % p->kv_heads != 0)
        return attune_fail(status, ATTUNE_ERR_INVALID_ARGUMENT,
                           "q_heads (%lld) must be a multiple of kv_heads (%lld)",
                           (long long)p->q_heads, (long long)p->kv_heads);
    if (!isfinite(p->scale))
        return attune_fail(status, ATTUNE_ERR_INVALID_ARGUMENT, "scale must be finite, got %g", (double)p->scale);
    if (p->causal != 0 && p->causal != 1)
        return attune_fail(status, ATTUNE_ERR_INVALID_ARGUMENT, "causal must be 0 or 1, got %d", p->causal);
    if (p->window < 0)
        return attune_fail(status, ATTUNE_ERR_INVALID_ARGUMENT, "window must be >= 1 (or 0 for none), got %lld",
                           (long long)p->window);
    if (!isfinite(p->softcap) || p->softcap < 0)
        return attune_fail(status, ATTUNE_ERR_INVALID_ARGUMENT, "softcap must be 0 (none) or a finite positive cap, got %g",
                           (double)p->softcap);
    if (p->softcap > 0 && p->softcap < FLT_MIN)
        return attune_fail(status, ATTUNE_ERR_INVALID_ARGUMENT, "softcap %g is below the smallest normal float (%g)",
                           (double)p->softcap, (double)FLT_MIN);
    if (p->softcap > 0 && !(formats & ATTUNE_ACCEPTS_SOFTCAP))
        return attune_fail(status, ATTUNE_ERR_UNSUPPORTED, "%s does not implement logit soft-capping (softcap = %g); flash does",
                           kernel ? kernel : "this kernel", (double)p->softcap);
    if (p->q_offset != ATTUNE_Q_OFFSET_DEFAULT && (p->q_offset <= -DIM_LIMIT || p->q_offset >= DIM_LIMIT))
        return attune_fail(status, ATTUNE_ERR_INVALID_ARGUMENT, "q_offset = %lld is out of range (-2^31, 2^31)",
                           (long long)p->q_offset);
    rc = validate_modifiers(p, formats, kernel, status);
    if (rc != ATTUNE_OK) return rc;
    rc = validate_masks(p, formats, kernel, status);
    if (rc != ATTUNE_OK) return rc;
    const struct { const char *name; const attune_strides *s; } strides[] = {
        {"q", &p->q_stride}, {"k", &p->k_stride}, {"v", &p->v_stride}, {"o", &p->o_stride},
    };
    for (size_t i = 0; i < 4; i++) {
        const attune_strides *s = strides[i].s;
        if (s->batch < 0 || s->head < 0 || s->row < 0)
            return attune_fail(status, ATTUNE_ERR_INVALID_ARGUMENT, "%s strides must be non-negative", strides[i].name);
    }
    if (p->o_stride.row < p->v_dim)
        return attune_fail(status, ATTUNE_ERR_INVALID_ARGUMENT,
                           "o row stride (%lld) is smaller than v_dim (%lld): output rows would overlap",
                           (long long)p->o_stride.row, (long long)p->v_dim);
    if (!t) return attune_ok(status);
    if (!t->q || !t->o || (p->kv_len > 0 && (!t->k || !t->v)))
        return attune_fail(status, ATTUNE_ERR_INVALID_ARGUMENT, "q, k, v and o must not be NULL");

    /* Outputs must not overlap inputs: kernels read Q/K/V after writing O. */
    const char *o0, *o1, *x0, *x1;
    span(t->o, 4, p->batch, p->q_heads, p->q_len, p->v_dim, &p->o_stride, &o0, &o1);
    span(t->q, 4, p->batch, p->q_heads, p->q_len, p->qk_dim, &p->q_stride, &x0, &x1);
    if (overlaps(o0, o1, x0, x1))
        return attune_fail(status, ATTUNE_ERR_INVALID_ARGUMENT, "output o overlaps input q");
    if (p->kv_len > 0) {
        span(t->k, kv_bytes, p->batch, p->kv_heads, p->kv_len, p->qk_dim, &p->k_stride, &x0, &x1);
        if (overlaps(o0, o1, x0, x1))
            return attune_fail(status, ATTUNE_ERR_INVALID_ARGUMENT, "output o overlaps input k");
        span(t->v, kv_bytes, p->batch, p->kv_heads, p->kv_len, p->v_dim, &p->v_stride, &x0, &x1);
        if (overlaps(o0, o1, x0, x1))
            return attune_fail(status, ATTUNE_ERR_INVALID_ARGUMENT, "output o overlaps input v");
    }
    if (t->lse) {
        if (p->lse_stride_head < 0 || p->lse_stride_batch < 0)
            return attune_fail(status, ATTUNE_ERR_INVALID_ARGUMENT, "lse strides must be non-negative");
        if (p->lse_stride_head < p->q_len && p->q_heads > 1)
            return attune_fail(status, ATTUNE_ERR_INVALID_ARGUMENT,
                               "lse head stride (%lld) is smaller than q_len (%lld)",
                               (long long)p->lse_stride_head, (long long)p->q_len);
        const char *l0 = (const char *)t->lse;
        const char *l1 = (const char *)(t->lse + (p->batch - 1) * p->lse_stride_batch +
                                        (p->q_heads - 1) * p->lse_stride_head + p->q_len - 1) + sizeof(float) - 1;
        if (overlaps(l0, l1, o0, o1))
            return attune_fail(status, ATTUNE_ERR_INVALID_ARGUMENT, "lse overlaps output o");
    }
    return attune_ok(status);
}

int64_t attune_attention_q_offset(const attune_attention_problem *p) {
    return p->q_offset == ATTUNE_Q_OFFSET_DEFAULT ? p->kv_len - p->q_len : p->q_offset;
}

void attune_visible_range(const attune_attention_problem *p, int64_t q_offset, int64_t i,
                          int64_t *lo, int64_t *hi) {
    int64_t pos = q_offset + i;
    int64_t h = p->kv_len, l = 0;
    if (p->causal && pos + 1 < h) h = pos + 1;
    if (p->window > 0 && pos - p->window + 1 > l) l = pos - p->window + 1;
    if (h < l) h = l;
    if (h < 0) h = l = 0;
    if (l > p->kv_len) l = h = p->kv_len;
    *lo = l;
    *hi = h;
}

void attune_visible_keys(const attune_attention_problem *p, int64_t q_offset, int64_t *lo, int64_t *hi) {
    int64_t a = INT64_MAX, b = 0;
    for (int64_t i = 0; i < p->q_len; i++) {
        int64_t l, h;
        attune_visible_range(p, q_offset, i, &l, &h);
        if (l < h && l < a) a = l;
        if (l < h && h > b) b = h;
    }
    if (a > b) a = b = 0;
    *lo = a;
    *hi = b;
}

int64_t attune_attention_visible_pairs(const attune_attention_problem *p) {
    int64_t off = attune_attention_q_offset(p), total = 0;
    for (int64_t i = 0; i < p->q_len; i++) {
        int64_t lo, hi;
        attune_visible_range(p, off, i, &lo, &hi);
        if (!p->doc_ids && !p->block_mask) {
            total += hi - lo;
            continue;
        }
        for (int64_t j = lo; j < hi; j++) total += attune_mask_visible(p, off + i, j);
    }
    return total;
}

int32_t attune_kernels_openmp_enabled(void) {
#ifdef _OPENMP
    return 1;
#else
    return 0;
#endif
}

int32_t attune_kernels_max_threads(void) {
#ifdef _OPENMP
    return omp_get_max_threads();
#else
    return 1;
#endif
}

int32_t attune_kernels_has_avx512(void) {
#if defined(__AVX512F__)
    return 1;
#else
    return 0;
#endif
}

double attune_now_ms(void) {
#ifdef _OPENMP
    return omp_get_wtime() * 1e3;
#else
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec * 1e-6;
#endif
}
