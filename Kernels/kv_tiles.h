/*
 * kv_tiles.h — the tiles of K/V stored as bf16 or int8 (attune_kv_format), for
 * the kernels that read a KV cache (flash, unified_max, ...). Decode-shaped
 * tiles (the narrow path, <= 4 rows per block) widen K and V in registers
 * inside the same micro-kernels as fp32 (attention_tiles.h, instantiated for
 * the format in kv_tiles.c); wide (prefill) tiles are dequantised into an
 * fp32 tile of block_kv rows while packing, then go through the fp32 tile
 * code unchanged. Internal, not part of the ABI.
 */
#ifndef ATTUNE_KV_TILES_H
#define ATTUNE_KV_TILES_H

#include "attune_attention.h"
#include "attention_tiles.h"

#include <stdint.h>

/* One (batch, kv head)'s keys and values as stored. */
typedef struct {
    int fmt;                 /* attune_kv_format */
    const void *k, *v;       /* key 0 of the head */
    int64_t ks, vs;          /* row strides, in elements of fmt */
    const float *ksc, *vsc;  /* int8: key j's scales at ksc[j * kss], vsc[j * vss]; else NULL */
    int64_t kss, vss;
    int dk, dv;
    int64_t kv_len;
} kv_head;

#define ATTUNE_HIDDEN_KV __attribute__((visibility("hidden")))

ATTUNE_HIDDEN_KV void attune_kv_head(const attune_attention_problem *p, const attune_attention_tensors *t,
                                     int64_t b, int64_t g, kv_head *out);

/* Scores of R (1, 2 or 4) query rows q (row-major, dk floats each, already scaled) for
 * keys [j0, j0 + n) into st, key-major with row stride R (attention_tiles.h's packed
 * layout), int8 scales applied, padded with `pad` to a whole vector. With prefetch,
 * K rows PREFETCH_KEYS_AHEAD keys ahead are requested. */
ATTUNE_HIDDEN_KV void attune_kv_scores_narrow(const kv_head *h, const float *q, int R, int64_t j0, int n,
                                              int prefetch, float pad, float *st);

/* pv_accumulate_tile (attention_tiles.h) over h's V: `target` gives acc, alpha, rows'
 * intervals and dims; its V fields are set from h. Rows [rb, re) with re - rb <= 4. */
ATTUNE_HIDDEN_KV void attune_kv_pv_tile(const kv_head *h, const pv_target *target, const float *pt, int ps,
                                        int rb, int re, int64_t j0, int n, int full, int prefetch);

/* Rows [j0, j0 + n) of h's K (v = 0, dk floats per row) or V (v = 1, dv floats per
 * row) dequantised into dst, rows contiguous. */
ATTUNE_HIDDEN_KV void attune_kv_unpack(const kv_head *h, int v, int64_t j0, int n, float *dst);

/* The fp32 tile code addresses V rows by absolute key index (base + j * stride): the
 * base that puts key j0 at `tile`. Integer arithmetic, as the pointer itself would
 * lie outside any object. */
static inline const float *kv_tile_base(const float *tile, int64_t j0, int64_t stride) {
    return (const float *)((uintptr_t)tile - (uintptr_t)(j0 * stride) * sizeof(float));
}

#endif
