/*
 * hybrid.c — attention over the two-tier KV cache of hybrid_kv.c (HGCA-style,
 * ALGORITHMS.md §6), fp32 accumulation.
 *
 *   hot:   attune_flash_attention on the hot rows in place (row stride dk, in
 *          the tier's format: f32, or bf16 / int8 dequantised in registers),
 *          positions shifted by cold_len → (O_hot, LSE_hot), exact over the
 *          stored values;
 *   cold:  per kv head g, the rows of the q heads sharing g are stacked
 *          (G heads x q_len rows, as flash does in decode). Each visible cold
 *          block b gets the score
 *              u_b = max over rows r that see b of  sum_d max(q_rd min_bd, q_rd max_bd)
 *          an upper bound on q_r·k for every stored key of the block (Quest's
 *          rule; min/max over the block's stored keys per dim). The top
 *          n_sel = ceil(budget · blocks) blocks (ties: lower index) are attended
 *          exactly, online softmax over blocks, stored values dequantised in
 *          registers (int8: the K scale folds into the query once per block,
 *          the V scale into the probability) → (O_cold, LSE_cold), split into
 *          `chunks` parts per head for parallelism;
 *   merge: attune_lse_merge_rows over hot + cold parts; empty parts (LSE −inf)
 *          are skipped, so an empty tier merges correctly.
 *
 * Threads: one parallel region. Phase 1 scores and selects per kv head (work
 * items from an atomic counter); phase 2 hands out the hot pass first (flash
 * with one thread) and then the cold chunks, so on 2 cores one thread runs the
 * hot tier while the other streams cold blocks, and both finish on cold
 * blocks; phase 3 merges per q head. params.schedule = 1 runs flash with all
 * threads first instead (measured in Docs/KERNELS.md).
 *
 * Masking: cold key j is visible to row i iff !causal || j <= q_offset + i, a
 * prefix [0, hi_i) of the cold tier; blocks no row sees are never scored or
 * read; in a block some row sees only partly, that row's masked scores are
 * replaced by −inf and its P·V stops at hi_i, so NaN/Inf stored at masked
 * keys never reach its arithmetic (as in flash).
 */
#include "attune_attention.h"
#include "attention_internal.h"
#include "hybrid_internal.h"
#include "simd.h"
#include "attention_tiles.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#ifdef _OPENMP
#include <omp.h>
#endif

enum { TARGET_COLD_ITEMS = 16, MIN_CHUNK_KEYS = 512, MAX_CHUNKS = 32 };

/* ------------------------------------------------------- dequantising loads */

/* 16 (masked) elements of a stored row as fp32; DT is a compile-time constant. */
ATTUNE_INLINE vf ld(const uint8_t *row, int64_t e, vmask m, const int DT) {
#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VL__)
    if (DT == ATTUNE_HYBRID_COLD_BF16) {
        __m256i x = _mm256_maskz_loadu_epi16(m, (const uint16_t *)row + e);
        return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(x), 16));
    }
    if (DT == ATTUNE_HYBRID_COLD_INT8) {
        __m128i x = _mm_maskz_loadu_epi8(m, (const int8_t *)row + e);
        return _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(x));
    }
    return vf_load_n((const float *)row + e, m);
#else
    float tmp[VL];
    for (int i = 0; i < VL; i++) {
        if (!((m >> i) & 1u)) {
            tmp[i] = 0.0f;
        } else if (DT == ATTUNE_HYBRID_COLD_BF16) {
            uint32_t u = (uint32_t)((const uint16_t *)row)[e + i] << 16;
            memcpy(&tmp[i], &u, 4);
        } else if (DT == ATTUNE_HYBRID_COLD_INT8) {
            tmp[i] = (float)((const int8_t *)row)[e + i];
        } else {
            tmp[i] = ((const float *)row)[e + i];
        }
    }
    return vf_load(tmp);
#endif
}

/* ---------------------------------------------------------------- plan */

typedef struct {
    struct attune_hybrid_kv *c;
    int64_t Hq, Lq, G, R, Rp, dvp, nb_vis, nsel, nch, per_chunk;
    int64_t cold_len, hot_len, q_offset;
    int causal;
    float scale;
    double budget;
    const float *q;
    int64_t qhs, qrs;
    float *o, *lse;
    int64_t ohs, ors;
    float *qs;        /* [Hkv][Rp][dk] scaled (scale · log2 e) stacked queries; pad rows 0 */
    int32_t *hi;      /* [Rp] visible cold keys [0, hi) per stacked row (same for every head) */
    int32_t *sel;     /* [Hkv][nb_vis] selected blocks, ascending, first nsel used */
    float *o_hot, *lse_hot; /* [Hq][Lq][dv], [Hq][Lq] */
    float *part_o, *part_lse; /* [Hkv][nch][Rp][dvp], [Hkv][nch][Rp] */
    attune_flash_params hot;
} plan;

typedef struct {
    float *st;    /* [block * 4] packed scores of one row group */
    float *qb;    /* [4][dk] queries times the block's K scales (int8) */
    float *m, *l, *alpha; /* [Rp] */
    int32_t *lo;  /* [Rp] zeros */
    struct { float s; int32_t b; } *score; /* [nb_vis] */
} scratch;

/* ---------------------------------------------------------- selection */

static int by_score_desc(const void *a, const void *b) {
    const struct { float s; int32_t b; } *x = a, *y = b;
    if (x->s > y->s) return -1;
    if (x->s < y->s) return 1;
    return (x->b > y->b) - (x->b < y->b);
}

static int by_int_asc(const void *a, const void *b) {
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    return (x > y) - (x < y);
}

static void select_head(const plan *pl, scratch *sc, int64_t g) {
    int32_t *sel = pl->sel + g * pl->nb_vis;
    if (pl->nsel >= pl->nb_vis) {
        for (int64_t b = 0; b < pl->nb_vis; b++) sel[b] = (int32_t)b;
        return;
    }
    const struct attune_hybrid_kv *c = pl->c;
    const int dk = (int)c->dk;
    const float *qs = pl->qs + g * pl->Rp * dk;
    for (int64_t b = 0; b < pl->nb_vis; b++) {
        const float *mn = attune_hybrid_summary(c, b, g), *mx = mn + dk;
        const int64_t k0 = b * c->block;
        float best = -INFINITY;
        for (int64_t r = 0; r < pl->R; r++) {
            if (pl->hi[r] <= k0) continue;
            const float *qr = qs + r * dk;
            vf acc = vf_zero();
            for (int d0 = 0; d0 < dk; d0 += VL) {
                vmask m = vm_first(dk - d0);
                vf qv = vf_load_n(qr + d0, m);
                acc = vf_add(acc, vf_max(vf_mul(qv, vf_load_n(mn + d0, m)), vf_mul(qv, vf_load_n(mx + d0, m))));
            }
            float u = vf_hsum(acc);
            if (isnan(u)) u = INFINITY; /* non-finite summaries: always worth a look */
            if (u > best) best = u;
        }
        sc->score[b].s = best;
        sc->score[b].b = (int32_t)b;
    }
    qsort(sc->score, (size_t)pl->nb_vis, sizeof sc->score[0], by_score_desc);
    for (int64_t i = 0; i < pl->nsel; i++) sel[i] = sc->score[i].b;
    qsort(sel, (size_t)pl->nsel, sizeof(int32_t), by_int_asc);
}

/* ------------------------------------------------------ cold attention */

/* S^T of R rows x 16/R keys per vector, packed st[key * R + r] (as flash's narrow path). */
ATTUNE_INLINE void qk_block(const float *q, const uint8_t *k, size_t krow, int dk, float *st, const int R,
                            const int DT) {
    const int KK = VL / R;
    vf acc[16];
    for (int i = 0; i < 16; i++) acc[i] = vf_zero();
    for (int d0 = 0; d0 < dk; d0 += VL) {
        vmask m = vm_first(dk - d0);
        vf kv[16];
        for (int kk = 0; kk < KK; kk++) kv[kk] = ld(k + kk * krow, d0, m, DT);
        for (int r = 0; r < R; r++) {
            vf qv = vf_load_n(q + (int64_t)r * dk + d0, m);
            for (int kk = 0; kk < KK; kk++) acc[kk * R + r] = vf_fma(qv, kv[kk], acc[kk * R + r]);
        }
    }
    vf_store(st, vf_transpose_sum16(acc));
}

ATTUNE_INLINE void scores_block(const float *q, const uint8_t *k, size_t krow, int dk, int nkeys, float *st,
                                const int R, const int DT) {
    const int KK = VL / R;
    for (int j = 0; j < nkeys; j += KK) qk_block(q, k + (size_t)j * krow, krow, dk, st + j * R, R, DT);
}

/* Online-softmax step for rows [r0, r0 + R) of the packed scores (nkeys a
 * multiple of 16 / R): flash's narrow step, shared (attention_tiles.h). */
static void softmax_block(scratch *sc, const int32_t *hi, int r0, int R, int32_t k0, int nkeys, int full) {
    softmax_packed_step(sc->st, sc->m, sc->l, sc->alpha, sc->lo, hi, r0, R, k0, nkeys, full);
}

/* acc[r] += sum_{j in [jb, je)} p[j * R + ro + r] (· vs[j]) V_j for RR rows, all of dv. */
ATTUNE_INLINE void pv_rows(float *acc, int dvp, const float *st, int R, int ro, const uint8_t *v, size_t vrow,
                           const float *vs, int dv, int jb, int je, const int RR, const int DT) {
    for (int d0 = 0; d0 < dv; d0 += 4 * VL) {
        int cv = (dv - d0 + VL - 1) / VL;
        if (cv > 4) cv = 4;
        vf a[4][4];
        for (int r = 0; r < RR; r++)
            for (int c = 0; c < 4; c++) a[r][c] = c < cv ? vf_load(acc + (int64_t)r * dvp + d0 + c * VL) : vf_zero();
        for (int j = jb; j < je; j++) {
            vf x[4];
            for (int c = 0; c < 4; c++)
                if (c < cv) x[c] = ld(v + (size_t)j * vrow, d0 + c * VL, vm_first(dv - d0 - c * VL), DT);
            for (int r = 0; r < RR; r++) {
                float p = st[j * R + ro + r];
                if (DT == ATTUNE_HYBRID_COLD_INT8) p *= vs[j];
                vf pb = vf_set1(p);
                for (int c = 0; c < 4; c++)
                    if (c < cv) a[r][c] = vf_fma(pb, x[c], a[r][c]);
            }
        }
        for (int r = 0; r < RR; r++)
            for (int c = 0; c < 4; c++)
                if (c < cv) vf_store(acc + (int64_t)r * dvp + d0 + c * VL, a[r][c]);
    }
}

/* One row group [r0, r0 + R) of rows R (1, 2 or 4) over block b of head g. */
ATTUNE_INLINE void group_block(const plan *pl, scratch *sc, float *acc, int64_t g, int64_t b, int r0, const int R,
                               const int DT) {
    const struct attune_hybrid_kv *c = pl->c;
    const int dk = (int)c->dk, dv = (int)c->dv, B = c->block, dvp = (int)pl->dvp;
    const uint8_t *rec = attune_hybrid_cold_record(c, b, g);
    const int32_t k0 = (int32_t)(b * B);
    const float *q = pl->qs + (g * pl->Rp + r0) * dk;
    if (DT == ATTUNE_HYBRID_COLD_INT8) {
        const float *ks = (const float *)(rec + c->ks_off);
        for (int r = 0; r < R; r++)
            for (int d = 0; d < dk; d++) sc->qb[r * dk + d] = q[(int64_t)r * dk + d] * ks[d];
        q = sc->qb;
    }
    /* Keys all rows of the group see: [k0, k0 + common). */
    int common = B, any = 0;
    for (int r = r0; r < r0 + R; r++) {
        int e = pl->hi[r] - k0;
        if (e > B) e = B;
        if (e < 0) e = 0;
        if (e < common) common = e;
        if (e > 0) any = 1;
    }
    if (!any) return;
    scores_block(q, rec + c->k_off, (size_t)dk * c->elem_bytes, dk, B, sc->st, R, DT);
    softmax_block(sc, pl->hi, r0, R, k0, B, common == B);
    for (int r = 0; r < R; r++) {
        float a = sc->alpha[r0 + r];
        float *row = acc + (int64_t)(r0 + r) * dvp;
        if (a != 1.0f)
            for (int d = 0; d < dvp; d++) row[d] *= a;
    }
    const uint8_t *v = rec + c->v_off;
    const size_t vrow = (size_t)dv * c->elem_bytes;
    const float *vs = (const float *)(rec + c->vs_off);
    float *acc0 = acc + (int64_t)r0 * dvp;
    pv_rows(acc0, dvp, sc->st, R, 0, v, vrow, vs, dv, 0, common, R, DT);
    if (common < B)
        for (int r = 0; r < R; r++) {
            int e = pl->hi[r0 + r] - k0;
            if (e > B) e = B;
            if (e > common) pv_rows(acc0 + (int64_t)r * dvp, dvp, sc->st, R, r, v, vrow, vs, dv, common, e, 1, DT);
        }
}

/* Selected blocks are not contiguous (records of other heads and unselected
 * blocks lie between them), which stops the hardware prefetcher at every
 * record: the next block's record is requested to L2 before this one is
 * worked on, one line per 64 bytes (as flash prefetches its next keys). */
static inline void prefetch_record(const uint8_t *rec, size_t bytes) {
    for (size_t off = 0; off < bytes; off += 64) __builtin_prefetch(rec + off, 0, 2);
}

ATTUNE_INLINE void cold_blocks(const plan *pl, scratch *sc, float *acc, int64_t g, const int32_t *blocks,
                               int64_t n, const int DT) {
    const int Rg = pl->R == 1 ? 1 : pl->R == 2 ? 2 : 4;
    const size_t rec_bytes = pl->c->rec_bytes;
    if (n > 0) prefetch_record(attune_hybrid_cold_record(pl->c, blocks[0], g), rec_bytes);
    for (int64_t i = 0; i < n; i++) {
        if (i + 1 < n) prefetch_record(attune_hybrid_cold_record(pl->c, blocks[i + 1], g), rec_bytes);
        for (int r0 = 0; r0 < pl->R; r0 += Rg) {
            if (Rg == 1) group_block(pl, sc, acc, g, blocks[i], r0, 1, DT);
            else if (Rg == 2) group_block(pl, sc, acc, g, blocks[i], r0, 2, DT);
            else group_block(pl, sc, acc, g, blocks[i], r0, 4, DT);
        }
    }
}

/* Cold chunk `ch` of head g: its selected blocks, normalised into part_o / part_lse. */
static void cold_item(const plan *pl, scratch *sc, int64_t g, int64_t ch) {
    const int64_t slot = g * pl->nch + ch;
    float *acc = pl->part_o + slot * pl->Rp * pl->dvp;
    float *lse = pl->part_lse + slot * pl->Rp;
    memset(acc, 0, sizeof(float) * (size_t)(pl->Rp * pl->dvp));
    for (int64_t r = 0; r < pl->Rp; r++) {
        sc->m[r] = -INFINITY;
        sc->l[r] = 0.0f;
    }
    int64_t b0 = ch * pl->per_chunk, b1 = b0 + pl->per_chunk;
    if (b1 > pl->nsel) b1 = pl->nsel;
    if (b0 < b1) {
        const int32_t *blocks = pl->sel + g * pl->nb_vis + b0;
        switch (pl->c->dtype) {
        case ATTUNE_HYBRID_COLD_BF16: cold_blocks(pl, sc, acc, g, blocks, b1 - b0, ATTUNE_HYBRID_COLD_BF16); break;
        case ATTUNE_HYBRID_COLD_INT8: cold_blocks(pl, sc, acc, g, blocks, b1 - b0, ATTUNE_HYBRID_COLD_INT8); break;
        default: cold_blocks(pl, sc, acc, g, blocks, b1 - b0, ATTUNE_HYBRID_COLD_F32); break;
        }
    }
    const float ln2 = 0.69314718055994531f;
    for (int64_t r = 0; r < pl->R; r++) {
        float l = sc->l[r], m = sc->m[r];
        int empty = l == 0.0f;
        float inv = empty ? 0.0f : 1.0f / l;
        float *row = acc + r * pl->dvp;
        for (int64_t d = 0; d < pl->dvp; d++) row[d] = empty ? 0.0f : row[d] * inv;
        lse[r] = empty ? -INFINITY : ln2 * (m + log2f(l));
    }
}

/* ----------------------------------------------------------- hot tier */

static int32_t hot_pass(const plan *pl, int threads, attune_status *status) {
    const struct attune_hybrid_kv *c = pl->c;
    attune_attention_problem p;
    attune_attention_problem_init(&p, 1, pl->Hq, c->kv_heads, pl->Lq, pl->hot_len, c->dk, c->dv);
    p.q_stride = (attune_strides){0, pl->qhs, pl->qrs};
    p.k_stride = (attune_strides){0, c->hot_cap * c->dk, c->dk};
    p.v_stride = (attune_strides){0, c->hot_cap * c->dv, c->dv};
    p.o_stride = (attune_strides){0, pl->Lq * c->dv, c->dv};
    p.lse_stride_batch = 0;
    p.lse_stride_head = pl->Lq;
    p.scale = pl->scale;
    p.causal = pl->causal;
    p.q_offset = pl->q_offset - pl->cold_len;
    p.kv.format = c->hot_format;
    if (c->hot_format == ATTUNE_KV_INT8) {
        p.kv.k_scale = c->hot_ks + c->hot_start;
        p.kv.v_scale = c->hot_vs + c->hot_start;
        p.kv.k_scale_stride = p.kv.v_scale_stride = (attune_strides){0, c->hot_cap, 1};
    }
    const size_t k_at = (size_t)(c->hot_start * c->dk) * c->hot_elem, v_at = (size_t)(c->hot_start * c->dv) * c->hot_elem;
    attune_attention_tensors t = {pl->q, (const float *)(c->hot_k + k_at), (const float *)(c->hot_v + v_at), pl->o_hot,
                                  pl->lse_hot};
    attune_flash_params fp = pl->hot;
    fp.threads = threads;
    return attune_flash_attention(&p, &t, &fp, status);
}

/* --------------------------------------------------------------- merge */

static void merge_head(const plan *pl, int64_t h) {
    const int64_t g = h / pl->G, hh = h % pl->G, Lq = pl->Lq, dv = pl->c->dv;
    const float *parts[1 + MAX_CHUNKS], *lses[1 + MAX_CHUNKS];
    int64_t strides[1 + MAX_CHUNKS];
    parts[0] = pl->o_hot + h * Lq * dv;
    lses[0] = pl->lse_hot + h * Lq;
    strides[0] = dv;
    for (int64_t ch = 0; ch < pl->nch; ch++) {
        int64_t slot = g * pl->nch + ch;
        parts[1 + ch] = pl->part_o + (slot * pl->Rp + hh * Lq) * pl->dvp;
        lses[1 + ch] = pl->part_lse + slot * pl->Rp + hh * Lq;
        strides[1 + ch] = pl->dvp;
    }
    attune_lse_merge_rows((int32_t)(1 + pl->nch), Lq, dv, parts, strides, lses, pl->o + h * pl->ohs, pl->ors,
                          pl->lse ? pl->lse + h * Lq : NULL);
}

/* ---------------------------------------------------------- entry point */

int32_t attune_hybrid_attention(attune_hybrid_kv *c, int64_t Hq, int64_t Lq, const float *q, int64_t qhs,
                                int64_t qrs, float *o, int64_t ohs, int64_t ors, float *lse, float scale,
                                int32_t causal, int64_t q_offset, const attune_hybrid_params *params,
                                attune_hybrid_stats *stats, attune_status *status) {
    const double t_start = attune_now_ms();
    if (!c) return attune_fail(status, ATTUNE_ERR_INVALID_ARGUMENT, "hybrid: cache is NULL");
    if (Hq < 1 || Hq % c->kv_heads)
        return attune_fail(status, ATTUNE_ERR_INVALID_ARGUMENT,
                           "hybrid: q_heads = %lld must be a positive multiple of kv_heads = %lld", (long long)Hq,
                           (long long)c->kv_heads);
    if (Lq < 1) return attune_fail(status, ATTUNE_ERR_INVALID_ARGUMENT, "hybrid: q_len must be >= 1");
    if (!q || !o) return attune_fail(status, ATTUNE_ERR_INVALID_ARGUMENT, "hybrid: q or o is NULL");
    if ((Lq > 1 && (qrs < c->dk || ors < c->dv)) || (Hq > 1 && (qhs < c->dk || ohs < c->dv)))
        return attune_fail(status, ATTUNE_ERR_INVALID_ARGUMENT, "hybrid: q/o strides must be >= the head dims");
    if (!isfinite(scale)) return attune_fail(status, ATTUNE_ERR_INVALID_ARGUMENT, "hybrid: scale must be finite");
    if (causal != 0 && causal != 1) return attune_fail(status, ATTUNE_ERR_INVALID_ARGUMENT, "hybrid: causal must be 0 or 1");
    const double budget = params ? params->cold_budget : 1.0;
    if (!(budget > 0.0) || !isfinite(budget) || (budget > 1.0 && budget != floor(budget)))
        return attune_fail(status, ATTUNE_ERR_INVALID_ARGUMENT,
                           "hybrid: cold_budget must be a fraction in (0, 1] or a whole number of blocks (got %g)", budget);
    if (params && (params->threads < 0 || params->schedule < 0 || params->schedule > 1))
        return attune_fail(status, ATTUNE_ERR_INVALID_ARGUMENT, "hybrid: threads must be >= 0 and schedule 0 or 1");

    plan pl;
    memset(&pl, 0, sizeof pl);
    pl.c = c;
    pl.Hq = Hq;
    pl.Lq = Lq;
    pl.G = Hq / c->kv_heads;
    pl.R = pl.G * Lq;
    pl.Rp = (pl.R + 3) / 4 * 4;
    pl.dvp = (c->dv + VL - 1) / VL * VL;
    pl.cold_len = c->cold_len;
    pl.hot_len = c->len - c->cold_len;
    pl.q_offset = q_offset == ATTUNE_Q_OFFSET_DEFAULT ? c->len - Lq : q_offset;
    pl.causal = causal;
    pl.scale = scale;
    pl.budget = budget;
    pl.q = q;
    pl.qhs = qhs;
    pl.qrs = qrs;
    pl.o = o;
    pl.lse = lse;
    pl.ohs = ohs;
    pl.ors = ors;
    if (params) pl.hot = params->hot;
    const int64_t dk = c->dk, Hkv = c->kv_heads, B = c->block;

    /* Visible cold keys per stacked row; pad rows see everything (their queries are 0). */
    int64_t max_hi = 0;
    pl.hi = malloc(sizeof(int32_t) * (size_t)pl.Rp * 2);
    if (!pl.hi) return attune_fail(status, ATTUNE_ERR_OUT_OF_MEMORY, "hybrid: cannot allocate scratch");
    for (int64_t r = 0; r < pl.Rp; r++) {
        int64_t h = pl.cold_len;
        if (r < pl.R && causal) {
            int64_t last = pl.q_offset + r % Lq; /* row r = head hh * Lq + position i */
            h = last + 1 < 0 ? 0 : last + 1 < pl.cold_len ? last + 1 : pl.cold_len;
        }
        pl.hi[r] = (int32_t)h;
        if (r < pl.R && h > max_hi) max_hi = h;
    }
    pl.nb_vis = (max_hi + B - 1) / B;
    if (budget >= (double)pl.nb_vis) pl.nsel = pl.nb_vis;
    else if (budget <= 1.0) pl.nsel = (int64_t)ceil(budget * (double)pl.nb_vis - 1e-9);
    else pl.nsel = (int64_t)budget;
    if (pl.nsel > pl.nb_vis) pl.nsel = pl.nb_vis;
    if (pl.nsel > 0) {
        int64_t want = (TARGET_COLD_ITEMS + Hkv - 1) / Hkv;
        int64_t cap = pl.nsel * B / MIN_CHUNK_KEYS;
        if (want > cap) want = cap;
        if (want > MAX_CHUNKS) want = MAX_CHUNKS;
        pl.nch = want < 1 ? 1 : want;
        pl.per_chunk = (pl.nsel + pl.nch - 1) / pl.nch;
        pl.nch = (pl.nsel + pl.per_chunk - 1) / pl.per_chunk;
    }

    int nth = 1;
#ifdef _OPENMP
    nth = params && params->threads > 0 ? params->threads : omp_get_max_threads();
#endif
    const int schedule = params ? params->schedule : 0;
    const size_t f = sizeof(float);
    pl.qs = attune_scratch_alloc(f * (size_t)(Hkv * pl.Rp * dk));
    pl.sel = attune_scratch_alloc(sizeof(int32_t) * (size_t)(Hkv * (pl.nb_vis > 0 ? pl.nb_vis : 1)));
    pl.o_hot = attune_scratch_alloc(f * (size_t)(Hq * Lq * c->dv));
    pl.lse_hot = attune_scratch_alloc(f * (size_t)(Hq * Lq));
    pl.part_o = attune_scratch_alloc(f * (size_t)(Hkv * (pl.nch ? pl.nch : 1) * pl.Rp * pl.dvp));
    pl.part_lse = attune_scratch_alloc(f * (size_t)(Hkv * (pl.nch ? pl.nch : 1) * pl.Rp));
    const size_t per_thread = f * (size_t)(B * 4 + 4 * dk + 3 * pl.Rp) + sizeof(int32_t) * (size_t)pl.Rp +
                              8 * (size_t)(pl.nb_vis + 1) + 256;
    uint8_t *tscratch = attune_scratch_alloc(per_thread * (size_t)nth);
    int32_t rc = ATTUNE_OK;
    if (!pl.qs || !pl.sel || !pl.o_hot || !pl.lse_hot || !pl.part_o || !pl.part_lse || !tscratch) {
        rc = attune_fail(status, ATTUNE_ERR_OUT_OF_MEMORY, "hybrid: cannot allocate scratch");
        goto done;
    }
    {
        const float qscale = (float)((double)scale * 1.4426950408889634);
        for (int64_t g = 0; g < Hkv; g++)
            for (int64_t r = 0; r < pl.Rp; r++) {
                float *dst = pl.qs + (g * pl.Rp + r) * dk;
                if (r >= pl.R) {
                    memset(dst, 0, f * (size_t)dk);
                    continue;
                }
                const float *src = q + (g * pl.G + r / Lq) * qhs + (r % Lq) * qrs;
                for (int64_t d = 0; d < dk; d++) dst[d] = src[d] * qscale;
            }
    }

    if (schedule == 1) {
        rc = hot_pass(&pl, nth, status);
        if (rc != ATTUNE_OK) goto done;
    }
    double t_selected = 0.0;
    int32_t hot_rc = ATTUNE_OK;
    attune_status hot_status;
    memset(&hot_status, 0, sizeof hot_status);
    int64_t next1 = 0, next2 = 0, next3 = 0;
    const int64_t n_cold = Hkv * pl.nch, n2 = n_cold + (schedule == 0 ? 1 : 0);
#ifdef _OPENMP
#pragma omp parallel num_threads(nth)
#endif
    {
        int tid = 0;
#ifdef _OPENMP
        tid = omp_get_thread_num();
#endif
        scratch sc;
        uint8_t *mem = tscratch + per_thread * (size_t)tid;
        sc.st = (float *)mem;
        sc.qb = sc.st + B * 4;
        sc.m = sc.qb + 4 * dk;
        sc.l = sc.m + pl.Rp;
        sc.alpha = sc.l + pl.Rp;
        sc.lo = (int32_t *)(sc.alpha + pl.Rp);
        memset(sc.lo, 0, sizeof(int32_t) * (size_t)pl.Rp);
        sc.score = (void *)(((uintptr_t)(sc.lo + pl.Rp) + 7) & ~(uintptr_t)7);
        if (pl.nsel > 0)
            for (;;) {
                int64_t g = __atomic_fetch_add(&next1, 1, __ATOMIC_RELAXED);
                if (g >= Hkv) break;
                select_head(&pl, &sc, g);
            }
#ifdef _OPENMP
#pragma omp barrier
#endif
        if (tid == 0) t_selected = attune_now_ms();
        for (;;) {
            int64_t it = __atomic_fetch_add(&next2, 1, __ATOMIC_RELAXED);
            if (it >= n2) break;
            if (schedule == 0 && it == 0) {
                hot_rc = hot_pass(&pl, 1, &hot_status);
                continue;
            }
            int64_t ci = it - (schedule == 0 ? 1 : 0);
            cold_item(&pl, &sc, ci / pl.nch, ci % pl.nch);
        }
#ifdef _OPENMP
#pragma omp barrier
#endif
        if (hot_rc == ATTUNE_OK)
            for (;;) {
                int64_t h = __atomic_fetch_add(&next3, 1, __ATOMIC_RELAXED);
                if (h >= Hq) break;
                merge_head(&pl, h);
            }
    }
    if (hot_rc != ATTUNE_OK) {
        if (status) *status = hot_status;
        rc = hot_rc;
        goto done;
    }
    if (stats) {
        stats->hot_keys = pl.hot_len;
        stats->cold_keys = pl.cold_len;
        stats->selected_cold_keys = 0;
        for (int64_t g = 0; g < Hkv; g++)
            for (int64_t i = 0; i < pl.nsel; i++) {
                int64_t k0 = (int64_t)pl.sel[g * pl.nb_vis + i] * B;
                stats->selected_cold_keys += (max_hi < k0 + B ? max_hi : k0 + B) - k0;
            }
        stats->selected_fraction =
            pl.cold_len > 0 ? (double)stats->selected_cold_keys / ((double)pl.cold_len * (double)Hkv) : 0.0;
        stats->select_ms = t_selected - t_start;
        stats->attend_ms = attune_now_ms() - t_start;
    }
    rc = attune_ok(status);
done:
    free(pl.hi);
    attune_scratch_free(pl.qs);
    attune_scratch_free(pl.sel);
    attune_scratch_free(pl.o_hot);
    attune_scratch_free(pl.lse_hot);
    attune_scratch_free(pl.part_o);
    attune_scratch_free(pl.part_lse);
    attune_scratch_free(tscratch);
    return rc;
}
