/*
 * flash_internal.h — what flash.c and flash_tiles.c share. The two heavy
 * micro-kernel users (wide scores, P.V rows: dozens of tile-shape
 * specialisations) live in their own translation unit so the two halves
 * compile in parallel when a model is built.
 */
#ifndef ATTUNE_FLASH_INTERNAL_H
#define ATTUNE_FLASH_INTERNAL_H

#include "attune_attention.h"

#include <stdint.h>

enum {
    DEFAULT_BLOCK_Q = 64,
    DEFAULT_BLOCK_KV = 256,
    TARGET_ITEMS = 16,     /* work items wanted before splitting KV */
    MIN_SPLIT_KEYS = 512,  /* fewer keys per split cost more to merge than they save */
    MAX_SPLITS = 64,
    WIDE_MIN_ROWS = 16,
};

typedef struct {
    const attune_attention_problem *p;
    const attune_attention_tensors *t;
    int64_t q_offset, group, qtiles, hgroups, base_items;
    int npos, hpt, rows, rp, dvp, bk, splits, wide, use_blas;
    float qscale;
    float *part_o;   /* [base_items][splits][rows][dvp] when splits > 1 */
    float *part_lse; /* [base_items][splits][rows] */
} plan;

typedef struct {
    float *qt;      /* [qk_dim][rp]  scaled Q, row-minor (wide) */
    float *qr;      /* [rows][qk_dim] scaled Q, row-major (narrow, BLAS) */
    float *st;      /* [bk][rp]      scores, then probabilities */
    float *acc;     /* [rp][dvp]     unnormalised output */
    float *m, *l, *alpha;
    int32_t *lo, *hi; /* visible key interval per row; lo == hi: none */
    int32_t *valid;   /* row maps to a real (head, position) */
} scratch;

/* Decode streams K and V from DRAM at a pace the hardware prefetcher alone
 * does not cover, so the narrow path asks for the rows this many keys ahead:
 * K while computing scores, V while accumulating P.V, so requests flow in
 * both phases. Prefetches go to L2, one line per row per vector step, spread
 * among the FMAs: bursts of a whole row were ~10% slower, and prefetcht0
 * (L1) far slower, as it holds the L1 miss buffers the demand loads need.
 * 8..32 keys ahead measured alike. */
enum { PREFETCH_KEYS_AHEAD = 16 };

#define ATTUNE_HIDDEN __attribute__((visibility("hidden")))

/* S^T of a wide (>= 16 rows) q tile against keys [j0, j0 + n). */
ATTUNE_HIDDEN void attune_flash_scores_wide(const plan *pl, const scratch *sc, const float *kbase, int64_t j0, int n);

/* acc rows [r0, r0 + rr) = alpha acc + P V over keys [jb, je) of a tile; P[r0 + i][jj] is
 * pt[jj * ps + i]; with pf_end > jb (decode) V rows are prefetched ahead. */
ATTUNE_HIDDEN void attune_flash_pv_rows(const plan *pl, const scratch *sc, const float *vtile, const float *pt, int ps,
                                        int r0, int rr, int jb, int je, int apply, int pf_end);

#endif
