/*
 * sigmoid.c — tiled sigmoid attention (FlashSigmoid, ALGORITHMS.md §3), fp32.
 *
 * Math. For every batch b, query head h (kv head g = h / (Hq / Hkv)) and query
 * row i, over the keys j the row sees (the ABI's one interval [lo, hi) per row:
 * causal, window, q_offset; attention_problem.c):
 *
 *     O[b,h,i,:] = sum_{j visible} sigmoid(scale * Q[b,h,i,:] . K[b,g,j,:] + bias) * V[b,g,j,:]
 *
 * with no normalisation across keys: no row max, no row sum, no rescale of O.
 * Keys contribute independently, so KV tiles — and split-KV partials — simply add.
 * Accumulation is fp32; each tile's P.V is summed from zero and then added to
 * the row (blocked summation: rounding grows with tile length + tile count, not
 * with the row's key count — O is unnormalised, so its size grows with n).
 *
 * Sigmoid, numerically stable (it never forms exp of a positive number):
 *
 *     e = exp(-|z|),   sigmoid(z) = z >= 0 ? 1 / (1 + e) : e / (1 + e)
 *
 * computed in base-2 units like flash: Q is packed pre-multiplied by
 * scale * log2(e), so the tile's scores are z2 = log2(e) * scale * q.k, the bias
 * is added in the same units (b2 = log2(e) * bias) after the dot product, and
 * e = 2^-|z2 + b2| is one vf_exp2 (simd.h: degree-7 polynomial + vscalefps,
 * exact 0 below 2^-200). 1 / (1 + e), with 1 + e in [1, 2], is one correctly
 * rounded vdivps (measured as fast as vrcp14ps + a Newton step here); e / (1 + e)
 * is one masked multiply. NaN in a score stays NaN; -inf gives exactly 0.
 * Unlike softmax there is no row maximum to wait for: on prefill tiles the
 * sigmoid is one pass over the stored scores (flash needs two: max, then exp,
 * plus the rescale of O), on decode tiles it is applied in registers right
 * after the dot products' transpose tree.
 *
 * Masking and NaN safety follow flash.c: KV tiles outside every row's interval
 * are never visited; tiles inside every (valid) row's interval take the
 * unmasked path; on boundary tiles, entries outside a row's interval are
 * replaced (selected, never multiplied) by exactly 0, and P.V runs the block
 * micro-kernel only over keys all live rows of the block see, then row by row
 * over each row's remaining keys, so NaN/Inf stored in K/V a row cannot see
 * never reach that row. A row with no visible key (or kv_len = 0) gives O = 0.
 *
 * precision = bf16: wide tiles take Q.K^T and P.V from the bf16 tiles
 * (attention_bf16.h, flash_bf16.c; the bias is added to the scores in the
 * sigmoid pass), summed blocked as above; decode tiles stay f32.
 *
 * Split-KV: when there are fewer than 16 work items the visible key range of a
 * q tile is cut into `kv_splits` chunks; each chunk writes its partial sum and
 * the partials are added in split order (no LSE). The split count depends on
 * the problem only, never on the thread count: results are bitwise identical
 * for any number of threads.
 *
 * LSE: sigmoid attention has no softmax denominator; when an LSE buffer is
 * given every row's entry is set to 0 (also for rows that see no key).
 *
 * Parameters (attune_sigmoid_params; zeros mean the default):
 *   block_q   query rows per tile, q heads of a kv group stacked (default 64)
 *   block_kv  keys per tile (default 256)
 *   kv_splits KV chunks per tile, summed; 0 = auto (as flash: >= 16 work
 *             items, >= 512 keys per chunk, <= 64 chunks)
 *   threads   OpenMP threads (0 = runtime default)
 *   bias      b, the model's (FlashSigmoid recommends -ln(training length));
 *             must be finite. A NULL params pointer means bias 0.
 *
 * Micro-kernels are flash.c's shapes, written again here without the online
 * softmax: `wide` (>= 16 rows: 6 keys x 4 vectors of rows, broadcasting K) and
 * `narrow` (decode, short q tiles: R <= 4 rows x 16/R keys along the head dim,
 * one transpose-add tree), with K/V prefetched to L2 on the narrow path.
 */
#include "attune_attention.h"
#include "attention_internal.h"
#include "simd.h"
#include "attention_tiles.h"
#include "attention_bf16.h"

#include <math.h>
#include <string.h>

#ifdef _OPENMP
#include <omp.h>
#endif

enum {
    DEFAULT_BLOCK_Q = 64,
    DEFAULT_BLOCK_KV = 256,
    TARGET_ITEMS = 16,     /* work items wanted before splitting KV */
    MIN_SPLIT_KEYS = 512,  /* shorter chunks cost more to combine than they save */
    MAX_SPLITS = 64,
    WIDE_MIN_ROWS = 16,
};

/* ------------------------------------------------------------- sigmoid */

#if defined(__AVX512F__)
/* -|x|: sets the sign bit, so NaN stays NaN. */
ATTUNE_INLINE vf sg_neg_abs(vf x) {
    return _mm512_castsi512_ps(_mm512_or_si512(_mm512_castps_si512(x), _mm512_set1_epi32((int32_t)0x80000000u)));
}
/* sigmoid(z) from z2 = z log2 e. */
ATTUNE_INLINE vf sg_sigmoid2(vf z2) {
    vf e = vf_exp2(sg_neg_abs(z2));           /* exp(-|z|) in [0, 1] */
    vf d = vf_add(vf_set1(1.0f), e);          /* [1, 2] */
    vf r = vf_div(vf_set1(1.0f), d);          /* measured as fast as rcp14 + Newton */
    /* z < 0 or NaN: e r (NaN stays NaN); else r. */
    vmask neg = _mm512_cmp_ps_mask(z2, vf_zero(), _CMP_NGE_UQ);
    return _mm512_mask_mul_ps(r, neg, e, r);
}
#else
ATTUNE_INLINE vf sg_sigmoid2(vf z2) {
    vf out;
    for (int i = 0; i < VL; i++) {
        float z = z2.v[i];
        float e = exp2f(-fabsf(z)), r = 1.0f / (1.0f + e);
        out.v[i] = isnan(z) ? z : z >= 0.0f ? r : e * r;
    }
    return out;
}
#endif

/* ---------------------------------------------------------------- plan */

typedef struct {
    const attune_attention_problem *p;
    const attune_attention_tensors *t;
    int64_t q_offset, group, qtiles, hgroups, base_items;
    int npos, hpt, rows, rp, dvp, bk, splits, wide;
    int bf16;             /* wide tiles in bf16 (attention_bf16.h) */
    attune_bf16_kv kv16;  /* their packed K and V */
    float qscale, bias2;
    float *part_o; /* [base_items][splits][rows][dvp] when splits > 1 */
} plan;

typedef struct {
    float *qt;        /* [qk_dim][rp]  scaled Q, row-minor (wide) */
    float *qr;        /* [rp][qk_dim]  scaled Q, row-major (narrow) */
    float *st;        /* [bk][rp] P^T (wide), or [bk][R] packed (narrow) */
    float *acc;       /* [rp][dvp] */
    int32_t *lo, *hi; /* visible key interval per row; lo == hi: none */
    int32_t *valid;   /* row maps to a real (head, position) */
    uint16_t *qb, *pb; /* bf16 tiles: packed Q, P pairs */
} scratch;


static void resolve(const attune_attention_problem *p, const attune_sigmoid_params *in, attune_sigmoid_params *out,
                    int *npos, int *hpt) {
    attune_sigmoid_params r = in ? *in : (attune_sigmoid_params){0};
    if (r.block_q <= 0) r.block_q = DEFAULT_BLOCK_Q;
    if (r.block_kv <= 0) r.block_kv = DEFAULT_BLOCK_KV;
    int64_t group = p->q_heads / p->kv_heads;
    int64_t np = p->q_len < r.block_q ? p->q_len : r.block_q;
    int64_t h = largest_divisor_at_most(group, r.block_q / np > 0 ? r.block_q / np : 1);
    if (r.kv_splits <= 0) {
        int64_t items = p->batch * p->kv_heads * (group / h) * ((p->q_len + np - 1) / np);
        int64_t s = items >= TARGET_ITEMS ? 1 : (TARGET_ITEMS + items - 1) / items;
        int64_t span = p->window > 0 && p->window < p->kv_len ? p->window + np : p->kv_len;
        int64_t cap = span / MIN_SPLIT_KEYS;
        if (s > cap) s = cap;
        r.kv_splits = s < 1 ? 1 : (int32_t)s;
    }
    if (r.kv_splits > MAX_SPLITS) r.kv_splits = MAX_SPLITS;
    *npos = (int)np;
    *hpt = (int)h;
    *out = r;
}

/* --------------------------------------------------------------- scores */

/* Z^T[kk][c*16..] = S + b (base 2) for RK keys x CV vectors of query rows. */
ATTUNE_INLINE void sigmoid_qk_wide_block(const float *k, int64_t ks, const float *qt, int rp, int dqk, vf b2,
                                 float *st, const int RK, const int CV) {
    vf acc[6][4];
    for (int kk = 0; kk < RK; kk++)
        for (int c = 0; c < CV; c++) acc[kk][c] = vf_zero();
    for (int d = 0; d < dqk; d++) {
        vf q[4];
        for (int c = 0; c < CV; c++) q[c] = vf_load(qt + (int64_t)d * rp + c * VL);
        for (int kk = 0; kk < RK; kk++) {
            vf kb = vf_set1(k[kk * ks + d]);
            for (int c = 0; c < CV; c++) acc[kk][c] = vf_fma(kb, q[c], acc[kk][c]);
        }
    }
    /* The bias is added after the dot product, not pre-filled: the sum then
     * carries the rounding of |q.k|, not of |q.k + b|. */
    for (int kk = 0; kk < RK; kk++)
        for (int c = 0; c < CV; c++) vf_store(st + (int64_t)kk * rp + c * VL, vf_add(acc[kk][c], b2));
}

#define SIGMOID_QK_WIDE_CV(RK)                                                     \
    switch (cv) {                                                          \
    case 4: sigmoid_qk_wide_block(kp, ks, qt, rp, dqk, b2, sp, RK, 4); break;      \
    case 3: sigmoid_qk_wide_block(kp, ks, qt, rp, dqk, b2, sp, RK, 3); break;      \
    case 2: sigmoid_qk_wide_block(kp, ks, qt, rp, dqk, b2, sp, RK, 2); break;      \
    default: sigmoid_qk_wide_block(kp, ks, qt, rp, dqk, b2, sp, RK, 1); break;     \
    }

/* Sigmoid over the tile's scores, one pass from L2. Applying it to the
 * accumulators inside sigmoid_qk_wide_block instead (no extra pass) measured 1.5-2 %
 * slower on prefill: the epilogue sits between the FMA loops of consecutive
 * blocks. On boundary tiles, entries outside a row's interval become exactly
 * 0 (a select, so a NaN score from a masked key disappears). */
static void probs_wide(const plan *pl, const scratch *sc, const float *kbase, int64_t bg, int64_t j0, int n, int full) {
    const int rp = pl->rp, dqk = (int)pl->p->qk_dim;
    const int64_t ks = pl->p->k_stride.row;
    const vf b2 = vf_set1(pl->bias2);
    /* bf16 scores come without the bias: it is added in the sigmoid pass (+0 in f32). */
    const vf b2_late = vf_set1(pl->bf16 ? pl->bias2 : 0.0f);
    if (pl->bf16) attune_bf16_scores(&pl->kv16, sc->qb, sc->st, rp, bg, j0, n);
    for (int c0 = 0; c0 < (pl->bf16 ? 0 : rp / VL); c0 += 4) {
        int cv = rp / VL - c0 < 4 ? rp / VL - c0 : 4;
        const float *qt = sc->qt + c0 * VL;
        for (int jj = 0; jj < n; jj += 6) {
            const float *kp = kbase + (j0 + jj) * ks;
            float *sp = sc->st + (int64_t)jj * rp + c0 * VL;
            switch (n - jj < 6 ? n - jj : 6) {
            case 6: SIGMOID_QK_WIDE_CV(6) break;
            case 5: SIGMOID_QK_WIDE_CV(5) break;
            case 4: SIGMOID_QK_WIDE_CV(4) break;
            case 3: SIGMOID_QK_WIDE_CV(3) break;
            case 2: SIGMOID_QK_WIDE_CV(2) break;
            default: SIGMOID_QK_WIDE_CV(1) break;
            }
        }
    }
    if (full) {
        for (int64_t i = 0; i < (int64_t)n * rp; i += VL) vf_store(sc->st + i, sg_sigmoid2(vf_add(vf_load(sc->st + i), b2_late)));
        return;
    }
    for (int c = 0; c < rp; c += VL) {
        vi lo = vi_load(sc->lo + c), hi = vi_load(sc->hi + c);
        float *col = sc->st + c;
        for (int jj = 0; jj < n; jj++) {
            float *pp = col + (int64_t)jj * rp;
            vf_store(pp, vf_blend(vi_in_range(lo, hi, (int32_t)(j0 + jj)), sg_sigmoid2(vf_add(vf_load(pp), b2_late)), vf_zero()));
        }
    }
}


/* Sigmoid of R rows x KK keys (R * KK == 16), key-major in one vector
 * (lane kk*R + r), stored at st. Dot products run along the head dim and are
 * folded by one transpose tree. With pk != NULL the KK K rows at pk are
 * prefetched along the way. */
ATTUNE_INLINE void sigmoid_qk_narrow_block(const float *q, const float *k, int64_t ks, int dqk, vf b2, float *st,
                                   const float *pk, const int R, const int KK) {
    vf acc[16];
    for (int i = 0; i < 16; i++) acc[i] = vf_zero();
    for (int d0 = 0; d0 < dqk; d0 += VL) {
        if (pk)
            for (int kk = 0; kk < KK; kk++) prefetch_l2(pk + kk * ks + d0);
        vmask m = vm_first(dqk - d0);
        vf kv[16];
        for (int kk = 0; kk < KK; kk++) kv[kk] = vf_load_n(k + kk * ks + d0, m);
        for (int r = 0; r < R; r++) {
            vf qv = vf_load_n(q + (int64_t)r * dqk + d0, m);
            for (int kk = 0; kk < KK; kk++) acc[kk * R + r] = vf_fma(qv, kv[kk], acc[kk * R + r]);
        }
    }
    vf_store(st, sg_sigmoid2(vf_add(vf_transpose_sum16(acc), b2)));
}


/* Narrow probabilities of rows [r0, r0 + R) for keys [j0, j0 + n): P^T with
 * row stride R in st, padded with zeros to a whole vector. */
static void probs_narrow(const plan *pl, const scratch *sc, const float *kbase, int64_t j0, int n,
                         int r0, int R, int prefetch) {
    const int dqk = (int)pl->p->qk_dim, KK = VL / R;
    const int64_t ks = pl->p->k_stride.row, kv_end = pl->p->kv_len;
    const float *q = sc->qr + (int64_t)r0 * dqk;
    const vf b2 = vf_set1(pl->bias2);
    int jj = 0;
    for (; jj + KK <= n; jj += KK) {
        const float *kp = kbase + (j0 + jj) * ks;
        const int64_t ahead = j0 + jj + PREFETCH_KEYS_AHEAD;
        const float *pk = prefetch && ahead + KK <= kv_end ? kbase + ahead * ks : NULL;
        float *sp = sc->st + (int64_t)jj * R;
        if (R == 1) sigmoid_qk_narrow_block(q, kp, ks, dqk, b2, sp, pk, 1, 16);
        else if (R == 2) sigmoid_qk_narrow_block(q, kp, ks, dqk, b2, sp, pk, 2, 8);
        else sigmoid_qk_narrow_block(q, kp, ks, dqk, b2, sp, pk, 4, 4);
    }
    if (jj == n) return;
    /* Tail: raw scores, -inf padding (sigmoid gives exactly 0), one vector. */
    float *tail = sc->st + (int64_t)jj * R;
    for (int t = jj; t < n; t++) qk_narrow_key(q, R, kbase + (j0 + t) * ks, dqk, sc->st + (int64_t)t * R);
    for (int i = n * R; i % VL; i++) sc->st[i] = -INFINITY;
    vf_store(tail, sg_sigmoid2(vf_add(vf_load(tail), b2)));
}

/* Boundary tile, packed narrow layout of rows [r0, r0 + R). */
static void mask_narrow(const scratch *sc, int r0, int R, int64_t j0, int n) {
    const int nv = (n * R + VL - 1) / VL, keys_per_vec = VL / R;
    vi lo = vi_row_spread(sc->lo + r0, R), hi = vi_row_spread(sc->hi + r0, R);
    for (int b = 0; b < nv; b++) {
        float *pp = sc->st + b * VL;
        vmask in = vi_keys_in_range(lo, hi, (int32_t)(j0 + b * keys_per_vec), R);
        vf_store(pp, vf_blend(in, vf_load(pp), vf_zero()));
    }
}

/* ------------------------------------------------------------------- P.V */

/* The shared P.V tile (attention_tiles.h): no normaliser, no rescale; each tile is
 * summed from zero and then added (blocked summation: fp32 rounding grows with tile
 * length plus tile count, not with a row's key count). */
static void pv_tile(const plan *pl, const scratch *sc, const float *pt, int ps, int rb, int re,
                    const float *vbase, int64_t j0, int n, int full, int prefetch) {
    const pv_target t = {sc->acc, pl->dvp, NULL, 1, sc->lo, sc->hi, (int)pl->p->v_dim, pl->p->v_stride.row, pl->p->kv_len};
    pv_accumulate_tile(&t, pt, ps, rb, re, vbase, j0, n, full, prefetch);
}

/* Narrow (decode) tile: R rows at a time, each block scoring and accumulating
 * while its K and V rows are still in cache. */
static void narrow_tile(const plan *pl, const scratch *sc, const float *kbase, const float *vbase,
                        int64_t j0, int n, int full) {
    /* Rows past pl->rows in the last block are zero Q rows, results unused. */
    const int R = pl->rows == 1 ? 1 : pl->rows == 2 ? 2 : 4;
    for (int r0 = 0; r0 < pl->rows; r0 += R) {
        probs_narrow(pl, sc, kbase, j0, n, r0, R, r0 == 0);
        if (!full) mask_narrow(sc, r0, R, j0, n);
        int re = r0 + R < pl->rows ? r0 + R : pl->rows;
        pv_tile(pl, sc, sc->st, R, r0, re, vbase, j0, n, full, r0 == 0);
    }
}

/* ----------------------------------------------------------- work items */

typedef struct {
    int64_t b, g, hg, qt, split, base;
} item;

static item item_of_base(const plan *pl, int64_t base) {
    item x;
    x.base = base;
    x.split = 0;
    x.qt = base % pl->qtiles;
    x.hg = base / pl->qtiles % pl->hgroups;
    x.g = base / pl->qtiles / pl->hgroups % pl->p->kv_heads;
    x.b = base / pl->qtiles / pl->hgroups / pl->p->kv_heads;
    return x;
}

static item decode_item(const plan *pl, int64_t it) {
    /* Last q tiles first: under a causal mask they are the heaviest. */
    int64_t rest = it / pl->splits;
    int64_t qt = pl->qtiles - 1 - rest % pl->qtiles;
    item x = item_of_base(pl, rest / pl->qtiles * pl->qtiles + qt);
    x.split = it % pl->splits;
    return x;
}

static void row_coords(const plan *pl, const item *x, int r, int64_t *head, int64_t *pos) {
    *head = x->g * pl->group + x->hg * pl->hpt + r / pl->npos;
    *pos = x->qt * pl->npos + r % pl->npos;
}

static void run_item(const plan *pl, const scratch *sc, int64_t it) {
    const attune_attention_problem *p = pl->p;
    const attune_attention_tensors *t = pl->t;
    const item x = decode_item(pl, it);
    const int rp = pl->rp, dqk = (int)p->qk_dim, dvp = pl->dvp;

    /* Rows: visible intervals, and the key range the tile must visit. */
    int64_t ulo = INT64_MAX, uhi = INT64_MIN, flo = INT64_MIN, fhi = INT64_MAX;
    for (int r = 0; r < rp; r++) {
        int64_t head = 0, pos = 0, lo = 0, hi = 0;
        int ok = r < pl->rows;
        if (ok) {
            row_coords(pl, &x, r, &head, &pos);
            ok = pos < p->q_len;
        }
        if (ok) attune_visible_range(p, pl->q_offset, pos, &lo, &hi);
        sc->valid[r] = ok;
        sc->lo[r] = (int32_t)lo;
        sc->hi[r] = (int32_t)hi;
        if (ok) {
            if (lo < hi && lo < ulo) ulo = lo;
            if (lo < hi && hi > uhi) uhi = hi;
            if (lo > flo) flo = lo;
            if (hi < fhi) fhi = hi;
        }
    }
    if (ulo > uhi) ulo = uhi = 0;
    int64_t span = uhi - ulo;
    int64_t chunk = (span + pl->splits - 1) / pl->splits;
    chunk = (chunk + pl->bk - 1) / pl->bk * pl->bk;
    int64_t c0 = ulo + x.split * chunk, c1 = c0 + chunk;
    if (c0 > uhi) c0 = uhi;
    if (c1 > uhi) c1 = uhi;

    memset(sc->acc, 0, sizeof(float) * (size_t)rp * dvp);
    if (c0 < c1) {
        const float qscale = pl->qscale;
        for (int r = 0; r < rp; r++) {
            const float *src = NULL;
            if (sc->valid[r]) {
                int64_t head, pos;
                row_coords(pl, &x, r, &head, &pos);
                src = t->q + x.b * p->q_stride.batch + head * p->q_stride.head + pos * p->q_stride.row;
            }
            if (pl->wide)
                for (int d = 0; d < dqk; d++) sc->qt[(int64_t)d * rp + r] = src ? src[d] * qscale : 0.0f;
            else
                for (int d = 0; d < dqk; d++) sc->qr[(int64_t)r * dqk + d] = src ? src[d] * qscale : 0.0f;
        }
        if (pl->bf16) attune_bf16_pack_q(sc->qt, sc->qb, rp, dqk);
        const float *kbase = t->k + x.b * p->k_stride.batch + x.g * p->k_stride.head;
        const float *vbase = t->v + x.b * p->v_stride.batch + x.g * p->v_stride.head;
        for (int64_t j0 = c0; j0 < c1; j0 += pl->bk) {
            int n = (int)(c1 - j0 < pl->bk ? c1 - j0 : pl->bk);
            int full = flo <= j0 && j0 + n <= fhi;
            if (pl->wide) {
                const int64_t bg = x.b * p->kv_heads + x.g;
                probs_wide(pl, sc, kbase, bg, j0, n, full);
                if (pl->bf16) {
                    /* Blocked like the f32 tile (no alpha): summed from zero, then added. */
                    const attune_bf16_tile bt = {sc->st, pl->rp, sc->pb, sc->acc, NULL, sc->lo, sc->hi, 0};
                    attune_bf16_pv_tile(&pl->kv16, &bt, 0, pl->rows, bg, vbase, j0, n, full);
                } else {
                    pv_tile(pl, sc, sc->st, pl->rp, 0, pl->rows, vbase, j0, n, full, 0);
                }
            } else {
                narrow_tile(pl, sc, kbase, vbase, j0, n, full);
            }
        }
    }

    /* Store; rows that see nothing are 0 (their accumulator may hold block
     * products of keys other rows see). */
    const int64_t dv = p->v_dim;
    for (int r = 0; r < pl->rows; r++) {
        if (!sc->valid[r]) continue;
        int empty = sc->lo[r] >= sc->hi[r];
        const float *a = sc->acc + (int64_t)r * dvp;
        int64_t head, pos;
        row_coords(pl, &x, r, &head, &pos);
        float *dst;
        if (pl->splits > 1) {
            dst = pl->part_o + ((x.base * pl->splits + x.split) * pl->rows + r) * dvp;
        } else {
            dst = t->o + x.b * p->o_stride.batch + head * p->o_stride.head + pos * p->o_stride.row;
            if (t->lse) t->lse[x.b * p->lse_stride_batch + head * p->lse_stride_head + pos] = 0.0f;
        }
        for (int64_t d = 0; d < dv; d++) dst[d] = empty ? 0.0f : a[d];
    }
}

/* Adds the splits of one base item into the outputs, in split order. */
static void combine_item(const plan *pl, int64_t base) {
    const attune_attention_problem *p = pl->p;
    const attune_attention_tensors *t = pl->t;
    const item x = item_of_base(pl, base);
    const int64_t dv = p->v_dim, stride = (int64_t)pl->rows * pl->dvp;
    for (int r = 0; r < pl->rows; r++) {
        int64_t head, pos;
        row_coords(pl, &x, r, &head, &pos);
        if (pos >= p->q_len) continue;
        const float *part = pl->part_o + (base * pl->splits * pl->rows + r) * pl->dvp;
        float *dst = t->o + x.b * p->o_stride.batch + head * p->o_stride.head + pos * p->o_stride.row;
        for (int64_t d0 = 0; d0 < dv; d0 += VL) {
            vmask m = vm_first((int)(dv - d0 < VL ? dv - d0 : VL));
            vf s = vf_load(part + d0);
            for (int k = 1; k < pl->splits; k++) s = vf_add(s, vf_load(part + k * stride + d0));
            vf_store_n(dst + d0, s, m);
        }
        if (t->lse) t->lse[x.b * p->lse_stride_batch + head * p->lse_stride_head + pos] = 0.0f;
    }
}

/* ----------------------------------------------------------- entry point */

static void scratch_free(scratch *sc) {
    attune_scratch_free(sc->qt);
    attune_scratch_free(sc->qr);
    attune_scratch_free(sc->st);
    attune_scratch_free(sc->acc);
    attune_scratch_free(sc->lo);
    attune_scratch_free(sc->qb);
    attune_scratch_free(sc->pb);
}

static int scratch_alloc(const plan *pl, scratch *sc) {
    const size_t rp = (size_t)pl->rp, f = sizeof(float);
    memset(sc, 0, sizeof *sc);
    if (pl->wide) sc->qt = attune_scratch_alloc(f * (size_t)pl->p->qk_dim * rp);
    else sc->qr = attune_scratch_alloc(f * (size_t)pl->p->qk_dim * rp);
    sc->st = attune_scratch_alloc(f * (size_t)pl->bk * rp);
    sc->acc = attune_scratch_alloc(f * rp * (size_t)pl->dvp);
    sc->lo = attune_scratch_alloc(sizeof(int32_t) * rp * 3);
    if (pl->bf16) {
        sc->qb = attune_bf16_alloc_q(pl->rp, pl->p->qk_dim);
        sc->pb = attune_bf16_alloc_p(pl->rp, pl->bk);
    }
    if (!(sc->qt || sc->qr) || !sc->st || !sc->acc || !sc->lo || (pl->bf16 && (!sc->qb || !sc->pb))) {
        scratch_free(sc);
        return 0;
    }
    sc->hi = sc->lo + rp;
    sc->valid = sc->lo + 2 * rp;
    return 1;
}

int32_t attune_sigmoid_attention(const attune_attention_problem *p, const attune_attention_tensors *t,
                                 const attune_sigmoid_params *params, attune_status *status) {
    int32_t rc = attune_attention_validate(p, t, status);
    if (rc != ATTUNE_OK) return rc;
    if (params && (params->block_q < 0 || params->block_kv < 0 || params->kv_splits < 0 || params->threads < 0))
        return attune_fail(status, ATTUNE_ERR_INVALID_ARGUMENT, "sigmoid parameters must be non-negative");
    if (params && (params->block_q > 4096 || params->block_kv > 8192))
        return attune_fail(status, ATTUNE_ERR_INVALID_ARGUMENT,
                           "block_q must be <= 4096 and block_kv <= 8192 (got %d, %d)", params->block_q,
                           params->block_kv);
    if (params && (params->precision < ATTUNE_PRECISION_F32 || params->precision > ATTUNE_PRECISION_BF16))
        return attune_fail(status, ATTUNE_ERR_INVALID_ARGUMENT, "unknown precision %d (0 = f32, 1 = bf16)",
                           params->precision);
    const float bias = params ? params->bias : 0.0f;
    if (!isfinite(bias))
        return attune_fail(status, ATTUNE_ERR_INVALID_ARGUMENT, "sigmoid bias must be finite, got %g", (double)bias);

    attune_sigmoid_params r;
    plan pl = {0};
    pl.p = p;
    pl.t = t;
    resolve(p, params, &r, &pl.npos, &pl.hpt);
    pl.q_offset = attune_attention_q_offset(p);
    pl.group = p->q_heads / p->kv_heads;
    pl.rows = pl.npos * pl.hpt;
    pl.rp = (pl.rows + VL - 1) / VL * VL;
    pl.dvp = (int)((p->v_dim + VL - 1) / VL * VL);
    pl.bk = r.block_kv;
    pl.splits = r.kv_splits;
    pl.wide = pl.rows >= WIDE_MIN_ROWS;
    pl.bf16 = pl.wide && r.precision == ATTUNE_PRECISION_BF16;
    pl.kv16 = (attune_bf16_kv){.p = p, .t = t, .q_offset = pl.q_offset, .dvp = pl.dvp};
    pl.qscale = (float)((double)p->scale * 1.4426950408889634);
    pl.bias2 = (float)((double)bias * 1.4426950408889634);
    pl.qtiles = (p->q_len + pl.npos - 1) / pl.npos;
    pl.hgroups = pl.group / pl.hpt;
    pl.base_items = p->batch * p->kv_heads * pl.hgroups * pl.qtiles;

    if (pl.splits > 1) {
        size_t slots = (size_t)pl.base_items * (size_t)pl.splits;
        pl.part_o = attune_scratch_alloc(sizeof(float) * slots * (size_t)pl.rows * (size_t)pl.dvp);
        if (!pl.part_o) return attune_fail(status, ATTUNE_ERR_OUT_OF_MEMORY, "sigmoid: cannot allocate split-KV partials");
    }

    int failed = 0, nth = 1;
    const int64_t n_items = pl.base_items * pl.splits;
    int64_t next_item = 0;
#ifdef _OPENMP
    nth = r.threads > 0 ? r.threads : omp_get_max_threads();
#endif
    const int packed = !pl.bf16 || attune_bf16_prepack(&pl.kv16, nth);
#ifdef _OPENMP
#pragma omp parallel num_threads(nth) reduction(| : failed)
#endif
    {
        scratch sc;
        if (!packed || !scratch_alloc(&pl, &sc)) {
            failed = 1;
        } else {
            /* Dynamic schedule from an atomic counter: `schedule(dynamic)` does
             * not link against Debian's libomp (Docs/BUILDING.md). */
            for (;;) {
                int64_t it = __atomic_fetch_add(&next_item, 1, __ATOMIC_RELAXED);
                if (it >= n_items) break;
                run_item(&pl, &sc, it);
            }
            scratch_free(&sc);
        }
    }
    if (!failed && pl.splits > 1) {
#ifdef _OPENMP
#pragma omp parallel for schedule(static) num_threads(nth)
#endif
        for (int64_t b = 0; b < pl.base_items; b++) combine_item(&pl, b);
    }
    attune_scratch_free(pl.part_o);
    attune_bf16_release(&pl.kv16);
    if (!packed) return attune_fail(status, ATTUNE_ERR_OUT_OF_MEMORY, "sigmoid: cannot allocate the bf16 K/V tiles");
    if (failed) return attune_fail(status, ATTUNE_ERR_OUT_OF_MEMORY, "sigmoid: cannot allocate per-thread scratch");
    return attune_ok(status);
}
