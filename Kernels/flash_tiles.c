/*
 * flash_tiles.c — the tile loops of flash.c that instantiate the AVX-512
 * micro-kernels for every tile shape (see flash_internal.h for why they are
 * a translation unit of their own): wide scores, and flash's instance of the
 * shared P.V tile (attention_tiles.h) with its online-softmax rescale (also
 * used by sparge.c).
 */
#include "attention_internal.h"
#include "simd.h"
#include "attention_tiles.h"
#include "flash_internal.h"

void attune_flash_scores_wide(const plan *pl, const scratch *sc, const float *kbase, int64_t j0, int n) {
    qk_wide_tile(sc->qt, pl->rp, (int)pl->p->qk_dim, kbase, pl->p->k_stride.row, j0, n, sc->st, vf_zero(), 0);
}

void attune_flash_pv_tile(const plan *pl, const scratch *sc, const float *pt, int ps, int rb, int re,
                          const float *vbase, int64_t j0, int n, int full, int prefetch) {
    const pv_target t = {sc->acc, pl->dvp, sc->alpha, 0, sc->lo, sc->hi, (int)pl->p->v_dim, pl->p->v_stride.row, pl->p->kv_len};
    pv_accumulate_tile(&t, pt, ps, rb, re, vbase, j0, n, full, prefetch);
}
