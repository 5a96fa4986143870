#!/usr/bin/env bash
# Run upstream Tempest compute API tests against a running rova.
#
# usage: scripts/tempest.sh --url http://127.0.0.1:PORT --data-dir DIR
#                           [--include-list FILE | --regex RE]
#                           [--exclude-regex RE] [--workers N] [--workdir DIR]
#
#   --url           rova's base URL (identity is URL/identity/v3)
#   --data-dir      rova's data dir; accounts come from DIR/passwords.json
#   --include-list  file of regexes, one per line, '#' comments
#                   (default: tests/tempest/compute.txt)
#   --regex         a single selection regex instead of a list
#   --workers       tempest worker processes (default 2)
#   --workdir       workspace directory (default: a new temp dir)
#
# Environment (optional):
#   ROVA_TEMPEST_FEATURES       comma list of [compute-feature-enabled]
#                               booleans to turn on (all are off except
#                               enable_instance_password), e.g. pause,suspend
#   ROVA_TEMPEST_FEATURES_OFF   comma list to turn off
#   ROVA_TEMPEST_CINDER=1       [service_available] cinder = true (Rova's
#                               block storage; off by default)
#   ROVA_TEMPEST_TIMEOUT        whole run, seconds (default 1800)
#   ROVA_TEMPEST_TEST_TIMEOUT   per test, seconds (default 300)
#   ROVA_TEMPEST_BUILD_TIMEOUT  [compute] build_timeout (default 120)
#   ROVA_TEMPEST_IMAGE_REF[_ALT], ROVA_TEMPEST_FLAVOR_REF[_ALT]
#                               override what is discovered
#   ROVA_TEMPEST_MIN_MICROVERSION / ROVA_TEMPEST_MAX_MICROVERSION
#   ROVA_TEMPEST_MIN_COMPUTE_NODES  [compute] min_compute_nodes (default 1)
#   ROVA_TEMPEST_SCHEDULER_FILTERS  [compute-feature-enabled]
#                               scheduler_enabled_filters (default: tempest's)
#   ROVA_TEMPEST_FIXED_NETWORK  [compute] fixed_network_name (default:
#                               "private" when the network API lists it;
#                               "none" leaves it unset)
#   ROVA_TEMPEST_DEBUG=0        no request/response bodies in tempest.log
#   ROVA_TEMPEST_VERBOSE=1      stream tempest's own output
#   ROVA_TEMPEST_KEEP=1         keep the workspace even when all passed
#                               (it is always kept when something failed)
#   ROVA_CLIENT_VENV            client virtualenv (see scripts/client-venv.sh)
#
# Prints the failures, then as its last line 'N passed, N failed, N skipped'
# (a class whose setUpClass failed counts all its tests as failed).
# Exit: 0 all passed, 1 failures, 2 usage or setup error, 3 rova not
# reachable or login refused.
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
HELPER="$ROOT/scripts/tempest_helper.py"

usage() { sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }

URL="" DATA_DIR="" INCLUDE="" REGEX="" EXCLUDE="" WORKERS=2 WORKDIR=""
while [ $# -gt 0 ]; do
  case "$1" in
    --url) URL="${2:-}"; shift 2 ;;
    --data-dir) DATA_DIR="${2:-}"; shift 2 ;;
    --include-list) INCLUDE="${2:-}"; shift 2 ;;
    --regex) REGEX="${2:-}"; shift 2 ;;
    --exclude-regex) EXCLUDE="${2:-}"; shift 2 ;;
    --workers) WORKERS="${2:-}"; shift 2 ;;
    --workdir) WORKDIR="${2:-}"; shift 2 ;;
    -h|--help) usage ;;
    *) echo "tempest.sh: unknown argument $1" >&2; usage ;;
  esac
done
if [ -z "$URL" ] || [ -z "$DATA_DIR" ]; then usage; fi
[ -n "$INCLUDE" ] && [ -n "$REGEX" ] && { echo "tempest.sh: --include-list or --regex, not both" >&2; exit 2; }
if [ -z "$INCLUDE" ] && [ -z "$REGEX" ]; then
  INCLUDE="$ROOT/tests/tempest/compute.txt"
fi
if [ -n "$INCLUDE" ]; then
  [ -f "$INCLUDE" ] || { echo "tempest.sh: no such list: $INCLUDE" >&2; exit 2; }
  INCLUDE="$(cd "$(dirname "$INCLUDE")" && pwd)/$(basename "$INCLUDE")"
fi
DATA_DIR="$(cd "$DATA_DIR" 2>/dev/null && pwd)" || { echo "tempest.sh: no such data dir" >&2; exit 2; }

# A setup failure still ends with a summary line, so callers that add up
# results count it.
setup_failed() {  # $1 exit code, $2 message
  echo "Tempest failures:"
  echo "  FAIL setup: $2"
  echo "0 passed, 1 failed, 0 skipped"
  exit "$1"
}

VENV="$("$ROOT/scripts/client-venv.sh")" || setup_failed 2 "could not build the client venv"
PY="$VENV/bin/python"

if [ -n "$WORKDIR" ]; then
  mkdir -p "$WORKDIR" && WS="$(cd "$WORKDIR" && pwd)"
else
  WS="$(mktemp -d "${TMPDIR:-/tmp}/rova-tempest.XXXXXX")"
fi
echo "tempest.sh: workspace $WS" >&2

"$PY" "$HELPER" discover --url "$URL" --data-dir "$DATA_DIR" --out "$WS/discovery.json"
rc=$?
[ $rc -eq 0 ] || setup_failed "$rc" "discovery against $URL failed (see above)"
"$PY" "$HELPER" configure --discovery "$WS/discovery.json" --workspace "$WS" \
  --workers "$WORKERS" || setup_failed 2 "could not write tempest.conf"

# Our own stestr config: tests grouped per class, so a class (and the
# accounts and servers its setUpClass made) stays on one worker.
SITE="$("$PY" -c 'import os, tempest; print(os.path.dirname(os.path.dirname(tempest.__file__)))')"
cat >"$WS/.stestr.conf" <<EOF
[DEFAULT]
test_path=$SITE/tempest/test_discover
top_dir=$SITE
group_regex=([^\.]*\.)*
EOF

cd "$WS" || exit 2
export TEMPEST_CONFIG_DIR="$WS/etc" TEMPEST_CONFIG=tempest.conf
export OS_TEST_TIMEOUT="${ROVA_TEMPEST_TEST_TIMEOUT:-300}"

"$VENV/bin/stestr" init >/dev/null 2>&1 || true
"$VENV/bin/stestr" list >"$WS/all-tests.txt" 2>"$WS/list.err" \
  || { cat "$WS/list.err" >&2; setup_failed 2 "stestr list failed"; }
SEL=(--out "$WS/selected.txt" --all "$WS/all-tests.txt")
if [ -n "$INCLUDE" ]; then SEL+=(--include-list "$INCLUDE"); else SEL+=(--regex "$REGEX"); fi
[ -n "$EXCLUDE" ] && SEL+=(--exclude-regex "$EXCLUDE")
"$PY" "$HELPER" select "${SEL[@]}" || setup_failed 2 "the selection matches no test"

NSEL=$(wc -l <"$WS/selected.txt")
echo "tempest.sh: running $NSEL tests with $WORKERS workers against $URL" >&2
RUN=(timeout --kill-after=30 "${ROVA_TEMPEST_TIMEOUT:-1800}"
     "$VENV/bin/tempest" run --config-file "$WS/etc/tempest.conf"
     --load-list "$WS/selected.txt" --concurrency "$WORKERS")
start=$SECONDS
if [ "${ROVA_TEMPEST_VERBOSE:-0}" = "1" ]; then
  "${RUN[@]}" 2>&1 | tee "$WS/tempest-run.log" >&2
  trc=${PIPESTATUS[0]}
else
  "${RUN[@]}" >"$WS/tempest-run.log" 2>&1
  trc=$?
fi
echo "tempest.sh: tempest run exited $trc after $((SECONDS - start))s" >&2
if [ "$trc" = 124 ] || [ "$trc" = 137 ]; then
  echo "tempest.sh: the run hit ROVA_TEMPEST_TIMEOUT=${ROVA_TEMPEST_TIMEOUT:-1800}s; tests without a result count as failed" >&2
fi

"$VENV/bin/stestr" last --subunit >"$WS/results.subunit" 2>/dev/null
if [ ! -s "$WS/results.subunit" ]; then
  echo "tempest.sh: no results recorded; end of tempest's output:" >&2
  tail -n 40 "$WS/tempest-run.log" >&2
fi
"$PY" "$HELPER" summary --subunit "$WS/results.subunit" --selected "$WS/selected.txt"
src=$?
if [ $src -eq 0 ] && [ "$trc" != 124 ] && [ "$trc" != 137 ] && [ "${ROVA_TEMPEST_KEEP:-0}" != 1 ] && [ -z "$WORKDIR" ]; then
  cd / && rm -rf "$WS"
else
  echo "tempest.sh: workspace kept: $WS (etc/tempest.conf, logs/tempest.log, tempest-run.log)" >&2
fi
[ "$trc" = 124 ] || [ "$trc" = 137 ] && exit 1
exit $src
