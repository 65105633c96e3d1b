/*
 * fuzz_tokenizer.c — libFuzzer target for the tokenizer.
 *
 * The first input byte picks the mode:
 *   even: the rest is a tokenizer.json; loading must fail cleanly or give a
 *         tokenizer that encodes and decodes a fixed text;
 *   odd:  the rest is text for the committed test tokenizer
 *         (AM_TOKENIZER_FIXTURE); encoding must fail cleanly (invalid UTF-8)
 *         or round-trip, and the streaming detokenizer must agree with
 *         decode.
 */
#include <amorph_tokenizer.h>
#include <stdlib.h>
#include <string.h>

#ifndef AM_TOKENIZER_FIXTURE
#define AM_TOKENIZER_FIXTURE "tests/data/tokenizer/tokenizer.json"
#endif

static void check_decode(const am_tokenizer *t, const int32_t *ids, size_t n) {
  char *text;
  size_t len;
  if (am_tokenizer_decode(t, ids, n, false, &text, &len) != AM_OK) abort();
  am_detok *d = am_detok_new(t, false);
  if (!d) abort();
  size_t at = 0;
  for (size_t i = 0; i <= n; i++) {
    const char *p;
    size_t k;
    am_status s =
        i < n ? am_detok_push(d, ids[i], &p, &k) : am_detok_flush(d, &p, &k);
    if (s != AM_OK || at + k > len || memcmp(text + at, p, k)) abort();
    at += k;
  }
  if (at != len) abort();
  am_detok_free(d);
  am_tokenizer_buf_free(text);
}

static void encode_decode(const am_tokenizer *t, const char *s, size_t n) {
  int32_t *ids;
  size_t nids;
  if (am_tokenizer_encode(t, s, n, &ids, &nids) != AM_OK) return;
  check_decode(t, ids, nids);
  am_tokenizer_buf_free(ids);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static am_tokenizer *fixture;
  if (!fixture && am_tokenizer_load(AM_TOKENIZER_FIXTURE, &fixture) != AM_OK)
    abort();
  if (!size) return 0;
  const char *s = (const char *)data + 1;
  size_t n = size - 1;
  if (data[0] & 1) {
    encode_decode(fixture, s, n);
    return 0;
  }
  am_tokenizer *t;
  if (am_tokenizer_load_json(s, n, "fuzz", &t) != AM_OK) return 0;
  static const char text[] = "Hello <|im_end|> w\xc3\xb6rld 123\n\n ab";
  encode_decode(t, text, sizeof text - 1);
  am_tokenizer_free(t);
  return 0;
}
