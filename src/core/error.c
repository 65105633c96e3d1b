/* error.c — status text and the thread-local last-error message. */
#include "internal.h"

#include <stdio.h>

static _Thread_local char tl_msg[1024];
static void (*g_cb)(am_status, const char *, void *);
static void *g_cb_user;

const char *am_status_str(am_status s) {
  static const char *const names[AM_STATUS_COUNT] = {
      [AM_OK] = "ok",
      [AM_ERR_INVALID_ARG] = "invalid argument",
      [AM_ERR_SHAPE] = "shape error",
      [AM_ERR_DTYPE] = "dtype error",
      [AM_ERR_OOM] = "out of memory",
      [AM_ERR_DEVICE] = "device error",
      [AM_ERR_UNSUPPORTED] = "unsupported",
      [AM_ERR_CANNOT_INFER] = "cannot infer shapes",
      [AM_ERR_IO] = "i/o error",
      [AM_ERR_INTERNAL] = "internal error",
  };
  if ((unsigned)s >= AM_STATUS_COUNT) return "unknown status";
  return names[s];
}

const char *am_last_error(void) {
  return tl_msg;
}
void am_clear_error(void) {
  tl_msg[0] = 0;
}

void am_set_error_callback(void (*fn)(am_status, const char *, void *),
                           void *user) {
  g_cb = fn;
  g_cb_user = user;
}

am_status am_set_errorv(am_status s, const char *fmt, va_list ap) {
  /* Format aside first: callers may pass am_last_error() as an argument. */
  char buf[sizeof tl_msg];
  vsnprintf(buf, sizeof buf, fmt, ap);
  memcpy(tl_msg, buf, sizeof tl_msg);
  if (g_cb) g_cb(s, tl_msg, g_cb_user);
  return s;
}

am_status am_set_error(am_status s, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  am_set_errorv(s, fmt, ap);
  va_end(ap);
  return s;
}

const char *am_version(void) {
  return AM_VERSION;
}
int am_version_number(void) {
  return AM_VERSION_NUMBER;
}
