/*
 * args.c — flag tables: parsing (`--flag value`, `--flag=value`), number
 * checks and the help text printed from the same table.
 */
#include "cli.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int cli_usage_error(const char *cmd, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fprintf(stderr, "amorph %s: ", cmd);
  vfprintf(stderr, fmt, ap);
  fprintf(stderr, "\n(see 'amorph %s --help')\n", cmd);
  va_end(ap);
  return CLI_ERR_USAGE;
}

int cli_lib_error(const char *cmd, const char *what, am_status s) {
  const char *msg = am_last_error();
  fprintf(stderr, "amorph %s: %s: %s\n", cmd, what,
          msg && *msg ? msg : am_status_str(s));
  return CLI_ERR_LIB;
}

static bool has_range(const cli_flag *f) {
  return f->lo != 0 || f->hi != 0;
}

static int bad_value(const char *cmd, const cli_flag *f, const char *v,
                     const char *why) {
  return cli_usage_error(cmd, "%s: '%s' is %s", f->name, v, why);
}

static int set_int(const char *cmd, cli_flag *f, const char *v) {
  char *end;
  errno = 0;
  long long x = strtoll(v, &end, 10);
  if (end == v || *end || errno == ERANGE)
    return bad_value(cmd, f, v, "not an integer");
  if (has_range(f) && (x < f->lo || x > f->hi))
    return cli_usage_error(cmd, "%s: %lld is out of range [%.0f, %.0f]",
                           f->name, x, f->lo, f->hi);
  if (x < INT32_MIN || x > INT32_MAX) return bad_value(cmd, f, v, "too large");
  *(int *)f->dst = (int)x;
  return CLI_OK;
}

static int set_u64(const char *cmd, cli_flag *f, const char *v) {
  char *end;
  errno = 0;
  if (*v == '-') return bad_value(cmd, f, v, "negative");
  unsigned long long x = strtoull(v, &end, 0);
  if (end == v || *end || errno == ERANGE)
    return bad_value(cmd, f, v, "not an unsigned integer");
  *(uint64_t *)f->dst = (uint64_t)x;
  return CLI_OK;
}

static int set_float(const char *cmd, cli_flag *f, const char *v) {
  char *end;
  errno = 0;
  double x = strtod(v, &end);
  if (end == v || *end || errno == ERANGE || !isfinite(x))
    return bad_value(cmd, f, v, "not a finite number");
  if (has_range(f) && (x < f->lo || x > f->hi))
    return cli_usage_error(cmd, "%s: %g is out of range [%g, %g]", f->name, x,
                           f->lo, f->hi);
  *(float *)f->dst = (float)x;
  return CLI_OK;
}

static int set_choice(const char *cmd, cli_flag *f, const char *v) {
  for (int i = 0; f->choices[i]; i++)
    if (!strcmp(v, f->choices[i])) {
      *(int *)f->dst = i;
      return CLI_OK;
    }
  char list[256] = "";
  for (int i = 0; f->choices[i]; i++) {
    if (i) strncat(list, "|", sizeof list - strlen(list) - 1);
    strncat(list, f->choices[i], sizeof list - strlen(list) - 1);
  }
  return cli_usage_error(cmd, "%s: '%s' is not one of %s", f->name, v, list);
}

static int set_value(const char *cmd, cli_flag *f, const char *v) {
  switch (f->kind) {
  case CLI_STR:
    *(const char **)f->dst = v;
    return CLI_OK;
  case CLI_INT:
    return set_int(cmd, f, v);
  case CLI_U64:
    return set_u64(cmd, f, v);
  case CLI_FLOAT:
    return set_float(cmd, f, v);
  case CLI_CHOICE:
    return set_choice(cmd, f, v);
  case CLI_SWITCH:
    break;
  }
  return cli_usage_error(cmd, "%s takes no value", f->name);
}

static cli_flag *find_flag(cli_flag *flags, const char *name, size_t len) {
  for (cli_flag *f = flags; f->name; f++)
    if (strlen(f->name) == len && !strncmp(f->name, name, len)) return f;
  return NULL;
}

int cli_parse(const char *cmd, const char *usage, cli_flag *flags, int argc,
              char **argv) {
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
      cli_print_usage(stdout, cmd, usage, flags);
      return -1;
    }
    if (strncmp(a, "--", 2) != 0 || !a[2])
      return cli_usage_error(cmd, "unexpected argument '%s'", a);
    const char *eq = strchr(a, '=');
    size_t len = eq ? (size_t)(eq - a) : strlen(a);
    cli_flag *f = find_flag(flags, a, len);
    if (!f) return cli_usage_error(cmd, "unknown flag '%.*s'", (int)len, a);
    if (f->seen) return cli_usage_error(cmd, "%s given twice", f->name);
    f->seen = true;
    if (f->kind == CLI_SWITCH) {
      if (eq) return cli_usage_error(cmd, "%s takes no value", f->name);
      *(bool *)f->dst = true;
      continue;
    }
    const char *v = eq ? eq + 1 : NULL;
    if (!v) {
      if (i + 1 >= argc)
        return cli_usage_error(cmd, "%s needs a value (%s)", f->name, f->meta);
      v = argv[++i];
    }
    int rc = set_value(cmd, f, v);
    if (rc != CLI_OK) return rc;
  }
  return CLI_OK;
}

void cli_print_usage(FILE *out, const char *cmd, const char *usage,
                     const cli_flag *flags) {
  fprintf(out, "usage: amorph %s %s\n\nflags:\n", cmd, usage);
  for (const cli_flag *f = flags; f->name; f++) {
    char head[64];
    if (f->kind == CLI_SWITCH)
      snprintf(head, sizeof head, "%s", f->name);
    else
      snprintf(head, sizeof head, "%s %s", f->name, f->meta);
    if (strlen(head) > 28)
      fprintf(out, "  %s\n  %-28s %s\n", head, "", f->help);
    else
      fprintf(out, "  %-28s %s\n", head, f->help);
  }
  fprintf(out, "  %-28s %s\n", "--help", "this text");
}

const char *cli_bytes(double b, char *buf, size_t n) {
  const char *unit[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  int u = 0;
  while (b >= 1024 && u < 4) {
    b /= 1024;
    u++;
  }
  snprintf(buf, n, u ? "%.2f %s" : "%.0f %s", b, unit[u]);
  return buf;
}

const char *cli_count(double x, char *buf, size_t n) {
  if (x >= 1e9)
    snprintf(buf, n, "%.2f B", x / 1e9);
  else if (x >= 1e6)
    snprintf(buf, n, "%.2f M", x / 1e6);
  else if (x >= 1e3)
    snprintf(buf, n, "%.2f K", x / 1e3);
  else
    snprintf(buf, n, "%.0f", x);
  return buf;
}

bool cli_is_file(const char *path) {
  struct stat st;
  return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}
