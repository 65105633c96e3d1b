#!/usr/bin/env bash
# gpu-check.sh — the CUDA backend's checks and benchmarks, on a machine with
# an NVIDIA GPU:
#
#   scripts/gpu-check.sh [--quick] [--no-sanitizer] [--no-bench]
#
# Binaries come from a pack made by scripts/gpu-pack.sh (AM_GPU_PACK,
# default .xfer/gpu): built on a development machine and carried here with
# the host libraries this machine's image may lack. Without a pack, the
# script makes one here (that needs the build dependencies).
#
#  tests     test_cuda_ops (every primitive vs the CPU), test_cuda_qmm,
#            test_cuda_model (demo models vs transformers / mlx-lm
#            references and vs the CPU; CUDA-graph replay vs launches)
#  sanitizer compute-sanitizer memcheck on test_cuda_ops (quick) and
#            test_cuda_qmm, racecheck on test_cuda_qmm (quick)
#  bench     bench_cuda_qmm; bench_decode --cuda 1 on the full 48-layer
#            Qwen3-Next-80B-A3B shape; `amorph generate --device cuda` on
#            the demo models; scripts/torch_demo_bench.py when PyTorch is
#            there (transformers on the same GPU and checkpoint)
#
# Logs and summary.txt go to $OUT (default ./gpu-check-out). Exit status 0
# when every test passed.
set -u
ROOT=$(cd "$(dirname "$0")/.." && pwd)
OUT=${OUT:-$PWD/gpu-check-out}
PACK=${AM_GPU_PACK:-$ROOT/.xfer/gpu}
mkdir -p "$OUT"
SAN=1 BENCH=1 QUICK=0
for a in "$@"; do
  case $a in
  --quick) QUICK=1 ;;
  --no-sanitizer) SAN=0 ;;
  --no-bench) BENCH=0 ;;
  *) echo "unknown option $a" >&2; exit 2 ;;
  esac
done
export PATH=/usr/local/cuda/bin:$PATH
SUM=$OUT/summary.txt
: >"$SUM"
say() { echo "== $*" | tee -a "$SUM"; }
status=0
say "device: $(nvidia-smi --query-gpu=name,driver_version,memory.total \
  --format=csv,noheader 2>/dev/null | head -1)"
[ -x "$PACK/run.sh" ] || "$ROOT/scripts/gpu-pack.sh" "$PACK" >"$OUT/build.log" 2>&1
RUN=$PACK/run.sh
[ -x "$RUN" ] || { say "no binaries (see build.log)"; exit 1; }

t() { # name dir cmd... : a test, its exit status and last summary line
  local name=$1 dir=$2; shift 2
  (cd "$dir" && timeout 900 "$@") >"$OUT/$name.log" 2>&1
  local rc=$?
  say "$name: exit $rc: $(grep -E 'passed|checks|skipped' "$OUT/$name.log" | tail -1)"
  grep -E '^  FAILED|no GPU kernel' "$OUT/$name.log" | head -20 | tee -a "$SUM"
  [ $rc = 0 ] || status=1
}
export AM_TEST_QUICK=$QUICK
t test_cuda_ops "$ROOT" "$RUN" test_cuda_ops
t test_cuda_qmm "$ROOT" "$RUN" test_cuda_qmm
t test_cuda_kernel "$ROOT" "$RUN" test_cuda_kernel
t test_cuda_model "$ROOT/tests" "$RUN" test_cuda_model
grep -E '^  ' "$OUT/test_cuda_model.log" | tee -a "$SUM" >/dev/null

if [ $SAN = 1 ]; then
  CS=$(command -v compute-sanitizer || ls /usr/local/cuda*/bin/compute-sanitizer 2>/dev/null | head -1)
  if [ -n "$CS" ]; then
    s() { # tool binary quick
      AM_TEST_QUICK=$3 timeout 200 "$CS" --tool "$1" \
        --error-exitcode 99 --report-api-errors no "$RUN" "$2" \
        >"$OUT/san-$1-$2.log" 2>&1
      local rc=$?
      say "compute-sanitizer $1 $2: exit $rc: $(grep -E 'ERROR SUMMARY|RACECHECK SUMMARY' "$OUT/san-$1-$2.log" | tail -1)"
      [ $rc = 0 ] || status=1
    }
    s memcheck test_cuda_ops 1
    s memcheck test_cuda_qmm 1
    [ $QUICK = 1 ] || s racecheck test_cuda_qmm 2
  else
    say "compute-sanitizer: not found"
  fi
fi

if [ $BENCH = 1 ]; then
  b() { # name cmd...
    local name=$1; shift
    timeout 600 "$@" >"$OUT/$name.log" 2>&1
    say "$name: exit $?"
    grep -E '^BENCH|tok/s|graph' "$OUT/$name.log" | tail -8 | tee -a "$SUM" >/dev/null
  }
  b bench_cuda_qmm "$RUN" bench_cuda_qmm
  b bench_decode_48 "$RUN" bench_decode --cuda 1 --layers 48 --decode 128 --prompt 16 --prefill 512
  for m in models/demo tests/data/models/demo-hf; do
    b "generate-$(basename $m)" "$RUN" amorph generate --model "$ROOT/$m" \
      --device cuda --prompt-tokens 1,2,3,4,5,6,7,8 --max-tokens 256 --stats
    b "generate-cpu-$(basename $m)" "$RUN" amorph generate --model "$ROOT/$m" \
      --prompt-tokens 1,2,3,4,5,6,7,8 --max-tokens 256 --stats
  done
  if python3 -c 'import torch, transformers' 2>/dev/null; then
    (cd "$ROOT" && b torch_demo timeout 200 python3 scripts/torch_demo_bench.py \
      tests/data/models/demo-hf 256)
  fi
fi
say "gpu-check: $([ $status = 0 ] && echo OK || echo FAILED)"
exit $status
