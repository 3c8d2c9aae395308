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
    const int rp = pl->rp, dqk = (int)pl->p->qk_dim;
    const int64_t ks = pl->p->k_stride.row;
    for (int c0 = 0; c0 < rp / VL; c0 += 4) {
        int cv = rp / VL - c0 < 4 ? rp / VL - c0 : 4;
        const float *qt = sc->qt + c0 * VL;
        for (int jj = 0; jj < n; jj += 6) {
            const float *kp = kbase + (j0 + jj) * ks;
            float *sp = sc->st + (int64_t)jj * rp + c0 * VL;
            switch (n - jj < 6 ? n - jj : 6) {
            case 6: QK_WIDE_CV(6) break;
            case 5: QK_WIDE_CV(5) break;
            case 4: QK_WIDE_CV(4) break;
            case 3: QK_WIDE_CV(3) break;
            case 2: QK_WIDE_CV(2) break;
            default: QK_WIDE_CV(1) break;
            }
        }
    }
}

void attune_flash_pv_tile(const plan *pl, const scratch *sc, const float *pt, int ps, int rb, int re,
                          const float *vbase, int64_t j0, int n, int full, int prefetch) {
    const pv_target t = {sc->acc, pl->dvp, sc->alpha, 0, sc->lo, sc->hi, (int)pl->p->v_dim, pl->p->v_stride.row, pl->p->kv_len};
    pv_accumulate_tile(&t, pt, ps, rb, re, vbase, j0, n, full, prefetch);
}
