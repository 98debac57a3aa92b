#!/usr/bin/env bash
# build.sh [BUILD_DIR] [cmake args...] — configure and build with warnings as errors.
# BUILD_TARGET=pgstream builds only the daemon (the quickstart does).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
dir=${1:-$here/build}; shift || true
cmake -S "$here" -B "$dir" -DPGSTREAM_WERROR=ON "$@" >/dev/null
cmake --build "$dir" -j"$(nproc)" ${BUILD_TARGET:+--target "$BUILD_TARGET"}
