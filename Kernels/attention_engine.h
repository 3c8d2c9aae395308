/*
 * attention_engine.h — the tiled attention loop, written once; a kernel is a
 * variant of it (flash, unified_max, sigmoid, sparge). Internal, not ABI.
 *
 * What the engine does: for every work item (batch, kv head, head group, q
 * tile, KV split; attention_plan.h) it sets up the tile's rows (each row's
 * visible keys [lo, hi), the key range the tile must visit, the split's chunk
 * of it), packs Q scaled by scale * log2 e, then walks the chunk in KV tiles
 * of bk keys. Tiles outside every row's interval are never visited; a tile
 * inside every valid row's interval is `full` (no mask); boundary tiles mask.
 * Per tile: scores (wide micro-kernels for >= 16 rows, narrow ones for
 * decode, sgemm or bf16 tiles where the variant has them, K/V widened or
 * dequantised when stored as bf16/int8), scores -> probabilities (the
 * variant), P.V into the accumulator. Then each row is finished (the variant
 * writes O, LSE or a split partial), and with splits > 1 the variant merges
 * the partials of each base item. Threads take items from an atomic counter;
 * the split count depends on the problem only, so results do not depend on
 * the thread count. The engine's tiles are key ranges; its wide QK micro-kernel
 * (attention_tiles.h) also reads a gathered list of key rows, which kascade
 * uses without the rest of the loop (Docs/ARCHITECTURE.md, "Not on the engine").
 *
 * How a variant is written (a C template, specialised at compile time; no
 * function pointers anywhere):
 *
 *   1. Optional capabilities, as 0/1 macros (default 0): ENGINE_KV_FORMATS
 *      (reads bf16/int8 K/V; else the variant validates f32 and the quantised
 *      paths compile away), ENGINE_BF16_TILES (precision=bf16 wide tiles),
 *      ENGINE_INT8QK_TILES (with bf16 tiles: precision=int8qk, int8 Q.K^T),
 *      ENGINE_BLAS (full tiles through OpenBLAS sgemm), ENGINE_ROW_STATE (the
 *      variant keeps per-row state: it defines variant_row_init and
 *      variant_scratch_alloc / _free), ENGINE_SPLIT_STATE (it tracks something
 *      over a split: it defines the type variant_split before the include, and
 *      variant_split_begin / variant_tile_end), ENGINE_KEY_SOURCE (it chooses
 *      the KV tiles an item visits: it defines the type variant_keys before
 *      the include, and variant_keys_first / _count / _next; else the tiles
 *      are the split's chunk cut into bk keys; the masks' tile visibility
 *      applies to every tile it yields), and, default 1,
 *      ENGINE_NARROW_TILES (0: every q tile takes the wide tiles however few
 *      rows it has, and the narrow hooks are not declared) and
 *      ENGINE_KV_SPLITS (0: one split per item, no partials, no merge hooks);
 *      and ENGINE_PV_MODE,
 *      how a tile's P.V combines with the accumulator: ENGINE_PV_RESCALE
 *      (online softmax: acc = alpha acc + P V, scratch has `alpha`),
 *      ENGINE_PV_PLAIN (acc += P V) or ENGINE_PV_BLOCKED (each tile summed
 *      from zero, then added).
 *   2. Types: `plan` (ATTENTION_PLAN_FIELDS first, then the variant's
 *      constants and partials), `scratch` (ATTENTION_SCRATCH_FIELDS, then its
 *      per-row state).
 *   3. #include "attention_engine.h"; it declares the hooks below, which the
 *      variant then defines (static, so each is specialised into the loop;
 *      most optional ones get trivial definitions here), and uses
 *      engine_plan_init and engine_run in its entry point.
 *
 * The hooks, in the order the loop calls them:
 *
 *   variant_row_init     (ENGINE_ROW_STATE) per row of a tile at setup (running max, sums)
 *   variant_split_begin  (ENGINE_SPLIT_STATE) the split's key range [c0, c1) is known
 *   variant_keys_first   (ENGINE_KEY_SOURCE) the item's rows, its chunk [c0, c1) and
 *                        packed Q are ready: the start of its first KV tile (c1: none)
 *   variant_keys_count   (ENGINE_KEY_SOURCE) the keys n <= bk of the tile at j0
 *   variant_keys_next    (ENGINE_KEY_SOURCE) the start of the next tile (c1: none); the
 *                        tiles [j0, j0 + n) are ascending, disjoint, inside [c0, c1)
 *   variant_scores_wide  S^T of a wide tile (the QK product; a bias may ride in its epilogue)
 *   variant_score_narrow transform of 16 narrow scores in registers, straight
 *                        after the dot products (identity, or sigmoid(s + b))
 *   variant_pad          score for padding past a narrow tile's last key
 *   variant_probs_wide   scores -> probabilities over a wide tile, masking boundary tiles
 *   variant_probs_narrow the same for R rows of the packed narrow layout
 *   variant_bf16_tile    (ENGINE_BF16_TILES) probabilities and P.V of a bf16 tile whose
 *                        scores the engine computed (bf16 or, int8qk, int8 dot products)
 *   variant_pv_tile      P.V of f32 V (engine_pv_target says how; flash keeps its
 *                        instances in flash_tiles.c)
 *   variant_tile_end     (ENGINE_SPLIT_STATE) after each tile; nonzero stops the split
 *                        (unified_max, once every row is bound for the fallback)
 *   variant_store_row    a finished row into O / LSE (one split)
 *   variant_store_partial (ENGINE_KV_SPLITS) a finished row into the split partials
 *   variant_merge_item   (ENGINE_KV_SPLITS) the splits of one base item into O / LSE
 *   variant_scratch_alloc / _free  (ENGINE_ROW_STATE) the per-row state
 *
 * Score modifiers (attention_modifiers.h): engine_rows fills each row's ALiBi
 * slope and absolute position and its sink logit (split 0 only, so a split
 * merge counts the sink once) before variant_row_init; a variant that takes
 * ALiBi adds the bias in its probability hooks (attention_alibi_wide /
 * _packed), one that takes sinks starts its row state from sc->sink2.
 *
 * Masks with holes (attention_mask.h: document ids, a block bitmask): engine_rows
 * narrows each row's [lo, hi) by them; before each tile (the chunk's, or
 * the one a key source yields) the engine asks
 * attention_mask_tile whether the masks hide the tile from every row (then it
 * is skipped, never computed), hide part of it (then it is a boundary tile and
 * sc->holes[0] is set) or nothing. A variant's probability hooks call
 * engine_mask_wide / engine_mask_packed with the value a hidden entry must
 * have at that point (-inf before a softmax, 0 after a sigmoid); both do
 * nothing on tiles without holes, so unmasked problems compute what they
 * always did. With p->mask_stats the engine counts the tiles it computed and
 * skipped.
 *
 * Where a modifier goes (Docs/ARCHITECTURE.md, "Adding a variant"): a logits
 * transform (soft-capping, an ALiBi bias from the key index j0 + jj and the
 * row's head) in variant_probs_wide / variant_probs_narrow before the max, or
 * in the scores' epilogue; a mask that keeps rows to one interval narrows
 * [lo, hi) in engine_rows (tile skipping and `full` follow); a mask with holes
 * (document ids, a block bitmask) adds a tile-visibility test before
 * engine_tile, so fully masked tiles are never computed, and a select in the
 * probabilities step on boundary tiles.
 */
#ifndef ATTUNE_ATTENTION_ENGINE_H
#define ATTUNE_ATTENTION_ENGINE_H

#include "attune_attention.h"
#include "attention_internal.h"
#include "attention_modifiers.h"
#include "attention_plan.h"
#include "attention_tiles.h"
#include "kv_tiles.h"
#include "simd.h"

#include <math.h>
#include <string.h>

#ifdef _OPENMP
#include <omp.h>
#endif

/* ENGINE_PV_MODE values (macros: the preprocessor picks the accumulator's fields). */
#define ENGINE_PV_RESCALE 1
#define ENGINE_PV_PLAIN 2
#define ENGINE_PV_BLOCKED 3

#ifndef ENGINE_KV_FORMATS
#define ENGINE_KV_FORMATS 0
#endif
#ifndef ENGINE_BF16_TILES
#define ENGINE_BF16_TILES 0
#endif
#ifndef ENGINE_INT8QK_TILES
#define ENGINE_INT8QK_TILES 0
#endif
#if ENGINE_INT8QK_TILES && !ENGINE_BF16_TILES
#error "int8qk tiles run their P.V on the bf16 tiles: set ENGINE_BF16_TILES too"
#endif
#ifndef ENGINE_BLAS
#define ENGINE_BLAS 0
#endif
#ifndef ENGINE_ROW_STATE
#define ENGINE_ROW_STATE 0
#endif
#ifndef ENGINE_SPLIT_STATE
#define ENGINE_SPLIT_STATE 0
#endif
#ifndef ENGINE_KEY_SOURCE
#define ENGINE_KEY_SOURCE 0
#endif
#ifndef ENGINE_NARROW_TILES
#define ENGINE_NARROW_TILES 1
#endif
#ifndef ENGINE_KV_SPLITS
#define ENGINE_KV_SPLITS 1
#endif
#ifndef ENGINE_PV_MODE
#error "a variant sets ENGINE_PV_MODE before including attention_engine.h"
#endif
#if ENGINE_BLAS
#include <cblas.h>
#endif

/* ------------------------------------------------------------- the hooks */

#if ENGINE_ROW_STATE
ATTUNE_INLINE void variant_row_init(const plan *pl, const scratch *sc, int r, int ok, int64_t head);
static int variant_scratch_alloc(const plan *pl, scratch *sc);
static void variant_scratch_free(scratch *sc);
#else
ATTUNE_INLINE void variant_row_init(const plan *pl, const scratch *sc, int r, int ok, int64_t head) {
    (void)pl, (void)sc, (void)r, (void)ok, (void)head;
}
static int variant_scratch_alloc(const plan *pl, scratch *sc) {
    (void)pl, (void)sc;
    return 1;
}
static void variant_scratch_free(scratch *sc) { (void)sc; }
#endif
#if ENGINE_SPLIT_STATE
ATTUNE_INLINE variant_split variant_split_begin(const plan *pl, const scratch *sc, int64_t c0, int64_t c1);
ATTUNE_INLINE int variant_tile_end(const plan *pl, const scratch *sc, const variant_split *vs);
#else
typedef int variant_split; /* nothing tracked across a split */
ATTUNE_INLINE variant_split variant_split_begin(const plan *pl, const scratch *sc, int64_t c0, int64_t c1) {
    (void)pl, (void)sc, (void)c0, (void)c1;
    return 0;
}
ATTUNE_INLINE int variant_tile_end(const plan *pl, const scratch *sc, const variant_split *vs) {
    (void)pl, (void)sc, (void)vs;
    return 0;
}
#endif
#if ENGINE_KEY_SOURCE
ATTUNE_INLINE int64_t variant_keys_first(const plan *pl, const scratch *sc, const attention_item *x, int64_t c0,
                                         int64_t c1, variant_keys *ks);
ATTUNE_INLINE int variant_keys_count(const plan *pl, const scratch *sc, variant_keys *ks, int64_t j0, int64_t c1);
ATTUNE_INLINE int64_t variant_keys_next(const plan *pl, const scratch *sc, variant_keys *ks, int64_t j0);
#endif
static void variant_scores_wide(const plan *pl, const scratch *sc, const float *kbase, int64_t j0, int n);
static void variant_probs_wide(const plan *pl, const scratch *sc, int64_t j0, int n, int full);
#if ENGINE_NARROW_TILES
ATTUNE_INLINE vf variant_score_narrow(const plan *pl, vf s);
ATTUNE_INLINE float variant_pad(void);
static void variant_probs_narrow(const plan *pl, const scratch *sc, int r0, int R, int64_t j0, int n, int full);
#endif
#if ENGINE_BF16_TILES
static void variant_bf16_tile(const plan *pl, const scratch *sc, int64_t bg, const float *vbase, int64_t j0, int n,
                              int full);
#endif
static void variant_pv_tile(const plan *pl, const scratch *sc, const float *pt, int ps, int rb, int re,
                            const float *vbase, int64_t j0, int n, int full, int prefetch);
static void variant_store_row(const plan *pl, const scratch *sc, int r, int64_t b, int64_t head, int64_t pos);
#if ENGINE_KV_SPLITS
static void variant_store_partial(const plan *pl, const scratch *sc, int r, int64_t slot_row);
static void variant_merge_item(const plan *pl, int64_t base);
#endif

/* ------------------------------------------------------------------ plan */

/* The plan's common fields from the resolved tiling (attention_resolve_tiling);
 * use_blas is the caller's to set, bf16 when `precision` asks for bf16 wide tiles
 * (int8qk: int8 Q.K^T, the rest of the tile bf16; a variant with ENGINE_INT8QK_TILES). */
static inline void engine_plan_init(plan *pl, const attune_attention_problem *p, const attune_attention_tensors *t,
                                    int npos, int hpt, int block_kv, int kv_splits, int32_t precision) {
    pl->p = p;
    pl->t = t;
    pl->npos = npos;
    pl->hpt = hpt;
    pl->q_offset = attune_attention_q_offset(p);
    pl->group = p->q_heads / p->kv_heads;
    pl->rows = pl->npos * pl->hpt;
    pl->rp = (pl->rows + VL - 1) / VL * VL;
    pl->dvp = (int)((p->v_dim + VL - 1) / VL * VL);
    pl->bk = block_kv;
    pl->splits = ENGINE_KV_SPLITS ? kv_splits : 1;
    pl->wide = !ENGINE_NARROW_TILES || pl->rows >= WIDE_MIN_ROWS;
    pl->use_blas = 0;
    pl->int8qk = ENGINE_INT8QK_TILES && pl->wide && precision == ATTUNE_PRECISION_INT8QK;
    pl->bf16 = pl->wide && (precision == ATTUNE_PRECISION_BF16 || pl->int8qk);
    pl->kv16 = (attune_bf16_kv){.p = p, .t = t, .q_offset = pl->q_offset, .dvp = pl->dvp, .v_only = pl->int8qk};
    pl->k8 = (attune_int8qk_k){.p = p, .t = t, .q_offset = pl->q_offset};
    pl->qscale = (float)((double)p->scale * 1.4426950408889634);
    pl->qtiles = (p->q_len + pl->npos - 1) / pl->npos;
    pl->hgroups = pl->group / pl->hpt;
    pl->base_items = p->batch * p->kv_heads * pl->hgroups * pl->qtiles;
}

/* ------------------------------------------------------------ work items */

static inline attention_item engine_item_of_base(const plan *pl, int64_t base) {
    attention_item x;
    x.base = base;
    x.split = 0;
    x.qt = base % pl->qtiles;
    x.hg = base / pl->qtiles % pl->hgroups;
    x.g = base / pl->qtiles / pl->hgroups % pl->p->kv_heads;
    x.b = base / pl->qtiles / pl->hgroups / pl->p->kv_heads;
    return x;
}

/* Item `it` of the dynamic schedule: last q tiles first (under a causal mask
 * they are the heaviest), splits of one base item adjacent. */
static inline attention_item engine_decode_item(const plan *pl, int64_t it) {
    int64_t rest = it / pl->splits;
    int64_t qt = pl->qtiles - 1 - rest % pl->qtiles;
    attention_item x = engine_item_of_base(pl, rest / pl->qtiles * pl->qtiles + qt);
    x.split = it % pl->splits;
    return x;
}

/* Row r of an item's q tile: q head and position. */
static inline void engine_row_coords(const plan *pl, const attention_item *x, int r, int64_t *head, int64_t *pos) {
    *head = x->g * pl->group + x->hg * pl->hpt + r / pl->npos;
    *pos = x->qt * pl->npos + r % pl->npos;
}

/* Output row and LSE entry (NULL without an LSE buffer) of (b, head, pos). */
static inline float *engine_out_row(const plan *pl, int64_t b, int64_t head, int64_t pos) {
    const attune_attention_problem *p = pl->p;
    return pl->t->o + b * p->o_stride.batch + head * p->o_stride.head + pos * p->o_stride.row;
}

static inline float *engine_lse_at(const plan *pl, int64_t b, int64_t head, int64_t pos) {
    const attune_attention_problem *p = pl->p;
    return pl->t->lse ? pl->t->lse + b * p->lse_stride_batch + head * p->lse_stride_head + pos : NULL;
}

/* How P.V combines with the accumulator (ENGINE_PV_MODE), over f32 V at the
 * problem's strides (attune_kv_pv_tile replaces the V fields for bf16/int8). */
ATTUNE_INLINE pv_target engine_pv_target(const plan *pl, const scratch *sc) {
#if ENGINE_PV_MODE == ENGINE_PV_RESCALE
    const float *alpha = sc->alpha;
#else
    const float *alpha = NULL;
#endif
    const pv_target t = {.acc = sc->acc, .dvp = pl->dvp, .alpha = alpha, .blocked = ENGINE_PV_MODE == ENGINE_PV_BLOCKED,
                         .lo = sc->lo, .hi = sc->hi, .dv = (int)pl->p->v_dim, .vs = pl->p->v_stride.row,
                         .kv_len = pl->p->kv_len};
    return t;
}

/* --------------------------------------------------------------- rows */

/* Row r's score modifiers (attention_modifiers.h): its ALiBi slope and absolute
 * position, and its sink, which only the first split of an item carries (the
 * other splits' partials merge into it, so the sink is counted once). */
ATTUNE_INLINE void engine_row_modifiers(const attune_attention_problem *p, const scratch *sc, int r, int ok,
                                        int64_t head, int64_t apos, int first_split) {
    sc->apos[r] = ok && p->alibi_slopes ? (int32_t)apos : 0; /* within 2^24 of every key (validated) */
    sc->slope2[r] = ok ? attention_alibi_slope2(p, head) : 0.0f;
    sc->sink2[r] = ok && first_split ? attention_sink2(p, head) : -INFINITY;
}

/* The KV tiles of split `split` of the key range [ulo, uhi) (ulo > uhi: none). */
static inline void engine_chunk(const plan *pl, int64_t split, int64_t ulo, int64_t uhi, int64_t *c0, int64_t *c1) {
    if (ulo > uhi) ulo = uhi = 0;
    int64_t chunk = (uhi - ulo + pl->splits - 1) / pl->splits;
    chunk = (chunk + pl->bk - 1) / pl->bk * pl->bk;
    *c0 = ulo + split * chunk;
    *c1 = *c0 + chunk;
    if (*c0 > uhi) *c0 = uhi;
    if (*c1 > uhi) *c1 = uhi;
}

/* Sets each row's validity and visible keys [lo, hi) (the variant initialises
 * its state), and returns the split's key chunk [c0, c1) and the keys every
 * valid row sees [flo, fhi) (tiles inside are `full`). With masks the rows'
 * intervals are narrowed (attention_mask_row); when counting (mk.counts) the
 * return value is the number of tiles the split would have without them. */
static inline int64_t engine_rows(const plan *pl, const scratch *sc, const attention_item *x, int64_t *c0, int64_t *c1,
                                  int64_t *flo, int64_t *fhi) {
    const attune_attention_problem *p = pl->p;
    attention_span span = attention_span_none(), plain = attention_span_none();
    for (int r = 0; r < pl->rp; r++) {
        int64_t head = 0, pos = 0, lo = 0, hi = 0;
        int ok = r < pl->rows;
        if (ok) {
            engine_row_coords(pl, x, r, &head, &pos);
            ok = pos < p->q_len;
        }
        if (ok) attune_visible_range(p, pl->q_offset, pos, &lo, &hi);
        if (ok && pl->mk.counts) attention_span_add(&plain, lo, hi);
        if (ok && pl->mk.on) attention_mask_row(&pl->mk, pl->q_offset + pos, &lo, &hi, sc->rdoc + r, sc->rqb + r);
        sc->valid[r] = ok;
        sc->lo[r] = (int32_t)lo;
        sc->hi[r] = (int32_t)hi;
        if (ok) attention_span_add(&span, lo, hi);
        engine_row_modifiers(p, sc, r, ok, head, pl->q_offset + pos, x->split == 0);
        variant_row_init(pl, sc, r, ok, head);
    }
    engine_chunk(pl, x->split, span.ulo, span.uhi, c0, c1);
    *flo = span.flo;
    *fhi = span.fhi;
    if (!pl->mk.counts) return 0;
    int64_t a, b;
    engine_chunk(pl, x->split, plain.ulo, plain.uhi, &a, &b);
    return (b - a + pl->bk - 1) / pl->bk;
}

/* Masks with holes on a partly visible tile (sc->holes[0]): hidden entries of a wide
 * tile's S^T become `value`; nothing otherwise. */
ATTUNE_INLINE void engine_mask_wide(const plan *pl, const scratch *sc, int64_t j0, int n, float value) {
    if (sc->holes[0])
        attention_mask_wide(&pl->mk, sc->st, pl->rp, pl->rows, sc->valid, sc->rdoc, sc->rqb, j0, n, value);
}

/* The same for rows [r0, r0 + R) of the packed narrow layout. */
ATTUNE_INLINE void engine_mask_packed(const plan *pl, const scratch *sc, int r0, int R, int64_t j0, int n,
                                      float value) {
    if (sc->holes[0]) attention_mask_packed(&pl->mk, sc->st, R, r0, sc->valid, sc->rdoc, sc->rqb, j0, n, value);
}

/* Q of the tile's rows times scale * log2 e: row-minor for the wide tiles,
 * row-major for the narrow and sgemm ones, bf16 pairs for bf16 tiles; rows
 * that are not real are zeros. */
static inline void engine_pack_q(const plan *pl, const scratch *sc, const attention_item *x) {
    const attune_attention_problem *p = pl->p;
    const int rp = pl->rp, dqk = (int)p->qk_dim;
    const float qscale = pl->qscale;
    for (int r = 0; r < rp; r++) {
        const float *src = NULL;
        if (sc->valid[r]) {
            int64_t head, pos;
            engine_row_coords(pl, x, r, &head, &pos);
            src = pl->t->q + x->b * p->q_stride.batch + head * p->q_stride.head + pos * p->q_stride.row;
        }
        if (pl->wide)
            for (int d = 0; d < dqk; d++) sc->qt[(int64_t)d * rp + r] = src ? src[d] * qscale : 0.0f;
        if (!pl->wide || pl->use_blas)
            for (int d = 0; d < dqk; d++) sc->qr[(int64_t)r * dqk + d] = src ? src[d] * qscale : 0.0f;
    }
#if ENGINE_INT8QK_TILES
    if (pl->int8qk) {
        attune_int8qk_pack_q(&pl->k8, sc->qt, sc->q8, rp, x->b * p->kv_heads + x->g);
        return;
    }
#endif
#if ENGINE_BF16_TILES
    if (pl->bf16) attune_bf16_pack_q(sc->qt, sc->qb, rp, dqk);
#endif
}

/* ------------------------------------------------------------ narrow tiles */

#if ENGINE_NARROW_TILES

/* Scores of rows [r0, r0 + R) for keys [j0, j0 + n) through variant_score_narrow:
 * S^T with row stride R in st, padded with variant_pad() to a whole vector. */
static void engine_scores_narrow(const plan *pl, const scratch *sc, const float *kbase, int64_t j0, int n, int r0,
                                 int R, int prefetch) {
    const int dqk = (int)pl->p->qk_dim, KK = VL / R;
    const int64_t ks = pl->p->k_stride.row, kv_end = pl->p->kv_len;
    const float *q = sc->qr + (int64_t)r0 * dqk;
    int jj = 0;
    for (; jj + KK <= n; jj += KK) {
        const float *kp = kbase + (j0 + jj) * ks;
        const int64_t ahead = j0 + jj + PREFETCH_KEYS_AHEAD;
        const float *pk = prefetch && ahead + KK <= kv_end ? kbase + ahead * ks : NULL;
        float *sp = sc->st + (int64_t)jj * R;
        if (R == 1) vf_store(sp, variant_score_narrow(pl, qk_narrow_sum_fmt(q, kp, ks, dqk, pk, 1, 16, KV_F32)));
        else if (R == 2) vf_store(sp, variant_score_narrow(pl, qk_narrow_sum_fmt(q, kp, ks, dqk, pk, 2, 8, KV_F32)));
        else vf_store(sp, variant_score_narrow(pl, qk_narrow_sum_fmt(q, kp, ks, dqk, pk, 4, 4, KV_F32)));
    }
    if (jj == n) return;
    /* Tail: fewer than 16 / R keys, one vector with its padding. */
    float *tail = sc->st + (int64_t)jj * R;
    for (; jj < n; jj++) qk_narrow_key(q, R, kbase + (j0 + jj) * ks, dqk, sc->st + (int64_t)jj * R);
    for (int i = n * R; i % VL; i++) sc->st[i] = variant_pad();
    vf_store(tail, variant_score_narrow(pl, vf_load(tail)));
}

/* R rows at a time (R = 1 for MHA decode, up to 4), each block scoring,
 * turning scores into probabilities and accumulating while its K and V rows
 * are still in cache; rows past pl->rows in the last block are zero Q rows. */
static void engine_narrow_tile(const plan *pl, const scratch *sc, const float *kbase, const float *vbase, int64_t j0,
                               int n, int full) {
    const int R = pl->rows == 1 ? 1 : pl->rows == 2 ? 2 : 4;
    for (int r0 = 0; r0 < pl->rows; r0 += R) {
        engine_scores_narrow(pl, sc, kbase, j0, n, r0, R, r0 == 0);
        variant_probs_narrow(pl, sc, r0, R, j0, n, full);
        int re = r0 + R < pl->rows ? r0 + R : pl->rows;
        variant_pv_tile(pl, sc, sc->st, R, r0, re, vbase, j0, n, full, r0 == 0);
    }
}

#if ENGINE_KV_FORMATS
/* The same over bf16/int8 K/V, widened in registers (kv_tiles.c); the
 * variant's narrow score transform must be the identity here. */
static void engine_narrow_tile_kv(const plan *pl, const scratch *sc, const kv_head *kh, int64_t j0, int n, int full) {
    const int R = pl->rows == 1 ? 1 : pl->rows == 2 ? 2 : 4;
    const pv_target target = engine_pv_target(pl, sc);
    for (int r0 = 0; r0 < pl->rows; r0 += R) {
        attune_kv_scores_narrow(kh, sc->qr + (int64_t)r0 * pl->p->qk_dim, R, j0, n, r0 == 0, variant_pad(), sc->st);
        variant_probs_narrow(pl, sc, r0, R, j0, n, full);
        int re = r0 + R < pl->rows ? r0 + R : pl->rows;
        attune_kv_pv_tile(kh, &target, sc->st, R, r0, re, j0, n, full, r0 == 0);
    }
}
#endif
#endif /* ENGINE_NARROW_TILES */

#if ENGINE_BLAS
/* Full tiles on the sgemm backend: S^T = K Q^T, then acc = alpha acc + P V. */
static void engine_scores_blas(const plan *pl, const scratch *sc, const float *kbase, int64_t j0, int n) {
    const attune_attention_problem *p = pl->p;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, pl->rows, (int)p->qk_dim, 1.0f,
                kbase + j0 * p->k_stride.row, (int)p->k_stride.row, sc->qr, (int)p->qk_dim, 0.0f, sc->st, pl->rp);
}

static void engine_pv_blas(const plan *pl, const scratch *sc, const float *vbase, int64_t j0, int n) {
    const float *vtile = vbase + j0 * pl->p->v_stride.row;
    const float *alpha = engine_pv_target(pl, sc).alpha;
    for (int r = 0; alpha && r < pl->rows; r++) {
        float a = alpha[r];
        float *row = sc->acc + (int64_t)r * pl->dvp;
        for (int d = 0; d < pl->p->v_dim; d++) row[d] *= a;
    }
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, pl->rows, (int)pl->p->v_dim, n, 1.0f, sc->st, pl->rp, vtile,
                (int)pl->p->v_stride.row, 1.0f, sc->acc, pl->dvp);
}
#endif

/* ------------------------------------------------------------- one tile */

/* Keys [j0, j0 + n) of one (batch, kv head): kbase/vbase its f32 K/V, kh its
 * bf16/int8 K/V; `packed` the plan over dequantised tiles in `pack` (block_kv
 * rows of K, then of V), for the wide and sgemm paths over bf16/int8 K/V. */
static inline void engine_tile(const plan *pl, const plan *packed, float *pack, const scratch *sc,
                               const attention_item *x, const kv_head *kh, const float *kbase, const float *vbase,
                               int64_t j0, int n, int full) {
    const attune_attention_problem *p = pl->p;
    (void)packed, (void)pack, (void)kh, (void)x;
#if ENGINE_BF16_TILES
    if (pl->bf16) {
        /* K/V of any format, packed to bf16 once per call (flash_bf16.c). */
        const int64_t bg = x->b * p->kv_heads + x->g;
#if ENGINE_INT8QK_TILES
        if (pl->int8qk) attune_int8qk_scores(&pl->k8, sc->q8, sc->st, pl->rp, bg, j0, n);
        else
#endif
            attune_bf16_scores(&pl->kv16, sc->qb, sc->st, pl->rp, bg, j0, n);
        variant_bf16_tile(pl, sc, bg, vbase, j0, n, full);
        return;
    }
#endif
    const plan *tp = pl;
#if ENGINE_KV_FORMATS
    if (p->kv.format != ATTUNE_KV_F32) {
#if ENGINE_NARROW_TILES
        if (!pl->wide && !(full && pl->use_blas)) {
            engine_narrow_tile_kv(pl, sc, kh, j0, n, full);
            return;
        }
#endif
        /* K at key j0 is pack row 0, V's base shifted likewise. */
        const int dqk = (int)p->qk_dim;
        float *vpack = pack + (int64_t)pl->bk * dqk;
        attune_kv_unpack(kh, 0, j0, n, pack);
        attune_kv_unpack(kh, 1, j0, n, vpack);
        tp = packed;
        kbase = kv_tile_base(pack, j0, dqk);
        vbase = kv_tile_base(vpack, j0, p->v_dim);
    }
#endif
#if ENGINE_BLAS
    if (full && pl->use_blas) {
        engine_scores_blas(tp, sc, kbase, j0, n);
        variant_probs_wide(tp, sc, j0, n, full);
        engine_pv_blas(tp, sc, vbase, j0, n);
        return;
    }
#endif
    if (pl->wide) {
        variant_scores_wide(tp, sc, kbase, j0, n);
        variant_probs_wide(tp, sc, j0, n, full);
        variant_pv_tile(tp, sc, sc->st, pl->rp, 0, pl->rows, vbase, j0, n, full, 0);
    }
#if ENGINE_NARROW_TILES
    else {
        engine_narrow_tile(pl, sc, kbase, vbase, j0, n, full);
    }
#endif
}

/* ------------------------------------------------------------- one item */

static void engine_run_item(const plan *pl, const plan *packed, float *pack, const scratch *sc, int64_t it) {
    const attune_attention_problem *p = pl->p;
    const attune_attention_tensors *t = pl->t;
    const attention_item x = engine_decode_item(pl, it);
    int64_t c0, c1, flo, fhi, computed = 0, masked = 0;
    const int64_t plain_tiles = engine_rows(pl, sc, &x, &c0, &c1, &flo, &fhi);

    memset(sc->acc, 0, sizeof(float) * (size_t)pl->rp * pl->dvp);
    if (c0 < c1) {
        variant_split vs = variant_split_begin(pl, sc, c0, c1);
        engine_pack_q(pl, sc, &x);
        kv_head kh = {0};
        const float *kbase = NULL, *vbase = NULL;
#if ENGINE_KV_FORMATS
        if (p->kv.format != ATTUNE_KV_F32) attune_kv_head(p, t, x.b, x.g, &kh);
        else
#endif
        {
            kbase = t->k + x.b * p->k_stride.batch + x.g * p->k_stride.head;
            vbase = t->v + x.b * p->v_stride.batch + x.g * p->v_stride.head;
        }
        attention_mask_rows mr = {0};
        if (pl->mk.on) mr = attention_mask_rows_of(&pl->mk, sc->valid, sc->rdoc, sc->rqb, pl->rows);
        /* Without a key source, the chunk in bk-key tiles written out rather than as
         * default hooks: the variants without one then compile to the very code
         * they had before the hook (objdump-identical; the hook form moved stack slots). */
#if ENGINE_KEY_SOURCE
        variant_keys ks;
        for (int64_t j0 = variant_keys_first(pl, sc, &x, c0, c1, &ks); j0 < c1; j0 = variant_keys_next(pl, sc, &ks, j0)) {
            int n = variant_keys_count(pl, sc, &ks, j0, c1);
#else
        for (int64_t j0 = c0; j0 < c1; j0 += pl->bk) {
            int n = (int)(c1 - j0 < pl->bk ? c1 - j0 : pl->bk);
#endif
            int full = flo <= j0 && j0 + n <= fhi;
            if (pl->mk.on) {
                const int seen = attention_mask_tile(&pl->mk, &mr, j0, n);
                if (seen == MASK_TILE_HIDDEN) continue;
                sc->holes[0] = seen == MASK_TILE_PARTIAL;
                full &= !sc->holes[0];
                masked += sc->holes[0];
            }
            computed++;
            engine_tile(pl, packed, pack, sc, &x, &kh, kbase, vbase, j0, n, full);
            if (variant_tile_end(pl, sc, &vs)) break;
        }
    }
    if (pl->mk.counts) {
        __atomic_fetch_add(pl->mk.counts, plain_tiles, __ATOMIC_RELAXED);
        __atomic_fetch_add(pl->mk.counts + 1, computed, __ATOMIC_RELAXED);
        __atomic_fetch_add(pl->mk.counts + 2, masked, __ATOMIC_RELAXED);
    }

    for (int r = 0; r < pl->rows; r++) {
        if (!sc->valid[r]) continue;
#if ENGINE_KV_SPLITS
        if (pl->splits > 1) {
            variant_store_partial(pl, sc, r, (x.base * pl->splits + x.split) * pl->rows + r);
            continue;
        }
#endif
        int64_t head, pos;
        engine_row_coords(pl, &x, r, &head, &pos);
        variant_store_row(pl, sc, r, x.b, head, pos);
    }
}

/* -------------------------------------------------------------- scratch */

static void engine_scratch_free(scratch *sc) {
    attune_scratch_free(sc->qt);
    attune_scratch_free(sc->qr);
    attune_scratch_free(sc->st);
    attune_scratch_free(sc->acc);
    attune_scratch_free(sc->lo);
    attune_scratch_free(sc->slope2);
#if ENGINE_BF16_TILES
    attune_scratch_free(sc->qb);
    attune_scratch_free(sc->pb);
    attune_scratch_free(sc->q8);
#endif
    variant_scratch_free(sc);
}

static int engine_scratch_alloc(const plan *pl, scratch *sc) {
    const size_t rp = (size_t)pl->rp, f = sizeof(float);
    memset(sc, 0, sizeof *sc);
    if (pl->wide) sc->qt = attune_scratch_alloc(f * (size_t)pl->p->qk_dim * rp);
    if (!pl->wide || pl->use_blas) sc->qr = attune_scratch_alloc(f * (size_t)pl->p->qk_dim * rp);
    sc->st = attune_scratch_alloc(f * (size_t)pl->bk * rp);
    sc->acc = attune_scratch_alloc(f * rp * (size_t)pl->dvp);
    sc->lo = attune_scratch_alloc(sizeof(int32_t) * (rp * 6 + VL));
    sc->slope2 = attune_scratch_alloc(f * rp * 2);
    int ok = (sc->qt || !pl->wide) && (sc->qr || (pl->wide && !pl->use_blas)) && sc->st && sc->acc && sc->lo &&
             sc->slope2;
#if ENGINE_BF16_TILES
    if (ok && pl->bf16) {
        sc->pb = attune_bf16_alloc_p(pl->rp, pl->bk);
#if ENGINE_INT8QK_TILES
        if (pl->int8qk) sc->q8 = attune_int8qk_alloc_q(pl->rp, pl->p->qk_dim);
        else
#endif
            sc->qb = attune_bf16_alloc_q(pl->rp, pl->p->qk_dim);
        ok = (sc->qb || sc->q8) && sc->pb;
    }
#endif
    ok = ok && variant_scratch_alloc(pl, sc);
    if (!ok) {
        engine_scratch_free(sc);
        return 0;
    }
    sc->hi = sc->lo + rp;
    sc->valid = sc->lo + 2 * rp;
    sc->apos = sc->lo + 3 * rp;
    sc->rdoc = sc->lo + 4 * rp;
    sc->rqb = sc->lo + 5 * rp;
    sc->holes = sc->lo + 6 * rp;
    sc->holes[0] = 0;
    sc->sink2 = sc->slope2 + rp;
    return 1;
}

/* ------------------------------------------------------------------ run */

/* Runs every work item on `threads` OpenMP threads (0 = the runtime's
 * default), then, with splits > 1, merges each base item's partials. The
 * variant has allocated its partials. Errors name the kernel (`name`). */
static int32_t engine_run(plan *pl, int32_t threads, const char *name, attune_status *status) {
    const attune_attention_problem *p = pl->p;
    /* bf16/int8 K/V on the wide or sgemm path: the f32 tile code reads packed tiles. */
    attune_attention_problem packed_problem = *p;
    packed_problem.k_stride.row = p->qk_dim;
    packed_problem.v_stride.row = p->v_dim;
    packed_problem.kv.format = ATTUNE_KV_F32;
    plan packed = *pl;
    packed.p = &packed_problem;
    /* (bf16 tiles pack their own K/V from any format: flash_bf16.c.) */
    const int packs = ENGINE_KV_FORMATS && p->kv.format != ATTUNE_KV_F32 && (pl->wide || pl->use_blas) && !pl->bf16;

    /* Masks: per-call tables; tiles counted for p->mask_stats. */
    int64_t counts[3] = {0, 0, 0};
    if (!attention_masks_init(&pl->mk, p, p->mask_stats ? counts : NULL))
        return attune_fail(status, ATTUNE_ERR_OUT_OF_MEMORY, "%s: cannot allocate the mask tables", name);
    packed.mk = pl->mk;

    int failed = 0, nth = 1;
    const int64_t n_items = pl->base_items * pl->splits;
    int64_t next_item = 0;
#ifdef _OPENMP
    nth = threads > 0 ? threads : omp_get_max_threads();
#else
    (void)threads;
#endif
#if ENGINE_BF16_TILES
    if (pl->bf16 && !attune_bf16_prepack(&pl->kv16, nth)) {
        attention_masks_free(&pl->mk);
        return attune_fail(status, ATTUNE_ERR_OUT_OF_MEMORY, "%s: cannot allocate the bf16 K/V tiles", name);
    }
#endif
#if ENGINE_INT8QK_TILES
    if (pl->int8qk && !attune_int8qk_prepack(&pl->k8, nth)) {
        attune_bf16_release(&pl->kv16);
        attention_masks_free(&pl->mk);
        return attune_fail(status, ATTUNE_ERR_OUT_OF_MEMORY, "%s: cannot allocate the int8 K tiles", name);
    }
#endif
#ifdef _OPENMP
#pragma omp parallel num_threads(nth) reduction(| : failed)
#endif
    {
        scratch sc;
        float *pack = packs ? attune_scratch_alloc(sizeof(float) * (size_t)pl->bk * (size_t)(p->qk_dim + p->v_dim)) : NULL;
        const int have_scratch = engine_scratch_alloc(pl, &sc);
        if (!have_scratch || (packs && !pack)) {
            if (have_scratch) engine_scratch_free(&sc);
            failed = 1;
        } else {
            /* Dynamic schedule by hand: clang's `schedule(dynamic)` emits
             * runtime calls newer than Debian's libomp provides (Docs/BUILDING.md). */
            for (;;) {
                int64_t it = __atomic_fetch_add(&next_item, 1, __ATOMIC_RELAXED);
                if (it >= n_items) break;
                engine_run_item(pl, &packed, pack, &sc, it);
            }
            engine_scratch_free(&sc);
        }
        attune_scratch_free(pack);
    }
#if ENGINE_KV_SPLITS
    if (!failed && pl->splits > 1) {
#ifdef _OPENMP
#pragma omp parallel for schedule(static) num_threads(nth)
#endif
        for (int64_t b = 0; b < pl->base_items; b++) variant_merge_item(pl, b);
    }
#endif
#if ENGINE_BF16_TILES
    attune_bf16_release(&pl->kv16);
#endif
#if ENGINE_INT8QK_TILES
    attune_int8qk_release(&pl->k8);
#endif
    attention_masks_free(&pl->mk);
    if (p->mask_stats) *p->mask_stats = (attune_mask_stats){counts[1], counts[0] - counts[1], counts[2]};
    if (failed) return attune_fail(status, ATTUNE_ERR_OUT_OF_MEMORY, "%s: cannot allocate per-thread scratch", name);
    return attune_ok(status);
}

#endif
