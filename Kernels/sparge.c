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
 * Stage 2: flash's online softmax (flash_internal.h, flash_tiles.c; with
 * precision = bf16 the bf16 tiles, attention_bf16.h) over the kept blocks
 * only. Runs of consecutive kept blocks are attended as one KV
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
 * Threads: one parallel region; phase A over (batch, kv head), a barrier,
 * then items from an atomic counter (not `schedule(dynamic)`: see flash.c),
 * last q blocks first (the heaviest under a causal mask). Each output row is
 * written by one item in a fixed order, so results do not depend on the
 * thread count.
 */
#include "attune_attention.h"
#include "attention_internal.h"
#include "simd.h"
#include "flash_internal.h"
#include "attention_modifiers.h"

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

/* ------------------------------------------------------------------ plan */

typedef struct {
    plan fl;                  /* flash's view of a tile: p, t, rp, dvp, qscale */
    attune_sparge_params prm; /* resolved */
    int64_t q_offset, group, nqb, nkb, items;
    int64_t kmin, kmax;       /* keys some query sees: [kmin, kmax) */
    int predict;              /* 0 when every visible block is kept (tau >= 1) */
    int skip;                 /* the pvthreshd test is on */
    float *kbar;              /* [batch * kv_heads][nkb][qk_dim] block means of smoothed K */
    float *ksim;              /* [batch * kv_heads][nkb] block self-similarity */
} sparge_plan;

/* A k block's pooled score, then probability, for the cumulative cut. */
typedef struct {
    double p;
    int32_t j;
} ranked;

typedef struct {
    scratch fs;          /* flash's tile scratch (qt, st, acc, m, l, alpha, lo, hi, valid) */
    float *qbar, *mu;    /* [qk_dim] */
    float *usum;         /* [qk_dim] sum of normalised rows */
    ranked *rank;        /* [nkb] */
    uint8_t *keep;       /* [nkb] */
    vmask *live;         /* [rp / 16] rows of each micro-tile that see some key */
    uint8_t *column;     /* [rp / 16] what the softmax step did to each micro-tile */
    /* counters, summed after the parallel region */
    int64_t kept, visible, pv_tiles, pv_skipped;
    double predict_ms;
} sparge_scratch;

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
static void kv_stats(const sparge_plan *sp, sparge_scratch *ss, int64_t b, int64_t g) {
    const attune_attention_problem *p = sp->fl.p;
    const int d = (int)p->qk_dim;
    const int64_t bk = sp->prm.block_kv, ks = p->k_stride.row;
    const float *kbase = sp->fl.t->k + b * p->k_stride.batch + g * p->k_stride.head;
    /* mu in double, 16 dims at a time: thousands of keys are summed. */
    for (int d0 = 0; d0 < d; d0 += 16) {
        const int w = d - d0 < 16 ? d - d0 : 16;
        double part[16] = {0};
        for (int64_t j = sp->kmin; j < sp->kmax; j++)
            for (int i = 0; i < w; i++) part[i] += kbase[j * ks + d0 + i];
        for (int i = 0; i < w; i++) ss->mu[d0 + i] = (float)(part[i] / (double)(sp->kmax - sp->kmin));
    }
    const int64_t bg = b * p->kv_heads + g;
    for (int64_t jb = sp->kmin / bk; jb * bk < sp->kmax; jb++) {
        const int64_t k0 = jb * bk > sp->kmin ? jb * bk : sp->kmin;
        const int64_t k1 = (jb + 1) * bk < sp->kmax ? (jb + 1) * bk : sp->kmax;
        float *mean = sp->kbar + (bg * sp->nkb + jb) * d;
        memset(mean, 0, sizeof(float) * (size_t)d);
        memset(ss->usum, 0, sizeof(float) * (size_t)d);
        for (int64_t j = k0; j < k1; j++) accumulate_row(kbase + j * ks, ss->mu, d, mean, ss->usum);
        sp->ksim[bg * sp->nkb + jb] = finish_block(mean, ss->usum, d, k1 - k0);
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
 * the rows' last visible keys (diag0 > diag1: none forced). */
static void select_blocks(const sparge_plan *sp, sparge_scratch *ss, int64_t bg, int64_t jb0, int64_t jb1,
                          float simq, int64_t diag0, int64_t diag1) {
    const attune_sparge_params *prm = &sp->prm;
    uint8_t *keep = ss->keep;
    if (!sp->predict || !(simq > prm->simthreshd1)) {
        for (int64_t j = jb0; j < jb1; j++) keep[j] = 1;
        return;
    }
    const int d = (int)sp->fl.p->qk_dim;
    const double scale = sp->fl.p->scale;
    int64_t n = 0;
    for (int64_t j = jb0; j < jb1; j++) {
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

/* ---------------------------------------------------------------- items */

/* P.V of a tile for the micro-tiles the softmax step did not skip, in runs
 * of adjacent ones; counts visited and skipped micro-tiles. */
static void pv_unskipped(const sparge_plan *sp, sparge_scratch *ss, int rows, int64_t bg, const float *vbase,
                         int64_t k0, int n, int full) {
    const plan *pl = &sp->fl;
    const int cols = pl->rp / VL;
    for (int c = 0; c < cols;) {
        if (ss->live[c]) {
            ss->pv_tiles++;
            ss->pv_skipped += ss->column[c] == COLUMN_SKIPPED;
        }
        if (ss->column[c] != COLUMN_DONE) {
            c++;
            continue;
        }
        int ce = c + 1;
        while (ce < cols && ss->column[ce] == COLUMN_DONE) {
            if (ss->live[ce]) ss->pv_tiles++;
            ce++;
        }
        const int rb = c * VL, re = ce * VL < rows ? ce * VL : rows;
        if (rb < re && pl->bf16) flash_bf16_pv_tile(pl, &ss->fs, rb, re, bg, vbase, k0, n, full, 0);
        else if (rb < re) attune_flash_pv_tile(pl, &ss->fs, ss->fs.st + rb, pl->rp, rb, re, vbase, k0, n, full, 0);
        c = ce;
    }
}

static void run_item(const sparge_plan *sp, sparge_scratch *ss, int64_t it) {
    const plan *pl = &sp->fl;
    const attune_attention_problem *p = pl->p;
    const attune_attention_tensors *t = pl->t;
    scratch *sc = &ss->fs;
    const int64_t heads = p->batch * p->q_heads;
    const int64_t qb = sp->nqb - 1 - it / heads, bh = it % heads;
    const int64_t b = bh / p->q_heads, h = bh % p->q_heads, g = h / sp->group;
    const int bq = sp->prm.block_q, rp = pl->rp, d = (int)p->qk_dim;
    const int64_t bk = sp->prm.block_kv, pos0 = qb * bq;
    const int rows = (int)(p->q_len - pos0 < bq ? p->q_len - pos0 : bq);

    /* Rows: visible intervals, their union [ulo, uhi), their intersection
     * [flo, fhi) (tiles inside it need no mask), and the last visible key
     * of the first and last rows that see anything. */
    attention_span span = attention_span_none();
    int64_t last0 = -1, last1 = -1;
    for (int r = 0; r < rp; r++) {
        int64_t lo = 0, hi = 0;
        const int ok = r < rows;
        if (ok) attune_visible_range(p, sp->q_offset, pos0 + r, &lo, &hi);
        sc->valid[r] = ok;
        sc->lo[r] = (int32_t)lo;
        sc->hi[r] = (int32_t)hi;
        /* Modifiers (attention_modifiers.h): ALiBi's slope and position; a sink
         * starts the online softmax as flash's rows do (m = z, l = 1). */
        sc->apos[r] = ok ? (int32_t)(sp->q_offset + pos0 + r) : 0;
        sc->slope2[r] = ok ? attention_alibi_slope2(p, h) : 0.0f;
        sc->m[r] = ok ? attention_sink2(p, h) : -INFINITY;
        sc->l[r] = sc->m[r] == -INFINITY ? 0.0f : 1.0f;
        if (!ok) continue;
        attention_span_add(&span, lo, hi);
        if (lo < hi) {
            if (last0 < 0) last0 = hi - 1;
            last1 = hi - 1;
        }
    }
    const int64_t ulo = span.ulo, uhi = span.uhi, flo = span.flo, fhi = span.fhi;
    for (int c = 0; c < rp / VL; c++) {
        vmask m = 0;
        for (int i = 0; i < VL; i++) m |= (vmask)(sc->valid[c * VL + i] && sc->lo[c * VL + i] < sc->hi[c * VL + i]) << i;
        ss->live[c] = m;
    }
    memset(sc->acc, 0, sizeof(float) * (size_t)rp * (size_t)pl->dvp);

    uint8_t *mask_row = sp->prm.mask_out ? sp->prm.mask_out + ((b * p->q_heads + h) * sp->nqb + qb) * sp->nkb : NULL;
    if (mask_row) memset(mask_row, 0, (size_t)sp->nkb);
    if (ulo < uhi) {
        /* Q packed row-minor and scaled to base-2 units for the wide kernel;
         * while the rows are at hand, their pooled mean and similarity. */
        const double t0 = sp->predict ? attune_now_ms() : 0.0;
        if (sp->predict) {
            memset(ss->qbar, 0, sizeof(float) * (size_t)d);
            memset(ss->usum, 0, sizeof(float) * (size_t)d);
        }
        const float *qhead = t->q + b * p->q_stride.batch + h * p->q_stride.head;
        for (int r = 0; r < rp; r++) {
            const float *src = r < rows ? qhead + (pos0 + r) * p->q_stride.row : NULL;
            for (int i = 0; i < d; i++) sc->qt[(int64_t)i * rp + r] = src ? src[i] * pl->qscale : 0.0f;
            if (src && sp->predict) accumulate_row(src, NULL, d, ss->qbar, ss->usum);
        }
        if (pl->bf16) attune_bf16_pack_q(sc->qt, sc->qb, rp, d);
        const float simq = sp->predict ? finish_block(ss->qbar, ss->usum, d, rows) : 0.0f;
        const int64_t jb0 = ulo / bk, jb1 = (uhi + bk - 1) / bk;
        const int mask_diag = p->causal || p->window > 0;
        select_blocks(sp, ss, b * p->kv_heads + g, jb0, jb1, simq, mask_diag ? last0 / bk : 1,
                      mask_diag ? last1 / bk : 0);
        if (sp->predict) ss->predict_ms += attune_now_ms() - t0;
        if (mask_row)
            for (int64_t j = jb0; j < jb1; j++) mask_row[j] = ss->keep[j];

        ss->visible += jb1 - jb0;
        const int64_t per_tile = TILE_KEYS / bk > 1 ? TILE_KEYS / bk : 1;
        const float *kbase = t->k + b * p->k_stride.batch + g * p->k_stride.head;
        const float *vbase = t->v + b * p->v_stride.batch + g * p->v_stride.head;
        for (int64_t j = jb0; j < jb1;) {
            if (!ss->keep[j]) {
                j++;
                continue;
            }
            int64_t je = j + 1;
            while (je < jb1 && ss->keep[je] && je - j < per_tile) je++;
            ss->kept += je - j;
            const int64_t k0 = j * bk > ulo ? j * bk : ulo, k1 = je * bk < uhi ? je * bk : uhi;
            const int n = (int)(k1 - k0), full = flo <= k0 && k1 <= fhi;
            const int64_t bg = b * p->kv_heads + g;
            if (pl->bf16) attune_bf16_scores(&pl->kv16, sc->qb, sc->st, rp, bg, k0, n);
            else attune_flash_scores_wide(pl, sc, kbase, k0, n);
            if (p->alibi_slopes) attention_alibi_wide(sc->st, rp, sc->slope2, sc->apos, k0, n);
            if (sp->skip) {
                flash_softmax_tile(pl, sc, k0, n, full, sp->prm.pvthreshd, ss->live, ss->column, 1);
                pv_unskipped(sp, ss, rows, bg, vbase, k0, n, full);
            } else {
                flash_softmax_tile(pl, sc, k0, n, full, 0.0f, NULL, NULL, 0);
                if (pl->bf16) flash_bf16_pv_tile(pl, sc, 0, rows, bg, vbase, k0, n, full, 0);
                else attune_flash_pv_tile(pl, sc, sc->st, rp, 0, rows, vbase, k0, n, full, 0);
                for (int c = 0; c < rp / VL; c++) ss->pv_tiles += ss->live[c] != 0;
            }
            j = je;
        }
    }

    for (int r = 0; r < rows; r++) {
        const int64_t pos = pos0 + r;
        float *dst = t->o + b * p->o_stride.batch + h * p->o_stride.head + pos * p->o_stride.row;
        float *lse = t->lse ? t->lse + b * p->lse_stride_batch + h * p->lse_stride_head + pos : NULL;
        flash_finish_row(sc->acc + (int64_t)r * pl->dvp, sc->m[r], sc->l[r], p->v_dim, dst, lse);
    }
}

/* ------------------------------------------------------------ scratch */

static void scratch_free(sparge_scratch *ss) {
    attune_scratch_free(ss->fs.qt);
    attune_scratch_free(ss->fs.st);
    attune_scratch_free(ss->fs.acc);
    attune_scratch_free(ss->fs.m);
    attune_scratch_free(ss->fs.lo);
    attune_scratch_free(ss->fs.slope2);
    attune_scratch_free(ss->qbar);
    attune_scratch_free(ss->rank);
    attune_scratch_free(ss->keep);
    attune_scratch_free(ss->fs.qb);
    attune_scratch_free(ss->fs.pb);
}

static int scratch_alloc(const sparge_plan *sp, sparge_scratch *ss) {
    const plan *pl = &sp->fl;
    const size_t rp = (size_t)pl->rp, f = sizeof(float), d = (size_t)pl->p->qk_dim;
    const size_t tile = (size_t)(sp->prm.block_kv > TILE_KEYS ? sp->prm.block_kv : TILE_KEYS);
    const size_t nkb = (size_t)(sp->nkb > 0 ? sp->nkb : 1), cols = rp / VL;
    memset(ss, 0, sizeof *ss);
    ss->fs.qt = attune_scratch_alloc(f * d * rp);
    ss->fs.st = attune_scratch_alloc(f * tile * rp);
    ss->fs.acc = attune_scratch_alloc(f * rp * (size_t)pl->dvp);
    ss->fs.m = attune_scratch_alloc(f * rp * 3);
    ss->fs.lo = attune_scratch_alloc(sizeof(int32_t) * rp * 4);
    ss->fs.slope2 = attune_scratch_alloc(f * rp * 2);
    ss->qbar = attune_scratch_alloc(f * d * 3);
    ss->rank = attune_scratch_alloc(sizeof(ranked) * nkb);
    ss->keep = attune_scratch_alloc(nkb + cols + sizeof(vmask) * cols + 64);
    if (!ss->fs.qt || !ss->fs.st || !ss->fs.acc || !ss->fs.m || !ss->fs.lo || !ss->fs.slope2 || !ss->qbar || !ss->rank || !ss->keep ||
        (pl->bf16 && (!(ss->fs.qb = attune_bf16_alloc_q(pl->rp, pl->p->qk_dim)) ||
                      !(ss->fs.pb = attune_bf16_alloc_p(pl->rp, (int)tile))))) {
        scratch_free(ss);
        return 0;
    }
    ss->fs.l = ss->fs.m + rp;
    ss->fs.alpha = ss->fs.m + 2 * rp;
    ss->fs.hi = ss->fs.lo + rp;
    ss->fs.valid = ss->fs.lo + 2 * rp;
    ss->fs.apos = ss->fs.lo + 3 * rp;
    ss->fs.sink2 = ss->fs.slope2 + rp;
    ss->mu = ss->qbar + d;
    ss->usum = ss->qbar + 2 * d;
    ss->live = (vmask *)(((uintptr_t)(ss->keep + nkb) + 7) & ~(uintptr_t)7);
    ss->column = (uint8_t *)(ss->live + cols);
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
    int32_t rc = attune_attention_validate_kv(p, t, 1u << ATTUNE_KV_F32 | ATTUNE_ACCEPTS_ALIBI | ATTUNE_ACCEPTS_SINKS,
                                              "sparge", status);
    if (rc != ATTUNE_OK) return rc;
    sparge_plan sp;
    memset(&sp, 0, sizeof sp);
    if (params) sp.prm = *params;
    else attune_sparge_default_params(&sp.prm);
    rc = check_params(&sp.prm, status);
    if (rc != ATTUNE_OK) return rc;
    if (sp.prm.block_q == 0) sp.prm.block_q = SPARGE_BLOCK_Q;
    if (sp.prm.block_kv == 0) sp.prm.block_kv = SPARGE_BLOCK_KV;

    sp.fl.p = p;
    sp.fl.t = t;
    sp.fl.rp = (sp.prm.block_q < p->q_len ? sp.prm.block_q : (int)((p->q_len + VL - 1) / VL * VL));
    sp.fl.dvp = (int)((p->v_dim + VL - 1) / VL * VL);
    sp.fl.qscale = (float)((double)p->scale * 1.4426950408889634);
    sp.q_offset = attune_attention_q_offset(p);
    sp.fl.q_offset = sp.q_offset;
    sp.fl.bf16 = sp.prm.precision == ATTUNE_PRECISION_BF16;
    sp.fl.kv16 = (attune_bf16_kv){.p = p, .t = t, .q_offset = sp.q_offset, .dvp = sp.fl.dvp};
    sp.group = p->q_heads / p->kv_heads;
    sp.nqb = (p->q_len + sp.prm.block_q - 1) / sp.prm.block_q;
    sp.nkb = (p->kv_len + sp.prm.block_kv - 1) / sp.prm.block_kv;
    sp.items = p->batch * p->q_heads * sp.nqb;
    sp.predict = sp.prm.cdfthreshd < 1.0f;
    sp.skip = sp.prm.pvthreshd < SPARGE_NO_SKIP;

    /* Keys some query sees: masks are one interval per row, ends non-decreasing. */
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

    int failed = 0, nth = 1;
    int64_t next_kv = 0, next_item = 0, kept = 0, visible = 0, pv_tiles = 0, pv_skipped = 0;
    double predict_ms = 0.0;
#ifdef _OPENMP
    nth = sp.prm.threads > 0 ? sp.prm.threads : omp_get_max_threads();
#endif
    if (sp.fl.bf16 && !attune_bf16_prepack(&sp.fl.kv16, nth)) {
        attune_scratch_free(sp.kbar);
        attune_scratch_free(sp.ksim);
        return attune_fail(status, ATTUNE_ERR_OUT_OF_MEMORY, "sparge: cannot allocate the bf16 K/V tiles");
    }
#ifdef _OPENMP
#pragma omp parallel num_threads(nth) reduction(| : failed) reduction(+ : kept, visible, pv_tiles, pv_skipped, predict_ms)
#endif
    {
        sparge_scratch ss;
        const int ok = scratch_alloc(&sp, &ss);
        if (ok && sp.predict) {
            const double t0 = attune_now_ms();
            for (;;) {
                int64_t bg = __atomic_fetch_add(&next_kv, 1, __ATOMIC_RELAXED);
                if (bg >= n_kv) break;
                kv_stats(&sp, &ss, bg / p->kv_heads, bg % p->kv_heads);
            }
            ss.predict_ms += attune_now_ms() - t0;
        }
        /* Every thread reaches the barrier, even one without scratch. */
#ifdef _OPENMP
#pragma omp barrier
#endif
        if (ok) {
            for (;;) {
                int64_t it = __atomic_fetch_add(&next_item, 1, __ATOMIC_RELAXED);
                if (it >= sp.items) break;
                run_item(&sp, &ss, it);
            }
            kept += ss.kept;
            visible += ss.visible;
            pv_tiles += ss.pv_tiles;
            pv_skipped += ss.pv_skipped;
            predict_ms += ss.predict_ms;
            scratch_free(&ss);
        } else {
            failed = 1;
        }
    }
    attune_scratch_free(sp.kbar);
    attune_scratch_free(sp.ksim);
    attune_bf16_release(&sp.fl.kv16);
    if (failed) return attune_fail(status, ATTUNE_ERR_OUT_OF_MEMORY, "sparge: cannot allocate per-thread scratch");
    if (sp.prm.stats_out) {
        attune_sparge_stats *st = sp.prm.stats_out;
        st->kept_blocks = kept;
        st->visible_blocks = visible;
        st->kept_fraction = visible > 0 ? (double)kept / (double)visible : 0.0;
        st->pv_tiles = pv_tiles;
        st->pv_skipped = pv_skipped;
        st->skipped_pv_fraction = pv_tiles > 0 ? (double)pv_skipped / (double)pv_tiles : 0.0;
        st->predict_ms = predict_ms / nth;
        st->total_ms = attune_now_ms() - t_start;
    }
    return attune_ok(status);
}
