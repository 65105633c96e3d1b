/*
 * amorph_tokenizer.h — byte-level BPE tokenizers from Hugging Face
 * `tokenizer.json` files (Qwen2 / Qwen3 / Qwen3-Next / Qwen3.5 family, GPT-2
 * style), streaming detokenization and ChatML rendering.
 *
 *     am_tokenizer *tok;
 *     if (am_tokenizer_load("model/tokenizer.json", &tok) != AM_OK)
 *       fprintf(stderr, "%s\n", am_last_error());
 *     int32_t *ids;
 *     size_t n;
 *     if (am_tokenizer_encode(tok, "Hello", 5, &ids, &n) == AM_OK) {
 *       ...
 *       am_tokenizer_buf_free(ids);
 *     }
 *     am_tokenizer_free(tok);
 *
 * What is supported (anything else in the file is AM_ERR_UNSUPPORTED, never
 * silently ignored): model BPE (merges as "a b" strings or [a, b] pairs,
 * ignore_merges, unk_token; no dropout, byte_fallback or subword affixes);
 * normalizer null / NFC / a Sequence of NFC; pre-tokenizer Split (regex or
 * string pattern, behavior Isolated, not inverted) and ByteLevel
 * (add_prefix_space false; use_regex true adds the GPT-2 regex), alone or in
 * a Sequence; decoder ByteLevel (or null); added tokens without lstrip,
 * rstrip or single_word. Results match the HF `tokenizers` library (tested
 * against its ids).
 *
 * Errors: functions return a status and set am_last_error(). A file that is
 * missing, unreadable, not JSON or inconsistent (missing field, merge of
 * unknown tokens, id out of range, ...) is AM_ERR_IO with a message naming
 * the file and the field; invalid UTF-8 text is AM_ERR_INVALID_ARG naming the
 * byte offset.
 *
 * Threads: a loaded tokenizer is read-only apart from an internal,
 * mutex-protected cache, so one tokenizer may encode and decode from several
 * threads at once. An am_detok belongs to one thread at a time.
 */
#ifndef AMORPH_TOKENIZER_H
#define AMORPH_TOKENIZER_H

#include <amorph.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct am_tokenizer am_tokenizer;

/** Loads `path` (a tokenizer.json). On success *out owns a tokenizer (free
 * it with am_tokenizer_free); on error *out is NULL. */
AM_API AM_NODISCARD am_status am_tokenizer_load(const char *path,
                                                am_tokenizer **out);
/** The same from JSON text in memory; `name` is used in error messages. */
AM_API AM_NODISCARD am_status am_tokenizer_load_json(const char *json,
                                                     size_t len,
                                                     const char *name,
                                                     am_tokenizer **out);
/** NULL is a no-op. */
AM_API void am_tokenizer_free(am_tokenizer *tok);

/** Frees a buffer returned by encode / decode / am_chatml_render. */
AM_API void am_tokenizer_buf_free(void *p);

/** One more than the largest id (vocabulary and added tokens). */
AM_API int32_t am_tokenizer_vocab_size(const am_tokenizer *tok);
/** The id of an added token or a vocabulary entry (in its byte-level form,
 * e.g. "Ġthe"), or -1 when there is none. */
AM_API int32_t am_tokenizer_token_id(const am_tokenizer *tok,
                                     const char *token);
/** The vocabulary string of `id` (NUL-terminated, owned by the tokenizer), or
 * NULL when no token has this id. */
AM_API const char *am_tokenizer_token_str(const am_tokenizer *tok, int32_t id);
/** Whether `id` is an added token marked special. */
AM_API bool am_tokenizer_is_special(const am_tokenizer *tok, int32_t id);

/**
 * Encodes `len` bytes of UTF-8 `text` (no special handling of NUL; no BOS or
 * EOS is added). Added tokens found in the text (leftmost, longest first)
 * become their ids. *ids is a new buffer of *n ids (free it with
 * am_tokenizer_buf_free; it is non-NULL even when *n == 0).
 */
AM_API AM_NODISCARD am_status am_tokenizer_encode(const am_tokenizer *tok,
                                                  const char *text, size_t len,
                                                  int32_t **ids, size_t *n);

/**
 * Decodes n ids into *text (NUL-terminated, *len bytes without the NUL; free
 * it with am_tokenizer_buf_free). Byte sequences that are not valid UTF-8
 * become U+FFFD, as in HF `decode`. skip_special drops special added tokens.
 * An id that no token has is AM_ERR_INVALID_ARG.
 */
AM_API AM_NODISCARD am_status am_tokenizer_decode(const am_tokenizer *tok,
                                                  const int32_t *ids, size_t n,
                                                  bool skip_special,
                                                  char **text, size_t *len);

/**
 * Streaming detokenizer: feed ids one at a time, get back only complete
 * UTF-8 characters; bytes of a character split across tokens are held back
 * until it is complete. The concatenation of every piece returned by push
 * and flush equals am_tokenizer_decode of all the ids.
 */
typedef struct am_detok am_detok;
/** A new detokenizer on `tok` (which must outlive it); NULL on OOM. */
AM_API am_detok *am_detok_new(const am_tokenizer *tok, bool skip_special);
/** NULL is a no-op. */
AM_API void am_detok_free(am_detok *d);
/** Adds one id; *piece / *len receive the newly completed text (valid until
 * the next call on d; *len may be 0). */
AM_API AM_NODISCARD am_status am_detok_push(am_detok *d, int32_t id,
                                            const char **piece, size_t *len);
/** Ends the stream: held-back bytes of an incomplete character come out as
 * U+FFFD. The detokenizer is then empty and may be reused. */
AM_API AM_NODISCARD am_status am_detok_flush(am_detok *d, const char **piece,
                                             size_t *len);

/** One chat turn. */
typedef struct am_chat_msg {
  const char *role;    /* "system", "user", "assistant", ... */
  const char *content; /* UTF-8 */
} am_chat_msg;

/**
 * Renders a conversation in ChatML, as the Qwen chat templates do:
 *   <|im_start|>{role}\n{content}<|im_end|>\n   for each message, then
 *   <|im_start|>assistant\n                     if add_generation_prompt.
 * *out is NUL-terminated (free it with am_tokenizer_buf_free); len may be
 * NULL. Encode the result with am_tokenizer_encode (the markers are added
 * tokens).
 */
AM_API AM_NODISCARD am_status am_chatml_render(const am_chat_msg *msgs, int n,
                                               bool add_generation_prompt,
                                               char **out, size_t *len);

#ifdef __cplusplus
}
#endif

#endif
