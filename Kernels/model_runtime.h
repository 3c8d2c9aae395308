/*
 * model_runtime.h — the part of every compiled model that does not depend on its graph.
 *
 * A generated module (<name>.c) holds only what its graph decides: the node functions,
 * run_nodes calling them in order, its tables (constant slots, KV cache widths, counter
 * names) and, for layers whose kernel keeps its own K/V store, how to open, reset and
 * close those stores. It describes all of it in one `attune_graph` value.
 * model_runtime.c implements the entry points its <name>.h declares on top of that
 * value: opening the weights and allocating the arena and KV cache, chunked prefill
 * and decode, batched sequences over a shared prefix (fork), packed documents (one
 * prefill of several documents, each seeing only itself), counters, errors.
 *
 * The entry points it implements are declared in attune_model.h, the public interface
 * every compiled model exports. Not part of the kernel ABI: only generated modules and
 * model_runtime.c include this header.
 */
#ifndef ATTUNE_MODEL_RUNTIME_H
#define ATTUNE_MODEL_RUNTIME_H

#include "attune_attention.h"
#include "attune_model.h"
#include "attune_weights.h"

#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* What a generated module tells the runtime about its graph. Tables of zero entries
 * may be NULL. */
typedef struct attune_model_graph {
    uint64_t hash;                        /* the graph's; the weights manifest must name it */
    int64_t max_chunk;                    /* most rows in one forward pass (longer prompts run in chunks) */
    int64_t max_context;                  /* positions the KV cache holds */
    int64_t vocab;
    int64_t arena_floats;                 /* the memory plan's arena, a multiple of 16 */
    int64_t n_constants;
    const int64_t *constant_elements;     /* elements of constant slot m->w[i] */
    const char *const *constant_formats;  /* its format: "f32", "bf16", "int8_g32_f16", ... */
    /* KV cache c holds layer c / 2's keys (c even) or values: cache_width[c] elements a
       position, of kv_element_bytes each (cache_element_bytes[c] when layers store K/V in
       different formats; else NULL); width 0 for a layer whose kernel keeps its own
       store. int8 caches also keep one f32 scale per (position, kv head): cache_heads[c]
       (0 for other caches; NULL when none is int8). */
    int64_t n_caches;
    const int64_t *cache_width;
    size_t kv_element_bytes;
    const int64_t *cache_element_bytes;
    const int64_t *cache_heads;
    int64_t n_counters;
    const char *const *counter_names;     /* what each kernel counter counts */
    const char *batch_refusal;            /* why attune_model_fork refuses, or NULL */
    const char *packed_refusal;           /* why attune_model_prefill_packed refuses, or NULL */
    /* One forward pass over `seq` rows, attending to `kv` positions. 0 on success, else 1
       with the message in m->error. */
    int (*run_nodes)(attune_model *m, const int32_t *tokens, int64_t seq, int64_t kv);
    /* Row 0 of the last pass's logits; row r is logits_stride floats further. */
    const float *(*logits)(const attune_model *m);
    int64_t logits_stride;
    /* The layers' own K/V stores (m->store[i]); NULL hooks when n_stores is 0. open_stores
       writes a message to `error` on failure (the runtime then closes the model); close
       must accept stores never opened (NULL). */
    int64_t n_stores;
    int (*open_stores)(attune_model *m, char *error, size_t error_size);
    void (*reset_stores)(attune_model *m);
    void (*close_stores)(attune_model *m);
} attune_model_graph;

/* The generated module's description of its graph. Hidden: each model library has its own. */
extern const attune_model_graph attune_graph __attribute__((visibility("hidden")));

/* A model's state. The node functions read and write it directly. Arrays are sized by
 * attune_graph at open. */
struct attune_model {
    attune_weights *weights;
    const void **w;                       /* constant slots: elements of constant_formats[i] */
    float *arena;
    float **kv;                           /* per cache; NULL for layers whose kernel keeps its own store */
    float **kv_scale;                     /* int8 caches: one scale per (position, kv head); else NULL */
    void *kv_pages;                       /* one anonymous mapping holding every kv and kv_scale area */
    size_t kv_pages_bytes;
    void **store;                         /* the layers' own K/V stores */
    int64_t length;                       /* cached positions */
    int64_t logits_from;                  /* first row of this forward pass whose logits are used */
    int64_t *counters;                    /* kernel counters, summed since open or reset */
    attune_mask_stats mask_tiles;         /* the document masks' tiles, summed (attune_model_mask_tiles) */
    int32_t *positions;                   /* max_chunk: each row's position */
    /* Packed documents (attune_model_prefill_packed): the document of each cached
       position, which attention nodes pass to their kernel as p.doc_ids; NULL otherwise.
       doc_position is each cached position's place in its document (its RoPE position).
       Both point into doc_table (2 x max_context, allocated by the first packed prefill). */
    const int32_t *doc_ids;
    const int32_t *doc_position;
    int32_t *doc_table;
    /* Batched sequences (attune_model_fork): the cache's first `length` rows are the
       shared prefix; sequence s keeps its own rows at suffix[c] + s * suffix_cap rows. */
    int64_t nseq, suffix_cap;
    int64_t *seq_length;                  /* own tokens of each sequence */
    float **suffix;                       /* per cache */
    /* The forward pass's groups: group g is rows first..first+count-1 of sequence seq
       (max_chunk entries each). */
    int64_t n_groups;
    int64_t *group_first, *group_count, *group_seq, *group_kv;
    int64_t *row_slot;                    /* suffix row each new K/V row goes to */
    const float ***group_rows;            /* [cache][group]: each group's suffix rows */
    char error[256];
};

/* Writes the message to m->error and returns 1: how node functions and the runtime fail. */
__attribute__((format(printf, 2, 3)))
static inline int fail(attune_model *m, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(m->error, sizeof m->error, fmt, ap);
    va_end(ap);
    return 1;
}

/* Adds one attention call's document-mask tile counts (attune_mask_stats) to the model's. */
static inline void attune_model_count_mask_tiles(attune_model *m, const attune_mask_stats *s) {
    m->mask_tiles.tiles += s->tiles;
    m->mask_tiles.skipped_tiles += s->skipped_tiles;
    m->mask_tiles.masked_tiles += s->masked_tiles;
}

/* Every node function takes the same arguments; most use only some of them. */
#define UNUSED __attribute__((unused))
#define NODE_ARGS UNUSED attune_model *m, UNUSED const int32_t *tokens, UNUSED int64_t seq, UNUSED int64_t kv

/* The activations fused elementwise expressions call (the tanh form of GELU). */
static inline float attune_silu(float x) { return x / (1.0f + expf(-x)); }
static inline float attune_gelu(float x) { return 0.5f * x * (1.0f + tanhf(0.7978845608028654f * (x + 0.044715f * x * x * x))); }

#endif
