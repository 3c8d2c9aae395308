/*
 * unified_max.c — split-KV attention with one fixed max per head, the
 * asynchronised softmax of FlashDecoding++ (ALGORITHMS.md §2), fp32, exact
 * through a counted fallback.
 *
 * Math. softmax(x)_j = e^(x_j - phi) / sum_i e^(x_i - phi) for any constant phi.
 * With phi fixed in advance (per query head), every KV split s of a row works
 * on its own, with no running max and no rescaling of its accumulators:
 *
 *   t_j = x_j - phi                          x = scale q.k, natural-log units
 *   f_s = sum_{j in s} e^(t_j) v_j           l_s = sum_{j in s} e^(t_j)
 *   O   = sum_s f_s / sum_s l_s              LSE = phi + ln sum_s l_s
 *
 * so partials combine by plain sums (in double, in split order) instead of a
 * log-sum-exp merge. As in flash.c the kernel works in base-2 units: Q is
 * scaled by scale * log2 e when packed, phi2 = phi * log2 e, p_j = 2^(t_j)
 * with t_j = S_j - phi2, LSE = ln 2 * (phi2 + log2 sum_s l_s).
 *
 * Precision: t_j is never formed in fp32. phi2 = k + r with k an integer and
 * |r| <= 1/2; the kernel computes x_j = S_j - r (as small as the score) and
 * p_j = 2^(x_j - k) with k applied to the exponent only (exp2_shifted), so
 * the result does not depend on |phi|. (Rounding t_j = S_j - phi2 to fp32
 * would cost |t_j| 2^-25 in every exponent: 1.7e-6 relative in each term at
 * |t| = 60 bits, measured as 1e-6 LSE error before this split.) phi2 is
 * clamped to +-2^19 (+-363,000 natural units); any constant is a valid max.
 *
 * Safe range (base-2 units; N = kv_len, n = keys of the split, both >= 1):
 *
 *   high:  max t <= HI = 127 - ceil(log2 n)    per split
 *          every term is <= 2^HI, so l_s <= n 2^HI <= 2^127 < FLT_MAX, and
 *          exp2_shifted (exponent clamped to [-200, 128]) is exact. In
 *          natural units: 88.0 - ln n, one bit inside the paper's 88.7 - ln n.
 *   low:   max t >= LO = ceil(log2 N) - 102    per row, over all its splits
 *          A fixed phi only adds underflow error: terms, products and
 *          partial sums below 2^-126 are denormal (absolute error <= 2^-150)
 *          or, if the caller runs with FTZ/DAZ, flushed (error < 2^-126).
 *          Each key adds a few such errors of size <= 2^-126 (1 + |v|), and
 *          l >= 2^(max t) >= 2^LO, so the extra error in O is below about
 *          N 2^(-126 - LO) (1 + |v|) <= 2^-24 (1 + |v|): fp32 rounding.
 *          In natural units LO = ln N - 70.7 (about -61 at N = 16384); the
 *          paper's "-87" (the max term itself turning denormal) ignores
 *          the N small terms and FTZ.
 *
 * Each split tracks the running row max of t as a by-product (one vmax per
 * score, fused with the exp2 pass) and flags a row whose max leaves the high
 * bound; the merge flags rows whose overall max is below the low bound, and
 * any row whose sum or output is not finite (NaN in the inputs, or |v| near
 * FLT_MAX / 2^HI). Flagged rows are recomputed exactly by flash, through its
 * public entry point, and counted (`fallback_rows_out`); a wrong phi
 * therefore costs time, never accuracy. A split stops early once every row it
 * serves is flagged. Rows with no visible key give O = 0, LSE = -inf and are
 * never flagged.
 *
 * phi: natural-log score units, the units of LSE. `phi_per_head` (one value
 * per q head, e.g. calibrated per layer and head from a high quantile of the
 * observed row maxima) overrides the scalar `phi`. Uncalibrated default:
 * phi = 0. The fp32 window is wide — at N = 16384 with splits of 8192 keys a
 * row needs no fallback while its max score lies in (phi - 61, phi + 79) —
 * so phi = 0 covers rows whose max scale q.k is of the usual size (a few to
 * a few tens); the fallback count shows when a model's are not. The two
 * sides cost differently: a row far above phi is flagged by its first tile
 * and its splits stop early (decode: ~5 % extra), a row far below phi is
 * only known at the merge (a full extra pass: 2x). A calibrated phi at a
 * high quantile of row maxima keeps rows on the cheap side.
 *
 * Structure: a variant of the attention engine (attention_engine.h), so
 * flash's tiling, work items and masking rules are the same code:
 * work item = (batch, kv head, group of q heads, q tile, kv split); a q tile
 * stacks the q heads of a kv group, decode is one tile per group. Each row
 * sees one key interval [lo, hi): KV tiles outside every interval are not
 * visited, interior tiles take the unmasked path, boundary tiles select
 * MASKED (-3e38: p = 0 exactly) and restrict P.V per row, so NaN/Inf in
 * masked K/V never reach a row. The
 * split count depends on the problem only, and merges sum in a fixed order,
 * so results are bitwise identical for any thread count. Decode (< 16 rows
 * per tile) uses the packed narrow path with K/V prefetch; prefill the wide
 * micro-kernels. Threads take items from an atomic counter. K/V stored as
 * bf16 or int8 (p->kv) are widened in registers on the narrow path and
 * dequantised into packed fp32 tiles on the wide one, as in flash.c.
 *
 * ALiBi and sinks (attention_modifiers.h): the bias is added to a tile's
 * scores before the fixed-max step; a sink is one more term of the first
 * split's l (and of its max, so the bounds and the fallback cover it), and a
 * row with a sink but no visible key gives O = 0, LSE = the sink.
 *
 * Parameters (attune_unified_max_params): block_kv (keys per tile, 0 = 256),
 * kv_splits (0 = auto: enough items for 16-way parallelism, >= 512 keys per
 * split, <= 64 — flash's rule), threads (0 = runtime default), phi,
 * phi_per_head + phi_per_head_count (NULL = use phi), fallback_rows_out.
 *
 * Measured against flash (Docs/KERNELS.md, paired in-process A/B, 2 cores
 * Zen 4): parity within the noise, about +-2 %, on decode (GQA 32/8 KV 4096
 * and 16384, MHA 32 KV 8192) and causal prefill (512, 2048). Decode streams
 * K/V from memory and the work a fixed max removes (the max pass, one exp2 and
 * one multiply of O per tile, the LSE merge) is a few percent of a tile.
 */
#include "attune_attention.h"
#include "attention_internal.h"
#include "simd.h"
#include "attention_plan.h"
#include "attention_tiles.h"
#include "kv_tiles.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

enum {
    MAX_BLOCK_KV = 8192,
    HI_BASE = 127,            /* HI = 127 - ceil(log2 n) */
    LO_BASE = -102,           /* LO = ceil(log2 N) - 102 */
    PHI2_LIMIT = 1 << 19,     /* |phi2| clamp, keeps exp2_shifted exact */
};

/* Masked scores and padding: finite, so that exp2_shifted needs no clamp of
 * its argument, and far enough below any phi2 (|phi2| <= 2^19) to give 0. */
#define MASKED (-3.0e38f)

static const double LOG2E = 1.4426950408889634;
static const double LN2 = 0.69314718055994531;

typedef struct {
    ATTENTION_PLAN_FIELDS;
    float lo_bound;      /* LO, base 2 */
    const float *phi_int;  /* [q_heads] round(phi2), phi2 = phi log2 e clamped to +-2^19 */
    const float *phi_frac; /* [q_heads] phi2 - phi_int, in [-1/2, 1/2] */
    float *part_f;       /* [base_items][splits][rows][dvp] unnormalised f_s */
    float *part_l;       /* [base_items][splits][rows] l_s */
    float *part_m;       /* [base_items][splits][rows] max t of the split */
    uint8_t *part_bad;   /* [base_items][splits][rows] high bound broken */
    uint8_t *flag;       /* [batch][q_heads][q_len] row needs the fallback */
} plan;

typedef struct {
    ATTENTION_SCRATCH_FIELDS;
    float *m;           /* running max of S - phi_frac (t + phi_int) per row */
    float *l;           /* l_s */
    float *pf, *pk;     /* phi_frac, phi_int per row */
    int32_t *bad;       /* the row broke the high bound */
} scratch;

/* Over one split: the rows with visible keys in it (once all are flagged the
 * split stops) and its high bound HI. */
typedef struct {
    int live;
    float hi_bound;
} variant_split;

/* The engine's variant (attention_engine.h): every K/V format, per-row sums
 * and bounds, a split that stops once all its rows are flagged, plain P.V (a
 * fixed max never rescales). */
#define ENGINE_KV_FORMATS 1
#define ENGINE_ROW_STATE 1
#define ENGINE_SPLIT_STATE 1
#define ENGINE_PV_MODE ENGINE_PV_PLAIN
#include "attention_engine.h"

static int ceil_log2(int64_t n) {
    int k = 0;
    while (((int64_t)1 << k) < n) k++;
    return k;
}

/* ------------------------------------------------------ fixed-max softmax */

/* 2^(x - k) for integer-valued k (|k| <= 2^19): the fraction comes from x
 * alone and k only shifts the exponent, so the result is as accurate as 2^x
 * whatever the size of phi — forming t = x - k in fp32 first would round away
 * |t| 2^-25 of every exponent. Finite x: 0 below 2^-200 (MASKED gives 0), at
 * most ~2^128 above (such rows are flagged anyway); |x| >= 2^23 is an integer
 * and exact. x = +-inf or NaN gives NaN: the row is flagged by its sum. */
#if defined(__AVX512F__)
ATTUNE_INLINE vf exp2_shifted(vf x, vf k) {
    vf n = _mm512_roundscale_ps(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    vf f = vf_sub(x, n);
    vf e = vf_min(vf_set1(128.0f), vf_max(vf_set1(-200.0f), vf_sub(n, k)));
    return _mm512_scalef_ps(vf_exp2_fraction(f), e);
}
#else
ATTUNE_INLINE vf exp2_shifted(vf x, vf k) {
    vf r;
    for (int i = 0; i < VL; i++) {
        double t = (double)x.v[i] - (double)k.v[i];
        r.v[i] = !isfinite(x.v[i]) ? NAN : t < -200.0 ? 0.0f : (float)exp2(t < 128.0 ? t : 128.0);
    }
    return r;
}
#endif

/* One pass per score: (mask on boundary tiles), x = S - phi_frac, max x,
 * p = 2^(x - phi_int) = 2^(S - phi2), sum. Wide layout: a vector is 16 query
 * rows of one key. */
static void softmax_tile(const plan *pl, const scratch *sc, int64_t j0, int n, int full) {
    const int rp = pl->rp;
    const vf neg_inf = vf_set1(-INFINITY), masked = vf_set1(MASKED);
    for (int c = 0; c < rp; c += VL) {
        vf pf = vf_load(sc->pf + c), pk = vf_load(sc->pk + c), mt = neg_inf, sum = vf_zero();
        vi lo = vi_load(sc->lo + c), hi = vi_load(sc->hi + c);
        float *col = sc->st + c;
        for (int jj = 0; jj < n; jj++) {
            vf s = vf_load(col + (int64_t)jj * rp);
            if (!full) s = vf_blend(vi_in_range(lo, hi, (int32_t)(j0 + jj)), s, masked);
            vf x = vf_sub(s, pf);
            mt = vf_max(mt, x);
            vf pr = exp2_shifted(x, pk);
            vf_store(col + (int64_t)jj * rp, pr);
            sum = vf_add(sum, pr);
        }
        vf_store(sc->l + c, vf_add(vf_load(sc->l + c), sum));
        vf_store(sc->m + c, vf_max(vf_load(sc->m + c), mt));
    }
}

/* The same for rows [r0, r0 + R) of the packed narrow layout (16 / R keys of
 * all R rows per vector). */
static void softmax_packed(const scratch *sc, int r0, int R, int64_t j0, int n, int full) {
    const int nv = (n * R + VL - 1) / VL, keys_per_vec = VL / R;
    const vf neg_inf = vf_set1(-INFINITY), masked = vf_set1(MASKED);
    float *st = sc->st;
    vf pf = vf_row_spread(sc->pf + r0, R), pk = vf_row_spread(sc->pk + r0, R), mt = neg_inf, sum = vf_zero();
    if (full) {
        for (int b = 0; b < nv; b++) {
            vf x = vf_sub(vf_load(st + b * VL), pf);
            mt = vf_max(mt, x);
            vf pr = exp2_shifted(x, pk);
            vf_store(st + b * VL, pr);
            sum = vf_add(sum, pr);
        }
    } else {
        vi lo = vi_row_spread(sc->lo + r0, R), hi = vi_row_spread(sc->hi + r0, R);
        for (int b = 0; b < nv; b++) {
            vf s = vf_load(st + b * VL);
            s = vf_blend(vi_keys_in_range(lo, hi, (int32_t)(j0 + b * keys_per_vec), R), s, masked);
            vf x = vf_sub(s, pf);
            mt = vf_max(mt, x);
            vf pr = exp2_shifted(x, pk);
            vf_store(st + b * VL, pr);
            sum = vf_add(sum, pr);
        }
    }
    vmask rows = vm_first(R);
    vf_store_n(sc->l + r0, vf_add(vf_row_spread(sc->l + r0, R), vf_row_sum(sum, R)), rows);
    vf_store_n(sc->m + r0, vf_max(vf_row_spread(sc->m + r0, R), vf_row_max(mt, R)), rows);
}

/* ----------------------------------------------------------------- hooks */

static void variant_pv_tile(const plan *pl, const scratch *sc, const float *pt, int ps, int rb, int re,
                            const float *vbase, int64_t j0, int n, int full, int prefetch) {
    const pv_target t = engine_pv_target(pl, sc);
    pv_accumulate_tile(&t, pt, ps, rb, re, vbase, j0, n, full, prefetch);
}

static void variant_scores_wide(const plan *pl, const scratch *sc, const float *kbase, int64_t j0, int n) {
    qk_wide_tile(sc->qt, pl->rp, (int)pl->p->qk_dim, kbase, pl->p->k_stride.row, j0, n, sc->st, vf_zero(), 0);
}

ATTUNE_INLINE vf variant_score_narrow(const plan *pl, vf s) {
    (void)pl;
    return s;
}

ATTUNE_INLINE float variant_pad(void) { return MASKED; }

/* The ALiBi bias (attention_modifiers.h) before the fixed-max step; masked
 * scores are replaced after it, so the bias never moves MASKED. */
static void variant_probs_wide(const plan *pl, const scratch *sc, int64_t j0, int n, int full) {
    if (pl->p->alibi_slopes) attention_alibi_wide(sc->st, pl->rp, sc->slope2, sc->apos, j0, n);
    engine_mask_wide(pl, sc, j0, n, MASKED);
    softmax_tile(pl, sc, j0, n, full);
}

static void variant_probs_narrow(const plan *pl, const scratch *sc, int r0, int R, int64_t j0, int n, int full) {
    if (pl->p->alibi_slopes) attention_alibi_packed(sc->st, R, sc->slope2, sc->apos, r0, j0, n);
    engine_mask_packed(pl, sc, r0, R, j0, n, MASKED);
    softmax_packed(sc, r0, R, j0, n, full);
}

/* A sink z (base 2, first split only) is one more term of l: x = z - phi_frac
 * counts in the row's max (so the bounds check it like a score) and
 * 2^(x - phi_int) in its sum. */
ATTUNE_INLINE void variant_row_init(const plan *pl, const scratch *sc, int r, int ok, int64_t head) {
    sc->pf[r] = ok ? pl->phi_frac[head] : 0.0f;
    sc->pk[r] = ok ? pl->phi_int[head] : 0.0f;
    sc->bad[r] = 0;
    sc->m[r] = -INFINITY;
    sc->l[r] = 0.0f;
    if (sc->sink2[r] != -INFINITY) {
        float x[VL] = {0}, e[VL];
        x[0] = sc->sink2[r] - sc->pf[r];
        vf_store(e, exp2_shifted(vf_load(x), vf_set1(sc->pk[r])));
        sc->m[r] = x[0];
        sc->l[r] = e[0];
    }
}

ATTUNE_INLINE variant_split variant_split_begin(const plan *pl, const scratch *sc, int64_t c0, int64_t c1) {
    variant_split vs = {0, (float)(HI_BASE - ceil_log2(c1 - c0))};
    for (int r = 0; r < pl->rows; r++)
        vs.live += sc->valid[r] && sc->lo[r] < sc->hi[r] && sc->lo[r] < c1 && sc->hi[r] > c0;
    return vs;
}

/* Flags rows whose max left the high bound; once every live row is flagged
 * the split stops (the fallback redoes these rows anyway). */
ATTUNE_INLINE int variant_tile_end(const plan *pl, const scratch *sc, const variant_split *vs) {
    int nbad = 0;
    for (int r = 0; r < pl->rows; r++) {
        if (!sc->valid[r]) continue;
        if (!(sc->m[r] - sc->pk[r] <= vs->hi_bound)) sc->bad[r] = 1; /* also NaN */
        nbad += sc->bad[r];
    }
    return nbad == vs->live;
}

static uint8_t *row_flag(const plan *pl, int64_t b, int64_t head, int64_t pos) {
    return pl->flag + (b * pl->p->q_heads + head) * pl->p->q_len + pos;
}

/* What a finished row needs: nothing visible (O = 0, LSE = -inf), the
 * fallback (flagged), or its sums are in range. NaN fails every comparison,
 * so a NaN max or sum is flagged. */
enum { ROW_EMPTY, ROW_FLAGGED, ROW_OK };

static int row_status(const plan *pl, int has_keys, int bad, float tmax, double l) {
    if (!has_keys) return ROW_EMPTY;
    if (bad || !(tmax >= pl->lo_bound) || !(l > 0.0) || !isfinite(l)) return ROW_FLAGGED;
    return ROW_OK;
}

static void write_lse(const plan *pl, int64_t b, int64_t head, int64_t pos, double value) {
    float *e = engine_lse_at(pl, b, head, pos);
    if (e) *e = (float)value;
}

/* Writes a row that needs no output (empty) or flags it; ROW_OK is the caller's. */
static void finish_other(const plan *pl, int64_t b, int64_t head, int64_t pos, int status) {
    if (status == ROW_FLAGGED) {
        *row_flag(pl, b, head, pos) = 1;
        return;
    }
    float *o = engine_out_row(pl, b, head, pos);
    for (int64_t d = 0; d < pl->p->v_dim; d++) o[d] = 0.0f;
    write_lse(pl, b, head, pos, -INFINITY);
}

/* phi2 = phi log2 e as the kernel used it (clamped, split exactly). */
static double phi2_of(const plan *pl, int64_t head) {
    return (double)pl->phi_int[head] + (double)pl->phi_frac[head];
}

/* One split: O = f / l, LSE = ln 2 (phi2 + log2 l); or flags the row. */
static void finish_row(const plan *pl, int64_t b, int64_t head, int64_t pos, int has_keys, int bad,
                       float tmax, float l, const float *f) {
    int status = row_status(pl, has_keys, bad, tmax, l);
    if (status != ROW_OK) {
        finish_other(pl, b, head, pos, status);
        return;
    }
    /* chk stays 0 unless an output is Inf or NaN (then x * 0 is NaN): f
     * overflowed (|V| near FLT_MAX / 2^HI) or a visible V is NaN. */
    float *o = engine_out_row(pl, b, head, pos);
    const int64_t dv = pl->p->v_dim;
    const vf inv = vf_set1(1.0f / l);
    vf chk = vf_zero();
    for (int64_t d0 = 0; d0 < dv; d0 += VL) {
        vmask mk = vm_first((int)(dv - d0 < VL ? dv - d0 : VL));
        vf v = vf_mul(vf_load_n(f + d0, mk), inv);
        vf_store_n(o + d0, v, mk);
        chk = vf_add(chk, vf_mul(v, vf_zero()));
    }
    if (vf_hsum(chk) != 0.0f) {
        *row_flag(pl, b, head, pos) = 1;
        return;
    }
    write_lse(pl, b, head, pos, LN2 * (phi2_of(pl, head) + log2((double)l)));
}

static void variant_store_row(const plan *pl, const scratch *sc, int r, int64_t b, int64_t head, int64_t pos) {
    finish_row(pl, b, head, pos, sc->lo[r] < sc->hi[r] || pl->p->sinks, sc->bad[r], sc->m[r] - sc->pk[r], sc->l[r],
               sc->acc + (int64_t)r * pl->dvp);
}

static void variant_store_partial(const plan *pl, const scratch *sc, int r, int64_t slot_row) {
    memcpy(pl->part_f + slot_row * pl->dvp, sc->acc + (int64_t)r * pl->dvp, sizeof(float) * (size_t)pl->p->v_dim);
    pl->part_l[slot_row] = sc->l[r];
    pl->part_m[slot_row] = sc->m[r];
    pl->part_bad[slot_row] = (uint8_t)sc->bad[r];
}

/* Sums the splits of one base item, row by row, in split order. */
static void variant_merge_item(const plan *pl, int64_t base) {
    const attune_attention_problem *p = pl->p;
    const attention_item x = engine_item_of_base(pl, base);
    enum { CHUNK = 256 };
    double f[CHUNK];
    for (int r = 0; r < pl->rows; r++) {
        int64_t head, pos, lo, hi;
        engine_row_coords(pl, &x, r, &head, &pos);
        if (pos >= p->q_len) continue;
        attune_visible_range(p, pl->q_offset, pos, &lo, &hi);
        double l = 0.0;
        float m = -INFINITY;
        int bad = 0;
        for (int s = 0; s < pl->splits; s++) {
            int64_t slot = (base * pl->splits + s) * pl->rows + r;
            l += pl->part_l[slot];
            float ms = pl->part_m[slot];
            if (ms > m || isnan(ms)) m = ms;
            bad |= pl->part_bad[slot] | isnan(ms);
        }
        int status = row_status(pl, lo < hi || p->sinks, bad, m - pl->phi_int[head], l);
        if (status != ROW_OK) {
            finish_other(pl, x.b, head, pos, status);
            continue;
        }
        /* F = sum_s f_s in double, v_dim in chunks. */
        const int64_t dv = p->v_dim;
        float *o = engine_out_row(pl, x.b, head, pos);
        const double inv = 1.0 / l;
        int overflow = 0;
        for (int64_t d0 = 0; d0 < dv && !overflow; d0 += CHUNK) {
            int64_t n = dv - d0 < CHUNK ? dv - d0 : CHUNK;
            for (int64_t d = 0; d < n; d++) f[d] = 0.0;
            for (int s = 0; s < pl->splits; s++) {
                const float *src = pl->part_f + ((base * pl->splits + s) * pl->rows + r) * pl->dvp + d0;
                for (int64_t d = 0; d < n; d++) f[d] += src[d];
            }
            for (int64_t d = 0; d < n; d++) {
                float v = (float)(f[d] * inv);
                if (!isfinite(v)) overflow = 1;
                o[d0 + d] = v;
            }
        }
        if (overflow) {
            *row_flag(pl, x.b, head, pos) = 1;
            continue;
        }
        write_lse(pl, x.b, head, pos, LN2 * (phi2_of(pl, head) + log2(l)));
    }
}

/* ------------------------------------------------------------- fallback */

/* Recomputes flagged rows with flash: the whole problem when every row with
 * keys is flagged, else per (batch, kv head) the smallest box of heads x
 * positions holding its flagged rows (rows inside the box that were fine are
 * recomputed too, exactly). */
static int32_t recompute(const plan *pl, const attune_unified_max_params *prm, int64_t flagged,
                         int64_t keyed, attune_status *status) {
    const attune_attention_problem *p = pl->p;
    const attune_attention_tensors *t = pl->t;
    attune_flash_params fp = {0};
    fp.block_kv = prm->block_kv;
    fp.kv_splits = prm->kv_splits;
    fp.threads = prm->threads;
    /* The fallback's tiles are not this call's (mask_stats counts unified_max's own). */
    attune_attention_problem whole = *p;
    whole.mask_stats = NULL;
    if (flagged == keyed) return attune_flash_attention(&whole, t, &fp, status);
    for (int64_t b = 0; b < p->batch; b++) {
        for (int64_t g = 0; g < p->kv_heads; g++) {
            int64_t h0 = INT64_MAX, h1 = -1, p0 = INT64_MAX, p1 = -1;
            for (int64_t h = g * pl->group; h < (g + 1) * pl->group; h++)
                for (int64_t i = 0; i < p->q_len; i++)
                    if (*row_flag(pl, b, h, i)) {
                        if (h < h0) h0 = h;
                        if (h > h1) h1 = h;
                        if (i < p0) p0 = i;
                        if (i > p1) p1 = i;
                    }
            if (h1 < 0) continue;
            attune_attention_problem sp = whole;
            sp.batch = 1;
            sp.q_heads = h1 - h0 + 1;
            sp.kv_heads = 1;
            sp.q_len = p1 - p0 + 1;
            sp.q_offset = pl->q_offset + p0;
            if (p->alibi_slopes) sp.alibi_slopes = p->alibi_slopes + h0;
            if (p->sinks) sp.sinks = p->sinks + h0;
            attune_attention_tensors st;
            st.q = t->q + b * p->q_stride.batch + h0 * p->q_stride.head + p0 * p->q_stride.row;
            st.k = kv_at_rt(t->k, b * p->k_stride.batch + g * p->k_stride.head, p->kv.format);
            st.v = kv_at_rt(t->v, b * p->v_stride.batch + g * p->v_stride.head, p->kv.format);
            if (p->kv.format == ATTUNE_KV_INT8) {
                sp.kv.k_scale += b * p->kv.k_scale_stride.batch + g * p->kv.k_scale_stride.head;
                sp.kv.v_scale += b * p->kv.v_scale_stride.batch + g * p->kv.v_scale_stride.head;
            }
            st.o = t->o + b * p->o_stride.batch + h0 * p->o_stride.head + p0 * p->o_stride.row;
            st.lse = t->lse ? t->lse + b * p->lse_stride_batch + h0 * p->lse_stride_head + p0 : NULL;
            int32_t rc = attune_flash_attention(&sp, &st, &fp, status);
            if (rc != ATTUNE_OK) return rc;
        }
    }
    return attune_ok(status);
}

/* ----------------------------------------------------------- entry point */

static void variant_scratch_free(scratch *sc) {
    attune_scratch_free(sc->m);
    attune_scratch_free(sc->bad);
}

static int variant_scratch_alloc(const plan *pl, scratch *sc) {
    const size_t rp = (size_t)pl->rp;
    sc->m = attune_scratch_alloc(sizeof(float) * rp * 4);
    sc->bad = attune_scratch_alloc(sizeof(int32_t) * rp);
    if (!sc->m || !sc->bad) return 0;
    sc->l = sc->m + rp;
    sc->pf = sc->m + 2 * rp;
    sc->pk = sc->m + 3 * rp;
    return 1;
}

static void plan_free(plan *pl) {
    attune_scratch_free(pl->part_f);
    attune_scratch_free(pl->part_l);
    attune_scratch_free(pl->part_m);
    attune_scratch_free(pl->part_bad);
    free(pl->flag);
    free((void *)pl->phi_int);
}

int32_t attune_unified_max_attention(const attune_attention_problem *p, const attune_attention_tensors *t,
                                     const attune_unified_max_params *params, attune_status *status) {
    int32_t rc = attune_attention_validate_kv(p, t, ATTUNE_KV_ALL_FORMATS | ATTUNE_ACCEPTS_ALIBI | ATTUNE_ACCEPTS_SINKS | ATTUNE_ACCEPTS_MASKS,
                                              "unified_max", status);
    if (rc != ATTUNE_OK) return rc;
    attune_unified_max_params prm = {0};
    if (params) prm = *params;
    if (prm.fallback_rows_out) *prm.fallback_rows_out = 0;
    if (prm.block_kv < 0 || prm.kv_splits < 0 || prm.threads < 0)
        return attune_fail(status, ATTUNE_ERR_INVALID_ARGUMENT, "unified_max parameters must be non-negative");
    if (prm.block_kv > MAX_BLOCK_KV)
        return attune_fail(status, ATTUNE_ERR_INVALID_ARGUMENT, "block_kv must be <= %d (got %d)", MAX_BLOCK_KV,
                           prm.block_kv);
    if (!isfinite(prm.phi))
        return attune_fail(status, ATTUNE_ERR_INVALID_ARGUMENT, "phi must be finite, got %g", (double)prm.phi);
    if (prm.phi_per_head) {
        if (prm.phi_per_head_count != p->q_heads)
            return attune_fail(status, ATTUNE_ERR_INVALID_ARGUMENT,
                               "phi_per_head has %lld values but the problem has %lld q heads",
                               (long long)prm.phi_per_head_count, (long long)p->q_heads);
        for (int64_t h = 0; h < p->q_heads; h++)
            if (!isfinite(prm.phi_per_head[h]))
                return attune_fail(status, ATTUNE_ERR_INVALID_ARGUMENT, "phi_per_head[%lld] must be finite, got %g",
                                   (long long)h, (double)prm.phi_per_head[h]);
    } else if (prm.phi_per_head_count != 0) {
        return attune_fail(status, ATTUNE_ERR_INVALID_ARGUMENT,
                           "phi_per_head_count is %lld but phi_per_head is NULL", (long long)prm.phi_per_head_count);
    }

    plan pl = {0};
    int32_t block_q = 0, block_kv = prm.block_kv, kv_splits = prm.kv_splits;
    int npos, hpt;
    attention_resolve_tiling(p, &block_q, &block_kv, &kv_splits, &npos, &hpt);
    engine_plan_init(&pl, p, t, npos, hpt, block_kv, kv_splits, ATTUNE_PRECISION_F32);
    pl.lo_bound = (float)(ceil_log2(p->kv_len > 1 ? p->kv_len : 1) + LO_BASE);

    const size_t n_rows = (size_t)(p->batch * p->q_heads * p->q_len);
    float *phi_int = malloc(sizeof(float) * 2 * (size_t)p->q_heads);
    pl.phi_int = phi_int;
    pl.phi_frac = phi_int ? phi_int + p->q_heads : NULL;
    pl.flag = calloc(n_rows, 1);
    if (pl.splits > 1) {
        size_t slots = (size_t)pl.base_items * (size_t)pl.splits * (size_t)pl.rows;
        pl.part_f = attune_scratch_alloc(sizeof(float) * slots * (size_t)pl.dvp);
        pl.part_l = attune_scratch_alloc(sizeof(float) * slots);
        pl.part_m = attune_scratch_alloc(sizeof(float) * slots);
        pl.part_bad = attune_scratch_alloc(slots);
    }
    if (!phi_int || !pl.flag || (pl.splits > 1 && (!pl.part_f || !pl.part_l || !pl.part_m || !pl.part_bad))) {
        plan_free(&pl);
        return attune_fail(status, ATTUNE_ERR_OUT_OF_MEMORY, "unified_max: cannot allocate split partials");
    }
    for (int64_t h = 0; h < p->q_heads; h++) {
        /* Any constant is a valid max: clamping |phi2| to 2^19 (363,000 in
         * natural units, where every realistic row falls back anyway) keeps
         * exp2_shifted's integer arithmetic exact. */
        double phi2 = (double)(prm.phi_per_head ? prm.phi_per_head[h] : prm.phi) * LOG2E;
        phi2 = phi2 < -PHI2_LIMIT ? -PHI2_LIMIT : phi2 > PHI2_LIMIT ? PHI2_LIMIT : phi2;
        phi_int[h] = (float)nearbyint(phi2);
        phi_int[p->q_heads + h] = (float)(phi2 - nearbyint(phi2));
    }

    rc = engine_run(&pl, prm.threads, "unified_max", status);
    if (rc != ATTUNE_OK) {
        plan_free(&pl);
        return rc;
    }

    int64_t flagged = 0, keyed_pos = 0;
    for (size_t i = 0; i < n_rows; i++) flagged += pl.flag[i];
    rc = attune_ok(status);
    if (flagged > 0) {
        for (int64_t i = 0; i < p->q_len; i++) {
            int64_t lo, hi;
            attune_visible_range(p, pl.q_offset, i, &lo, &hi);
            keyed_pos += lo < hi || p->sinks;
        }
        rc = recompute(&pl, &prm, flagged, p->batch * p->q_heads * keyed_pos, status);
    }
    if (prm.fallback_rows_out) *prm.fallback_rows_out = flagged;
    plan_free(&pl);
    return rc;
}
