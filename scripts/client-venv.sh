#!/usr/bin/env bash
# Create (or reuse) the Python virtualenv holding the OpenStack client tools
# that Rova's black-box tests drive: tempest, the `openstack` CLI,
# openstacksdk, novaclient, stestr, pytest, websocket-client (the guest
# suite's console websockets) and selenium (the dashboard's browser suite,
# which drives Debian's chromium-driver).
#
#   scripts/client-venv.sh          # prints the venv path on stdout
#
# Location: $ROVA_CLIENT_VENV, default ~/.cache/rova/client-venv.
# Python:   $ROVA_PYTHON, default python3.11 if present, else python3.
#
# The venv is touched only when the pin list below changes: a marker file
# inside the venv stores the hash of the pins and the interpreter version, so
# a second run takes well under a second. When only the pins changed (same
# interpreter), the existing venv is topped up with `pip install` of the new
# pins; when the interpreter changed, or the top-up fails, it is rebuilt. All progress goes to stderr; stdout
# carries only the path, so callers can do  VENV="$(scripts/client-venv.sh)".
set -euo pipefail

VENV="${ROVA_CLIENT_VENV:-$HOME/.cache/rova/client-venv}"
if [ -n "${ROVA_PYTHON:-}" ]; then
  PYTHON="$ROVA_PYTHON"
elif command -v python3.11 >/dev/null 2>&1; then
  PYTHON=python3.11
else
  PYTHON=python3
fi

PINS=(
  tempest==47.0.0
  python-openstackclient==10.5.0
  openstacksdk==4.22.0
  python-novaclient==18.13.1
  stestr==4.2.1
  pytest==8.4.2
  websocket-client==1.9.2
  selenium==4.51.0
)

py_version="$("$PYTHON" -c 'import sys; print("%d.%d.%d" % sys.version_info[:3])')"
want="$(printf '%s\n' "python=$py_version" "${PINS[@]}" | sha256sum | cut -d' ' -f1)"
marker="$VENV/.rova-pins"

venv_ok() {  # every entry point and module the suites use is there
  local tool
  for tool in tempest openstack stestr pytest; do
    [ -x "$VENV/bin/$tool" ] || { echo "client-venv: $tool missing" >&2; return 1; }
  done
  "$VENV/bin/python" -c 'import openstack, tempest, novaclient, websocket, selenium' >&2
}

if [ -f "$marker" ] && [ "$(cat "$marker")" = "$want" ] \
   && [ -x "$VENV/bin/tempest" ] && [ -x "$VENV/bin/openstack" ] && [ -x "$VENV/bin/pytest" ]; then
  echo "$VENV"
  exit 0
fi

export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1
# Same interpreter, other pins: install the pins over the existing venv
# (pip only fetches what differs), which keeps a venv that another run is
# using in place instead of deleting it under its feet.
venv_py=""
[ -x "$VENV/bin/python" ] \
  && venv_py="$("$VENV/bin/python" -c 'import sys; print("%d.%d.%d" % sys.version_info[:3])' 2>/dev/null || true)"
if [ -n "$venv_py" ] && [ "$venv_py" = "$py_version" ]; then
  echo "client-venv: topping up $VENV (${PINS[*]})" >&2
  if "$VENV/bin/pip" install --quiet "${PINS[@]}" >&2 && venv_ok; then
    echo "$want" >"$marker"
    echo "client-venv: ready" >&2
    echo "$VENV"
    exit 0
  fi
  echo "client-venv: top-up failed; rebuilding" >&2
fi

echo "client-venv: building $VENV with $PYTHON $py_version (${PINS[*]})" >&2
rm -rf "$VENV"
mkdir -p "$(dirname "$VENV")"
"$PYTHON" -m venv "$VENV"
# pip keeps its wheel cache in ~/.cache/pip, so a rebuild after a pin bump
# only downloads what changed.
"$VENV/bin/pip" install --quiet "${PINS[@]}" >&2
# Fail now, not in the middle of a test run, if an entry point is missing.
venv_ok || exit 1
echo "$want" >"$marker"
echo "client-venv: ready" >&2
echo "$VENV"
