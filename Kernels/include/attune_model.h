/*
 * attune_model.h — the C interface every compiled model exports.
 *
 * Each compiled model's generated <name>.h includes this header: the entry points are
 * the same for every graph (model_runtime.c implements them on top of the module's
 * description of its graph), so they are declared once, here. A program using a
 * compiled model includes <name>.h with this folder on its include path and links
 * lib<name>.so.
 */
#ifndef ATTUNE_MODEL_H
#define ATTUNE_MODEL_H

#include <stddef.h>
#include <stdint.h>

typedef struct attune_model attune_model;

/* Maps the weights its manifest lists (attune_weights.h); NULL with a message on error. */
attune_model *attune_model_open(const char *manifest_path, char *error, size_t error_size);
void attune_model_close(attune_model *m);
/* Runs n tokens after the cached ones; logits (n x vocab floats) may be NULL. 0 on success. */
int attune_model_prefill(attune_model *m, const int32_t *tokens, int64_t n, float *logits);
/* Like prefill, but only the last token's logits (vocab floats) are computed and written:
   the vocabulary projection runs for one row instead of n. n >= 1. */
int attune_model_prefill_last(attune_model *m, const int32_t *tokens, int64_t n, float *logits);
/* One token after the cached ones; logits (vocab floats) may be NULL. 0 on success. */
int attune_model_decode_step(attune_model *m, int32_t token, float *logits);
/* Packed documents: n_docs documents of lengths[d] >= 1 tokens, concatenated in tokens,
   in one prefill on an empty cache. Each token attends only to its own document's
   tokens (causally) and is rotated by its position within its document, so every
   document's logits are those it has alone. logits: every token's (sum of lengths x
   vocab floats), may be NULL. Until reset, the cache takes no other prefill, decode
   step, fork or truncate. Fails with a reason for models that cannot (see below). */
int attune_model_prefill_packed(attune_model *m, const int32_t *tokens, const int64_t *lengths, int64_t n_docs, float *logits);
/* Like prefill_packed, but only each document's last token's logits (n_docs x vocab floats). */
int attune_model_prefill_packed_last(attune_model *m, const int32_t *tokens, const int64_t *lengths, int64_t n_docs, float *logits);
/* Why this model cannot run packed documents (NULL when it can): a kernel that takes no
   document mask, a K/V store of its own, RoPE depending on the pass's length. */
const char *attune_model_packed_refusal(void);
/* What the document masks saved in the attention kernels since open or reset, summed
   over layers, heads and packed prefills: KV tiles computed, tiles the causal mask
   alone would have computed but the documents hid (never computed), and computed
   tiles that needed the per-element mask (a document boundary inside). Each pointer
   may be NULL. All zero until a packed prefill. */
void attune_model_mask_tiles(const attune_model *m, int64_t *computed, int64_t *skipped, int64_t *partial);
/* Forgets the KV cache (and any forked sequences) and zeroes the kernel counters. */
void attune_model_reset(attune_model *m);
/* Keeps the first n (<= length) cached positions; fails for forked models and for
   models whose kernels keep their own K/V store (reset and prefill again there). */
int attune_model_truncate(attune_model *m, int64_t n);
/* Batched sequences sharing a prefix: the tokens cached so far become the prefix of n
   sequences that continue independently. Each sequence's tokens then attend to the
   prefix in one pass for all of them (Hydragen) and to their own tokens separately.
   Fails with a reason for models that cannot (sliding windows, sigmoid attention,
   hybrid stores). prefill and decode_step are refused until reset. */
int attune_model_fork(attune_model *m, int64_t n);
/* n tokens for sequence s (0 <= s < sequences); logits n x vocab, may be NULL. */
int attune_model_prefill_seq(attune_model *m, int64_t s, const int32_t *tokens, int64_t n, float *logits);
/* One token for every sequence in one forward pass; logits sequences x vocab, may be NULL. */
int attune_model_decode_batch(attune_model *m, const int32_t *tokens, float *logits);
/* 0 until forked. */
int64_t attune_model_sequences(const attune_model *m);
/* Why this model cannot fork (NULL when it can): known before any token runs. */
const char *attune_model_batch_refusal(void);
/* Positions of sequence s: the prefix plus its own tokens; -1 for no such sequence. */
int64_t attune_model_seq_length(const attune_model *m, int64_t s);
/* Kernel counters (e.g. "layer0.unified_max.fallback_rows"), summed since open or reset. */
int64_t attune_model_counter_count(void);
const char *attune_model_counter_name(int64_t i);
int64_t attune_model_counter_value(const attune_model *m, int64_t i);
int64_t attune_model_length(const attune_model *m);
int64_t attune_model_vocab(void);
int64_t attune_model_max_context(void);
/* The message of the last failed call. */
const char *attune_model_error(const attune_model *m);

#endif
