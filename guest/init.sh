#!/bin/sh
# Rova test guest /init (busybox ash, PID 1). Built into the initramfs by
# guest/build.sh. It acts as a very small cloud-init: network by DHCP, config
# drive, metadata service, hostname, SSH keys, personality files, user data,
# password, an SSH server (dropbear, root, keys only), then a heartbeat forever.
#
# ---------------------------------------------------------------------------
# Console line protocol (see guest/README.md). Every protocol line is written
# to /dev/console (boot with console=ttyS0) and starts with "ROVA-GUEST: ".
# The serial port adds "\r" before "\n"; parsers should strip it. Fields are
# space separated key=value pairs after a fixed verb; values never contain
# spaces except where noted (dns=, the head= of a disk, script output).
#
#   boot kernel=<release> uptime=<s> boot_id=<uuid>    first line, each boot
#   ip <addr> prefix=<n> iface=<if> router=<gw> dns=<a,b>   DHCP lease, one per
#                                                      NIC that got one
#   mtu <n> iface=<if>                                 MTU from DHCP option 26 set
#   route <dst/len> via <gw> iface=<if>                a route added from DHCP
#                                                      (option 121, else the router
#                                                      as 0.0.0.0/0); gw 0.0.0.0 =
#                                                      on-link
#   ip none                                            no NIC got a DHCP lease
#   configdrive device=<dev> fs=<type> uuid=<u> hostname=<h> name=<n>
#   configdrive none
#   metadata uuid=<u> hostname=<h> name=<n>            from 169.254.169.254
#   metadata none
#   datasource configdrive|metadata|none               what is applied below
#   meta-data-begin source=<ds>                        then base64 lines of the
#   meta-data-end bytes=<n> sha256=<hex>               meta_data.json applied
#   network-data source=<ds> bytes=<n> sha256=<hex>    (if present)
#   hostname <h>                                       hostname was set
#   ssh-key name=<keyname> fingerprint=SHA256:<b64>    one per public key
#   authorized-keys path=/root/.ssh/authorized_keys count=<n> sha256=<hex>
#   file path=<p> bytes=<n> sha256=<hex>               personality file written
#   file path=<p> missing                              listed but not found
#   user-data none
#   user-data-begin source=<ds>                        then base64 lines of the
#   user-data-end bytes=<n> sha256=<hex>               exact user data bytes
#   user-data-script start                             user data began with #!;
#     ...its stdout and stderr, unprefixed...
#   user-data-script exit=<rc>
#   password posted bytes=<n> | password post-failed | password not-requested
#   ssh-server port=22 host-key=<alg> fingerprint=SHA256:<b64>   dropbear listens;
#                                                      one line per host key
#   disk <name> size=<bytes> sectors=<n> ro=<0|1> serial=<s> head=<printable bytes>
#                                                      each disk at boot, and each one
#                                                      hot-plugged later (checked every second)
#   disk <name> removed                                a disk went away (hot-unplug)
#   nic <if> mac=<mac> added                           a NIC hot-plugged after ready
#                                                      (its ip/mtu/route lines follow)
#   nic <if> removed                                   a NIC went away
#   ready uptime=<s>                                   all of the above is done
#   heartbeat <n>                                      every second, n = 0,1,..
#   powerdown                                          ACPI power button seen
#
# A password is posted (POST .../openstack/latest/password) only when the
# meta_data.json "meta" map has the key "rova_password"; its value is posted
# as is. The heartbeat counter lives in this shell's memory: it continues
# across pause/resume, save/restore and live migration, and restarts at 0 on
# a reboot (together with a new boot_id).
# ---------------------------------------------------------------------------

PATH=/bin:/sbin:/usr/bin:/usr/sbin
export PATH
/bin/busybox mkdir -p /proc /sys /dev /tmp /run /root /etc /sbin /usr/bin /usr/sbin \
    /mnt/config /var/lib/rova
/bin/busybox --install -s
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
mkdir -p /dev/pts /var/log /var/run
mount -t devpts devpts /dev/pts 2>/dev/null
exec </dev/console >/dev/console 2>&1
# keep kernel messages from interleaving with protocol lines (emergencies still print)
grep -q 'rova.debug' /proc/cmdline || echo 1 > /proc/sys/kernel/printk

MD=http://169.254.169.254
CD=/mnt/config

say() { echo "ROVA-GUEST: $*"; }
uptime_s() { cut -d' ' -f1 /proc/uptime; }
sha() { sha256sum "$1" | cut -d' ' -f1; }
size() { wc -c < "$1" | tr -d ' '; }
# busybox 1.35 "wget -T" segfaults, so bound the time with timeout instead
fetch() { rm -f "$2"; timeout 5 wget -q -O "$2" "$1" 2>/dev/null && [ -f "$2" ]; }
# SHA256 fingerprint of an SSH public key blob (base64), as ssh-keygen -l shows it
keyfp() { printf '%s' "$1" | base64 -d 2>/dev/null | sha256sum | cut -c1-64 | xxd -r -p | base64 | tr -d '=\n'; }

# firmware (SeaBIOS with -nographic) may leave escape codes without a newline
echo
say "boot kernel=$(uname -r) uptime=$(uptime_s) boot_id=$(cat /proc/sys/kernel/random/boot_id)"

# ---- JSON: a tiny reader in awk ---------------------------------------------
# awk -f /etc/rova/json.awk FILE          prints "path<TAB>value" for every
#     scalar (path like files.0.path, public_keys.mykey; values escaped \n \t \\)
# awk -v want=PATH -f ... FILE            prints that value raw; exit 1 if absent
mkdir -p /etc/rova
cat > /etc/rova/json.awk <<'EOF'
function skip() { while (pos <= n && index(" \t\r\n", substr(s, pos, 1)) > 0) pos++ }
function hexval(h,   i, c, v) {
    v = 0; h = tolower(h)
    for (i = 1; i <= length(h); i++) {
        c = index("0123456789abcdef", substr(h, i, 1))
        if (c == 0) return 63
        v = v * 16 + c - 1
    }
    return v
}
function utf8(c) {
    if (c < 1) return ""
    if (c < 128) return sprintf("%c", c)
    if (c < 2048) return sprintf("%c%c", 192 + int(c / 64), 128 + c % 64)
    return sprintf("%c%c%c", 224 + int(c / 4096), 128 + int(c / 64) % 64, 128 + c % 64)
}
function jstring(   out, c, e) {
    pos++
    out = ""
    while (pos <= n) {
        c = substr(s, pos, 1)
        if (c == "\"") { pos++; return out }
        if (c == "\\") {
            e = substr(s, pos + 1, 1); pos += 2
            if (e == "n") out = out "\n"
            else if (e == "t") out = out "\t"
            else if (e == "r") out = out "\r"
            else if (e == "b") out = out "\b"
            else if (e == "f") out = out "\f"
            else if (e == "u") { out = out utf8(hexval(substr(s, pos, 4))); pos += 4 }
            else out = out e
            continue
        }
        out = out c; pos++
    }
    return out
}
function esc(v,   i, c, o) {
    o = ""
    for (i = 1; i <= length(v); i++) {
        c = substr(v, i, 1)
        if (c == "\\") o = o "\\\\"
        else if (c == "\n") o = o "\\n"
        else if (c == "\t") o = o "\\t"
        else if (c == "\r") o = o "\\r"
        else o = o c
    }
    return o
}
function emit(path, v) {
    if (want != "") { if (path == want && !found) { printf "%s", v; found = 1 } return }
    print path "\t" esc(v)
}
function sub_path(path, k) { if (path == "") return k; return path "." k }
function value(path,   c, k, i, start) {
    skip(); c = substr(s, pos, 1)
    if (c == "{") {
        pos++; skip()
        if (substr(s, pos, 1) == "}") { pos++; return }
        while (pos <= n) {
            skip(); k = jstring(); skip(); pos++
            value(sub_path(path, k))
            skip(); c = substr(s, pos, 1); pos++
            if (c != ",") return
        }
        return
    }
    if (c == "[") {
        pos++; skip(); i = 0
        if (substr(s, pos, 1) == "]") { pos++; return }
        while (pos <= n) {
            value(sub_path(path, i)); i++
            skip(); c = substr(s, pos, 1); pos++
            if (c != ",") return
        }
        return
    }
    if (c == "\"") { emit(path, jstring()); return }
    start = pos
    while (pos <= n && index(",}] \t\r\n", substr(s, pos, 1)) == 0) pos++
    emit(path, substr(s, start, pos - start))
}
{ s = s $0 "\n" }
END { n = length(s); pos = 1; found = 0; value(""); if (want != "" && !found) exit 1 }
EOF
jget() { awk -v want="$2" -f /etc/rova/json.awk "$1" 2>/dev/null; }
jkeys() { # direct children of $2 (an object or array path) in file $1
    awk -f /etc/rova/json.awk "$1" 2>/dev/null | cut -f1 | sed -n "s/^$2\.\([^.]*\).*/\1/p" | uniq
}

# ---- modules ----------------------------------------------------------------
[ -f /etc/rova-modules ] && while read -r m; do
    [ -n "$m" ] && { modprobe "$m" 2>/dev/null || say "warn modprobe $m failed"; }
done < /etc/rova-modules

# ---- root account and SSH host keys -----------------------------------------------
# root: home /root, shell /bin/sh, no password ("*": no password matches it, and
# unlike "!" dropbear does not take it for a locked account). The host keys are
# new on every boot; they are made in the background while the network and the
# metadata are set up. RSA is left out: making an RSA key takes seconds under
# TCG; dropbear makes one only if a client asks for an RSA host key (-R).
echo 'root:x:0:0:root:/root:/bin/sh' > /etc/passwd
echo 'root:*:0:0:99999:7:::' > /etc/shadow
chmod 600 /etc/shadow
echo 'root:x:0:' > /etc/group
printf '/bin/sh\n/bin/ash\n' > /etc/shells
chmod 700 /root
hostkey_types="ed25519 ecdsa"
mkdir -p /etc/dropbear
(for t in $hostkey_types; do
    # it prints the public key line ("<alg> <base64> root@<host>") on stdout
    dropbearkey -t "$t" -f "/etc/dropbear/dropbear_${t}_host_key" 2>/dev/null |
        grep -E '^(ssh|ecdsa)-' > "/run/hostkey-$t.pub"
done) &
keygen_pid=$!

# ---- ACPI power button -> clean power off (needs button + evdev modules) -----
mkdir -p /etc/acpi/PWRF
cat > /etc/acpi/PWRF/00000080 <<'EOF'
#!/bin/sh
echo "ROVA-GUEST: powerdown" > /dev/console
sync
poweroff -f
EOF
chmod +x /etc/acpi/PWRF/00000080
acpid -c /etc/acpi -l /tmp/acpid.log 2>/dev/null || say "warn acpid failed"

# ---- network ------------------------------------------------------------------
# busybox udhcpc on every interface, all at once, one lease each (-q: no
# renewals; the address is kept). It asks for option 121 (classless static
# routes) and 26 (MTU) besides the defaults. The hook below applies a lease:
#   - the MTU (option 26) with "ip link set mtu";
#   - option 121 when present: its routes ("dst/len gw ..."; gw 0.0.0.0 means
#     on-link; those are added first), and then, as RFC 3442 says, the router
#     option is ignored; without option 121, a default route via the router;
#   - routes are added with "ip route add", never replaced: the first NIC that
#     gets a route (the default one too) keeps it. The NICs found at boot take
#     turns for their routes in name order (eth1 waits until eth0's DHCP is
#     over), so eth0 keeps the default route whichever lease comes first;
#   - nameservers are appended to /etc/resolv.conf (eth0's first).
mkdir -p /run/dhcp
cat > /etc/udhcpc.script <<'EOS'
#!/bin/sh
say() { echo "ROVA-GUEST: $*" > /dev/console; }
wait_turn() { # until every NIC before this one in /run/dhcp/order is done (at most ~15 s)
    for o in $(cat /run/dhcp/order 2>/dev/null); do
        [ "$o" = "$interface" ] && return 0
        t=0
        while [ -e "/run/dhcp/$o.busy" ] && [ "$t" -lt 150 ]; do sleep 0.1; t=$((t + 1)); done
    done
}
lines=""
add_route() { # add_route <dst/len> <gw>; gw 0.0.0.0 = on-link
    case "$1" in 0.0.0.0/0) dst=default ;; *) dst=$1 ;; esac
    if [ "$2" = 0.0.0.0 ]; then
        ip route add "$dst" dev "$interface" 2>/dev/null || return 0
    else
        ip route add "$dst" via "$2" dev "$interface" 2>/dev/null || return 0
    fi
    lines="$lines route $1 via $2 iface=$interface;"
}
case "$1" in
deconfig)
    ip addr flush dev "$interface"
    ip link set "$interface" up
    ;;
bound|renew)
    ip addr flush dev "$interface"
    mtu_set=""
    if [ -n "$mtu" ] && ip link set dev "$interface" mtu "$mtu" 2>/dev/null; then mtu_set=$mtu; fi
    ip addr add "$ip/${mask:-24}" dev "$interface"
    wait_turn
    if [ -n "$staticroutes" ]; then
        # pairs "dst/len gw", split on purpose
        set -- $staticroutes
        while [ $# -ge 2 ]; do [ "$2" = 0.0.0.0 ] && add_route "$1" "$2"; shift 2; done
        set -- $staticroutes
        while [ $# -ge 2 ]; do [ "$2" != 0.0.0.0 ] && add_route "$1" "$2"; shift 2; done
    elif [ -n "$router" ]; then
        add_route 0.0.0.0/0 "${router%% *}"
    fi
    for d in $dns; do
        grep -qx "nameserver $d" /etc/resolv.conf 2>/dev/null || echo "nameserver $d" >> /etc/resolv.conf
    done
    say "ip $ip prefix=${mask:-24} iface=$interface router=${router%% *} dns=$(echo $dns | tr ' ' ',')"
    [ -z "$mtu_set" ] || say "mtu $mtu_set iface=$interface"
    IFS=';'
    for l in $lines; do [ -z "$l" ] || say "${l# }"; done
    : > /run/dhcp-ok
    ;;
esac
EOS
chmod +x /etc/udhcpc.script
# dhcp_start <iface>: one lease attempt in the background (about 4 s when no
# DHCP server answers); /run/dhcp/<iface>.busy exists while it runs
dhcp_start() {
    : > "/run/dhcp/$1.busy"
    ip link set "$1" up
    (udhcpc -i "$1" -n -q -t 4 -T 1 -O staticroutes -O mtu -s /etc/udhcpc.script \
        >/dev/null 2>&1; rm -f "/run/dhcp/$1.busy") &
}
nic_names() { # the network interfaces except lo, one a line, in name order
    for d in /sys/class/net/*; do
        [ -e "$d" ] || continue
        [ "${d##*/}" = lo ] || echo "${d##*/}"
    done
}
ip link set lo up
: > /etc/resolv.conf
nics=""
for i in 1 2 3 4 5 6 7 8 9 10; do
    nics=$(nic_names)
    [ -n "$nics" ] && break
    sleep 0.2
done
printf '%s\n' "$nics" > /run/dhcp/order
dhcp_pids=""
for n in $nics; do dhcp_start "$n"; dhcp_pids="$dhcp_pids $!"; done
# shellcheck disable=SC2086 # a list of pids
[ -z "$dhcp_pids" ] || wait $dhcp_pids
[ -f /run/dhcp-ok ] || say "ip none"

# ---- config drive (label config-2, iso9660 or vfat) ------------------------------
# virtio disks exist once virtio_blk is loaded; an IDE/SCSI CD-ROM is probed
# asynchronously, so retry for about 2 s before deciding there is none
cd_dev=""
for i in $(seq 1 20); do
    cd_dev=$(findfs LABEL=config-2 2>/dev/null) && [ -n "$cd_dev" ] && break
    cd_dev=""
    sleep 0.1
done
cd_ok=0
if [ -n "$cd_dev" ]; then
    for t in iso9660 vfat; do
        if mount -t "$t" -o ro "$cd_dev" "$CD" 2>/dev/null; then cd_fs=$t; cd_ok=1; break; fi
    done
    [ "$cd_ok" = 1 ] || say "warn cannot mount $cd_dev"
fi
if [ "$cd_ok" = 1 ] && [ -f "$CD/openstack/latest/meta_data.json" ]; then
    f=$CD/openstack/latest/meta_data.json
    say "configdrive device=$cd_dev fs=$cd_fs uuid=$(jget "$f" uuid) hostname=$(jget "$f" hostname) name=$(jget "$f" name)"
else
    say "configdrive none"
    cd_ok=0
fi

# ---- metadata service -------------------------------------------------------------
md_ok=0
for i in 1 2 3; do
    if fetch "$MD/openstack/latest/meta_data.json" /tmp/md-meta.json && [ -s /tmp/md-meta.json ]; then
        md_ok=1; break
    fi
    sleep 1
done
if [ "$md_ok" = 1 ]; then
    f=/tmp/md-meta.json
    say "metadata uuid=$(jget "$f" uuid) hostname=$(jget "$f" hostname) name=$(jget "$f" name)"
else
    say "metadata none"
fi

# ---- choose the data source: config drive first, as cloud-init does ----------------
if [ "$cd_ok" = 1 ]; then
    ds=configdrive
    META=$CD/openstack/latest/meta_data.json
elif [ "$md_ok" = 1 ]; then
    ds=metadata
    META=/tmp/md-meta.json
else
    ds=none
    META=""
fi
say "datasource $ds"

# get_item <path below openstack/> <dest>: from the chosen data source
get_item() {
    case "$ds" in
    configdrive) [ -f "$CD/openstack/$1" ] && cp "$CD/openstack/$1" "$2" ;;
    metadata) fetch "$MD/openstack/$1" "$2" ;;
    *) return 1 ;;
    esac
}
dump() { # dump <tag> <file>: base64 block between markers
    say "$1-begin source=$ds"
    base64 "$2"
    say "$1-end bytes=$(size "$2") sha256=$(sha "$2")"
}

if [ -n "$META" ]; then
    dump meta-data "$META"
    if get_item latest/network_data.json /tmp/network_data.json; then
        say "network-data source=$ds bytes=$(size /tmp/network_data.json) sha256=$(sha /tmp/network_data.json)"
    fi

    # hostname
    h=$(jget "$META" hostname)
    [ -n "$h" ] || h=$(jget "$META" name)
    if [ -n "$h" ]; then
        hostname "$h" && echo "$h" > /etc/hostname && say "hostname $h"
    fi

    # SSH public keys -> /root/.ssh/authorized_keys
    mkdir -p /root/.ssh
    chmod 700 /root/.ssh
    : > /root/.ssh/authorized_keys
    count=0
    for k in $(jkeys "$META" public_keys); do
        key=$(jget "$META" "public_keys.$k")
        [ -n "$key" ] || continue
        printf '%s\n' "$key" | sed '/^$/d' >> /root/.ssh/authorized_keys
        blob=$(printf '%s\n' "$key" | head -n1 | cut -d' ' -f2)
        say "ssh-key name=$k fingerprint=SHA256:$(keyfp "$blob")"
        count=$((count + 1))
    done
    chmod 600 /root/.ssh/authorized_keys
    say "authorized-keys path=/root/.ssh/authorized_keys count=$count sha256=$(sha /root/.ssh/authorized_keys)"

    # personality files: meta_data "files": [{"path": ..., "content_path": "/content/NNNN"}]
    for i in $(jkeys "$META" files); do
        p=$(jget "$META" "files.$i.path")
        c=$(jget "$META" "files.$i.content_path")
        [ -n "$p" ] || continue
        mkdir -p "$(dirname "$p")"
        if [ -n "$c" ] && get_item "${c#/}" "$p"; then
            say "file path=$p bytes=$(size "$p") sha256=$(sha "$p")"
        else
            say "file path=$p missing"
        fi
    done
fi

# ---- user data ----------------------------------------------------------------------
ud=/var/lib/rova/user-data
if [ -n "$META" ] && get_item latest/user_data "$ud" && [ -s "$ud" ]; then
    dump user-data "$ud"
    if [ "$(head -c 2 "$ud")" = "#!" ]; then
        chmod 700 "$ud"
        say "user-data-script start"
        (cd / && HOME=/root "$ud" </dev/null)
        say "user-data-script exit=$?"
    fi
else
    say "user-data none"
fi

# ---- password -----------------------------------------------------------------------
if [ "$md_ok" = 1 ] && pw=$(jget "$META" meta.rova_password); then
    if timeout 5 wget -q -O /tmp/pw-resp --post-data="$pw" "$MD/openstack/latest/password" 2>/dev/null; then
        say "password posted bytes=${#pw}"
    else
        say "password post-failed"
    fi
else
    say "password not-requested"
fi

# ---- SSH server (dropbear) ----------------------------------------------------------
# root logs in with the keys from public_keys only (-s: no password logins).
wait "$keygen_pid"
for t in $hostkey_types; do
    # shellcheck disable=SC2046 # "alg base64 comment"
    set -- $(cat "/run/hostkey-$t.pub" 2>/dev/null)
    if [ -n "${2:-}" ]; then
        echo "$1 $(keyfp "$2")" >> /run/hostkeys
    else
        say "warn ssh host key $t missing"
    fi
done
dropbear -F -E -R -s -p 22 -P /run/dropbear.pid </dev/null >/dev/null 2>>/var/log/dropbear.log &
# 0016 = port 22, 0A = LISTEN in /proc/net/tcp
for i in $(seq 1 100); do
    grep -q '^ *[0-9]*: [0-9A-F]*:0016 [0-9A-F]*:0000 0A ' /proc/net/tcp && break
    sleep 0.02
done
if grep -q '^ *[0-9]*: [0-9A-F]*:0016 [0-9A-F]*:0000 0A ' /proc/net/tcp; then
    while read -r t f; do say "ssh-server port=22 host-key=$t fingerprint=SHA256:$f"; done < /run/hostkeys
else
    say "warn ssh server not listening"
fi

# ---- disks (e.g. a root disk a user-data script wrote a marker to) --------------------
# The disks now present, one name per line (the config drive left out).
disk_names() {
    for b in /sys/block/*; do
        name=${b##*/}
        case "$name" in vd*|sd*|sr*|hd*) ;; *) continue ;; esac
        [ "/dev/$name" = "$cd_dev" ] && continue
        echo "$name"
    done
}
disk_line() {
    b=/sys/block/$1
    sectors=$(cat "$b/size")
    head=$(dd if="/dev/$1" bs=64 count=1 2>/dev/null | tr -cd 'A-Za-z0-9._:=+-')
    say "disk $1 size=$((sectors * 512)) sectors=$sectors ro=$(cat "$b/ro") serial=$(cat "$b/serial" 2>/dev/null) head=$head"
}
nl='
'
disks=$(disk_names)
for name in $disks; do disk_line "$name"; done

say "ready uptime=$(uptime_s)"

# ---- heartbeat, forever (PID 1 must never exit) -----------------------------------------
# Each second also reports disks that came (hot-plug) or went (hot-unplug).
n=0
while :; do
    say "heartbeat $n"
    now=$(disk_names)
    if [ "$now" != "$disks" ]; then
        # the lists are one name per line: match whole lines
        for name in $now; do
            case "$nl$disks$nl" in *"$nl$name$nl"*) ;; *) disk_line "$name" ;; esac
        done
        for name in $disks; do
            case "$nl$now$nl" in *"$nl$name$nl"*) ;; *) say "disk $name removed" ;; esac
        done
        disks=$now
    fi
    # network interfaces likewise: DHCP on a new one (in the background)
    now=$(nic_names)
    if [ "$now" != "$nics" ]; then
        for name in $now; do
            case "$nl$nics$nl" in *"$nl$name$nl"*) ;; *)
                say "nic $name mac=$(cat "/sys/class/net/$name/address") added"
                dhcp_start "$name" ;;
            esac
        done
        for name in $nics; do
            case "$nl$now$nl" in *"$nl$name$nl"*) ;; *) say "nic $name removed" ;; esac
        done
        nics=$now
    fi
    n=$((n + 1))
    sleep 1
done
