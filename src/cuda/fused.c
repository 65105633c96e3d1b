/*
 * fused.c — the `fused` primitive (src/compile/fused.c) on the GPU: each
 * program becomes a CUDA kernel, generated here, compiled with NVRTC and
 * loaded through jit.h. One thread computes one output element (grid
 * stride): it loads each input (f16/bf16 widened to float32), runs the
 * program in float32 registers (astype rounds where the program says) and
 * stores once, so intermediates never touch memory.
 *
 * The kernel is specialized on the program, the dtypes and the layout
 * signature: per input contiguous (index i), one broadcast value, or
 * strided over the collapsed view (strides passed by value); the number of
 * collapsed dims; and 32- or 64-bit index arithmetic. Shapes and strides
 * are kernel arguments, so one compiled kernel serves every size.
 *
 * Each op's float expression matches the CPU float32 kernels
 * (src/ops/elementwise.c): rint for round (half to even), NumPy's
 * remainder (sign of the divisor), NaN-propagating maximum/minimum,
 * sigmoid 1 / (1 + exp(-x)), 1 / sqrt for rsqrt, and bfloat16 rounding
 * with the CPU's NaN rule. f16 and bf16 helpers are written out (inline
 * PTX / bit operations) so the source needs no CUDA headers at run time.
 */
#include "jit.h"
#include "ops.h"

#include "../compile/fused.h"

#include <stdio.h>
#include <stdlib.h>

enum { M_CONTIG, M_SCALAR, M_STRIDED };

typedef struct {
  int mode[AM_FUSED_MAX_IN];
  int ndim; /* collapsed dims (strided inputs index over them) */
  int i32;  /* every index and offset fits in int */
} fsig;

/* Mirrors the generated am_geo struct (by-value kernel argument). */
typedef struct {
  long long shape[AM_CUDA_DIMS];
  long long st[AM_FUSED_MAX_IN][AM_CUDA_DIMS];
} fgeo;

/* ----- source generation ----- */

static const char *g_prelude =
    "typedef unsigned short am_u16;\n"
    "__device__ __forceinline__ float am_h2f(am_u16 h) {\n"
    "  float f; asm(\"cvt.f32.f16 %0, %1;\" : \"=f\"(f) : \"h\"(h)); return "
    "f;\n}\n"
    "__device__ __forceinline__ am_u16 am_f2h(float f) {\n"
    "  am_u16 h; asm(\"cvt.rn.f16.f32 %0, %1;\" : \"=h\"(h) : \"f\"(f)); "
    "return h;\n}\n"
    "__device__ __forceinline__ float am_b2f(am_u16 h) {\n"
    "  return __uint_as_float((unsigned)h << 16);\n}\n"
    /* as the CPU's am_f32_to_bf16: NaN keeps its sign and gets quiet */
    "__device__ __forceinline__ am_u16 am_f2b(float f) {\n"
    "  unsigned x = __float_as_uint(f);\n"
    "  if ((x & 0x7fffffffu) > 0x7f800000u) return (am_u16)((x >> 16) | "
    "0x40);\n"
    "  x += 0x7fffu + ((x >> 16) & 1u);\n"
    "  return (am_u16)(x >> 16);\n}\n"
    "__device__ __forceinline__ float am_rem(float a, float b) {\n"
    "  float m = fmodf(a, b);\n"
    "  if (b == 0) return m;\n"
    "  if (m != 0) { if ((b < 0) != (m < 0)) m += b; }\n"
    "  else m = copysignf(0.0f, b);\n"
    "  return m;\n}\n"
    "__device__ __forceinline__ float am_sign(float x) {\n"
    "  return x > 0 ? 1.0f : x < 0 ? -1.0f : x == 0 ? 0.0f : x;\n}\n";

/* The float expression of op over registers @ (a) and # (b); NULL when
 * the op has none. */
static const char *op_template(int op) {
  switch (op) {
  case AM_OP_NEG:
    return "-@";
  case AM_OP_ABS:
    return "fabsf(@)";
  case AM_OP_SIGN:
    return "am_sign(@)";
  case AM_OP_SQUARE:
    return "@ * @";
  case AM_OP_FLOOR:
    return "floorf(@)";
  case AM_OP_CEIL:
    return "ceilf(@)";
  case AM_OP_ROUND:
    return "rintf(@)"; /* half to even */
  case AM_OP_EXP:
    return "expf(@)";
  case AM_OP_EXPM1:
    return "expm1f(@)";
  case AM_OP_LOG:
    return "logf(@)";
  case AM_OP_LOG1P:
    return "log1pf(@)";
  case AM_OP_SQRT:
    return "sqrtf(@)";
  case AM_OP_RSQRT:
    return "1.0f / sqrtf(@)";
  case AM_OP_SIN:
    return "sinf(@)";
  case AM_OP_COS:
    return "cosf(@)";
  case AM_OP_TANH:
    return "tanhf(@)";
  case AM_OP_SIGMOID:
    return "1.0f / (1.0f + expf(-@))";
  case AM_OP_ERF:
    return "erff(@)";
  case AM_OP_LOGICAL_NOT:
    return "(@ == 0 ? 1.0f : 0.0f)";
  case AM_OP_ADD:
    return "@ + #";
  case AM_OP_SUB:
    return "@ - #";
  case AM_OP_MUL:
    return "@ * #";
  case AM_OP_DIV:
    return "@ / #";
  case AM_OP_POW:
    return "powf(@, #)";
  case AM_OP_MAXIMUM:
    return "((@ > # || @ != @) ? @ : #)";
  case AM_OP_MINIMUM:
    return "((@ < # || @ != @) ? @ : #)";
  case AM_OP_REMAINDER:
    return "am_rem(@, #)";
  case AM_OP_EQUAL:
    return "(@ == # ? 1.0f : 0.0f)";
  case AM_OP_NOT_EQUAL:
    return "(@ != # ? 1.0f : 0.0f)";
  case AM_OP_LESS:
    return "(@ < # ? 1.0f : 0.0f)";
  case AM_OP_LESS_EQUAL:
    return "(@ <= # ? 1.0f : 0.0f)";
  case AM_OP_GREATER:
    return "(@ > # ? 1.0f : 0.0f)";
  case AM_OP_GREATER_EQUAL:
    return "(@ >= # ? 1.0f : 0.0f)";
  case AM_OP_LOGICAL_AND:
    return "(@ != 0 && # != 0 ? 1.0f : 0.0f)";
  case AM_OP_LOGICAL_OR:
    return "(@ != 0 || # != 0 ? 1.0f : 0.0f)";
  default:
    return NULL;
  }
}

static bool binary_template(const char *t) {
  return strchr(t, '#') != NULL;
}

/* "float rD = <expr>;" for instruction `in` writing register dst. */
static am_status emit_ins(am_sbuf *b, const am_fins *in, int dst) {
  if (in->op == AM_OP_ASTYPE) {
    const char *f = in->round == AM_F16    ? "am_h2f(am_f2h(r%d))"
                    : in->round == AM_BF16 ? "am_b2f(am_f2b(r%d))"
                                           : "r%d";
    am_sb_add(b, "    float r%d = ", dst);
    am_sb_add(b, f, in->a);
    am_sb_add(b, ";\n");
    return AM_OK;
  }
  const char *t =
      in->op >= 0 && in->op < AM_OP_COUNT ? op_template(in->op) : NULL;
  if (!t || (binary_template(t) && in->b < 0))
    return am_set_error(AM_ERR_UNSUPPORTED, "fused: no CUDA code for op %s",
                        in->op >= 0 && in->op < AM_OP_COUNT
                            ? am_prims[in->op]->name
                            : "(invalid)");
  am_sb_add(b, "    float r%d = ", dst);
  for (const char *c = t; *c; c++)
    if (*c == '@')
      am_sb_add(b, "r%d", in->a);
    else if (*c == '#')
      am_sb_add(b, "r%d", in->b);
    else
      am_sb_add(b, "%c", *c);
  am_sb_add(b, ";\n");
  return AM_OK;
}

static const char *ptr_type(am_dtype t) {
  return t == AM_F32 ? "float" : "am_u16";
}

static const char *load_fn(am_dtype t) {
  return t == AM_F32 ? "" : t == AM_F16 ? "am_h2f" : "am_b2f";
}

static am_status gen_source(const am_fprog *p, const fsig *g, const char *entry,
                            char **out) {
  am_sbuf b = {0};
  const char *it = g->i32 ? "int" : "long long";
  am_sb_add(&b, "// fused elementwise program, generated by amorph\n%s",
            g_prelude);
  am_sb_add(&b,
            "struct am_geo { long long shape[%d]; long long st[%d][%d]; };\n",
            AM_CUDA_DIMS, AM_FUSED_MAX_IN, AM_CUDA_DIMS);
  /* No __restrict__: the output may be a donated input's buffer (each
   * element is read before it is written, by the same thread). */
  am_sb_add(&b, "extern \"C\" __global__ void %s(%s* out", entry,
            ptr_type(p->out_dtype));
  for (int k = 0; k < p->n_in; k++)
    am_sb_add(&b, ", const %s* in%d", ptr_type(p->in_dtype[k]), k);
  am_sb_add(&b, ", long long n, const __grid_constant__ am_geo geo) {\n");
  am_sb_add(
      &b,
      "  for (%s i = blockIdx.x * (%s)blockDim.x + threadIdx.x; i < (%s)n;"
      " i += (%s)gridDim.x * blockDim.x) {\n",
      it, it, it, it);
  bool strided = false;
  for (int k = 0; k < p->n_in; k++)
    strided |= g->mode[k] == M_STRIDED;
  if (strided) {
    for (int k = 0; k < p->n_in; k++)
      if (g->mode[k] == M_STRIDED) am_sb_add(&b, "    %s o%d = 0;\n", it, k);
    am_sb_add(&b, "    %s q = i, c;\n", it);
    for (int d = g->ndim - 1; d >= 0; d--) {
      am_sb_add(&b, "    c = q %% (%s)geo.shape[%d]; q /= (%s)geo.shape[%d];\n",
                it, d, it, d);
      for (int k = 0; k < p->n_in; k++)
        if (g->mode[k] == M_STRIDED)
          am_sb_add(&b, "    o%d += c * (%s)geo.st[%d][%d];\n", k, it, k, d);
    }
  }
  for (int k = 0; k < p->n_in; k++) {
    const char *idx = g->mode[k] == M_CONTIG ? "i" : "";
    char ob[16];
    if (g->mode[k] == M_STRIDED) {
      snprintf(ob, sizeof ob, "o%d", k);
      idx = ob;
    } else if (g->mode[k] == M_SCALAR) {
      idx = "0";
    }
    am_sb_add(&b, "    float r%d = %s(in%d[%s]);\n", k, load_fn(p->in_dtype[k]),
              k, idx);
  }
  am_status s = AM_OK;
  for (int i = 0; i < p->n_ops && !s; i++)
    s = emit_ins(&b, &p->ins[i], p->n_in + i);
  int last = p->n_in + p->n_ops - 1;
  if (p->out_dtype == AM_F32)
    am_sb_add(&b, "    out[i] = r%d;\n", last);
  else
    am_sb_add(&b, "    out[i] = %s(r%d);\n",
              p->out_dtype == AM_F16 ? "am_f2h" : "am_f2b", last);
  am_sb_add(&b, "  }\n}\n");
  if (s || b.oom) {
    free(b.s);
    return s ? s : am_set_error(AM_ERR_OOM, "fused: out of memory");
  }
  *out = b.s;
  return AM_OK;
}

/* ----- the glue ----- */

static bool ftype(am_dtype t) {
  return t == AM_F32 || t == AM_F16 || t == AM_BF16;
}

static am_status fused_cuda(am_arr *const *in, int n_in, am_arr *const *out,
                            int n_out, const void *params) {
  (void)n_out;
  const am_fprog *p = ((const am_fused_params *)params)->prog;
  am_arr *o = out[0];
  if (n_in != p->n_in || n_in > AM_FUSED_MAX_IN || p->n_ops < 1 ||
      p->n_ops > AM_FUSED_MAX_OPS || !ftype(p->out_dtype) ||
      o->m.dtype != p->out_dtype)
    return am_set_error(AM_ERR_INVALID_ARG, "fused: malformed program");
  for (int k = 0; k < n_in; k++)
    if (!ftype(p->in_dtype[k]) || in[k]->m.dtype != p->in_dtype[k])
      return am_set_error(AM_ERR_DTYPE, "fused: input %d is %s", k,
                          am_dtype_name(in[k]->m.dtype));
  am_status s = am_out_alloc_donate(o, in, n_in);
  if (s || !o->size) return s;
  /* Inputs broadcast to the output's shape, collapsed together with the
   * output (row-major, so it stays contiguous over the merged dims). */
  am_arr *ops[AM_FUSED_MAX_IN + 1];
  am_cuda_view v[AM_FUSED_MAX_IN + 1];
  ops[0] = o;
  for (int k = 0; k < n_in; k++)
    ops[1 + k] = in[k];
  s = am_cuda_views_broadcast(ops, n_in + 1, o->m.shape, o->m.ndim, v);
  if (s) return s;
  fsig g;
  memset(&g, 0, sizeof g);
  fgeo geo;
  memset(&geo, 0, sizeof geo);
  g.ndim = v[0].ndim;
  int64_t span = o->size;
  int64_t rm[AM_CUDA_DIMS]; /* row-major strides of the collapsed shape */
  {
    int64_t acc = 1;
    for (int d = g.ndim - 1; d >= 0; d--) {
      rm[d] = acc;
      acc *= v[0].shape[d];
      geo.shape[d] = v[0].shape[d];
    }
  }
  bool any_strided = false;
  for (int k = 0; k < n_in; k++) {
    const am_cuda_view *x = &v[1 + k];
    bool zero = true, contig = true;
    int64_t ext = 0;
    for (int d = 0; d < g.ndim; d++) {
      zero &= x->strides[d] == 0;
      contig &= x->strides[d] == rm[d];
      geo.st[k][d] = x->strides[d];
      ext += (x->strides[d] < 0 ? -x->strides[d] : x->strides[d]) *
             (x->shape[d] - 1);
    }
    g.mode[k] = zero ? M_SCALAR : contig ? M_CONTIG : M_STRIDED;
    any_strided |= g.mode[k] == M_STRIDED;
    if (ext > span) span = ext;
  }
  if (!any_strided) g.ndim = 0; /* the kernel does not index dims */
  /* 32-bit index math (cheaper division) when every index and offset
   * fits, with room for the grid-stride step. */
  g.i32 = span < ((int64_t)1 << 30);
  uint64_t key = am_jit_hash(AM_JIT_FNV0, "fused", 5);
  key = am_jit_hash(key, &p->n_in,
                    offsetof(am_fprog, ins) - offsetof(am_fprog, n_in) +
                        (size_t)p->n_ops * sizeof(am_fins));
  key = am_jit_hash(key, &g, sizeof g);
  void *kern = am_jit_find(key);
  if (!kern) {
    char entry[64], *src = NULL;
    snprintf(entry, sizeof entry, "am_fused_%016llx", (unsigned long long)key);
    s = gen_source(p, &g, entry, &src);
    if (!s) s = am_jit_load_source(key, "fused", src, entry, &kern);
    free(src);
    if (s) return s;
  }
  void *optr = am_arr_ptr(o);
  void *iptr[AM_FUSED_MAX_IN];
  void *args[AM_FUSED_MAX_IN + 3];
  int na = 0;
  args[na++] = &optr;
  for (int k = 0; k < n_in; k++) {
    iptr[k] = v[1 + k].data;
    args[na++] = &iptr[k];
  }
  long long n = o->size;
  args[na++] = &n;
  args[na++] = &geo;
  int64_t blocks = (n + 255) / 256;
  if (blocks > 65536) blocks = 65536;
  unsigned grid[3] = {(unsigned)blocks, 1, 1}, block[3] = {256, 1, 1};
  return am_jit_launch(kern, grid, block, 0, args, "fused kernel");
}

void am_cuda_register_fused(am_backend *b);
void am_cuda_register_fused(am_backend *b) {
  b->eval[AM_OP_FUSED] = fused_cuda;
}
