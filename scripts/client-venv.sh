#!/usr/bin/env bash
# Create (or reuse) the Python virtualenv holding the OpenStack client tools
# that Rova's black-box tests drive: tempest, the `openstack` CLI,
# openstacksdk, novaclient, stestr and pytest.
#
#   scripts/client-venv.sh          # prints the venv path on stdout
#
# Location: $ROVA_CLIENT_VENV, default ~/.cache/rova/client-venv.
# Python:   $ROVA_PYTHON, default python3.11 if present, else python3.
#
# The venv is rebuilt only when the pin list below changes: a marker file
# inside the venv stores the hash of the pins and the interpreter version, so
# a second run takes well under a second. All progress goes to stderr; stdout
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
)

py_version="$("$PYTHON" -c 'import sys; print("%d.%d.%d" % sys.version_info[:3])')"
want="$(printf '%s\n' "python=$py_version" "${PINS[@]}" | sha256sum | cut -d' ' -f1)"
marker="$VENV/.rova-pins"

if [ -f "$marker" ] && [ "$(cat "$marker")" = "$want" ] \
   && [ -x "$VENV/bin/tempest" ] && [ -x "$VENV/bin/openstack" ] && [ -x "$VENV/bin/pytest" ]; then
  echo "$VENV"
  exit 0
fi

echo "client-venv: building $VENV with $PYTHON $py_version (${PINS[*]})" >&2
rm -rf "$VENV"
mkdir -p "$(dirname "$VENV")"
"$PYTHON" -m venv "$VENV"
export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1
# pip keeps its wheel cache in ~/.cache/pip, so a rebuild after a pin bump
# only downloads what changed.
"$VENV/bin/pip" install --quiet "${PINS[@]}" >&2
# Fail now, not in the middle of a test run, if an entry point is missing.
for tool in tempest openstack stestr pytest; do
  [ -x "$VENV/bin/$tool" ] || { echo "client-venv: $tool missing after install" >&2; exit 1; }
done
"$VENV/bin/python" -c 'import openstack, tempest, novaclient' >&2
echo "$want" >"$marker"
echo "client-venv: ready" >&2
echo "$VENV"
