/*
 * attune_bench.h — same-process baselines that benchmark figures are divided
 * by: OpenBLAS SGEMM for compute and a streaming read for memory bandwidth.
 */
#ifndef ATTUNE_BENCH_H
#define ATTUNE_BENCH_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Median GFLOP/s of cblas_sgemm on n x n x n, with OpenBLAS limited to `threads`
 * (0 = all). Returns a negative value if memory cannot be allocated. */
double attune_bench_sgemm_gflops(int32_t n, int32_t threads, int32_t repeats);

/* Median GB/s of reading `bytes` (far larger than the caches) with `threads`
 * OpenMP threads (0 = all), summing with AVX-512 so the loop is load-bound. */
double attune_bench_read_gbps(size_t bytes, int32_t threads, int32_t repeats);

/* Monotonic clock in seconds. */
double attune_bench_now(void);

#ifdef __cplusplus
}
#endif
#endif
