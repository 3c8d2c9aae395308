/*
 * attune_scratch.h — the kernels' temporary buffers (scratch.c).
 *
 * 64-byte aligned; NULL on failure. Blocks of 256 KiB and more come from a pool of
 * mapped blocks kept between calls (why: scratch.c); attune_scratch_trim returns the
 * pool's free blocks to the system (a compiled model's close calls it). Thread-safe.
 * Buffers that outlive a call (a cache's storage, a benchmark's operands) take
 * attune_aligned_alloc instead, 64-byte aligned from malloc and released with free(): in
 * the pool they would hold its slots.
 */
#ifndef ATTUNE_SCRATCH_H
#define ATTUNE_SCRATCH_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

void *attune_scratch_alloc(size_t bytes);
void attune_scratch_free(void *ptr);
void attune_scratch_trim(void);
void *attune_aligned_alloc(size_t bytes);

#ifdef __cplusplus
}
#endif

#endif
