#!/usr/bin/env bash
# gpu-pack.sh — builds GPU binaries here (Release, sm_90) and packs them,
# with the host libraries the GPU machine's image lacks (OpenBLAS, cJSON,
# PCRE2, utf8proc and their runtime deps), into a folder to carry there:
#
#   scripts/gpu-pack.sh [DEST] [TARGET...]     (default DEST .xfer/gpu)
#
# On the GPU machine: DEST/run.sh PROGRAM [ARGS] runs PROGRAM with those
# libraries on the library path (DEST/pack.tar.xz, unpacked once into
# $TMPDIR); CUDA's own libraries come from the image.
set -eu
ROOT=$(cd "$(dirname "$0")/.." && pwd)
DEST=${1:-$ROOT/.xfer/gpu}
shift || true
TARGETS=${*:-test_cuda_ops test_cuda_qmm test_cuda_kernel test_cuda_model bench_cuda_qmm bench_decode amorph_cli}
B=${AM_GPU_BUILD:-$ROOT/build-gpu}
cmake -S "$ROOT" -B "$B" -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_CUDA_ARCHITECTURES=90 >/dev/null
avail=$(cmake --build "$B" --target help | sed -n 's/^\.\.\. \([^ ]*\).*/\1/p')
want=
for t in $TARGETS; do
  echo "$avail" | grep -qx "$t" && want="$want $t"
done
cmake --build "$B" -j "$(nproc)" --target $want 2>&1 | grep -E 'error|warning' || true
rm -rf "$DEST"
mkdir -p "$DEST/bin" "$DEST/lib"
for t in $want; do
  f=$(find "$B" -type f -executable -name "$t" | head -1)
  [ "$t" = amorph_cli ] && f=$(find "$B/tools" -type f -executable -name amorph | head -1)
  [ -n "$f" ] && cp "$f" "$DEST/bin/"
done
for f in "$DEST"/bin/*; do
  ldd "$f" | awk '/=> \//{print $3}' |
    grep -E 'openblas|gfortran|quadmath|cjson|pcre2|utf8proc' || true
done | sort -u | while read -r l; do cp -L "$l" "$DEST/lib/"; done
strip -s "$DEST"/bin/* 2>/dev/null || true
# Binaries and libraries travel compressed (the carry limit is 64 MiB in
# all, the source tree included).
tar -C "$DEST" -cf - bin lib | xz -T0 -6 >"$DEST/pack.tar.xz"
rm -rf "$DEST/lib" "$DEST/bin"
cat >"$DEST/run.sh" <<'RUN'
#!/usr/bin/env bash
D=$(cd "$(dirname "$0")" && pwd)
U=${TMPDIR:-/tmp}/amorph-gpu-$(cksum <"$D/pack.tar.xz" | cut -d' ' -f1)
[ -d "$U/bin" ] || { mkdir -p "$U" && xz -dc "$D/pack.tar.xz" | tar -C "$U" -xf -; }
export LD_LIBRARY_PATH=$U/lib:/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}
p=$1; shift
exec "$U/bin/$p" "$@"
RUN
chmod +x "$DEST/run.sh"
du -sh "$DEST"
