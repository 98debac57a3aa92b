#!/usr/bin/env bash
# test.sh — the whole test suite: install dependencies, build with warnings
# as errors, run unit and integration tests (integration tests start their
# own PostgreSQL clusters). Ends with ctest's summary line.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
"$here/scripts/deps.sh"
"$here/scripts/build.sh" "$here/build"
# The version matrix's servers, fetched once per machine (cached); a version
# that cannot be fetched is a skipped ctest entry, with the reason.
"$here/scripts/pgversions.sh" fetch ||
  echo "test: some PostgreSQL versions could not be fetched: their matrix entries will be skipped" >&2
cd "$here/build"
# Four at once: see PROCESSORS in tests/integration/CMakeLists.txt.
ctest --output-on-failure -j4 "$@"
