/*
 * flash_bf16.c — the `precision=bf16` wide tiles (attention_bf16.h) of flash,
 * sparge (which runs on flash's tiles) and sigmoid: Q.K^T and P.V as bf16 dot
 * products with f32 accumulation (attention_tiles_bf16.h), everything else as
 * in the kernels' f32 tiles.
 *
 * Q, K and V stay fp32 in memory and are rounded to bf16 while packed: K and V
 * once per call, for the keys some query sees, into per-(batch, kv head)
 * buffers every q tile then reads (half the bytes of the f32 rows; packing
 * them per q tile instead cost ~20 % of the run, Docs/PERFORMANCE.md); Q once
 * per work item, from the scaled row-minor qt. The softmax state (running max,
 * sum, rescale) and the output accumulator are f32; P is rounded to bf16 only
 * as the left operand of P.V (the row sum l uses the unrounded P). The error
 * bound is in Docs/NUMERICS.md.
 *
 * V pairs are aligned to even key indices (pair i = keys 2i, 2i + 1); keys
 * no query sees are packed as zeros. Masked scores are -inf and P = 0, as in
 * the f32 tiles, so when every packed V value of a kv head is finite (checked
 * while packing) a tile's P.V is one pair kernel over all its pairs: 0 * v = 0
 * exactly for the keys a row does not see. Otherwise (NaN/Inf in V), per
 * 6-row block the pair kernel covers only the whole pairs every live row of
 * the block sees, and each row's other visible keys (a causal diagonal's
 * staircase, an odd tile edge) go through the f32 kernel row by row, so no
 * row multiplies a V row it cannot see, as in flash.
 */
#include "attention_bf16.h"
#include "attention_internal.h"
#include "simd.h"
#include "attention_tiles.h"
#include "attention_tiles_bf16.h"

#include <stdint.h>
#include <string.h>

#ifdef _OPENMP
#include <omp.h>
#endif

enum { PV_ROWS = 6, PV_COLS = 4, QK_KEYS = 6, QK_COLS = 4, PACK_KEYS = 64 };

static const uint16_t *k_rows(const attune_bf16_kv *pl, int64_t bg, int64_t j) {
    return pl->kpk + (bg * pl->klen + (j - pl->klo)) * pl->ks2;
}
/* V pair i (keys 2i, 2i + 1) of batch x kv head bg. */
static const uint16_t *v_pairs(const attune_bf16_kv *pl, int64_t bg, int64_t i) {
    return pl->vpk + (bg * (pl->klen / 2) + (i - pl->klo / 2)) * 2 * pl->dvp;
}

/* Keys [j0, j1) of batch x kv head bg (j0 even), zeros for keys before lo or
 * from hi on; flags the head when a V value is NaN or Inf. K/V may be stored as
 * bf16 or int8 (a KV cache): widened here, so the tiles never see the format. */
static void pack_keys(attune_bf16_kv *pl, int64_t bg, int64_t j0, int64_t j1, int64_t lo, int64_t hi) {
    const attune_attention_problem *p = pl->p;
    const int dqk = (int)p->qk_dim, dv = (int)p->v_dim, dvp = pl->dvp, fmt = p->kv.format;
    const int64_t b = bg / p->kv_heads, g = bg % p->kv_heads;
    for (int64_t j = j0 > lo ? j0 : lo; j < j1 && j < hi && !pl->v_only; j++) {
        float s;
        const void *k = kv_stored_row(p, pl->t, 0, b, g, j, &s);
        uint16_t *dst = (uint16_t *)k_rows(pl, bg, j);
        for (int d0 = 0; d0 < pl->ks2; d0 += 2 * VL) {
            vf x = d0 < dqk ? kv_load_stored(k, d0, vm_first(dqk - d0), fmt, s) : vf_zero();
            vf y = d0 + VL < dqk ? kv_load_stored(k, d0 + VL, vm_first(dqk - d0 - VL), fmt, s) : vf_zero();
            vbf_store_row(dst + d0, x, y);
        }
    }
    vmask finite = vm_first(VL);
    for (int64_t j = j0; j < j1; j += 2) {
        const int has_x = j >= lo && j < hi, has_y = j + 1 >= lo && j + 1 < hi;
        float sx = 1.0f, sy = 1.0f;
        const void *x = has_x ? kv_stored_row(p, pl->t, 1, b, g, j, &sx) : NULL;
        const void *y = has_y ? kv_stored_row(p, pl->t, 1, b, g, j + 1, &sy) : NULL;
        uint16_t *dst = (uint16_t *)v_pairs(pl, bg, j / 2);
        for (int c = 0; c < dvp; c += VL) {
            const vmask m = vm_first(dv - c);
            const vf a = has_x ? kv_load_stored(x, c, m, fmt, sx) : vf_zero(), b = has_y ? kv_load_stored(y, c, m, fmt, sy) : vf_zero();
            /* v - v is 0 for finite v, NaN for NaN and Inf. */
            finite &= vf_eq(vf_sub(a, a), vf_zero()) & vf_eq(vf_sub(b, b), vf_zero());
            vbf_store_pairs(dst + 2 * c, a, b);
        }
    }
    if (finite != vm_first(VL)) __atomic_store_n(pl->vbad + bg, 1, __ATOMIC_RELAXED);
}

/* The kept buffers (attention_bf16.h): a compiled model calls once per layer, and a
 * fresh buffer's page faults cost about 5 % of a causal N=2048 prefill. At most one
 * buffer stays per user. */
static struct {
    void *ptr;
    size_t bytes;
    int lock;
} kept[ATTUNE_KEPT_USERS];

static void kept_lock(int user) {
    while (__atomic_test_and_set(&kept[user].lock, __ATOMIC_ACQUIRE)) {
    }
}
static void kept_unlock(int user) { __atomic_clear(&kept[user].lock, __ATOMIC_RELEASE); }

void *attune_kept_take(int user, size_t bytes, size_t *got) {
    void *p = NULL;
    kept_lock(user);
    if (kept[user].ptr && kept[user].bytes >= bytes) {
        p = kept[user].ptr;
        *got = kept[user].bytes;
        kept[user].ptr = NULL;
    }
    kept_unlock(user);
    if (!p) {
        p = attune_scratch_alloc(bytes);
        *got = bytes;
    }
    return p;
}

void attune_kept_give(int user, void *p, size_t bytes) {
    if (!p) return;
    kept_lock(user);
    if (!kept[user].ptr || kept[user].bytes < bytes) {
        void *old = kept[user].ptr;
        kept[user].ptr = p;
        kept[user].bytes = bytes;
        p = old;
    }
    kept_unlock(user);
    attune_scratch_free(p);
}

int attune_bf16_prepack(attune_bf16_kv *pl, int threads) {
    const attune_attention_problem *p = pl->p;
    int64_t lo, hi;
    attune_visible_keys(p, pl->q_offset, &lo, &hi);
    pl->klo = lo / 2 * 2;
    pl->klen = (hi - pl->klo + 1) / 2 * 2;
    pl->ks2 = (int)((p->qk_dim + 2 * VL - 1) / (2 * VL) * (2 * VL));
    const int64_t heads = p->batch * p->kv_heads;
    /* K, V and the flags in one buffer, each part 64-byte aligned. */
    const size_t kbytes = pl->v_only ? 0 : (sizeof(uint16_t) * (size_t)(heads * pl->klen * pl->ks2) + 63) / 64 * 64;
    const size_t vbytes = (sizeof(uint16_t) * (size_t)(heads * pl->klen * pl->dvp) + 63) / 64 * 64;
    uint8_t *buf = attune_kept_take(ATTUNE_KEPT_BF16_KV, kbytes + vbytes + (size_t)heads + 64, &pl->bytes);
    if (!buf) return 0;
    pl->kpk = (uint16_t *)buf;
    pl->vpk = (uint16_t *)(buf + kbytes);
    pl->vbad = buf + kbytes + vbytes;
    memset(pl->vbad, 0, (size_t)heads);
    const int64_t chunks = (pl->klen + PACK_KEYS - 1) / PACK_KEYS, n = heads * chunks;
    (void)threads;
#ifdef _OPENMP
#pragma omp parallel for schedule(static) num_threads(threads)
#endif
    for (int64_t it = 0; it < n; it++) {
        const int64_t j0 = pl->klo + it % chunks * PACK_KEYS;
        pack_keys(pl, it / chunks, j0, j0 + PACK_KEYS < pl->klo + pl->klen ? j0 + PACK_KEYS : pl->klo + pl->klen, lo, hi);
    }
    return 1;
}

void attune_bf16_release(attune_bf16_kv *pl) {
    attune_kept_give(ATTUNE_KEPT_BF16_KV, pl->kpk, pl->bytes);
    pl->kpk = pl->vpk = NULL;
    pl->vbad = NULL;
}

uint16_t *attune_bf16_alloc_q(int rp, int64_t qk_dim) {
    return attune_scratch_alloc(sizeof(uint16_t) * (size_t)((qk_dim + 1) / 2) * 2 * (size_t)rp);
}

uint16_t *attune_bf16_alloc_p(int rp, int keys) {
    return attune_scratch_alloc(sizeof(uint16_t) * (size_t)(keys / 2 + 1) * 2 * (size_t)rp);
}

void attune_bf16_pack_q(const float *qt, uint16_t *qb, int rp, int64_t qk_dim) {
    const int dqk = (int)qk_dim;
    for (int d = 0; d < dqk; d += 2) {
        const float *a = qt + (int64_t)d * rp;
        const float *b = d + 1 < dqk ? a + rp : NULL;
        uint16_t *dst = qb + (int64_t)d * rp; /* pair d / 2 starts at (d / 2) * rp * 2 */
        for (int c = 0; c < rp; c += VL) vbf_store_pairs(dst + 2 * c, vf_load(a + c), b ? vf_load(b + c) : vf_zero());
    }
}

void attune_bf16_scores(const attune_bf16_kv *pl, const uint16_t *qb, float *st_all, int rp, int64_t bg, int64_t j0,
                        int n) {
    const int ks2 = pl->ks2, dq2 = (int)(pl->p->qk_dim + 1) / 2;
    for (int c0 = 0; c0 < rp / VL; c0 += QK_COLS) {
        const int cv = rp / VL - c0 < QK_COLS ? rp / VL - c0 : QK_COLS;
        const uint16_t *q = qb + (int64_t)c0 * VL * 2;
        for (int jj = 0; jj < n; jj += QK_KEYS) {
            const uint16_t *k = k_rows(pl, bg, j0 + jj);
            float *st = st_all + (int64_t)jj * rp + c0 * VL;
#define QK_CV(RK)                                                          \
    switch (cv) {                                                          \
    case 4: qk_bf16_block(k, ks2, q, rp, dq2, st, RK, 4); break;           \
    case 3: qk_bf16_block(k, ks2, q, rp, dq2, st, RK, 3); break;           \
    case 2: qk_bf16_block(k, ks2, q, rp, dq2, st, RK, 2); break;           \
    default: qk_bf16_block(k, ks2, q, rp, dq2, st, RK, 1); break;          \
    }
            switch (n - jj < QK_KEYS ? n - jj : QK_KEYS) {
            case 6: QK_CV(6) break;
            case 5: QK_CV(5) break;
            case 4: QK_CV(4) break;
            case 3: QK_CV(3) break;
            case 2: QK_CV(2) break;
            default: QK_CV(1) break;
            }
#undef QK_CV
        }
    }
}

/* Rows [r0, r0 + rr) over the np pairs at pt (P, pair stride 2 rp, row r0 first)
 * and v (V, pair stride 2 dvp), all columns; acc rows are rescaled by alpha first
 * (or, without alpha, the block is summed from zero and added). */
static void pv_rows_bf16(const attune_bf16_kv *pl, const attune_bf16_tile *t, int r0, int rr, const uint16_t *pt,
                         const uint16_t *v, int np) {
    const int dvp = pl->dvp, rp = t->rp;
    const float *al = t->alpha ? t->alpha + r0 : NULL;
    for (int d0 = 0; d0 < dvp; d0 += PV_COLS * VL) {
        const int cv = (dvp - d0) / VL < PV_COLS ? (dvp - d0) / VL : PV_COLS;
        float *acc = t->acc + (int64_t)r0 * dvp + d0;
        const uint16_t *vc = v + (int64_t)d0 * 2;
#define PV_BF16_CV(RR)                                                                 \
    switch (cv) {                                                                      \
    case 4: pv_bf16_block(acc, dvp, al, pt, 2 * rp, vc, 2 * dvp, 0, np, RR, 4); break;  \
    case 3: pv_bf16_block(acc, dvp, al, pt, 2 * rp, vc, 2 * dvp, 0, np, RR, 3); break;  \
    case 2: pv_bf16_block(acc, dvp, al, pt, 2 * rp, vc, 2 * dvp, 0, np, RR, 2); break;  \
    default: pv_bf16_block(acc, dvp, al, pt, 2 * rp, vc, 2 * dvp, 0, np, RR, 1); break; \
    }
        switch (rr) {
        case 6: PV_BF16_CV(6) break;
        case 5: PV_BF16_CV(5) break;
        case 4: PV_BF16_CV(4) break;
        case 3: PV_BF16_CV(3) break;
        case 2: PV_BF16_CV(2) break;
        default: PV_BF16_CV(1) break;
        }
#undef PV_BF16_CV
    }
}

/* f32 P.V of row r over keys [jb, je) of the tile (no rescale; blocked as the
 * bf16 block is when there is no alpha). */
/* Row r's keys [jb, je) of the tile against V as stored: vtile is the tile's first V
 * row in the problem's format, vsc its int8 scales (stride vss). */
#define PV_ROW(FMT)                                                                                                   \
    switch (cv) {                                                                                                     \
    case 4: pv_block(acc + d0, dvp, NULL, bl, pt, t->rp, kv_at(vtile, d0, FMT), vs, vsc, vss, jb, je, 0, tail, 1, 4, 0, FMT); break; \
    case 3: pv_block(acc + d0, dvp, NULL, bl, pt, t->rp, kv_at(vtile, d0, FMT), vs, vsc, vss, jb, je, 0, tail, 1, 3, 0, FMT); break; \
    case 2: pv_block(acc + d0, dvp, NULL, bl, pt, t->rp, kv_at(vtile, d0, FMT), vs, vsc, vss, jb, je, 0, tail, 1, 2, 0, FMT); break; \
    default: pv_block(acc + d0, dvp, NULL, bl, pt, t->rp, kv_at(vtile, d0, FMT), vs, vsc, vss, jb, je, 0, tail, 1, 1, 0, FMT); break; \
    }
static void pv_row_stored(const attune_bf16_kv *pl, const attune_bf16_tile *t, int r, const void *vtile, const float *vsc,
                          int64_t vss, int jb, int je) {
    const int dv = (int)pl->p->v_dim, dvp = pl->dvp, bl = t->alpha == NULL;
    const int64_t vs = pl->p->v_stride.row;
    float *acc = t->acc + (int64_t)r * dvp;
    const float *pt = t->st + r;
    for (int d0 = 0; d0 < dv; d0 += 4 * VL) {
        const int cols = dv - d0 < 4 * VL ? dv - d0 : 4 * VL, cv = (cols + VL - 1) / VL;
        const vmask tail = vm_first(cols - (cv - 1) * VL);
        if (pl->p->kv.format == ATTUNE_KV_BF16) {
            PV_ROW(KV_BF16)
        } else if (pl->p->kv.format == ATTUNE_KV_INT8) {
            PV_ROW(KV_INT8)
        } else {
            PV_ROW(KV_F32)
        }
    }
}
#undef PV_ROW

void attune_bf16_softmax_tile(float *st, int rp, uint16_t *pb, float *m, float *l, float *alpha,
                              const int32_t *lo, const int32_t *hi, int64_t j0, int n, int full) {
    const vf neg_inf = vf_set1(-INFINITY);
    const int64_t i0 = j0 / 2, i1 = (j0 + n + 1) / 2;
    for (int c = 0; c < rp; c += VL) {
        vf m_old = vf_load(m + c), mt = neg_inf;
        vi vlo = vi_load(lo + c), vhi = vi_load(hi + c);
        float *col = st + c;
        if (full) {
            for (int jj = 0; jj < n; jj++) mt = vf_max(mt, vf_load(col + (int64_t)jj * rp));
        } else {
            for (int jj = 0; jj < n; jj++) {
                vf s = vf_blend(vi_in_range(vlo, vhi, (int32_t)(j0 + jj)), vf_load(col + (int64_t)jj * rp), neg_inf);
                vf_store(col + (int64_t)jj * rp, s);
                mt = vf_max(mt, s);
            }
        }
        vf m_new = vf_max(m_old, mt);
        /* Rows that have seen no visible key yet keep alpha = 1, P = 0. */
        vmask dead = vf_eq(m_new, neg_inf);
        vf a = vf_blend(dead, vf_set1(1.0f), vf_exp2(vf_sub(m_old, m_new)));
        vf m_use = vf_blend(dead, vf_zero(), m_new);
        vf sum = vf_zero();
        for (int64_t i = i0; i < i1; i++) {
            const int64_t ja = 2 * i - j0;
            vf x = ja >= 0 ? vf_exp2_bf16(vf_sub(vf_load(col + ja * rp), m_use)) : vf_zero();
            vf y = ja + 1 < n ? vf_exp2_bf16(vf_sub(vf_load(col + (ja + 1) * rp), m_use)) : vf_zero();
            vbf_store_pairs(pb + ((i - i0) * rp + c) * 2, x, y);
            sum = vf_add(sum, vf_add(x, y));
        }
        vf_store(l + c, vf_fma(vf_load(l + c), a, sum));
        vf_store(m + c, m_new);
        vf_store(alpha + c, a);
    }
}

void attune_bf16_pv_tile(const attune_bf16_kv *pl, const attune_bf16_tile *t, int rb, int re, int64_t bg,
                         const float *vbase, int64_t j0, int n, int full) {
    const int rp = t->rp, finite = !pl->vbad[bg];
    /* P of rows [rb, re) as pairs i in [i0, i1): every pair touching the tile
     * (P = 0 outside it) when V is finite, else the whole pairs inside it. */
    const int64_t i0 = finite ? j0 / 2 : (j0 + 1) / 2, i1 = finite ? (j0 + n + 1) / 2 : (j0 + n) / 2;
    for (int64_t i = i0; i < i1 && !t->packed; i++) {
        const int64_t ja = 2 * i - j0;
        const float *a = t->st + ja * rp;
        for (int c = rb / VL * VL; c < re; c += VL)
            vbf_store_pairs(t->pb + ((i - i0) * rp + c) * 2, ja >= 0 ? vf_load(a + c) : vf_zero(),
                            ja + 1 < n ? vf_load(a + rp + c) : vf_zero());
    }
    if (finite) {
        for (int r0 = rb; r0 < re; r0 += PV_ROWS)
            pv_rows_bf16(pl, t, r0, re - r0 < PV_ROWS ? re - r0 : PV_ROWS, t->pb + (int64_t)r0 * 2, v_pairs(pl, bg, i0),
                         (int)(i1 - i0));
        return;
    }
    /* The tile's V rows as stored (vbase, an f32 head base, is not used: the cache may be bf16/int8). */
    (void)vbase;
    const attune_attention_problem *p = pl->p;
    const int64_t b = bg / p->kv_heads, g = bg % p->kv_heads;
    float first_scale;
    const void *vtile = kv_stored_row(p, pl->t, 1, b, g, j0, &first_scale);
    const float *vsc = p->kv.format == ATTUNE_KV_INT8 ? p->kv.v_scale + b * p->kv.v_scale_stride.batch +
                                                            g * p->kv.v_scale_stride.head + j0 * p->kv.v_scale_stride.row
                                                      : NULL;
    const int64_t vss = p->kv.v_scale_stride.row;
    for (int r0 = rb; r0 < re; r0 += PV_ROWS) {
        const int rr = re - r0 < PV_ROWS ? re - r0 : PV_ROWS;
        /* Keys [a, b) every live row of the block sees, shrunk to whole pairs [ia, ib). */
        int64_t a = j0, b = j0 + n;
        if (!full)
            for (int r = r0; r < r0 + rr; r++) {
                if (t->lo[r] >= t->hi[r]) continue;
                if (t->lo[r] > a) a = t->lo[r];
                if (t->hi[r] < b) b = t->hi[r];
            }
        int64_t ia = (a + 1) / 2, ib = b > 0 ? b / 2 : 0;
        if (ia > i1) ia = i1;
        if (ib < ia) ib = ia;
        pv_rows_bf16(pl, t, r0, rr, t->pb + ((ia - i0) * rp + r0) * 2, v_pairs(pl, bg, ia), (int)(ib - ia));
        const int64_t ka = 2 * ia, kb = 2 * ib;
        if (full && ka == j0 && kb == j0 + n) continue;
        for (int r = r0; r < r0 + rr; r++) {
            int64_t lo = j0, hi = j0 + n;
            if (!full) {
                if (t->lo[r] >= t->hi[r]) continue;
                lo = t->lo[r] > j0 ? t->lo[r] : j0;
                hi = t->hi[r] < j0 + n ? t->hi[r] : j0 + n;
            }
            if (lo < ka) pv_row_stored(pl, t, r, vtile, vsc, vss, (int)(lo - j0), (int)((hi < ka ? hi : ka) - j0));
            if (hi > kb) pv_row_stored(pl, t, r, vtile, vsc, vss, (int)((lo > kb ? lo : kb) - j0), (int)(hi - j0));
        }
    }
}
