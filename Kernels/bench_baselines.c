/*
 * bench_baselines.c — the two yardsticks every attention benchmark reports
 * against, measured in the same process so machine drift cancels out.
 */
#include "attune_bench.h"
#include "attention_internal.h"
#include "simd.h"

#include <cblas.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#ifdef _OPENMP
#include <omp.h>
#endif

double attune_bench_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

double attune_bench_sgemm_gflops(int32_t n, int32_t threads, int32_t repeats) {
    if (n <= 0 || repeats <= 0) return -1.0;
    size_t count = (size_t)n * (size_t)n;
    float *a = attune_aligned_alloc(count * sizeof(float));
    float *b = attune_aligned_alloc(count * sizeof(float));
    float *c = attune_aligned_alloc(count * sizeof(float));
    double *times = malloc(sizeof(double) * (size_t)repeats);
    if (!a || !b || !c || !times) {
        free(a); free(b); free(c); free(times);
        return -1.0;
    }
    for (size_t i = 0; i < count; i++) {
        a[i] = (float)((i * 7 + 3) % 23) * 0.01f;
        b[i] = (float)((i * 5 + 1) % 19) * 0.01f;
    }
    int saved = openblas_get_num_threads();
    if (threads > 0) openblas_set_num_threads(threads);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, a, n, b, n, 0.0f, c, n);
    for (int r = 0; r < repeats; r++) {
        double t0 = attune_bench_now();
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, a, n, b, n, 0.0f, c, n);
        times[r] = attune_bench_now() - t0;
    }
    openblas_set_num_threads(saved);
    double gflops = 2.0 * (double)n * (double)n * (double)n / median(times, repeats) * 1e-9;
    free(a); free(b); free(c); free(times);
    return gflops;
}

double attune_bench_read_gbps(size_t bytes, int32_t threads, int32_t repeats) {
    size_t n = bytes / sizeof(float) / (4 * VL) * (4 * VL);
    if (n == 0 || repeats <= 0) return -1.0;
    float *buf = attune_aligned_alloc(n * sizeof(float));
    double *times = malloc(sizeof(double) * (size_t)repeats);
    if (!buf || !times) {
        free(buf); free(times);
        return -1.0;
    }
#ifdef _OPENMP
    int nth = threads > 0 ? threads : omp_get_max_threads();
#endif
    /* First touch from the reading threads, so pages sit where they are read. */
#ifdef _OPENMP
#pragma omp parallel for schedule(static) num_threads(nth)
#endif
    for (size_t i = 0; i < n; i++) buf[i] = 1.0f;
    volatile float sink = 0.0f;
    for (int r = -1; r < repeats; r++) {
        float total = 0.0f;
        double t0 = attune_bench_now();
#ifdef _OPENMP
#pragma omp parallel num_threads(nth) reduction(+ : total)
#endif
        {
            size_t lo = 0, hi = n;
#ifdef _OPENMP
            size_t per = n / (4 * VL) / (size_t)omp_get_num_threads() * (4 * VL);
            lo = per * (size_t)omp_get_thread_num();
            hi = omp_get_thread_num() == omp_get_num_threads() - 1 ? n : lo + per;
#endif
            vf s0 = vf_zero(), s1 = vf_zero(), s2 = vf_zero(), s3 = vf_zero();
            for (size_t i = lo; i < hi; i += 4 * VL) {
                s0 = vf_add(s0, vf_load(buf + i));
                s1 = vf_add(s1, vf_load(buf + i + VL));
                s2 = vf_add(s2, vf_load(buf + i + 2 * VL));
                s3 = vf_add(s3, vf_load(buf + i + 3 * VL));
            }
            total += vf_hsum(vf_add(vf_add(s0, s1), vf_add(s2, s3)));
        }
        double dt = attune_bench_now() - t0;
        if (r >= 0) times[r] = dt;
        sink += total;
    }
    (void)sink;
    double gbps = (double)(n * sizeof(float)) / median(times, repeats) * 1e-9;
    free(buf);
    free(times);
    return gbps;
}
