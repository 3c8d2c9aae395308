/*
 * sparge.c — block-sparse softmax attention, SpargeAttn style (ALGORITHMS.md
 * §4), fp32, on flash's tiles and micro-kernels.
 *
 * Work item = (batch, q head, q block of `block_q` rows); keys are cut into
 * blocks of `block_kv` from key 0. Two stages per item:
 *
 * Stage 1, prediction (cheap: O(blocks · d) per item). Per (batch, kv head),
 * once per call (phase A):
 *   mu      = mean of K over the keys any query sees     (smoothing: softmax-
 *             invariant, q.(k - mu) = q.k - q.mu shifts a row by a constant)
 *   kbar_j  = mean of (k - mu) over block j's keys        (tail: real keys only)
 *   simk_j  = |sum_r u_r|^2 / n^2,  u_r = (k_r - mu) / |k_r - mu|
 *             = the mean of the block's Gram matrix of L2-normalised rows,
 *             diagonal included, in O(n d) instead of O(n^2 d)
 * and per item, from its own rows: qbar and simq alike (Q is not smoothed).
 * A block is "similar" iff its self-similarity > simthreshd1 (theta); NaN is
 * not similar. Then, over the k blocks some row of the q block sees:
 *   s_j = scale · qbar . kbar_j     for similar k blocks (non-similar: -inf)
 *   p   = softmax(s);  keep the fewest blocks, by p descending (ties: lower
 *         index first), whose cumulative p reaches cdfthreshd (tau); >= 1
 * and always keep: every visible block if the q block is not similar (or
 * tau >= 1); every non-similar k block; block 0 with `sink`; under a causal
 * or window mask the blocks holding each row's last visible key (so no row
 * is left without its own position). Blocks no row of the item sees are
 * never kept; partly visible ones are masked per element in stage 2.
 *
 * Document and block masks (attention_mask.h): the engine narrows each row's
 * keys by them before the prediction, and a block the masks hide from every
 * row of the item (attention_mask_tile, the engine's own test) is not visible
 * to it: never ranked, kept or counted; a kept block they partly hide takes
 * the engine's element mask (-inf) before the softmax step. The statistics of
 * phase A are over the keys the causal/window mask leaves (the masks aside).
 * A row's forced block is its narrowed interval's last, a key the row sees (the
 * engine ends a row's interval at its last set block), so no row is left without
 * a key. With
 * p->mask_stats sparge counts in its blocks: `tiles` the kept blocks,
 * `skipped_tiles` the blocks the causal/window mask gives that the masks hide,
 * `masked_tiles` the kept blocks they partly hide.
 *
 * Stage 2: flash's online softmax (flash_softmax.h, flash_tiles.c; with
 * precision = bf16 the bf16 tiles, attention_bf16.h) over the kept blocks
 * only, run by the attention engine (attention_engine.h) with sparge's key
 * source: runs of consecutive kept blocks are attended as one KV
 * tile of up to TILE_KEYS keys, which keeps flash's per-tile overheads (the
 * max pass, reloading the O accumulator) as rare as in flash. Per tile and
 * 16-row micro-tile (one vector column of S^T), if every live row's tile max
 * is at least pvthreshd (lambda, base-2 units) below its running max, the
 * micro-tile skips exp, the l update and P.V: its contribution is below
 * 2^-lambda of what the row already has. A row's first visible tile is never
 * skipped (its running max is -inf).
 *
 * Identity: tau >= 1 keeps every visible block and lambda >= 200 disables the
 * test (a skipped tile's probabilities would all be < 2^-200, which fp32's
 * exp2 rounds to 0 anyway), and then the result equals flash's to fp32
 * rounding (tiles start at block boundaries, not where flash's start).
 *
 * ALiBi and sinks (attention_modifiers.h) act in stage 2 as in flash: the
 * bias on each tile's scores, a sink as the rows' starting max and sum. The
 * predictor ranks blocks without them (it is a heuristic; tau >= 1 and no
 * skipping still equal flash with the same modifiers). A sink counts in a
 * row's running max, so the P.V skip may drop blocks far below the sink.
 *
 * NaN/Inf: statistics are taken only over keys some query sees, so values
 * stored where no query looks never reach them. A NaN that some row does see
 * makes mu (or qbar) NaN, every block non-similar, and the item dense: rows
 * come out NaN exactly where flash's do.
 *
 * On the engine (attention_engine.h): a work item is one q head's q block
 * (q tiles of `block_q` positions and one head, no KV splits), every tile
 * wide, decode included (ENGINE_NARROW_TILES 0); the predictor runs when the
 * engine asks the item's key source for its first tile (after the rows and Q
 * are set up), and the key source then hands out the kept runs; the P.V skip
 * lives in the probabilities and P.V hooks.
 *
 * Threads: phase A over (batch, kv head) in a parallel region of its own,
 * then the engine's items from an atomic counter, last q blocks of a head
 * first. Each output row is written by one item in a fixed order, so results
 * do not depend on the thread count.
 */
#include "attune_attention.h"
#include "attention_internal.h"
#include "attention_modifiers.h"
#include "attention_plan.h"
#include "simd.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#ifdef _OPENMP
#include <omp.h>
#endif

enum {
    SPARGE_BLOCK_Q = 64,
    SPARGE_BLOCK_KV = 64,
    SPARGE_MAX_BLOCK_Q = 512,
    SPARGE_MAX_BLOCK_KV = 1024,
    /* Keys per stage-2 tile: consecutive kept blocks are merged up to this,
     * flash's default tile, so with every block kept sparge tiles exactly as
     * flash does (bitwise-equal outputs at N = 4096, Docs/KERNELS.md). */
    TILE_KEYS = 256,
};

/* lambda at or above this cannot change an fp32 result: no test is run. */
#define SPARGE_NO_SKIP 200.0f

void attune_sparge_default_params(attune_sparge_params *params) {
    memset(params, 0, sizeof *params);
    params->block_q = SPARGE_BLOCK_Q;
    params->block_kv = SPARGE_BLOCK_KV;
    params->simthreshd1 = 0.6f;
    params->cdfthreshd = 0.98f;
    params->pvthreshd = 50.0f;
    params->sink = 1;
}

/* ------------------------------------------------------------ plan, scratch */

/* What the stats report: blocks kept and visible, 16-row P.V micro-tiles
 * visited and skipped, prediction time, and with masks the kept blocks they
 * partly hide. Per thread, summed into the plan's as the thread's scratch is
 * freed. */
typedef struct {
    int64_t kept, visible, pv_tiles, pv_skipped;
    int64_t mask_partial;
    double predict_ms;
} sparge_counts;

/* The engine's tiling (q tiles of one head, bk = the longest run of kept
 * blocks a tile takes), then sparge's: its parameters and the predictor's
 * per-(batch, kv head) block statistics. */
typedef struct {
    ATTENTION_PLAN_FIELDS;
    attune_sparge_params prm; /* resolved */
    int64_t nqb, nkb;
    int64_t per_tile;         /* kept blocks per stage-2 tile, at most */
    int64_t kmin, kmax;       /* keys some query sees: [kmin, kmax) */
    int predict;              /* 0 when every visible block is kept (tau >= 1) */
    int skip;                 /* the pvthreshd test is on */
    float *kbar;              /* [batch * kv_heads][nkb][qk_dim] block means of smoothed K */
    float *ksim;              /* [batch * kv_heads][nkb] block self-similarity */
    sparge_counts *total;     /* summed over the threads */
} plan;

/* A k block's pooled score, then probability, for the cumulative cut. */
typedef struct {
    double p;
    int32_t j;
} ranked;

/* The engine's tile buffers, flash's online-softmax state (m, l, alpha), and
 * the predictor's and the P.V skip's per-item state. */
typedef struct {
    ATTENTION_SCRATCH_FIELDS;
    float *m, *l, *alpha;
    float *qbar;         /* [qk_dim] */
    float *usum;         /* [qk_dim] sum of normalised rows */
    ranked *rank;        /* [nkb] */
    uint8_t *keep;       /* [nkb] */
    uint8_t *seen;       /* [nkb] with masks: MASK_TILE_HIDDEN / _PARTIAL / _OPEN per block */
    vmask *live;         /* [rp / 16] rows of each micro-tile that see some key */
    uint8_t *column;     /* [rp / 16] what the softmax step did to each micro-tile */
    sparge_counts *counts;   /* this thread's */
    sparge_counts *total;    /* the plan's */
} scratch;

/* The key source's walk over an item's kept blocks: visible blocks [j, jb1)
 * still to look at (j: the current run's first), `je` the current run's end,
 * [c0, c1) the keys the item's rows see. */
typedef struct {
    int64_t j, je, jb1, c0, c1;
} variant_keys;

/* The engine's variant: f32 K/V, bf16 tiles, wide tiles only, no splits,
 * flash's running max and sum per row, P.V rescaled; the key source is the
 * predictor's keep-list. */
#define ENGINE_BF16_TILES 1
#define ENGINE_ROW_STATE 1
#define ENGINE_KEY_SOURCE 1
#define ENGINE_NARROW_TILES 0
#define ENGINE_KV_SPLITS 0
#define ENGINE_PV_MODE ENGINE_PV_RESCALE
#include "attention_engine.h"
#include "flash_softmax.h"

/* ------------------------------------------------------------ statistics */

/* Adds row x - shift (shift may be NULL) to `mean` and its L2-normalised
 * form to `usum` (a zero row adds zero, as F.normalize's eps does). */
static void accumulate_row(const float *x, const float *shift, int d, float *mean, float *usum) {
    vf ss = vf_zero();
    for (int d0 = 0; d0 < d; d0 += VL) {
        vmask m = vm_first(d - d0);
        vf v = vf_load_n(x + d0, m);
        if (shift) v = vf_sub(v, vf_load_n(shift + d0, m));
        ss = vf_fma(v, v, ss);
    }
    float norm = sqrtf(vf_hsum(ss));
    /* NaN/Inf norms propagate: the block becomes non-similar. */
    vf inv = vf_set1(norm > 0.0f || norm != norm ? 1.0f / norm : 0.0f);
    for (int d0 = 0; d0 < d; d0 += VL) {
        vmask m = vm_first(d - d0);
        vf v = vf_load_n(x + d0, m);
        if (shift) v = vf_sub(v, vf_load_n(shift + d0, m));
        vf_store_n(mean + d0, vf_add(vf_load_n(mean + d0, m), v), m);
        vf_store_n(usum + d0, vf_fma(v, inv, vf_load_n(usum + d0, m)), m);
    }
}

/* mean /= n; returns |usum|^2 / n^2, the mean of the rows' cosine Gram matrix. */
static float finish_block(float *mean, const float *usum, int d, int64_t n) {
    double s = 0.0;
    for (int i = 0; i < d; i++) {
        mean[i] /= (float)n;
        s += (double)usum[i] * usum[i];
    }
    return (float)(s / ((double)n * (double)n));
}

/* Phase A for (batch b, kv head g): mu, then kbar and simk of every block
 * that holds a key some query sees (other blocks are never looked at). */
static void kv_stats(const plan *sp, float *mu, float *usum, int64_t b, int64_t g) {
    const attune_attention_problem *p = sp->p;
    const int d = (int)p->qk_dim;
    const int64_t bk = sp->prm.block_kv, ks = p->k_stride.row;
    const float *kbase = sp->t->k + b * p->k_stride.batch + g * p->k_stride.head;
    /* mu in double, 16 dims at a time: thousands of keys are summed. */
    for (int d0 = 0; d0 < d; d0 += 16) {
        const int w = d - d0 < 16 ? d - d0 : 16;
        double part[16] = {0};
        for (int64_t j = sp->kmin; j < sp->kmax; j++)
            for (int i = 0; i < w; i++) part[i] += kbase[j * ks + d0 + i];
        for (int i = 0; i < w; i++) mu[d0 + i] = (float)(part[i] / (double)(sp->kmax - sp->kmin));
    }
    const int64_t bg = b * p->kv_heads + g;
    for (int64_t jb = sp->kmin / bk; jb * bk < sp->kmax; jb++) {
        const int64_t k0 = jb * bk > sp->kmin ? jb * bk : sp->kmin;
        const int64_t k1 = (jb + 1) * bk < sp->kmax ? (jb + 1) * bk : sp->kmax;
        float *mean = sp->kbar + (bg * sp->nkb + jb) * d;
        memset(mean, 0, sizeof(float) * (size_t)d);
        memset(usum, 0, sizeof(float) * (size_t)d);
        for (int64_t j = k0; j < k1; j++) accumulate_row(kbase + j * ks, mu, d, mean, usum);
        sp->ksim[bg * sp->nkb + jb] = finish_block(mean, usum, d, k1 - k0);
    }
}

/* ------------------------------------------------------------- selection */

static int by_prob_desc(const void *a, const void *b) {
    const ranked *x = a, *y = b;
    if (x->p > y->p) return -1;
    if (x->p < y->p) return 1;
    return (x->j > y->j) - (x->j < y->j);
}

/* Sets keep[j] for the visible blocks [jb0, jb1) of one item whose pooled
 * query is ss->qbar with self-similarity simq; blocks [diag0, diag1] hold
 * the rows' last visible keys (diag0 > diag1: none forced). With masks
 * (`masked`) a block they hide from every row (ss->seen) is not visible: never
 * kept, ranked or forced. */
static void select_blocks(const plan *sp, const scratch *ss, int64_t bg, int64_t jb0, int64_t jb1,
                          float simq, int64_t diag0, int64_t diag1, int masked) {
    const attune_sparge_params *prm = &sp->prm;
    uint8_t *keep = ss->keep;
    if (!sp->predict || !(simq > prm->simthreshd1)) {
        for (int64_t j = jb0; j < jb1; j++) keep[j] = !masked || ss->seen[j] != MASK_TILE_HIDDEN;
        return;
    }
    const int d = (int)sp->p->qk_dim;
    const double scale = sp->p->scale;
    int64_t n = 0;
    for (int64_t j = jb0; j < jb1; j++) {
        if (masked && ss->seen[j] == MASK_TILE_HIDDEN) {
            keep[j] = 0;
            continue;
        }
        keep[j] = !(sp->ksim[bg * sp->nkb + j] > prm->simthreshd1) || (prm->sink && j == 0) ||
                  (j >= diag0 && j <= diag1);
        if (!(sp->ksim[bg * sp->nkb + j] > prm->simthreshd1)) continue; /* excluded from the softmax */
        const float *kb = sp->kbar + (bg * sp->nkb + j) * d;
        double s = 0.0;
        for (int i = 0; i < d; i++) s += (double)ss->qbar[i] * kb[i];
        s *= scale;
        if (!isfinite(s)) {
            keep[j] = 1; /* cannot be ranked: attend it */
            continue;
        }
        ss->rank[n].p = s;
        ss->rank[n].j = (int32_t)j;
        n++;
    }
    if (n == 0) return;
    double mx = -INFINITY, sum = 0.0;
    for (int64_t i = 0; i < n; i++) mx = ss->rank[i].p > mx ? ss->rank[i].p : mx;
    for (int64_t i = 0; i < n; i++) sum += ss->rank[i].p = exp(ss->rank[i].p - mx);
    qsort(ss->rank, (size_t)n, sizeof ss->rank[0], by_prob_desc);
    const double target = (double)prm->cdfthreshd * sum;
    double cum = 0.0;
    for (int64_t i = 0; i < n; i++) {
        keep[ss->rank[i].j] = 1;
        cum += ss->rank[i].p;
        if (cum >= target) break;
    }
}

/* Key blocks the causal/window mask alone gives the rows of each q block, summed
 * over q blocks and every (batch, q head): what the masks' count of hidden
 * blocks starts from (they can only hide, so the visible ones are a subset). */
static int64_t unmasked_blocks(const plan *sp) {
    const attune_attention_problem *p = sp->p;
    const int64_t bk = sp->prm.block_kv;
    int64_t n = 0;
    for (int64_t qt = 0; qt < sp->qtiles; qt++) {
        int64_t ulo = INT64_MAX, uhi = INT64_MIN;
        for (int64_t i = qt * sp->npos; i < p->q_len && i < (qt + 1) * sp->npos; i++) {
            int64_t lo, hi;
            attune_visible_range(p, sp->q_offset, i, &lo, &hi);
            if (lo >= hi) continue;
            ulo = lo < ulo ? lo : ulo;
            uhi = hi > uhi ? hi : uhi;
        }
        if (ulo < uhi) n += (uhi - 1) / bk - ulo / bk + 1;
    }
    return n * p->batch * p->q_heads;
}

/* ----------------------------------------------------------------- hooks */

ATTUNE_INLINE void variant_row_init(const plan *pl, const scratch *sc, int r, int ok, int64_t head) {
    (void)pl, (void)ok, (void)head;
    flash_row_start(sc, r);
}

/* The item's prediction (stage 1) from its rows and Q, then its first kept run. */
ATTUNE_INLINE int64_t variant_keys_first(const plan *pl, const scratch *sc, const attention_item *x, int64_t c0,
                                         int64_t c1, variant_keys *ks) {
    const attune_attention_problem *p = pl->p;
    const int rp = pl->rp, d = (int)p->qk_dim;
    const int64_t bk = pl->prm.block_kv;
    /* Micro-tiles' live rows, and the last visible key of the first and last
     * rows that see anything. */
    int64_t last0 = -1, last1 = -1;
    for (int c = 0; c < rp / VL; c++) {
        vmask m = 0;
        for (int i = 0; i < VL; i++) m |= (vmask)(sc->valid[c * VL + i] && sc->lo[c * VL + i] < sc->hi[c * VL + i]) << i;
        sc->live[c] = m;
    }
    for (int r = 0; r < pl->rows; r++) {
        if (!sc->valid[r] || sc->lo[r] >= sc->hi[r]) continue;
        if (last0 < 0) last0 = sc->hi[r] - 1;
        last1 = sc->hi[r] - 1;
    }
    /* The q block's pooled mean and similarity over its real rows. */
    int64_t head, pos0;
    engine_row_coords(pl, x, 0, &head, &pos0);
    const double t0 = pl->predict ? attune_now_ms() : 0.0;
    float simq = 0.0f;
    if (pl->predict) {
        memset(sc->qbar, 0, sizeof(float) * (size_t)d);
        memset(sc->usum, 0, sizeof(float) * (size_t)d);
        const float *qhead = pl->t->q + x->b * p->q_stride.batch + head * p->q_stride.head;
        int rows = 0;
        for (int r = 0; r < pl->rows; r++)
            if (sc->valid[r]) accumulate_row(qhead + (pos0 + r) * p->q_stride.row, NULL, d, sc->qbar, sc->usum), rows++;
        simq = finish_block(sc->qbar, sc->usum, d, rows);
    }
    const int64_t jb0 = c0 / bk, jb1 = (c1 + bk - 1) / bk;
    /* Masks: each block's visibility to the item's rows, as the engine would test it. */
    int64_t hidden = 0;
    if (pl->mk.on) {
        const attention_mask_rows mr = attention_mask_rows_of(&pl->mk, sc->valid, sc->rdoc, sc->rqb, pl->rows);
        for (int64_t j = jb0; j < jb1; j++) {
            const int64_t a = j * bk > c0 ? j * bk : c0, e = (j + 1) * bk < c1 ? (j + 1) * bk : c1;
            sc->seen[j] = (uint8_t)attention_mask_tile(&pl->mk, &mr, a, (int)(e - a));
            hidden += sc->seen[j] == MASK_TILE_HIDDEN;
        }
    }
    const int mask_diag = p->causal || p->window > 0;
    select_blocks(pl, sc, x->b * p->kv_heads + x->g, jb0, jb1, simq, mask_diag ? last0 / bk : 1,
                  mask_diag ? last1 / bk : 0, pl->mk.on);
    if (pl->predict) sc->counts->predict_ms += attune_now_ms() - t0;
    if (pl->mk.on)
        for (int64_t j = jb0; j < jb1; j++) sc->counts->mask_partial += sc->keep[j] && sc->seen[j] == MASK_TILE_PARTIAL;
    if (pl->prm.mask_out) {
        uint8_t *mask_row = pl->prm.mask_out + ((x->b * p->q_heads + head) * pl->nqb + x->qt) * pl->nkb;
        for (int64_t j = jb0; j < jb1; j++) mask_row[j] = sc->keep[j];
    }
    sc->counts->visible += jb1 - jb0 - hidden;
    int64_t j = jb0;
    while (j < jb1 && !sc->keep[j]) j++;
    *ks = (variant_keys){.j = j, .je = j, .jb1 = jb1, .c0 = c0, .c1 = c1};
    return j < jb1 ? (j * bk > c0 ? j * bk : c0) : c1;
}

/* The run of kept blocks from ks->j, at most per_tile of them: its keys inside [c0, c1). */
ATTUNE_INLINE int variant_keys_count(const plan *pl, const scratch *sc, variant_keys *ks, int64_t j0, int64_t c1) {
    const int64_t bk = pl->prm.block_kv;
    int64_t je = ks->j + 1;
    while (je < ks->jb1 && sc->keep[je] && je - ks->j < pl->per_tile) je++;
    sc->counts->kept += je - ks->j;
    ks->je = je;
    return (int)((je * bk < c1 ? je * bk : c1) - j0);
}

/* The next run's first key, c1 when none is left. */
ATTUNE_INLINE int64_t variant_keys_next(const plan *pl, const scratch *sc, variant_keys *ks, int64_t j0) {
    (void)j0;
    int64_t j = ks->je;
    while (j < ks->jb1 && !sc->keep[j]) j++;
    ks->j = j;
    return j < ks->jb1 ? j * pl->prm.block_kv : ks->c1;
}

static void variant_scores_wide(const plan *pl, const scratch *sc, const float *kbase, int64_t j0, int n) {
    attune_flash_scores_wide(sc->qt, pl->rp, (int)pl->p->qk_dim, kbase, pl->p->k_stride.row, j0, n, sc->st);
}

/* ALiBi (attention_modifiers.h), the masks' hidden entries on partly visible
 * tiles (-inf), then flash's online-softmax step, with the P.V
 * skip when it is on (column[] says which micro-tiles it left untouched). */
static void variant_probs_wide(const plan *pl, const scratch *sc, int64_t j0, int n, int full) {
    if (pl->p->alibi_slopes) attention_alibi_wide(sc->st, pl->rp, sc->slope2, sc->apos, j0, n);
    engine_mask_wide(pl, sc, j0, n, -INFINITY);
    if (pl->skip) flash_softmax_tile(pl, sc, j0, n, full, pl->prm.pvthreshd, sc->live, sc->column, 1);
    else flash_softmax_tile(pl, sc, j0, n, full, 0.0f, NULL, NULL, 0);
}

/* P.V of rows [rb, re) over f32 or (bf16 tiles) packed V. */
static void pv_rows(const plan *pl, const scratch *sc, int rb, int re, int64_t bg, const float *vbase, int64_t j0,
                    int n, int full) {
    if (pl->bf16) {
        flash_bf16_pv_tile(pl, sc, rb, re, bg, vbase, j0, n, full, 0);
    } else {
        const pv_target t = engine_pv_target(pl, sc);
        attune_flash_pv_tile(&t, sc->st + rb, pl->rp, rb, re, vbase, j0, n, full, 0);
    }
}

/* A tile's P.V for rows [0, re): every row, or with the skip on only the
 * micro-tiles the softmax step did not skip, in runs of adjacent ones;
 * counts visited and skipped micro-tiles. */
static void pv_kept(const plan *pl, const scratch *sc, int re, int64_t bg, const float *vbase, int64_t j0, int n,
                    int full) {
    const int cols = pl->rp / VL;
    if (!pl->skip) {
        pv_rows(pl, sc, 0, re, bg, vbase, j0, n, full);
        for (int c = 0; c < cols; c++) sc->counts->pv_tiles += sc->live[c] != 0;
        return;
    }
    for (int c = 0; c < cols;) {
        if (sc->live[c]) {
            sc->counts->pv_tiles++;
            sc->counts->pv_skipped += sc->column[c] == COLUMN_SKIPPED;
        }
        if (sc->column[c] != COLUMN_DONE) {
            c++;
            continue;
        }
        int ce = c + 1;
        while (ce < cols && sc->column[ce] == COLUMN_DONE) {
            if (sc->live[ce]) sc->counts->pv_tiles++;
            ce++;
        }
        const int rb = c * VL, rend = ce * VL < re ? ce * VL : re;
        if (rb < rend) pv_rows(pl, sc, rb, rend, bg, vbase, j0, n, full);
        c = ce;
    }
}

static void variant_pv_tile(const plan *pl, const scratch *sc, const float *pt, int ps, int rb, int re,
                            const float *vbase, int64_t j0, int n, int full, int prefetch) {
    (void)pt, (void)ps, (void)rb, (void)prefetch; /* P^T in st, every row from 0, prefill tiles */
    pv_kept(pl, sc, re, 0, vbase, j0, n, full);
}

static void variant_bf16_tile(const plan *pl, const scratch *sc, int64_t bg, const float *vbase, int64_t j0, int n,
                              int full) {
    variant_probs_wide(pl, sc, j0, n, full);
    pv_kept(pl, sc, pl->rows, bg, vbase, j0, n, full);
}

/* Normalise; rows that saw nothing are 0 with LSE -inf. */
static void variant_store_row(const plan *pl, const scratch *sc, int r, int64_t b, int64_t head, int64_t pos) {
    flash_finish_row(sc->acc + (int64_t)r * pl->dvp, sc->m[r], sc->l[r], pl->p->v_dim, engine_out_row(pl, b, head, pos),
                     engine_lse_at(pl, b, head, pos));
}

static void variant_scratch_free(scratch *sc) {
    if (sc->counts) {
        const sparge_counts *c = sc->counts;
#ifdef _OPENMP
#pragma omp critical(sparge_counts)
#endif
        {
            sc->total->kept += c->kept;
            sc->total->visible += c->visible;
            sc->total->pv_tiles += c->pv_tiles;
            sc->total->pv_skipped += c->pv_skipped;
            sc->total->predict_ms += c->predict_ms;
            sc->total->mask_partial += c->mask_partial;
        }
    }
    attune_scratch_free(sc->m);
    attune_scratch_free(sc->qbar);
    attune_scratch_free(sc->rank);
    attune_scratch_free(sc->keep);
}

static int variant_scratch_alloc(const plan *pl, scratch *sc) {
    const size_t rp = (size_t)pl->rp, f = sizeof(float), d = (size_t)pl->p->qk_dim;
    const size_t nkb = (size_t)(pl->nkb > 0 ? pl->nkb : 1), cols = rp / VL;
    sc->m = attune_scratch_alloc(f * rp * 3);
    sc->qbar = attune_scratch_alloc(f * d * 2);
    sc->rank = attune_scratch_alloc(sizeof(ranked) * nkb);
    sc->keep = attune_scratch_alloc(2 * nkb + cols + sizeof(vmask) * cols + sizeof(sparge_counts) + 64);
    if (!sc->m || !sc->qbar || !sc->rank || !sc->keep) return 0;
    sc->l = sc->m + rp;
    sc->alpha = sc->m + 2 * rp;
    sc->usum = sc->qbar + d;
    sc->seen = sc->keep + nkb;
    sc->live = (vmask *)(((uintptr_t)(sc->seen + nkb) + 7) & ~(uintptr_t)7);
    sc->column = (uint8_t *)(sc->live + cols);
    sc->counts = (sparge_counts *)(((uintptr_t)(sc->column + cols) + 7) & ~(uintptr_t)7);
    memset(sc->counts, 0, sizeof *sc->counts);
    sc->total = pl->total;
    return 1;
}

/* ---------------------------------------------------------- entry point */

static int32_t check_params(const attune_sparge_params *q, attune_status *status) {
    const int32_t bad = ATTUNE_ERR_INVALID_ARGUMENT;
    if (q->block_q != 0 && (q->block_q < 16 || q->block_q > SPARGE_MAX_BLOCK_Q || q->block_q % 16))
        return attune_fail(status, bad, "sparge: block_q must be a multiple of 16 in [16, %d] (or 0 = default), got %d",
                           SPARGE_MAX_BLOCK_Q, q->block_q);
    if (q->block_kv != 0 && (q->block_kv < 16 || q->block_kv > SPARGE_MAX_BLOCK_KV || q->block_kv % 16))
        return attune_fail(status, bad, "sparge: block_kv must be a multiple of 16 in [16, %d] (or 0 = default), got %d",
                           SPARGE_MAX_BLOCK_KV, q->block_kv);
    if (!(q->simthreshd1 >= -1.0f && q->simthreshd1 <= 1.0f))
        return attune_fail(status, bad, "sparge: simthreshd1 must be in [-1, 1], got %g", (double)q->simthreshd1);
    if (!(q->cdfthreshd > 0.0f && q->cdfthreshd <= 1.0f))
        return attune_fail(status, bad, "sparge: cdfthreshd must be in (0, 1] (1 keeps every block), got %g",
                           (double)q->cdfthreshd);
    if (!(q->pvthreshd >= 0.0f))
        return attune_fail(status, bad, "sparge: pvthreshd must be >= 0 (base-2 units; >= 200 never skips), got %g",
                           (double)q->pvthreshd);
    if (q->sink != 0 && q->sink != 1)
        return attune_fail(status, bad, "sparge: sink must be 0 or 1, got %d", q->sink);
    if (q->threads < 0) return attune_fail(status, bad, "sparge: threads must be >= 0, got %d", q->threads);
    if (q->precision < ATTUNE_PRECISION_F32 || q->precision > ATTUNE_PRECISION_BF16)
        return attune_fail(status, bad, "sparge: unknown precision %d (0 = f32, 1 = bf16)", q->precision);
    return ATTUNE_OK;
}

int32_t attune_sparge_attention(const attune_attention_problem *p, const attune_attention_tensors *t,
                                const attune_sparge_params *params, attune_status *status) {
    const double t_start = attune_now_ms();
    const uint32_t accepts = 1u << ATTUNE_KV_F32 | ATTUNE_ACCEPTS_ALIBI | ATTUNE_ACCEPTS_SINKS | ATTUNE_ACCEPTS_MASKS;
    int32_t rc = attune_attention_validate_kv(p, t, accepts, "sparge", status);
    if (rc != ATTUNE_OK) return rc;
    attune_sparge_params prm;
    if (params) prm = *params;
    else attune_sparge_default_params(&prm);
    rc = check_params(&prm, status);
    if (rc != ATTUNE_OK) return rc;
    if (prm.block_q == 0) prm.block_q = SPARGE_BLOCK_Q;
    if (prm.block_kv == 0) prm.block_kv = SPARGE_BLOCK_KV;

    /* q tiles of block_q positions of one head; a tile's keys: per_tile blocks at most.
     * sparge counts the masks' work itself, in blocks: the engine sees the kept runs only. */
    attune_attention_problem whole = *p;
    whole.mask_stats = NULL;
    plan sp = {0};
    sparge_counts total = {0};
    const int64_t per_tile = TILE_KEYS / prm.block_kv > 1 ? TILE_KEYS / prm.block_kv : 1;
    const int npos = (int)(p->q_len < prm.block_q ? p->q_len : prm.block_q);
    engine_plan_init(&sp, &whole, t, npos, 1, (int)(per_tile * prm.block_kv), 1, prm.precision);
    sp.prm = prm;
    sp.per_tile = per_tile;
    sp.total = &total;
    sp.nqb = sp.qtiles;
    sp.nkb = (p->kv_len + prm.block_kv - 1) / prm.block_kv;
    sp.predict = prm.cdfthreshd < 1.0f;
    sp.skip = prm.pvthreshd < SPARGE_NO_SKIP;
    if (prm.mask_out) memset(prm.mask_out, 0, (size_t)(p->batch * p->q_heads * sp.nqb * sp.nkb));

    /* Keys some query sees (causal and window; the document and block masks aside,
     * they only hide): one interval per row, ends non-decreasing. */
    sp.kmin = INT64_MAX;
    sp.kmax = INT64_MIN;
    for (int64_t i = 0; i < p->q_len; i++) {
        int64_t lo, hi;
        attune_visible_range(p, sp.q_offset, i, &lo, &hi);
        if (lo >= hi) continue;
        sp.kmin = lo < sp.kmin ? lo : sp.kmin;
        sp.kmax = hi > sp.kmax ? hi : sp.kmax;
    }
    if (sp.kmin >= sp.kmax) sp.kmin = sp.kmax = 0;
    const int64_t n_kv = p->batch * p->kv_heads;
    if (sp.predict && sp.kmin < sp.kmax) {
        sp.kbar = attune_scratch_alloc(sizeof(float) * (size_t)(n_kv * sp.nkb * p->qk_dim));
        sp.ksim = attune_scratch_alloc(sizeof(float) * (size_t)(n_kv * sp.nkb));
        if (!sp.kbar || !sp.ksim) {
            attune_scratch_free(sp.kbar);
            attune_scratch_free(sp.ksim);
            return attune_fail(status, ATTUNE_ERR_OUT_OF_MEMORY, "sparge: cannot allocate block statistics");
        }
    } else {
        sp.predict = 0;
    }

    int nth = 1;
#ifdef _OPENMP
    nth = prm.threads > 0 ? prm.threads : omp_get_max_threads();
#endif
    /* Phase A: the block statistics of every (batch, kv head), before any item reads them. */
    int failed = 0;
    if (sp.predict) {
        int64_t next_kv = 0;
        double predict_ms = 0.0;
#ifdef _OPENMP
#pragma omp parallel num_threads(nth) reduction(| : failed) reduction(+ : predict_ms)
#endif
        {
            float *mu = attune_scratch_alloc(sizeof(float) * (size_t)p->qk_dim * 2);
            const double t0 = attune_now_ms();
            for (; mu;) {
                int64_t bg = __atomic_fetch_add(&next_kv, 1, __ATOMIC_RELAXED);
                if (bg >= n_kv) break;
                kv_stats(&sp, mu, mu + p->qk_dim, bg / p->kv_heads, bg % p->kv_heads);
            }
            predict_ms += attune_now_ms() - t0;
            failed = !mu;
            attune_scratch_free(mu);
        }
        total.predict_ms = predict_ms;
    }
    rc = failed ? attune_fail(status, ATTUNE_ERR_OUT_OF_MEMORY, "sparge: cannot allocate per-thread scratch")
                : engine_run(&sp, prm.threads, "sparge", status);
    attune_scratch_free(sp.kbar);
    attune_scratch_free(sp.ksim);
    if (rc != ATTUNE_OK) return rc;
    if (p->mask_stats)
        *p->mask_stats = (attune_mask_stats){total.kept, unmasked_blocks(&sp) - total.visible, total.mask_partial};
    if (prm.stats_out) {
        attune_sparge_stats *st = prm.stats_out;
        st->kept_blocks = total.kept;
        st->visible_blocks = total.visible;
        st->kept_fraction = total.visible > 0 ? (double)total.kept / (double)total.visible : 0.0;
        st->pv_tiles = total.pv_tiles;
        st->pv_skipped = total.pv_skipped;
        st->skipped_pv_fraction = total.pv_tiles > 0 ? (double)total.pv_skipped / (double)total.pv_tiles : 0.0;
        st->predict_ms = total.predict_ms / nth;
        st->total_ms = attune_now_ms() - t_start;
    }
    return attune_ok(status);
}
