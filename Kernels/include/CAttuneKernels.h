/* Umbrella header of the C kernel library for Swift. */
#include "attune_attention.h"
#include "attune_bench.h"
#include "attune_graph_ops.h"
#include "attune_linear_q8.h"
#include "attune_linear_q4.h"
#include "attune_weights.h"
#include "attune_linear_bf16.h"
#include "attune_scratch.h"
/* The interface each compiled model exports (defined by the generated code, loaded with
 * dlopen by AttuneRuntime): listed so the module covers every public header. */
#include "attune_model.h"
