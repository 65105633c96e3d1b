/* fuzz_config.c — libFuzzer target for the config.json parser. */
#include <amorph_llm.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  am_llm_config *c = NULL;
  if (am_llm_config_parse((const char *)data, size, "fuzz", &c) == AM_OK) {
    (void)am_llm_config_quant_for(c, "model.layers.0.mlp.gate");
    am_llm_config_free(c);
  }
  return 0;
}
