#!/usr/bin/env bash
# Rova's whole test run, as CI does it (.ci/run calls exactly this):
#   0. scripts/setup.sh: installs what is missing (Debian packages: QEMU,
#      genisoimage, socat, novnc, shellcheck, ...; the test guest; the Python
#      client venv) — a no-op when all is there
#   1. cargo fmt --check
#   2. cargo clippy --all-targets -- -D warnings
#   3. shell: shellcheck over every shell script, and tests/ci (the set-up
#      step's own tests, with apt and dpkg stubbed)
#   4. cargo nextest run --workspace        (unit + integration tests, the
#      databases on SQLite)
#   5. pg: a throwaway PostgreSQL cluster (scripts/pg.sh) for the rest, and
#      nextest-pg: the integration tests again with every cloud's tables on
#      PostgreSQL (and the storage suite on both backends)
#   6. cargo build --release -p rova
#   7. the black-box suites against the release binary, side by side:
#      - tests/browser (pytest; the web dashboard in headless Chromium
#        through chromium-driver and selenium, with a rova of its own)
#      - tests/cli (pytest; the real `openstack` CLI and openstacksdk, with
#        a rova of its own), on SQLite and, beside it, on PostgreSQL (cli-pg)
#      - Tempest (scripts/tempest.sh, tests/tempest/compute.txt), and
#        compute's volume tests with block storage on (tempest-volumes,
#        tests/tempest/volumes.txt)
#        against a rova started here, on SQLite and then on PostgreSQL
#        (tempest-pg)
#      - tests/guest (pytest; real QEMU guests under `rova serve --driver
#        qemu --qemu-hosts 2` of its own; fails, never skips, when QEMU is
#        missing)
#      - tests/multihost (pytest; scripts/multihost.sh: two `rova control`
#        replicas on PostgreSQL and three `rova agent`s, each in a network
#        namespace of its own; needs root), and before it on the same cloud
#        Tempest's admin tests of services, hypervisors and moving servers
#        (tests/tempest/multihost.txt; tempest-multihost)
#      - multihost-qemu (scripts/multihost.sh test-qemu: the same harness
#        with 2 agents running the QEMU driver; a real guest live-migrated
#        between them and back, cold-migrated, evacuated from a failed host)
#      - multihost-qemu-local (the same with ROVA_MH_STORAGE=local: agents
#        without shared storage; block migration there and back, cold
#        migration copying the disks, revert and confirm, evacuation)
#
# Every stage runs even when an earlier one failed (except that nothing
# black-box runs without a binary). The set-up, fmt, clippy and the release
# build each count as one check; the suites count their tests. The last line
# printed is
#   N passed, N failed, N skipped
# and the exit status is non-zero when anything failed.
#
# Environment:
#   ROVA_TEST_STAGES     stages to run (default "setup fmt clippy shell nextest
#                        pg nextest-pg build browser multihost multihost-qemu
#                        multihost-qemu-local cli cli-pg
#                        tempest tempest-pg tempest-volumes guest"; the -pg
#                        stages need pg)
#   ROVA_SIM_LATENCY_MS  passed to both servers as --sim-latency-ms
#   ROVA_TEMPEST_LIST    selection for Tempest (default tests/tempest/compute.txt)
#   ROVA_TEMPEST_WORKERS Tempest workers (default 2)
#   ROVA_TEST_ARTIFACTS  where logs go (default: a new temp dir, printed)
#   ROVA_CLI_SUITE_TIMEOUT, ROVA_GUEST_SUITE_TIMEOUT,
#   ROVA_BROWSER_SUITE_TIMEOUT  seconds per pytest suite
#   plus everything scripts/setup.sh, scripts/tempest.sh, tests/cli/conftest.py
#   and tests/guest/conftest.py read.
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT" || exit 2
STAGES=" ${ROVA_TEST_STAGES:-setup fmt clippy shell nextest pg nextest-pg build browser multihost multihost-qemu multihost-qemu-local cli cli-pg tempest tempest-pg tempest-volumes guest} "
ART="${ROVA_TEST_ARTIFACTS:-$(mktemp -d "${TMPDIR:-/tmp}/rova-test.XXXXXX")}"
mkdir -p "$ART"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

TOTAL_P=0 TOTAL_F=0 TOTAL_S=0
RESULTS=()
record() {  # stage passed failed skipped
  TOTAL_P=$((TOTAL_P + $2)) TOTAL_F=$((TOTAL_F + $3)) TOTAL_S=$((TOTAL_S + $4))
  RESULTS+=("$(printf '%-10s %4d passed, %4d failed, %4d skipped' "$1" "$2" "$3" "$4")")
}
want() { [[ "$STAGES" == *" $1 "* ]]; }
banner() { echo; echo "===== $* ($(date +%H:%M:%S))"; }

# A check is one command that passes or fails as a whole.
check() {  # name command...
  local name="$1"; shift
  banner "$name: $*"
  if "$@"; then record "$name" 1 0 0; return 0; fi
  record "$name" 0 1 0
  return 1
}

# "a passed, b failed, c skipped" style counts out of one line of text.
count_of() {  # word line
  local n
  n=$(grep -oE "[0-9]+ $1" <<<"$2" | head -n1 | cut -d' ' -f1)
  echo "${n:-0}"
}

PIDS_TO_STOP=()
PG_DIR=""
cleanup() {
  local pid
  for pid in "${PIDS_TO_STOP[@]}"; do
    kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
  done
  if [ -n "$PG_DIR" ]; then scripts/pg.sh stop "$PG_DIR"; PG_DIR=""; fi
}
trap cleanup EXIT

# ---------------------------------------------------------------- set-up
want setup && check setup scripts/setup.sh

# ---------------------------------------------------------------- cargo
want fmt && check fmt cargo fmt --all --check
want clippy && check clippy cargo clippy --workspace --all-targets -- -D warnings

# ---------------------------------------------------------------- shell
if want shell; then
  SHELL_SCRIPTS=(.ci/run scripts/*.sh guest/*.sh tests/ci/*.sh)
  check shellcheck shellcheck -x "${SHELL_SCRIPTS[@]}"
  banner "shell: tests/ci"
  for t in tests/ci/test_*.sh; do
    out=$(bash "$t" 2>&1); rc=$?
    echo "$out"
    line=$(grep -E '^[0-9]+ passed, [0-9]+ failed$' <<<"$out" | tail -n1)
    p=$(count_of passed "$line") f=$(count_of failed "$line")
    [ "$rc" -ne 0 ] && [ "$f" -eq 0 ] && f=1
    record "$(basename "$t" .sh)" "$p" "$f" 0
  done
fi

# One nextest run: its summary line's counts, recorded under `stage`.
nextest_stage() {  # stage log args...
  local stage="$1" log="$2" rc line p f s
  shift 2
  banner "$stage: cargo nextest run $*"
  cargo nextest run --no-fail-fast --no-tests=warn "$@" 2>&1 | tee "$log"
  rc=${PIPESTATUS[0]}
  line=$(grep -E '^ *Summary \[' "$log" | tail -n1)
  if [ -z "$line" ]; then
    record "$stage" 0 1 0            # did not build or did not start
  else
    p=$(count_of passed "$line")
    f=$(( $(count_of failed "$line") + $(count_of "timed out" "$line") ))
    s=$(count_of skipped "$line")
    [ "$rc" -ne 0 ] && [ "$f" -eq 0 ] && f=1   # e.g. leaky or aborted run
    record "$stage" "$p" "$f" "$s"
  fi
}

want nextest && nextest_stage nextest "$ART/nextest.log" --workspace

# A PostgreSQL cluster of this run's own, stopped (and removed) at the end.
PG_URL=""
if want pg; then
  banner "pg: a throwaway PostgreSQL cluster (scripts/pg.sh)"
  # Beside $ART, not in it: the cluster's owner (nobody, when this runs as
  # root) must reach its directory.
  PG_DIR="$(mktemp -d "${TMPDIR:-/tmp}/rova-pg.XXXXXX")"
  if PG_URL="$(scripts/pg.sh start "$PG_DIR")"; then
    echo "PostgreSQL at $PG_URL"
    record pg 1 0 0
  else
    PG_URL=""
    scripts/pg.sh stop "$PG_DIR"; PG_DIR=""
    record pg 0 1 0
  fi
fi
# A fresh database on the run's cluster; prints its URL.
pg_database() {  # name
  psql "$PG_URL" -qAt -c "CREATE DATABASE $1" >/dev/null && echo "${PG_URL%/*}/$1"
}
if want nextest-pg; then
  if [ -n "$PG_URL" ]; then
    ROVA_TEST_PG_URL="$PG_URL" nextest_stage nextest-pg "$ART/nextest-pg.log" -p rova --test it --ignore-default-filter
  else
    record nextest-pg 0 1 0
  fi
fi

TARGET_DIR="$(cargo metadata --format-version 1 --no-deps 2>/dev/null \
  | python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])' 2>/dev/null)"
TARGET_DIR="${TARGET_DIR:-$ROOT/target}"
export ROVA_BIN="${ROVA_BIN:-$TARGET_DIR/release/rova}"
BUILD_OK=1
if want build; then
  check build cargo build --release -p rova || BUILD_OK=0
fi

# ------------------------------------------------------------ black box
BLACK_BOX="browser multihost multihost-qemu multihost-qemu-local cli cli-pg tempest tempest-pg tempest-volumes guest"
if want browser || want multihost || want multihost-qemu || want multihost-qemu-local || want cli || want cli-pg || want tempest || want tempest-pg || want tempest-volumes || want guest; then
  banner "client venv"
  if ! VENV="$(scripts/client-venv.sh)"; then
    for st in $BLACK_BOX; do want "$st" && record "$st" 0 1 0; done
    STAGES=" "
  elif [ "$BUILD_OK" != 1 ] || [ ! -x "$ROVA_BIN" ]; then
    echo "no fresh rova binary at $ROVA_BIN: black-box suites not run"
    for st in $BLACK_BOX; do want "$st" && record "$st" 0 1 0; done
    STAGES=" "
  fi
fi

start_rova() {  # data_dir log -> sets ROVA_URL, ROVA_PID
  local data="$1" log="$2" port args
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  args=(serve --data-dir "$data" --listen "127.0.0.1:$port")
  [ -n "${ROVA_SIM_LATENCY_MS:-}" ] && args+=(--sim-latency-ms "$ROVA_SIM_LATENCY_MS")
  "$ROVA_BIN" "${args[@]}" </dev/null >"$log" 2>&1 &
  ROVA_PID=$!
  PIDS_TO_STOP+=("$ROVA_PID")
  for _ in $(seq 1 600); do
    ROVA_URL=$(grep -oE 'rova: serving on http://[^ ]+' "$log" | head -n1 | sed 's/^rova: serving on //')
    [ -n "$ROVA_URL" ] && return 0
    kill -0 "$ROVA_PID" 2>/dev/null || break
    sleep 0.1
  done
  echo "rova did not start; its output:"; tail -n 40 "$log"
  return 1
}

# passed failed skipped from a JUnit XML file (0 0 0 when unreadable)
junit_counts() {
  "$VENV/bin/python" -c '
import sys, xml.etree.ElementTree as ET
try:
    root = ET.parse(sys.argv[1]).getroot()
except Exception:
    print(0, 0, 0); sys.exit()
suites = [root] if root.tag == "testsuite" else root.findall("testsuite")
n = lambda k: sum(int(x.get(k, 0)) for x in suites)
failed = n("failures") + n("errors")
print(n("tests") - failed - n("skipped"), failed, n("skipped"))' "$1"
}

# Tempest against a rova of its own on `database` (empty: SQLite in its
# data directory); the summary line ends up in `log`.
run_tempest() {  # tag database log [include-list]
  local tag="$1" database="$2" log="$3"
  local list="${4:-${ROVA_TEMPEST_LIST:-$ROOT/tests/tempest/compute.txt}}"
  # Left out: two tests that list the whole project twice and compare the
  # counts, which another class's create or delete in the shared project
  # changes in between (seen: 3 != 2 with ImagesTestJSON's server going
  # away between the two lists; 4 != 3 in ListServerFiltersTestJSON). The
  # fix is an account pool with a project per account.
  local SHARED_PROJECT_RACES='ListServersNegativeTestJSON\.test_list_servers_by_limits_greater_than_actual_count|ListServerFiltersTestJSON\.test_list_servers_filter_by_exceed_limit'
  # Tempest's accounts share one project per role (no Keystone admin API
  # to make a project per test class as devstack does), so the project
  # quotas are raised to what many classes running at once need.
  if ROVA_DATABASE_URL="$database" ROVA_QUOTA_INSTANCES=200 ROVA_QUOTA_CORES=400 ROVA_QUOTA_RAM=-1 \
      start_rova "$ART/$tag-rova-data" "$ART/$tag-rova.log"; then
    echo "rova for $tag at $ROVA_URL (log $ART/$tag-rova.log)"
    ROVA_TEMPEST_FEATURES="${ROVA_TEMPEST_FEATURES:-pause,suspend,shelve,rescue,resize,snapshot,console_output,change_password,personality,disk_config,vnc_console}" \
    scripts/tempest.sh --url "$ROVA_URL" --data-dir "$ART/$tag-rova-data" \
      --include-list "$list" --exclude-regex "$SHARED_PROJECT_RACES" \
      --workers "${ROVA_TEMPEST_WORKERS:-2}" --workdir "$ART/$tag-ws" >"$log" 2>&1
    local rc=$?
    kill "$ROVA_PID" 2>/dev/null && wait "$ROVA_PID" 2>/dev/null
    return $rc
  fi
  echo "rova for $tag did not start" >"$log"
  return 1
}

# Records a Tempest run from its exit status and summary line.
record_tempest() {  # stage rc log
  local line p f s
  cat "$3"
  line=$(grep -E '^[0-9]+ passed, [0-9]+ failed, [0-9]+ skipped$' "$3" | tail -n1)
  if [ -z "$line" ]; then
    record "$1" 0 1 0
  else
    p=$(count_of passed "$line") f=$(count_of failed "$line") s=$(count_of skipped "$line")
    [ "$2" -ne 0 ] && [ "$f" -eq 0 ] && f=1
    record "$1" "$p" "$f" "$s"
  fi
}

# Both Tempest runs go one after the other in the background (each has two
# workers of its own), beside the CLI and guest suites.
TEMPEST_PID=""
TEMPEST_PG_DB=""
if want tempest-pg && [ -n "$PG_URL" ]; then
  TEMPEST_PG_DB="$(pg_database rova_tempest)" || TEMPEST_PG_DB=""
fi
if want tempest || want tempest-pg || want tempest-volumes; then
  banner "tempest: in the background (output in $ART/tempest.log, $ART/tempest-pg.log, $ART/tempest-volumes.log)"
  (
    trap '[ -n "${ROVA_PID:-}" ] && kill "$ROVA_PID" 2>/dev/null' EXIT
    rc_sqlite=0 rc_pg=0 rc_vol=0
    if want tempest; then run_tempest tempest "" "$ART/tempest.log"; rc_sqlite=$?; fi
    if want tempest-pg && [ -n "$TEMPEST_PG_DB" ]; then
      run_tempest tempest-pg "$TEMPEST_PG_DB" "$ART/tempest-pg.log"; rc_pg=$?
    fi
    # Compute's volume tests with Rova's block storage turned on. One
    # worker: the classes share one project, and Cinder's list tests page
    # through every volume of it, so a class on a second worker creating
    # and deleting volumes meanwhile moves their pages and markers (a
    # rehearsal saw it). About 80 s.
    if want tempest-volumes; then
      ROVA_TEMPEST_CINDER=1 ROVA_TEMPEST_WORKERS=1 \
        run_tempest tempest-volumes "" "$ART/tempest-volumes.log" \
        "$ROOT/tests/tempest/volumes.txt"
      rc_vol=$?
    fi
    echo "$rc_sqlite $rc_pg $rc_vol" >"$ART/tempest.rc"
  ) &
  TEMPEST_PID=$!
  PIDS_TO_STOP+=("$TEMPEST_PID")
fi

# A pytest suite's result from its exit status and JUnit file: no junit, no
# tests collected (exit 5), a crash, a timeout: one failure at least.
record_pytest() {  # stage rc junit
  local p f s
  read -r p f s < <(junit_counts "$3")
  [ "$2" -ne 0 ] && [ "${f:-0}" -eq 0 ] && f=1
  record "$1" "${p:-0}" "${f:-1}" "${s:-0}"
}

# The guest suite runs in the background beside the CLI suite and Tempest
# (its guests boot under TCG, mostly waiting); SIGTERM from `timeout` lets
# its fixtures stop the rova and the QEMU processes they started.
GUEST_PID=""
if want guest; then
  banner "guest: pytest tests/guest in the background (output in $ART/guest.log)"
  rm -f "$ART/guest-junit.xml"
  timeout --kill-after=60 "${ROVA_GUEST_SUITE_TIMEOUT:-2400}" \
    "$VENV/bin/python" -m pytest tests/guest -v --junitxml="$ART/guest-junit.xml" \
    >"$ART/guest.log" 2>&1 </dev/null &
  GUEST_PID=$!
  PIDS_TO_STOP+=("$GUEST_PID")
fi

if want browser; then
  banner "browser: pytest tests/browser"
  rm -f "$ART/browser-junit.xml"
  ROVA_DATABASE_URL="" timeout --kill-after=30 "${ROVA_BROWSER_SUITE_TIMEOUT:-600}" \
    "$VENV/bin/python" -m pytest tests/browser -v --junitxml="$ART/browser-junit.xml"
  record_pytest browser $? "$ART/browser-junit.xml"
fi

if want multihost; then
  banner "multihost: scripts/multihost.sh test (2 control replicas, 3 agents, network namespaces)"
  rm -rf "$ART/multihost-junit.xml" "$ART/tempest-multihost.log"*
  ROVA_BIN="$ROVA_BIN" ROVA_VENV="$VENV" ROVA_MH_TEMPEST_LOG="$ART/tempest-multihost.log" \
    timeout --kill-after=60 "${ROVA_MULTIHOST_SUITE_TIMEOUT:-1200}" \
    bash scripts/multihost.sh test "$ART/multihost" --junitxml="$ART/multihost-junit.xml"
  rc=$?
  # Tempest's admin tests of services, hypervisors and migrations ran
  # first on the same cloud (2 control replicas, 3 agents).
  record_tempest tempest-multihost "$(cat "$ART/tempest-multihost.log.rc" 2>/dev/null || echo 1)" \
    "$ART/tempest-multihost.log"
  record_pytest multihost "$rc" "$ART/multihost-junit.xml"
fi

if want multihost-qemu; then
  banner "multihost-qemu: scripts/multihost.sh test-qemu (real guests on 2 QEMU agents, TCG)"
  rm -rf "$ART/multihost-qemu-junit.xml"
  ROVA_BIN="$ROVA_BIN" ROVA_VENV="$VENV" ROVA_MH_PREFIX=rmq \
    timeout --kill-after=60 "${ROVA_MULTIHOST_QEMU_SUITE_TIMEOUT:-1200}" \
    bash scripts/multihost.sh test-qemu "$ART/multihost-qemu" --junitxml="$ART/multihost-qemu-junit.xml"
  record_pytest multihost-qemu $? "$ART/multihost-qemu-junit.xml"
fi

if want multihost-qemu-local; then
  banner "multihost-qemu-local: scripts/multihost.sh test-qemu with ROVA_MH_STORAGE=local (no shared storage: block migration, disk copies)"
  rm -rf "$ART/multihost-qemu-local-junit.xml"
  ROVA_BIN="$ROVA_BIN" ROVA_VENV="$VENV" ROVA_MH_PREFIX=rml ROVA_MH_STORAGE=local \
    timeout --kill-after=60 "${ROVA_MULTIHOST_QEMU_SUITE_TIMEOUT:-1200}" \
    bash scripts/multihost.sh test-qemu "$ART/multihost-qemu-local" --junitxml="$ART/multihost-qemu-local-junit.xml"
  record_pytest multihost-qemu-local $? "$ART/multihost-qemu-local-junit.xml"
fi

# The CLI suite on PostgreSQL runs in the background beside the one on
# SQLite (each starts a rova of its own on a free port and in a directory
# of its own; most of their time is the clients' start-up, one core each).
CLI_PG_PID="" CLI_PG_RC=""
if want cli-pg; then
  banner "cli-pg: pytest tests/cli with the rova's tables on PostgreSQL, in the background (output in $ART/cli-pg.log)"
  rm -f "$ART/cli-pg-junit.xml"
  if [ -n "$PG_URL" ] && CLI_DB="$(pg_database rova_cli)"; then
    ROVA_DATABASE_URL="$CLI_DB" timeout --kill-after=30 "${ROVA_CLI_SUITE_TIMEOUT:-1200}" \
      "$VENV/bin/python" -m pytest tests/cli -v -p no:cacheprovider \
      --junitxml="$ART/cli-pg-junit.xml" >"$ART/cli-pg.log" 2>&1 </dev/null &
    CLI_PG_PID=$!
    PIDS_TO_STOP+=("$CLI_PG_PID")
  else
    CLI_PG_RC=none
  fi
fi

if want cli; then
  banner "cli: pytest tests/cli"
  rm -f "$ART/cli-junit.xml"
  ROVA_DATABASE_URL="" timeout --kill-after=30 "${ROVA_CLI_SUITE_TIMEOUT:-1200}" \
    "$VENV/bin/python" -m pytest tests/cli -v -p no:cacheprovider --junitxml="$ART/cli-junit.xml"
  record_pytest cli $? "$ART/cli-junit.xml"
fi

if [ -n "$CLI_PG_PID" ]; then
  banner "cli-pg: waiting for pytest tests/cli on PostgreSQL"
  wait "$CLI_PG_PID"
  rc=$?
  cat "$ART/cli-pg.log"
  record_pytest cli-pg "$rc" "$ART/cli-pg-junit.xml"
elif [ "$CLI_PG_RC" = none ]; then
  record cli-pg 0 1 0
fi

if [ -n "$GUEST_PID" ]; then
  banner "guest: waiting for pytest tests/guest"
  wait "$GUEST_PID"
  rc=$?
  cat "$ART/guest.log"
  record_pytest guest "$rc" "$ART/guest-junit.xml"
fi

if [ -n "$TEMPEST_PID" ]; then
  banner "tempest: waiting for scripts/tempest.sh"
  wait "$TEMPEST_PID"
  read -r rc_sqlite rc_pg rc_vol <"$ART/tempest.rc" 2>/dev/null || { rc_sqlite=1 rc_pg=1 rc_vol=1; }
  want tempest && record_tempest tempest "${rc_sqlite:-1}" "$ART/tempest.log"
  want tempest-volumes && record_tempest tempest-volumes "${rc_vol:-1}" "$ART/tempest-volumes.log"
  if want tempest-pg; then
    if [ -n "$TEMPEST_PG_DB" ]; then
      banner "tempest-pg"
      record_tempest tempest-pg "${rc_pg:-1}" "$ART/tempest-pg.log"
    else
      record tempest-pg 0 1 0
    fi
  fi
elif want tempest-pg; then
  record tempest-pg 0 1 0
fi
cleanup
PIDS_TO_STOP=()

banner "summary (logs in $ART)"
for r in "${RESULTS[@]}"; do echo "  $r"; done
echo "$TOTAL_P passed, $TOTAL_F failed, $TOTAL_S skipped"
[ "$TOTAL_F" -eq 0 ] && [ "${#RESULTS[@]}" -gt 0 ]
