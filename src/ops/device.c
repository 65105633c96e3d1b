/*
 * device.c — placement: to_device copies an array to another device's
 * memory. It is a primitive like any other, so a compiled function
 * records its copies, and a value already on the device passes through
 * as a view. Its params are the target device alone; as a placement
 * primitive (AM_OPF_PLACEMENT) it runs there rather than where its input
 * lives.
 * This is its host kernel (target CPU); the accelerator kernel (target
 * the device) is its backend's.
 */
#include "../core/internal.h"

typedef struct {
  int device; /* am_device; first field (AM_OPF_PLACEMENT) */
} to_device_params;

static am_status to_device_shapes(const am_meta *const *in, int n_in,
                                  const void *params, am_meta *out, int n_out) {
  int d = ((const to_device_params *)params)->device;
  if (d < 0 || d >= AM_DEVICE_COUNT)
    return AM_FAIL(AM_ERR_INVALID_ARG, "unknown device %d", d);
  out[0] = *in[0];
  return AM_OK;
}

/* Host target: a view of host data, else a download of the bytes the
 * input's view spans (its strides and offset are kept). */
static am_status to_device_eval(am_arr *const *in, int n_in, am_arr *const *out,
                                int n_out, const void *params) {
  const am_arr *x = in[0];
  if (x->buf->device == AM_DEVICE_CPU) {
    am_out_view(out[0], x, x->strides, x->offset);
    return AM_OK;
  }
  const am_backend *be = am_backend_get(x->buf->device);
  am_buffer *b = am_buffer_new_on(x->buf->bytes, AM_DEVICE_CPU);
  if (!b) return AM_ERR_OOM;
  am_status s = be->download(b->data, x->buf->data, x->buf->bytes);
  if (s) {
    am_buffer_release(b);
    return s;
  }
  am_out_place(out[0], x, b);
  return AM_OK;
}

am_status am_to_device_upload(am_arr *const *in, am_arr *const *out,
                              int device) {
  const am_arr *x = in[0];
  if (x->buf->device == device) {
    am_out_view(out[0], x, x->strides, x->offset);
    return AM_OK;
  }
  if (x->buf->device != AM_DEVICE_CPU)
    return am_set_error(AM_ERR_UNSUPPORTED, "to_device: from %s to %s directly",
                        am_device_name(x->buf->device), am_device_name(device));
  am_buffer *b = am_buffer_new_on(x->buf->bytes, device);
  if (!b) return AM_ERR_OOM;
  am_status s =
      am_backend_get(device)->upload(b->data, x->buf->data, x->buf->bytes);
  if (s) {
    am_buffer_release(b);
    return s;
  }
  am_out_place(out[0], x, b);
  return AM_OK;
}

static void to_device_str(const void *params, char *buf, size_t n) {
  snprintf(buf, n, "%s",
           am_device_name(((const to_device_params *)params)->device));
}

const am_prim am_prim_to_device = {
    .name = "to_device",
    .n_in = 1,
    .n_out = 1,
    .flags = AM_OPF_PLACEMENT,
    .params_size = sizeof(to_device_params),
    .output_shapes = to_device_shapes,
    .eval_cpu = to_device_eval,
    .params_str = to_device_str,
};

am_array am_to_device(am_array x, am_device d) {
  to_device_params p = {(int)d};
  if ((unsigned)d >= AM_DEVICE_COUNT)
    return am_error_array(AM_ERR_INVALID_ARG, "am_to_device: unknown device %d",
                          (int)d);
  if (d != AM_DEVICE_CPU && !am_device_available(d))
    return am_error_array(AM_ERR_UNSUPPORTED,
                          "am_to_device: no %s backend (call am_cuda_init; "
                          "CUDA builds only)",
                          am_device_name(d));
  am_arr *in = x;
  return am_op_make(AM_OP_TO_DEVICE, &p, &in, 1);
}

const char *am_device_name(am_device d) {
  return d == AM_DEVICE_CPU ? "cpu" : d == AM_DEVICE_CUDA ? "cuda" : "?";
}

am_status am_synchronize(am_device d) {
  const am_backend *be = am_backend_get(d);
  return be && be->synchronize ? be->synchronize() : AM_OK;
}
