#!/usr/bin/env bash
# run.sh — run a fuzz target the way the test suite does (see README.md).
#
#   run.sh replay BIN TARGET            run every input of fuzz/corpus/TARGET
#                                       and fuzz/regressions/TARGET once
#   run.sh run BIN TARGET SECONDS WORK  fuzz for SECONDS, starting from those
#                                       inputs; new inputs go to WORK/corpus,
#                                       a crash to WORK/artifacts
#
# The checked-in corpus is never written to: what a run discovers stays in
# WORK (the build tree) until someone decides to keep it.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
mode=$1 bin=$2 target=$3
export ASAN_OPTIONS="detect_leaks=1:abort_on_error=1${ASAN_OPTIONS:+:$ASAN_OPTIONS}"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1${UBSAN_OPTIONS:+:$UBSAN_OPTIONS}"

seeds=()
for d in "$here/corpus/$target" "$here/regressions/$target"; do
  [ -d "$d" ] && seeds+=("$d")
done
dict=()
[ -f "$here/$target.dict" ] && dict=(-dict="$here/$target.dict")

case "$mode" in
replay)
  [ ${#seeds[@]} -gt 0 ] || { echo "run.sh: no corpus for $target" >&2; exit 1; }
  # -runs=0: execute each input once, mutate nothing.
  exec "$bin" -runs=0 "${seeds[@]}"
  ;;
run)
  seconds=$4 work=$5
  mkdir -p "$work/corpus" "$work/artifacts"
  log="$work/fuzz.log"
  status=0
  "$bin" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
    "${dict[@]}" -artifact_prefix="$work/artifacts/" "$work/corpus" "${seeds[@]}" \
    >"$log" 2>&1 || status=$?
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
  echo "fuzz_$target: ${execs:-?} executions in ${seconds} s, $(ls "$work/corpus" | wc -l) inputs in the work corpus"
  if [ "$status" != 0 ]; then
    tail -n 60 "$log"
    echo "fuzz_$target failed; the input is in $work/artifacts/ — fix the bug, then keep the" \
         "input as a regression: cp $work/artifacts/crash-* $here/regressions/$target/" >&2
  fi
  exit "$status"
  ;;
*)
  echo "usage: $0 replay|run BIN TARGET [SECONDS WORK]" >&2
  exit 2
  ;;
esac
