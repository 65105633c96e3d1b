/*
 * amorph.c — the `amorph` command: generate text with a model, inspect a
 * model, convert a checkpoint. Each command lives in its own file with one
 * table of flags (tools/cli.h explains the shared parts).
 *
 *   amorph generate --model DIR --prompt "Hello" --max-tokens 64
 *   amorph inspect  --model DIR
 *   amorph convert  --model HF_DIR --out MLX_DIR --q-bits 4
 */
#include "cli.h"

#include <string.h>

static const cli_cmd commands[] = {
    {"generate", "generate text from a prompt", cli_generate},
    {"inspect", "show a model's shape, size and memory needs", cli_inspect},
    {"convert", "convert (and quantize) a checkpoint to MLX layout",
     cli_convert},
};
#define N_COMMANDS (sizeof commands / sizeof *commands)

static void print_help(FILE *f) {
  fprintf(f,
          "amorph %s — lazy-graph runtime for hybrid DeltaNet/attention "
          "MoE models\n\n",
          am_version());
  fprintf(f, "usage: amorph <command> [flags]\n\ncommands:\n");
  for (size_t i = 0; i < N_COMMANDS; i++)
    fprintf(f, "  %-10s %s\n", commands[i].name, commands[i].summary);
  fprintf(f, "\n  amorph <command> --help   the flags of a command\n"
             "  amorph --version          the library version\n\n"
             "exit status: 0 success, 1 library error, 2 usage error\n");
}

int main(int argc, char **argv) {
  if (argc < 2) {
    print_help(stderr);
    return CLI_ERR_USAGE;
  }
  const char *name = argv[1];
  if (!strcmp(name, "--help") || !strcmp(name, "-h") || !strcmp(name, "help")) {
    if (!strcmp(name, "help") && argc > 2) { /* amorph help CMD */
      for (size_t i = 0; i < N_COMMANDS; i++)
        if (!strcmp(argv[2], commands[i].name))
          return commands[i].run(2, (char *[]){argv[2], "--help", NULL});
    }
    print_help(stdout);
    return CLI_OK;
  }
  if (!strcmp(name, "--version") || !strcmp(name, "-V")) {
    printf("amorph %s\n", am_version());
    return CLI_OK;
  }
  for (size_t i = 0; i < N_COMMANDS; i++)
    if (!strcmp(name, commands[i].name))
      return commands[i].run(argc - 1, argv + 1);
  fprintf(stderr, "amorph: unknown command '%s' (see 'amorph --help')\n", name);
  return CLI_ERR_USAGE;
}
