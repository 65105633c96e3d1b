#!/usr/bin/env bash
# gpu-pack.sh — builds GPU binaries here (Release, sm_90) and packs them,
# with the host libraries the GPU machine's image lacks (OpenBLAS, cJSON,
# PCRE2, utf8proc and their runtime deps), into a folder to carry there:
#
#   scripts/gpu-pack.sh [DEST] [TARGET...]     (default DEST .xfer/gpu)
#
# On the GPU machine: DEST/run.sh PROGRAM [ARGS] runs DEST/bin/PROGRAM with
# those libraries (DEST/lib.tar.xz, unpacked once into $TMPDIR) on the
# library path; CUDA's own libraries come from the image.
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
# The libraries travel compressed (the carry limit is 64 MiB in all).
tar -C "$DEST" -cJf "$DEST/lib.tar.xz" lib
rm -rf "$DEST/lib"
cat >"$DEST/run.sh" <<'RUN'
#!/usr/bin/env bash
D=$(cd "$(dirname "$0")" && pwd)
L=${TMPDIR:-/tmp}/amorph-gpu-lib-$(cksum <"$D/lib.tar.xz" | cut -d' ' -f1)
[ -d "$L/lib" ] || { mkdir -p "$L" && tar -C "$L" -xJf "$D/lib.tar.xz"; }
export LD_LIBRARY_PATH=$L/lib:/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}
p=$1; shift
exec "$D/bin/$p" "$@"
RUN
chmod +x "$DEST/run.sh"
du -sh "$DEST"
