#!/usr/bin/env bash
# gpu-check.sh — build and check amorph's CUDA backend on a machine with an
# NVIDIA GPU: probe, build (Release), tests, compute-sanitizer, benchmark.
#
#   scripts/gpu-check.sh [--no-sanitizer] [--no-bench] [--no-sweep]
#                        [--prebuilt-only]
#
# Logs go to $OUT (default ./gpu-check-out): summary.txt, probe.log,
# build.log, test.log, sanitizer.log, bench.log, sass.txt.
#
# Build: with OpenBLAS, cJSON, PCRE2 and utf8proc development files
# present, the normal CMake build (CUDA found by check_language) builds
# test_cuda_qmm and bench_cuda_qmm. Without them the CPU library cannot be
# built: the CUDA sources, the test (float64 reference only, no
# am_gather_qmm comparison) and the benchmark are compiled directly with
# nvcc. AM_CUDA_PREBUILT may name a folder holding test_cuda_qmm and
# bench_cuda_qmm built elsewhere (linked with the CPU library): its test
# then also runs, and its benchmark stands in if the build here fails.
# --prebuilt-only skips the build here and checks only those binaries
# (saves the device time of compiling the kernels there). AM_SAN_TOOLS
# lists the compute-sanitizer tools (default: memcheck racecheck).
set -u
ROOT=$(cd "$(dirname "$0")/.." && pwd)
OUT=${OUT:-$PWD/gpu-check-out}
mkdir -p "$OUT"
SAN=1 BENCH=1 SWEEP=--sweep BUILDHERE=1
for a in "$@"; do
  case $a in
  --no-sanitizer) SAN=0 ;;
  --no-bench) BENCH=0 ;;
  --no-sweep) SWEEP= ;;
  --prebuilt-only) BUILDHERE=0 ;;
  *) echo "unknown option $a" >&2; exit 2 ;;
  esac
done
export PATH=/usr/local/cuda/bin:$PATH
SUM=$OUT/summary.txt
: >"$SUM"
say() { echo "== $*" | tee -a "$SUM"; }
JOBS=$(nproc 2>/dev/null || echo 4)
BUILD=${AM_CUDA_BUILD:-$ROOT/build-gpu}
status=0

# ---------------------------------------------------------------- probe
{
  echo "# nvidia-smi"; nvidia-smi 2>&1
  echo "# nvcc"; nvcc --version 2>&1
  echo "# packages"; dpkg -l 2>/dev/null | grep -E 'openblas|cjson|pcre2|utf8proc'
  echo "# pkg-config"
  for m in openblas libcjson libpcre2-8 libutf8proc; do
    pkg-config --exists $m 2>/dev/null && echo "$m: yes" || echo "$m: no"
  done
  echo "# tools"
  for t in cmake ninja compute-sanitizer cuobjdump gcc g++; do
    printf '%s: %s\n' $t "$(command -v $t || echo missing)"
  done
} >"$OUT/probe.log" 2>&1
say "device: $(nvidia-smi --query-gpu=name,driver_version,memory.total \
  --format=csv,noheader 2>/dev/null | head -1)"
say "nvcc: $(nvcc --version 2>/dev/null | tail -1)"

# ---------------------------------------------------------------- build
full=1
for m in openblas libcjson libpcre2-8 libutf8proc; do
  pkg-config --exists $m 2>/dev/null || full=0
done
TEST= BENCHBIN=
PRE=${AM_CUDA_PREBUILT:-}
: >"$OUT/build.log"
if [ $BUILDHERE = 0 ]; then
  if [ -n "$PRE" ] && [ -x "$PRE/test_cuda_qmm" ] && [ -x "$PRE/bench_cuda_qmm" ]; then
    say "build: none, the prebuilt binaries of $PRE"
    TEST=$PRE/test_cuda_qmm
    BENCHBIN=$PRE/bench_cuda_qmm
    full=1 # run the prebuilt test once, as "built here"
  else
    say "build: --prebuilt-only without AM_CUDA_PREBUILT binaries"
    status=1
  fi
elif [ $full = 1 ]; then
  say "build: CMake (CPU library present), Release, sm_90"
  if cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release \
       -DAM_BUILD_TOOLS=OFF -DCMAKE_CUDA_ARCHITECTURES=90 \
       >>"$OUT/build.log" 2>&1 &&
     cmake --build "$BUILD" -j "$JOBS" --target test_cuda_qmm bench_cuda_qmm \
       >>"$OUT/build.log" 2>&1; then
    TEST=$BUILD/src/cuda/test_cuda_qmm
    BENCHBIN=$BUILD/src/cuda/bench_cuda_qmm
  else
    say "build: CMake build FAILED (see build.log)"
    full=0
  fi
fi
if [ -z "$TEST" ] && [ $BUILDHERE = 1 ]; then
  say "build: direct nvcc (no CPU library: float64 reference only)"
  L=$BUILD-lite
  mkdir -p "$L"
  W="-Xcompiler=-Wall,-Wextra,-Wno-unused-parameter"
  I="-I$ROOT/src/cuda -I$ROOT/include"
  if (set -ex
      pids=
      for f in "$ROOT"/src/cuda/*.cu "$ROOT/bench/cuda_qmm.cu"; do
        nvcc -O3 -std=c++17 -arch=sm_90 $W $I -c "$f" \
          -o "$L/$(basename "$f" .cu).o" &
        pids="$pids $!"
      done
      gcc -O2 -std=c11 -Wall -Wextra -Wno-unused-parameter -D_GNU_SOURCE $I \
        -I/usr/local/cuda/include -c "$ROOT/src/cuda/runtime.c" \
        -o "$L/runtime.o"
      gcc -O2 -std=c11 -Wall -Wextra -Wno-unused-parameter \
        -DAM_CUDA_TEST_STANDALONE $I -I/usr/local/cuda/include \
        -c "$ROOT/tests/cuda/test_cuda_qmm.c" -o "$L/test.o"
      for p in $pids; do wait $p; done
      lib=$(for f in "$ROOT"/src/cuda/*.cu; do echo "$L/$(basename "$f" .cu).o"; done)
      nvcc -arch=sm_90 -o "$L/test_cuda_qmm" "$L/test.o" "$L/runtime.o" \
        $lib -lpthread
      nvcc -arch=sm_90 -o "$L/bench_cuda_qmm" "$L/cuda_qmm.o" "$L/runtime.o" \
        $lib -lpthread) >>"$OUT/build.log" 2>&1; then
    TEST=$L/test_cuda_qmm
    BENCHBIN=$L/bench_cuda_qmm
  else
    say "build: direct nvcc build FAILED (see build.log)"
    status=1
  fi
fi
if [ -z "$BENCHBIN" ] && [ -n "$PRE" ] && [ -x "$PRE/bench_cuda_qmm" ]; then
  BENCHBIN=$PRE/bench_cuda_qmm
  say "bench: using the prebuilt binary"
fi
grep -E 'warning' "$OUT/build.log" | head -20 | sed 's/^/   /' | tee -a "$SUM"

# ---------------------------------------------------------------- SASS
if [ -n "$TEST" ] && command -v cuobjdump >/dev/null; then
  cuobjdump -sass "$TEST" 2>/dev/null |
    awk '/Function : .*qmm4_fusedILi1ELi1ELb1E/{f=1} f&&/Function : /&&!/ILi1ELi1ELb1E/{f=0} f' \
      >"$OUT/sass.txt"
  say "sass (M=1, R=1, 16-bit x terms): $(grep -c 'LDG.E.*128' "$OUT/sass.txt") LDG.128," \
    "$(grep -c 'LDS.128' "$OUT/sass.txt") LDS.128," \
    "$(grep -c 'FFMA' "$OUT/sass.txt") FFMA, $(grep -c 'IDP' "$OUT/sass.txt") IDP, $(grep -c 'LDL\|STL' "$OUT/sass.txt") local"
fi

# ---------------------------------------------------------------- tests
: >"$OUT/test.log"
run_test() { # name binary
  echo "### $1: $2" >>"$OUT/test.log"
  timeout 300 "$2" >>"$OUT/test.log" 2>&1
  local rc=$?
  say "test ($1): exit $rc, $(grep -E '^[0-9]+ checks' "$OUT/test.log" | tail -1)"
  [ $rc = 0 ] || status=1
}
[ -n "$TEST" ] && run_test "built here" "$TEST"
if [ -n "$PRE" ] && [ -x "$PRE/test_cuda_qmm" ] && [ $full = 0 ]; then
  run_test "prebuilt, with the CPU library reference" "$PRE/test_cuda_qmm"
fi

# ---------------------------------------------------------------- sanitizer
if [ $SAN = 1 ] && [ -n "$TEST" ]; then
  CS=$(command -v compute-sanitizer || ls /usr/local/cuda*/bin/compute-sanitizer \
    2>/dev/null | head -1)
  : >"$OUT/sanitizer.log"
  if [ -n "$CS" ]; then
    for tool in ${AM_SAN_TOOLS:-memcheck racecheck}; do
      q=1
      [ $tool = racecheck ] && q=2
      echo "### $tool (AM_TEST_QUICK=$q)" >>"$OUT/sanitizer.log"
      # API errors are expected: the test provokes an out-of-memory.
      AM_TEST_QUICK=$q timeout 240 "$CS" --tool $tool --error-exitcode 99 \
        --report-api-errors no "$TEST" >>"$OUT/sanitizer.log" 2>&1
      rc=$?
      say "compute-sanitizer $tool: exit $rc, $(grep -E 'ERROR SUMMARY|RACECHECK SUMMARY' \
        "$OUT/sanitizer.log" | tail -1)"
      [ $rc = 0 ] || status=1
    done
  else
    say "compute-sanitizer: not found"
  fi
fi

# ---------------------------------------------------------------- bench
if [ $BENCH = 1 ] && [ -n "$BENCHBIN" ]; then
  timeout 300 "$BENCHBIN" $SWEEP >"$OUT/bench.log" 2>&1
  rc=$?
  say "bench: exit $rc"
  grep -vE '\(sweep\)$' "$OUT/bench.log" | tee -a "$SUM" >/dev/null
  [ $rc = 0 ] || status=1
fi
say "gpu-check: $([ $status = 0 ] && echo OK || echo FAILED)"
exit $status
