/*
 * attune_attention.h — the one ABI every Attune attention kernel implements.
 *
 * Problem: for every batch b and query head h (kv head g = h / (Hq / Hkv)),
 *
 *     O[b,h,i,:] = sum_j softmax_j( scale * Q[b,h,i,:] . K[b,g,j,:] + mask(i,j) ) * V[b,g,j,:]
 *     LSE[b,h,i] = ln sum_j exp( scale * Q[b,h,i,:] . K[b,g,j,:] )   over visible j
 *
 * Masking (bottom-right aligned, the KV-cache convention): query row i sits at
 * absolute position p = q_offset + i. Key j is visible iff
 *     (!causal || j <= p)  and  (window == 0 || j > p - window).
 * A row with no visible key (or kv_len == 0) gives O = 0 and LSE = -inf.
 *
 * Layout: element strides for batch, head and row; the last dimension of every
 * tensor must be contiguous (stride 1). Q/K/V are read only and never written.
 * O and LSE must not overlap Q, K or V.
 *
 * Errors: every entry point validates its arguments first and returns a
 * non-zero attune_status code with a message in `status->message`; kernels
 * never abort the process.
 */
#ifndef ATTUNE_ATTENTION_H
#define ATTUNE_ATTENTION_H

#include <stdint.h>
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Status codes returned by every entry point. */
typedef enum {
    ATTUNE_OK = 0,
    ATTUNE_ERR_INVALID_ARGUMENT = 1, /* shape, stride, scale, window, params */
    ATTUNE_ERR_UNSUPPORTED = 2,      /* valid problem this kernel cannot do */
    ATTUNE_ERR_OUT_OF_MEMORY = 3,
} attune_status_code;

typedef struct {
    int32_t code;          /* attune_status_code */
    char message[256];     /* NUL-terminated; empty on success */
} attune_status;

/* Element strides of a rank-4 tensor [batch, heads, rows, dim]; dim stride is 1. */
typedef struct {
    int64_t batch;
    int64_t head;
    int64_t row;
} attune_strides;

/* Sentinel for `q_offset`: use kv_len - q_len. */
#define ATTUNE_Q_OFFSET_DEFAULT INT64_MIN

typedef struct {
    int64_t batch;
    int64_t q_heads;
    int64_t kv_heads;   /* q_heads % kv_heads == 0 (MHA, GQA, MQA) */
    int64_t q_len;
    int64_t kv_len;     /* may be 0 */
    int64_t qk_dim;     /* head dim of Q and K */
    int64_t v_dim;      /* head dim of V and O; may differ from qk_dim */
    attune_strides q_stride, k_stride, v_stride, o_stride;
    int64_t lse_stride_batch, lse_stride_head; /* LSE rows are contiguous */
    float scale;        /* finite; attune_attention_problem_init sets 1/sqrt(qk_dim) */
    int32_t causal;     /* 0 or 1 */
    int64_t q_offset;   /* absolute position of query row 0, or ATTUNE_Q_OFFSET_DEFAULT */
    int64_t window;     /* 0 = none; otherwise >= 1 keys ending at the query's position */
} attune_attention_problem;

/* The tensors of one call. `lse` may be NULL. */
typedef struct {
    const float *q;
    const float *k;
    const float *v;
    float *o;
    float *lse;
} attune_attention_tensors;

/* Fills a problem for contiguous [B, H, L, D] tensors with default scale,
 * q_offset, no mask. */
void attune_attention_problem_init(attune_attention_problem *p,
                                   int64_t batch, int64_t q_heads, int64_t kv_heads,
                                   int64_t q_len, int64_t kv_len,
                                   int64_t qk_dim, int64_t v_dim);

/* Validates a problem and its tensors; ATTUNE_OK or a code with a message. */
int32_t attune_attention_validate(const attune_attention_problem *p,
                                  const attune_attention_tensors *t,
                                  attune_status *status);

/* The q_offset in force (resolves ATTUNE_Q_OFFSET_DEFAULT). */
int64_t attune_attention_q_offset(const attune_attention_problem *p);

/* Number of (query, key) pairs visible under the mask, per (batch, q head).
 * Benchmarks count FLOPs from it. */
int64_t attune_attention_visible_pairs(const attune_attention_problem *p);

/* ---------------------------------------------------------------------------
 * Log-sum-exp merge — the shared primitive of split-KV decode, two-tier and
 * prefix/suffix attention. Part s holds a normalised output O_s (n_rows x dim,
 * row stride o_row_stride[s]) and its LSE_s per row. Then
 *     L* = ln sum_s exp(L_s),   O = sum_s exp(L_s - L*) O_s
 * skipping parts whose L_s = -inf; all parts -inf gives O = 0, L* = -inf.
 * `out` may alias part 0 (it is read before it is written, row by row).
 * --------------------------------------------------------------------------- */
void attune_lse_merge_rows(int32_t n_parts, int64_t n_rows, int64_t dim,
                           const float *const *parts, const int64_t *part_row_stride,
                           const float *const *part_lse,
                           float *out, int64_t out_row_stride, float *out_lse);

/* ---------------------------------------------------------------------------
 * flash — tiled online-softmax attention (FlashAttention-2 style), fp32.
 * --------------------------------------------------------------------------- */
typedef enum {
    ATTUNE_GEMM_AUTO = 0,   /* per-shape choice measured in Docs/PERFORMANCE.md */
    ATTUNE_GEMM_NATIVE = 1, /* hand-written AVX-512 micro-kernels */
    ATTUNE_GEMM_BLAS = 2,   /* OpenBLAS sgemm for full tiles */
} attune_gemm_backend;

typedef struct {
    int32_t block_q;    /* query rows per tile (heads of a kv group are stacked); 0 = default */
    int32_t block_kv;   /* keys per tile; 0 = default */
    int32_t kv_splits;  /* KV chunks per (batch, kv head, q tile), merged by LSE; 0 = auto */
    int32_t threads;    /* OpenMP threads; 0 = runtime default */
    int32_t gemm;       /* attune_gemm_backend */
} attune_flash_params;

/* The defaults the kernel uses for zeros in `params` (for reporting). */
void attune_flash_resolve_params(const attune_attention_problem *p,
                                 const attune_flash_params *in,
                                 attune_flash_params *out);

int32_t attune_flash_attention(const attune_attention_problem *p,
                               const attune_attention_tensors *t,
                               const attune_flash_params *params,
                               attune_status *status);

/* ---------------------------------------------------------------------------
 * prefix_shared — a batch of sequences sharing a P-key prefix (Hydragen): the
 * prefix attended once for all sequences' stacked queries, each suffix on its
 * own, merged by log-sum-exp. Only batch 0's prefix K/V rows are read.
 * --------------------------------------------------------------------------- */
typedef struct {
    int64_t prefix_len;        /* P >= 1 keys shared by every sequence */
    attune_flash_params flash; /* tiles and threads of both passes */
} attune_prefix_shared_params;

int32_t attune_prefix_shared_attention(const attune_attention_problem *p,
                                       const attune_attention_tensors *t,
                                       const attune_prefix_shared_params *params,
                                       attune_status *status);

/* ---------------------------------------------------------------------------
 * Build facts, for benchmarks and bug reports.
 * --------------------------------------------------------------------------- */
int32_t attune_kernels_openmp_enabled(void);
int32_t attune_kernels_max_threads(void);
int32_t attune_kernels_has_avx512(void);

#ifdef __cplusplus
}
#endif
#endif /* ATTUNE_ATTENTION_H */
