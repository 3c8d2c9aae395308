/*
 * attention_tiles.h — micro-kernels shared by the tiled attention kernels (flash,
 * unified_max; sigmoid shares the pieces whose math it has in common). Static inline:
 * every kernel gets its own specialised copy, as if the code were in its file.
 */
#ifndef ATTUNE_ATTENTION_TILES_H
#define ATTUNE_ATTENTION_TILES_H

#include "simd.h"

#include <stdint.h>

/* prefetcht1: to L2. Zen 4 honours the hint; L1 prefetch measured 30-50 % slower in
 * decode (it holds the miss buffers the demand loads need; see flash.c). */
static inline void prefetch_l2(const float *p) { __builtin_prefetch(p, 0, 2); }

static int largest_divisor_at_most(int64_t n, int64_t cap) {
    for (int64_t d = cap < n ? cap : n; d > 1; d--)
        if (n % d == 0) return (int)d;
    return 1;
}

/* S^T[kk][c*16..] for RK keys x CV vectors of query rows. */
ATTUNE_INLINE void qk_wide_block(const float *k, int64_t ks, const float *qt, int rp, int dqk,
                                 float *st, const int RK, const int CV) {
    vf acc[6][4];
    for (int kk = 0; kk < RK; kk++)
        for (int c = 0; c < CV; c++) acc[kk][c] = vf_zero();
    for (int d = 0; d < dqk; d++) {
        vf q[4];
        for (int c = 0; c < CV; c++) q[c] = vf_load(qt + (int64_t)d * rp + c * VL);
        for (int kk = 0; kk < RK; kk++) {
            vf kb = vf_set1(k[kk * ks + d]);
            for (int c = 0; c < CV; c++) acc[kk][c] = vf_fma(kb, q[c], acc[kk][c]);
        }
    }
    for (int kk = 0; kk < RK; kk++)
        for (int c = 0; c < CV; c++) vf_store(st + (int64_t)kk * rp + c * VL, acc[kk][c]);
}

#define QK_WIDE_CV(RK)                                                     \
    switch (cv) {                                                          \
    case 4: qk_wide_block(kp, ks, qt, rp, dqk, sp, RK, 4); break;          \
    case 3: qk_wide_block(kp, ks, qt, rp, dqk, sp, RK, 3); break;          \
    case 2: qk_wide_block(kp, ks, qt, rp, dqk, sp, RK, 2); break;          \
    default: qk_wide_block(kp, ks, qt, rp, dqk, sp, RK, 1); break;         \
    }

/* S^T for R rows x KK keys (R * KK == 16): dot products along the head dim,
 * all 16 folded at once by the transpose tree. The 16 scores land key-major
 * in one vector (lane kk*R + r), stored as st[kk*R + r]. With pk != NULL
 * the KK K rows at pk are prefetched along the way. */
ATTUNE_INLINE void qk_narrow_block(const float *q, const float *k, int64_t ks, int dqk, float *st,
                                   const float *pk, const int R, const int KK) {
    vf acc[16];
    for (int i = 0; i < 16; i++) acc[i] = vf_zero();
    for (int d0 = 0; d0 < dqk; d0 += VL) {
        if (pk)
            for (int kk = 0; kk < KK; kk++) prefetch_l2(pk + kk * ks + d0);
        vmask m = vm_first(dqk - d0);
        vf kv[16];
        for (int kk = 0; kk < KK; kk++) kv[kk] = vf_load_n(k + kk * ks + d0, m);
        for (int r = 0; r < R; r++) {
            vf qv = vf_load_n(q + (int64_t)r * dqk + d0, m);
            for (int kk = 0; kk < KK; kk++) acc[kk * R + r] = vf_fma(qv, kv[kk], acc[kk * R + r]);
        }
    }
    vf_store(st, vf_transpose_sum16(acc));
}

/* One key for rows [0, rows): the tail of a tile. */
static void qk_narrow_key(const float *qr, int rows, const float *k, int dqk, float *st) {
    for (int r = 0; r < rows; r++) {
        vf acc = vf_zero();
        for (int d0 = 0; d0 < dqk; d0 += VL) {
            vmask m = vm_first(dqk - d0);
            acc = vf_fma(vf_load_n(qr + (int64_t)r * dqk + d0, m), vf_load_n(k + d0, m), acc);
        }
        st[r] = vf_hsum(acc);
    }
}

#endif
