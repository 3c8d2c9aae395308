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
 * (params.precision = bf16) wide tiles use bf16 dot products (flash_bf16.c),
 * or (precision = int8qk) int8 Q.K^T (flash_int8qk.c) and bf16 P.V.
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
 * Soft-capping (p->softcap): the probability hooks cap a tile's scores
 * (cap_scores; the math is attention_softcap.h) before the mask and the
 * softmax step, in base-2 units with the cap scaled by log2 e. Every path
 * (wide, sgemm, narrow over any K/V format, bf16 tiles) goes through them.
 *
 * ALiBi and sinks (p->alibi_slopes, p->sinks; attention_modifiers.h): the
 * same hooks add the bias slope * (j - position) after the cap, in every
 * path; a sink starts the row's online softmax (m = sink, l = 1) in the first
 * split only, so the LSE merge counts it once and LSE includes it.
 *
 * Masks with holes (p->doc_ids, p->block_mask; attention_mask.h): the engine
 * narrows rows and skips hidden tiles; on partly visible tiles the same hooks
 * set hidden scores to -inf after the modifiers, on every path.
 *
 * Split-KV: when there are too few work items to occupy the threads, the
 * visible key range of each tile is cut into `kv_splits` chunks whose
 * normalised partials are combined by attune_lse_merge_rows. The split count
 * depends on the problem only, never on the thread count, so results are
 * bitwise identical for any number of threads.
 *
 * The loop itself (work items, row setup, Q packing, the tile dispatch
 * above, finishing rows, the split driver) is the attention engine
 * (attention_engine.h); this file holds flash's hooks: the online softmax,
 * the row finish and the log-sum-exp merge.
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

/* The engine's variant (attention_engine.h): every K/V format, bf16 and int8qk tiles,
 * sgemm for full tiles, a running max and sum per row, P.V rescaled by the
 * online softmax. */
#define ENGINE_KV_FORMATS 1
#define ENGINE_BF16_TILES 1
#define ENGINE_INT8QK_TILES 1
#define ENGINE_BLAS 1
#define ENGINE_ROW_STATE 1
#define ENGINE_PV_MODE ENGINE_PV_RESCALE
#include "attention_engine.h"

/* ---------------------------------------------------------------- params */

static void resolve(const attune_attention_problem *p, const attune_flash_params *in, attune_flash_params *out,
                    int *npos, int *hpt) {
    attune_flash_params r = in ? *in : (attune_flash_params){0};
    attention_resolve_tiling(p, &r.block_q, &r.block_kv, &r.kv_splits, npos, hpt);
    /* Measured (Docs/PERFORMANCE.md): the AVX-512 micro-kernels beat sgemm
     * on every shape we tried; without AVX-512 the portable fallback is far
     * slower than OpenBLAS, so full tiles go to sgemm there. */
    if (r.gemm == ATTUNE_GEMM_AUTO) r.gemm = attune_kernels_has_avx512() ? ATTUNE_GEMM_NATIVE : ATTUNE_GEMM_BLAS;
    *out = r;
}

void attune_flash_resolve_params(const attune_attention_problem *p, const attune_flash_params *in,
                                 attune_flash_params *out) {
    int npos, hpt;
    resolve(p, in, out, &npos, &hpt);
}

/* ----------------------------------------------------------------- hooks */

/* The row's sink, if any, starts its online softmax (flash_row_start); the
 * engine gives splits after the first none. */
ATTUNE_INLINE void variant_row_init(const plan *pl, const scratch *sc, int r, int ok, int64_t head) {
    (void)pl, (void)ok, (void)head;
    flash_row_start(sc, r);
}

/* Wide scores and f32 P.V: flash_tiles.c's instances (see flash_internal.h). */
static void variant_scores_wide(const plan *pl, const scratch *sc, const float *kbase, int64_t j0, int n) {
    attune_flash_scores_wide(sc->qt, pl->rp, (int)pl->p->qk_dim, kbase, pl->p->k_stride.row, j0, n, sc->st);
}

static void variant_pv_tile(const plan *pl, const scratch *sc, const float *pt, int ps, int rb, int re,
                            const float *vbase, int64_t j0, int n, int full, int prefetch) {
    const pv_target t = engine_pv_target(pl, sc);
    attune_flash_pv_tile(&t, pt, ps, rb, re, vbase, j0, n, full, prefetch);
}

ATTUNE_INLINE vf variant_score_narrow(const plan *pl, vf s) {
    (void)pl;
    return s;
}

ATTUNE_INLINE float variant_pad(void) { return -INFINITY; }

/* The logit soft-cap on `count` freshly formed scores at st (attention_softcap.h); the
 * vector padding past them stays -inf. */
ATTUNE_INLINE void cap_scores(const plan *pl, float *st, int64_t count) {
    if (pl->softcap > 0) attune_softcap_scores(st, count, pl->softcap);
}

/* Soft-cap, then the ALiBi bias (attention_modifiers.h), on a wide tile's scores. */
ATTUNE_INLINE void modify_scores_wide(const plan *pl, const scratch *sc, int64_t j0, int n) {
    cap_scores(pl, sc->st, (int64_t)n * pl->rp);
    if (pl->p->alibi_slopes) attention_alibi_wide(sc->st, pl->rp, sc->slope2, sc->apos, j0, n);
}

static void variant_probs_wide(const plan *pl, const scratch *sc, int64_t j0, int n, int full) {
    modify_scores_wide(pl, sc, j0, n);
    engine_mask_wide(pl, sc, j0, n, -INFINITY);
    flash_softmax_tile(pl, sc, j0, n, full, 0.0f, NULL, NULL, 0);
}

/* The same step for rows [r0, r0 + R) of the narrow path (attention_tiles.h). */
static void variant_probs_narrow(const plan *pl, const scratch *sc, int r0, int R, int64_t j0, int n, int full) {
    cap_scores(pl, sc->st, (int64_t)n * R);
    if (pl->p->alibi_slopes) attention_alibi_packed(sc->st, R, sc->slope2, sc->apos, r0, j0, n);
    engine_mask_packed(pl, sc, r0, R, j0, n, -INFINITY);
    softmax_packed_step(sc->st, sc->m, sc->l, sc->alpha, sc->lo, sc->hi, r0, R, j0, n, full);
}

static void variant_bf16_tile(const plan *pl, const scratch *sc, int64_t bg, const float *vbase, int64_t j0, int n,
                              int full) {
    modify_scores_wide(pl, sc, j0, n);
    engine_mask_wide(pl, sc, j0, n, -INFINITY);
    /* Finite V (the rule): P goes straight to bf16 pairs. Else the row-exact P.V needs P in st. */
    const int vfinite = !pl->kv16.vbad[bg];
    if (vfinite) attune_bf16_softmax_tile(sc->st, pl->rp, sc->pb, sc->m, sc->l, sc->alpha, sc->lo, sc->hi, j0, n, full);
    else flash_softmax_tile(pl, sc, j0, n, full, 0.0f, NULL, NULL, 0);
    flash_bf16_pv_tile(pl, sc, 0, pl->rows, bg, vbase, j0, n, full, vfinite);
}

/* Normalise; rows that saw nothing are 0 with LSE -inf. */
static void variant_store_row(const plan *pl, const scratch *sc, int r, int64_t b, int64_t head, int64_t pos) {
    flash_finish_row(sc->acc + (int64_t)r * pl->dvp, sc->m[r], sc->l[r], pl->p->v_dim, engine_out_row(pl, b, head, pos),
                     engine_lse_at(pl, b, head, pos));
}

static void variant_store_partial(const plan *pl, const scratch *sc, int r, int64_t slot_row) {
    flash_finish_row(sc->acc + (int64_t)r * pl->dvp, sc->m[r], sc->l[r], pl->p->v_dim, pl->part_o + slot_row * pl->dvp,
                     pl->part_lse + slot_row);
}

/* Combines the splits of one base item into the outputs by log-sum-exp, head by head. */
static void variant_merge_item(const plan *pl, int64_t base) {
    const attune_attention_problem *p = pl->p;
    const attention_item x = engine_item_of_base(pl, base);
    const float *parts[MAX_SPLITS], *lses[MAX_SPLITS];
    int64_t strides[MAX_SPLITS];
    for (int hh = 0; hh < pl->hpt; hh++) {
        int64_t head, pos0;
        engine_row_coords(pl, &x, hh * pl->npos, &head, &pos0);
        int64_t n = p->q_len - pos0 < pl->npos ? p->q_len - pos0 : pl->npos;
        for (int s = 0; s < pl->splits; s++) {
            int64_t slot = base * pl->splits + s;
            parts[s] = pl->part_o + (slot * pl->rows + hh * pl->npos) * pl->dvp;
            lses[s] = pl->part_lse + slot * pl->rows + hh * pl->npos;
            strides[s] = pl->dvp;
        }
        attune_lse_merge_rows(pl->splits, n, p->v_dim, parts, strides, lses, engine_out_row(pl, x.b, head, pos0),
                              p->o_stride.row, engine_lse_at(pl, x.b, head, pos0));
    }
}

static void variant_scratch_free(scratch *sc) { attune_scratch_free(sc->m); }

static int variant_scratch_alloc(const plan *pl, scratch *sc) {
    const size_t rp = (size_t)pl->rp;
    if (!(sc->m = attune_scratch_alloc(sizeof(float) * rp * 3))) return 0;
    sc->l = sc->m + rp;
    sc->alpha = sc->m + 2 * rp;
    return 1;
}

/* ----------------------------------------------------------- entry point */

int32_t attune_flash_attention(const attune_attention_problem *p, const attune_attention_tensors *t,
                               const attune_flash_params *params, attune_status *status) {
    int32_t rc = attune_attention_validate_kv(
        p, t, ATTUNE_KV_ALL_FORMATS | ATTUNE_ACCEPTS_SOFTCAP | ATTUNE_ACCEPTS_ALIBI | ATTUNE_ACCEPTS_SINKS |
               ATTUNE_ACCEPTS_MASKS,
        "flash",
        status);
    if (rc != ATTUNE_OK) return rc;
    if (params && (params->block_q < 0 || params->block_kv < 0 || params->kv_splits < 0 || params->threads < 0))
        return attune_fail(status, ATTUNE_ERR_INVALID_ARGUMENT, "flash parameters must be non-negative");
    if (params && (params->gemm < ATTUNE_GEMM_AUTO || params->gemm > ATTUNE_GEMM_BLAS))
        return attune_fail(status, ATTUNE_ERR_INVALID_ARGUMENT, "unknown gemm backend %d", params->gemm);
    if (params && (params->precision < ATTUNE_PRECISION_F32 || params->precision > ATTUNE_PRECISION_INT8QK))
        return attune_fail(status, ATTUNE_ERR_INVALID_ARGUMENT, "unknown precision %d (0 = f32, 1 = bf16, 2 = int8qk)",
                           params->precision);
    if (params && (params->block_q > 4096 || params->block_kv > 8192))
        return attune_fail(status, ATTUNE_ERR_INVALID_ARGUMENT,
                           "block_q must be <= 4096 and block_kv <= 8192 (got %d, %d)", params->block_q,
                           params->block_kv);

    attune_flash_params r;
    int npos, hpt;
    resolve(p, params, &r, &npos, &hpt);
    plan pl = {0};
    engine_plan_init(&pl, p, t, npos, hpt, r.block_kv, r.kv_splits, r.precision);
    pl.softcap = (float)((double)p->softcap * 1.4426950408889634);
    /* sgemm needs leading dimensions >= the row length. */
    pl.use_blas = r.gemm == ATTUNE_GEMM_BLAS && p->k_stride.row >= p->qk_dim && p->v_stride.row >= p->v_dim;

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
    rc = engine_run(&pl, r.threads, "flash", status);
    if (pl.use_blas) openblas_set_num_threads(saved_blas_threads);
    attune_scratch_free(pl.part_o);
    attune_scratch_free(pl.part_lse);
    return rc;
}
