/*
 * prefix_shared.c — attention for a batch of sequences that share a prefix (Hydragen).
 *
 * Sequence b's keys are [prefix (P keys, the same for every b) | suffix_b]. Attention
 * over all keys splits exactly into two parts merged by log-sum-exp:
 *
 *   prefix part: the queries of all B sequences stacked into one [B·Lq]-row problem
 *                against the one shared prefix, non-causal (every query is past the
 *                prefix) — one GEMM-shaped pass instead of B matrix-vector passes;
 *   suffix part: each sequence's own suffix, causal with positions shifted by P;
 *   merge:       L* = ln(e^L1 + e^L2), O = e^(L1-L*) O1 + e^(L2-L*) O2.
 *
 * Only batch 0's prefix rows of K and V are read: the caller promises the other
 * batches hold the same values there. Requirements (else ATTUNE_ERR_UNSUPPORTED):
 * every query sees the whole prefix (q_offset >= P - 1 under a causal mask) and no
 * sliding window. Both passes run `flash` with the caller's tile parameters, so K/V
 * stored as bf16 or int8 (p->kv) are read as flash reads them.
 */
#include "attune_attention.h"
#include "attention_internal.h"
#include "kv_format.h"

#include <math.h>
#include <string.h>

#ifdef _OPENMP
#include <omp.h>
#endif

int32_t attune_prefix_shared_attention(const attune_attention_problem *p, const attune_attention_tensors *t,
                                       const attune_prefix_shared_params *params, attune_status *status) {
    int32_t rc = attune_attention_validate_kv(p, t, ATTUNE_KV_ALL_FORMATS, "prefix_shared", status);
    if (rc != ATTUNE_OK) return rc;
    if (!params) return attune_fail(status, ATTUNE_ERR_INVALID_ARGUMENT, "prefix_shared needs params with prefix_len");
    const int64_t P = params->prefix_len, B = p->batch, Lq = p->q_len, Hq = p->q_heads, Dv = p->v_dim;
    if (P < 1 || P > p->kv_len)
        return attune_fail(status, ATTUNE_ERR_INVALID_ARGUMENT, "prefix_len = %lld must be in [1, kv_len = %lld]",
                           (long long)P, (long long)p->kv_len);
    const int64_t q_offset = attune_attention_q_offset(p);
    if (p->window > 0)
        return attune_fail(status, ATTUNE_ERR_UNSUPPORTED, "prefix_shared does not support a sliding window");
    if (p->causal && q_offset < P - 1)
        return attune_fail(status, ATTUNE_ERR_UNSUPPORTED,
                           "prefix_shared needs every query past the prefix: q_offset = %lld < prefix_len - 1 = %lld",
                           (long long)q_offset, (long long)(P - 1));

    /* Scratch: stacked queries, the two partial outputs and their LSEs. */
    const size_t f = sizeof(float);
    float *qs = attune_scratch_alloc(f * (size_t)(Hq * B * Lq * p->qk_dim));
    float *o1 = attune_scratch_alloc(f * (size_t)(Hq * B * Lq * Dv));
    float *l1 = attune_scratch_alloc(f * (size_t)(Hq * B * Lq));
    float *o2 = attune_scratch_alloc(f * (size_t)(B * Hq * Lq * Dv));
    float *l2 = attune_scratch_alloc(f * (size_t)(B * Hq * Lq));
    if (!qs || !o1 || !l1 || !o2 || !l2) {
        rc = attune_fail(status, ATTUNE_ERR_OUT_OF_MEMORY, "prefix_shared: cannot allocate scratch");
        goto done;
    }
    for (int64_t h = 0; h < Hq; h++)
        for (int64_t b = 0; b < B; b++)
            for (int64_t i = 0; i < Lq; i++)
                memcpy(qs + ((h * B + b) * Lq + i) * p->qk_dim,
                       t->q + b * p->q_stride.batch + h * p->q_stride.head + i * p->q_stride.row, f * (size_t)p->qk_dim);

    /* Prefix: one problem, B·Lq query rows per head, the shared prefix keys of batch 0. */
    attune_attention_problem pre = *p;
    pre.batch = 1;
    pre.q_len = B * Lq;
    pre.kv_len = P;
    pre.causal = 0;
    pre.q_offset = ATTUNE_Q_OFFSET_DEFAULT;
    pre.q_stride = (attune_strides){0, B * Lq * p->qk_dim, p->qk_dim};
    pre.o_stride = (attune_strides){0, B * Lq * Dv, Dv};
    pre.lse_stride_batch = 0;
    pre.lse_stride_head = B * Lq;
    attune_attention_tensors tp = {qs, t->k, t->v, o1, l1};
    rc = attune_flash_attention(&pre, &tp, &params->flash, status);
    if (rc != ATTUNE_OK) goto done;

    /* Suffixes: each sequence's own keys after the prefix, positions shifted by P. */
    attune_attention_problem suf = *p;
    suf.kv_len = p->kv_len - P;
    suf.q_offset = q_offset - P;
    suf.o_stride = (attune_strides){Hq * Lq * Dv, Lq * Dv, Dv};
    suf.lse_stride_batch = Hq * Lq;
    suf.lse_stride_head = Lq;
    attune_attention_tensors ts = {t->q, kv_at_rt(t->k, P * p->k_stride.row, p->kv.format),
                                   kv_at_rt(t->v, P * p->v_stride.row, p->kv.format), o2, l2};
    if (p->kv.format == ATTUNE_KV_INT8) {
        suf.kv.k_scale += P * p->kv.k_scale_stride.row;
        suf.kv.v_scale += P * p->kv.v_scale_stride.row;
    }
    if (suf.kv_len > 0) {
        rc = attune_flash_attention(&suf, &ts, &params->flash, status);
        if (rc != ATTUNE_OK) goto done;
    } else {
        for (int64_t i = 0; i < B * Hq * Lq; i++) l2[i] = -INFINITY;
        memset(o2, 0, f * (size_t)(B * Hq * Lq * Dv));
    }

    /* Merge each (sequence, head). */
#ifdef _OPENMP
#pragma omp parallel for schedule(static) num_threads(params->flash.threads > 0 ? params->flash.threads : omp_get_max_threads())
#endif
    for (int64_t bh = 0; bh < B * Hq; bh++) {
        const int64_t b = bh / Hq, h = bh % Hq;
        const float *parts[2] = {o1 + (h * B + b) * Lq * Dv, o2 + (b * Hq + h) * Lq * Dv};
        const float *lses[2] = {l1 + (h * B + b) * Lq, l2 + (b * Hq + h) * Lq};
        const int64_t strides[2] = {Dv, Dv};
        float *lse = t->lse ? t->lse + b * p->lse_stride_batch + h * p->lse_stride_head : NULL;
        attune_lse_merge_rows(2, Lq, Dv, parts, strides, lses,
                              t->o + b * p->o_stride.batch + h * p->o_stride.head, p->o_stride.row, lse);
    }
    rc = attune_ok(status);
done:
    attune_scratch_free(qs);
    attune_scratch_free(o1);
    attune_scratch_free(l1);
    attune_scratch_free(o2);
    attune_scratch_free(l2);
    return rc;
}

/* Ragged batches (compiled models): see attune_prefix_batch in the header. The
 * partial outputs are [rows, heads * v_dim] like O itself, their LSEs [heads, rows],
 * so one merge call per head covers every group. */
int32_t attune_prefix_batch_attention(const attune_attention_problem *base, const attune_prefix_batch *b,
                                      attune_attend_fn attend, void *ctx, attune_status *status) {
    if (!base || !b || !attend)
        return attune_fail(status, ATTUNE_ERR_INVALID_ARGUMENT, "prefix batch: NULL argument");
    if (base->window > 0)
        return attune_fail(status, ATTUNE_ERR_UNSUPPORTED, "prefix-shared batches do not support a sliding window");
    if (base->kv.format != ATTUNE_KV_F32)
        return attune_fail(status, ATTUNE_ERR_UNSUPPORTED, "prefix-shared batches read f32 K/V only, not %s",
                           attune_kv_format_name(base->kv.format));
    if (b->prefix_len < 0 || b->rows < 0 || b->groups < 0)
        return attune_fail(status, ATTUNE_ERR_INVALID_ARGUMENT, "prefix batch: negative length");
    int64_t covered = 0;
    for (int64_t g = 0; g < b->groups; g++) {
        if (b->first[g] != covered || b->count[g] < 1 || b->suffix_len[g] < b->count[g])
            return attune_fail(status, ATTUNE_ERR_INVALID_ARGUMENT,
                               "prefix batch: group %lld must start at row %lld with 1 <= rows <= its suffix length",
                               (long long)g, (long long)covered);
        covered += b->count[g];
    }
    if (covered != b->rows)
        return attune_fail(status, ATTUNE_ERR_INVALID_ARGUMENT, "prefix batch: groups cover %lld of %lld rows",
                           (long long)covered, (long long)b->rows);

    const int64_t H = base->q_heads, Dq = base->qk_dim, Dv = base->v_dim, R = b->rows;
    const size_t f = sizeof(float);
    float *o1 = attune_scratch_alloc(f * (size_t)(R * H * Dv)), *l1 = attune_scratch_alloc(f * (size_t)(H * R));
    float *o2 = attune_scratch_alloc(f * (size_t)(R * H * Dv)), *l2 = attune_scratch_alloc(f * (size_t)(H * R));
    int32_t rc = ATTUNE_OK;
    if (!o1 || !l1 || !o2 || !l2) {
        rc = attune_fail(status, ATTUNE_ERR_OUT_OF_MEMORY, "prefix batch: cannot allocate scratch");
        goto done;
    }

    attune_attention_problem p = *base;
    p.batch = 1;
    p.q_stride = (attune_strides){0, Dq, b->q_row_stride};
    p.k_stride = (attune_strides){0, Dq, b->k_row_stride};
    p.v_stride = (attune_strides){0, Dv, b->v_row_stride};
    p.o_stride = (attune_strides){0, Dv, H * Dv};
    p.lse_stride_batch = 0;
    p.lse_stride_head = R;

    /* Prefix: all R rows at once against the shared keys; no mask, every row is past them. */
    if (b->prefix_len > 0) {
        p.q_len = R;
        p.kv_len = b->prefix_len;
        p.causal = 0;
        p.q_offset = ATTUNE_Q_OFFSET_DEFAULT;
        attune_attention_tensors t = {b->q, b->prefix_k, b->prefix_v, o1, l1};
        rc = attend(ctx, &p, &t, status);
        if (rc != ATTUNE_OK) goto done;
    } else {
        for (int64_t i = 0; i < H * R; i++) l1[i] = -INFINITY;
        memset(o1, 0, f * (size_t)(R * H * Dv));
    }

    /* Suffixes: each group's rows against its own keys, positions counted from the suffix start. */
    p.causal = base->causal;
    for (int64_t g = 0; g < b->groups; g++) {
        p.q_len = b->count[g];
        p.kv_len = b->suffix_len[g];
        p.q_offset = ATTUNE_Q_OFFSET_DEFAULT;
        attune_attention_tensors t = {b->q + b->first[g] * b->q_row_stride, b->suffix_k[g], b->suffix_v[g],
                                      o2 + b->first[g] * H * Dv, l2 + b->first[g]};
        rc = attend(ctx, &p, &t, status);
        if (rc != ATTUNE_OK) goto done;
    }

    for (int64_t h = 0; h < H; h++) {
        const float *parts[2] = {o1 + h * Dv, o2 + h * Dv};
        const float *lses[2] = {l1 + h * R, l2 + h * R};
        const int64_t strides[2] = {H * Dv, H * Dv};
        attune_lse_merge_rows(2, R, Dv, parts, strides, lses, b->o + h * Dv, b->o_row_stride, NULL);
    }
    rc = attune_ok(status);
done:
    attune_scratch_free(o1);
    attune_scratch_free(l1);
    attune_scratch_free(o2);
    attune_scratch_free(l2);
    return rc;
}
