#!/usr/bin/env bash
# Tests of scripts/setup.sh's Debian step, with dpkg-query, apt-cache and
# apt-get replaced by stubs on PATH that read the machine they pretend to be
# from the environment:
#   STUB_INSTALLED   "pkg=version ..." installed packages (others: not installed)
#   STUB_CANDIDATES  "pkg=version ..." apt's candidates (others: none)
#   STUB_APT_LOG     file where the apt-get stub appends its arguments
#   STUB_APT_INSTALLS 1: the apt-get stub "installs" what it is asked to
#                    (appends to the STUB_INSTALLED file, see below)
# Every case runs under `set -euo pipefail`, as the callers do.
# Last line: "N passed, N failed".
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/rova-setup-test.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT
mkdir -p "$WORK/bin"

# dpkg-query -W -f=FORMAT PKG: as dpkg-query does for an unknown package,
# exit 1 with a message on stderr.
cat >"$WORK/bin/dpkg-query" <<'EOF'
#!/usr/bin/env bash
pkg="${!#}"
installed="$(cat "$STUB_STATE/installed")"
for kv in $installed; do
  if [ "${kv%%=*}" = "$pkg" ]; then
    printf 'install ok installed|%s' "${kv#*=}"; exit 0
  fi
done
echo "dpkg-query: no packages found matching $pkg" >&2
exit 1
EOF
cat >"$WORK/bin/apt-cache" <<'EOF'
#!/usr/bin/env bash
[ "$1" = policy ] || exit 2
pkg="$2"
for kv in ${STUB_CANDIDATES:-}; do
  if [ "${kv%%=*}" = "$pkg" ]; then
    printf '%s:\n  Installed: (none)\n  Candidate: %s\n' "$pkg" "${kv#*=}"; exit 0
  fi
done
# apt-cache policy of a name apt does not know prints nothing and succeeds
exit 0
EOF
cat >"$WORK/bin/apt-get" <<'EOF'
#!/usr/bin/env bash
echo "$*" >>"$STUB_STATE/apt.log"
if [ "$1" = install ] && [ "${STUB_APT_INSTALLS:-0}" = 1 ]; then
  installed="$(cat "$STUB_STATE/installed")"
  for a in "$@"; do
    case "$a" in
      -*|install) ;;
      *=*) installed="$(printf '%s\n' $installed | grep -v "^${a%%=*}=") $a" ;;
      *) for kv in ${STUB_CANDIDATES:-}; do
           [ "${kv%%=*}" = "$a" ] && installed="$installed $kv"
         done ;;
    esac
  done
  echo $installed >"$STUB_STATE/installed"
fi
exit 0
EOF
for b in qemu-system-x86_64 qemu-img; do
  printf '#!/bin/sh\necho "%s version stub"\n' "$b" >"$WORK/bin/$b"
done
chmod +x "$WORK/bin/"*

PASSED=0 FAILED=0
QEMU_V="1:7.2+dfsg-7+deb12u18+b3"
BPO_V="1:10.0.2+ds-2+deb13u1~bpo12+1"
OTHERS="genisoimage=1 socat=1 cpio=1 openssh-client=1 dosfstools=1 mtools=1 novnc=1 postgresql=1 shellcheck=1 chromium=1 chromium-driver=1 dnsmasq-base=1 dnsmasq-utils=1 iproute2=1 iputils-ping=1 nftables=1"
ALL_CANDIDATES="qemu-system-x86=$QEMU_V qemu-utils=$BPO_V $OTHERS"

# run_case NAME INSTALLED CANDIDATES MODE EXPECTED
#   MODE args:    EXPECTED is debian_install_args' output, space-separated
#   MODE install: EXPECTED is "ok" or "fail" for install_debian_packages
#                 with an apt-get that installs what it is asked
run_case() {
  local name="$1" installed="$2" candidates="$3" mode="$4" expected="$5" got
  local state="$WORK/state-$PASSED-$FAILED"
  mkdir -p "$state"
  echo "$installed" >"$state/installed"
  : >"$state/apt.log"
  if [ "$mode" = args ]; then
    got="$(PATH="$WORK/bin:$PATH" STUB_STATE="$state" STUB_CANDIDATES="$candidates" \
      bash -c 'set -euo pipefail; source "$1"; debian_install_args | tr "\n" " "' _ \
      "$ROOT/scripts/setup.sh")"
    got="${got% }"
  else
    if PATH="$WORK/bin:$PATH" STUB_STATE="$state" STUB_CANDIDATES="$candidates" \
        STUB_APT_INSTALLS=1 ROVA_APT_GET=apt-get \
        bash -c 'set -euo pipefail; source "$1"; install_debian_packages' _ \
        "$ROOT/scripts/setup.sh" >"$state/out" 2>&1; then
      got=ok
    else
      got=fail
    fi
  fi
  if [ "$got" = "$expected" ]; then
    PASSED=$((PASSED + 1)); echo "PASS $name"
  else
    FAILED=$((FAILED + 1)); echo "FAIL $name"
    echo "  expected: $expected"; echo "  got:      $got"
    [ -f "$state/out" ] && sed 's/^/  | /' "$state/out"
    sed 's/^/  apt-get /' "$state/apt.log"
  fi
}

run_case "nothing installed: every package, QEMU pair pinned to the candidate" \
  "" "$ALL_CANDIDATES" args \
  "qemu-system-x86=$QEMU_V qemu-utils=$QEMU_V genisoimage socat cpio openssh-client dosfstools mtools novnc postgresql shellcheck chromium chromium-driver dnsmasq-base dnsmasq-utils iproute2 iputils-ping nftables"

run_case "nothing installed and no package lists: names without versions" \
  "" "" args \
  "qemu-system-x86 qemu-utils genisoimage socat cpio openssh-client dosfstools mtools novnc postgresql shellcheck chromium chromium-driver dnsmasq-base dnsmasq-utils iproute2 iputils-ping nftables"

run_case "the machine's backports qemu-utils alone: QEMU pair pinned, the rest named" \
  "qemu-utils=$BPO_V" "$ALL_CANDIDATES" args \
  "qemu-system-x86=$QEMU_V qemu-utils=$QEMU_V genisoimage socat cpio openssh-client dosfstools mtools novnc postgresql shellcheck chromium chromium-driver dnsmasq-base dnsmasq-utils iproute2 iputils-ping nftables"

run_case "wrong qemu-utils beside installed QEMU: qemu-utils pinned back" \
  "qemu-system-x86=$QEMU_V qemu-utils=$BPO_V $OTHERS" "$ALL_CANDIDATES" args \
  "qemu-utils=$QEMU_V"

run_case "all present: nothing to install" \
  "qemu-system-x86=$QEMU_V qemu-utils=$QEMU_V $OTHERS" "$ALL_CANDIDATES" args ""

run_case "all present, an older QEMU pair than the candidate: left alone" \
  "qemu-system-x86=1:7.2+old qemu-utils=1:7.2+old $OTHERS" "$ALL_CANDIDATES" args ""

run_case "one tool missing: only that one" \
  "qemu-system-x86=$QEMU_V qemu-utils=$QEMU_V ${OTHERS/socat=1 /}" "$ALL_CANDIDATES" args \
  "socat"

run_case "install from nothing ends with everything present" \
  "" "$ALL_CANDIDATES" install ok

run_case "install with the backports qemu-utils ends with a matching pair" \
  "qemu-utils=$BPO_V" "$ALL_CANDIDATES" install ok

run_case "install fails loudly when apt cannot provide a package" \
  "" "qemu-system-x86=$QEMU_V qemu-utils=$QEMU_V genisoimage=1" install fail

echo "$PASSED passed, $FAILED failed"
[ "$FAILED" -eq 0 ]
