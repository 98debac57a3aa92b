#!/usr/bin/env bash
# quickstart.sh [pgstream flags...] — install, build, and stream.
# With DATABASE_URL set, streams that database. Without it, starts a
# throwaway PostgreSQL in a temporary directory, creates a small "users"
# table that a background writer keeps changing, and streams it: live change
# events within seconds. Ctrl-C stops everything and removes the cluster.
# DEMO_SECONDS=N stops the demo by itself after N seconds.
# Against DATABASE_URL it leaves nothing behind: a temporary slot, and the
# publication (pgstream_pub, or PUBLICATION_NAME) created for the demo if
# it was missing, dropped at the end. Other flags are passed on.
# PGSTREAM_BIN=path uses that binary instead of building one.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
"$here/scripts/deps.sh"
if [ -n "${PGSTREAM_BIN:-}" ]; then
  bin=$PGSTREAM_BIN
else
  BUILD_TARGET=pgstream "$here/scripts/build.sh" "$here/build" >/dev/null
  bin=$here/build/pgstream
fi

# Run pgstream, for DEMO_SECONDS if set (then SIGTERM: a clean stop, exit 0;
# SIGKILL 10 s later if it has not stopped, which fails the demo, 137).
# --foreground: SIGTERM to pgstream alone. Without it timeout follows the
# SIGTERM with a SIGCONT to its process group, and a SIGCONT discards a
# pending SIGSTOP: under ASan, one that lands while LeakSanitizer's exit
# check is stopping pgstream's threads (ptrace, SIGSTOP) leaves that check
# waiting for a stop that never comes, and the demo is killed.
run() {
  if [ -n "${DEMO_SECONDS:-}" ]; then
    local rc=0
    timeout --foreground -k 10 -s TERM "$DEMO_SECONDS" "$bin" "$@" || rc=$?
    [ "$rc" = 124 ] && rc=0
    return "$rc"
  fi
  "$bin" "$@"
}

if [ -n "${DATABASE_URL:-}" ]; then
  pub=${PUBLICATION_NAME:-pgstream_pub}
  created=
  if [ "$(psql -X -Atq -d "$DATABASE_URL" -c "SELECT count(*) FROM pg_publication WHERE pubname = '$pub'")" = 0 ]; then
    echo "creating publication $pub FOR ALL TABLES for the demo (dropped at the end)..." >&2
    psql -X -q -d "$DATABASE_URL" -v ON_ERROR_STOP=1 -c "CREATE PUBLICATION \"$pub\" FOR ALL TABLES"
    created=1
  fi
  drop_pub() {
    [ -n "$created" ] && psql -X -q -d "$DATABASE_URL" -c "DROP PUBLICATION IF EXISTS \"$pub\"" || true
  }
  trap drop_pub EXIT
  trap 'exit 130' INT TERM
  # A temporary slot: dropped by the server when pgstream disconnects.
  run --publication "$pub" --temporary-slot "$@"
  exit
fi

dir=$(mktemp -d /tmp/pgstream-demo.XXXXXX)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
writer=
cleanup() {
  [ -n "$writer" ] && kill "$writer" 2>/dev/null || true
  "$here/scripts/pgcluster.sh" stop "$dir" immediate 2>/dev/null || true
  rm -rf "$dir"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "starting a throwaway PostgreSQL in $dir (port $port)..." >&2
"$here/scripts/pgcluster.sh" start "$dir" "$port"
url=$("$here/scripts/pgcluster.sh" url "$dir" "$port")
psql -X -q -d "$url" -v ON_ERROR_STOP=1 <<'SQL'
CREATE TABLE users (id serial PRIMARY KEY, name text NOT NULL, email text, score numeric,
                    active boolean DEFAULT true, tags text[], created_at timestamptz DEFAULT now());
-- Old rows in UPDATE and DELETE events, so the pretty view shows what changed.
ALTER TABLE users REPLICA IDENTITY FULL;
SQL

# A writer that keeps inserting, updating and deleting users.
(
  i=0
  names=(Mujib Ada Linus Grace Ken Barbara Dennis Margaret)
  while sleep 1; do
    i=$((i + 1)); n=${names[$((i % ${#names[@]}))]}
    psql -X -q -d "$url" -c "INSERT INTO users (name, email, score, tags) VALUES ('$n', lower('$n') || '$i@example.com', $i * 1.5, ARRAY['demo', 'n$i'])" \
      -c "UPDATE users SET name = name || '!', score = score + 1 WHERE id = (SELECT max(id) - 1 FROM users)" \
      -c "DELETE FROM users WHERE id = (SELECT max(id) - 3 FROM users)" >/dev/null 2>&1 || exit 0
  done
) &
writer=$!

run --database-url "$url" --create-publication --temporary-slot "$@"
