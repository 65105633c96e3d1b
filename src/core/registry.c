/* registry.c — the primitive table, generated from src/ops/ops.def. */
#include "internal.h"

#define AM_OP(E, n) extern const am_prim am_prim_##n;
#include "../ops/ops.def"
#undef AM_OP

const am_prim *const am_prims[AM_OP_COUNT] = {
#define AM_OP(E, n) [AM_OP_##E] = &am_prim_##n,
#include "../ops/ops.def"
#undef AM_OP
};

/* FNV-1a over the op and its params; custom hashes take over when set. */
uint64_t am_params_hash(const am_node *n) {
  uint64_t h = 1469598103934665603ull ^ (uint64_t)n->op;
  h *= 1099511628211ull;
  if (n->prim->params_hash) return h ^ n->prim->params_hash(n->params);
  const unsigned char *p = n->params;
  for (size_t i = 0; i < n->params_size; i++) {
    h ^= p[i];
    h *= 1099511628211ull;
  }
  return h;
}

bool am_params_equal(const am_node *a, const am_node *b) {
  if (a->op != b->op || a->params_size != b->params_size) return false;
  if (a->prim->is_equivalent)
    return a->prim->is_equivalent(a->params, b->params);
  return !a->params_size || !memcmp(a->params, b->params, a->params_size);
}
