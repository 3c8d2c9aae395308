/*
 * flash.c — tiled online-softmax attention (FlashAttention-2 style), fp32.
 *
 * Work item = (batch, kv head, group of q heads, q tile, kv split). A q tile
 * stacks the q heads that share a kv head (`hpt` heads x `npos` positions =
 * `rows`), so every K/V row is read once per tile; in decode (q_len = 1) the
 * whole GQA group is one tile. Per KV tile of `bk` keys:
 *
 *   S  = (scale*log2 e) Q K^T           scores in base-2 units, key-major S^T[j][r]
 *   m' = max(m, rowmax S);  P = 2^(S - m');  l = 2^(m - m') l + rowsum P
 *   O  = 2^(m - m') O + P V             unnormalised, divided by l once at the end
 *
 * and finally LSE = ln 2 * (m + log2 l). Keeping S key-major lets the softmax
 * run vertically over 16 query rows per vector, and lets P.V broadcast P[r][j]
 * from contiguous memory.
 *
 * Masking: each row has one visible key interval [lo, hi) (causal, window,
 * q_offset; attention_problem.c). KV tiles outside every row's interval are
 * never visited; tiles inside every valid row's interval take the unmasked
 * path; only boundary tiles select -inf and restrict P.V per row, so NaN/Inf
 * stored at masked positions never reach the arithmetic (0 * NaN is NaN).
 *
 * Scores come from one of two micro-kernels: `wide` (rows >= 16) vectorises
 * over query rows and broadcasts K elements; `narrow` (decode, short q tiles)
 * vectorises over the head dim and folds 16 dot products with one transpose
 * tree. Optionally full tiles use OpenBLAS sgemm instead (params.gemm), or
 * (params.precision = bf16) wide tiles use bf16 dot products (flash_bf16.c).
 *
 * The narrow path works on blocks of R <= 4 rows (R = 1 for MHA decode) and
 * keeps their S^T packed with row stride R, so one vector holds 16 / R keys
 * of every row and the softmax spends one exp2 per 16 scores rather than per
 * 16-row column with only R live lanes. It prefetches K and V a few keys
 * ahead of use (see PREFETCH_KEYS_AHEAD): decode is a DRAM stream.
 *
 * K/V stored as bf16 or int8 (p->kv, attune_kv_format): narrow tiles widen
 * them in registers (kv_tiles.c), wide and sgemm tiles first dequantise the
 * tile's block_kv rows into per-thread fp32 buffers (`pack`) and then run
 * the fp32 tile code over them, addressed through a copy of the problem
 * whose K/V row strides are the packed ones.
 *
 * Soft-capping (p->softcap): every path caps its tile of scores right after
 * forming it (cap_scores; the math is attention_softcap.h), before the mask
 * and the softmax step, in base-2 units with the cap scaled by log2 e.
 *
 * Split-KV: when there are too few work items to occupy the threads, the
 * visible key range of each tile is cut into `kv_splits` chunks whose
 * normalised partials are combined by attune_lse_merge_rows. The split count
 * depends on the problem only, never on the thread count, so results are
 * bitwise identical for any number of threads.
 */
#include "attune_attention.h"
#include "attention_internal.h"
#include "simd.h"
#include "attention_tiles.h"
#include "flash_internal.h"
#include "kv_tiles.h"
#include "attention_softcap.h"

#include <cblas.h>
#include <math.h>
#include <string.h>

#ifdef _OPENMP
#include <omp.h>
#endif

/* ---------------------------------------------------------------- params */


static void resolve(const attune_attention_problem *p, const attune_flash_params *in, attune_flash_params *out,
                    int *npos, int *hpt) {
    attune_flash_params r = in ? *in : (attune_flash_params){0};
    if (r.block_q <= 0) r.block_q = DEFAULT_BLOCK_Q;
    if (r.block_kv <= 0) r.block_kv = DEFAULT_BLOCK_KV;
    /* Measured (Docs/PERFORMANCE.md): the AVX-512 micro-kernels beat sgemm
     * on every shape we tried; without AVX-512 the portable fallback is far
     * slower than OpenBLAS, so full tiles go to sgemm there. */
    if (r.gemm == ATTUNE_GEMM_AUTO) r.gemm = attune_kernels_has_avx512() ? ATTUNE_GEMM_NATIVE : ATTUNE_GEMM_BLAS;
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

void attune_flash_resolve_params(const attune_attention_problem *p, const attune_flash_params *in,
                                 attune_flash_params *out) {
    int npos, hpt;
    resolve(p, in, out, &npos, &hpt);
}

/* --------------------------------------------------------------- scores */



/* The logit soft-cap on `count` freshly formed scores at st (attention_softcap.h). */
static inline void cap_scores(const plan *pl, float *st, int64_t count) {
    if (pl->softcap > 0) attune_softcap_scores(st, count, pl->softcap);
}

/* Narrow scores of rows [r0, r0 + R) for keys [j0, j0 + n): S^T with row
 * stride R in st, padded with -inf to a whole vector. */
static void scores_narrow(const plan *pl, const scratch *sc, const float *kbase, int64_t j0, int n,
                          int r0, int R, int prefetch) {
    const int dqk = (int)pl->p->qk_dim, KK = VL / R;
    const int64_t ks = pl->p->k_stride.row, kv_end = pl->p->kv_len;
    const float *q = sc->qr + (int64_t)r0 * dqk;
    int jj = 0;
    for (; jj + KK <= n; jj += KK) {
        const float *kp = kbase + (j0 + jj) * ks;
        const int64_t ahead = j0 + jj + PREFETCH_KEYS_AHEAD;
        const float *pk = prefetch && ahead + KK <= kv_end ? kbase + ahead * ks : NULL;
        float *sp = sc->st + (int64_t)jj * R;
        if (R == 1) qk_narrow_block(q, kp, ks, dqk, sp, pk, 1, 16);
        else if (R == 2) qk_narrow_block(q, kp, ks, dqk, sp, pk, 2, 8);
        else qk_narrow_block(q, kp, ks, dqk, sp, pk, 4, 4);
    }
    if (jj == n) return;
    for (; jj < n; jj++) qk_narrow_key(q, R, kbase + (j0 + jj) * ks, dqk, sc->st + (int64_t)jj * R);
    for (int i = n * R; i % VL; i++) sc->st[i] = -INFINITY;
}

static void scores_blas(const plan *pl, const scratch *sc, const float *kbase, int64_t j0, int n) {
    const attune_attention_problem *p = pl->p;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, pl->rows, (int)p->qk_dim, 1.0f,
                kbase + j0 * p->k_stride.row, (int)p->k_stride.row, sc->qr, (int)p->qk_dim, 0.0f,
                sc->st, pl->rp);
}

/* -------------------------------------------------------------- softmax */

/* The same step for rows [r0, r0 + R) of the narrow path (attention_tiles.h). */
static void softmax_packed(const scratch *sc, int r0, int R, int64_t j0, int n, int full) {
    softmax_packed_step(sc->st, sc->m, sc->l, sc->alpha, sc->lo, sc->hi, r0, R, j0, n, full);
}

/* ------------------------------------------------------------------- P.V */

/* Full tiles on the sgemm backend: acc = alpha acc + P V for all rows. */
static void pv_blas(const plan *pl, const scratch *sc, const float *vbase, int64_t j0, int n) {
    const float *vtile = vbase + j0 * pl->p->v_stride.row;
    for (int r = 0; r < pl->rows; r++) {
        float a = sc->alpha[r];
        float *row = sc->acc + (int64_t)r * pl->dvp;
        for (int d = 0; d < pl->p->v_dim; d++) row[d] *= a;
    }
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, pl->rows, (int)pl->p->v_dim, n, 1.0f,
                sc->st, pl->rp, vtile, (int)pl->p->v_stride.row, 1.0f, sc->acc, pl->dvp);
}

/* Narrow (decode) tile: R rows at a time, each block scoring, normalising
 * and accumulating while its K and V rows are still in cache. */
static void narrow_tile(const plan *pl, const scratch *sc, const float *kbase, const float *vbase,
                        int64_t j0, int n, int full) {
    /* Rows past pl->rows in the last block are zero Q rows, results unused. */
    const int R = pl->rows == 1 ? 1 : pl->rows == 2 ? 2 : 4;
    for (int r0 = 0; r0 < pl->rows; r0 += R) {
        scores_narrow(pl, sc, kbase, j0, n, r0, R, r0 == 0);
        cap_scores(pl, sc->st, (int64_t)n * R);
        softmax_packed(sc, r0, R, j0, n, full);
        int re = r0 + R < pl->rows ? r0 + R : pl->rows;
        attune_flash_pv_tile(pl, sc, sc->st, R, r0, re, vbase, j0, n, full, r0 == 0);
    }
}

/* Narrow tile over bf16/int8 K/V: as narrow_tile, the widening done in registers. */
static void narrow_tile_kv(const plan *pl, const scratch *sc, const kv_head *kh, int64_t j0, int n, int full) {
    const int R = pl->rows == 1 ? 1 : pl->rows == 2 ? 2 : 4;
    const pv_target target = {sc->acc, pl->dvp, sc->alpha, 0, sc->lo, sc->hi, (int)pl->p->v_dim, 0, 0, 0, NULL, 0};
    for (int r0 = 0; r0 < pl->rows; r0 += R) {
        attune_kv_scores_narrow(kh, sc->qr + (int64_t)r0 * pl->p->qk_dim, R, j0, n, r0 == 0, -INFINITY, sc->st);
        cap_scores(pl, sc->st, (int64_t)n * R);
        softmax_packed(sc, r0, R, j0, n, full);
        int re = r0 + R < pl->rows ? r0 + R : pl->rows;
        attune_kv_pv_tile(kh, &target, sc->st, R, r0, re, j0, n, full, r0 == 0);
    }
}

/* ----------------------------------------------------------- work items */

typedef struct {
    int64_t b, g, hg, qt, split, base;
} item;

static item decode_item(const plan *pl, int64_t it) {
    item x;
    x.split = it % pl->splits;
    int64_t rest = it / pl->splits;
    /* Last q tiles first: under a causal mask they are the heaviest. */
    x.qt = pl->qtiles - 1 - rest % pl->qtiles;
    rest /= pl->qtiles;
    x.hg = rest % pl->hgroups;
    rest /= pl->hgroups;
    x.g = rest % pl->p->kv_heads;
    x.b = rest / pl->p->kv_heads;
    x.base = ((x.b * pl->p->kv_heads + x.g) * pl->hgroups + x.hg) * pl->qtiles + x.qt;
    return x;
}

static void row_coords(const plan *pl, const item *x, int r, int64_t *head, int64_t *pos) {
    *head = x->g * pl->group + x->hg * pl->hpt + r / pl->npos;
    *pos = x->qt * pl->npos + r % pl->npos;
}

/* `packed`: pl with the problem's K/V as dequantised tiles (rows of qk_dim and v_dim
 * floats), for the wide and sgemm paths over bf16/int8 K/V; `pack` its per-thread
 * buffers: block_kv rows of K, then block_kv rows of V. */
static void run_item(const plan *pl, const plan *packed, float *pack, const scratch *sc, int64_t it) {
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
        sc->m[r] = -INFINITY;
        sc->l[r] = 0.0f;
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
            if (!pl->wide || pl->use_blas)
                for (int d = 0; d < dqk; d++) sc->qr[(int64_t)r * dqk + d] = src ? src[d] * qscale : 0.0f;
        }
        if (pl->bf16) attune_bf16_pack_q(sc->qt, sc->qb, rp, dqk);
        const int quantised = p->kv.format != ATTUNE_KV_F32;
        kv_head kh;
        if (quantised) attune_kv_head(p, t, x.b, x.g, &kh);
        const float *kbase = quantised ? NULL : t->k + x.b * p->k_stride.batch + x.g * p->k_stride.head;
        const float *vbase = quantised ? NULL : t->v + x.b * p->v_stride.batch + x.g * p->v_stride.head;
        for (int64_t j0 = c0; j0 < c1; j0 += pl->bk) {
            int n = (int)(c1 - j0 < pl->bk ? c1 - j0 : pl->bk);
            int full = flo <= j0 && j0 + n <= fhi;
            if (pl->bf16) {
                /* f32 K/V only (checked at entry): packed to bf16 once per call. */
                const int64_t bg = x.b * p->kv_heads + x.g;
                attune_bf16_scores(&pl->kv16, sc->qb, sc->st, rp, bg, j0, n);
                cap_scores(pl, sc->st, (int64_t)n * rp);
                /* Finite V (the rule): P goes straight to bf16 pairs. Else the row-exact P.V needs P in st. */
                const int vfinite = !pl->kv16.vbad[bg];
                if (vfinite) attune_bf16_softmax_tile(sc->st, rp, sc->pb, sc->m, sc->l, sc->alpha, sc->lo, sc->hi, j0, n, full);
                else flash_softmax_tile(pl, sc, j0, n, full, 0.0f, NULL, NULL, 0);
                flash_bf16_pv_tile(pl, sc, 0, pl->rows, bg, vbase, j0, n, full, vfinite);
                continue;
            }
            if (quantised && !pl->wide && !(full && pl->use_blas)) {
                narrow_tile_kv(pl, sc, &kh, j0, n, full);
                continue;
            }
            const plan *tp = pl;
            if (quantised) {
                /* K at key j0 is pack row 0 (so the K tile's j0 is 0 below), V's base shifted. */
                float *vpack = pack + (int64_t)pl->bk * dqk;
                attune_kv_unpack(&kh, 0, j0, n, pack);
                attune_kv_unpack(&kh, 1, j0, n, vpack);
                tp = packed;
                kbase = kv_tile_base(pack, j0, dqk);
                vbase = kv_tile_base(vpack, j0, p->v_dim);
            }
            if (full && pl->use_blas) {
                scores_blas(tp, sc, kbase, j0, n);
                cap_scores(pl, sc->st, (int64_t)n * rp);
                flash_softmax_tile(tp, sc, j0, n, full, 0.0f, NULL, NULL, 0);
                pv_blas(tp, sc, vbase, j0, n);
            } else if (pl->wide) {
                attune_flash_scores_wide(tp, sc, kbase, j0, n);
                cap_scores(pl, sc->st, (int64_t)n * rp);
                flash_softmax_tile(tp, sc, j0, n, full, 0.0f, NULL, NULL, 0);
                attune_flash_pv_tile(tp, sc, sc->st, pl->rp, 0, pl->rows, vbase, j0, n, full, 0);
            } else {
                narrow_tile(pl, sc, kbase, vbase, j0, n, full);
            }
        }
    }

    /* Normalise; rows that saw nothing are 0 with LSE -inf. */
    for (int r = 0; r < pl->rows; r++) {
        if (!sc->valid[r]) continue;
        float *dst, *lse_dst;
        if (pl->splits > 1) {
            int64_t slot = x.base * pl->splits + x.split;
            dst = pl->part_o + (slot * pl->rows + r) * dvp;
            lse_dst = pl->part_lse + slot * pl->rows + r;
        } else {
            int64_t head, pos;
            row_coords(pl, &x, r, &head, &pos);
            dst = t->o + x.b * p->o_stride.batch + head * p->o_stride.head + pos * p->o_stride.row;
            lse_dst = t->lse ? t->lse + x.b * p->lse_stride_batch + head * p->lse_stride_head + pos : NULL;
        }
        flash_finish_row(sc->acc + (int64_t)r * dvp, sc->m[r], sc->l[r], p->v_dim, dst, lse_dst);
    }
}

/* Combines the splits of one base item into the outputs, head by head. */
static void merge_item(const plan *pl, int64_t base) {
    const attune_attention_problem *p = pl->p;
    item x;
    x.base = base;
    x.split = 0;
    x.qt = base % pl->qtiles;
    x.hg = base / pl->qtiles % pl->hgroups;
    x.g = base / pl->qtiles / pl->hgroups % p->kv_heads;
    x.b = base / pl->qtiles / pl->hgroups / p->kv_heads;
    const float *parts[MAX_SPLITS], *lses[MAX_SPLITS];
    int64_t strides[MAX_SPLITS];
    for (int hh = 0; hh < pl->hpt; hh++) {
        int64_t head, pos0;
        row_coords(pl, &x, hh * pl->npos, &head, &pos0);
        int64_t n = p->q_len - pos0 < pl->npos ? p->q_len - pos0 : pl->npos;
        for (int s = 0; s < pl->splits; s++) {
            int64_t slot = base * pl->splits + s;
            parts[s] = pl->part_o + (slot * pl->rows + hh * pl->npos) * pl->dvp;
            lses[s] = pl->part_lse + slot * pl->rows + hh * pl->npos;
            strides[s] = pl->dvp;
        }
        float *o = pl->t->o + x.b * p->o_stride.batch + head * p->o_stride.head + pos0 * p->o_stride.row;
        float *lse = pl->t->lse ? pl->t->lse + x.b * p->lse_stride_batch + head * p->lse_stride_head + pos0 : NULL;
        attune_lse_merge_rows(pl->splits, n, p->v_dim, parts, strides, lses, o, p->o_stride.row, lse);
    }
}

/* ----------------------------------------------------------- entry point */

static void scratch_free(scratch *sc) {
    attune_scratch_free(sc->qt);
    attune_scratch_free(sc->qr);
    attune_scratch_free(sc->st);
    attune_scratch_free(sc->acc);
    attune_scratch_free(sc->m);
    attune_scratch_free(sc->lo);
    attune_scratch_free(sc->qb);
    attune_scratch_free(sc->pb);
}

static int scratch_alloc(const plan *pl, scratch *sc) {
    const size_t rp = (size_t)pl->rp, f = sizeof(float);
    memset(sc, 0, sizeof *sc);
    sc->qt = attune_scratch_alloc(f * (size_t)pl->p->qk_dim * rp);
    sc->qr = attune_scratch_alloc(f * (size_t)pl->p->qk_dim * rp);
    sc->st = attune_scratch_alloc(f * (size_t)pl->bk * rp);
    sc->acc = attune_scratch_alloc(f * rp * (size_t)pl->dvp);
    sc->m = attune_scratch_alloc(f * rp * 3);
    sc->lo = attune_scratch_alloc(sizeof(int32_t) * rp * 3);
    if (!sc->qt || !sc->qr || !sc->st || !sc->acc || !sc->m || !sc->lo || (pl->bf16 && (!(sc->qb = attune_bf16_alloc_q(pl->rp, pl->p->qk_dim)) || !(sc->pb = attune_bf16_alloc_p(pl->rp, pl->bk))))) {
        scratch_free(sc);
        return 0;
    }
    sc->l = sc->m + rp;
    sc->alpha = sc->m + 2 * rp;
    sc->hi = sc->lo + rp;
    sc->valid = sc->lo + 2 * rp;
    return 1;
}

int32_t attune_flash_attention(const attune_attention_problem *p, const attune_attention_tensors *t,
                               const attune_flash_params *params, attune_status *status) {
    int32_t rc = attune_attention_validate_kv(p, t, ATTUNE_KV_ALL_FORMATS | ATTUNE_ACCEPTS_SOFTCAP, "flash", status);
    if (rc != ATTUNE_OK) return rc;
    if (params && (params->block_q < 0 || params->block_kv < 0 || params->kv_splits < 0 || params->threads < 0))
        return attune_fail(status, ATTUNE_ERR_INVALID_ARGUMENT, "flash parameters must be non-negative");
    if (params && (params->gemm < ATTUNE_GEMM_AUTO || params->gemm > ATTUNE_GEMM_BLAS))
        return attune_fail(status, ATTUNE_ERR_INVALID_ARGUMENT, "unknown gemm backend %d", params->gemm);
    if (params && (params->precision < ATTUNE_PRECISION_F32 || params->precision > ATTUNE_PRECISION_BF16))
        return attune_fail(status, ATTUNE_ERR_INVALID_ARGUMENT, "unknown precision %d (0 = f32, 1 = bf16)",
                           params->precision);
    /* bf16 tiles pack f32 K/V themselves; reading a bf16/int8 cache directly is not done yet. */
    if (params && params->precision == ATTUNE_PRECISION_BF16 && p->kv.format != ATTUNE_KV_F32)
        return attune_fail(status, ATTUNE_ERR_UNSUPPORTED, "flash: precision=bf16 reads f32 K/V only (this K/V is %s)",
                           p->kv.format == ATTUNE_KV_BF16 ? "bf16" : "int8");
    if (params && (params->block_q > 4096 || params->block_kv > 8192))
        return attune_fail(status, ATTUNE_ERR_INVALID_ARGUMENT,
                           "block_q must be <= 4096 and block_kv <= 8192 (got %d, %d)", params->block_q,
                           params->block_kv);

    attune_flash_params r;
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
    /* sgemm needs leading dimensions >= the row length. */
    pl.use_blas = r.gemm == ATTUNE_GEMM_BLAS && p->k_stride.row >= p->qk_dim && p->v_stride.row >= p->v_dim;
    pl.qscale = (float)((double)p->scale * 1.4426950408889634);
    pl.softcap = (float)((double)p->softcap * 1.4426950408889634);
    pl.qtiles = (p->q_len + pl.npos - 1) / pl.npos;
    pl.hgroups = pl.group / pl.hpt;
    pl.base_items = p->batch * p->kv_heads * pl.hgroups * pl.qtiles;

    /* bf16/int8 K/V on the wide or sgemm path: the fp32 tile code reads packed tiles. */
    attune_attention_problem packed_problem = *p;
    packed_problem.k_stride.row = p->qk_dim;
    packed_problem.v_stride.row = p->v_dim;
    packed_problem.kv.format = ATTUNE_KV_F32;
    plan packed = pl;
    packed.p = &packed_problem;
    const int packs = p->kv.format != ATTUNE_KV_F32 && (pl.wide || pl.use_blas);

    if (pl.splits > 1) {
        size_t slots = (size_t)pl.base_items * (size_t)pl.splits;
        pl.part_o = attune_scratch_alloc(sizeof(float) * slots * (size_t)pl.rows * (size_t)pl.dvp);
        pl.part_lse = attune_scratch_alloc(sizeof(float) * slots * (size_t)pl.rows);
        if (!pl.part_o || !pl.part_lse) {
            attune_scratch_free(pl.part_o);
            attune_scratch_free(pl.part_lse);
            return attune_fail(status, ATTUNE_ERR_OUT_OF_MEMORY, "flash: cannot allocate split-KV partials");
        }
    }

    int saved_blas_threads = 0;
    if (pl.use_blas) {
        /* Each OpenMP thread calls sgemm on its own tile: keep OpenBLAS
         * from spawning threads of its own inside ours. */
        saved_blas_threads = openblas_get_num_threads();
        openblas_set_num_threads(1);
    }
    int failed = 0;
    const int64_t n_items = pl.base_items * pl.splits;
    int64_t next_item = 0;
    int nth = 1;
#ifdef _OPENMP
    nth = r.threads > 0 ? r.threads : omp_get_max_threads();
#endif
    const int prepacked = !pl.bf16 || attune_bf16_prepack(&pl.kv16, nth);
#ifdef _OPENMP
#pragma omp parallel num_threads(nth) reduction(| : failed)
#endif
    {
        scratch sc;
        float *pack = packs ? attune_scratch_alloc(sizeof(float) * (size_t)pl.bk * (size_t)(p->qk_dim + p->v_dim)) : NULL;
        const int have_scratch = prepacked && scratch_alloc(&pl, &sc);
        if (!have_scratch || (packs && !pack)) {
            if (have_scratch) scratch_free(&sc);
            failed = 1;
        } else {
            /* Dynamic schedule by hand: clang's `schedule(dynamic)` emits
             * runtime calls newer than Debian's libomp provides. */
            for (;;) {
                int64_t it = __atomic_fetch_add(&next_item, 1, __ATOMIC_RELAXED);
                if (it >= n_items) break;
                run_item(&pl, &packed, pack, &sc, it);
            }
            scratch_free(&sc);
        }
        attune_scratch_free(pack);
    }
    if (!failed && pl.splits > 1) {
#ifdef _OPENMP
#pragma omp parallel for schedule(static) num_threads(nth)
#endif
        for (int64_t b = 0; b < pl.base_items; b++) merge_item(&pl, b);
    }
    if (pl.use_blas) openblas_set_num_threads(saved_blas_threads);
    attune_bf16_release(&pl.kv16);
    attune_scratch_free(pl.part_o);
    attune_scratch_free(pl.part_lse);
    if (!prepacked) return attune_fail(status, ATTUNE_ERR_OUT_OF_MEMORY, "flash: cannot allocate the bf16 K/V tiles");
    if (failed) return attune_fail(status, ATTUNE_ERR_OUT_OF_MEMORY, "flash: cannot allocate per-thread scratch");
    return attune_ok(status);
}
