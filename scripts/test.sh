#!/usr/bin/env bash
# test.sh — the whole test suite: install dependencies, build with warnings
# as errors, run unit and integration tests (integration tests start their
# own PostgreSQL clusters). Ends with ctest's summary line.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
"$here/scripts/deps.sh"
"$here/scripts/build.sh" "$here/build"
cd "$here/build"
ctest --output-on-failure -j2 "$@"
