/*
 * kv_tiles.c — bf16 and int8 instances of the narrow score and P.V
 * micro-kernels, and the packing of wide tiles (kv_tiles.h). A translation
 * unit of its own so the fp32 kernels' files instantiate no narrow-format code.
 */
#define ATTUNE_TILES_KV 1
#include "kv_tiles.h"
#include "attention_internal.h"
#include "kv_format.h"

#include <math.h>
#include <string.h>

void attune_kv_head(const attune_attention_problem *p, const attune_attention_tensors *t, int64_t b, int64_t g,
                    kv_head *out) {
    const attune_kv_storage *kv = &p->kv;
    memset(out, 0, sizeof *out);
    out->fmt = kv->format;
    out->k = kv_at_rt(t->k, b * p->k_stride.batch + g * p->k_stride.head, kv->format);
    out->v = kv_at_rt(t->v, b * p->v_stride.batch + g * p->v_stride.head, kv->format);
    out->ks = p->k_stride.row;
    out->vs = p->v_stride.row;
    if (kv->format == KV_INT8) {
        out->ksc = kv->k_scale + b * kv->k_scale_stride.batch + g * kv->k_scale_stride.head;
        out->vsc = kv->v_scale + b * kv->v_scale_stride.batch + g * kv->v_scale_stride.head;
        out->kss = kv->k_scale_stride.row;
        out->vss = kv->v_scale_stride.row;
    }
    out->dk = (int)p->qk_dim;
    out->dv = (int)p->v_dim;
    out->kv_len = p->kv_len;
}

ATTUNE_INLINE void scores_fmt(const kv_head *h, const float *q, int R, int64_t j0, int n, int prefetch, float *st,
                              const int FMT) {
    const int dqk = h->dk, KK = VL / R;
    const int64_t ks = h->ks;
    int jj = 0;
    for (; jj + KK <= n; jj += KK) {
        const void *kp = kv_at(h->k, (j0 + jj) * ks, FMT);
        const int64_t ahead = j0 + jj + PREFETCH_KEYS_AHEAD;
        const void *pk = prefetch && ahead + KK <= h->kv_len ? kv_at(h->k, ahead * ks, FMT) : NULL;
        float *sp = st + (int64_t)jj * R;
        if (R == 1) qk_narrow_block_fmt(q, kp, ks, dqk, sp, pk, 1, 16, FMT);
        else if (R == 2) qk_narrow_block_fmt(q, kp, ks, dqk, sp, pk, 2, 8, FMT);
        else qk_narrow_block_fmt(q, kp, ks, dqk, sp, pk, 4, 4, FMT);
    }
    for (; jj < n; jj++) qk_narrow_key_fmt(q, R, kv_at(h->k, (j0 + jj) * ks, FMT), dqk, st + (int64_t)jj * R, FMT);
}

void attune_kv_scores_narrow(const kv_head *h, const float *q, int R, int64_t j0, int n, int prefetch, float pad,
                             float *st) {
    if (h->fmt == KV_BF16) {
        scores_fmt(h, q, R, j0, n, prefetch, st, KV_BF16);
    } else {
        scores_fmt(h, q, R, j0, n, prefetch, st, KV_INT8);
        /* q . (s k_int) = s (q . k_int): one multiply per score. */
        for (int jj = 0; jj < n; jj++) {
            const float s = h->ksc[(j0 + jj) * h->kss];
            for (int r = 0; r < R; r++) st[(int64_t)jj * R + r] *= s;
        }
    }
    for (int i = n * R; i % VL; i++) st[i] = pad;
}

void attune_kv_pv_tile(const kv_head *h, const pv_target *target, const float *pt, int ps, int rb, int re, int64_t j0,
                       int n, int full, int prefetch) {
    pv_target t = *target;
    t.fmt = h->fmt;
    t.vs = h->vs;
    t.kv_len = h->kv_len;
    t.vscale = h->vsc;
    t.vscale_stride = h->vss;
    pv_accumulate_tile(&t, pt, ps, rb, re, h->v, j0, n, full, prefetch);
}

void attune_kv_unpack(const kv_head *h, int v, int64_t j0, int n, float *dst) {
    const int dim = v ? h->dv : h->dk;
    const int64_t stride = v ? h->vs : h->ks;
    const void *base = v ? h->v : h->k;
    const float *sc = v ? h->vsc : h->ksc;
    const int64_t ss = v ? h->vss : h->kss;
    for (int jj = 0; jj < n; jj++) {
        const void *row = kv_at_rt(base, (j0 + jj) * stride, h->fmt);
        float *out = dst + (int64_t)jj * dim;
        const vf s = vf_set1(h->fmt == KV_INT8 ? sc[(j0 + jj) * ss] : 1.0f);
        for (int d0 = 0; d0 < dim; d0 += VL) {
            vmask m = vm_first(dim - d0);
            vf x = h->fmt == KV_BF16 ? kv_load_n(kv_at(row, d0, KV_BF16), m, KV_BF16)
                                     : vf_mul(kv_load_n(kv_at(row, d0, KV_INT8), m, KV_INT8), s);
            vf_store_n(out + d0, x, m);
        }
    }
}
