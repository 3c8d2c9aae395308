/*
 * hybrid_kv.c — the two-tier KV cache of the `hybrid` kernel (attune_attention.h).
 *
 * Hot tier: per kv head a dense buffer of hot_cap = 2 (window + block) rows in
 * hot_format (f32, or bf16 / int8 exactly as a compiled model's KV cache stores
 * them, attune_kv_quantize); the tier's tokens are the rows [hot_start,
 * hot_start + hot_len), so `flash` reads them in place with row stride dk,
 * dequantising in registers as it does over any KV cache. A quantised block
 * moving cold is dequantised first and then stored in cold_dtype (bf16 -> bf16
 * is exact; int8 -> int8 rounds twice, to the finer cold scales). Appends copy rows at the end; when
 * the tier holds window + block tokens or more, its oldest `block` tokens move
 * cold as one block (quantised once, summarised once) and hot_start advances;
 * when the end of the buffer is reached the remaining rows are moved to its
 * front (once per >= window + block appended tokens, so O(1) per token).
 *
 * Cold tier: block-major records (block b, head g) in one region, so the store
 * grows at its end only: anonymous memory, or a file grown with ftruncate in
 * chunks of >= 16 MiB and mapped MAP_SHARED|MAP_FIXED into address space
 * reserved at create time for max_tokens (pointers never move; the kernel may
 * page the file out, so the cold tier may exceed RAM).
 *
 * Quantisation (documented in Docs/KERNELS.md, `hybrid`):
 *   bf16: round to nearest even; NaN stays NaN.
 *   int8: symmetric, q = round(x / s) clamped to [-127, 127], x ≈ q s.
 *         K: s per (block, head, dim) = max_j |k_jd| / 127 over the block's keys
 *         (keys have per-channel outliers; the scale folds into the query once
 *         per block). V: s per (token, head) = max_d |v_d| / 127 (folds into the
 *         probability). Scales are taken over finite values; NaN stores 0 and
 *         ±Inf saturates to ±127 s: int8 cannot carry non-finite values.
 * Summaries: per (block, head) per-dim min and max of the stored keys, which
 * bound q·k from above for every key in the block (hybrid.c).
 */
#include "attune_attention.h"
#include "attention_internal.h"
#include "hybrid_internal.h"
#include "kv_format.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

enum { FILE_CHUNK = 16 << 20, ANON_CHUNK = 4 << 20, DEFAULT_MAX_TOKENS = 1 << 22 };

/* ---------------------------------------------------------------- regions */

static size_t page_size(void) {
    long p = sysconf(_SC_PAGESIZE);
    return p > 0 ? (size_t)p : 4096;
}

static size_t round_up(size_t x, size_t m) { return (x + m - 1) / m * m; }

static int region_reserve(attune_hybrid_region *r, size_t bytes, int fd) {
    r->reserved = round_up(bytes ? bytes : 1, page_size());
    r->committed = 0;
    r->fd = fd;
    void *p = mmap(NULL, r->reserved, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED) {
        r->base = NULL;
        return 0;
    }
    r->base = p;
    return 1;
}

static void region_release(attune_hybrid_region *r) {
    if (r->base) munmap(r->base, r->reserved);
    if (r->fd >= 0) close(r->fd);
    r->base = NULL;
    r->fd = -1;
}

/* Makes [0, need) usable. */
static int32_t region_grow(attune_hybrid_region *r, size_t need, attune_status *status, const char *what) {
    if (need <= r->committed) return ATTUNE_OK;
    if (need > r->reserved)
        return attune_fail(status, ATTUNE_ERR_OUT_OF_MEMORY,
                           "hybrid kv: %s full (%zu bytes reserved); raise max_tokens", what, r->reserved);
    size_t chunk = r->fd >= 0 ? FILE_CHUNK : ANON_CHUNK;
    size_t target = round_up(need, chunk);
    if (target > r->reserved) target = r->reserved;
    void *at = r->base + r->committed;
    size_t n = target - r->committed;
    void *p;
    if (r->fd >= 0) {
        if (ftruncate(r->fd, (off_t)target) != 0)
            return attune_fail(status, ATTUNE_ERR_OUT_OF_MEMORY, "hybrid kv: cannot grow the cold file to %zu bytes: %s",
                               target, strerror(errno));
        p = mmap(at, n, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, r->fd, (off_t)r->committed);
    } else {
        p = mmap(at, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
    }
    if (p == MAP_FAILED)
        return attune_fail(status, ATTUNE_ERR_OUT_OF_MEMORY, "hybrid kv: cannot map %zu more bytes of the %s: %s", n,
                           what, strerror(errno));
    r->committed = target;
    return ATTUNE_OK;
}

/* ------------------------------------------------------------ conversion */

static inline int8_t to_i8(float x, float inv) {
    if (isnan(x)) return 0;
    float y = x * inv;
    if (!(y < 127.0f)) return 127; /* also +Inf, and x finite but s == 0 cannot happen (then x == 0) */
    if (!(y > -127.0f)) return -127;
    return (int8_t)lrintf(y);
}

static float finite_absmax(const float *x, int64_t n, int64_t stride) {
    float m = 0.0f;
    for (int64_t i = 0; i < n; i++) {
        float a = fabsf(x[i * stride]);
        if (a < INFINITY && a > m) m = a; /* NaN compares false */
    }
    return m;
}

/* Dequantised element `e` of row `row` of the K (is_v = 0) or V part of a record. */
static inline float stored(const struct attune_hybrid_kv *c, const uint8_t *rec, int is_v, int64_t row, int64_t e) {
    const int64_t dim = is_v ? c->dv : c->dk;
    const uint8_t *data = rec + (is_v ? c->v_off : c->k_off);
    const int64_t idx = row * dim + e;
    switch (c->dtype) {
    case ATTUNE_HYBRID_COLD_BF16: return bf16_to_f32(((const uint16_t *)data)[idx]);
    case ATTUNE_HYBRID_COLD_INT8: {
        const float *s = (const float *)(rec + (is_v ? c->vs_off : c->ks_off));
        return (float)((const int8_t *)data)[idx] * (is_v ? s[row] : s[e]);
    }
    default: return ((const float *)data)[idx];
    }
}

/* ----------------------------------------------------------- hot rows */

/* Row `row` of kv head g of the hot K (is_v = 0) or V buffer. */
static uint8_t *hot_row(const struct attune_hybrid_kv *c, int is_v, int64_t g, int64_t row) {
    const int64_t dim = is_v ? c->dv : c->dk;
    return (is_v ? c->hot_v : c->hot_k) + ((size_t)g * (size_t)c->hot_cap + (size_t)row) * (size_t)dim * c->hot_elem;
}

/* Its int8 scale (NULL for the other formats). */
static float *hot_scale(const struct attune_hybrid_kv *c, int is_v, int64_t g, int64_t row) {
    if (c->hot_format != ATTUNE_KV_INT8) return NULL;
    return (is_v ? c->hot_vs : c->hot_ks) + (size_t)g * (size_t)c->hot_cap + (size_t)row;
}

static void hot_store(struct attune_hybrid_kv *c, int is_v, int64_t g, int64_t row, const float *x) {
    attune_kv_quantize(c->hot_format, 1, 1, is_v ? c->dv : c->dk, x, 0, hot_row(c, is_v, g, row), 0,
                       hot_scale(c, is_v, g, row), 0);
}

/* n consecutive hot rows from `row` as fp32, rows packed. */
static void hot_load(const struct attune_hybrid_kv *c, int is_v, int64_t g, int64_t row, int64_t n, float *out) {
    const int64_t dim = is_v ? c->dv : c->dk;
    attune_kv_dequantize(c->hot_format, n, 1, dim, hot_row(c, is_v, g, row), dim, hot_scale(c, is_v, g, row), 1, out, dim);
}

/* Writes one block's record and summary for head g from the hot rows starting at `src_row`. */
static void store_block(struct attune_hybrid_kv *c, int64_t b, int64_t g, int64_t src_row) {
    const int64_t B = c->block, dk = c->dk, dv = c->dv;
    const float *k, *v;
    if (c->hot_format == ATTUNE_KV_F32) {
        k = (const float *)hot_row(c, 0, g, src_row);
        v = (const float *)hot_row(c, 1, g, src_row);
    } else {
        hot_load(c, 0, g, src_row, B, c->spill_k);
        hot_load(c, 1, g, src_row, B, c->spill_v);
        k = c->spill_k;
        v = c->spill_v;
    }
    uint8_t *rec = (uint8_t *)attune_hybrid_cold_record(c, b, g);
    switch (c->dtype) {
    case ATTUNE_HYBRID_COLD_F32:
        memcpy(rec + c->k_off, k, sizeof(float) * (size_t)(B * dk));
        memcpy(rec + c->v_off, v, sizeof(float) * (size_t)(B * dv));
        break;
    case ATTUNE_HYBRID_COLD_BF16: {
        uint16_t *kd = (uint16_t *)(rec + c->k_off), *vd = (uint16_t *)(rec + c->v_off);
        for (int64_t i = 0; i < B * dk; i++) kd[i] = bf16_from_f32(k[i]);
        for (int64_t i = 0; i < B * dv; i++) vd[i] = bf16_from_f32(v[i]);
        break;
    }
    case ATTUNE_HYBRID_COLD_INT8: {
        int8_t *kd = (int8_t *)(rec + c->k_off), *vd = (int8_t *)(rec + c->v_off);
        float *ks = (float *)(rec + c->ks_off), *vs = (float *)(rec + c->vs_off);
        float kinv[4096];
        for (int64_t d = 0; d < dk; d++) {
            float s = finite_absmax(k + d, B, dk) / 127.0f;
            ks[d] = s;
            kinv[d] = s > 0.0f ? 1.0f / s : 0.0f;
        }
        for (int64_t j = 0; j < B; j++)
            for (int64_t d = 0; d < dk; d++) kd[j * dk + d] = to_i8(k[j * dk + d], kinv[d]);
        for (int64_t j = 0; j < B; j++) {
            float s = finite_absmax(v + j * dv, dv, 1) / 127.0f;
            float inv = s > 0.0f ? 1.0f / s : 0.0f;
            vs[j] = s;
            for (int64_t d = 0; d < dv; d++) vd[j * dv + d] = to_i8(v[j * dv + d], inv);
        }
        break;
    }
    }
    /* Summary of the stored keys; NaN keys are left out (fminf/fmaxf skip NaN). */
    float *sm = (float *)attune_hybrid_summary(c, b, g);
    for (int64_t d = 0; d < dk; d++) {
        sm[d] = INFINITY;
        sm[dk + d] = -INFINITY;
    }
    for (int64_t j = 0; j < B; j++)
        for (int64_t d = 0; d < dk; d++) {
            float x = c->dtype == ATTUNE_HYBRID_COLD_F32 ? k[j * dk + d] : stored(c, rec, 0, j, d);
            sm[d] = fminf(sm[d], x);
            sm[dk + d] = fmaxf(sm[dk + d], x);
        }
}

/* ------------------------------------------------------------------- API */

int32_t attune_hybrid_kv_create(const attune_hybrid_kv_config *cfg, attune_hybrid_kv **out, attune_status *status) {
    if (!out) return attune_fail(status, ATTUNE_ERR_INVALID_ARGUMENT, "hybrid kv: out is NULL");
    *out = NULL;
    if (!cfg) return attune_fail(status, ATTUNE_ERR_INVALID_ARGUMENT, "hybrid kv: config is NULL");
    if (cfg->kv_heads < 1 || cfg->qk_dim < 1 || cfg->v_dim < 1)
        return attune_fail(status, ATTUNE_ERR_INVALID_ARGUMENT,
                           "hybrid kv: kv_heads, qk_dim and v_dim must be >= 1 (got %lld, %lld, %lld)",
                           (long long)cfg->kv_heads, (long long)cfg->qk_dim, (long long)cfg->v_dim);
    if (cfg->qk_dim > 4096 || cfg->v_dim > 4096)
        return attune_fail(status, ATTUNE_ERR_INVALID_ARGUMENT, "hybrid kv: head dims must be <= 4096");
    if (cfg->window < 1)
        return attune_fail(status, ATTUNE_ERR_INVALID_ARGUMENT, "hybrid kv: window must be >= 1 (got %lld)",
                           (long long)cfg->window);
    if (cfg->block < 16 || cfg->block > 1024 || cfg->block % 16)
        return attune_fail(status, ATTUNE_ERR_INVALID_ARGUMENT,
                           "hybrid kv: block must be a multiple of 16 in [16, 1024] (got %d)", cfg->block);
    if (cfg->cold_dtype < ATTUNE_HYBRID_COLD_F32 || cfg->cold_dtype > ATTUNE_HYBRID_COLD_INT8)
        return attune_fail(status, ATTUNE_ERR_INVALID_ARGUMENT,
                           "hybrid kv: cold_dtype must be 0 (f32), 1 (bf16) or 2 (int8) (got %d)", cfg->cold_dtype);
    if (cfg->hot_format < ATTUNE_KV_F32 || cfg->hot_format > ATTUNE_KV_INT8)
        return attune_fail(status, ATTUNE_ERR_INVALID_ARGUMENT,
                           "hybrid kv: hot_format must be 0 (f32), 1 (bf16) or 2 (int8) (got %d)", cfg->hot_format);
    if (cfg->max_tokens < 0 || cfg->max_tokens > INT32_MAX)
        return attune_fail(status, ATTUNE_ERR_INVALID_ARGUMENT, "hybrid kv: max_tokens must be in [0, 2^31 - 1]");
    if (cfg->cold_path && !cfg->cold_path[0])
        return attune_fail(status, ATTUNE_ERR_INVALID_ARGUMENT, "hybrid kv: cold_path is empty (use NULL for memory)");

    struct attune_hybrid_kv *c = calloc(1, sizeof *c);
    if (!c) return attune_fail(status, ATTUNE_ERR_OUT_OF_MEMORY, "hybrid kv: cannot allocate the cache");
    c->cold.fd = c->summ.fd = -1;
    c->kv_heads = cfg->kv_heads;
    c->dk = cfg->qk_dim;
    c->dv = cfg->v_dim;
    c->window = cfg->window;
    c->dtype = cfg->cold_dtype;
    c->block = cfg->block;
    c->release_written = cfg->release_written && cfg->cold_path;
    c->max_tokens = cfg->max_tokens ? cfg->max_tokens : DEFAULT_MAX_TOKENS;
    c->elem_bytes = c->dtype == ATTUNE_HYBRID_COLD_F32 ? 4 : c->dtype == ATTUNE_HYBRID_COLD_BF16 ? 2 : 1;
    const size_t B = (size_t)c->block;
    c->k_off = 0;
    c->v_off = round_up(B * (size_t)c->dk * c->elem_bytes, 64);
    c->ks_off = round_up(c->v_off + B * (size_t)c->dv * c->elem_bytes, 64);
    c->vs_off = round_up(c->ks_off + (c->dtype == ATTUNE_HYBRID_COLD_INT8 ? sizeof(float) * (size_t)c->dk : 0), 64);
    c->rec_bytes = round_up(c->vs_off + (c->dtype == ATTUNE_HYBRID_COLD_INT8 ? sizeof(float) * B : 0), 64);

    c->hot_cap = 2 * (c->window + c->block);
    if ((double)c->hot_cap * (double)c->kv_heads * (double)(c->dk + c->dv) * 4.0 > 64.0 * (1ull << 30)) {
        free(c);
        return attune_fail(status, ATTUNE_ERR_INVALID_ARGUMENT, "hybrid kv: window %lld needs more than 64 GiB of hot tier",
                           (long long)c->window);
    }
    c->hot_format = cfg->hot_format;
    c->hot_elem = (size_t)attune_kv_element_bytes(c->hot_format);
    const size_t hot_rows = (size_t)(c->hot_cap * c->kv_heads);
    c->hot_k = attune_aligned_alloc(c->hot_elem * hot_rows * (size_t)c->dk);
    c->hot_v = attune_aligned_alloc(c->hot_elem * hot_rows * (size_t)c->dv);
    int hot_ok = c->hot_k && c->hot_v;
    if (c->hot_format == ATTUNE_KV_INT8) {
        c->hot_ks = attune_aligned_alloc(sizeof(float) * hot_rows);
        c->hot_vs = attune_aligned_alloc(sizeof(float) * hot_rows);
        hot_ok = hot_ok && c->hot_ks && c->hot_vs;
    }
    if (c->hot_format != ATTUNE_KV_F32) {
        c->spill_k = attune_aligned_alloc(sizeof(float) * B * (size_t)c->dk);
        c->spill_v = attune_aligned_alloc(sizeof(float) * B * (size_t)c->dv);
        hot_ok = hot_ok && c->spill_k && c->spill_v;
    }
    size_t max_blocks = (size_t)(c->max_tokens / c->block + 1);
    int fd = -1;
    if (cfg->cold_path) {
        fd = open(cfg->cold_path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        if (fd < 0) {
            int e = errno;
            attune_hybrid_kv_destroy(c);
            return attune_fail(status, ATTUNE_ERR_INVALID_ARGUMENT, "hybrid kv: cannot open cold file '%s': %s",
                               cfg->cold_path, strerror(e));
        }
    }
    int ok = hot_ok;
    ok = ok && region_reserve(&c->cold, max_blocks * (size_t)c->kv_heads * c->rec_bytes + FILE_CHUNK, fd);
    if (!ok && fd >= 0 && !c->cold.base) close(fd);
    ok = ok && region_reserve(&c->summ, max_blocks * (size_t)c->kv_heads * 2 * (size_t)c->dk * sizeof(float), -1);
    if (!ok) {
        attune_hybrid_kv_destroy(c);
        return attune_fail(status, ATTUNE_ERR_OUT_OF_MEMORY, "hybrid kv: cannot reserve memory for %lld tokens",
                           (long long)c->max_tokens);
    }
    *out = c;
    return attune_ok(status);
}

void attune_hybrid_kv_destroy(attune_hybrid_kv *c) {
    if (!c) return;
    region_release(&c->cold);
    region_release(&c->summ);
    free(c->hot_k);
    free(c->hot_v);
    free(c->hot_ks);
    free(c->hot_vs);
    free(c->spill_k);
    free(c->spill_v);
    free(c);
}

void attune_hybrid_kv_reset(attune_hybrid_kv *c) {
    if (!c) return;
    c->len = c->cold_len = 0;
    c->hot_start = 0;
    c->released = 0;
}

void attune_hybrid_kv_lengths(const attune_hybrid_kv *c, int64_t *total, int64_t *hot, int64_t *cold) {
    if (total) *total = c ? c->len : 0;
    if (hot) *hot = c ? c->len - c->cold_len : 0;
    if (cold) *cold = c ? c->cold_len : 0;
}

void attune_hybrid_kv_footprint(const attune_hybrid_kv *c, int64_t *cold_bytes, int64_t *summary_bytes) {
    size_t blocks = c ? (size_t)(c->cold_len / c->block) * (size_t)c->kv_heads : 0;
    if (cold_bytes) *cold_bytes = c ? (int64_t)(c->cold.fd >= 0 ? c->cold.committed : blocks * c->rec_bytes) : 0;
    if (summary_bytes) *summary_bytes = c ? (int64_t)(blocks * 2 * (size_t)c->dk * sizeof(float)) : 0;
}

/* Moves whole blocks of the oldest hot tokens cold while the hot tier holds window + block or more. */
static int32_t spill(struct attune_hybrid_kv *c, attune_status *status) {
    while (c->len - c->cold_len >= c->window + c->block) {
        int64_t b = c->cold_len / c->block;
        int32_t rc = region_grow(&c->cold, (size_t)(b + 1) * (size_t)c->kv_heads * c->rec_bytes, status, "cold tier");
        if (rc == ATTUNE_OK)
            rc = region_grow(&c->summ, (size_t)(b + 1) * (size_t)c->kv_heads * 2 * (size_t)c->dk * sizeof(float), status,
                             "summary store");
        if (rc != ATTUNE_OK) return rc;
        for (int64_t g = 0; g < c->kv_heads; g++) store_block(c, b, g, c->hot_start);
        c->hot_start += c->block;
        c->cold_len += c->block;
    }
    if (c->release_written) {
        /* Pages wholly behind the write position go back to the page cache. */
        size_t written = (size_t)(c->cold_len / c->block) * (size_t)c->kv_heads * c->rec_bytes;
        size_t upto = written / FILE_CHUNK * FILE_CHUNK;
        if (upto > c->released) {
            madvise(c->cold.base + c->released, upto - c->released, MADV_DONTNEED);
            c->released = upto;
        }
    }
    return ATTUNE_OK;
}

int32_t attune_hybrid_kv_append(attune_hybrid_kv *c, int64_t n, const float *k, int64_t k_head_stride,
                                int64_t k_row_stride, const float *v, int64_t v_head_stride, int64_t v_row_stride,
                                attune_status *status) {
    if (!c) return attune_fail(status, ATTUNE_ERR_INVALID_ARGUMENT, "hybrid kv: cache is NULL");
    if (n < 0) return attune_fail(status, ATTUNE_ERR_INVALID_ARGUMENT, "hybrid kv: n = %lld < 0", (long long)n);
    if (n == 0) return attune_ok(status);
    if (!k || !v) return attune_fail(status, ATTUNE_ERR_INVALID_ARGUMENT, "hybrid kv: k or v is NULL");
    if ((n > 1 && (k_row_stride < c->dk || v_row_stride < c->dv)) ||
        (c->kv_heads > 1 && (k_head_stride < c->dk || v_head_stride < c->dv)))
        return attune_fail(status, ATTUNE_ERR_INVALID_ARGUMENT,
                           "hybrid kv: row and head strides must be >= the head dims (k %lld/%lld, v %lld/%lld)",
                           (long long)k_head_stride, (long long)k_row_stride, (long long)v_head_stride,
                           (long long)v_row_stride);
    if (c->len + n > c->max_tokens)
        return attune_fail(status, ATTUNE_ERR_OUT_OF_MEMORY,
                           "hybrid kv: %lld + %lld tokens exceed max_tokens = %lld", (long long)c->len, (long long)n,
                           (long long)c->max_tokens);
    const int64_t dk = c->dk, dv = c->dv;
    int64_t done = 0;
    while (done < n) {
        int64_t hot_len = c->len - c->cold_len;
        if (c->hot_start + hot_len == c->hot_cap) {
            /* Out of room: move the hot rows to the front of the buffer. */
            for (int64_t g = 0; g < c->kv_heads; g++) {
                memmove(hot_row(c, 0, g, 0), hot_row(c, 0, g, c->hot_start), c->hot_elem * (size_t)(hot_len * dk));
                memmove(hot_row(c, 1, g, 0), hot_row(c, 1, g, c->hot_start), c->hot_elem * (size_t)(hot_len * dv));
                if (c->hot_format == ATTUNE_KV_INT8) {
                    memmove(hot_scale(c, 0, g, 0), hot_scale(c, 0, g, c->hot_start), sizeof(float) * (size_t)hot_len);
                    memmove(hot_scale(c, 1, g, 0), hot_scale(c, 1, g, c->hot_start), sizeof(float) * (size_t)hot_len);
                }
            }
            c->hot_start = 0;
        }
        int64_t room = c->hot_cap - (c->hot_start + hot_len);
        if (room == 0)
            return attune_fail(status, ATTUNE_ERR_OUT_OF_MEMORY, "hybrid kv: hot tier full (the cold tier cannot grow)");
        /* Never hold more than window + 2 block - 1 before spilling: the loop spills per block. */
        int64_t m = n - done < room ? n - done : room;
        if (m > c->block) m = c->block;
        int64_t at = c->hot_start + hot_len;
        for (int64_t g = 0; g < c->kv_heads; g++)
            for (int64_t t = 0; t < m; t++) {
                hot_store(c, 0, g, at + t, k + g * k_head_stride + (done + t) * k_row_stride);
                hot_store(c, 1, g, at + t, v + g * v_head_stride + (done + t) * v_row_stride);
            }
        c->len += m;
        done += m;
        /* On failure the tokens stay hot (the hot buffer holds up to 2 (window + block)). */
        int32_t rc = spill(c, status);
        if (rc != ATTUNE_OK) return rc;
    }
    return attune_ok(status);
}

int32_t attune_hybrid_kv_read(const attune_hybrid_kv *c, int64_t head, int64_t pos, float *k_out, float *v_out,
                              attune_status *status) {
    if (!c) return attune_fail(status, ATTUNE_ERR_INVALID_ARGUMENT, "hybrid kv: cache is NULL");
    if (head < 0 || head >= c->kv_heads || pos < 0 || pos >= c->len)
        return attune_fail(status, ATTUNE_ERR_INVALID_ARGUMENT,
                           "hybrid kv: (head %lld, pos %lld) out of range (%lld heads, %lld tokens)", (long long)head,
                           (long long)pos, (long long)c->kv_heads, (long long)c->len);
    if (pos >= c->cold_len) {
        int64_t row = c->hot_start + pos - c->cold_len;
        if (k_out) hot_load(c, 0, head, row, 1, k_out);
        if (v_out) hot_load(c, 1, head, row, 1, v_out);
    } else {
        const uint8_t *rec = attune_hybrid_cold_record(c, pos / c->block, head);
        int64_t row = pos % c->block;
        if (k_out)
            for (int64_t d = 0; d < c->dk; d++) k_out[d] = stored(c, rec, 0, row, d);
        if (v_out)
            for (int64_t d = 0; d < c->dv; d++) v_out[d] = stored(c, rec, 1, row, d);
    }
    return attune_ok(status);
}
