/*
 * attention_bf16.h — the `precision=bf16` wide tiles (flash_bf16.c) as the
 * kernels that use them see them: flash and sparge (through flash_softmax.h)
 * and sigmoid. Q.K^T and P.V run on bf16-rounded operands with f32 sums
 * (attention_tiles_bf16.h); everything else stays the kernel's own f32 code.
 *
 * Once per call, prepack rounds K and V of the keys some query row sees
 * (every batch and kv head) into packed buffers (0: out of memory); release
 * frees them. Per work item pack_q rounds the scaled, row-minor Q (qt). Per KV
 * tile of batch x kv head bg: scores writes S^T (f32, [n][rp]) into st; the
 * kernel turns it into P in place (softmax, sigmoid); pv_tile adds P.V for
 * rows [rb, re) (rb a multiple of 16), reading P from st and, for the keys a
 * row sees but the pair kernel does not cover, the f32 V at vbase. Boundary
 * tiles (full == 0) keep every row to the keys it sees, P = 0 elsewhere.
 */
#ifndef ATTUNE_ATTENTION_BF16_H
#define ATTUNE_ATTENTION_BF16_H

#include "attune_attention.h"

#include <stddef.h>
#include <stdint.h>

/* The packed K and V of one call: for keys [klo, klo + klen) (klo even) of
 * every batch x kv head, K [klen][ks2] and V [klen/2][dvp][2] (attention_tiles_bf16.h). */
typedef struct {
    const attune_attention_problem *p;
    const attune_attention_tensors *t;
    int64_t q_offset;
    int dvp;
    int v_only; /* set by the caller: V alone (int8qk tiles quantise K themselves) */
    uint16_t *kpk, *vpk;
    uint8_t *vbad; /* per batch x kv head: a packed V value is NaN or Inf */
    int64_t klo, klen;
    int ks2;
    size_t bytes; /* of the buffer kpk starts */
} attune_bf16_kv;

/* Where a tile's P.V goes: P^T in st ([n][rp], f32), bf16 P pairs scratch pb,
 * accumulator rows acc (stride dvp); alpha: each row is rescaled by alpha[r]
 * first (online softmax), NULL: the tile is summed from zero and then added
 * (sigmoid's blocked summation). lo/hi: each row's visible keys. packed: pb
 * already holds P for every row (attune_bf16_softmax_tile), st is not read. */
typedef struct {
    const float *st;
    int rp;
    uint16_t *pb;
    float *acc;
    const float *alpha;
    const int32_t *lo, *hi;
    int packed;
} attune_bf16_tile;

#define ATTUNE_BF16_HIDDEN __attribute__((visibility("hidden")))

/* Once-per-call buffers kept between calls (flash_bf16.c): a fresh one of tens of MiB
 * costs a page fault per 4 KiB on every call. One slot per user; take returns a kept
 * buffer of at least `bytes` (its size in *got) or a new one, give keeps the larger. */
enum { ATTUNE_KEPT_BF16_KV, ATTUNE_KEPT_INT8QK_K, ATTUNE_KEPT_USERS };
ATTUNE_BF16_HIDDEN void *attune_kept_take(int user, size_t bytes, size_t *got);
ATTUNE_BF16_HIDDEN void attune_kept_give(int user, void *p, size_t bytes);

ATTUNE_BF16_HIDDEN int attune_bf16_prepack(attune_bf16_kv *kv, int threads);
ATTUNE_BF16_HIDDEN void attune_bf16_release(attune_bf16_kv *kv);
/* Scratch of a work item: packed Q of rp rows, P pairs of tiles up to `keys` keys. */
ATTUNE_BF16_HIDDEN uint16_t *attune_bf16_alloc_q(int rp, int64_t qk_dim);
ATTUNE_BF16_HIDDEN uint16_t *attune_bf16_alloc_p(int rp, int keys);
ATTUNE_BF16_HIDDEN void attune_bf16_pack_q(const float *qt, uint16_t *qb, int rp, int64_t qk_dim);
ATTUNE_BF16_HIDDEN void attune_bf16_scores(const attune_bf16_kv *kv, const uint16_t *qb, float *st, int rp, int64_t bg,
                                           int64_t j0, int n);
/* flash's online-softmax step (flash_internal.h: flash_softmax_tile) for the rows
 * [0, rp) of S^T in st, writing P straight into pb as bf16 pairs (every pair
 * touching the tile, zeros outside it) instead of back into st, with a shorter
 * exp2 polynomial (relative error < 5e-5, far below bf16's 2^-9; l sums the same
 * values). Only for a batch x kv head whose packed V is finite (kv->vbad). */
ATTUNE_BF16_HIDDEN void attune_bf16_softmax_tile(float *st, int rp, uint16_t *pb, float *m, float *l, float *alpha,
                                                 const int32_t *lo, const int32_t *hi, int64_t j0, int n, int full);
ATTUNE_BF16_HIDDEN void attune_bf16_pv_tile(const attune_bf16_kv *kv, const attune_bf16_tile *t, int rb, int re,
                                            int64_t bg, const float *vbase, int64_t j0, int n, int full);

#endif
