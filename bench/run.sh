#!/usr/bin/env bash
# bench/run.sh — pgstream's benchmark (issue 5): pgstream side by side with
# pg_recvlogical (pgoutput), pg_recvlogical + wal2json and the server's own
# decoding, all reading the same WAL. See bench/README.md for the method.
#
#   bash bench/run.sh [N]            full run: N=400000, 3 repetitions, latency, 1M-row txn
#   bash bench/run.sh --smoke        N=2000, 1 repetition: checks every contender saw
#                                    every change (exit 1 if not); timings not checked
#   bash bench/run.sh --profile      also callgrind + perf of pgstream on the workload
#   bash bench/run.sh --snapshot [N] the snapshot benchmark (bench/snapshot.py)
#   other options: bench/bench.py --help (--reps, --lat-rate, --no-latency, ...)
#
# Installs what it needs from Debian's packages, builds a Release pgstream in
# build-release/ (unless PGSTREAM_BIN names a binary), starts its own scratch
# PostgreSQL (unless DATABASE_URL is set; then the Unix-socket contenders and,
# for a remote server, the walsender CPU figures are left out), prints a table
# and writes bench/results/<timestamp>.json. Must run as root (the scratch
# cluster belongs to the postgres user) or as a user who can run initdb.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")

# The reference workload is kept in the repository (bench/workload/, a copy
# of the project's shared reference; bench/check_workload.sh compares them).
: "${PGSTREAM_WORKLOAD:=$here/workload}"
export PGSTREAM_WORKLOAD
[ -f "$PGSTREAM_WORKLOAD/workload.sql" ] ||
  { echo "bench: no $PGSTREAM_WORKLOAD/workload.sql (set PGSTREAM_WORKLOAD)" >&2; exit 1; }

# Dependencies: the build and test ones, plus wal2json, GNU time (client CPU
# and peak RSS) and, for --profile, valgrind and perf.
"$root/scripts/deps.sh"
pkgs=(postgresql-15-wal2json time python3-psycopg2)
case " $* " in *" --profile "*) pkgs+=(valgrind linux-perf) ;; esac
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  [ "$(id -u)" = 0 ] || { echo "bench: missing packages: ${missing[*]}" >&2; exit 1; }
  echo "bench: installing ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# A Release build of its own (with symbols, for the profile): the figures are
# for the optimized binary, whatever the developer's build/ holds.
if [ -z "${PGSTREAM_BIN:-}" ]; then
  "$root/scripts/build.sh" "$root/build-release" -DCMAKE_BUILD_TYPE=Release \
    -DPGSTREAM_TESTS=OFF -DCMAKE_C_FLAGS=-g >/dev/null
  PGSTREAM_BIN=$root/build-release/pgstream
fi
export PGSTREAM_BIN

# /usr/bin/python3: Debian's, which has psycopg2 (a pyenv python3 may not).
if [ "${1:-}" = --snapshot ]; then  # the snapshot benchmark: bench/snapshot.py
  shift
  exec /usr/bin/python3 "$here/snapshot.py" "$@"
fi
exec /usr/bin/python3 "$here/bench.py" "$@"
