#!/usr/bin/env bash
# Everything Rova's tests need on a Debian 12 machine, installed when missing:
#   - Debian packages (below), with qemu-utils pinned to qemu-system-x86's
#     version in one apt transaction;
#   - the Rust toolchain pieces the test run calls (checked, not installed:
#     cargo, rustfmt, clippy, cargo-nextest come with the machine's rustup);
#   - the test guest (guest/build.sh, cached in ~/.cache/rova/guest);
#   - the Python client venv (scripts/client-venv.sh, ~/.cache/rova/client-venv).
#
#   scripts/setup.sh            # run every step (scripts/test.sh does this first)
#   source scripts/setup.sh     # define the functions only (tests/ci uses this)
#
# Each step is a no-op when its result is already there, so a second run takes
# a second or two. Installing Debian packages needs root (or sudo).
#
# Environment:
#   ROVA_APT_GET   the apt-get command (default: apt-get, or "sudo apt-get" when
#                  not root and sudo exists)

# Debian packages the tests need. busybox-static and the guest kernel are not
# installed: guest/build.sh fetches them with `apt-get download`.
#   qemu-system-x86 qemu-utils  the QEMU driver (qemu-system-x86_64, qemu-img)
#   genisoimage                 ISO9660 config drives
#   dosfstools mtools           VFAT config drives
#   socat                       the guests' metadata connector
#   dnsmasq-base dnsmasq-utils  DHCP on the bridge data path (dnsmasq,
#                               dhcp_release)
#   iproute2 iputils-ping       bridges, taps and namespaces; ping in the
#                               bridge guest tests
#   nftables                    security groups on the bridge data path
#   cpio                        guest/build.sh (initramfs)
#   openssh-client              ssh-keygen for the guest and keypair tests
#   novnc                       the noVNC page the console proxy serves
#   postgresql                  the PostgreSQL backend's tests (scripts/pg.sh
#                               runs a throwaway cluster; psql comes with it)
#   (package) shellcheck        lints the shell scripts in scripts/test.sh
#   chromium chromium-driver    the dashboard's browser suite (tests/browser:
#                               headless Chromium driven through WebDriver)
DEBIAN_PACKAGES=(qemu-system-x86 qemu-utils genisoimage socat cpio openssh-client
  dosfstools mtools novnc postgresql shellcheck chromium chromium-driver
  dnsmasq-base dnsmasq-utils iproute2 iputils-ping nftables)

installed_version() {  # package -> version; empty (and success) when not installed
  local out
  out="$(dpkg-query -W -f='${Status}|${Version}' "$1" 2>/dev/null)" || true
  case "$out" in
    "install ok installed|"*) echo "${out#install ok installed|}" ;;
  esac
  return 0
}

candidate_version() {  # package -> apt's candidate; empty when apt knows none
  local out
  out="$(apt-cache policy "$1" 2>/dev/null)" || true
  sed -n 's/^ *Candidate: //p' <<<"$out" | grep -v '^(none)$' | head -n1 || true
  return 0
}

# What is missing or at the wrong version, one apt-get install argument a line.
# qemu-system-x86 and qemu-utils must be the same version (the machine may
# carry a newer qemu-utils from backports that conflicts with bookworm's
# QEMU): the wanted version is the installed qemu-system-x86's; apt's
# candidate when qemu-system-x86 is not installed, or when "$1" is candidate
# and the installed pair does not match; a name without version when apt
# knows none (no package lists yet).
debian_install_args() {
  local pkg qemu_v
  qemu_v="$(installed_version qemu-system-x86)"
  if [ -z "$qemu_v" ] \
     || { [ "${1:-}" = candidate ] && [ "$(installed_version qemu-utils)" != "$qemu_v" ]; }; then
    qemu_v="$(candidate_version qemu-system-x86)"
  fi
  for pkg in "${DEBIAN_PACKAGES[@]}"; do
    case "$pkg" in
      qemu-system-x86|qemu-utils)
        if [ -z "$qemu_v" ]; then
          echo "$pkg"
        elif [ "$(installed_version "$pkg")" != "$qemu_v" ]; then
          echo "$pkg=$qemu_v"
        fi ;;
      *) [ -n "$(installed_version "$pkg")" ] || echo "$pkg" ;;
    esac
  done
  return 0
}

# The arguments as an array in DEBIAN_ARGS; fails loudly if the computation did.
compute_debian_args() {  # [candidate]
  local text
  if ! text="$(debian_install_args "${1:-}")"; then
    echo "setup: could not work out the Debian packages to install" >&2
    return 1
  fi
  DEBIAN_ARGS=()
  [ -z "$text" ] || mapfile -t DEBIAN_ARGS <<<"$text"
}

apt_get_cmd() {
  if [ -n "${ROVA_APT_GET:-}" ]; then
    echo "$ROVA_APT_GET"
  elif [ "$(id -u)" -eq 0 ] || ! command -v sudo >/dev/null 2>&1; then
    echo apt-get
  else
    echo "sudo apt-get"
  fi
}

install_debian_packages() {
  local apt
  compute_debian_args || return 1
  if [ ${#DEBIAN_ARGS[@]} -eq 0 ]; then
    echo "setup: Debian packages present (qemu $(installed_version qemu-system-x86))" >&2
    return 0
  fi
  read -r -a apt <<<"$(apt_get_cmd)"
  echo "setup: installing Debian packages: ${DEBIAN_ARGS[*]}" >&2
  # Fresh package lists first: a new machine may have none, an old one stale
  # ones whose files are gone from the mirror. Then the QEMU pair moves to
  # apt's candidate if it has to change at all.
  DEBIAN_FRONTEND=noninteractive "${apt[@]}" update -q >&2 || return 1
  compute_debian_args candidate || return 1
  if [ ${#DEBIAN_ARGS[@]} -gt 0 ]; then
    DEBIAN_FRONTEND=noninteractive "${apt[@]}" install -y -q --no-install-recommends \
      --allow-downgrades "${DEBIAN_ARGS[@]}" >&2 || return 1
  fi
  # the same check again: anything still missing or mismatched fails here
  compute_debian_args || return 1
  if [ ${#DEBIAN_ARGS[@]} -ne 0 ]; then
    echo "setup: Debian packages still missing or at the wrong version: ${DEBIAN_ARGS[*]}" >&2
    return 1
  fi
  qemu-system-x86_64 --version | sed -n 1p >&2
  qemu-img --version | sed -n 1p >&2
}

check_toolchain() {
  local tool
  for tool in cargo rustc python3; do
    command -v "$tool" >/dev/null || { echo "setup: $tool not found" >&2; return 1; }
  done
  cargo nextest --version >/dev/null 2>&1 \
    || { echo "setup: cargo-nextest not found (cargo install cargo-nextest)" >&2; return 1; }
  { cargo fmt --version && cargo clippy --version; } >/dev/null 2>&1 \
    || { echo "setup: rustfmt/clippy missing (rustup component add rustfmt clippy)" >&2; return 1; }
}

# Every step; stops at the first that fails.
setup_all() {
  local root
  root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
  install_debian_packages || { echo "setup: Debian packages failed" >&2; return 1; }
  check_toolchain || return 1
  bash "$root/guest/build.sh" >/dev/null || { echo "setup: guest/build.sh failed" >&2; return 1; }
  "$root/scripts/client-venv.sh" >/dev/null || { echo "setup: client venv failed" >&2; return 1; }
  echo "setup: done" >&2
}

# Sourced: define the functions only.
[[ "${BASH_SOURCE[0]}" == "$0" ]] || return 0
set -euo pipefail
setup_all
