/*
 * hybrid_internal.h — the two-tier KV cache's layout, shared by hybrid_kv.c
 * (the store) and hybrid.c (the attention). Not part of the ABI.
 */
#ifndef ATTUNE_HYBRID_INTERNAL_H
#define ATTUNE_HYBRID_INTERNAL_H

#include "attune_attention.h"

#include <stddef.h>
#include <stdint.h>

/* A virtual address range reserved up front (PROT_NONE) and made usable from
 * its start as it grows, by anonymous memory or by a file mapped MAP_SHARED.
 * Its base never moves, so pointers into it stay valid while it grows. */
typedef struct {
    uint8_t *base;
    size_t reserved;  /* bytes of address space */
    size_t committed; /* bytes usable from base (and the file's size) */
    int fd;           /* -1: anonymous */
} attune_hybrid_region;

struct attune_hybrid_kv {
    int64_t kv_heads, dk, dv, window, max_tokens;
    int32_t dtype, block, release_written;
    int64_t len;      /* tokens appended since create/reset */
    int64_t cold_len; /* tokens in the cold tier: a multiple of block */
    /* Hot tier, per head [hot_cap][dk] / [hot_cap][dv] elements of hot_format
     * (hot_elem bytes each; int8: the scales per head [hot_cap] in hot_ks /
     * hot_vs); the tier's tokens are rows [hot_start, hot_start + hot_len) with
     * hot_len = len - cold_len. */
    int32_t hot_format;
    size_t hot_elem;
    uint8_t *hot_k, *hot_v;
    float *hot_ks, *hot_vs;
    int64_t hot_cap, hot_start;
    /* A quantised hot tier: one block of one head dequantised before it moves cold. */
    float *spill_k, *spill_v;
    /* Cold tier: record (block b, head g) at cold.base + (b * kv_heads + g) * rec_bytes:
     * K [block][dk] | V [block][dv] in the cold dtype, then for int8 the K scales
     * [dk] and the V scales [block] (fp32). Offsets within a record below. */
    size_t rec_bytes, k_off, v_off, ks_off, vs_off, elem_bytes;
    attune_hybrid_region cold;
    /* Summaries, record (b, g) at summ.base + (b * kv_heads + g) * 2 * dk floats:
     * per-dim min then max of the block's stored (dequantised) keys. */
    attune_hybrid_region summ;
    size_t released; /* file-backed: bytes of the cold file already madvised away */
};

static inline const uint8_t *attune_hybrid_cold_record(const struct attune_hybrid_kv *c, int64_t b, int64_t g) {
    return c->cold.base + ((size_t)b * (size_t)c->kv_heads + (size_t)g) * c->rec_bytes;
}

static inline const float *attune_hybrid_summary(const struct attune_hybrid_kv *c, int64_t b, int64_t g) {
    return (const float *)c->summ.base + ((size_t)b * (size_t)c->kv_heads + (size_t)g) * 2 * (size_t)c->dk;
}

#endif
