#!/usr/bin/env bash
# Type-checks the `cuda` feature, every target, without a GPU or a CUDA toolkit: CUDA 13.0 nvcc from
# PyPI wheels and a candle-core patched to load CUDA at run time, both from ../shared/cuda (its build.sh
# installs them once under ~/.cache/leader-cuda and builds the GPU binary .device/leader.xz on the
# way). The check shares build.sh's target folder there (candle-kernels' nvcc output is reused), so the
# CPU build is not rebuilt; later runs are incremental. A `cuda` build that does not compile makes this
# script, and CI, fail.
#   scripts/check-cuda.sh          (LEADER_SHARED=DIR if shared/ is not beside the checkout)
set -euo pipefail
cd "$(dirname "$0")/.."
shared=${LEADER_SHARED:-../shared}
cache=${LEADER_CUDA_CACHE:-$HOME/.cache/leader-cuda}
nvcc_dir=$cache/cuda/nvidia/cu13/bin
version=$(awk '/^name = "candle-core"$/ { getline; gsub(/[^0-9.]/, ""); print; exit }' Cargo.lock)
patched=$cache/patched/candle-core-$version
if [ ! -x "$nvcc_dir/nvcc" ] || [ ! -f "$patched/Cargo.toml" ]; then
    echo "== check-cuda: installing nvcc and the patched candle-core $version (once, with a GPU build)"
    "$shared/cuda/build.sh"
fi
echo "== check-cuda: cargo check --features cuda --all-targets"
started=$(date +%s)
# A copy of the checkout (as build.sh does): the patch would otherwise rewrite this Cargo.lock.
src=$cache/check-src
rm -rf "$src" && mkdir -p "$src"
tar --exclude=./target --exclude=./.git --exclude=./.device --exclude=./runs -cf - . | tar -C "$src" -xf -
(
    cd "$src"
    PATH="$nvcc_dir:$PATH" CUDA_COMPUTE_CAP=90 LIBRARY_PATH="$cache/cudart-static" CARGO_TARGET_DIR="$cache/target" \
        cargo check --release --features cuda --all-targets --quiet \
        --config "patch.crates-io.candle-core.path=\"$patched\""
)
echo "== check-cuda: the cuda feature compiles ($(( $(date +%s) - started )) s)"
