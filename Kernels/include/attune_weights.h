/*
 * attune_weights.h — how a compiled model finds its weights: a weights manifest.
 *
 * Generated code addresses each constant (a weight, or weights the passes concatenated
 * such as the merged QKV matrix) as slot i: `const void *w[i]` holding `slot_elements[i]`
 * elements of the slot's format (f32 or bf16, the per-slot property the module was
 * compiled for), row-major. The manifest, a small text file written by Attune next to
 * the module, says where every slot's elements are: one or more parts, each a run of
 * elements in a file (a checkpoint's .safetensors file, or a blob of constants Attune
 * derived at compile time), stored as f32, bf16 or f16.
 *
 *     attune-weights 2
 *     graph 0123456789abcdef              hash of the graph the slots belong to
 *     slots 3
 *     nonfinite reject                    or "allow": NaN/Inf elements refused by name
 *     file 0 1048576 - /abs/model.safetensors      index, size in bytes, checksum or -, path
 *     file 1 4096 9f3a61c2d4e5b6a7 constants.bin   relative paths: from the manifest's folder
 *     slot 0 8192 1 bf16                  index, elements, number of parts, format
 *     part 0 4928 bf16 8192 model.embed_tokens.weight   file, byte offset, dtype, count, name
 *
 * int8 slots (format int8_g<group>_<f16|f32>, e.g. int8_g32_f16) hold quantised rows in
 * the layout of attune_linear_q8.h, made at compile time into a checksummed file of the
 * compile cache: one part of that same format, `count` weights taking count + count/group
 * scales' bytes, always mapped in place. bf16 slots of f32 or f16 checkpoint tensors
 * (--weights bf16) are rounded at compile time into such a file too, as one bf16 part.
 *
 * Loading maps every file read-only (the page cache is shared with other processes).
 * A slot of one part stored in the slot's format, at an offset aligned to its element
 * size, points into the mapping: nothing is copied (bf16 checkpoints used as bf16, f32
 * as f32). Other slots (several parts, or another stored dtype) are materialised once
 * in the slot's format, converted in parallel: widened exactly to f32, or rounded to
 * nearest even to bf16. Files with a checksum (the derived blob) are verified over their
 * whole payload; checkpoint files are checked by size.
 */
#ifndef ATTUNE_WEIGHTS_H
#define ATTUNE_WEIGHTS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct attune_weights attune_weights;

/* Reads the manifest at `path`, maps its files and fills `slots[i]` for i < n_slots.
 * Refuses a manifest of another graph or slot layout (element counts, formats "f32",
 * "bf16" or "int8_g32_f16" as the module reads them), missing or resized files, parts outside their file,
 * and (unless the manifest allows them) NaN or Inf elements, naming the tensor. Returns
 * NULL with a one-line message in `error` on failure. */
attune_weights *attune_weights_open(const char *path, uint64_t graph_hash, int64_t n_slots,
                                    const int64_t *slot_elements, const char *const *slot_formats,
                                    const void **slots, char *error, size_t error_size);

/* Unmaps the files and frees the materialised slots; NULL is allowed. */
void attune_weights_close(attune_weights *w);

/* The checksum the manifest's `file` lines carry: four 64-bit FNV-1a chains over the
 * bytes taken as little-endian 8-byte words (word i feeds chain i % 4), then one FNV-1a
 * over the four chains' values and the tail bytes, if any. Swift computes the same
 * (AttuneRuntime.PayloadFile.hash). */
uint64_t attune_payload_hash(const void *data, size_t bytes);

/* f16 bits as f32, exactly (subnormals normalised; Inf and NaN kept): how f16 checkpoint
 * tensors widen, here and in linear_bf16.c's compile-time rounding. */
float attune_f16_to_f32(uint16_t h);

#ifdef __cplusplus
}
#endif

#endif
