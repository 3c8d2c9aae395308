/*
 * flash_tiles.c — the tile loops of flash.c that instantiate the AVX-512
 * micro-kernels for every tile shape (see flash_internal.h for why they are
 * a translation unit of their own): wide scores, P.V rows, and the P.V tile
 * loop with per-row masking of boundary tiles (also used by sparge.c).
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

/* acc[r][dv0..] = alpha_r acc[r] + sum_{jj in [jb, je)} P[jj][r] V[jj] for RR
 * rows x CV vectors; `tail` masks the last vector's lanes (v_dim % 16).
 * With PF (decode), for jj < pf_end the same columns of V row
 * jj + PREFETCH_KEYS_AHEAD are prefetched; it is a compile-time switch
 * because even a never-taken test in this loop cost prefill 13%. */
ATTUNE_INLINE void pv_block(float *acc, int dvp, const float *alpha, int apply_alpha,
                            const float *pt, int ps, const float *v, int64_t vs,
                            int jb, int je, int pf_end, vmask tail, const int RR, const int CV,
                            const int PF) {
    vf o[6][4];
    for (int r = 0; r < RR; r++) {
        vf a = vf_set1(apply_alpha ? alpha[r] : 1.0f);
        for (int c = 0; c < CV; c++) o[r][c] = vf_mul(vf_load(acc + (int64_t)r * dvp + c * VL), a);
    }
    for (int jj = jb; jj < je; jj++) {
        const float *vr = v + (int64_t)jj * vs;
        if (PF && jj < pf_end)
            for (int c = 0; c < CV; c++) prefetch_l2(vr + PREFETCH_KEYS_AHEAD * vs + c * VL);
        vf vv[4];
        for (int c = 0; c < CV; c++) vv[c] = c == CV - 1 ? vf_load_n(vr + c * VL, tail) : vf_load(vr + c * VL);
        const float *pr = pt + (int64_t)jj * ps;
        for (int r = 0; r < RR; r++) {
            vf pb = vf_set1(pr[r]);
            for (int c = 0; c < CV; c++) o[r][c] = vf_fma(pb, vv[c], o[r][c]);
        }
    }
    for (int r = 0; r < RR; r++)
        for (int c = 0; c < CV; c++) vf_store(acc + (int64_t)r * dvp + c * VL, o[r][c]);
}

#define PV_CV(RR, PF)                                                                               \
    switch (cv) {                                                                                   \
    case 4: pv_block(ap, dvp, al, apply, pt, ps, vp, vs, jb, je, pf_end, tail, RR, 4, PF); break;  \
    case 3: pv_block(ap, dvp, al, apply, pt, ps, vp, vs, jb, je, pf_end, tail, RR, 3, PF); break;  \
    case 2: pv_block(ap, dvp, al, apply, pt, ps, vp, vs, jb, je, pf_end, tail, RR, 2, PF); break;  \
    default: pv_block(ap, dvp, al, apply, pt, ps, vp, vs, jb, je, pf_end, tail, RR, 1, PF); break; \
    }

/* Rows [r0, r0+rr) over keys [jb, je) of the tile, all v_dim columns;
 * P[r0 + i][jj] is pt[jj * ps + i]. */
void attune_flash_pv_rows(const plan *pl, const scratch *sc, const float *vtile, const float *pt, int ps,
                    int r0, int rr, int jb, int je, int apply, int pf_end) {
    const int dvp = pl->dvp, dv = (int)pl->p->v_dim;
    const int64_t vs = pl->p->v_stride.row;
    const float *al = sc->alpha + r0;
    for (int d0 = 0; d0 < dv; d0 += 4 * VL) {
        int cols = dv - d0 < 4 * VL ? dv - d0 : 4 * VL;
        int cv = (cols + VL - 1) / VL;
        vmask tail = vm_first(cols - (cv - 1) * VL);
        float *ap = sc->acc + (int64_t)r0 * dvp + d0;
        const float *vp = vtile + d0;
        if (pf_end > jb) { /* decode: rr <= 4 */
            switch (rr) {
            case 4: PV_CV(4, 1) break;
            case 3: PV_CV(3, 1) break;
            case 2: PV_CV(2, 1) break;
            default: PV_CV(1, 1) break;
            }
            continue;
        }
        switch (rr) {
        case 6: PV_CV(6, 0) break;
        case 5: PV_CV(5, 0) break;
        case 4: PV_CV(4, 0) break;
        case 3: PV_CV(3, 0) break;
        case 2: PV_CV(2, 0) break;
        default: PV_CV(1, 0) break;
        }
    }
}

void attune_flash_pv_tile(const plan *pl, const scratch *sc, const float *pt, int ps, int rb, int re,
                          const float *vbase, int64_t j0, int n, int full, int prefetch) {
    /* Prefetch V rows PREFETCH_KEYS_AHEAD ahead of keys [0, pf_end) of the tile. */
    int64_t pf_keys = pl->p->kv_len - PREFETCH_KEYS_AHEAD - j0;
    int pf_end = !prefetch || pf_keys < 0 ? 0 : pf_keys < n ? (int)pf_keys : n;
    const float *vtile = vbase + j0 * pl->p->v_stride.row;
    for (int r0 = rb; r0 < re; r0 += 6) {
        int rr = re - r0 < 6 ? re - r0 : 6;
        const float *p0 = pt + (r0 - rb);
        if (full) {
            attune_flash_pv_rows(pl, sc, vtile, p0, ps, r0, rr, 0, n, 1, pf_end);
            continue;
        }
        /* Keys every live row of the block sees go through the block kernel;
         * each row's remaining keys go row by row, so a row never multiplies
         * a V row it cannot see. Rows with no visible key are skipped: their
         * output is forced to 0 at the end. */
        int64_t a = j0, b = j0 + n;
        for (int r = r0; r < r0 + rr; r++) {
            if (sc->lo[r] >= sc->hi[r]) continue;
            if (sc->lo[r] > a) a = sc->lo[r];
            if (sc->hi[r] < b) b = sc->hi[r];
        }
        if (b < a) b = a;
        attune_flash_pv_rows(pl, sc, vtile, p0, ps, r0, rr, (int)(a - j0), (int)(b - j0), 1, 0);
        for (int r = r0; r < r0 + rr; r++) {
            if (sc->lo[r] >= sc->hi[r]) continue;
            const float *pr = pt + (r - rb);
            int64_t lo = sc->lo[r] > j0 ? sc->lo[r] : j0, hi = sc->hi[r] < j0 + n ? sc->hi[r] : j0 + n;
            if (lo < a) attune_flash_pv_rows(pl, sc, vtile, pr, ps, r, 1, (int)(lo - j0), (int)((hi < a ? hi : a) - j0), 0, 0);
            if (hi > b) attune_flash_pv_rows(pl, sc, vtile, pr, ps, r, 1, (int)((lo > b ? lo : b) - j0), (int)(hi - j0), 0, 0);
        }
    }
}
