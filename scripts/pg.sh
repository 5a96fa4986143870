#!/usr/bin/env bash
# A throwaway PostgreSQL cluster for the tests and benchmarks: initdb and
# pg_ctl from Debian's postgresql package, run as an unprivileged user, in a
# directory of its own, listening on 127.0.0.1 at a free port (and on a
# socket in that directory). Nothing outside the directory is touched.
#
#   scripts/pg.sh start DIR [--durable]   prints the superuser's URL,
#                                         postgres://rova@127.0.0.1:PORT/postgres
#   scripts/pg.sh stop DIR                stops the cluster and removes DIR
#
# Without --durable the cluster runs with fsync off (the tests' data is
# thrown away); the benchmarks pass --durable.
#
# PG_LISTEN=ADDR listens there instead of 127.0.0.1 (the URL names it) and
# PG_TRUST_NET=CIDR lets clients from that network in without a password:
# the multi-host harness runs the cluster inside a network namespace of
# its own making (scripts/multihost.sh).
set -euo pipefail

cmd="${1:-}" dir="${2:-}"
[[ -n "$cmd" && -n "$dir" ]] || { echo "usage: $0 start|stop DIR [--durable]" >&2; exit 2; }

bindir() {
  local d
  for d in /usr/lib/postgresql/*/bin; do
    [[ -x "$d/initdb" ]] && { echo "$d"; return 0; }
  done
  command -v initdb >/dev/null && { dirname "$(command -v initdb)"; return 0; }
  echo "pg.sh: PostgreSQL's initdb not found (apt-get install postgresql)" >&2
  return 1
}

# Runs a command as the cluster's owner: the invoking user, or `nobody`
# when that is root (initdb refuses to run as root).
as_owner() {
  if [[ "$(id -u)" == 0 ]]; then
    setpriv --reuid=nobody --regid=nogroup --clear-groups -- "$@"
  else
    "$@"
  fi
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

case "$cmd" in
  start)
    bin="$(bindir)"
    mkdir -p "$dir"
    [[ "$(id -u)" == 0 ]] && chown nobody:nogroup "$dir"
    as_owner "$bin/initdb" -D "$dir/data" -U rova --auth=trust -E UTF8 --locale=C.UTF-8 >"$dir/initdb.log" 2>&1 \
      || { cat "$dir/initdb.log" >&2; exit 1; }
    port="$(free_port)"
    listen="${PG_LISTEN:-127.0.0.1}"
    if [[ -n "${PG_TRUST_NET:-}" ]]; then
      echo "host all all ${PG_TRUST_NET} trust" >>"$dir/data/pg_hba.conf"
    fi
    opts="-c listen_addresses=$listen -c port=$port -c unix_socket_directories=$dir -c max_connections=400 -c shared_buffers=128MB"
    if [[ "${3:-}" != "--durable" ]]; then
      opts="$opts -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
    fi
    as_owner "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -o "$opts" -w -t 60 start >/dev/null \
      || { cat "$dir/server.log" >&2; exit 1; }
    echo "$port" >"$dir/port"
    echo "postgres://rova@$listen:$port/postgres"
    ;;
  stop)
    if [[ -d "$dir/data" ]]; then
      bin="$(bindir)"
      as_owner "$bin/pg_ctl" -D "$dir/data" -m immediate -w stop >/dev/null 2>&1 || true
    fi
    rm -rf "$dir"
    ;;
  *)
    echo "usage: $0 start|stop DIR [--durable]" >&2; exit 2 ;;
esac
