/*
 * flash_softmax.h — flash's online softmax for the kernels built on it (flash.c,
 * sparge.c): the tile instances of flash_tiles.c, the wide online-softmax step,
 * the bf16 P.V view and the row finish. A template like attention_engine.h:
 * the includer defines `plan` and `scratch` first, and the steps read their
 * fields by name (ATTENTION_PLAN_FIELDS / ATTENTION_SCRATCH_FIELDS, and the
 * scratch's m, l, alpha). Internal, not ABI.
 */
#ifndef ATTUNE_FLASH_SOFTMAX_H
#define ATTUNE_FLASH_SOFTMAX_H

#include "attune_attention.h"
#include "attention_bf16.h"
#include "attention_tiles.h"
#include "simd.h"

#include <math.h>
#include <stdint.h>

#define ATTUNE_HIDDEN __attribute__((visibility("hidden")))

/* S^T (st, row stride rp) of a wide (>= 16 rows) q tile, Q packed row-minor in qt
 * (qk_dim dqk), against keys [j0, j0 + n) of K at kbase with row stride ks. */
ATTUNE_HIDDEN void attune_flash_scores_wide(const float *qt, int rp, int dqk, const float *kbase, int64_t ks,
                                            int64_t j0, int n, float *st);

/* t->acc = t->alpha acc + P V for rows [rb, re) of a tile of n keys at j0 of f32 V
 * (t's blocked and format fields are not read); P[r][jj] is pt[jj * ps + r - rb].
 * Boundary tiles (full == 0) multiply each row only by the V rows it sees. With
 * prefetch (decode) V rows are requested ahead. */
ATTUNE_HIDDEN void attune_flash_pv_tile(const pv_target *t, const float *pt, int ps, int rb, int re,
                                        const float *vbase, int64_t j0, int n, int full, int prefetch);

/* flash's view of the bf16 tiles (attention_bf16.h): the online-softmax
 * rescale by alpha, P^T in st. */
static inline void flash_bf16_pv_tile(const plan *pl, const scratch *sc, int rb, int re, int64_t bg,
                                      const float *vbase, int64_t j0, int n, int full, int packed) {
    const attune_bf16_tile t = {sc->st, pl->rp, sc->pb, sc->acc, sc->alpha, sc->lo, sc->hi, packed};
    attune_bf16_pv_tile(&pl->kv16, &t, rb, re, bg, vbase, j0, n, full);
}

/* A row's online-softmax state at the start: a sink z (base 2, sc->sink2) as if
 * it were a key already seen, m = z and l = 2^(z - m) = 1, nothing in acc (the
 * sink has no value); without one m = -inf, l = 0. */
ATTUNE_INLINE void flash_row_start(const scratch *sc, int r) {
    const float z = sc->sink2[r];
    sc->m[r] = z;
    sc->l[r] = z == -INFINITY ? 0.0f : 1.0f;
}

/* What flash_softmax_tile did to a 16-row column when skipping is on. */
enum { COLUMN_DONE = 0, COLUMN_SKIPPED = 1, COLUMN_EMPTY = 2 };

/* Online-softmax step over one wide tile (S^T in st, n keys at j0): masks
 * (boundary tiles only), updates m and l, leaves P in st and each row's
 * rescale factor in alpha.
 *
 * SKIP (a compile-time constant; 0 for flash) adds SpargeAttn's P.V skip: a
 * 16-row column whose live rows (lanes set in live[c]) all have a tile max
 * at least `skip_below` (base-2 units) under their running max is left
 * untouched (no exp, m and l unchanged) and column[c] says why: COLUMN_SKIPPED,
 * or COLUMN_EMPTY when none of its live rows sees a key of the tile; the
 * caller then omits its P.V. NaN never satisfies the test, so NaN rows are
 * never skipped. A row that has seen no key yet (m = -inf) is never skipped
 * unless it sees none here either, so a row's first block always counts. */
ATTUNE_INLINE void flash_softmax_tile(const plan *pl, const scratch *sc, int64_t j0, int n, int full,
                                      float skip_below, const vmask *live, uint8_t *column, const int SKIP) {
    const int rp = pl->rp;
    const vf neg_inf = vf_set1(-INFINITY);
    for (int c = 0; c < rp; c += VL) {
        vf m_old = vf_load(sc->m + c), mt = neg_inf;
        vi lo = vi_load(sc->lo + c), hi = vi_load(sc->hi + c);
        float *col = sc->st + c;
        if (full) {
            for (int jj = 0; jj < n; jj++) mt = vf_max(mt, vf_load(col + (int64_t)jj * rp));
        } else {
            for (int jj = 0; jj < n; jj++) {
                vf s = vf_load(col + (int64_t)jj * rp);
                s = vf_blend(vi_in_range(lo, hi, (int32_t)(j0 + jj)), s, neg_inf);
                vf_store(col + (int64_t)jj * rp, s);
                mt = vf_max(mt, s);
            }
        }
        if (SKIP) {
            const vmask lv = live[c / VL];
            const vmask trails = vf_le(vf_add(mt, vf_set1(skip_below)), m_old);
            if ((trails & lv) == lv) {
                column[c / VL] = (lv & (vmask)~vf_eq(mt, neg_inf)) ? COLUMN_SKIPPED : COLUMN_EMPTY;
                continue;
            }
            column[c / VL] = COLUMN_DONE;
        }
        vf m_new = vf_max(m_old, mt);
        /* Rows that have seen no visible key yet keep alpha = 1, P = 0. */
        vmask dead = vf_eq(m_new, neg_inf);
        vf alpha = vf_blend(dead, vf_set1(1.0f), vf_exp2(vf_sub(m_old, m_new)));
        vf m_use = vf_blend(dead, vf_zero(), m_new);
        vf sum = vf_zero();
        for (int jj = 0; jj < n; jj++) {
            vf pr = vf_exp2(vf_sub(vf_load(col + (int64_t)jj * rp), m_use));
            vf_store(col + (int64_t)jj * rp, pr);
            sum = vf_add(sum, pr);
        }
        vf_store(sc->l + c, vf_fma(vf_load(sc->l + c), alpha, sum));
        vf_store(sc->m + c, m_new);
        vf_store(sc->alpha + c, alpha);
    }
}

/* Writes one finished row: O = acc / l and LSE = ln 2 (m + log2 l); a row that
 * saw nothing (l == 0) is 0 with LSE -inf. m stays -inf for a row whose only
 * visible scores are NaN, but l is NaN then and the row comes out NaN. */
static inline void flash_finish_row(const float *acc, float m, float l, int64_t dv, float *dst, float *lse_dst) {
    const float ln2 = 0.69314718055994531f;
    int empty = l == 0.0f;
    float inv = empty ? 0.0f : 1.0f / l;
    for (int64_t d = 0; d < dv; d++) dst[d] = empty ? 0.0f : acc[d] * inv;
    if (lse_dst) *lse_dst = empty ? -INFINITY : ln2 * (m + log2f(l));
}

#endif
