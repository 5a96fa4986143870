#!/usr/bin/env bash
# Build the Rova test guest: a Debian cloud kernel plus a busybox initramfs whose
# /init is guest/init.sh. Everything comes from Debian packages fetched with apt.
#
# Output, in ${ROVA_GUEST_CACHE:-$HOME/.cache/rova/guest}:
#   vmlinuz              the kernel (bzImage) from linux-image-<abi>-cloud-amd64
#   initramfs.cpio.gz    busybox-static + /init + the virtio/iso9660/vfat modules
#                        + dropbear (SSH server) with its shared-library closure
#   SHA256SUMS           checksums of the two files above
#   manifest             package versions and the modules that went in
#   stamp                hash of this script and init.sh; matching stamp => no-op
#
# On success the last lines on stdout are shell assignments, e.g.
#   ROVA_GUEST_KERNEL=/root/.cache/rova/guest/vmlinuz
#   ROVA_GUEST_INITRD=/root/.cache/rova/guest/initramfs.cpio.gz
# All progress messages go to stderr.
#
# Environment:
#   ROVA_GUEST_CACHE    cache/output directory (default above)
#   ROVA_GUEST_REBUILD  set to 1 to rebuild even when the stamp matches
#                       (this also re-resolves the newest cloud kernel in apt)
#
# Needs root on Debian 12 only to apt-get install missing host tools (cpio,
# binutils for readelf) and
# to run apt-get update when the package lists are missing.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cache=${ROVA_GUEST_CACHE:-$HOME/.cache/rova/guest}
init_src=$here/init.sh

# Modules the guest wants. Each is copied with its dependency closure when it is
# a module; one that is built into the kernel is skipped (recorded in manifest).
modules="virtio_pci virtio_blk virtio_net virtio_rng ata_piix sr_mod sd_mod
isofs vfat nls_cp437 nls_ascii nls_utf8 nls_iso8859-1 button evdev"

# The SSH server: Debian's dropbear-bin is dynamically linked, so the packages
# that hold its shared-library closure come too (only the libraries it really
# needs are copied: the closure is computed with readelf below; a library it
# needs that none of these packages has is an error).
ssh_pkgs="dropbear-bin libc6 libcrypt1 libtomcrypt1 libtommath1 libgmp10 zlib1g"
ssh_bins="usr/sbin/dropbear usr/bin/dropbearkey"

log() { printf 'guest/build.sh: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

print_paths() {
    printf 'ROVA_GUEST_KERNEL=%s\n' "$cache/vmlinuz"
    printf 'ROVA_GUEST_INITRD=%s\n' "$cache/initramfs.cpio.gz"
}

[ -f "$init_src" ] || die "missing $init_src"
mkdir -p "$cache"

# One build at a time per cache dir (parallel test runs share it).
exec 9>"$cache/.lock"
if command -v flock >/dev/null 2>&1; then flock 9; fi

stamp=$(cat "${BASH_SOURCE[0]}" "$init_src" | sha256sum | cut -d' ' -f1)
if [ "${ROVA_GUEST_REBUILD:-0}" != 1 ] && [ -f "$cache/stamp" ] &&
   [ "$(cat "$cache/stamp")" = "$stamp" ] && [ -f "$cache/SHA256SUMS" ] &&
   (cd "$cache" && sha256sum --quiet -c SHA256SUMS >/dev/null 2>&1); then
    log "up to date ($(sed -n 's/^kernel_package=//p' "$cache/manifest" 2>/dev/null))"
    print_paths
    exit 0
fi

# ---- host tools -----------------------------------------------------------
missing=""
command -v cpio >/dev/null 2>&1 || missing="$missing cpio"
command -v gzip >/dev/null 2>&1 || missing="$missing gzip"
command -v readelf >/dev/null 2>&1 || missing="$missing binutils"
command -v dpkg-deb >/dev/null 2>&1 || die "dpkg-deb not found (is this Debian?)"
command -v apt-get >/dev/null 2>&1 || die "apt-get not found (is this Debian?)"
apt_updated=0
apt_update() {
    if [ "$apt_updated" = 0 ]; then
        log "apt-get update"
        apt-get update -q >&2
        apt_updated=1
    fi
}
if [ -n "$missing" ]; then
    log "installing:$missing"
    apt_update
    # shellcheck disable=SC2086
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $missing >&2
fi

# ---- resolve and download packages ----------------------------------------
# linux-image-cloud-amd64 is a metapackage; the real kernel is its versioned
# dependency linux-image-<abi>-cloud-amd64.
resolve_kernel() {
    apt-cache depends linux-image-cloud-amd64 2>/dev/null |
        sed -n 's/^ *Depends: \(linux-image-[0-9].*-cloud-amd64\)$/\1/p' | head -n1
}
kpkg=$(resolve_kernel)
if [ -z "$kpkg" ]; then
    apt_update
    kpkg=$(resolve_kernel)
fi
[ -n "$kpkg" ] || die "cannot resolve linux-image-cloud-amd64 (apt lists?)"
kver=${kpkg#linux-image-}
log "kernel package $kpkg"

debs=$cache/debs
mkdir -p "$debs"
fetch_deb() { # $1 = package name; prints the .deb path
    local pkg=$1 ver file
    ver=$(apt-cache policy "$pkg" | sed -n 's/^ *Candidate: //p')
    if [ -z "$ver" ] || [ "$ver" = "(none)" ]; then
        apt_update
        ver=$(apt-cache policy "$pkg" | sed -n 's/^ *Candidate: //p')
    fi
    if [ -z "$ver" ] || [ "$ver" = "(none)" ]; then die "no candidate for $pkg"; fi
    # apt names files pkg_<version with ':' escaped as %3a>_<arch>.deb
    file=$(find "$debs" -maxdepth 1 -name "${pkg}_*${ver#*:}_*.deb" | head -n1)
    if [ -z "$file" ]; then
        log "apt-get download $pkg=$ver"
        # apt's sandbox user cannot write to root's home; it falls back with a warning.
        (cd "$debs" && { apt-get download -q "$pkg=$ver" 2>&1 | grep -v 'unsandboxed' >&2 || true; })
        file=$(find "$debs" -maxdepth 1 -name "${pkg}_*${ver#*:}_*.deb" | head -n1)
        [ -n "$file" ] || die "download of $pkg=$ver failed"
    fi
    printf '%s\n' "$file"
}
kdeb=$(fetch_deb "$kpkg")
bdeb=$(fetch_deb busybox-static)
sdebs=""
for p in $ssh_pkgs; do sdebs="$sdebs $(fetch_deb "$p")"; done

# ---- extract ---------------------------------------------------------------
work=$(mktemp -d "$cache/.work.XXXXXX")
trap 'rm -rf "$work"' EXIT
log "extracting $(basename "$kdeb")"
dpkg-deb -x "$kdeb" "$work/kernel"
dpkg-deb -x "$bdeb" "$work/busybox"
for d in $sdebs; do dpkg-deb -x "$d" "$work/ssh"; done
bb=$work/busybox/bin/busybox
[ -x "$bb" ] || die "busybox-static package has no bin/busybox"
kroot=$work/kernel
[ -f "$kroot/boot/vmlinuz-$kver" ] || die "no boot/vmlinuz-$kver in $kdeb"
mdir=$kroot/lib/modules/$kver
[ -d "$mdir" ] || die "no lib/modules/$kver in $kdeb"
# The .deb ships no modules.dep (the postinst makes it); busybox depmod can.
if [ ! -f "$mdir/modules.dep" ]; then
    "$bb" depmod -b "$kroot" "$kver"
fi

# ---- assemble the initramfs -------------------------------------------------
root=$work/root
mkdir -p "$root/bin" "$root/dev" "$root/proc" "$root/sys" "$root/tmp" "$root/root" \
    "$root/etc" "$root/lib/modules/$kver"
cp "$bb" "$root/bin/busybox"
ln -s busybox "$root/bin/sh"
cp "$init_src" "$root/init"
chmod 0755 "$root/init" "$root/bin/busybox"

included="" builtin=""
for m in $modules; do
    # modules.dep lines: "kernel/path/name.ko: dep1.ko dep2.ko"; '-' and '_'
    # are the same in module names (virtio-rng.ko is module virtio_rng)
    re=$(printf '%s' "$m" | sed 's/[-_]/[-_]/g')
    line=$(grep -E "(^|/)${re}\.ko(\.[a-z]+)?:" "$mdir/modules.dep" || true)
    if [ -z "$line" ]; then
        if grep -qE "(^|/)${re}\.ko$" "$mdir/modules.builtin" 2>/dev/null; then
            builtin="$builtin $m"
            continue
        fi
        die "module $m is neither a module nor built into $kver"
    fi
    for f in $(printf '%s\n' "$line" | tr -d ':'); do
        mkdir -p "$root/lib/modules/$kver/$(dirname "$f")"
        cp "$mdir/$f" "$root/lib/modules/$kver/$f"
    done
    included="$included $m"
done
for f in modules.builtin modules.builtin.modinfo modules.order; do
    [ -f "$mdir/$f" ] && cp "$mdir/$f" "$root/lib/modules/$kver/"
done
"$bb" depmod -b "$root" "$kver"
# the list /init loads, in order (one word a module: split on purpose)
# shellcheck disable=SC2086
printf '%s\n' $included > "$root/etc/rova-modules"
kofiles=$(find "$root/lib/modules" -name '*.ko*' | wc -l)

# ---- dropbear and its shared libraries --------------------------------------------
# Libraries go to /lib/x86_64-linux-gnu (a directory the Debian loader searches
# without ld.so.cache), under their soname; the loader to the path the binaries
# ask for (PT_INTERP, /lib64/ld-linux-x86-64.so.2) as a link to the real file,
# as in libc6.
sroot=$work/ssh
libdir=lib/x86_64-linux-gnu
mkdir -p "$root/$libdir" "$root/usr/bin" "$root/usr/sbin"
find_lib() { # soname -> path in the extracted packages
    local d
    for d in lib/x86_64-linux-gnu usr/lib/x86_64-linux-gnu lib usr/lib; do
        if [ -e "$sroot/$d/$1" ]; then printf '%s\n' "$sroot/$d/$1"; return 0; fi
    done
    return 1
}
needed() { readelf -d "$1" | sed -n 's/.*(NEEDED).*Shared library: \[\(.*\)\]$/\1/p'; }
todo=""
for b in $ssh_bins; do
    [ -f "$sroot/$b" ] || die "no $b in dropbear-bin"
    cp "$sroot/$b" "$root/$b"
    chmod 0755 "$root/$b"
    todo="$todo $root/$b"
done
interp=$(readelf -l "$root/usr/sbin/dropbear" | sed -n 's/.*Requesting program interpreter: \(.*\)\]$/\1/p')
[ "$interp" = /lib64/ld-linux-x86-64.so.2 ] || die "unexpected program interpreter '$interp'"
ldso=$(find_lib ld-linux-x86-64.so.2) || die "no ld-linux-x86-64.so.2 in libc6"
cp -L "$ldso" "$root/$libdir/ld-linux-x86-64.so.2"
mkdir -p "$root/lib64"
ln -s "../$libdir/ld-linux-x86-64.so.2" "$root/lib64/ld-linux-x86-64.so.2"
libs=""
while [ -n "$todo" ]; do
    next=""
    for f in $todo; do
        for so in $(needed "$f"); do
            [ -e "$root/$libdir/$so" ] && continue
            src=$(find_lib "$so") || die "$(basename "$f") needs $so, which none of: $ssh_pkgs has"
            cp -L "$src" "$root/$libdir/$so"
            chmod 0644 "$root/$libdir/$so"
            libs="$libs $so"
            next="$next $root/$libdir/$so"
        done
    done
    todo=$next
done

# Reproducible archive: fixed mtimes, sorted names, no gzip timestamp.
find "$root" -exec touch -h -d @0 {} +
(cd "$root" && find . | LC_ALL=C sort | cpio -o -H newc --quiet --reproducible -R 0:0) |
    gzip -n -9 > "$work/initramfs.cpio.gz"
cp "$kroot/boot/vmlinuz-$kver" "$work/vmlinuz"

# ---- publish ------------------------------------------------------------------
mv -f "$work/vmlinuz" "$cache/vmlinuz"
mv -f "$work/initramfs.cpio.gz" "$cache/initramfs.cpio.gz"
(cd "$cache" && sha256sum vmlinuz initramfs.cpio.gz > SHA256SUMS)
{
    echo "kernel_package=$kpkg"
    echo "kernel_version=$(dpkg-deb -f "$kdeb" Version)"
    echo "kernel_release=$kver"
    echo "busybox_version=$(dpkg-deb -f "$bdeb" Version)"
    for d in $sdebs; do echo "ssh_package=$(dpkg-deb -f "$d" Package)=$(dpkg-deb -f "$d" Version)"; done
    echo "ssh_libs=$(xargs -n1 <<<"$libs" | LC_ALL=C sort | xargs)"
    echo "modules=$(xargs <<<"$included")"
    echo "builtin=$(xargs <<<"$builtin")"
    echo "ko_files=$kofiles"
    echo "initramfs_bytes=$(stat -c %s "$cache/initramfs.cpio.gz")"
    echo "vmlinuz_bytes=$(stat -c %s "$cache/vmlinuz")"
} > "$cache/manifest"
echo "$stamp" > "$cache/stamp"
# drop .debs of older versions
keep=" $kdeb $bdeb $sdebs "
for d in "$debs"/*.deb; do
    case "$keep" in *" $d "*) ;; *) rm -f "$d" ;; esac
done
log "built: $kofiles .ko files, builtin:${builtin:- none}; initramfs $(stat -c %s "$cache/initramfs.cpio.gz") bytes"
print_paths
