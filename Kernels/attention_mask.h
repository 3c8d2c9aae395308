/*
 * attention_mask.h — masks with holes (attune_attention.h: doc_ids, a block
 * bitmask) for the attention engine (attention_engine.h). Internal, not ABI.
 *
 * Three levels, so a fully masked tile is never computed and an unmasked one
 * never pays for the mask:
 *
 *   rows   each row's visible keys [lo, hi) (causal, window) are narrowed to
 *          what the masks leave of them as one interval: with non-decreasing
 *          document ids (packed documents) the row's document, which is then
 *          exact; with a bitmask, from the first set block of the row's q block
 *          to the last one at or before the row's last key. The engine's tile
 *          range and `full` tiles follow.
 *   tiles  per KV tile of a q tile, from the q tile's document range and q
 *          blocks against the tile's document range (per-granule min/max ids,
 *          computed once per call) and bits: invisible (skipped), partly
 *          visible (the element mask applies) or unmasked.
 *   keys   on partly visible tiles only, the variant's probability hook calls
 *          engine_mask_wide / engine_mask_packed, which set every hidden
 *          entry to the variant's "masked" value.
 *
 * A hidden key inside a row's interval still has its V row multiplied by a
 * probability of exactly 0 on a partly visible tile (the interval mask alone
 * keeps V rows out), so V there must be finite; keys outside every row's
 * narrowed interval (other packed documents, cleared blocks at a row's ends)
 * are never read.
 */
#ifndef ATTUNE_ATTENTION_MASK_H
#define ATTUNE_ATTENTION_MASK_H

#include "attune_attention.h"
#include "simd.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Keys per min/max entry of unsorted document ids. */
#define MASK_GRANULE 64

typedef struct {
    int on;                  /* doc_ids or block_mask */
    int64_t n;               /* kv_len */
    const int32_t *doc;      /* p->doc_ids, or NULL */
    int doc_sorted;          /* ids non-decreasing: a row's document is one interval */
    int32_t *gmin, *gmax;    /* unsorted ids: min / max of each MASK_GRANULE keys */
    const uint8_t *bits;     /* p->block_mask, or NULL */
    int64_t B, nb;           /* its block and blocks per side */
    int32_t *bfirst, *blast; /* per q block: first / last k block with a set bit (-1: none) */
    int64_t *counts;         /* NULL, or [3]: tiles the causal/window mask gives, computed, masked */
} attention_masks;

static inline int attention_mask_bit(const attention_masks *m, int64_t qb, int64_t kb) {
    const int64_t i = qb * m->nb + kb;
    return m->bits[i >> 3] >> (i & 7) & 1;
}

static inline void attention_masks_free(attention_masks *m) {
    free(m->gmin);
    free(m->bfirst);
    m->gmin = m->gmax = NULL;
    m->bfirst = m->blast = NULL;
}

/* The per-call tables of p's masks; counts may be NULL. 0 when out of memory. */
static inline int attention_masks_init(attention_masks *m, const attune_attention_problem *p, int64_t *counts) {
    memset(m, 0, sizeof *m);
    m->counts = counts;
    m->doc = p->doc_ids;
    m->bits = p->block_mask;
    m->on = m->doc || m->bits;
    m->n = p->kv_len;
    if (!m->on || m->n == 0) return 1;
    if (m->doc) {
        m->doc_sorted = 1;
        for (int64_t j = 1; j < m->n && m->doc_sorted; j++) m->doc_sorted = m->doc[j - 1] <= m->doc[j];
        if (!m->doc_sorted) {
            const int64_t ng = (m->n + MASK_GRANULE - 1) / MASK_GRANULE;
            if (!(m->gmin = malloc(sizeof(int32_t) * 2 * (size_t)ng))) return 0;
            m->gmax = m->gmin + ng;
            for (int64_t g = 0; g < ng; g++) {
                int32_t a = INT32_MAX, b = INT32_MIN;
                for (int64_t j = g * MASK_GRANULE; j < m->n && j < (g + 1) * MASK_GRANULE; j++) {
                    if (m->doc[j] < a) a = m->doc[j];
                    if (m->doc[j] > b) b = m->doc[j];
                }
                m->gmin[g] = a;
                m->gmax[g] = b;
            }
        }
    }
    if (m->bits) {
        m->B = p->mask_block;
        m->nb = (m->n + m->B - 1) / m->B;
        if (!(m->bfirst = malloc(sizeof(int32_t) * 2 * (size_t)m->nb))) {
            attention_masks_free(m);
            return 0;
        }
        m->blast = m->bfirst + m->nb;
        for (int64_t qb = 0; qb < m->nb; qb++) {
            int32_t first = -1, last = -1;
            for (int64_t kb = 0; kb < m->nb;) {
                const int64_t i = qb * m->nb + kb;
                if ((i & 7) == 0 && kb + 8 <= m->nb && m->bits[i >> 3] == 0) { /* a cleared byte */
                    kb += 8;
                    continue;
                }
                if (attention_mask_bit(m, qb, kb)) {
                    if (first < 0) first = (int32_t)kb;
                    last = (int32_t)kb;
                }
                kb++;
            }
            m->bfirst[qb] = first;
            m->blast[qb] = last;
        }
    }
    return 1;
}

/* Row at absolute position pos: narrows its keys [lo, hi) (lo == hi: none) and
 * notes its document id and q block for the tile and element tests. */
static inline void attention_mask_row(const attention_masks *m, int64_t pos, int64_t *lo, int64_t *hi, int32_t *rdoc,
                                      int32_t *rqb) {
    int64_t a = *lo, b = *hi;
    if (m->doc) {
        const int32_t d = m->doc[pos];
        *rdoc = d;
        if (m->doc_sorted) {
            /* The run of d around pos: first key with id >= d, first with id > d. */
            int64_t l = 0, h = pos;
            while (l < h) {
                int64_t mid = l + (h - l) / 2;
                if (m->doc[mid] < d) l = mid + 1;
                else h = mid;
            }
            if (l > a) a = l;
            l = pos + 1, h = m->n;
            while (l < h) {
                int64_t mid = l + (h - l) / 2;
                if (m->doc[mid] <= d) l = mid + 1;
                else h = mid;
            }
            if (l < b) b = l;
        }
    }
    if (m->bits) {
        const int64_t qb = pos / m->B;
        *rqb = (int32_t)qb;
        if (m->bfirst[qb] < 0) {
            b = a;
        } else if (b > a) {
            if (m->bfirst[qb] * m->B > a) a = m->bfirst[qb] * m->B;
            /* The interval ends with the last set block at or before its last key, so that
               key is one the row sees (a sparse kernel keeps its block: no row is left
               without keys); a cleared block of its own (a later one set) is cut off. */
            int64_t kb = (b - 1) / m->B < m->blast[qb] ? (b - 1) / m->B : m->blast[qb];
            while (kb >= m->bfirst[qb] && !attention_mask_bit(m, qb, kb)) kb--;
            if ((kb + 1) * m->B < b) b = (kb + 1) * m->B;
        }
    }
    if (b <= a) a = b = *lo;
    *lo = a;
    *hi = b;
}

/* What the valid rows of one q tile hold: their document ids and q blocks. */
typedef struct {
    int32_t dmin, dmax;
    int64_t qb0, qb1;
} attention_mask_rows;

static inline attention_mask_rows attention_mask_rows_of(const attention_masks *m, const int32_t *valid,
                                                         const int32_t *rdoc, const int32_t *rqb, int rows) {
    attention_mask_rows x = {INT32_MAX, INT32_MIN, INT64_MAX, -1};
    for (int r = 0; r < rows; r++) {
        if (!valid[r]) continue;
        if (m->doc && rdoc[r] < x.dmin) x.dmin = rdoc[r];
        if (m->doc && rdoc[r] > x.dmax) x.dmax = rdoc[r];
        if (m->bits && rqb[r] < x.qb0) x.qb0 = rqb[r];
        if (m->bits && rqb[r] > x.qb1) x.qb1 = rqb[r];
    }
    return x;
}

enum { MASK_TILE_HIDDEN = 0, MASK_TILE_PARTIAL = 1, MASK_TILE_OPEN = 2 };

/* Keys [j0, j0 + n) (n >= 1) for the rows x: hidden from every row by the masks,
 * partly visible (the element mask applies), or open (the masks hide nothing). */
static inline int attention_mask_tile(const attention_masks *m, const attention_mask_rows *x, int64_t j0, int n) {
    int partial = 0;
    if (m->doc) {
        int32_t kmin, kmax;
        if (m->doc_sorted) {
            kmin = m->doc[j0];
            kmax = m->doc[j0 + n - 1];
        } else {
            kmin = INT32_MAX, kmax = INT32_MIN;
            for (int64_t g = j0 / MASK_GRANULE; g <= (j0 + n - 1) / MASK_GRANULE; g++) {
                if (m->gmin[g] < kmin) kmin = m->gmin[g];
                if (m->gmax[g] > kmax) kmax = m->gmax[g];
            }
            /* Granules may reach past the tile: open only if all are the one document. */
            partial = !(kmin == kmax && x->dmin == x->dmax);
        }
        if (kmax < x->dmin || kmin > x->dmax) return MASK_TILE_HIDDEN;
    }
    if (m->bits) {
        int any = 0, all = 1;
        for (int64_t qb = x->qb0; qb <= x->qb1; qb++)
            for (int64_t kb = j0 / m->B; kb <= (j0 + n - 1) / m->B; kb++) {
                if (attention_mask_bit(m, qb, kb)) any = 1;
                else all = 0;
            }
        if (!any) return MASK_TILE_HIDDEN;
        partial |= !all;
    }
    return partial ? MASK_TILE_PARTIAL : MASK_TILE_OPEN;
}

/* Whether the masks let row r (document rdoc[r], q block rqb[r]) see key j. */
static inline int attention_mask_sees(const attention_masks *m, const int32_t *rdoc, const int32_t *rqb, int r,
                                      int64_t j) {
    if (m->doc && m->doc[j] != rdoc[r]) return 0;
    return !m->bits || attention_mask_bit(m, rqb[r], j / m->B);
}

/* Wide layout (S^T, row stride rp): st[jj][r] = value where row r cannot see key j0 + jj
 * (rows that are not valid may get it too: the interval mask hides them anyway). 16 rows
 * per vector: documents by one compare per key, the bits of a k block once per block. */
static inline void attention_mask_wide(const attention_masks *m, float *st, int rp, int rows, const int32_t *valid,
                                       const int32_t *rdoc, const int32_t *rqb, int64_t j0, int n, float value) {
    const vf hidden = vf_set1(value);
    for (int c = 0; c < rows; c += VL) {
        const vi d = vi_load(rdoc + c);
        vmask bits = (vmask)0xFFFF;
        int64_t kb_bits = -1;
        for (int jj = 0; jj < n; jj++) {
            const int64_t j = j0 + jj;
            vmask keep = (vmask)0xFFFF;
            if (m->doc) keep &= vi_eq1(d, m->doc[j]);
            if (m->bits) {
                if (j / m->B != kb_bits) {
                    kb_bits = j / m->B;
                    bits = 0;
                    for (int l = 0; l < VL && c + l < rows; l++)
                        if (valid[c + l] && attention_mask_bit(m, rqb[c + l], kb_bits)) bits |= (vmask)(1u << l);
                }
                keep &= bits;
            }
            if (keep != (vmask)0xFFFF) {
                float *col = st + (int64_t)jj * rp + c;
                vf_store(col, vf_blend(keep, vf_load(col), hidden));
            }
        }
    }
}

/* Packed narrow layout of rows [r0, r0 + R) (st[jj * R + i] is row r0 + i, key j0 + jj). */
static inline void attention_mask_packed(const attention_masks *m, float *st, int R, int r0, const int32_t *valid,
                                         const int32_t *rdoc, const int32_t *rqb, int64_t j0, int n, float value) {
    for (int jj = 0; jj < n; jj++)
        for (int i = 0; i < R; i++)
            if (valid[r0 + i] && !attention_mask_sees(m, rdoc, rqb, r0 + i, j0 + jj)) st[jj * R + i] = value;
}

#endif
