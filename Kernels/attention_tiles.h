/*
 * attention_tiles.h — micro-kernels shared by the tiled attention kernels (the
 * engine's variants, attention_engine.h: flash, unified_max, sigmoid; and hybrid,
 * kascade, sparge). Static inline: every kernel gets its own specialised copy, as
 * if the code were in its file.
 */
#ifndef ATTUNE_ATTENTION_TILES_H
#define ATTUNE_ATTENTION_TILES_H

#include "simd.h"
#include "kv_format.h"

#include <stdint.h>

/* Decode streams K and V from DRAM at a pace the hardware prefetcher alone does
 * not cover, so the narrow paths ask for the rows this many keys ahead: K while
 * computing scores, V while accumulating P.V, so requests flow in both phases.
 * Prefetches go to L2, one line per row per vector step, spread among the FMAs:
 * bursts of a whole row were ~10% slower, and prefetcht0 (L1) far slower, as it
 * holds the L1 miss buffers the demand loads need. 8..32 keys ahead measured alike. */
enum { PREFETCH_KEYS_AHEAD = 16 };

/* prefetcht1: to L2. Zen 4 honours the hint; L1 prefetch measured 30-50 % slower in
 * decode (it holds the miss buffers the demand loads need; see flash.c). */
static inline void prefetch_l2(const void *p) { __builtin_prefetch(p, 0, 2); }

/* Whether elements [i, i + 16) of format FMT start a cache line (assuming the row
 * does): narrower formats prefetch once per 64 bytes, not once per vector. */
ATTUNE_INLINE int kv_line_start(int64_t i, const int FMT) {
    return FMT == KV_F32 || (i * (FMT == KV_BF16 ? 2 : 1)) % 64 == 0;
}

static inline int largest_divisor_at_most(int64_t n, int64_t cap) {
    for (int64_t d = cap < n ? cap : n; d > 1; d--)
        if (n % d == 0) return (int)d;
    return 1;
}

/* Where a tile's K rows are: a range, row kk at k + kk * ks (the engine's tiles), or,
 * with GATHER (a compile-time constant), a list of row pointers rows[kk] (kascade's
 * selected keys, scattered and never copied). Either way a score is the same chain of
 * FMAs along the head dim, so a gathered tile scores exactly like a range. */
ATTUNE_INLINE const float *key_row(const float *k, int64_t ks, const float *const *rows, int kk, const int GATHER) {
    return GATHER ? rows[kk] : k + kk * ks;
}

/* S^T[kk][c*16..] for RK keys (key_row) x CV vectors of query rows; with BIAS (a
 * compile-time constant) `bias` is added to every score after the dot product, not
 * pre-filled: the sum then carries the rounding of |q.k|, not of |q.k + b| (sigmoid's bias). */
ATTUNE_INLINE void qk_wide_block(const float *k, int64_t ks, const float *const *rows, const float *qt, int rp, int dqk,
                                 float *st, vf bias, const int RK, const int CV, const int BIAS, const int GATHER) {
    vf acc[6][4];
    for (int kk = 0; kk < RK; kk++)
        for (int c = 0; c < CV; c++) acc[kk][c] = vf_zero();
    for (int d = 0; d < dqk; d++) {
        vf q[4];
        for (int c = 0; c < CV; c++) q[c] = vf_load(qt + (int64_t)d * rp + c * VL);
        for (int kk = 0; kk < RK; kk++) {
            vf kb = vf_set1(key_row(k, ks, rows, kk, GATHER)[d]);
            for (int c = 0; c < CV; c++) acc[kk][c] = vf_fma(kb, q[c], acc[kk][c]);
        }
    }
    for (int kk = 0; kk < RK; kk++)
        for (int c = 0; c < CV; c++) vf_store(st + (int64_t)kk * rp + c * VL, BIAS ? vf_add(acc[kk][c], bias) : acc[kk][c]);
}

#define QK_WIDE_CV(RK)                                                                         \
    switch (cv) {                                                                              \
    case 4: qk_wide_block(kp, ks, krows, qt, rp, dqk, sp, bias, RK, 4, BIAS, GATHER); break;  \
    case 3: qk_wide_block(kp, ks, krows, qt, rp, dqk, sp, bias, RK, 3, BIAS, GATHER); break;  \
    case 2: qk_wide_block(kp, ks, krows, qt, rp, dqk, sp, bias, RK, 2, BIAS, GATHER); break;  \
    default: qk_wide_block(kp, ks, krows, qt, rp, dqk, sp, bias, RK, 1, BIAS, GATHER); break; \
    }

/* S^T ([n][rp]) of a wide q tile (Q row-minor in qt_all, [dqk][rp]) against keys
 * [j0, j0 + n) at kbase (row stride ks) or, with GATHER, the n rows at rows[0..n),
 * in blocks of 6 keys x 4 vectors of rows; BIAS as in qk_wide_block. */
ATTUNE_INLINE void qk_wide_tile_of(const float *qt_all, int rp, int dqk, const float *kbase, int64_t ks,
                                   const float *const *rows, int64_t j0, int n, float *st, vf bias, const int BIAS,
                                   const int GATHER) {
    for (int c0 = 0; c0 < rp / VL; c0 += 4) {
        int cv = rp / VL - c0 < 4 ? rp / VL - c0 : 4;
        const float *qt = qt_all + c0 * VL;
        for (int jj = 0; jj < n; jj += 6) {
            const float *kp = GATHER ? NULL : kbase + (j0 + jj) * ks;
            const float *const *krows = GATHER ? rows + jj : NULL;
            float *sp = st + (int64_t)jj * rp + c0 * VL;
            switch (n - jj < 6 ? n - jj : 6) {
            case 6: QK_WIDE_CV(6) break;
            case 5: QK_WIDE_CV(5) break;
            case 4: QK_WIDE_CV(4) break;
            case 3: QK_WIDE_CV(3) break;
            case 2: QK_WIDE_CV(2) break;
            default: QK_WIDE_CV(1) break;
            }
        }
    }
}

/* The engine's tiles: keys [j0, j0 + n) of K at kbase. */
ATTUNE_INLINE void qk_wide_tile(const float *qt_all, int rp, int dqk, const float *kbase, int64_t ks, int64_t j0,
                                int n, float *st, vf bias, const int BIAS) {
    qk_wide_tile_of(qt_all, rp, dqk, kbase, ks, NULL, j0, n, st, bias, BIAS, 0);
}

/* A gathered tile: the n f32 key rows at rows[0..n), no bias. */
ATTUNE_INLINE void qk_wide_gather(const float *qt_all, int rp, int dqk, const float *const *rows, int n, float *st) {
    qk_wide_tile_of(qt_all, rp, dqk, NULL, 0, rows, 0, n, st, vf_zero(), 0, 1);
}

/* S^T for R rows x KK keys (R * KK == 16): dot products along the head dim,
 * all 16 folded at once by the transpose tree, returned key-major in one vector
 * (lane kk*R + r) for the caller to transform in registers (sigmoid) or store.
 * With pk != NULL the KK K rows at pk are prefetched along the way. K elements
 * are of format FMT (ks counts them), widened in registers; int8 gives
 * q . k_int, the caller applies the key's scale. */
ATTUNE_INLINE vf qk_narrow_sum_fmt(const float *q, const void *k, int64_t ks, int dqk, const void *pk, const int R,
                                   const int KK, const int FMT) {
    vf acc[16];
    for (int i = 0; i < 16; i++) acc[i] = vf_zero();
    for (int d0 = 0; d0 < dqk; d0 += VL) {
        if (pk && kv_line_start(d0, FMT))
            for (int kk = 0; kk < KK; kk++) prefetch_l2(kv_at(pk, kk * ks + d0, FMT));
        vmask m = vm_first(dqk - d0);
        vf kv[16];
        for (int kk = 0; kk < KK; kk++) kv[kk] = kv_load_n(kv_at(k, kk * ks + d0, FMT), m, FMT);
        for (int r = 0; r < R; r++) {
            vf qv = vf_load_n(q + (int64_t)r * dqk + d0, m);
            for (int kk = 0; kk < KK; kk++) acc[kk * R + r] = vf_fma(qv, kv[kk], acc[kk * R + r]);
        }
    }
    return vf_transpose_sum16(acc);
}

/* The same, stored as st[kk*R + r]. */
ATTUNE_INLINE void qk_narrow_block_fmt(const float *q, const void *k, int64_t ks, int dqk, float *st,
                                       const void *pk, const int R, const int KK, const int FMT) {
    vf_store(st, qk_narrow_sum_fmt(q, k, ks, dqk, pk, R, KK, FMT));
}

/* One key for rows [0, rows): the tail of a tile (K of format FMT, as above). */
ATTUNE_INLINE void qk_narrow_key_fmt(const float *qr, int rows, const void *k, int dqk, float *st, const int FMT) {
    for (int r = 0; r < rows; r++) {
        vf acc = vf_zero();
        for (int d0 = 0; d0 < dqk; d0 += VL) {
            vmask m = vm_first(dqk - d0);
            acc = vf_fma(vf_load_n(qr + (int64_t)r * dqk + d0, m), kv_load_n(kv_at(k, d0, FMT), m, FMT), acc);
        }
        st[r] = vf_hsum(acc);
    }
}

static inline void qk_narrow_key(const float *qr, int rows, const float *k, int dqk, float *st) {
    qk_narrow_key_fmt(qr, rows, k, dqk, st, KV_F32);
}

/* ----------------------------------------------------------- softmax */

/* Online-softmax step for rows [r0, r0 + R) of a packed S^T (row stride R: a vector
 * holds 16 / R keys of all R rows, so one exp2 serves 16 scores instead of the R live
 * lanes of a 16-row column) over n keys at j0. Boundary tiles (full == 0) mask keys
 * outside each row's [lo, hi); the running max m, sum l and rescale alpha of the rows
 * are updated and P replaces S. */
ATTUNE_INLINE void softmax_packed_step(float *st, float *m, float *l, float *alpha, const int32_t *lo, const int32_t *hi,
                                       int r0, int R, int64_t j0, int n, int full) {
    const int nv = (n * R + VL - 1) / VL, keys_per_vec = VL / R;
    const vf neg_inf = vf_set1(-INFINITY);
    vf m_old = vf_row_spread(m + r0, R), mt = neg_inf;
    if (full) {
        for (int b = 0; b < nv; b++) mt = vf_max(mt, vf_load(st + b * VL));
    } else {
        vi vlo = vi_row_spread(lo + r0, R), vhi = vi_row_spread(hi + r0, R);
        for (int b = 0; b < nv; b++) {
            vf s = vf_load(st + b * VL);
            s = vf_blend(vi_keys_in_range(vlo, vhi, (int32_t)(j0 + b * keys_per_vec), R), s, neg_inf);
            vf_store(st + b * VL, s);
            mt = vf_max(mt, s);
        }
    }
    vf m_new = vf_max(m_old, vf_row_max(mt, R));
    /* Rows that have seen no visible key yet keep alpha = 1, P = 0. */
    vmask dead = vf_eq(m_new, neg_inf);
    vf a = vf_blend(dead, vf_set1(1.0f), vf_exp2(vf_sub(m_old, m_new)));
    vf m_use = vf_blend(dead, vf_zero(), m_new);
    vf sum = vf_zero();
    for (int b = 0; b < nv; b++) {
        vf pr = vf_exp2(vf_sub(vf_load(st + b * VL), m_use));
        vf_store(st + b * VL, pr);
        sum = vf_add(sum, pr);
    }
    /* Lanes 0..R-1 hold rows r0..r0+R-1. */
    vmask rows = vm_first(R);
    vf lv = vf_row_spread(l + r0, R);
    vf_store_n(l + r0, vf_fma(lv, a, vf_row_sum(sum, R)), rows);
    vf_store_n(m + r0, m_new, rows);
    vf_store_n(alpha + r0, a, rows);
}

/* ------------------------------------------------------------------- P.V */

/* Where a tile's P.V goes: accumulator rows (stride dvp) and how they combine with
 * the tile. `alpha`: online softmax, each row is rescaled by alpha[r] before the tile
 * is added (when the call asks for it); `blocked`: the tile is summed from zero and then
 * added, so fp32 rounding grows with tile length plus tile count rather than with a
 * row's key count (sigmoid, which has no normaliser to hide it); neither: plain +=.
 * lo/hi: each row's visible keys [lo, hi). */
typedef struct {
    float *acc;
    int dvp;
    const float *alpha;
    int blocked;
    const int32_t *lo, *hi;
    int dv;
    int64_t vs, kv_len;
    /* V of another format (attune_kv_format; 0 = fp32, what zero-initialised targets
     * get): only in translation units that define ATTUNE_TILES_KV before including
     * this header. int8: vscale[j * vscale_stride] is key j's scale (from vbase's key 0). */
    int fmt;
    const float *vscale;
    int64_t vscale_stride;
} pv_target;

/* RR rows x CV vectors of P.V over keys [jb, je); `tail` masks the last vector's lanes
 * (v_dim % 16). How acc combines (scale / blocked) is decided outside the key loop. With
 * PF (decode), for jj < pf_end the same columns of V row jj + PREFETCH_KEYS_AHEAD are
 * prefetched; a compile-time switch because even a never-taken test in this loop cost
 * prefill 13%. */
ATTUNE_INLINE void pv_block(float *acc, int dvp, const float *alpha, int blocked,
                            const float *pt, int ps, const void *v, int64_t vs, const float *vsc, int64_t vss,
                            int jb, int je, int pf_end, vmask tail, const int RR, const int CV,
                            const int PF, const int FMT) {
    vf o[6][4];
    for (int r = 0; r < RR; r++) {
        const vf a = vf_set1(alpha ? alpha[r] : 1.0f);
        for (int c = 0; c < CV; c++) o[r][c] = blocked ? vf_zero() : vf_mul(vf_load(acc + (int64_t)r * dvp + c * VL), a);
    }
    for (int jj = jb; jj < je; jj++) {
        const void *vr = kv_at(v, (int64_t)jj * vs, FMT);
        if (PF && jj < pf_end)
            for (int c = 0; c < CV; c++)
                if (kv_line_start(c * VL, FMT)) prefetch_l2(kv_at(vr, PREFETCH_KEYS_AHEAD * vs + c * VL, FMT));
        vf vv[4];
        for (int c = 0; c < CV; c++)
            vv[c] = FMT != KV_F32       ? kv_load_n(kv_at(vr, c * VL, FMT), c == CV - 1 ? tail : vm_first(VL), FMT)
                    : c == CV - 1 ? vf_load_n((const float *)vr + c * VL, tail)
                                  : vf_load((const float *)vr + c * VL);
        const float *pr = pt + (int64_t)jj * ps;
        /* int8: the key's scale joins the probability, one multiply per row and key. */
        const float sv = FMT == KV_INT8 ? vsc[(int64_t)jj * vss] : 1.0f;
        for (int r = 0; r < RR; r++) {
            vf pb = vf_set1(FMT == KV_INT8 ? pr[r] * sv : pr[r]);
            for (int c = 0; c < CV; c++) o[r][c] = vf_fma(pb, vv[c], o[r][c]);
        }
    }
    for (int r = 0; r < RR; r++)
        for (int c = 0; c < CV; c++) {
            float *a = acc + (int64_t)r * dvp + c * VL;
            vf_store(a, blocked ? vf_add(vf_load(a), o[r][c]) : o[r][c]);
        }
}

#define PV_CVF(RR, PF, FMT)                                                                                 \
    switch (cv) {                                                                                           \
    case 4: pv_block(ap, dvp, al, blocked, pt, ps, vp, vs, vsc, vss, jb, je, pf_end, tail, RR, 4, PF, FMT); break;  \
    case 3: pv_block(ap, dvp, al, blocked, pt, ps, vp, vs, vsc, vss, jb, je, pf_end, tail, RR, 3, PF, FMT); break;  \
    case 2: pv_block(ap, dvp, al, blocked, pt, ps, vp, vs, vsc, vss, jb, je, pf_end, tail, RR, 2, PF, FMT); break;  \
    default: pv_block(ap, dvp, al, blocked, pt, ps, vp, vs, vsc, vss, jb, je, pf_end, tail, RR, 1, PF, FMT); break; \
    }
#define PV_CV(RR, PF) PV_CVF(RR, PF, KV_F32)

/* Narrow-format V (rows <= 4, the decode path's blocks): the prefetching instance serves
 * every call, pf_end = 0 turning its prefetch off. */
#define PV_RR_FMT(FMT)                       \
    switch (rr) {                            \
    case 4: PV_CVF(4, 1, FMT) break;         \
    case 3: PV_CVF(3, 1, FMT) break;         \
    case 2: PV_CVF(2, 1, FMT) break;         \
    default: PV_CVF(1, 1, FMT) break;        \
    }

/* Rows [r0, r0+rr) over keys [jb, je) of the tile, all v_dim columns; P[r0 + i][jj] is
 * pt[jj * ps + i]; `apply`: rescale by alpha (once per row and tile). */
static inline void pv_accumulate_rows(const pv_target *t, const void *vtile, const float *vsc, const float *pt, int ps,
                           int r0, int rr, int jb, int je, int apply, int pf_end) {
    const int dvp = t->dvp, dv = t->dv, blocked = t->blocked;
    const int64_t vs = t->vs, vss = t->vscale_stride;
    const float *al = apply && t->alpha ? t->alpha + r0 : NULL;
    for (int d0 = 0; d0 < dv; d0 += 4 * VL) {
        int cols = dv - d0 < 4 * VL ? dv - d0 : 4 * VL;
        int cv = (cols + VL - 1) / VL;
        vmask tail = vm_first(cols - (cv - 1) * VL);
        float *ap = t->acc + (int64_t)r0 * dvp + d0;
        const void *vp = kv_at_rt(vtile, d0, t->fmt);
#ifdef ATTUNE_TILES_KV
        if (t->fmt == KV_BF16) { PV_RR_FMT(KV_BF16) continue; }
        if (t->fmt == KV_INT8) { PV_RR_FMT(KV_INT8) continue; }
#endif
        if (pf_end > jb) { /* decode: rr <= 4 */
            switch (rr) {
            case 4: PV_CV(4, 1) break;
            case 3: PV_CV(3, 1) break;
            case 2: PV_CV(2, 1) break;
            default: PV_CV(1, 1) break;
            }
            continue;
        }
        switch (rr) {
        case 6: PV_CV(6, 0) break;
        case 5: PV_CV(5, 0) break;
        case 4: PV_CV(4, 0) break;
        case 3: PV_CV(3, 0) break;
        case 2: PV_CV(2, 0) break;
        default: PV_CV(1, 0) break;
        }
    }
}

/* acc (rows [rb, re)) and P V of a tile of n keys at j0; P[r][jj] is pt[jj * ps + r - rb].
 * Boundary tiles (full == 0): the block kernel covers only the keys every live row of
 * the block sees, each row's remaining visible keys go row by row, so no row multiplies
 * a V row it cannot see (NaN/Inf in masked V stay out); rows that see nothing are
 * skipped. With prefetch (decode), V rows are requested ahead. */
static inline void pv_accumulate_tile(const pv_target *t, const float *pt, int ps, int rb, int re,
                           const void *vbase, int64_t j0, int n, int full, int prefetch) {
    int64_t pf_keys = t->kv_len - PREFETCH_KEYS_AHEAD - j0;
    int pf_end = !prefetch || pf_keys < 0 ? 0 : pf_keys < n ? (int)pf_keys : n;
    const void *vtile = kv_at_rt(vbase, j0 * t->vs, t->fmt);
    const float *vsc = t->vscale ? t->vscale + j0 * t->vscale_stride : NULL;
    for (int r0 = rb; r0 < re; r0 += 6) {
        int rr = re - r0 < 6 ? re - r0 : 6;
        const float *p0 = pt + (r0 - rb);
        if (full) {
            pv_accumulate_rows(t, vtile, vsc, p0, ps, r0, rr, 0, n, 1, pf_end);
            continue;
        }
        int64_t a = j0, b = j0 + n;
        for (int r = r0; r < r0 + rr; r++) {
            if (t->lo[r] >= t->hi[r]) continue;
            if (t->lo[r] > a) a = t->lo[r];
            if (t->hi[r] < b) b = t->hi[r];
        }
        if (b < a) b = a;
        pv_accumulate_rows(t, vtile, vsc, p0, ps, r0, rr, (int)(a - j0), (int)(b - j0), 1, 0);
        for (int r = r0; r < r0 + rr; r++) {
            if (t->lo[r] >= t->hi[r]) continue;
            const float *pr = pt + (r - rb);
            int64_t lo = t->lo[r] > j0 ? t->lo[r] : j0, hi = t->hi[r] < j0 + n ? t->hi[r] : j0 + n;
            if (lo < a) pv_accumulate_rows(t, vtile, vsc, pr, ps, r, 1, (int)(lo - j0), (int)((hi < a ? hi : a) - j0), 0, 0);
            if (hi > b) pv_accumulate_rows(t, vtile, vsc, pr, ps, r, 1, (int)((lo > b ? lo : b) - j0), (int)(hi - j0), 0, 0);
        }
    }
}

#endif
