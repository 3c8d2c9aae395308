/*
 * flash_tiles.c — the tile loops of flash.c that instantiate the AVX-512
 * micro-kernels for every tile shape (see flash_internal.h for why they are
 * a translation unit of their own): wide scores, and flash's instance of the
 * shared P.V tile (attention_tiles.h) with its online-softmax rescale (also
 * used by sparge.c, hence the explicit operands).
 */
#include "attention_internal.h"
#include "simd.h"
#include "attention_tiles.h"
#include "flash_internal.h"

void attune_flash_scores_wide(const float *qt, int rp, int dqk, const float *kbase, int64_t ks, int64_t j0, int n,
                              float *st) {
    qk_wide_tile(qt, rp, dqk, kbase, ks, j0, n, st, vf_zero(), 0);
}

void attune_flash_pv_tile(const pv_target *t, const float *pt, int ps, int rb, int re, const float *vbase, int64_t j0,
                          int n, int full, int prefetch) {
    /* Rescaled, f32: the constants specialise the shared tile. */
    const pv_target f = {.acc = t->acc, .dvp = t->dvp, .alpha = t->alpha, .lo = t->lo, .hi = t->hi, .dv = t->dv,
                         .vs = t->vs, .kv_len = t->kv_len};
    pv_accumulate_tile(&f, pt, ps, rb, re, vbase, j0, n, full, prefetch);
}
