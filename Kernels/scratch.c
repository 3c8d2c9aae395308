/*
 * scratch.c — the kernels' temporary buffers (attune_scratch_alloc / _free).
 *
 * Small blocks come from malloc. Blocks of POOL_MIN bytes and more (a prefill
 * matmul's bf16 activation pairs: 4.75 MiB for 512 rows of a 4864-wide input)
 * come from a small pool of mapped blocks that are kept when freed and handed
 * out again, for two reasons measured on a Qwen2.5-0.5B-shaped int8 run
 * (Docs/PERFORMANCE.md, "Peak memory of the quantised runs"):
 *   - from glibc's heap, these blocks interleave with the host program's own
 *     allocations, and the heap's high-water mark moved by up to 30 MiB
 *     between identical runs (577 to 606 MiB peak RSS);
 *   - mapping them afresh on every call (a lower mmap threshold) made the
 *     peak stable but faulted every page of every call: 6-8x the minor faults.
 * A kept block serves a request of at most its size and at least half of it
 * (a small request never pins a large block). A request that no free block
 * serves first unmaps the free blocks smaller than itself: the pool then
 * holds what the largest simultaneous requests need, not every size ever
 * seen. attune_scratch_trim unmaps every free block (a model's close calls it).
 */
#include "attune_scratch.h"

#include <pthread.h>
#include <stdlib.h>
#include <sys/mman.h>

enum { POOL_MIN = 256 << 10, POOL_SLOTS = 32, POOL_GRAIN = 64 << 10 };

typedef struct {
    void *base; /* NULL: slot empty */
    size_t size;
    int used;
} pool_block;

static pool_block pool[POOL_SLOTS];
static pthread_mutex_t pool_lock = PTHREAD_MUTEX_INITIALIZER;

static void unmap_slot(pool_block *b) {
    munmap(b->base, b->size);
    *b = (pool_block){0};
}

/* A mapped block of at least `bytes`, or NULL when no slot or mapping is left. */
static void *pool_take(size_t bytes) {
    size_t size = (bytes + POOL_GRAIN - 1) / POOL_GRAIN * POOL_GRAIN;
    pool_block *best = NULL, *empty = NULL;
    for (int i = 0; i < POOL_SLOTS; i++) {
        pool_block *b = &pool[i];
        if (!b->base) {
            if (!empty) empty = b;
        } else if (!b->used && b->size >= size && b->size / 2 <= size && (!best || b->size < best->size)) {
            best = b;
        }
    }
    if (best) {
        best->used = 1;
        return best->base;
    }
    for (int i = 0; i < POOL_SLOTS; i++)
        if (pool[i].base && !pool[i].used && pool[i].size < size) {
            unmap_slot(&pool[i]);
            if (!empty) empty = &pool[i];
        }
    if (!empty) return NULL;
    void *base = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (base == MAP_FAILED) return NULL;
    *empty = (pool_block){base, size, 1};
    return base;
}

void *attune_aligned_alloc(size_t bytes) {
    size_t rounded = (bytes + 63) / 64 * 64;
    return aligned_alloc(64, rounded ? rounded : 64);
}

void *attune_scratch_alloc(size_t bytes) {
    if (bytes >= POOL_MIN) {
        pthread_mutex_lock(&pool_lock);
        void *p = pool_take(bytes);
        pthread_mutex_unlock(&pool_lock);
        if (p) return p;
    }
    return attune_aligned_alloc(bytes);
}

void attune_scratch_free(void *ptr) {
    if (!ptr) return;
    pthread_mutex_lock(&pool_lock);
    for (int i = 0; i < POOL_SLOTS; i++)
        if (pool[i].base == ptr) {
            pool[i].used = 0;
            pthread_mutex_unlock(&pool_lock);
            return;
        }
    pthread_mutex_unlock(&pool_lock);
    free(ptr);
}

void attune_scratch_trim(void) {
    pthread_mutex_lock(&pool_lock);
    for (int i = 0; i < POOL_SLOTS; i++)
        if (pool[i].base && !pool[i].used) unmap_slot(&pool[i]);
    pthread_mutex_unlock(&pool_lock);
}
