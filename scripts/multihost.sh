#!/usr/bin/env bash
# A multi-host Rova cloud on one machine, every "machine" a Linux network
# namespace (needs root):
#
#   <p>-sw        the switch: a bridge with no address, one veth per host
#   <p>-c1, -c2   control replicas (10.250.0.1 and .2); c1 also runs
#                 PostgreSQL on 10.250.0.1
#   <p>-a1 … -aN  one `rova agent` each (10.250.0.11 …), hosts agent-1 … N
#   <p>-cl        the client (10.250.0.100): where tests and the CLI run
#
# Addresses exist only inside these namespaces; nothing is added to the
# root namespace. <p> is $ROVA_MH_PREFIX (default rmh).
#
#   scripts/multihost.sh up DIR [AGENTS]   build it all (default 3 agents);
#                                          DIR/clouds.yaml is the cloud's
#   scripts/multihost.sh exec DIR CMD…     run CMD in the client namespace
#                                          with OS_CLIENT_CONFIG_FILE set
#   scripts/multihost.sh kill DIR NAME [SIG]   signal (default KILL) c1, c2
#                                          or aK, and wait until it is gone
#   scripts/multihost.sh crash DIR aK      the host fails: its agent and
#                                          every process in its namespace
#                                          (guests too) killed
#   scripts/multihost.sh start DIR NAME    start c1, c2 or aK again (an
#                                          agent from its state directory)
#   scripts/multihost.sh down DIR          stop everything, remove the
#                                          namespaces and DIR (the logs
#                                          are kept in DIR-logs)
#   scripts/multihost.sh tempest DIR [TEMPEST.SH ARGS…]   Tempest's admin
#                                          tests of services, hypervisors
#                                          and moving servers against it
#   scripts/multihost.sh test DIR [PYTEST ARGS…]   up, the multi-host
#                                          suite (tests/multihost), down
#                                          (with $ROVA_MH_TEMPEST_LOG set,
#                                          Tempest's admin tests first)
#   scripts/multihost.sh test-qemu DIR [PYTEST ARGS…]   up with 2 QEMU
#                                          agents, the real-guest moves
#                                          (tests/multihost, marker qemu;
#                                          with ROVA_MH_STORAGE=local,
#                                          marker qemu_local), down
#
# With ROVA_MH_DRIVER=qemu, `up` starts the agents with the QEMU driver
# (TCG; instance disks in DIR/instances, shared by the agents as on
# shared storage — or, with ROVA_MH_STORAGE=local, each agent's own in its
# state directory, so that moves copy them; the test guest from
# guest/build.sh; live migrations
# capped at $ROVA_MH_QEMU_BANDWIDTH MiB/s, default 8, 0 for no cap, so
# that one in flight can be aborted or forced to complete).
#
# ROVA_BIN is the rova binary (default target/release/rova); ROVA_VENV the
# client venv (default: scripts/client-venv.sh's). The control plane runs
# with --report-interval 1 and --service-down-time $ROVA_MH_DOWN_TIME
# (default 8) so that dead hosts are seen within seconds.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
root="$(dirname "$here")"
p="${ROVA_MH_PREFIX:-rmh}"
net=10.250.0
bin="${ROVA_BIN:-$root/target/release/rova}"
down_time="${ROVA_MH_DOWN_TIME:-8}"

cmd="${1:-}" dir="${2:-}"
[[ -n "$cmd" && -n "$dir" ]] || { sed -n '2,30p' "$0" >&2; exit 2; }
[[ "$(id -u)" == 0 ]] || { echo "multihost.sh: needs root (network namespaces)" >&2; exit 2; }

ns_of() { echo "$p-$1"; }
addr_of() {
  case "$1" in
    c1) echo "$net.1" ;;
    c2) echo "$net.2" ;;
    cl) echo "$net.100" ;;
    a*) echo "$net.$((10 + ${1#a}))" ;;
    *) echo "multihost.sh: unknown host $1" >&2; return 1 ;;
  esac
}

# A namespace named after `name`, joined to the switch with its address.
add_host() {
  local name="$1" ns veth
  ns="$(ns_of "$name")"
  veth="v$p$name"
  ip netns add "$ns"
  ip -n "$ns" link set lo up
  ip link add "$veth" type veth peer name eth0 netns "$ns"
  ip link set "$veth" netns "$(ns_of sw)"
  ip -n "$(ns_of sw)" link set "$veth" master br0 up
  ip -n "$ns" addr add "$(addr_of "$name")/24" dev eth0
  ip -n "$ns" link set eth0 up
}

# Waits until `url` answers from the client namespace (30 s).
wait_http() {
  local url="$1"
  for _ in $(seq 1 300); do
    if ip netns exec "$(ns_of cl)" python3 -c "import urllib.request,sys; urllib.request.urlopen(sys.argv[1], timeout=1)" "$url" 2>/dev/null; then
      return 0
    fi
    sleep 0.1
  done
  echo "multihost.sh: $url never answered" >&2
  return 1
}

# Starts `name` (c1, c2 or aK) in its namespace, in the background.
start() {
  local name="$1" ns a
  ns="$(ns_of "$name")"
  a="$(addr_of "$name")"
  mkdir -p "$dir/log"
  case "$name" in
    c*)
      setsid ip netns exec "$ns" "$bin" control --database "$(cat "$dir/db-url")" \
        --listen "$a:8774" --agent-listen "$a:8775" --data-dir "$dir/data" \
        --report-interval 1 --service-down-time "$down_time" \
        >>"$dir/log/$name.log" 2>&1 &
      echo $! >"$dir/$name.pid"
      wait_http "http://$a:8774/"
      ;;
    a*)
      local k="${name#a}" token=()
      if [[ ! -f "$dir/agent-$k/agent.crt" ]]; then
        token=(--enroll-token "$(ip netns exec "$(ns_of c1)" "$bin" control enroll \
          --database "$(cat "$dir/db-url")" --host "agent-$k")")
      fi
      local driver=(--sim-latency-ms 5)
      if [[ "$(cat "$dir/driver" 2>/dev/null)" == qemu ]]; then
        driver=(--driver qemu --qemu-accel tcg
          --live-migration-bandwidth "${ROVA_MH_QEMU_BANDWIDTH:-8}")
        if [[ "$(cat "$dir/storage" 2>/dev/null)" != local ]]; then
          driver+=(--instances-path "$dir/instances")
        fi
      fi
      # (info: a real guest's live migrations are logged with their
      # total time and downtime, which the benchmark reads)
      ROVA_LOG="${ROVA_LOG:-info}" setsid ip netns exec "$ns" "$bin" agent --host "agent-$k" \
        --control "$net.1:8775" --control "$net.2:8775" "${token[@]}" \
        --listen "$a:8776" --state-dir "$dir/agent-$k" "${driver[@]}" \
        --vcpus 256 --ram-mb 65536 --disk-gb 2000 \
        >>"$dir/log/$name.log" 2>&1 &
      echo $! >"$dir/$name.pid"
      ;;
  esac
}

# Signals `name` and waits until it has exited.
stop() {
  local name="$1" sig="${2:-KILL}" pid
  [[ -f "$dir/$name.pid" ]] || return 0
  pid="$(cat "$dir/$name.pid")"
  kill "-$sig" "$pid" 2>/dev/null || true
  for _ in $(seq 1 300); do
    kill -0 "$pid" 2>/dev/null || { rm -f "$dir/$name.pid"; return 0; }
    sleep 0.1
  done
  kill -KILL "$pid" 2>/dev/null || true
  rm -f "$dir/$name.pid"
}

up() {
  local agents="${1:-3}" k url
  [[ -x "$bin" ]] || { echo "multihost.sh: no rova binary at $bin (cargo build --release -p rova)" >&2; exit 1; }
  mkdir -p "$dir"
  echo "$agents" >"$dir/agents"
  echo "$p" >"$dir/prefix"
  echo "${ROVA_MH_DRIVER:-fake}" >"$dir/driver"
  echo "${ROVA_MH_STORAGE:-shared}" >"$dir/storage"
  mkdir -p "$dir/instances"
  ip netns add "$(ns_of sw)"
  ip -n "$(ns_of sw)" link add br0 type bridge
  ip -n "$(ns_of sw)" link set br0 up
  for h in c1 c2 cl $(seq -f 'a%g' 1 "$agents"); do
    add_host "$h"
  done
  # PostgreSQL runs as an unprivileged user, which must reach its
  # directory: not under DIR, whose parents may be private (CI's mktemp).
  local pg
  pg="$(mktemp -d "${TMPDIR:-/tmp}/rova-mh-pg.XXXXXX")"
  chmod 0755 "$pg"
  echo "$pg" >"$dir/pg-dir"
  url="$(ip netns exec "$(ns_of c1)" env PG_LISTEN="$net.1" PG_TRUST_NET="$net.0/24" \
    "$here/pg.sh" start "$pg/pg")"
  echo "$url" >"$dir/db-url"
  start c1
  start c2
  for k in $(seq 1 "$agents"); do
    start "a$k"
  done
  # The same cloud through each replica (each writes its own address into
  # the shared data directory's clouds.yaml; the last one wins there).
  sed "s#http://$net.2:8774#http://$net.1:8774#g" "$dir/data/clouds.yaml" >"$dir/clouds.yaml"
  sed "s#http://$net.1:8774#http://$net.2:8774#g" "$dir/data/clouds.yaml" >"$dir/clouds-c2.yaml"
  echo "multihost.sh: up in $dir: control $net.1 and $net.2, $agents agents"
}

down() {
  local f name
  for f in "$dir"/*.pid; do
    [[ -e "$f" ]] || continue
    name="$(basename "$f" .pid)"
    stop "$name" TERM
  done
  local pg
  pg="$(cat "$dir/pg-dir" 2>/dev/null || true)"
  if [[ -n "$pg" && -d "$pg" ]]; then
    ip netns exec "$(ns_of c1)" "$here/pg.sh" stop "$pg/pg" 2>/dev/null || "$here/pg.sh" stop "$pg/pg" || true
    rm -rf "$pg"
  fi
  local pre
  pre="$(cat "$dir/prefix" 2>/dev/null || echo "$p")"
  for ns in $(ip netns list | awk '{print $1}' | grep -E "^$pre-(sw|c1|c2|cl|a[0-9]+)$" || true); do
    ip netns pids "$ns" 2>/dev/null | xargs -r kill -KILL 2>/dev/null || true
    ip netns del "$ns"
  done
  # The processes' logs outlive the cloud, beside its directory.
  if [[ -d "$dir/log" ]]; then
    rm -rf "$dir-logs"
    mv "$dir/log" "$dir-logs"
  fi
  rm -rf "$dir"
}

# Tempest's admin tests of services, hypervisors and moving servers
# (tests/tempest/multihost.txt) against the cloud in DIR, from the client
# namespace; more scripts/tempest.sh arguments may follow.
run_tempest() {
  local venv n
  venv="${ROVA_VENV:-$("$here/client-venv.sh")}"
  n="$(cat "$dir/agents")"
  # Tempest's classes share the bootstrap projects (pre-provisioned
  # accounts), two workers at once: Nova's default of 10 instances a
  # project is too few (as scripts/test.sh raises them for its Tempest).
  local project
  for project in demo alt_demo admin; do
    in_client "$venv/bin/openstack" --os-cloud rova-admin quota set \
      --instances 200 --cores 400 --ram -1 "$project" >/dev/null
  done
  # Block storage on: the replicas share one data directory, where the
  # volumes' files are (volume-backed and volume-attached live migration).
  # serial_console stays off: Tempest's serial-console live-migration test
  # cannot pass against any cloud (its send_frame takes int() of each
  # character of a str, which raises before a byte is sent).
  in_client env ROVA_CLIENT_VENV="$venv" \
    ROVA_TEMPEST_CINDER="${ROVA_TEMPEST_CINDER:-1}" \
    ROVA_TEMPEST_MIN_COMPUTE_NODES="${ROVA_TEMPEST_MIN_COMPUTE_NODES:-$n}" \
    ROVA_TEMPEST_FEATURES="${ROVA_TEMPEST_FEATURES:-live_migration,cold_migration,resize,block_migration_for_live_migration,volume_backed_live_migration,can_migrate_between_any_hosts,pause,suspend,shelve}" \
    ROVA_TEMPEST_SCHEDULER_FILTERS="${ROVA_TEMPEST_SCHEDULER_FILTERS:-ComputeFilter,AvailabilityZoneFilter,ServerGroupAntiAffinityFilter,ServerGroupAffinityFilter,SameHostFilter,DifferentHostFilter,JsonFilter,SimpleCIDRAffinityFilter}" \
    bash "$here/tempest.sh" --url "http://$net.1:8774" --data-dir "$dir/data" \
    --include-list "$root/tests/tempest/multihost.txt" "$@"
}

in_client() {
  ip netns exec "$(ns_of cl)" env OS_CLIENT_CONFIG_FILE="$dir/clouds.yaml" \
    ROVA_MH_DIR="$dir" ROVA_MH_PREFIX="$p" ROVA_BIN="$bin" "$@"
}

case "$cmd" in
  up) up "${3:-3}" ;;
  down) down ;;
  exec) shift 2; in_client "$@" ;;
  kill) stop "${3:?name}" "${4:-KILL}" ;;
  crash)
    stop "${3:?name}" KILL
    ip netns pids "$(ns_of "$3")" | xargs -r kill -KILL 2>/dev/null || true
    for _ in $(seq 1 100); do
      [[ -z "$(ip netns pids "$(ns_of "$3")")" ]] && break
      sleep 0.1
    done
    ;;
  start) start "${3:?name}" ;;
  tempest) shift 2; run_tempest "$@" ;;
  test)
    shift 2
    venv="${ROVA_VENV:-$("$here/client-venv.sh")}"
    trap down EXIT
    # A signal (CI's timeout) stops the suite and still takes it all down.
    trap 'kill "$suite" 2>/dev/null; exit 143' TERM INT
    up 3
    # Tempest first, on the untouched cloud: its summary and exit status
    # go to $ROVA_MH_TEMPEST_LOG and ….rc when that is set.
    if [[ -n "${ROVA_MH_TEMPEST_LOG:-}" ]]; then
      # (a Tempest failure must not stop the script: set -e)
      trc=0
      ROVA_VENV="$venv" run_tempest --workdir "$ROVA_MH_TEMPEST_LOG.ws" \
        >"$ROVA_MH_TEMPEST_LOG" 2>&1 </dev/null || trc=$?
      echo "$trc" >"$ROVA_MH_TEMPEST_LOG.rc"
    fi
    in_client "$venv/bin/python" -m pytest -v -m "not qemu and not qemu_local" "$root/tests/multihost" "$@" &
    suite=$!
    wait "$suite"
    ;;
  test-qemu)
    shift 2
    venv="${ROVA_VENV:-$("$here/client-venv.sh")}"
    trap down EXIT
    trap 'kill "$suite" 2>/dev/null; exit 143' TERM INT
    ROVA_MH_DRIVER=qemu up 2
    marker=qemu
    [[ "${ROVA_MH_STORAGE:-shared}" == local ]] && marker=qemu_local
    in_client "$venv/bin/python" -m pytest -v -m "$marker" "$root/tests/multihost" "$@" &
    suite=$!
    wait "$suite"
    ;;
  *) sed -n '2,30p' "$0" >&2; exit 2 ;;
esac
