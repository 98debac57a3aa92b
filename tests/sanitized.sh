#!/usr/bin/env bash
# sanitized.sh CMD... — run one test under AddressSanitizer + UBSan rules.
#
# The sanitizer runtimes write their reports to files in a fresh directory
# rather than to stderr, and any report fails the test, whatever CMD's exit
# status says. That matters for the integration tests: they start pgstream
# as a child, often expect a non-zero exit (a UBSan exit 1 looks like a
# runtime error), and kill it in fault scenarios, so its exit status alone
# cannot tell a sanitizer finding from the behaviour under test.
set -uo pipefail
logs=$(mktemp -d "${TMPDIR:-/tmp}/pgstream-san.XXXXXX")
trap 'rm -rf "$logs"' EXIT
export ASAN_OPTIONS="detect_leaks=1:abort_on_error=1:log_path=$logs/asan"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1:log_path=$logs/ubsan"
# Tests may relax what sanitizers distort on purpose (peak RSS bounds).
export PGSTREAM_SANITIZED=1
"$@"
rc=$?
reports=$(find "$logs" -type f | sort)
if [ -n "$reports" ]; then
  for f in $reports; do
    echo "==== sanitizer report $(basename "$f") ====" >&2
    cat "$f" >&2
  done
  echo "sanitized.sh: sanitizer reported errors (exit status of the test was $rc)" >&2
  exit 1
fi
exit $rc
