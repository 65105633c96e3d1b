#!/bin/sh
# test_cli.sh — drives the `amorph` command as a user would.
#
#   test_cli.sh AMORPH usage        help, version, usage errors (exit 2),
#                                   library errors (exit 1)
#   test_cli.sh AMORPH model DIR    inspect and generate on the model in DIR
#                                   (exit 77, "skipped", when DIR has none)
#
# Only POSIX tools: the .npy header is read with od and dd.

AMORPH=$1
MODE=$2
MODEL=$3
FAILS=0
TMP=$(mktemp -d) || exit 1
trap 'rm -rf "$TMP"' EXIT

fail() {
  echo "FAIL: $*"
  FAILS=$((FAILS + 1))
}

# expect STATUS CMD...: runs CMD with stdout/stderr to $TMP/out, $TMP/err
# and checks its exit status.
expect() {
  want=$1
  shift
  "$@" >"$TMP/out" 2>"$TMP/err"
  got=$?
  if [ "$got" != "$want" ]; then
    fail "exit $got (want $want): $*"
    sed 's/^/  stderr: /' "$TMP/err" | head -5
  fi
}

# grep_in FILE PATTERN WHAT
grep_in() {
  grep -q -- "$2" "$1" || fail "$3: no '$2' in $(basename "$1")"
}

usage_tests() {
  expect 0 "$AMORPH" --help
  grep_in "$TMP/out" "generate" "--help"
  expect 0 "$AMORPH" --version
  grep_in "$TMP/out" "^amorph [0-9]" "--version"
  for cmd in generate inspect convert; do
    expect 0 "$AMORPH" $cmd --help
    grep_in "$TMP/out" "usage: amorph $cmd" "$cmd --help"
    grep_in "$TMP/out" "--model" "$cmd --help"
  done
  expect 2 "$AMORPH"
  expect 2 "$AMORPH" frobnicate
  grep_in "$TMP/err" "unknown command" "unknown command"

  # Usage errors: exit 2 with a message naming the problem.
  expect 2 "$AMORPH" generate --model m --prompt hi --bogus
  grep_in "$TMP/err" "unknown flag '--bogus'" "bad flag"
  expect 2 "$AMORPH" generate --model
  grep_in "$TMP/err" "needs a value" "missing value"
  expect 2 "$AMORPH" generate --model m --prompt hi --max-tokens 12x
  grep_in "$TMP/err" "not an integer" "bad integer"
  expect 2 "$AMORPH" generate --model m --prompt hi --max-tokens -1
  grep_in "$TMP/err" "out of range" "negative count"
  expect 2 "$AMORPH" generate --model m --prompt hi --temperature inf
  grep_in "$TMP/err" "not a finite number" "bad float"
  expect 2 "$AMORPH" generate --model m --prompt hi --top-p 1.5
  expect 2 "$AMORPH" generate --model m --prompt hi --seed -3
  expect 2 "$AMORPH" generate --model m --prompt hi --dtype f64
  grep_in "$TMP/err" "f32|bf16|f16" "bad choice"
  expect 2 "$AMORPH" generate --model m
  grep_in "$TMP/err" "exactly one of" "no prompt"
  expect 2 "$AMORPH" generate --model m --prompt a --prompt-tokens 1
  expect 2 "$AMORPH" generate --model m --prompt a --prompt b
  grep_in "$TMP/err" "given twice" "repeated flag"
  expect 2 "$AMORPH" generate --prompt a
  grep_in "$TMP/err" "required" "no model"
  expect 2 "$AMORPH" generate --model m --prompt-tokens 1,x,3
  grep_in "$TMP/err" "bad token id" "bad token list"
  expect 2 "$AMORPH" generate --model m --prompt-tokens ,
  expect 2 "$AMORPH" generate --model m --prompt-tokens 1 --chat
  expect 2 "$AMORPH" generate --model m --prompt hi --quiet=yes
  expect 2 "$AMORPH" generate --model m --prompt hi stray
  expect 2 "$AMORPH" inspect
  expect 2 "$AMORPH" convert --model a
  expect 2 "$AMORPH" convert --model a --out b --q-bits 9
  expect 2 "$AMORPH" convert --model a --out b --q-mode fp3
  expect 2 "$AMORPH" convert --model a --out b --no-quantize --q-bits 4

  # Library errors: exit 1 with the library's message.
  expect 1 "$AMORPH" inspect --model "$TMP/no-such-model"
  grep_in "$TMP/err" "no-such-model" "missing model"
  expect 1 "$AMORPH" generate --model "$TMP/no-such-model" --prompt-tokens 1
  grep_in "$TMP/err" "no-such-model" "missing model"
  expect 1 "$AMORPH" generate --model m --prompt-file "$TMP/no-such-file"
  grep_in "$TMP/err" "no-such-file" "missing prompt file"
}

# check_npy FILE ROWS COLS: a v1.0 little-endian float32 C-order header of
# shape (ROWS, COLS) and ROWS * COLS floats after it.
check_npy() {
  f=$1
  [ -f "$f" ] || { fail "no $f"; return; }
  magic=$(od -An -tx1 -N8 "$f" | tr -d ' \n')
  [ "$magic" = "934e554d50590100" ] || fail "npy magic/version: $magic"
  hlen=$(od -An -tu1 -j8 -N2 "$f" | awk '{print $1 + 256 * $2}')
  [ $(((hlen + 10) % 64)) = 0 ] || fail "npy header length $hlen not aligned"
  header=$(dd if="$f" bs=1 skip=10 count="$hlen" 2>/dev/null)
  case $header in
  *"'descr': '<f4'"*"'fortran_order': False"*) ;;
  *) fail "npy header: $header" ;;
  esac
  shape=$(printf '%s' "$header" | sed -n "s/.*'shape': (\([0-9]*\), \([0-9]*\)).*/\1 \2/p")
  [ "$shape" = "$2 $3" ] || fail "npy shape ($shape), want ($2 $3)"
  size=$(wc -c <"$f" | tr -d ' ')
  [ "$size" = $((10 + hlen + $2 * $3 * 4)) ] || fail "npy size $size"
}

model_tests() {
  if [ ! -f "$MODEL/config.json" ]; then
    echo "SKIP: no model in $MODEL (the bundled demo model is not there yet)"
    exit 77
  fi
  expect 0 "$AMORPH" inspect --model "$MODEL"
  grep_in "$TMP/out" "architecture" "inspect"
  grep_in "$TMP/out" "parameters" "inspect"
  vocab=$(sed -n 's/^dims .* vocab \([0-9]*\),.*/\1/p' "$TMP/out")
  [ -n "$vocab" ] || fail "inspect: no vocab size"

  expect 0 "$AMORPH" generate --model "$MODEL" --prompt-tokens 1,2,3,4 \
    --temperature 0 --max-tokens 8 --dump-logits "$TMP/logits.npy" --stats
  [ -s "$TMP/out" ] && [ "$(tr -d ' \n' <"$TMP/out")" != "" ] ||
    fail "generate printed nothing"
  n=$(sed -n 's/^generation: *\([0-9]*\) tokens.*/\1/p' "$TMP/err")
  [ -n "$n" ] && [ "$n" -ge 1 ] && [ "$n" -le 8 ] ||
    fail "generate: generated token count '$n'"
  grep_in "$TMP/err" "compile:" "--stats"
  [ -n "$n" ] && [ -n "$vocab" ] && check_npy "$TMP/logits.npy" "$n" "$vocab"

  # Greedy decoding is deterministic.
  cp "$TMP/out" "$TMP/first"
  expect 0 "$AMORPH" generate --model "$MODEL" --prompt-tokens 1,2,3,4 \
    --temperature 0 --max-tokens 8 --quiet
  cmp -s "$TMP/out" "$TMP/first" || fail "greedy output differs between runs"
  [ -s "$TMP/err" ] && fail "--quiet wrote to stderr"

  if [ -f "$MODEL/tokenizer.json" ]; then
    expect 0 "$AMORPH" generate --model "$MODEL" --prompt "Hello" \
      --max-tokens 8 --temperature 0.9 --top-p 0.95 --seed 1 --quiet
    [ "$(tr -d ' \n' <"$TMP/out")" != "" ] || fail "sampled text is empty"
    cp "$TMP/out" "$TMP/first"
    expect 0 "$AMORPH" generate --model "$MODEL" --prompt "Hello" \
      --max-tokens 8 --temperature 0.9 --top-p 0.95 --seed 1 --quiet
    cmp -s "$TMP/out" "$TMP/first" || fail "same seed, different text"
    expect 0 "$AMORPH" generate --model "$MODEL" --prompt "Hi" --chat \
      --system "Be brief." --max-tokens 4 --quiet
  fi
  expect 2 "$AMORPH" generate --model "$MODEL" --prompt-tokens 2147483647
  grep_in "$TMP/err" "vocabulary size" "token id past the vocabulary"
}

case $MODE in
usage) usage_tests ;;
model) model_tests ;;
*)
  echo "usage: test_cli.sh AMORPH usage | model DIR"
  exit 2
  ;;
esac
if [ "$FAILS" != 0 ]; then
  echo "$FAILS check(s) failed"
  exit 1
fi
echo "all checks passed"
