/*
 * gemv_split.h — how a decode GEMV hands its output rows to the threads.
 *
 * Each thread owns an equal, contiguous share of the rows (its home) and claims them
 * front to back in chunks of about GEMV_CHUNK_BYTES of weights from an atomic
 * counter; a thread that has finished its home claims the next chunks of the others'.
 * So each thread streams one sequential range, as a static split does, but neither
 * waits at the end for the other: on two cores a static split left one thread idle
 * for 7 % of the Qwen2.5-0.5B gate/up GEMV (the second half's thread was slower on
 * every call), and a GEMV is bound by the memory stream both threads draw from
 * (Docs/PERFORMANCE.md, "Decode: where a token's time goes"). Every row is computed by
 * one thread with the same arithmetic whoever claims it, so the outputs do not depend
 * on the split.
 *
 * Use: gemv_split_init before the parallel region (homes for `nt` threads); inside,
 * `while (gemv_split_claim(&s, t, &r0, &r1)) ...`. A team smaller than `nt` still
 * covers every row: its threads claim the missing threads' homes too.
 */
#ifndef ATTUNE_GEMV_SPLIT_H
#define ATTUNE_GEMV_SPLIT_H

#include <stdint.h>

/* Bytes of weights per claimed chunk: ~1 µs of one thread's stream, so the threads
 * finish within about that of each other. */
#ifndef GEMV_CHUNK_BYTES
#define GEMV_CHUNK_BYTES (16 << 10)
#endif

enum { GEMV_SPLIT_MAX_THREADS = 64 };

/* One thread's home rows [next, end): `next` advances as chunks are claimed. One cache
 * line each, so the owners' claims do not contend. */
typedef struct {
    _Alignas(64) int64_t next;
    int64_t end;
} gemv_home;

typedef struct {
    gemv_home home[GEMV_SPLIT_MAX_THREADS];
    int nt;
    int64_t chunk;   /* rows per claim, a multiple of `align` */
} gemv_split;

/* Rows [0, out) of `row_bytes` each over nt threads (capped at GEMV_SPLIT_MAX_THREADS);
 * chunks and homes start on multiples of `align` rows (the kernel's row group). */
static inline void gemv_split_init(gemv_split *s, int64_t out, int64_t row_bytes, int nt, int64_t align) {
    s->nt = nt < 1 ? 1 : nt > GEMV_SPLIT_MAX_THREADS ? GEMV_SPLIT_MAX_THREADS : nt;
    int64_t chunk = GEMV_CHUNK_BYTES / (row_bytes > 0 ? row_bytes : 1) / align * align;
    s->chunk = chunk < align ? align : chunk;
    for (int t = 0; t < s->nt; t++) {
        int64_t lo = out * t / s->nt / align * align, hi = t + 1 == s->nt ? out : out * (t + 1) / s->nt / align * align;
        s->home[t].next = lo;
        s->home[t].end = hi;
    }
}

/* The next rows [*r0, *r1) for thread t: from its own home, else from the others'.
 * 0 when every row has been claimed. */
static inline int gemv_split_claim(gemv_split *s, int t, int64_t *r0, int64_t *r1) {
    for (int k = 0; k < s->nt; k++) {
        gemv_home *h = &s->home[(t + k) % s->nt];
        if (__atomic_load_n(&h->next, __ATOMIC_RELAXED) >= h->end) continue;
        const int64_t at = __atomic_fetch_add(&h->next, s->chunk, __ATOMIC_RELAXED);
        if (at < h->end) {
            *r0 = at;
            *r1 = at + s->chunk < h->end ? at + s->chunk : h->end;
            return 1;
        }
    }
    return 0;
}

#endif
