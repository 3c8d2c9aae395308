/*
 * model_runtime.c — the entry points of every compiled model (see model_runtime.h): the
 * same code for all graphs, driven by the generated module's `attune_graph`.
 *
 * A forward pass runs at most max_chunk rows: prefill splits longer prompts into chunks,
 * each appending its K/V rows to the cache before the next attends to them. A forked
 * model runs rows grouped by sequence: the cache so far is the prefix every sequence
 * shares, and each sequence's own K/V rows live in a per-cache suffix area. A packed
 * prefill fills the cache with several documents one after another: the attention
 * kernels get each position's document (p.doc_ids, so a query sees only its own
 * document's keys) and RoPE each row's position within its document.
 */
#include "model_runtime.h"
#include "attune_scratch.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

static const attune_model_graph *const g = &attune_graph;

/* Rows logits_from..seq-1 of the logits, to logits[0..]. */
static void copy_logits(const attune_model *m, int64_t seq, float *logits) {
    if (!logits) return;
    const float *rows = g->logits(m);
    for (int64_t r = m->logits_from; r < seq; r++)
        memcpy(logits + (r - m->logits_from) * g->vocab, rows + r * g->logits_stride, sizeof(float) * (size_t)g->vocab);
}

/* One forward pass over `seq` rows after the cached ones; the vocabulary projection runs
   for rows logits_from..seq-1 (seq: none), which g->logits then holds until the next pass. */
static int forward(attune_model *m, const int32_t *tokens, int64_t seq, int64_t logits_from) {
    const int64_t kv = m->length + seq;
    if (kv > g->max_context)
        return fail(m, "context full: %lld cached + %lld new positions exceed the %lld compiled in",
                    (long long)m->length, (long long)seq, (long long)g->max_context);
    for (int64_t i = 0; i < seq; i++) m->positions[i] = m->doc_position ? m->doc_position[m->length + i] : (int32_t)(m->length + i);
    m->logits_from = logits_from;
    if (g->run_nodes(m, tokens, seq, kv)) return 1;
    m->length = kv;
    return 0;
}

/* One forward pass; logits of rows logits_from..seq-1 go to `logits` (may be NULL). */
static int forward_chunk(attune_model *m, const int32_t *tokens, int64_t seq, int64_t logits_from, float *logits) {
    if (forward(m, tokens, seq, logits ? logits_from : seq)) return 1;
    copy_logits(m, seq, logits);
    return 0;
}

static int not_forked(attune_model *m) {
    if (m->nseq == 0) return 0;
    return fail(m, "the model is forked into %lld sequences: use attune_model_prefill_seq / attune_model_decode_batch, or reset",
                (long long)m->nseq);
}

/* A cache of packed documents has no single sequence to continue: each position belongs
   to its document, and a new token would have to say which one it extends. */
static int not_packed(attune_model *m) {
    if (!m->doc_ids) return 0;
    int32_t docs = m->length > 0 ? m->doc_ids[m->length - 1] + 1 : 0;
    return fail(m, "the cache holds %d packed documents: reset before another prefill, decode step, fork or truncate", (int)docs);
}

int attune_model_prefill(attune_model *m, const int32_t *tokens, int64_t n, float *logits) {
    if (n < 0) return fail(m, "token count must be >= 0, got %lld", (long long)n);
    if (not_forked(m) || not_packed(m)) return 1;
    for (int64_t at = 0; at < n; at += g->max_chunk) {
        int64_t seq = n - at < g->max_chunk ? n - at : g->max_chunk;
        if (forward_chunk(m, tokens + at, seq, 0, logits ? logits + at * g->vocab : NULL)) return 1;
    }
    return 0;
}

int attune_model_prefill_last(attune_model *m, const int32_t *tokens, int64_t n, float *logits) {
    if (n < 1) return fail(m, "prefill_last needs at least one token, got %lld", (long long)n);
    if (not_forked(m) || not_packed(m)) return 1;
    for (int64_t at = 0; at < n; at += g->max_chunk) {
        int64_t seq = n - at < g->max_chunk ? n - at : g->max_chunk;
        const int last = at + seq == n;
        if (forward_chunk(m, tokens + at, seq, seq - 1, last ? logits : NULL)) return 1;
    }
    return 0;
}

int attune_model_decode_step(attune_model *m, int32_t token, float *logits) {
    if (not_forked(m) || not_packed(m)) return 1;
    return forward_chunk(m, &token, 1, 0, logits);
}

/* Checks the documents and fills the document tables; 0 on success. */
static int pack_documents(attune_model *m, const int64_t *lengths, int64_t n_docs, int64_t *total) {
    if (g->packed_refusal) return fail(m, "this model cannot run packed documents: %s", g->packed_refusal);
    if (not_forked(m) || not_packed(m)) return 1;
    if (m->length > 0) return fail(m, "a packed prefill starts on an empty cache; %lld positions are cached (reset first)", (long long)m->length);
    if (n_docs < 1) return fail(m, "a packed prefill needs at least one document, got %lld", (long long)n_docs);
    int64_t n = 0;
    for (int64_t d = 0; d < n_docs; d++) {
        if (lengths[d] < 1) return fail(m, "document %lld has length %lld; lengths must be >= 1", (long long)d, (long long)lengths[d]);
        if (lengths[d] > g->max_context - n)
            return fail(m, "context full: the documents' tokens exceed the %lld positions compiled in", (long long)g->max_context);
        n += lengths[d];
    }
    if (!m->doc_table && !(m->doc_table = malloc(sizeof(int32_t) * 2 * (size_t)g->max_context)))
        return fail(m, "out of memory for the document tables");
    int32_t *ids = m->doc_table, *position = m->doc_table + g->max_context;
    for (int64_t d = 0, at = 0; d < n_docs; at += lengths[d++])
        for (int64_t i = 0; i < lengths[d]; i++) {
            ids[at + i] = (int32_t)d;
            position[at + i] = (int32_t)i;
        }
    m->doc_ids = ids;
    m->doc_position = position;
    *total = n;
    return 0;
}

/* Whether cached position i (of n packed) is its document's last. */
static int document_ends(const attune_model *m, int64_t i, int64_t n) { return i + 1 == n || m->doc_position[i + 1] == 0; }

/* Both packed prefills: every row's logits (n x vocab) or each document's last row's
   (n_docs x vocab). A failure leaves an empty cache. */
static int prefill_packed(attune_model *m, const int32_t *tokens, const int64_t *lengths, int64_t n_docs, int last_only, float *logits) {
    int64_t n;
    if (pack_documents(m, lengths, n_docs, &n)) return 1;
    int64_t doc = 0;  /* the document of the next last row to copy */
    for (int64_t at = 0; at < n; at += g->max_chunk) {
        const int64_t seq = n - at < g->max_chunk ? n - at : g->max_chunk;
        int rc;
        if (!last_only) {
            rc = forward_chunk(m, tokens + at, seq, 0, logits ? logits + at * g->vocab : NULL);
        } else {
            /* The projection runs from the chunk's first document end; only the ends are copied. */
            int64_t from = seq;
            for (int64_t r = 0; r < seq && from == seq; r++)
                if (document_ends(m, at + r, n)) from = r;
            rc = forward(m, tokens + at, seq, logits ? from : seq);
            for (int64_t r = from; !rc && logits && r < seq; r++)
                if (document_ends(m, at + r, n))
                    memcpy(logits + doc++ * g->vocab, g->logits(m) + r * g->logits_stride, sizeof(float) * (size_t)g->vocab);
        }
        if (rc) {
            attune_model_reset(m);
            return 1;
        }
    }
    return 0;
}

int attune_model_prefill_packed(attune_model *m, const int32_t *tokens, const int64_t *lengths, int64_t n_docs, float *logits) {
    return prefill_packed(m, tokens, lengths, n_docs, 0, logits);
}

int attune_model_prefill_packed_last(attune_model *m, const int32_t *tokens, const int64_t *lengths, int64_t n_docs, float *logits) {
    return prefill_packed(m, tokens, lengths, n_docs, 1, logits);
}

const char *attune_model_packed_refusal(void) { return g->packed_refusal; }

/* One forward pass over the groups set in m (rows grouped by sequence). */
static int forward_groups(attune_model *m, const int32_t *tokens, int64_t rows, float *logits) {
    for (int64_t gr = 0; gr < m->n_groups; gr++) {
        const int64_t s = m->group_seq[gr], own = m->seq_length[s], n = m->group_count[gr];
        if (m->length + own + n > g->max_context)
            return fail(m, "context full: sequence %lld has %lld cached + %lld new positions, more than the %lld compiled in",
                        (long long)s, (long long)(m->length + own), (long long)n, (long long)g->max_context);
        for (int64_t i = 0; i < n; i++) {
            const int64_t r = m->group_first[gr] + i;
            m->positions[r] = (int32_t)(m->length + own + i);
            m->row_slot[r] = s * m->suffix_cap + own + i;
        }
        m->group_kv[gr] = own + n;
        for (int64_t c = 0; c < g->n_caches; c++)
            m->group_rows[c][gr] = m->suffix[c] ? m->suffix[c] + s * m->suffix_cap * g->cache_width[c] : NULL;
    }
    m->logits_from = logits ? 0 : rows;
    if (g->run_nodes(m, tokens, rows, m->length)) return 1;
    copy_logits(m, rows, logits);
    for (int64_t gr = 0; gr < m->n_groups; gr++) m->seq_length[m->group_seq[gr]] += m->group_count[gr];
    return 0;
}

/* Frees the forked sequences' own rows; the prefix stays cached. */
static void unfork(attune_model *m) {
    free(m->seq_length);
    m->seq_length = NULL;
    if (m->suffix)
        for (int64_t c = 0; c < g->n_caches; c++) { free(m->suffix[c]); m->suffix[c] = NULL; }
    m->nseq = 0;
}

int attune_model_fork(attune_model *m, int64_t n) {
    if (g->batch_refusal) return fail(m, "this model cannot run batched sequences: %s", g->batch_refusal);
    if (not_packed(m)) return 1;
    if (m->nseq > 0) return fail(m, "the model is already forked into %lld sequences (reset first)", (long long)m->nseq);
    if (n < 1) return fail(m, "fork needs at least 1 sequence, got %lld", (long long)n);
    const int64_t cap = g->max_context - m->length;
    if (cap < 1) return fail(m, "context full: no room after the %lld-token prefix", (long long)m->length);
    m->seq_length = calloc((size_t)n, sizeof(int64_t));
    int ok = m->seq_length != NULL;
    for (int64_t c = 0; c < g->n_caches && ok; c++)
        if (g->cache_width[c] > 0) ok = (m->suffix[c] = malloc(sizeof(float) * (size_t)(n * cap * g->cache_width[c]))) != NULL;
    if (!ok) {
        unfork(m);
        return fail(m, "out of memory for %lld sequences' KV caches", (long long)n);
    }
    m->nseq = n;
    m->suffix_cap = cap;
    return 0;
}

int attune_model_prefill_seq(attune_model *m, int64_t s, const int32_t *tokens, int64_t n, float *logits) {
    if (m->nseq == 0) return fail(m, "prefill_seq needs a forked model (attune_model_fork)");
    if (s < 0 || s >= m->nseq) return fail(m, "sequence %lld does not exist (the model has %lld)", (long long)s, (long long)m->nseq);
    if (n < 0) return fail(m, "token count must be >= 0, got %lld", (long long)n);
    for (int64_t at = 0; at < n; at += g->max_chunk) {
        const int64_t rows = n - at < g->max_chunk ? n - at : g->max_chunk;
        m->n_groups = 1;
        m->group_first[0] = 0;
        m->group_count[0] = rows;
        m->group_seq[0] = s;
        if (forward_groups(m, tokens + at, rows, logits ? logits + at * g->vocab : NULL)) return 1;
    }
    return 0;
}

int attune_model_decode_batch(attune_model *m, const int32_t *tokens, float *logits) {
    if (m->nseq == 0) return fail(m, "decode_batch needs a forked model (attune_model_fork)");
    for (int64_t at = 0; at < m->nseq; at += g->max_chunk) {
        const int64_t rows = m->nseq - at < g->max_chunk ? m->nseq - at : g->max_chunk;
        m->n_groups = rows;
        for (int64_t gr = 0; gr < rows; gr++) {
            m->group_first[gr] = gr;
            m->group_count[gr] = 1;
            m->group_seq[gr] = at + gr;
        }
        if (forward_groups(m, tokens + at, rows, logits ? logits + at * g->vocab : NULL)) return 1;
    }
    return 0;
}

int64_t attune_model_sequences(const attune_model *m) { return m->nseq; }

const char *attune_model_batch_refusal(void) { return g->batch_refusal; }

int64_t attune_model_seq_length(const attune_model *m, int64_t s) {
    return s >= 0 && s < m->nseq ? m->length + m->seq_length[s] : -1;
}

void attune_model_reset(attune_model *m) {
    unfork(m);
    m->length = 0;
    m->doc_ids = m->doc_position = NULL;
    memset(m->counters, 0, sizeof(int64_t) * (size_t)g->n_counters);
    m->mask_tiles = (attune_mask_stats){0, 0, 0};
    if (g->reset_stores) g->reset_stores(m);
}

/* Keeps the first n cached positions and forgets the rest (a chat whose re-rendered
   conversation diverges from what was cached): the rows past n are simply overwritten
   later. Kernels with their own K/V store keep state a position count cannot undo. */
int attune_model_truncate(attune_model *m, int64_t n) {
    if (not_forked(m) || not_packed(m)) return 1;
    if (n < 0 || n > m->length) return fail(m, "truncate to %lld positions: the cache holds %lld", (long long)n, (long long)m->length);
    if (g->n_stores > 0 && n < m->length) return fail(m, "this model's K/V stores cannot forget positions (reset instead)");
    m->length = n;
    return 0;
}

int64_t attune_model_counter_count(void) { return g->n_counters; }
const char *attune_model_counter_name(int64_t i) { return i >= 0 && i < g->n_counters ? g->counter_names[i] : NULL; }
int64_t attune_model_counter_value(const attune_model *m, int64_t i) { return i >= 0 && i < g->n_counters ? m->counters[i] : 0; }
void attune_model_mask_tiles(const attune_model *m, int64_t *computed, int64_t *skipped, int64_t *partial) {
    if (computed) *computed = m->mask_tiles.tiles;
    if (skipped) *skipped = m->mask_tiles.skipped_tiles;
    if (partial) *partial = m->mask_tiles.masked_tiles;
}
int64_t attune_model_length(const attune_model *m) { return m->length; }
int64_t attune_model_vocab(void) { return g->vocab; }
int64_t attune_model_max_context(void) { return g->max_context; }
const char *attune_model_error(const attune_model *m) { return m->error; }

/* Frees whatever open allocated, in any state open can leave (tables half allocated,
   stores never opened). */
void attune_model_close(attune_model *m) {
    if (!m) return;
    attune_weights_close(m->weights);
    unfork(m);
    free(m->arena);
    if (m->kv_pages) munmap(m->kv_pages, m->kv_pages_bytes);
    if (m->store && g->close_stores) g->close_stores(m);
    if (m->group_rows) free(m->group_rows[0]);
    free(m->group_rows);
    free(m->w); free(m->kv); free(m->kv_scale); free(m->store); free(m->counters); free(m->positions); free(m->doc_table); free(m->suffix);
    free(m->group_first); free(m->group_count); free(m->group_seq); free(m->group_kv); free(m->row_slot);
    free(m);
    attune_scratch_trim();
}

/* Bytes of cache c's K/V area (0: the layer's kernel keeps its own store) and of its
 * int8 scales (0: none), each rounded up to 64 bytes. */
static size_t cache_bytes(int64_t c) {
    size_t bytes = g->cache_element_bytes ? (size_t)g->cache_element_bytes[c] : g->kv_element_bytes;
    return ((size_t)g->max_context * (size_t)g->cache_width[c] * bytes + 63) / 64 * 64;
}

static size_t scale_bytes(int64_t c) {
    return g->cache_heads && g->cache_heads[c] > 0 ? ((size_t)g->max_context * (size_t)g->cache_heads[c] * sizeof(float) + 63) / 64 * 64 : 0;
}

/* Every cache and scale area in one anonymous mapping: zero until written and resident
 * only where written, so a cache sized for max_context costs the positions used. From
 * malloc, calloc zeroed them page by page whenever it reused freed heap memory, and the
 * peak RSS of one run moved with the heap's history (Docs/PERFORMANCE.md, "Peak memory:
 * a stable heap"). 0 on success. */
static int map_caches(attune_model *m) {
    size_t total = 0;
    for (int64_t c = 0; c < g->n_caches; c++) total += cache_bytes(c) + scale_bytes(c);
    if (total == 0) return 0;
    char *at = mmap(NULL, total, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (at == MAP_FAILED) return 1;
    m->kv_pages = at;
    m->kv_pages_bytes = total;
    for (int64_t c = 0; c < g->n_caches; c++) {
        if (cache_bytes(c)) m->kv[c] = (float *)at;
        at += cache_bytes(c);
        if (scale_bytes(c)) m->kv_scale[c] = (float *)at;
        at += scale_bytes(c);
    }
    return 0;
}

/* calloc of n elements of `size` bytes, at least one (graphs without counters or stores). */
static void *table(int64_t n, size_t size) { return calloc(n > 0 ? (size_t)n : 1, size); }

/* The state's tables, sized by the graph. 0 on success. */
static int allocate_tables(attune_model *m) {
    const int64_t chunk = g->max_chunk, caches = g->n_caches;
    m->w = table(g->n_constants, sizeof *m->w);
    m->kv = table(caches, sizeof *m->kv);
    m->kv_scale = table(caches, sizeof *m->kv_scale);
    m->store = table(g->n_stores, sizeof *m->store);
    m->counters = table(g->n_counters, sizeof *m->counters);
    m->positions = table(chunk, sizeof *m->positions);
    m->suffix = table(caches, sizeof *m->suffix);
    m->group_first = table(chunk, sizeof(int64_t));
    m->group_count = table(chunk, sizeof(int64_t));
    m->group_seq = table(chunk, sizeof(int64_t));
    m->group_kv = table(chunk, sizeof(int64_t));
    m->row_slot = table(chunk, sizeof(int64_t));
    m->group_rows = table(caches, sizeof *m->group_rows);
    if (!m->w || !m->kv || !m->kv_scale || !m->store || !m->counters || !m->positions || !m->suffix || !m->group_first ||
        !m->group_count || !m->group_seq || !m->group_kv || !m->row_slot || !m->group_rows)
        return 1;
    /* One block of caches x max_chunk row pointers; group_rows[c] is cache c's part. */
    const float **rows = table(caches * chunk, sizeof *rows);
    if (!rows) return 1;
    for (int64_t c = 0; c < (caches > 0 ? caches : 1); c++) m->group_rows[c] = rows + c * chunk;
    return 0;
}

attune_model *attune_model_open(const char *manifest_path, char *error, size_t error_size) {
    attune_model *m = calloc(1, sizeof *m);
    if (!m || allocate_tables(m)) {
        snprintf(error, error_size, "out of memory");
        attune_model_close(m);
        return NULL;
    }
    m->weights = attune_weights_open(manifest_path, g->hash, g->n_constants, g->constant_elements, g->constant_formats, m->w,
                                     error, error_size);
    if (!m->weights) {
        attune_model_close(m);
        return NULL;
    }
    m->arena = aligned_alloc(64, sizeof(float) * (size_t)g->arena_floats);
    if (!m->arena || map_caches(m)) {
        snprintf(error, error_size, "out of memory allocating the arena and KV cache");
        attune_model_close(m);
        return NULL;
    }
    if (g->open_stores && g->open_stores(m, error, error_size)) {
        attune_model_close(m);
        return NULL;
    }
    return m;
}
