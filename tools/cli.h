/*
 * cli.h — what the `amorph` command's parts share: the flag tables and
 * their parser, exit statuses, error printing and the .npy writer.
 *
 * Exit statuses: 0 success, 1 a library error (am_last_error() printed),
 * 2 a usage error (bad flag, missing or malformed value).
 */
#ifndef AM_CLI_H
#define AM_CLI_H

#include "amorph_llm.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

enum { CLI_OK = 0, CLI_ERR_LIB = 1, CLI_ERR_USAGE = 2 };

/* ---- flags ------------------------------------------------------------ */

typedef enum cli_kind {
  CLI_SWITCH, /* bool, no value                          */
  CLI_STR,    /* const char *                            */
  CLI_INT,    /* int, in [lo, hi]                        */
  CLI_U64,    /* uint64_t                                */
  CLI_FLOAT,  /* float, finite, in [lo, hi]              */
  CLI_CHOICE, /* int: the index of the value in choices  */
} cli_kind;

/** One flag of a command's table; a table ends with a NULL name. */
typedef struct cli_flag {
  const char *name; /* "--max-tokens" */
  cli_kind kind;
  void *dst;
  const char *meta; /* value placeholder in help: "N", "TEXT", ... */
  const char *help;
  double lo, hi;        /* CLI_INT / CLI_FLOAT range (both 0: none)  */
  const char **choices; /* CLI_CHOICE: NULL-terminated               */
  bool seen;            /* set by the parser                         */
} cli_flag;

/* Table entries, one per kind. */
#define CLI_FLAG_SWITCH(n, d, h)                                               \
  { .name = n, .kind = CLI_SWITCH, .dst = d, .meta = "", .help = h }
#define CLI_FLAG_STR(n, d, m, h)                                               \
  { .name = n, .kind = CLI_STR, .dst = d, .meta = m, .help = h }
#define CLI_FLAG_INT(n, d, m, h, l, u)                                         \
  {                                                                            \
    .name = n, .kind = CLI_INT, .dst = d, .meta = m, .help = h, .lo = l,       \
    .hi = u                                                                    \
  }
#define CLI_FLAG_U64(n, d, m, h)                                               \
  { .name = n, .kind = CLI_U64, .dst = d, .meta = m, .help = h }
#define CLI_FLAG_FLOAT(n, d, m, h, l, u)                                       \
  {                                                                            \
    .name = n, .kind = CLI_FLOAT, .dst = d, .meta = m, .help = h, .lo = l,     \
    .hi = u                                                                    \
  }
#define CLI_FLAG_CHOICE(n, d, m, h, c)                                         \
  {                                                                            \
    .name = n, .kind = CLI_CHOICE, .dst = d, .meta = m, .help = h,             \
    .choices = c                                                               \
  }
#define CLI_FLAG_END                                                           \
  { .name = NULL }

/** A command: its name, a one-line summary and its entry point (argv[0]
 * is the command's name). */
typedef struct cli_cmd {
  const char *name;
  const char *summary;
  int (*run)(int argc, char **argv);
} cli_cmd;

/** Parses argv[1..argc) against `flags` (`--flag value` or `--flag=value`).
 * Returns CLI_OK, CLI_ERR_USAGE (message printed), or -1 when --help was
 * given (usage printed to stdout: the caller exits 0). */
int cli_parse(const char *cmd, const char *usage, cli_flag *flags, int argc,
              char **argv);
/** Prints the usage line and the flag table of a command to f. */
void cli_print_usage(FILE *f, const char *cmd, const char *usage,
                     const cli_flag *flags);
/** "amorph CMD: <message>" on stderr; returns CLI_ERR_USAGE. */
int cli_usage_error(const char *cmd, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/** "amorph CMD: <what>: <am_last_error()>" on stderr; returns CLI_ERR_LIB. */
int cli_lib_error(const char *cmd, const char *what, am_status s);

/* ---- commands ---------------------------------------------------------- */

int cli_generate(int argc, char **argv);
int cli_inspect(int argc, char **argv);
int cli_convert(int argc, char **argv);

/* ---- helpers ------------------------------------------------------------ */

/** Human-readable bytes ("1.50 GiB") into buf; returns buf. */
const char *cli_bytes(double bytes, char *buf, size_t n);
/** Human-readable count ("3.87 B", "512.0 M") into buf; returns buf. */
const char *cli_count(double n, char *buf, size_t size);
/** Whether path names an existing regular file. */
bool cli_is_file(const char *path);

/* ---- .npy writer (float32, C order, 2-D, rows appended) ----------------- */

typedef struct cli_npy {
  FILE *f;
  int64_t rows, cols;
} cli_npy;

/** Creates `path` with a header for [0, cols]; false on error (errno). */
bool cli_npy_open(cli_npy *w, const char *path, int64_t cols);
/** Appends one row of cols floats. */
bool cli_npy_append(cli_npy *w, const float *row);
/** Rewrites the header with the final row count and closes the file. */
bool cli_npy_close(cli_npy *w);

#endif
