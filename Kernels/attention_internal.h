/*
 * attention_internal.h — helpers shared by the kernel files, not part of the ABI.
 */
#ifndef ATTUNE_ATTENTION_INTERNAL_H
#define ATTUNE_ATTENTION_INTERNAL_H

#include "attune_attention.h"
#include "attune_scratch.h" /* attune_scratch_alloc / _free for the kernels' temporaries */

/* Records an error in `status` (may be NULL) and returns `code`. */
int32_t attune_fail(attune_status *status, int32_t code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
int32_t attune_ok(attune_status *status);

/* Keys [lo, hi) visible to query row i (absolute position q_offset + i);
 * lo == hi when none is. The one place kernels derive masks from. */
/* The keys some query row sees, [lo, hi) (lo = hi = 0 when none): what a kernel
 * packing K/V once per call packs. */
void attune_visible_keys(const attune_attention_problem *p, int64_t q_offset, int64_t *lo, int64_t *hi);
void attune_visible_range(const attune_attention_problem *p, int64_t q_offset, int64_t i,
                          int64_t *lo, int64_t *hi);

/* Whether the masks (doc_ids, block_mask) let the query at position pos see key j
 * (causal and window aside); 1 without masks. Per element: for counting and checks,
 * not for tiles. */
int attune_mask_visible(const attune_attention_problem *p, int64_t pos, int64_t j);

/* Monotonic wall clock in milliseconds (OpenMP's when available), for the
 * timings kernels report in their stats. */
double attune_now_ms(void);


#endif
