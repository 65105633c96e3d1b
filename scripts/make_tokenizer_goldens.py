#!/usr/bin/env python3
"""Trains a small Qwen2-style byte-level BPE tokenizer and writes goldens.

The tokenizer has the structure of Qwen2 / Qwen3 / Qwen3-Next tokenizer.json
files (NFC normalizer, Split with the Qwen regex + ByteLevel without regex,
ByteLevel decoder, <|endoftext|> / <|im_start|> / <|im_end|> specials), but a
vocabulary of ~1.5k trained on tinyshakespeare so that it can be committed.
The reference ids come from the Hugging Face `tokenizers` library.

Writes, under tests/data/tokenizer/:
  tokenizer.json   the trained tokenizer (merges as [a, b] pairs)
  tiny.json        a hand-written tokenizer: "a b" string merges, ignore_merges,
                   a normalized (non-special) added token, an unknown byte
  goldens.txt      one case per line, tab-separated:
                   file  name  hex(text)  hex(decode(ids))  ids (space-separated)
                   ("-" stands for an empty field)
  big.txt          id count and FNV-1a 64 hash of the ids of the first 100 KB
                   of tinyshakespeare

Usage: python3 scripts/make_tokenizer_goldens.py [path/to/tinyshakespeare.txt]
"""
import json
import os
import random
import sys
import unicodedata

from tokenizers import (Regex, Tokenizer, decoders, models, normalizers,
                        pre_tokenizers, processors, trainers)

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
OUT = os.path.join(ROOT, "tests", "data", "tokenizer")
QWEN_RE = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}|"
           r" ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")
SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]


def qwen_pipeline(tok):
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(QWEN_RE), behavior="isolated",
                             invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)


def train(corpus):
    tok = Tokenizer(models.BPE())
    qwen_pipeline(tok)
    trainer = trainers.BpeTrainer(
        vocab_size=1500, min_frequency=2, special_tokens=[],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False)
    tok.train([corpus], trainer)
    tok.add_special_tokens(SPECIALS)
    # A non-special added token, matched before normalization like Qwen's
    # <think> tokens.
    from tokenizers import AddedToken
    tok.add_tokens([AddedToken("<think>", normalized=False, special=False),
                    AddedToken("</think>", normalized=False, special=False)])
    return tok


def tiny():
    """A hand-written tokenizer exercising the less common file features."""
    b2u = bytes_to_unicode()
    vocab = {}
    for b in range(256):
        if b == 0x7e:  # '~' is left out: an unknown byte (dropped, no unk)
            continue
        vocab[b2u[b]] = len(vocab)
    merges = ["a b", "ab c", "Ġ a", "Ġa b", "b c", "c d", "bc d", "a a",
              "aa aa"]
    for m in merges:
        vocab[m.replace(" ", "")] = len(vocab)
    vocab["abcd"] = len(vocab)  # only reachable with ignore_merges
    n = len(vocab)
    return {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": [
            {"id": n, "content": "<|x|>", "single_word": False,
             "lstrip": False, "rstrip": False, "normalized": False,
             "special": True},
            {"id": n + 1, "content": "é!", "single_word": False,
             "lstrip": False, "rstrip": False, "normalized": True,
             "special": False},
        ],
        "normalizer": {"type": "Sequence",
                       "normalizers": [{"type": "NFC"}]},
        "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": False,
                          "trim_offsets": True, "use_regex": True},
        "post_processor": None,
        "decoder": {"type": "ByteLevel", "add_prefix_space": True,
                    "trim_offsets": True, "use_regex": True},
        "model": {"type": "BPE", "dropout": None, "unk_token": None,
                  "continuing_subword_prefix": None,
                  "end_of_word_suffix": None, "fuse_unk": False,
                  "byte_fallback": False, "ignore_merges": True,
                  "vocab": vocab, "merges": merges},
    }


def bytes_to_unicode():
    bs = (list(range(ord("!"), ord("~") + 1)) +
          list(range(ord("¡"), ord("¬") + 1)) +
          list(range(ord("®"), ord("ÿ") + 1)))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {b: chr(c) for b, c in zip(bs, cs)}


TEXTS = [
    ("empty", ""),
    ("ascii", "Hello world! This is a test of the tokenizer."),
    ("shakespeare", "First Citizen:\nBefore we proceed any further, hear me "
     "speak.\n\nAll:\nSpeak, speak."),
    ("punct", "Well... (really?) [yes]; {no}: a-b_c/d\\e \"quoted\" #1 @x $5"
     " 100% & more*"),
    ("numbers", "In 1999 there were 12345 apples, 3.14159 pies and -42 "
     "pears: 0x1F."),
    ("spaces", "a  b   c    d\t\te \t f   "),
    ("newlines", "line1\nline2\r\nline3\n\n\nline4\r\r  \n  end\n"),
    ("only_ws", "   \n\t  \n "),
    ("contractions", "I'm sure you're right, it's what we've said: they'll "
     "go, he'd stay, don't. I'M YOU'RE IT'S WE'VE THEY'LL HE'D DON'T"),
    ("apostrophes", "'tis ''s 'x rock'n'roll o'clock '"),
    ("accents_nfc", unicodedata.normalize("NFC", "café naïve résumé "
                                          "Ångström élève")),
    ("accents_nfd", unicodedata.normalize("NFD", "café naïve résumé "
                                          "Ångström élève")),
    ("combining", "e\u0301\u0302 a\u0308\u0323 \u0301alone"),
    ("cjk", "你好，世界！日本語のテキスト。한국어 텍스트"),
    ("emoji", "I ❤️ 🍕 and 👨‍👩‍👧 families 🏳️‍🌈 ok👍🏽"),
    ("arabic", "مرحبا بالعالم ١٢٣ and العربية"),
    ("mixed_scripts", "Привет, мир! Γειά σου κόσμε! שלום"),
    ("unicode_spaces", "a\u00a0b\u2003c\u3000d\u2028e\u0085f \u200bg"),
    ("special_only", "<|im_end|>"),
    ("specials", "<|im_start|>system\nYou are helpful.<|im_end|>\n"
     "<|im_start|>user\nHi!<|im_end|>\n<|im_start|>assistant\n"),
    ("specials_adjacent", "a<|endoftext|><|endoftext|>b <|im_start|> "
     "<|im_end|>x"),
    ("special_partial", "<|im_end <|im_|> <|im_startx|> <|endoftext"),
    ("think", "<think>\nreasoning\n</think>\n\nanswer"),
    ("control", "tab\there\x01\x7f bell\x07 nul\x00end"),
    ("long_word", "supercalifragilisticexpialidocious" * 3),
    ("long_ws", " " * 40 + "x" + "\n" * 20 + "\t" * 10),
    ("fullwidth_digits", "１２３ ４５ ½ ² Ⅻ"),
    ("math", "∀x∈ℝ: x² ≥ 0 → √(x²) = |x| ∑ π≈3.14"),
]


def random_texts(rng, n):
    pool = (list("abcXYZ019 '\n\r\t.,!?-_\"") + ["'s", "'T", "'re", "'LL"] +
            ["é", "e\u0301", "Å", "A\u030a", "ñ", "ß", "ſ", "\u0301", "中",
             "文", "😀", "👍🏽", "\u200d", "ع", "٣", "\u00a0", "\u3000",
             "\u2028", "\u0085", "\u00ad", "<|im_end|>", "<|im_start|>",
             "<think>", "Ω", "Ω", "ﬁ", "²", "①", "  ", "\n\n", " \n"])
    out = []
    for i in range(n):
        k = rng.randint(0, 24)
        out.append(("random%02d" % i, "".join(rng.choice(pool)
                                               for _ in range(k))))
    return out


def fnv1a64(ids):
    h = 0xcbf29ce484222325
    for i in ids:
        for b in int(i).to_bytes(4, "little", signed=True):
            h ^= b
            h = (h * 0x100000001b3) & 0xffffffffffffffff
    return h


def hexs(s):
    return s.encode("utf-8").hex() or "-"


def main():
    corpus = (sys.argv[1] if len(sys.argv) > 1 else
              os.path.join(ROOT, "..", "shared", "data", "tinyshakespeare.txt"))
    os.makedirs(OUT, exist_ok=True)
    tok = train(corpus)
    path = os.path.join(OUT, "tokenizer.json")
    tok.save(path, pretty=False)
    tok = Tokenizer.from_file(path)

    tiny_path = os.path.join(OUT, "tiny.json")
    with open(tiny_path, "w", encoding="utf-8") as f:
        json.dump(tiny(), f, ensure_ascii=False)
    tiny_tok = Tokenizer.from_file(tiny_path)

    rng = random.Random(1234)
    cases = [("tokenizer.json", n, t) for n, t in
             TEXTS + random_texts(rng, 60)]
    tiny_texts = ["abcd", "abc", "ab abcd", " ab ab", "aaaa aaaaa", "bcd",
                  "a~b", "~~", "<|x|>abcd<|x|>", "é! e\u0301! e!",
                  "cdabcd abcdabcd", "x\u00e9!y"]
    cases += [("tiny.json", "tiny%02d" % i, t)
              for i, t in enumerate(tiny_texts)]
    lines = []
    for fname, name, text in cases:
        t = tok if fname == "tokenizer.json" else tiny_tok
        ids = t.encode(text, add_special_tokens=False).ids
        dec = t.decode(ids, skip_special_tokens=False)
        lines.append("\t".join([fname, name, hexs(text), hexs(dec),
                                " ".join(map(str, ids)) or "-"]))
    with open(os.path.join(OUT, "goldens.txt"), "w") as f:
        f.write("\n".join(lines) + "\n")

    with open(corpus, "rb") as f:
        big = f.read(100 * 1024).decode("utf-8", errors="strict")
    ids = tok.encode(big, add_special_tokens=False).ids
    with open(os.path.join(OUT, "big.txt"), "w") as f:
        f.write("%d %d %016x\n" % (len(big.encode()), len(ids), fnv1a64(ids)))
    print("vocab", tok.get_vocab_size(), "cases", len(lines),
          "big ids", len(ids), "size", os.path.getsize(path))


if __name__ == "__main__":
    main()
