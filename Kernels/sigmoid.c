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
 * ALiBi (p->alibi_slopes, attention_modifiers.h): its bias joins the scores
 * before the sigmoid, in every path (on decode tiles the sigmoid then moves
 * from registers to the probability hook). Sinks are refused: there is no
 * denominator for a sink logit to join.
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
 * The tiling, masking, work items and split bookkeeping are the attention
 * engine's (attention_engine.h); this file is the variant: the bias in the
 * wide QK epilogue, sigmoid in registers after the narrow dot products, the
 * masked select to 0, blocked P.V, and the split sum.
 */
#include "attune_attention.h"
#include "attention_internal.h"
#include "simd.h"
#include "attention_plan.h"
#include "attention_tiles.h"
#include "attention_bf16.h"

#include <math.h>
#include <string.h>

typedef struct {
    ATTENTION_PLAN_FIELDS;
    float bias2;   /* bias * log2 e */
    float *part_o; /* [base_items][splits][rows][dvp] when splits > 1 */
} plan;

typedef struct {
    ATTENTION_SCRATCH_FIELDS;
} scratch;

/* The engine's variant (attention_engine.h): f32 K/V, bf16 tiles, no per-row
 * state, blocked P.V. */
#define ENGINE_BF16_TILES 1
#define ENGINE_PV_MODE ENGINE_PV_BLOCKED
#include "attention_engine.h"

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

/* ----------------------------------------------------------------- hooks */

/* Z^T = S + b (base 2): the bias rides in the QK epilogue, after the dot product. */
static void variant_scores_wide(const plan *pl, const scratch *sc, const float *kbase, int64_t j0, int n) {
    qk_wide_tile(sc->qt, pl->rp, (int)pl->p->qk_dim, kbase, pl->p->k_stride.row, j0, n, sc->st, vf_set1(pl->bias2), 1);
}

/* Sigmoid over the tile's scores (plus b2_late), one pass from L2. Applying it
 * to the accumulators inside the QK block instead (no extra pass) measured
 * 1.5-2 % slower on prefill: the epilogue sits between the FMA loops of
 * consecutive blocks. On boundary tiles, entries outside a row's interval
 * become exactly 0 (a select, so a NaN score from a masked key disappears). */
static void sigmoid_probs_wide(const plan *pl, const scratch *sc, int64_t j0, int n, int full, float b2_late) {
    const int rp = pl->rp;
    const vf b2 = vf_set1(b2_late);
    if (full) {
        for (int64_t i = 0; i < (int64_t)n * rp; i += VL) vf_store(sc->st + i, sg_sigmoid2(vf_add(vf_load(sc->st + i), b2)));
        return;
    }
    for (int c = 0; c < rp; c += VL) {
        vi lo = vi_load(sc->lo + c), hi = vi_load(sc->hi + c);
        float *col = sc->st + c;
        for (int jj = 0; jj < n; jj++) {
            float *pp = col + (int64_t)jj * rp;
            vf_store(pp, vf_blend(vi_in_range(lo, hi, (int32_t)(j0 + jj)), sg_sigmoid2(vf_add(vf_load(pp), b2)), vf_zero()));
        }
    }
}

/* f32 scores carry the bias already (+0 here); ALiBi's (attention_modifiers.h)
 * is added before the sigmoid. */
static void variant_probs_wide(const plan *pl, const scratch *sc, int64_t j0, int n, int full) {
    if (pl->p->alibi_slopes) attention_alibi_wide(sc->st, pl->rp, sc->slope2, sc->apos, j0, n);
    sigmoid_probs_wide(pl, sc, j0, n, full, 0.0f);
    engine_mask_wide(pl, sc, j0, n, 0.0f);
}

/* bf16 scores come without the bias: it is added in the sigmoid pass; P.V
 * blocked like the f32 tile (no alpha): summed from zero, then added. */
static void variant_bf16_tile(const plan *pl, const scratch *sc, int64_t bg, const float *vbase, int64_t j0, int n,
                              int full) {
    if (pl->p->alibi_slopes) attention_alibi_wide(sc->st, pl->rp, sc->slope2, sc->apos, j0, n);
    sigmoid_probs_wide(pl, sc, j0, n, full, pl->bias2);
    engine_mask_wide(pl, sc, j0, n, 0.0f);
    const attune_bf16_tile bt = {sc->st, pl->rp, sc->pb, sc->acc, NULL, sc->lo, sc->hi, 0};
    attune_bf16_pv_tile(&pl->kv16, &bt, 0, pl->rows, bg, vbase, j0, n, full);
}

/* Decode tiles: sigmoid(z + b) in registers, right after the transpose tree.
 * With ALiBi the bias depends on the key, which is not at hand here: z + b
 * only, and variant_probs_narrow adds ALiBi's bias and takes the sigmoid. */
ATTUNE_INLINE vf variant_score_narrow(const plan *pl, vf s) {
    const vf z = vf_add(s, vf_set1(pl->bias2));
    return pl->p->alibi_slopes ? z : sg_sigmoid2(z);
}

/* Padding scores: sigmoid(-inf) is exactly 0. */
ATTUNE_INLINE float variant_pad(void) { return -INFINITY; }

/* Boundary tile, packed narrow layout of rows [r0, r0 + R): keys outside a row's interval give 0. */
static void variant_probs_narrow(const plan *pl, const scratch *sc, int r0, int R, int64_t j0, int n, int full) {
    const int nv = (n * R + VL - 1) / VL, keys_per_vec = VL / R;
    if (pl->p->alibi_slopes) {
        attention_alibi_packed(sc->st, R, sc->slope2, sc->apos, r0, j0, n);
        for (int b = 0; b < nv; b++) vf_store(sc->st + b * VL, sg_sigmoid2(vf_load(sc->st + b * VL)));
    }
    engine_mask_packed(pl, sc, r0, R, j0, n, 0.0f);
    if (full) return;
    vi lo = vi_row_spread(sc->lo + r0, R), hi = vi_row_spread(sc->hi + r0, R);
    for (int b = 0; b < nv; b++) {
        float *pp = sc->st + b * VL;
        vmask in = vi_keys_in_range(lo, hi, (int32_t)(j0 + b * keys_per_vec), R);
        vf_store(pp, vf_blend(in, vf_load(pp), vf_zero()));
    }
}

/* The shared P.V tile (attention_tiles.h): no normaliser, no rescale; each tile is
 * summed from zero and then added (blocked summation: fp32 rounding grows with tile
 * length plus tile count, not with a row's key count). */
static void variant_pv_tile(const plan *pl, const scratch *sc, const float *pt, int ps, int rb, int re,
                            const float *vbase, int64_t j0, int n, int full, int prefetch) {
    const pv_target t = engine_pv_target(pl, sc);
    pv_accumulate_tile(&t, pt, ps, rb, re, vbase, j0, n, full, prefetch);
}

/* Rows that see nothing are 0 (their accumulator may hold block products of
 * keys other rows see). */
static void store(const plan *pl, const scratch *sc, int r, float *dst) {
    const int empty = sc->lo[r] >= sc->hi[r];
    const float *a = sc->acc + (int64_t)r * pl->dvp;
    for (int64_t d = 0; d < pl->p->v_dim; d++) dst[d] = empty ? 0.0f : a[d];
}

static void variant_store_row(const plan *pl, const scratch *sc, int r, int64_t b, int64_t head, int64_t pos) {
    float *lse = engine_lse_at(pl, b, head, pos);
    if (lse) *lse = 0.0f;
    store(pl, sc, r, engine_out_row(pl, b, head, pos));
}

static void variant_store_partial(const plan *pl, const scratch *sc, int r, int64_t slot_row) {
    store(pl, sc, r, pl->part_o + slot_row * pl->dvp);
}

/* Adds the splits of one base item into the outputs, in split order. */
static void variant_merge_item(const plan *pl, int64_t base) {
    const attune_attention_problem *p = pl->p;
    const attention_item x = engine_item_of_base(pl, base);
    const int64_t dv = p->v_dim, stride = (int64_t)pl->rows * pl->dvp;
    for (int r = 0; r < pl->rows; r++) {
        int64_t head, pos;
        engine_row_coords(pl, &x, r, &head, &pos);
        if (pos >= p->q_len) continue;
        const float *part = pl->part_o + (base * pl->splits * pl->rows + r) * pl->dvp;
        float *dst = engine_out_row(pl, x.b, head, pos);
        for (int64_t d0 = 0; d0 < dv; d0 += VL) {
            vmask m = vm_first((int)(dv - d0 < VL ? dv - d0 : VL));
            vf s = vf_load(part + d0);
            for (int k = 1; k < pl->splits; k++) s = vf_add(s, vf_load(part + k * stride + d0));
            vf_store_n(dst + d0, s, m);
        }
        float *lse = engine_lse_at(pl, x.b, head, pos);
        if (lse) *lse = 0.0f;
    }
}

/* ----------------------------------------------------------- entry point */

int32_t attune_sigmoid_attention(const attune_attention_problem *p, const attune_attention_tensors *t,
                                 const attune_sigmoid_params *params, attune_status *status) {
    /* Sinks are refused: a sink logit lives in a softmax denominator, and sigmoid has none. */
    int32_t rc = attune_attention_validate_kv(p, t, 1u << ATTUNE_KV_F32 | ATTUNE_ACCEPTS_ALIBI | ATTUNE_ACCEPTS_MASKS, "sigmoid", status);
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

    attune_sigmoid_params r = params ? *params : (attune_sigmoid_params){0};
    int npos, hpt;
    attention_resolve_tiling(p, &r.block_q, &r.block_kv, &r.kv_splits, &npos, &hpt);
    plan pl = {0};
    engine_plan_init(&pl, p, t, npos, hpt, r.block_kv, r.kv_splits, r.precision);
    pl.bias2 = (float)((double)bias * 1.4426950408889634);

    if (pl.splits > 1) {
        size_t slots = (size_t)pl.base_items * (size_t)pl.splits;
        pl.part_o = attune_scratch_alloc(sizeof(float) * slots * (size_t)pl.rows * (size_t)pl.dvp);
        if (!pl.part_o) return attune_fail(status, ATTUNE_ERR_OUT_OF_MEMORY, "sigmoid: cannot allocate split-KV partials");
    }
    rc = engine_run(&pl, r.threads, "sigmoid", status);
    attune_scratch_free(pl.part_o);
    return rc;
}
