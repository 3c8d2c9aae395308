/*
 * kascade.c — top-k attention with indices chosen in anchor layers and reused by later
 * layers (Kascade; ALGORITHMS.md §5). The math is in the header; this file is the how.
 *
 * Work items: (batch, tile slot, kv head, split). An item's rows are the G q heads of
 * its kv head times the chunk's query rows in that tile, stacked (row r = head-in-group
 * * rows_in_tile + i). Its keys are the selected history keys (any order in memory:
 * gathered by index, never copied) followed by the tile's own keys, causal per row.
 *
 * Scores: Q is packed transposed, qt[d][r] = q * scale * log2 e, so one broadcast key
 * element times a vector of 16 rows accumulates 16 scores (base-2 units): flash's
 * prefill tiles, the same micro-kernel (attention_tiles.h) reading the gathered key
 * rows through a list of pointers. Keys go in blocks of 16 with an online
 * softmax per row; P.V adds p * v for keys with p != 0 only, so NaN/Inf in a masked
 * key's V never reaches a row.
 *
 * Anchors score every key an item's rows see once, for each row's exact LSE (no P.V,
 * so about half a flash pass), then sum each history key's probability e^(s - LSE) over
 * the item's rows (the head-aware, tile-summed mass; from the kept scores, or a second
 * scoring pass when they do not fit), keep the top `count` keys by quickselect (ties:
 * lower position first, so the selection is deterministic), sort them by position and
 * attend like a reuse layer.
 *
 * Decode has few items (one tile, kv_heads items per batch), so the selected list is
 * split into chunks merged by log-sum-exp; the split count comes from the shape only,
 * so results do not depend on the thread count.
 */
#include "attune_attention.h"
#include "attention_internal.h"
#include "simd.h"
#include "kv_format.h"
#include "kv_tiles.h"
#include "attention_tiles.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#ifdef _OPENMP
#include <omp.h>
#endif

#define LOG2E 1.4426950408889634
#define LN2 0.6931471805599453
#define KB 16 /* keys per softmax block */

static attune_kascade_params resolve(const attune_kascade_params *p) {
    attune_kascade_params r = {0.10, 128, 32, 0, NULL, NULL};
    if (!p) return r;
    if (p->fraction != 0) r.fraction = p->fraction;
    if (p->min_k != 0) r.min_k = p->min_k;
    if (p->tile != 0) r.tile = p->tile;
    r.threads = p->threads;
    r.attended_keys_out = p->attended_keys_out;
    r.dense_keys_out = p->dense_keys_out;
    return r;
}

int64_t attune_kascade_budget(int64_t history, const attune_kascade_params *params) {
    const attune_kascade_params k = resolve(params);
    if (history <= k.min_k) return history < 0 ? 0 : history;
    int64_t n = (int64_t)floor(k.fraction * (double)history);
    if (n < k.min_k) n = k.min_k;
    return n < history ? n : history;
}

void attune_kascade_capacity(const attune_attention_problem *p, const attune_kascade_params *params,
                             int64_t *k_cap, int64_t *slots) {
    const attune_kascade_params k = resolve(params);
    const int64_t q0 = attune_attention_q_offset(p);
    const int64_t last = q0 + (p->q_len > 0 ? p->q_len - 1 : 0);
    const int64_t first_tile = q0 > 0 ? q0 / k.tile : 0, last_tile = last > 0 ? last / k.tile : 0;
    const int64_t history = last_tile * k.tile < p->kv_len ? last_tile * k.tile : p->kv_len;
    const int64_t cap = attune_kascade_budget(history, &k);
    if (k_cap) *k_cap = cap > 0 ? cap : 1;
    if (slots) *slots = last_tile - first_tile + 1;
}

/* ------------------------------------------------------------------ checks */

static int32_t check(const attune_attention_problem *p, const attune_attention_tensors *t,
                     const attune_kascade_params *k, const attune_kascade_indices *sel, attune_status *status) {
    int32_t rc = attune_attention_validate_kv(p, t, ATTUNE_KV_ALL_FORMATS, "kascade", status);
    if (rc != ATTUNE_OK) return rc;
    if (!(k->fraction > 0 && k->fraction <= 1))
        return attune_fail(status, ATTUNE_ERR_INVALID_ARGUMENT, "kascade: fraction must be in (0, 1], got %g", k->fraction);
    if (k->min_k < 1) return attune_fail(status, ATTUNE_ERR_INVALID_ARGUMENT, "kascade: min_k must be >= 1, got %d", k->min_k);
    if (k->tile < 1 || k->tile > 256)
        return attune_fail(status, ATTUNE_ERR_INVALID_ARGUMENT, "kascade: tile must be in [1, 256], got %d", k->tile);
    if (!p->causal) return attune_fail(status, ATTUNE_ERR_UNSUPPORTED, "kascade needs a causal mask (tiles are query positions)");
    if (p->window > 0) return attune_fail(status, ATTUNE_ERR_UNSUPPORTED, "kascade does not support a sliding window");
    if (attune_attention_q_offset(p) < 0)
        return attune_fail(status, ATTUNE_ERR_UNSUPPORTED, "kascade needs every query at a position >= 0 (q_len <= kv_len)");
    if (!sel || !sel->idx) return attune_fail(status, ATTUNE_ERR_INVALID_ARGUMENT, "kascade: no index table");
    int64_t cap, slots;
    attune_kascade_capacity(p, k, &cap, &slots);
    if (sel->k_cap < cap || sel->slots < slots)
        return attune_fail(status, ATTUNE_ERR_INVALID_ARGUMENT,
                           "kascade: index table holds %lld keys x %lld tiles, the problem needs %lld x %lld",
                           (long long)sel->k_cap, (long long)sel->slots, (long long)cap, (long long)slots);
    return ATTUNE_OK;
}

/* ------------------------------------------------------------------ plan */

typedef struct {
    const attune_attention_problem *p;
    const attune_attention_tensors *t;
    attune_kascade_params k;
    const attune_kascade_indices *sel;
    const int32_t *head_map;
    int64_t q0, first_tile, slots, G, splits;
    int64_t rows_max, rp_max;   /* rows per item and rounded up to 16 */
    float scale2;               /* scale * log2 e */
    float *part_o, *part_l;     /* split partials: [item][split][row][dv], [item][split][row] */
} plan;

/* Per-thread buffers. */
typedef struct {
    float *qt;      /* [dqk][rp] */
    float *qn;      /* [8][dqk]: narrow items' rows, row-major */
    float *s;       /* [KB][rp] scores, then probabilities */
    float *m, *l;   /* [rp] running max (base 2) and sum */
    float *acc;     /* [rows][dv] */
    float *lse2;    /* [rp] anchors: each row's LSE in base 2 */
    float *mass;    /* [history] anchors */
    int32_t *order; /* [history] anchors */
    float *kept;    /* anchors: the history's scores between the two passes, if they fit */
    int64_t kept_floats;
    float *kpack, *vpack; /* bf16/int8 K/V: [KB][dqk], [KB][dv], the block's rows widened */
} scratch;

static int64_t round16(int64_t n) { return (n + 15) / 16 * 16; }

/* Rows [i0, i1) of the chunk in tile `tile` (positions q0 + i). */
static void tile_rows(const plan *pl, int64_t tile, int64_t *i0, int64_t *i1) {
    const int64_t T = pl->k.tile, q_len = pl->p->q_len;
    int64_t a = tile * T - pl->q0, b = (tile + 1) * T - pl->q0;
    *i0 = a < 0 ? 0 : a;
    *i1 = b > q_len ? q_len : b;
}

/* Keys before tile `tile`: its history (never past the keys there are). */
static int64_t history_of(const plan *pl, int64_t tile) {
    const int64_t h = tile * pl->k.tile;
    return h < pl->p->kv_len ? h : pl->p->kv_len;
}

static const float *q_row(const plan *pl, int64_t b, int64_t h, int64_t i) {
    const attune_attention_problem *p = pl->p;
    return pl->t->q + b * p->q_stride.batch + h * p->q_stride.head + i * p->q_stride.row;
}

/* Rows stacked per item, padded to a power of two for the narrow layout: 16 lanes =
 * narrow_rows(rows) rows x 16 / that keys. 0 when the item is too tall for it. */
static int narrow_rows(int64_t rows) {
    if (rows > 8) return 0;
    int r = 1;
    while (r < rows) r *= 2;
    return r;
}

/* qt[d][r] (wide) or qn[r][d] (narrow) for the item's rows; pad rows are 0. */
static void pack_queries(const plan *pl, scratch *sc, int64_t b, int64_t g, int64_t i0, int64_t n, int64_t rp) {
    const int64_t dqk = pl->p->qk_dim, rows = pl->G * n;
    const int narrow = narrow_rows(rows);
    if (narrow) memset(sc->qn, 0, sizeof(float) * (size_t)(narrow * dqk));
    else memset(sc->qt, 0, sizeof(float) * (size_t)(dqk * rp));
    for (int64_t hl = 0; hl < pl->G; hl++)
        for (int64_t i = 0; i < n; i++) {
            const float *q = q_row(pl, b, g * pl->G + hl, i0 + i);
            const int64_t r = hl * n + i;
            if (narrow)
                for (int64_t d = 0; d < dqk; d++) sc->qn[r * dqk + d] = q[d] * pl->scale2;
            else
                for (int64_t d = 0; d < dqk; d++) sc->qt[d * rp + r] = q[d] * pl->scale2;
        }
}

/* Narrow items (decode: a few rows): R rows x 16/R keys per vector, dot products along
 * the head dim folded by the transpose tree, so no lane computes a padding row. kascade's
 * own: over gathered rows the engine's narrow block (qk_narrow_sum_fmt), same bits, made
 * the decode anchor, whose scores are all narrow, 1.16x slower (PERFORMANCE.md, "The
 * attention engine"). */
ATTUNE_INLINE void score_narrow(const float *const *keys, int nk, const float *qn, int64_t dqk, int64_t rp, float *s,
                                const int R) {
    const int KK = 16 / R;
    for (int k0 = 0; k0 < nk; k0 += KK) {
        vf acc[16];
        for (int i = 0; i < 16; i++) acc[i] = vf_zero();
        const int nkk = nk - k0 < KK ? nk - k0 : KK;
        for (int64_t d0 = 0; d0 < dqk; d0 += VL) {
            const vmask m = vm_first((int)(dqk - d0));
            for (int kk = 0; kk < nkk; kk++) {
                const vf kv = vf_load_n(keys[k0 + kk] + d0, m);
                for (int r = 0; r < R; r++) acc[kk * R + r] = vf_fma(vf_load_n(qn + r * dqk + d0, m), kv, acc[kk * R + r]);
            }
        }
        float lanes[16];
        vf_store(lanes, vf_transpose_sum16(acc));
        for (int kk = 0; kk < nkk; kk++)
            for (int r = 0; r < R; r++) s[(k0 + kk) * rp + r] = lanes[kk * R + r];
    }
}

/* s[kk][0..rp) = q . key kk, for `nk` <= KB key rows at keys[kk]. Wide items: the
 * engine's wide micro-kernel over the gathered rows (attention_tiles.h; 6 keys x 4
 * vectors of rows at a time, so each loaded vector of queries serves 6 keys). */
static void score_keys(const plan *pl, const scratch *sc, const float *const *keys, int nk, int64_t rows, int64_t rp, float *s) {
    const int64_t dqk = pl->p->qk_dim;
    switch (narrow_rows(rows)) {
    case 1: score_narrow(keys, nk, sc->qn, dqk, rp, s, 1); return;
    case 2: score_narrow(keys, nk, sc->qn, dqk, rp, s, 2); return;
    case 4: score_narrow(keys, nk, sc->qn, dqk, rp, s, 4); return;
    case 8: score_narrow(keys, nk, sc->qn, dqk, rp, s, 8); return;
    default: qk_wide_gather(sc->qt, (int)rp, (int)dqk, keys, nk, s); return;
    }
}

/* Online softmax over one block of keys: scores in sc->s (masked entries already -inf);
 * values at vals[kk]. */
static void absorb_block(const plan *pl, scratch *sc, const float *const *vals, int nk, int64_t rows, int64_t rp) {
    const int64_t dv = pl->p->v_dim;
    for (int64_t c0 = 0; c0 < rp; c0 += VL) {
        vf mb = vf_set1(-INFINITY);
        for (int kk = 0; kk < nk; kk++) mb = vf_max(mb, vf_load(sc->s + kk * rp + c0));
        const vf m_old = vf_load(sc->m + c0);
        const vf m_new = vf_max(m_old, mb);
        /* A row that has seen only masked keys keeps max -inf; subtract 0 instead so
         * exp2(-inf - (-inf)) never makes a NaN. */
        const vf m_sub = vf_blend(vf_eq(m_new, vf_set1(-INFINITY)), vf_zero(), m_new);
        const vf alpha = vf_exp2(vf_sub(m_old, m_sub));
        vf sum = vf_mul(vf_load(sc->l + c0), alpha);
        for (int kk = 0; kk < nk; kk++) {
            const vf pk = vf_exp2(vf_sub(vf_load(sc->s + kk * rp + c0), m_sub));
            vf_store(sc->s + kk * rp + c0, pk);
            sum = vf_add(sum, pk);
        }
        vf_store(sc->l + c0, sum);
        vf_store(sc->m + c0, m_new);
        float al[VL];
        vf_store(al, alpha);
        for (int64_t r = c0; r < c0 + VL && r < rows; r++) {
            float *o = sc->acc + r * dv;
            if (al[r - c0] != 1.0f)
                for (int64_t d = 0; d < dv; d++) o[d] *= al[r - c0];
        }
    }
    for (int64_t r = 0; r < rows; r++) {
        float *o = sc->acc + r * dv;
        for (int kk = 0; kk < nk; kk++) {
            const float pk = sc->s[kk * rp + r];
            if (pk == 0.0f) continue;
            const float *v = vals[kk];
            const vf pv = vf_set1(pk);
            int64_t d = 0;
            for (; d + VL <= dv; d += VL) vf_store(o + d, vf_fma(pv, vf_load(v + d), vf_load(o + d)));
            for (; d < dv; d++) o[d] += pk * v[d];
        }
    }
}

/* Attends the item's rows over keys list[0..n) and, if `own`, the tile's own keys
 * [tile_start, tile_end); writes normalised O rows and natural-log LSE through the
 * callbacks' layout: row r to o + r_out(r) etc. */
typedef struct {
    float *o;           /* row r of the item at o + r * o_row */
    int64_t o_row;
    float *lse;         /* row r at lse[r] */
} item_out;

/* Row j of a head's K (v = 0) or V (v = 1) for slot kk of a block: in place for fp32;
 * bf16/int8 rows are widened into the thread's pack as the block gathers them (kascade's
 * keys are scattered, so there is no contiguous tile to widen in registers). */
static const float *kv_row(scratch *sc, const kv_head *h, int v, int64_t j, int kk) {
    if (h->fmt == ATTUNE_KV_F32) return (const float *)kv_at_rt(v ? h->v : h->k, j * (v ? h->vs : h->ks), ATTUNE_KV_F32);
    float *dst = v ? sc->vpack + (int64_t)kk * h->dv : sc->kpack + (int64_t)kk * h->dk;
    attune_kv_unpack(h, v, j, 1, dst);
    return dst;
}

static void attend(const plan *pl, scratch *sc, int64_t b, int64_t g, int64_t i0, int64_t n_rows,
                   const int32_t *list, int64_t n, int own, int64_t tile_start, int64_t tile_end, item_out out) {
    const attune_attention_problem *p = pl->p;
    const int64_t rows = pl->G * n_rows, rp = round16(rows), dv = p->v_dim;
    kv_head h;
    attune_kv_head(p, pl->t, b, g, &h);
    pack_queries(pl, sc, b, g, i0, n_rows, rp);
    for (int64_t r = 0; r < rp; r++) { sc->m[r] = -INFINITY; sc->l[r] = 0; }
    memset(sc->acc, 0, sizeof(float) * (size_t)(rows * dv));
    const float *keys[KB], *vals[KB];
    for (int64_t j0 = 0; j0 < n; j0 += KB) {
        const int nk = (int)(n - j0 < KB ? n - j0 : KB);
        for (int kk = 0; kk < nk; kk++) {
            keys[kk] = kv_row(sc, &h, 0, list[j0 + kk], kk);
            vals[kk] = kv_row(sc, &h, 1, list[j0 + kk], kk);
        }
        if (j0 + KB < n)   /* the next block's rows are scattered: ask for them early */
            for (int kk = 0; kk < KB && j0 + KB + kk < n; kk++) {
                const int64_t j = list[j0 + KB + kk];
                for (int64_t d = 0; d < p->qk_dim; d += VL) __builtin_prefetch(kv_at_rt(h.k, j * h.ks + d, h.fmt), 0, 2);
                for (int64_t d = 0; d < dv; d += VL) __builtin_prefetch(kv_at_rt(h.v, j * h.vs + d, h.fmt), 0, 2);
            }
        score_keys(pl, sc, keys, nk, rows, rp, sc->s);
        for (int kk = 0; kk < nk; kk++)   /* padding rows never count */
            for (int64_t r = rows; r < rp; r++) sc->s[kk * rp + r] = -INFINITY;
        absorb_block(pl, sc, vals, nk, rows, rp);
    }
    if (own) {
        for (int64_t j0 = tile_start; j0 < tile_end; j0 += KB) {
            const int nk = (int)(tile_end - j0 < KB ? tile_end - j0 : KB);
            for (int kk = 0; kk < nk; kk++) {
                keys[kk] = kv_row(sc, &h, 0, j0 + kk, kk);
                vals[kk] = kv_row(sc, &h, 1, j0 + kk, kk);
            }
            score_keys(pl, sc, keys, nk, rows, rp, sc->s);
            for (int kk = 0; kk < nk; kk++)
                for (int64_t r = 0; r < rp; r++) {
                    const int64_t pos = pl->q0 + i0 + (r % (n_rows > 0 ? n_rows : 1));
                    if (r >= rows || j0 + kk > pos) sc->s[kk * rp + r] = -INFINITY;
                }
            absorb_block(pl, sc, vals, nk, rows, rp);
        }
    }
    for (int64_t r = 0; r < rows; r++) {
        float *o = out.o + r * out.o_row;
        const float l = sc->l[r];
        if (l > 0) {
            const float inv = 1.0f / l;
            for (int64_t d = 0; d < dv; d++) o[d] = sc->acc[r * dv + d] * inv;
            out.lse[r] = (float)(LN2 * ((double)sc->m[r] + log2((double)l)));
        } else {
            memset(o, 0, sizeof(float) * (size_t)dv);
            out.lse[r] = -INFINITY;
        }
    }
}

/* ------------------------------------------------------------------ selection */

/* a before b: more mass, then the lower position. */
static int ahead(const float *mass, int32_t a, int32_t b) {
    return mass[a] > mass[b] || (mass[a] == mass[b] && a < b);
}

/* Moves the `k` best of order[0..n) to the front (any order among them). */
static void select_top(const float *mass, int32_t *order, int64_t n, int64_t k) {
    int64_t lo = 0, hi = n - 1;
    while (lo < hi) {
        const int32_t pivot = order[lo + (hi - lo) / 2];
        int64_t i = lo, j = hi;
        while (i <= j) {
            while (ahead(mass, order[i], pivot)) i++;
            while (ahead(mass, pivot, order[j])) j--;
            if (i <= j) {
                const int32_t x = order[i];
                order[i++] = order[j];
                order[j--] = x;
            }
        }
        if (k - 1 <= j) hi = j;
        else if (k - 1 >= i) lo = i;
        else break;
    }
}

static int by_position(const void *a, const void *b) {
    const int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    return (x > y) - (x < y);
}

/* Scores of the item's rows against keys [j0, j0 + n) into out[kk][rp]; own-tile keys
 * (at or after `tile_start`) masked per row by position, padding rows -inf. */
static void score_range(const plan *pl, scratch *sc, const kv_head *h, int64_t j0, int nk, int64_t i0, int64_t n_rows,
                        int64_t rows, int64_t rp, int64_t tile_start, float *out) {
    const float *keys[KB];
    for (int kk = 0; kk < nk; kk++) keys[kk] = kv_row(sc, h, 0, j0 + kk, kk);
    score_keys(pl, sc, keys, nk, rows, rp, out);
    for (int kk = 0; kk < nk; kk++)
        for (int64_t r = 0; r < rp; r++) {
            const int64_t pos = pl->q0 + i0 + (r % (n_rows > 0 ? n_rows : 1));
            if (r >= rows || (j0 + kk >= tile_start && j0 + kk > pos)) out[kk * rp + r] = -INFINITY;
        }
}

/* The anchor's choice for one (batch, kv head, tile): each row's exact LSE over every
 * key it sees (history and own tile; one scoring pass, keeping the history's scores when
 * they fit in `kept`), then each history key's probability summed over the item's rows,
 * the top `count` by quickselect, sorted by position. No P.V: cheaper than a flash pass. */
static void choose(const plan *pl, scratch *sc, int64_t b, int64_t g, int64_t i0, int64_t n_rows,
                   int64_t history, int64_t count, int32_t *dst) {
    if (count == history) {
        for (int64_t j = 0; j < history; j++) dst[j] = (int32_t)j;
        return;
    }
    const attune_attention_problem *p = pl->p;
    const int64_t rows = pl->G * n_rows, rp = round16(rows);
    const int64_t tile_end = history + pl->k.tile < p->kv_len ? history + pl->k.tile : p->kv_len;
    kv_head h;
    attune_kv_head(p, pl->t, b, g, &h);
    /* `kept` holds whole KB-key blocks, so the block across the history's end (history not
       a multiple of KB) is scored into it too and pass 2 finds all its history keys there. */
    float *kept = round16(history) * rp <= sc->kept_floats ? sc->kept : NULL;
    pack_queries(pl, sc, b, g, i0, n_rows, rp);

    /* Pass 1: running max and sum per row (base 2), vectorised over rows. */
    for (int64_t r = 0; r < rp; r++) { sc->m[r] = -INFINITY; sc->l[r] = 0; }
    for (int64_t j0 = 0; j0 < tile_end; j0 += KB) {
        const int nk = (int)(tile_end - j0 < KB ? tile_end - j0 : KB);
        float *s = kept && j0 < history ? kept + j0 * rp : sc->s;
        score_range(pl, sc, &h, j0, nk, i0, n_rows, rows, rp, history, s);
        for (int64_t c0 = 0; c0 < rp; c0 += VL) {
            vf mb = vf_set1(-INFINITY);
            for (int kk = 0; kk < nk; kk++) mb = vf_max(mb, vf_load(s + kk * rp + c0));
            const vf m_old = vf_load(sc->m + c0), m_new = vf_max(m_old, mb);
            const vf m_sub = vf_blend(vf_eq(m_new, vf_set1(-INFINITY)), vf_zero(), m_new);
            vf sum = vf_mul(vf_load(sc->l + c0), vf_exp2(vf_sub(m_old, m_sub)));
            for (int kk = 0; kk < nk; kk++) sum = vf_add(sum, vf_exp2(vf_sub(vf_load(s + kk * rp + c0), m_sub)));
            vf_store(sc->l + c0, sum);
            vf_store(sc->m + c0, m_new);
        }
    }
    for (int64_t r = 0; r < rp; r++)
        sc->lse2[r] = r < rows && sc->l[r] > 0 ? sc->m[r] + log2f(sc->l[r]) : INFINITY;

    /* Pass 2: mass of each history key (scores from pass 1 when kept, else again). */
    for (int64_t j0 = 0; j0 < history; j0 += KB) {
        const int nk = (int)(history - j0 < KB ? history - j0 : KB);
        const float *s = kept ? kept + j0 * rp : sc->s;
        if (!kept) score_range(pl, sc, &h, j0, nk, i0, n_rows, rows, rp, history, sc->s);
        for (int kk = 0; kk < nk; kk++) {
            /* Padding rows are -inf and their LSE +inf: e^(-inf) = 0, never NaN. */
            vf sum = vf_zero();
            for (int64_t c0 = 0; c0 < rp; c0 += VL)
                sum = vf_add(sum, vf_exp2(vf_sub(vf_load(s + kk * rp + c0), vf_load(sc->lse2 + c0))));
            sc->mass[j0 + kk] = vf_hsum(sum);
        }
    }
    for (int64_t j = 0; j < history; j++) sc->order[j] = (int32_t)j;
    select_top(sc->mass, sc->order, history, count);
    memcpy(dst, sc->order, sizeof(int32_t) * (size_t)count);
    qsort(dst, (size_t)count, sizeof(int32_t), by_position);
}

/* ------------------------------------------------------------------ driver */

static int32_t *entry(const attune_kascade_indices *sel, const plan *pl, int64_t b, int64_t slot, int64_t g) {
    return sel->idx + ((b * sel->slots + slot) * pl->p->kv_heads + g) * sel->k_cap;
}

static void scratch_free(scratch *sc) {
    attune_scratch_free(sc->qt);
    attune_scratch_free(sc->qn);
    attune_scratch_free(sc->s);
    attune_scratch_free(sc->m);
    attune_scratch_free(sc->l);
    attune_scratch_free(sc->acc);
    attune_scratch_free(sc->lse2);
    attune_scratch_free(sc->mass);
    attune_scratch_free(sc->order);
    attune_scratch_free(sc->kept);
    attune_scratch_free(sc->kpack);
    attune_scratch_free(sc->vpack);
}

static int scratch_init(scratch *sc, const plan *pl, int64_t history_max) {
    const size_t f = sizeof(float);
    const int64_t rp = pl->rp_max;
    memset(sc, 0, sizeof *sc);
    sc->qt = attune_scratch_alloc(f * (size_t)(pl->p->qk_dim * rp));
    sc->qn = attune_scratch_alloc(f * (size_t)(8 * pl->p->qk_dim));
    sc->s = attune_scratch_alloc(f * (size_t)(KB * rp));
    sc->m = attune_scratch_alloc(f * (size_t)rp);
    sc->l = attune_scratch_alloc(f * (size_t)rp);
    sc->acc = attune_scratch_alloc(f * (size_t)(pl->rows_max * pl->p->v_dim + 1));
    sc->lse2 = attune_scratch_alloc(f * (size_t)rp);
    sc->mass = attune_scratch_alloc(f * (size_t)(history_max + 1));
    sc->order = attune_scratch_alloc(sizeof(int32_t) * (size_t)(history_max + 1));
    /* Keeping an anchor item's scores saves a second scoring pass; beyond 16 MiB per
     * thread (long prefill tiles), score twice instead. */
    const int64_t want = round16(history_max) * rp;
    if (history_max > 0 && want <= ((int64_t)1 << 22)) {
        sc->kept = attune_scratch_alloc(f * (size_t)want);
        sc->kept_floats = sc->kept ? want : 0;
    }
    const int packs = pl->p->kv.format != ATTUNE_KV_F32;
    if (packs) {
        sc->kpack = attune_scratch_alloc(f * (size_t)(KB * pl->p->qk_dim));
        sc->vpack = attune_scratch_alloc(f * (size_t)(KB * pl->p->v_dim));
    }
    return sc->qt && sc->qn && sc->s && sc->m && sc->l && sc->acc && sc->lse2 && sc->mass && sc->order &&
           (!packs || (sc->kpack && sc->vpack));
}

/* Runs every item: anchors choose first, then all attend. */
static int32_t run(plan *pl, int anchor, attune_status *status) {
    const attune_attention_problem *p = pl->p;
    const attune_kascade_indices *sel = pl->sel;
    const int64_t B = p->batch, Hkv = p->kv_heads, slots = pl->slots, S = pl->splits;
    const int64_t items = B * slots * Hkv;
    const int64_t history_max = history_of(pl, pl->first_tile + slots - 1);
    int nth = pl->k.threads > 0 ? pl->k.threads : 1;
#ifdef _OPENMP
    if (pl->k.threads <= 0) nth = omp_get_max_threads();
#endif
    int64_t next_choice = 0, next_item = 0, attended = 0, dense = 0;
    int failed = 0;
#ifdef _OPENMP
#pragma omp parallel num_threads(nth)
#endif
    {
        scratch sc;
        const int ok = scratch_init(&sc, pl, anchor ? history_max : 0);
        if (!ok) __atomic_store_n(&failed, 1, __ATOMIC_RELAXED);
#ifdef _OPENMP
#pragma omp barrier
#endif
        if (!__atomic_load_n(&failed, __ATOMIC_RELAXED)) {
            if (anchor) {
                for (;;) {
                    const int64_t it = __atomic_fetch_add(&next_choice, 1, __ATOMIC_RELAXED);
                    if (it >= items) break;
                    const int64_t b = it / (slots * Hkv), slot = it / Hkv % slots, g = it % Hkv, tile = pl->first_tile + slot;
                    int64_t i0, i1;
                    tile_rows(pl, tile, &i0, &i1);
                    int32_t *dst = entry(sel, pl, b, slot, g);
                    for (int64_t j = 0; j < sel->k_cap; j++) dst[j] = -1;
                    const int64_t history = history_of(pl, tile);
                    choose(pl, &sc, b, g, i0, i1 - i0, history, attune_kascade_budget(history, &pl->k), dst);
                }
#ifdef _OPENMP
#pragma omp barrier
#endif
            }
            for (;;) {
                const int64_t it = __atomic_fetch_add(&next_item, 1, __ATOMIC_RELAXED);
                if (it >= items * S) break;
                const int64_t item = it / S, split = it % S;
                const int64_t b = item / (slots * Hkv), slot = item / Hkv % slots, g = item % Hkv, tile = pl->first_tile + slot;
                int64_t i0, i1;
                tile_rows(pl, tile, &i0, &i1);
                const int64_t n_rows = i1 - i0, history = history_of(pl, tile);
                const int64_t source_g = pl->head_map ? pl->head_map[g] : g;
                const int32_t *list = entry(sel, pl, b, slot, source_g);
                /* The selection's leading valid entries (a table filled by an anchor with
                 * other settings, or not at all, is read only as far as it makes sense). */
                int64_t count = 0;
                const int64_t budget = attune_kascade_budget(history, &pl->k);
                while (count < budget && list[count] >= 0 && list[count] < history) count++;
                const int64_t per = (count + S - 1) / S, j0 = split * per < count ? split * per : count;
                const int64_t j1 = j0 + per < count ? j0 + per : count;
                const int64_t tile_start = history;
                const int64_t tile_end = tile_start + pl->k.tile < p->kv_len ? tile_start + pl->k.tile : p->kv_len;
                if (split == S - 1) {
                    __atomic_fetch_add(&attended, count + (tile_end - tile_start), __ATOMIC_RELAXED);
                    __atomic_fetch_add(&dense, tile_end, __ATOMIC_RELAXED);
                }
                float *po = pl->part_o + (item * S + split) * pl->rows_max * p->v_dim;
                float *pls = pl->part_l + (item * S + split) * pl->rows_max;
                attend(pl, &sc, b, g, i0, n_rows, list + j0, j1 - j0, split == S - 1, tile_start, tile_end,
                       (item_out){po, p->v_dim, pls});
            }
        }
        scratch_free(&sc);
    }
    if (failed) return attune_fail(status, ATTUNE_ERR_OUT_OF_MEMORY, "kascade: cannot allocate scratch");

    /* Merge the splits of every item into O (and LSE), row by row. */
    for (int64_t item = 0; item < items; item++) {
        const int64_t b = item / (slots * Hkv), slot = item / Hkv % slots, g = item % Hkv;
        int64_t i0, i1;
        tile_rows(pl, pl->first_tile + slot, &i0, &i1);
        const int64_t n_rows = i1 - i0;
        for (int64_t hl = 0; hl < pl->G; hl++) {
            const int64_t h = g * pl->G + hl;
            const float *parts[64];
            const float *lses[64];
            int64_t strides[64];
            for (int64_t s = 0; s < S; s++) {
                parts[s] = pl->part_o + ((item * S + s) * pl->rows_max + hl * n_rows) * p->v_dim;
                lses[s] = pl->part_l + (item * S + s) * pl->rows_max + hl * n_rows;
                strides[s] = p->v_dim;
            }
            float *o = pl->t->o + b * p->o_stride.batch + h * p->o_stride.head + i0 * p->o_stride.row;
            float *l = pl->t->lse ? pl->t->lse + b * p->lse_stride_batch + h * p->lse_stride_head + i0 : NULL;
            attune_lse_merge_rows((int32_t)S, n_rows, p->v_dim, parts, strides, lses, o, p->o_stride.row, l);
        }
    }
    if (pl->k.attended_keys_out) *pl->k.attended_keys_out = attended;
    if (pl->k.dense_keys_out) *pl->k.dense_keys_out = dense;
    return attune_ok(status);
}

static int32_t execute(const attune_attention_problem *p, const attune_attention_tensors *t,
                       const attune_kascade_params *params, const attune_kascade_indices *sel,
                       const int32_t *head_map, int anchor, attune_status *status) {
    plan pl;
    memset(&pl, 0, sizeof pl);
    pl.k = resolve(params);
    int32_t rc = check(p, t, &pl.k, sel, status);
    if (rc != ATTUNE_OK) return rc;
    if (head_map)
        for (int64_t g = 0; g < p->kv_heads; g++)
            if (head_map[g] < 0 || head_map[g] >= p->kv_heads)
                return attune_fail(status, ATTUNE_ERR_INVALID_ARGUMENT, "kascade: head_map[%lld] = %d is not a kv head",
                                   (long long)g, head_map[g]);
    if (p->q_len == 0 || p->batch == 0 || p->q_heads == 0) {
        if (pl.k.attended_keys_out) *pl.k.attended_keys_out = 0;
        if (pl.k.dense_keys_out) *pl.k.dense_keys_out = 0;
        return attune_ok(status);
    }
    pl.p = p;
    pl.t = t;
    pl.sel = sel;
    pl.head_map = head_map;
    pl.q0 = attune_attention_q_offset(p);
    pl.first_tile = pl.q0 / pl.k.tile;
    attune_kascade_capacity(p, &pl.k, NULL, &pl.slots);
    pl.G = p->q_heads / p->kv_heads;
    pl.scale2 = (float)(p->scale * LOG2E);
    const int64_t tile_rows_max = pl.k.tile < p->q_len ? pl.k.tile : p->q_len;
    pl.rows_max = pl.G * tile_rows_max;
    pl.rp_max = round16(pl.rows_max);
    /* Splits from the shape only: few items (decode) split their selected keys. */
    const int64_t items = p->batch * pl.slots * p->kv_heads;
    int64_t k_cap;
    attune_kascade_capacity(p, &pl.k, &k_cap, NULL);
    pl.splits = 1;
    if (items < 16) {
        int64_t want = (16 + items - 1) / items, most = k_cap / 256;
        pl.splits = want < most ? want : most;
        if (pl.splits < 1) pl.splits = 1;
        if (pl.splits > 64) pl.splits = 64;
    }
    const size_t f = sizeof(float);
    pl.part_o = attune_scratch_alloc(f * (size_t)(items * pl.splits * pl.rows_max * p->v_dim));
    pl.part_l = attune_scratch_alloc(f * (size_t)(items * pl.splits * pl.rows_max));
    if (!pl.part_o || !pl.part_l) {
        rc = attune_fail(status, ATTUNE_ERR_OUT_OF_MEMORY, "kascade: cannot allocate scratch");
        goto done;
    }
    rc = run(&pl, anchor, status);
done:
    attune_scratch_free(pl.part_o);
    attune_scratch_free(pl.part_l);
    return rc;
}

int32_t attune_kascade_anchor(const attune_attention_problem *p, const attune_attention_tensors *t,
                              const attune_kascade_params *params, const attune_kascade_indices *out,
                              attune_status *status) {
    return execute(p, t, params, out, NULL, 1, status);
}

int32_t attune_kascade_reuse(const attune_attention_problem *p, const attune_attention_tensors *t,
                             const attune_kascade_params *params, const attune_kascade_indices *selection,
                             const int32_t *head_map, attune_status *status) {
    return execute(p, t, params, selection, head_map, 0, status);
}
