/*
 * flash_internal.h — flash's plan and scratch (the engine's fields,
 * attention_plan.h, plus flash's own) and, through flash_softmax.h, what
 * flash.c and flash_tiles.c share: the wide online-softmax step, the row
 * finish and the two heavy micro-kernel users (wide scores, P.V tiles: dozens
 * of tile-shape specialisations), which live in their own translation unit so
 * the two halves compile in parallel when a model is built.
 */
#ifndef ATTUNE_FLASH_INTERNAL_H
#define ATTUNE_FLASH_INTERNAL_H

#include "attune_attention.h"
#include "attention_plan.h"

#include <stdint.h>

/* flash's plan: the engine's tiling (attention_plan.h) and the split partials. */
typedef struct {
    ATTENTION_PLAN_FIELDS;
    float softcap;   /* p->softcap in base-2 score units (0: none) */
    float *part_o;   /* [base_items][splits][rows][dvp] when splits > 1 */
    float *part_lse; /* [base_items][splits][rows] */
} plan;

/* The engine's per-thread tile buffers and the online-softmax state of each
 * row: running max m, sum l, and the tile's rescale factor alpha. */
typedef struct {
    ATTENTION_SCRATCH_FIELDS;
    float *m, *l, *alpha;
} scratch;

#include "flash_softmax.h"

#endif
