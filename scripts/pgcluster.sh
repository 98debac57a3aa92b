#!/usr/bin/env bash
# pgcluster.sh — a throwaway PostgreSQL cluster for the demo, the tests and
# the benchmark: initdb into a directory, wal_level=logical, loopback TCP and
# a Unix socket in that directory. initdb refuses to run as root, so as root
# the cluster belongs to the unprivileged "postgres" user of Debian's package.
# PGSTREAM_PG_BIN=DIR uses the server in DIR instead of Debian's (the version
# matrix: scripts/pgversions.sh bin MAJOR prints such a DIR).
#
#   pgcluster.sh start DIR PORT [extra postgresql.conf lines...]
#   pgcluster.sh stop DIR [fast|immediate]
#   pgcluster.sh restart DIR [fast|immediate]
#   pgcluster.sh promote DIR          (a standby: harness.py's Standby)
#   pgcluster.sh url DIR PORT [DB]
set -euo pipefail

pgbin() {
  local d
  if [ -n "${PGSTREAM_PG_BIN:-}" ]; then
    [ -x "$PGSTREAM_PG_BIN/initdb" ] || { echo "pgcluster: no initdb in PGSTREAM_PG_BIN=$PGSTREAM_PG_BIN" >&2; exit 1; }
    echo "$PGSTREAM_PG_BIN"; return
  fi
  for d in /usr/lib/postgresql/*/bin; do :; done  # the highest version
  [ -x "$d/initdb" ] || { echo "pgcluster: no PostgreSQL server found (apt-get install postgresql)" >&2; exit 1; }
  echo "$d"
}

as_owner() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

start() {
  local dir=$1 port=$2; shift 2
  local bin; bin=$(pgbin)
  mkdir -p "$dir"
  [ "$(id -u)" = 0 ] && chown postgres: "$dir" && chmod 755 "$dir"
  if [ ! -f "$dir/data/PG_VERSION" ]; then
    as_owner "$bin/initdb" -D "$dir/data" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 \
      --no-sync >"$dir/initdb.log" 2>&1 || { cat "$dir/initdb.log" >&2; exit 1; }
    {
      echo "listen_addresses = '127.0.0.1'"
      echo "port = $port"
      echo "unix_socket_directories = '$dir'"
      echo "wal_level = logical"
      echo "max_wal_senders = 20"
      echo "max_replication_slots = 20"
      echo "fsync = off"             # scratch cluster: the OS never crashes under it
      echo "full_page_writes = off"
      echo "shared_buffers = 128MB"
      echo "max_wal_size = 2GB"
      echo "log_min_messages = warning"
      for line in "$@"; do echo "$line"; done
    } | as_owner tee -a "$dir/data/postgresql.conf" >/dev/null
  fi
  as_owner "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 start >/dev/null
}

stop() {
  local dir=$1 mode=${2:-fast}
  as_owner "$(pgbin)/pg_ctl" -D "$dir/data" -m "$mode" -w -t 60 stop >/dev/null
}

case "${1:-}" in
  start) shift; start "$@" ;;
  stop) shift; stop "$@" ;;
  restart) shift; stop "$1" "${2:-fast}"; as_owner "$(pgbin)/pg_ctl" -D "$1/data" -l "$1/server.log" -w -t 60 start >/dev/null ;;
  promote) as_owner "$(pgbin)/pg_ctl" -D "$2/data" -w -t 60 promote >/dev/null ;;
  url) echo "postgresql://postgres@127.0.0.1:$3/${4:-postgres}" ;;
  *) echo "usage: $0 start|stop|restart|promote|url DIR ..." >&2; exit 2 ;;
esac
