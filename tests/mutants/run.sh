#!/usr/bin/env bash
# run.sh — the mutation guard (see guard.py): every known mutant must be
# caught by the tests named in its file. Also ctest's mutants/guard.
#   tests/mutants/run.sh [--runs N] [--baseline] [NAME...]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
exec "${PYTHON3:-/usr/bin/python3}" "$here/guard.py" "$@"
