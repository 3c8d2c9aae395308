/*
 * bf16_matmul_onednn.c — Attune's bf16-weight GEMM (Kernels/linear_bf16.c) against
 * oneDNN's bf16 matmul and OpenBLAS f32 sgemm, on the prefill shapes of the realistic
 * models (512 rows), in one process. Used to choose the prefill kernel
 * (Docs/PERFORMANCE.md, "bf16 weights"). Not part of the build: needs libdnnl-dev.
 *
 *   clang -O3 -march=native -fopenmp=libgomp -IKernels/include Bench/bf16_matmul_onednn.c \
 *       Kernels/linear_bf16.c -ldnnl -lopenblas -lm -o /tmp/bf16mm && /tmp/bf16mm
 *
 * Every contender gets f32 activations and bf16 weights [out, in] as a checkpoint stores
 * them, and writes f32 outputs; the activations' rounding to bf16 is inside the timing.
 * oneDNN runs twice: on the weights as stored (strided "ba" layout) and on weights it
 * reordered ahead of time into its own layout (format "any"; the reorder, a copy of
 * every weight, is not timed). One libgomp pool serves all three (OMP_NUM_THREADS).
 */
#include "attune_linear_bf16.h"

#include <cblas.h>
#include <math.h>
#include <oneapi/dnnl/dnnl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <omp.h>

#define CHECK(call) do { dnnl_status_t s_ = (call); if (s_ != dnnl_success) { fprintf(stderr, "%s: %d\n", #call, s_); exit(1); } } while (0)

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static int cmp(const void *a, const void *b) { double x = *(const double *)a, y = *(const double *)b; return (x > y) - (x < y); }

static double median(double *v, int n) { qsort(v, (size_t)n, sizeof *v, cmp); return v[n / 2]; }

typedef struct { const char *name; int64_t in, out; } shape;

/* f32 sgemm the way attune_op_linear_blocks runs it: each OpenMP thread a column share. */
static void sgemm_columns(const float *x, int64_t m, int64_t k, const float *w, int64_t n, float *y) {
#pragma omp parallel
    {
        int64_t t = omp_get_thread_num(), nt = omp_get_num_threads();
        int64_t per = ((n + nt - 1) / nt + 15) / 16 * 16, c0 = t * per, c1 = c0 + per < n ? c0 + per : n;
        if (c0 < c1)
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)m, (int)(c1 - c0), (int)k, 1.0f, x, (int)k,
                        w + c0 * k, (int)k, 0.0f, y + c0, (int)n);
    }
}

typedef struct {
    dnnl_primitive_t prim;
    dnnl_memory_t src, wei, dst;
} onednn_matmul;

static onednn_matmul onednn_make(dnnl_engine_t eng, dnnl_stream_t stream, int64_t m, int64_t k, int64_t n,
                                 uint16_t *xb, const uint16_t *w, float *y, int prepacked) {
    onednn_matmul mm;
    dnnl_memory_desc_t src_md, wei_md, dst_md, wei_user_md;
    const dnnl_dims_t sd = {m, k}, wd = {k, n}, dd = {m, n};
    CHECK(dnnl_memory_desc_init_by_tag(&src_md, 2, sd, dnnl_bf16, dnnl_ab));
    CHECK(dnnl_memory_desc_init_by_tag(&wei_user_md, 2, wd, dnnl_bf16, dnnl_ba));   /* w[n][k]: k fastest */
    CHECK(dnnl_memory_desc_init_by_tag(&wei_md, 2, wd, dnnl_bf16, prepacked ? dnnl_format_tag_any : dnnl_ba));
    CHECK(dnnl_memory_desc_init_by_tag(&dst_md, 2, dd, dnnl_f32, dnnl_ab));
    dnnl_matmul_desc_t desc;
    CHECK(dnnl_matmul_desc_init(&desc, &src_md, &wei_md, NULL, &dst_md));
    dnnl_primitive_desc_t pd;
    CHECK(dnnl_primitive_desc_create(&pd, &desc, NULL, eng, NULL));
    CHECK(dnnl_primitive_create(&mm.prim, pd));
    CHECK(dnnl_memory_create(&mm.src, &src_md, eng, xb));
    CHECK(dnnl_memory_create(&mm.dst, &dst_md, eng, y));
    dnnl_memory_t user;
    CHECK(dnnl_memory_create(&user, &wei_user_md, eng, (void *)w));
    if (prepacked) {
        const dnnl_memory_desc_t *chosen = dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0);
        CHECK(dnnl_memory_create(&mm.wei, chosen, eng, DNNL_MEMORY_ALLOCATE));
        dnnl_primitive_desc_t rpd;
        dnnl_primitive_t reorder;
        CHECK(dnnl_reorder_primitive_desc_create(&rpd, &wei_user_md, eng, chosen, eng, NULL));
        CHECK(dnnl_primitive_create(&reorder, rpd));
        dnnl_exec_arg_t args[2] = {{DNNL_ARG_FROM, user}, {DNNL_ARG_TO, mm.wei}};
        CHECK(dnnl_primitive_execute(reorder, stream, 2, args));
        CHECK(dnnl_stream_wait(stream));
        dnnl_primitive_destroy(reorder);
        dnnl_primitive_desc_destroy(rpd);
        dnnl_memory_destroy(user);
    } else {
        mm.wei = user;
    }
    dnnl_primitive_desc_destroy(pd);
    return mm;
}

int main(int argc, char **argv) {
    const int64_t m = argc > 1 ? atoll(argv[1]) : 512;
    const int reps = 5;
    const shape shapes[] = {
        {"Qwen2.5-0.5B qkv", 896, 1152}, {"Qwen2.5-0.5B o_proj", 896, 896}, {"Qwen2.5-0.5B gate/up", 896, 9728},
        {"Qwen2.5-0.5B down", 4864, 896}, {"TinyLlama qkv", 2048, 2560}, {"TinyLlama o_proj", 2048, 2048},
        {"TinyLlama gate/up", 2048, 11264}, {"TinyLlama down", 5632, 2048},
    };
    openblas_set_num_threads(1);
    dnnl_engine_t eng;
    dnnl_stream_t stream;
    CHECK(dnnl_engine_create(&eng, dnnl_cpu, 0));
    CHECK(dnnl_stream_create(&stream, eng, dnnl_stream_default_flags));
    printf("rows %lld, %d threads; GFLOP/s (median of %d), max |Δ| of each vs Attune's GEMM\n", (long long)m, omp_get_max_threads(), reps);
    printf("| shape | in x out | attune bf16 GEMM | oneDNN bf16, weights as stored | oneDNN bf16, prepacked | OpenBLAS f32 sgemm |\n|---|---|---|---|---|---|\n");
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        const int64_t k = shapes[s].in, n = shapes[s].out;
        float *x = malloc(sizeof(float) * (size_t)(m * k)), *wf = malloc(sizeof(float) * (size_t)(n * k));
        float *y0 = malloc(sizeof(float) * (size_t)(m * n)), *y1 = malloc(sizeof(float) * (size_t)(m * n));
        uint16_t *w = malloc(2 * (size_t)(n * k)), *xb = malloc(2 * (size_t)(m * k));
        for (int64_t i = 0; i < m * k; i++) x[i] = (float)((i * 7919) % 2001) / 1000.0f - 1.0f;
        for (int64_t i = 0; i < n * k; i++) wf[i] = ((float)((i * 104729) % 2003) / 1001.0f - 1.0f) * 0.02f;
        attune_f32_to_bf16(wf, n * k, w);
        for (int64_t i = 0; i < n * k; i++) { uint32_t u = (uint32_t)w[i] << 16; memcpy(wf + i, &u, 4); }
        const double flop = 2.0 * (double)m * (double)k * (double)n;
        double t[4][reps], diff[4] = {0};
        onednn_matmul strided = onednn_make(eng, stream, m, k, n, xb, w, y1, 0);
        onednn_matmul packed = onednn_make(eng, stream, m, k, n, xb, w, y1, 1);
        for (int r = -1; r < reps; r++) {
            for (int c = 0; c < 4; c++) {
                float *y = c == 0 ? y0 : y1;
                double t0 = now();
                if (c == 0) {
                    attune_linear_bf16_gemm(x, m, k, w, n, y);
                } else if (c == 3) {
                    sgemm_columns(x, m, k, wf, n, y);
                } else {
                    onednn_matmul *mm = c == 1 ? &strided : &packed;
                    attune_f32_to_bf16(x, m * k, xb);
                    dnnl_exec_arg_t args[3] = {{DNNL_ARG_SRC, mm->src}, {DNNL_ARG_WEIGHTS, mm->wei}, {DNNL_ARG_DST, mm->dst}};
                    CHECK(dnnl_primitive_execute(mm->prim, stream, 3, args));
                    CHECK(dnnl_stream_wait(stream));
                }
                if (r >= 0) t[c][r] = now() - t0;
                if (c > 0 && r == reps - 1)
                    for (int64_t i = 0; i < m * n; i++) diff[c] = fmax(diff[c], fabs((double)y0[i] - (double)y1[i]));
            }
        }
        printf("| %s | %lld x %lld | %.0f | %.0f (Δ %.1e) | %.0f (Δ %.1e) | %.0f (Δ %.1e) |\n", shapes[s].name, (long long)k, (long long)n,
               flop / median(t[0], reps) * 1e-9, flop / median(t[1], reps) * 1e-9, diff[1], flop / median(t[2], reps) * 1e-9, diff[2],
               flop / median(t[3], reps) * 1e-9, diff[3]);
        fflush(stdout);
        dnnl_primitive_destroy(strided.prim); dnnl_memory_destroy(strided.src); dnnl_memory_destroy(strided.wei); dnnl_memory_destroy(strided.dst);
        dnnl_primitive_destroy(packed.prim); dnnl_memory_destroy(packed.src); dnnl_memory_destroy(packed.wei); dnnl_memory_destroy(packed.dst);
        free(x); free(wf); free(y0); free(y1); free(w); free(xb);
    }
    dnnl_stream_destroy(stream);
    dnnl_engine_destroy(eng);
    return 0;
}
