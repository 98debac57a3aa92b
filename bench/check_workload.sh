#!/usr/bin/env bash
# check_workload.sh — the benchmark's workload (bench/workload/) is kept in the
# repository so that a plain clone runs it; this checks that it still equals the
# project's shared reference copy when that copy is beside the clone
# (../shared/bench, or $PGSTREAM_SHARED). Exit 77 (ctest: skipped) without it.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
shared=${PGSTREAM_SHARED:-$here/../../shared/bench}
if [ ! -f "$shared/workload.sql" ]; then
  echo "check_workload: no shared reference at $shared: nothing to compare (skipped)"
  exit 77
fi
for f in schema.sql workload.sql; do
  if ! cmp -s "$here/workload/$f" "$shared/$f"; then
    echo "check_workload: bench/workload/$f differs from $shared/$f:" >&2
    diff -u "$here/workload/$f" "$shared/$f" >&2 || true
    exit 1
  fi
done
echo "check_workload: bench/workload/ equals $shared"
