/*
 * kernel.c — CUDA glue of the kernel family: custom_kernel (an
 * am_kernel_new kernel's MLX-style CUDA body, completed by
 * am_kernel_cuda_source, compiled with NVRTC and launched through jit.h),
 * and the registration of fused (fused.c) and random (random.c).
 */
#include "jit.h"
#include "ops.h"

#include "../kernel/kernel_internal.h"

#include <stdio.h>
#include <stdlib.h>

void am_cuda_register_fused(am_backend *b);
void am_cuda_register_random(am_backend *b);

/* Everything am_kernel_cuda_source's output depends on (no template
 * arguments here: the primitive has none), plus the target. */
static uint64_t kernel_key(const struct am_kernel_s *k, const am_dtype *it,
                           const am_dtype *ot, const char *arch) {
  uint64_t h = am_jit_hash(AM_JIT_FNV0, "custom", 6);
#define HS(str)                                                                \
  h = am_jit_hash(h, (str) ? (str) : "", (str) ? strlen(str) + 1 : 1)
  HS(k->name);
  HS(k->source);
  HS(k->header);
  for (int i = 0; i < k->n_in; i++)
    HS(k->in_names[i]);
  for (int j = 0; j < k->n_out; j++)
    HS(k->out_names[j]);
  HS(arch);
#undef HS
  h = am_jit_hash(h, it, (size_t)k->n_in * sizeof *it);
  return am_jit_hash(h, ot, (size_t)k->n_out * sizeof *ot);
}

static void *kernel_get(const struct am_kernel_s *k, const am_dtype *it,
                        const am_dtype *ot, am_status *s) {
  const char *arch = am_jit_arch();
  if (!arch) {
    *s = am_set_error(AM_ERR_DEVICE, "kernel '%s': no current CUDA device",
                      k->name);
    return NULL;
  }
  uint64_t key = kernel_key(k, it, ot, arch);
  void *kern = am_jit_find(key);
  if (kern) return kern;
  char *ptx = NULL, *entry = NULL;
  *s =
      am_kernel_cuda_compile((am_kernel)k, it, ot, NULL, 0, arch, &ptx, &entry);
  if (!*s) {
    *s = am_jit_load_ptx(key, ptx, entry, &kern);
    if (*s) *s = am_set_error(*s, "kernel '%s': %s", k->name, am_last_error());
  }
  free(ptx);
  free(entry);
  return kern;
}

static am_status ck_cuda(am_arr *const *in, int n_in, am_arr *const *out,
                         int n_out, const void *params) {
  const am_kernel_params *p = params;
  const struct am_kernel_s *k = p->k;
  if (!k->has_cuda)
    return am_set_error(AM_ERR_UNSUPPORTED,
                        "kernel '%s' has no CUDA source (CPU only): it cannot "
                        "run on the GPU",
                        k->name);
  if (n_in != k->n_in || n_out != k->n_out)
    return am_set_error(AM_ERR_INVALID_ARG,
                        "kernel '%s': %d inputs, %d outputs", k->name, n_in,
                        n_out);
  /* in[i] itself, or a contiguous copy (owned: released at the end). The
   * node holds the inputs, so in[i] needs no reference of ours, and taking
   * one would stop am_out_alloc_donate from giving its buffer away. */
  am_arr *cin[AM_KERNEL_MAX_IO] = {0};
  bool copied[AM_KERNEL_MAX_IO] = {0};
  am_arr *tab = NULL;
  am_status s = AM_OK;
  for (int i = 0; i < n_in && !s; i++) {
    cin[i] = in[i];
    if (k->allow_strided || !in[i]->size) continue;
    s = am_cuda_contiguous(in[i], in[i]->m.dtype, &cin[i]);
    if (s) {
      cin[i] = NULL;
      break;
    }
    copied[i] = cin[i] != in[i];
    if (!copied[i]) am_arr_release(cin[i]); /* the retain of "as it is" */
  }
  bool any_out = false;
  for (int j = 0; j < n_out && !s; j++) {
    am_arr *o = out[j];
    int from = k->inplace[j] - 1; /* a copied input cannot serve */
    if (from >= 0 && from < n_in && !copied[from] && !p->a.has_init)
      s = am_out_alloc_donate(o, &in[from], 1);
    else
      s = am_out_alloc(o);
    if (!s && p->a.has_init && o->size)
      s = am_jit_fill(am_arr_ptr(o), o->m.dtype, o->size, p->a.init_value);
    any_out |= o->size > 0;
  }
  if (s || !any_out) goto done; /* nothing to write: no launch */
  am_kernel_meta im[AM_KERNEL_MAX_IO];
  am_dtype it[AM_KERNEL_MAX_IO], ot[AM_KERNEL_MAX_IO];
  for (int i = 0; i < n_in; i++) {
    memcpy(&im[i], &in[i]->m, sizeof im[i]);
    it[i] = in[i]->m.dtype;
  }
  for (int j = 0; j < n_out; j++)
    ot[j] = out[j]->m.dtype;
  am_kernel_launch L;
  s = am_kernel_cuda_launch_for((am_kernel)k, im, n_in, &p->a, &L);
  if (s) goto done;
  void *kern = kernel_get(k, it, ot, &s);
  if (s) goto done;

  /* Shapes and strides the body reads go to the device in one table,
   * written by a kernel (never a host copy: see jit.h). */
  unsigned use[AM_KERNEL_MAX_IO];
  int64_t vals[AM_JIT_TABLE_MAX];
  int off_shape[AM_KERNEL_MAX_IO], off_str[AM_KERNEL_MAX_IO], nv = 0;
  for (int i = 0; i < n_in; i++) {
    const am_arr *a = cin[i];
    use[i] = am_kernel_cuda_uses(k, i);
    off_shape[i] = off_str[i] = -1;
    if (use[i] & AM_KUSE_SHAPE) {
      off_shape[i] = nv;
      for (int d = 0; d < a->m.ndim; d++)
        vals[nv++] = a->m.shape[d];
      if (!a->m.ndim) vals[nv++] = 1; /* never a zero-length table */
    }
    if (use[i] & AM_KUSE_STRIDES) {
      off_str[i] = nv;
      int64_t cst[AM_MAX_DIMS];
      am_contig_strides(a->m.shape, a->m.ndim, cst);
      for (int d = 0; d < a->m.ndim; d++)
        vals[nv++] = a->size ? a->strides[d] : cst[d];
      if (!a->m.ndim) vals[nv++] = 1;
    }
  }
  int64_t *dtab = NULL;
  if (nv) {
    am_meta m = {.dtype = AM_I64, .ndim = 1, .shape = {nv}};
    tab = am_arr_alloc(&m);
    if (!tab) {
      s = am_set_error(AM_ERR_OOM, "kernel '%s': out of memory", k->name);
      goto done;
    }
    s = am_out_alloc(tab);
    if (!s) {
      dtab = (int64_t *)am_arr_ptr(tab);
      s = am_jit_write_i64(dtab, vals, nv);
    }
    if (s) goto done;
  }

  /* Arguments in am_kernel_cuda_source's order: per input its pointer,
   * then _shape, _strides, _ndim as the body uses them; the outputs. */
  void *ptrs[2 * AM_KERNEL_MAX_IO], *tptr[2 * AM_KERNEL_MAX_IO];
  int ndims[AM_KERNEL_MAX_IO];
  void *args[5 * AM_KERNEL_MAX_IO];
  int na = 0;
  for (int i = 0; i < n_in; i++) {
    ptrs[i] = cin[i]->size ? am_arr_ptr(cin[i]) : NULL;
    args[na++] = &ptrs[i];
    if (use[i] & AM_KUSE_SHAPE) {
      tptr[2 * i] = dtab + off_shape[i];
      args[na++] = &tptr[2 * i];
    }
    if (use[i] & AM_KUSE_STRIDES) {
      tptr[2 * i + 1] = dtab + off_str[i];
      args[na++] = &tptr[2 * i + 1];
    }
    if (use[i] & AM_KUSE_NDIM) {
      ndims[i] = cin[i]->m.ndim;
      args[na++] = &ndims[i];
    }
  }
  for (int j = 0; j < n_out; j++) {
    ptrs[AM_KERNEL_MAX_IO + j] = out[j]->size ? am_arr_ptr(out[j]) : NULL;
    args[na++] = &ptrs[AM_KERNEL_MAX_IO + j];
  }
  /* MLX's launch: grid in threads, blocks = ceil(grid / min(tg, grid)). */
  unsigned grid[3], block[3];
  for (int d = 0; d < 3; d++) {
    int b = L.threadgroup[d] < L.grid[d] ? L.threadgroup[d] : L.grid[d];
    block[d] = (unsigned)b;
    grid[d] = (unsigned)((L.grid[d] + (int64_t)b - 1) / b);
  }
  char what[200];
  snprintf(what, sizeof what, "kernel '%s'", k->name);
  s = am_jit_launch(kern, grid, block, (size_t)L.shared_memory, args, what);
  if (s) s = am_set_error(s, "kernel '%s': %s", k->name, am_last_error());
done:
  /* Stream-ordered frees: the copies and the table stay valid for the
   * queued kernel (the allocator reuses them only on this stream). */
  if (tab) am_arr_release(tab);
  for (int i = 0; i < n_in; i++)
    if (copied[i]) am_arr_release(cin[i]);
  return s;
}

void am_cuda_register_kernel(am_backend *b) {
  b->eval[AM_OP_CUSTOM_KERNEL] = ck_cuda;
  am_cuda_register_fused(b);
  am_cuda_register_random(b);
}
