/*
 * lse_merge.c — combining partial attention results by their log-sum-exp.
 *
 * Each part s attended over a disjoint subset of the keys and returned its
 * normalised output O_s and L_s = ln sum exp(scores) over that subset. The
 * full result is
 *     L* = ln sum_s exp(L_s),   O = sum_s exp(L_s - L*) O_s.
 * Parts with L_s = -inf (nothing visible) are skipped, so empty splits,
 * empty KV tiers and empty prefixes merge correctly; if every part is empty
 * the row is O = 0, L* = -inf. Computed in double per row: the weights are
 * tiny in number and this keeps the merge exact to fp32 rounding.
 */
#include "attune_attention.h"

#include <math.h>

void attune_lse_merge_rows(int32_t n_parts, int64_t n_rows, int64_t dim,
                           const float *const *parts, const int64_t *part_row_stride,
                           const float *const *part_lse,
                           float *out, int64_t out_row_stride, float *out_lse) {
    for (int64_t r = 0; r < n_rows; r++) {
        double m = -INFINITY;
        for (int32_t s = 0; s < n_parts; s++) {
            double l = part_lse[s][r];
            if (l > m || isnan(l)) m = l;
        }
        float *o = out + r * out_row_stride;
        if (m == -INFINITY) {
            for (int64_t d = 0; d < dim; d++) o[d] = 0.0f;
            if (out_lse) out_lse[r] = -INFINITY;
            continue;
        }
        double total = 0.0;
        for (int32_t s = 0; s < n_parts; s++) {
            double l = part_lse[s][r];
            if (l != -INFINITY) total += exp(l - m);
        }
        double lse = m + log(total);
        /* Accumulate a chunk of the row locally first: `out` may alias part 0. */
        enum { CHUNK = 256 };
        for (int64_t d0 = 0; d0 < dim; d0 += CHUNK) {
            int64_t n = dim - d0 < CHUNK ? dim - d0 : CHUNK;
            double acc[CHUNK];
            for (int64_t d = 0; d < n; d++) acc[d] = 0.0;
            for (int32_t s = 0; s < n_parts; s++) {
                double l = part_lse[s][r];
                if (l == -INFINITY) continue;
                double w = exp(l - lse);
                const float *src = parts[s] + r * part_row_stride[s] + d0;
                for (int64_t d = 0; d < n; d++) acc[d] += w * src[d];
            }
            for (int64_t d = 0; d < n; d++) o[d0 + d] = (float)acc[d];
        }
        if (out_lse) out_lse[r] = (float)lse;
    }
}
