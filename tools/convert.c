/*
 * convert.c — `amorph convert`: a checkpoint to MLX layout, quantized by
 * default (4-bit g64 affine), with a progress bar on stderr.
 */
#include "cli.h"

#include <string.h>

#define CMD "convert"
#define BAR_WIDTH 30
#define NAME_WIDTH 44

static const char *mode_names[] = {"affine", "mxfp4", "nvfp4", "mxfp8", NULL};
static const am_quant_mode mode_values[] = {AM_QUANT_AFFINE, AM_QUANT_MXFP4,
                                            AM_QUANT_NVFP4, AM_QUANT_MXFP8};
/* Each mode's bits and group size when --q-bits / --q-group-size are not
 * given (the floating-point formats fix both, as in MLX). */
static const int mode_bits[] = {4, 4, 4, 8};
static const int mode_group[] = {64, 32, 16, 32};

static const char usage[] =
    "--model SRC --out DST [flags]\n\n"
    "Converts a checkpoint (Hugging Face or MLX layout) to MLX layout in DST:\n"
    "sanitized, quantized unless --no-quantize (router gates at 8 bits),\n"
    "with config.json and the tokenizer files.";

typedef struct progress {
  bool quiet;
  bool drawn;
} progress;

/* `\r[#####.....] 12/345 name`, the name cut to its tail. */
static void draw(void *user, int64_t done, int64_t total, const char *name) {
  progress *p = user;
  if (p->quiet) return;
  char bar[BAR_WIDTH + 1];
  int fill = total > 0 ? (int)(done * BAR_WIDTH / total) : 0;
  if (fill > BAR_WIDTH) fill = BAR_WIDTH;
  if (fill < 0) fill = 0;
  memset(bar, '#', (size_t)fill);
  memset(bar + fill, '.', (size_t)(BAR_WIDTH - fill));
  bar[BAR_WIDTH] = 0;
  if (!name) name = "";
  size_t len = strlen(name);
  bool cut = len > NAME_WIDTH;
  const char *tail = cut ? name + len - (NAME_WIDTH - 3) : name;
  fprintf(stderr, "\r[%s] %lld/%lld %s%-*s", bar, (long long)done,
          (long long)total, cut ? "..." : "", NAME_WIDTH - (cut ? 3 : 0), tail);
  fflush(stderr);
  p->drawn = true;
}

int cli_convert(int argc, char **argv) {
  const char *src = NULL, *dst = NULL;
  int bits = 0, group = 0, mode = 0;
  bool no_quant = false, quiet = false;
  static const char *modes_meta = "affine|mxfp4|nvfp4|mxfp8";
  cli_flag flags[] = {
      CLI_FLAG_STR("--model", &src, "SRC", "source checkpoint directory"),
      CLI_FLAG_STR("--out", &dst, "DST", "output directory (created)"),
      CLI_FLAG_INT("--q-bits", &bits, "N",
                   "bits per weight (default 4; mxfp8: 8)", 2, 8),
      CLI_FLAG_INT("--q-group-size", &group, "N",
                   "weights per scale (default 64; mx: 32, nv: 16)", 16, 1024),
      CLI_FLAG_CHOICE("--q-mode", &mode, modes_meta,
                      "quantization mode (default affine)", mode_names),
      CLI_FLAG_SWITCH("--no-quantize", &no_quant, "keep float weights"),
      CLI_FLAG_SWITCH("--quiet", &quiet, "no progress bar"),
      CLI_FLAG_END,
  };
  int rc = cli_parse(CMD, usage, flags, argc, argv);
  if (rc != CLI_OK) return rc < 0 ? CLI_OK : rc;
  if (!src || !dst)
    return cli_usage_error(CMD, "--model SRC and --out DST are required");
  bool q_flags = flags[2].seen || flags[3].seen || flags[4].seen; /* --q-* */
  if (no_quant && q_flags)
    return cli_usage_error(CMD, "--no-quantize excludes the --q-* flags");

  if (!bits) bits = mode_bits[mode];
  if (!group) group = mode_group[mode];
  am_llm_quant q = {
      .group_size = group, .bits = bits, .mode = mode_values[mode]};
  progress p = {.quiet = quiet};
  am_status s = am_llm_convert(src, dst, no_quant ? NULL : &q, draw, &p);
  if (p.drawn) fputc('\n', stderr);
  if (s != AM_OK) return cli_lib_error(CMD, "converting", s);
  if (!quiet) fprintf(stderr, "wrote %s\n", dst);
  return CLI_OK;
}
