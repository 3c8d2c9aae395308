/*
 * attention_plan.h — the tiling every tiled attention kernel shares: how a
 * problem is cut into q tiles, work items and KV splits, and the plan and
 * scratch fields the engine (attention_engine.h) reads. Internal, not ABI.
 *
 * A q tile stacks the q heads that share a kv head: `hpt` heads x `npos`
 * positions = `rows` (padded to `rp`, a whole number of vectors). A work item
 * is (batch, kv head, head group, q tile, KV split); `base_items` counts them
 * without the split. The split count depends on the problem only, never on
 * the thread count, so every kernel's results are bitwise thread-independent.
 *
 * A kernel's plan and scratch are its own structs beginning with the fields
 * below (the engine and the kernel's hooks read them by name, and so does
 * flash_softmax.h, flash's online softmax shared with sparge.c):
 * ATTENTION_PLAN_FIELDS, then the kernel's constants and split partials;
 * ATTENTION_SCRATCH_FIELDS, then its per-row running state.
 */
#ifndef ATTUNE_ATTENTION_PLAN_H
#define ATTUNE_ATTENTION_PLAN_H

#include "attune_attention.h"
#include "attention_bf16.h"
#include "attention_int8qk.h"
#include "attention_mask.h"
#include "attention_tiles.h"

#include <stdint.h>

enum {
    DEFAULT_BLOCK_Q = 64,
    DEFAULT_BLOCK_KV = 256,
    TARGET_ITEMS = 16,    /* work items wanted before splitting KV */
    MIN_SPLIT_KEYS = 512, /* fewer keys per split cost more to merge than they save */
    MAX_SPLITS = 64,
    WIDE_MIN_ROWS = 16,   /* q tiles of at least this many rows take the wide tiles */
};

/* p, t: the call. q_offset: position of query row 0. group: q heads per kv head;
 * qtiles x hgroups tiles per (batch, kv head). bk: keys per KV tile; splits: KV
 * chunks per tile. wide: the wide micro-kernels (else the narrow, decode ones);
 * use_blas: full tiles through sgemm (flash only); bf16: wide tiles on bf16
 * operands (attention_bf16.h), kv16 their packed K/V. qscale: scale * log2 e,
 * folded into Q as it is packed (every kernel works in base-2 units). int8qk:
 * wide tiles' Q.K^T on int8 operands (attention_int8qk.h, k8 its packed K; bf16
 * is set too, for the rest of the tile). */
#define ATTENTION_PLAN_FIELDS                                    \
    const attune_attention_problem *p;                           \
    const attune_attention_tensors *t;                           \
    int64_t q_offset, group, qtiles, hgroups, base_items;        \
    int npos, hpt, rows, rp, dvp, bk, splits, wide, use_blas;    \
    int bf16, int8qk;                                            \
    attune_bf16_kv kv16;                                         \
    attune_int8qk_k k8;                                          \
    attention_masks mk; /* doc ids, block bitmask (engine_run) */ \
    float qscale

/* Per thread: Q packed row-minor (qt, wide tiles) and row-major (qr, narrow and
 * sgemm tiles), the tile's S^T then P^T (st), the output accumulator, each row's
 * visible keys [lo, hi) (lo == hi: none) and whether it is a real (head,
 * position); the score modifiers of each row (attention_modifiers.h); bf16
 * tiles: Q and P in bf16 pairs (attention_tiles_bf16.h); int8qk tiles: Q
 * quantised, with its scales (attention_int8qk.h); masks with holes: each
 * row's document and q block, and whether the current tile is partly visible
 * (attention_mask.h). */
#define ATTENTION_SCRATCH_FIELDS                                 \
    float *qt;       /* [qk_dim][rp] */                          \
    float *qr;       /* [rows][qk_dim] */                        \
    float *st;       /* [bk][rp], or [bk][R] packed (narrow) */  \
    float *acc;      /* [rp][dvp] */                             \
    int32_t *lo, *hi, *valid;                                    \
    int32_t *apos;   /* row's absolute position (ALiBi) */       \
    float *slope2;   /* row's ALiBi slope * log2 e (0: none) */  \
    float *sink2;    /* row's sink * log2 e (-inf: none) */      \
    int32_t *rdoc, *rqb; /* row's document id, q block (masks) */ \
    int32_t *holes;  /* [0]: the tile needs the element mask */  \
    uint16_t *qb;    /* [qk_dim/2][rp][2] */                     \
    uint16_t *pb;    /* [bk/2][rp][2] */                         \
    int8_t *q8       /* [qk_dim/4][rp][4], then scales */

/* One work item: batch, kv head, head group, q tile, split; `base` numbers it
 * without the split (the index of its partials). */
typedef struct {
    int64_t b, g, hg, qt, split, base;
} attention_item;

/* The keys a q tile must consider: the union [ulo, uhi) of the intervals of rows that
 * see any key (the keys to visit) and the intersection [flo, fhi) of the intervals of
 * every real row (KV tiles inside it need no mask). Start from attention_span_none(),
 * add each real row's [lo, hi); an empty union stays ulo > uhi. */
typedef struct {
    int64_t ulo, uhi, flo, fhi;
} attention_span;

static inline attention_span attention_span_none(void) {
    return (attention_span){INT64_MAX, INT64_MIN, INT64_MIN, INT64_MAX};
}

static inline void attention_span_add(attention_span *s, int64_t lo, int64_t hi) {
    if (lo < hi && lo < s->ulo) s->ulo = lo;
    if (lo < hi && hi > s->uhi) s->uhi = hi;
    if (lo > s->flo) s->flo = lo;
    if (hi < s->fhi) s->fhi = hi;
}

/* The tiling rule, in place: zeros become the defaults (block_q 64, block_kv
 * 256, kv_splits enough items for TARGET_ITEMS-way parallelism with at least
 * MIN_SPLIT_KEYS keys per chunk, at most MAX_SPLITS); npos, hpt: a q tile's
 * positions and stacked heads. */
static inline void attention_resolve_tiling(const attune_attention_problem *p, int32_t *block_q, int32_t *block_kv,
                                            int32_t *kv_splits, int *npos, int *hpt) {
    if (*block_q <= 0) *block_q = DEFAULT_BLOCK_Q;
    if (*block_kv <= 0) *block_kv = DEFAULT_BLOCK_KV;
    int64_t group = p->q_heads / p->kv_heads;
    int64_t np = p->q_len < *block_q ? p->q_len : *block_q;
    int64_t h = largest_divisor_at_most(group, *block_q / np > 0 ? *block_q / np : 1);
    if (*kv_splits <= 0) {
        int64_t items = p->batch * p->kv_heads * (group / h) * ((p->q_len + np - 1) / np);
        int64_t s = items >= TARGET_ITEMS ? 1 : (TARGET_ITEMS + items - 1) / items;
        int64_t span = p->window > 0 && p->window < p->kv_len ? p->window + np : p->kv_len;
        int64_t cap = span / MIN_SPLIT_KEYS;
        if (s > cap) s = cap;
        *kv_splits = s < 1 ? 1 : (int32_t)s;
    }
    if (*kv_splits > MAX_SPLITS) *kv_splits = MAX_SPLITS;
    *npos = (int)np;
    *hpt = (int)h;
}

#endif
