#!/usr/bin/env bash
# Boot the guest from guest/build.sh under QEMU (TCG) and check its console and
# its SSH server:
#   run 1: config drive (ISO9660, label config-2) + metadata service, script user
#          data; SSH as root with RSA, ed25519 and ECDSA P-256/P-384/P-521 keys,
#          host key fingerprints, a password login refused, ping
#   run 2: metadata service only, plain (non-script) user data, two NICs (both
#          slirp): an ip line each, one default route (eth0's); a third NIC
#          hot-plugged and unplugged over QMP
#   run 3 + run 4 (at the same time): run 3 is a DHCP server (busybox udhcpd
#          and httpd, started by its user data) on a second NIC that a QEMU socket
#          netdev joins to run 4's first NIC. udhcpd sends option 121 (classless
#          static routes, one of them 169.254.169.254/32), a router option that
#          option 121 must override, and an MTU, as Rova's dnsmasq does. run 4
#          gets its metadata (and its SSH key) from run 3's httpd through that
#          /32 route.
# The metadata service is a small Python HTTP server on 127.0.0.1, reached from the
# guest through slirp guestfwd with a per-VM `cmd:` connector (socat). SSH goes
# through a slirp hostfwd on 127.0.0.1.
# Needs: qemu-system-x86_64, genisoimage, socat, python3, ssh, ssh-keygen,
# ssh-keyscan.
# Usage: guest/smoke.sh            (ROVA_SMOKE_DIR to keep the scratch dir)
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
eval "$(bash "$here/build.sh")"
dir=${ROVA_SMOKE_DIR:-$(mktemp -d /tmp/rova-smoke.XXXXXX)}
mkdir -p "$dir"
accel=${ROVA_GUEST_ACCEL:-tcg}
pids=()
cleanup() {
    local p
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    [ -n "${ROVA_SMOKE_DIR:-}" ] || rm -rf "$dir"
}
trap cleanup EXIT
fail=0
ok() { echo "  ok    $*"; }
bad() { echo "  FAIL  $*"; fail=1; }
check() { # check <run> <regex>
    if tr -d '\r' < "$dir/$1.serial" | grep -qE "$2"; then ok "$2"; else bad "$2"; fi
}
check_not() { # check_not <run> <regex>
    if tr -d '\r' < "$dir/$1.serial" | grep -qE "$2"; then bad "unexpected: $2"; else ok "absent: $2"; fi
}
free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
# serial console lines without the prefix and \r
proto() { tr -d '\r' < "$dir/$1.serial" | sed -n 's/^.*ROVA-GUEST: //p'; }

# ---- metadata service ----------------------------------------------------------
cat > "$dir/mdserver.py" <<'EOF'
import http.server, os, sys
root, port = sys.argv[1], int(sys.argv[2])
class H(http.server.BaseHTTPRequestHandler):
    def _path(self):
        return os.path.join(root, self.path.lstrip('/'))
    def do_GET(self):
        p = self._path()
        if not os.path.isfile(p):
            self.send_response(404); self.send_header('Content-Length', '0'); self.end_headers(); return
        data = open(p, 'rb').read()
        self.send_response(200); self.send_header('Content-Length', str(len(data))); self.end_headers()
        self.wfile.write(data)
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get('Content-Length', 0)))
        if self.path.rstrip('/') != '/openstack/latest/password':
            self.send_response(404); self.send_header('Content-Length', '0'); self.end_headers(); return
        with open(self._path(), 'wb') as f:
            f.write(body)
        self.send_response(200); self.send_header('Content-Length', '0'); self.end_headers()
    def log_message(self, *a):
        pass
http.server.HTTPServer(('127.0.0.1', port), H).serve_forever()
EOF

# ---- QMP: qmp.py <socket> <command> [json arguments] ----------------------------
cat > "$dir/qmp.py" <<'EOF'
import json, socket, sys
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); f = s.makefile('rw')
def call(cmd, args=None):
    msg = {'execute': cmd}
    if args: msg['arguments'] = args
    f.write(json.dumps(msg) + '\n'); f.flush()
    while True:
        r = json.loads(f.readline())
        if 'return' in r or 'error' in r: return r
f.readline(); call('qmp_capabilities')
r = call(sys.argv[2], json.loads(sys.argv[3]) if len(sys.argv) > 3 else None)
print(json.dumps(r)); sys.exit(0 if 'return' in r else 1)
EOF

# ---- keys: the user keys SSH must accept (Tempest's default is ECDSA P-384) ------
keytypes="ecdsa384 ed25519 rsa ecdsa256 ecdsa521"
for k in $keytypes; do
    case $k in
    ecdsa*) ssh-keygen -q -t ecdsa -b "${k#ecdsa}" -N '' -C "rova-smoke-$k" -f "$dir/key_$k" ;;
    rsa) ssh-keygen -q -t rsa -b 2048 -N '' -C "rova-smoke-$k" -f "$dir/key_$k" ;;
    *) ssh-keygen -q -t "$k" -N '' -C "rova-smoke-$k" -f "$dir/key_$k" ;;
    esac
done
fp_of() { ssh-keygen -lf "$1" | cut -d' ' -f2; }
# shellcheck disable=SC2016  # a sed program
re() { printf '%s' "$1" | sed 's/[][+.*^$()|?{}\\]/\\&/g'; }  # a string as an ERE
# public_keys / keys JSON for the given key names
public_keys_json() {
    local k sep=""
    for k in "$@"; do printf '%s"%s": "%s\\n"' "$sep" "$k" "$(cat "$dir/key_$k.pub")"; sep=", "; done
}
keys_json() {
    local k sep=""
    for k in "$@"; do
        printf '%s{"name": "%s", "type": "ssh", "data": "%s\\n"}' "$sep" "$k" "$(cat "$dir/key_$k.pub")"; sep=", "
    done
}

make_tree() { # make_tree <dir> <uuid> <hostname> <user_data file> <key names...>
    local t=$1 u=$2 h=$3 ud=$4
    shift 4
    mkdir -p "$t/openstack/latest" "$t/openstack/content"
    cat > "$t/openstack/latest/meta_data.json" <<EOF
{"uuid": "$u", "name": "$h", "hostname": "$h.novalocal", "launch_index": 0, "availability_zone": "nova", "project_id": "p1", "public_keys": {$(public_keys_json "$@")}, "keys": [$(keys_json "$@")], "files": [{"path": "/etc/rova/personality.txt", "content_path": "/content/0000"}], "meta": {"rova_password": "s3cret-$u"}, "devices": []}
EOF
    printf 'personality of %s\n' "$u" > "$t/openstack/content/0000"
    cp "$ud" "$t/openstack/latest/user_data"
    echo '{"links": [], "networks": [], "services": []}' > "$t/openstack/latest/network_data.json"
}

# boot <run> <mdport|-> [extra qemu args...]: starts QEMU, waits for `ready` and
# 3 heartbeats; the QEMU pid is left in qpid_<run>. With an mdport, NIC 0 is slirp
# with the metadata guestfwd (and hostfwd to port 22 when $sshport is set);
# with "-", the caller's arguments give every NIC.
boot() {
    local run=$1 port=$2; shift 2
    local t0 t1 waited=0 net=()
    if [ "$port" != - ]; then
        local nd="user,id=n0,net=169.254.0.0/16,guestfwd=tcp:169.254.169.254:80-cmd:socat - TCP:127.0.0.1:$port"
        nd="$nd${sshport:+,hostfwd=tcp:127.0.0.1:$sshport-:22}"
        net=(-netdev "$nd" -device "virtio-net-pci,netdev=n0")
    fi
    t0=$(date +%s.%N)
    qemu-system-x86_64 -name "$run" -accel "$accel" -m 256 -smp 1 -nodefaults -no-user-config \
        -kernel "$ROVA_GUEST_KERNEL" -initrd "$ROVA_GUEST_INITRD" \
        -append 'console=ttyS0 quiet panic=-1' \
        -chardev "file,id=ser0,path=$dir/$run.serial" -serial chardev:ser0 \
        -display none "${net[@]}" "$@" > "$dir/$run.qemu.log" 2>&1 &
    local qpid=$!
    pids+=("$qpid")
    printf -v "qpid_$run" '%s' "$qpid"
    until grep -q 'ROVA-GUEST: ready' "$dir/$run.serial" 2>/dev/null; do
        sleep 0.05
        if ! kill -0 "$qpid" 2>/dev/null; then echo "qemu exited:"; cat "$dir/$run.qemu.log"; return 1; fi
        waited=$((waited + 1))
        [ "$waited" -lt 1200 ] || { echo "timeout waiting for ready"; break; }
    done
    t1=$(date +%s.%N)
    printf '%s: exec -> ready %.2f s (guest %s)\n' "$run" "$(awk "BEGIN{print $t1 - $t0}")" \
        "$(grep -o 'ready uptime=[0-9.]*' "$dir/$run.serial" | head -n1)"
    until grep -q 'ROVA-GUEST: heartbeat 2' "$dir/$run.serial" 2>/dev/null; do sleep 0.1; done
    printf '%s: qemu rss %s KiB\n' "$run" "$(awk '/VmRSS/{print $2}' "/proc/$qpid/status")"
}
stop() { # stop <run>
    local v="qpid_$1"
    kill "${!v}" 2>/dev/null || true
    wait "${!v}" 2>/dev/null || true
}
wait_line() { # wait_line <run> <regex> <seconds>
    local _
    for _ in $(seq 1 $(($3 * 10))); do
        grep -qE "$2" "$dir/$1.serial" 2>/dev/null && return 0
        sleep 0.1
    done
    return 1
}
# gssh <port> <key name> [ssh args...]: as root, no host key checks, no agent
gssh() {
    local port=$1 key=$2; shift 2
    ssh -n -F /dev/null -p "$port" -i "$dir/key_$key" -o IdentitiesOnly=yes -o IdentityAgent=none \
        -o BatchMode=yes -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null \
        -o LogLevel=ERROR -o ConnectTimeout=30 root@127.0.0.1 "$@"
}

# ---- run 1: config drive + metadata, script user data, SSH ----------------------
u1=11111111-2222-3333-4444-555555555555
# The user data also gives root a password, so that the password login below
# is refused by the server's configuration and not for want of a password.
# shellcheck disable=SC2016  # $(hostname) is for the guest's shell
printf '#!/bin/sh\necho "user script says hi from $(hostname)"\necho RUN-MARKER > /tmp/marker\necho "root:$(mkpasswd -m sha512 rova-smoke-pw):0:0:99999:7:::" > /etc/shadow\nexit 3\n' > "$dir/ud1"
# shellcheck disable=SC2086  # key names
make_tree "$dir/cd1" "$u1" smoke-one "$dir/ud1" $keytypes
genisoimage -quiet -o "$dir/cd1.iso" -ldots -allow-lowercase -allow-multidot -l -J -r -V config-2 "$dir/cd1"
port1=$(free_port)
python3 "$dir/mdserver.py" "$dir/cd1" "$port1" & pids+=("$!")
sleep 0.3
sshport=$(free_port)
boot run1 "$port1" -drive "file=$dir/cd1.iso,if=virtio,format=raw,readonly=on"
ud1sha=$(sha256sum "$dir/ud1" | cut -d' ' -f1)
echo "run1 checks:"
check run1 '^ROVA-GUEST: boot kernel='
check run1 '^ROVA-GUEST: ip 169\.254\.[0-9.]+ prefix=16 iface=eth0 router=169\.254\.2\.2 '
check run1 '^ROVA-GUEST: route 0\.0\.0\.0/0 via 169\.254\.2\.2 iface=eth0'
check run1 "^ROVA-GUEST: configdrive device=/dev/vd[a-z] fs=iso9660 uuid=$u1 hostname=smoke-one.novalocal name=smoke-one"
check run1 "^ROVA-GUEST: metadata uuid=$u1 hostname=smoke-one.novalocal name=smoke-one"
check run1 '^ROVA-GUEST: datasource configdrive'
check run1 '^ROVA-GUEST: hostname smoke-one.novalocal'
for k in $keytypes; do
    check run1 "^ROVA-GUEST: ssh-key name=$k fingerprint=$(re "$(fp_of "$dir/key_$k.pub")")"
done
check run1 '^ROVA-GUEST: authorized-keys path=/root/.ssh/authorized_keys count=5 '
check run1 "^ROVA-GUEST: file path=/etc/rova/personality.txt bytes=[0-9]+ sha256=$(sha256sum "$dir/cd1/openstack/content/0000" | cut -d' ' -f1)"
check run1 "^ROVA-GUEST: user-data-end bytes=$(wc -c < "$dir/ud1") sha256=$ud1sha"
check run1 '^user script says hi from smoke-one.novalocal'
check run1 '^ROVA-GUEST: user-data-script exit=3'
check run1 "^ROVA-GUEST: password posted bytes=$((7 + ${#u1}))"
check run1 '^ROVA-GUEST: ssh-server port=22 host-key=ssh-ed25519 fingerprint=SHA256:'
check run1 '^ROVA-GUEST: ssh-server port=22 host-key=ecdsa-sha2-nistp256 fingerprint=SHA256:'
check run1 '^ROVA-GUEST: ready uptime='
check run1 '^ROVA-GUEST: heartbeat 2'
if [ "$(cat "$dir/cd1/openstack/latest/password" 2>/dev/null)" = "s3cret-$u1" ]; then
    ok "metadata server received the password"
else
    bad "metadata server did not receive the password"
fi
# user data decoded from the console, byte for byte
tr -d '\r' < "$dir/run1.serial" | sed -n '/^ROVA-GUEST: user-data-begin/,/^ROVA-GUEST: user-data-end/p' |
    sed '1d;$d' | base64 -d > "$dir/ud1.back"
if cmp -s "$dir/ud1" "$dir/ud1.back"; then ok "user data decoded from console matches"; else bad "user data decode"; fi
# the ssh-server lines come before ready
if proto run1 | sed -n '/^ssh-server/,$p' | grep -q '^ready '; then ok "ssh-server lines before ready"; else bad "ssh-server lines not before ready"; fi

echo "run1 SSH (root@127.0.0.1:$sshport):"
boot_id=$(proto run1 | sed -n 's/^boot .* boot_id=\([0-9a-f-]*\)$/\1/p' | tail -n1)
for k in $keytypes; do
    t0=$(date +%s.%N)
    got=$(gssh "$sshport" "$k" cat /proc/sys/kernel/random/boot_id 2>"$dir/ssh_$k.err" || true)
    t1=$(date +%s.%N)
    if [ -n "$boot_id" ] && [ "$got" = "$boot_id" ]; then
        ok "$(printf 'ssh with %s key: boot_id %s matches the console (%.1f s)' "$(ssh-keygen -lf "$dir/key_$k.pub" | awk '{print $NF, $1}')" "$got" "$(awk "BEGIN{print $t1 - $t0}")")"
    else
        bad "ssh with $k key: got '$got', console boot_id '$boot_id': $(tr '\n' ' ' < "$dir/ssh_$k.err")"
    fi
done
# host keys: what the server presents is what the console printed
for t in ed25519 ecdsa; do
    got=$(ssh-keyscan -p "$sshport" -t "$t" 127.0.0.1 2>/dev/null | ssh-keygen -lf - 2>/dev/null | cut -d' ' -f2)
    if [ -n "$got" ] && proto run1 | grep -qE "^ssh-server port=22 host-key=[a-z0-9-]+ fingerprint=$(re "$got")\$"; then
        ok "ssh-keyscan $t host key $got is on the console"
    else
        bad "ssh-keyscan $t host key '$got' is not on the console"
    fi
done
# a password login (root has one now, see ud1) is refused without even asking:
# the server offers publickey only, so askpass is never run
printf '#!/bin/sh\necho asked >> %s/askpass.log\necho rova-smoke-pw\n' "$dir" > "$dir/askpass"
chmod +x "$dir/askpass"
rc=0
SSH_ASKPASS="$dir/askpass" SSH_ASKPASS_REQUIRE=force DISPLAY=none \
    ssh -n -F /dev/null -p "$sshport" -o PubkeyAuthentication=no -o IdentityAgent=none \
    -o PreferredAuthentications=password,keyboard-interactive -o NumberOfPasswordPrompts=1 \
    -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o ConnectTimeout=30 \
    root@127.0.0.1 true > /dev/null 2> "$dir/ssh_pw.err" || rc=$?
if [ "$rc" != 0 ] && grep -q 'Permission denied (publickey)' "$dir/ssh_pw.err" && [ ! -e "$dir/askpass.log" ]; then
    ok "password login refused: $(grep -o 'Permission denied (publickey)' "$dir/ssh_pw.err")"
else
    bad "password login: rc=$rc $(tr '\n' ' ' < "$dir/ssh_pw.err") askpass: $(cat "$dir/askpass.log" 2>/dev/null)"
fi
# shellcheck disable=SC2016  # for the guest's shell
if gssh "$sshport" ed25519 'grep -q "^root:[$]6[$]" /etc/shadow'; then ok "root has a password in /etc/shadow"; else bad "root password not set"; fi
# shellcheck disable=SC2016  # for the guest's shell
out=$(gssh "$sshport" ed25519 'id -u; echo "$HOME $SHELL"; ping -c 1 -W 5 169.254.2.2 >/dev/null && echo ping-ok' 2>&1 || true)
if [ "$out" = $'0\n/root /bin/sh\nping-ok' ]; then
    ok "as uid 0, HOME=/root SHELL=/bin/sh, ping 169.254.2.2 answered"
else
    bad "shell/ping: $out"
fi
stop run1

# ---- run 2: metadata only, plain user data, two NICs, NIC hot-plug ---------------
u2=aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee
printf 'plain user data\n\twith a tab, "quotes", unicode \xc3\xa9 and no trailing newline' > "$dir/ud2"
make_tree "$dir/md2" "$u2" smoke-two "$dir/ud2" ed25519
port2=$(free_port)
python3 "$dir/mdserver.py" "$dir/md2" "$port2" & pids+=("$!")
sleep 0.3
sshport=$(free_port)
boot run2 "$port2" -netdev user,id=n1,net=10.0.3.0/24 -device virtio-net-pci,netdev=n1 \
    -qmp "unix:$dir/run2.qmp,server=on,wait=off"
echo "run2 checks:"
check run2 '^ROVA-GUEST: configdrive none'
check run2 "^ROVA-GUEST: metadata uuid=$u2 hostname=smoke-two.novalocal name=smoke-two"
check run2 '^ROVA-GUEST: datasource metadata'
check run2 "^ROVA-GUEST: file path=/etc/rova/personality.txt bytes="
check run2 "^ROVA-GUEST: user-data-end bytes=$(wc -c < "$dir/ud2") sha256=$(sha256sum "$dir/ud2" | cut -d' ' -f1)"
check run2 '^ROVA-GUEST: ip 169\.254\.[0-9.]+ prefix=16 iface=eth0 router=169\.254\.2\.2 '
check run2 '^ROVA-GUEST: ip 10\.0\.3\.[0-9]+ prefix=24 iface=eth1 router=10\.0\.3\.2 '
check run2 '^ROVA-GUEST: route 0\.0\.0\.0/0 via 169\.254\.2\.2 iface=eth0'
check_not run2 '^ROVA-GUEST: route .* iface=eth1'
check run2 '^ROVA-GUEST: heartbeat 2'
if grep -q 'user-data-script' "$dir/run2.serial"; then bad "plain user data was executed"; fi
routes=$(gssh "$sshport" ed25519 ip route 2>&1 || true)
if [ "$(grep -c '^default' <<<"$routes")" = 1 ] && grep -q '^default via 169.254.2.2 dev eth0' <<<"$routes"; then
    ok "one default route: $(grep '^default' <<<"$routes")"
else
    bad "routes: $routes"
fi
# hot-plug a third NIC, then unplug it
python3 "$dir/qmp.py" "$dir/run2.qmp" netdev_add '{"type": "user", "id": "n2", "net": "10.0.4.0/24"}' > /dev/null
python3 "$dir/qmp.py" "$dir/run2.qmp" device_add '{"driver": "virtio-net-pci", "netdev": "n2", "id": "hotnic", "mac": "52:54:00:12:34:99"}' > /dev/null
if wait_line run2 '^ROVA-GUEST: ip 10\.0\.4\.[0-9]+ prefix=24 iface=eth2 ' 30; then
    check run2 '^ROVA-GUEST: nic eth2 mac=52:54:00:12:34:99 added'
    check run2 '^ROVA-GUEST: ip 10\.0\.4\.[0-9]+ prefix=24 iface=eth2 router=10\.0\.4\.2 '
else
    bad "no ip line for the hot-plugged NIC"
fi
python3 "$dir/qmp.py" "$dir/run2.qmp" device_del '{"id": "hotnic"}' > /dev/null
if wait_line run2 '^ROVA-GUEST: nic eth2 removed' 30; then ok "^ROVA-GUEST: nic eth2 removed"; else bad "no 'nic eth2 removed'"; fi
stop run2

# ---- run 3 + run 4: option 121 from a DHCP server guest --------------------------
# run 3: eth0 slirp (metadata, user data from its config drive), eth1 on a QEMU
# socket netdev listening on 127.0.0.1; its user data serves DHCP and a metadata
# tree (for run 4) on eth1. run 4: eth0 on that socket, eth1 slirp (SSH only).
u3=33333333-3333-3333-3333-333333333333
u4=44444444-4444-4444-4444-444444444444
cat > "$dir/ud3" <<'EOF'
#!/bin/sh
ip link set eth1 up
ip addr add 10.66.0.1/24 dev eth1
ip addr add 169.254.169.254/32 dev eth1
touch /tmp/udhcpd.leases
udhcpd /mnt/config/udhcpd.conf && echo dhcp-server started
httpd -p 169.254.169.254:80 -h /mnt/config/run4 && echo metadata-server started
EOF
make_tree "$dir/cd3" "$u3" smoke-three "$dir/ud3" ed25519
# no password post for run 4: busybox httpd takes GETs only
printf '#!/bin/sh\necho hi\n' > "$dir/ud4"
make_tree "$dir/cd3/run4" "$u4" smoke-four "$dir/ud4" ecdsa384
sed -i 's/"meta": {[^}]*}/"meta": {}/' "$dir/cd3/run4/openstack/latest/meta_data.json"
cat > "$dir/cd3/udhcpd.conf" <<'EOF'
start 10.66.0.10
end 10.66.0.20
interface eth1
lease_file /tmp/udhcpd.leases
pidfile /tmp/udhcpd.pid
option subnet 255.255.255.0
option router 10.66.0.254
option dns 10.66.0.1
option mtu 1400
option staticroutes 169.254.169.254/32 10.66.0.1 0.0.0.0/0 10.66.0.1 10.99.0.0/16 0.0.0.0
EOF
genisoimage -quiet -o "$dir/cd3.iso" -ldots -allow-lowercase -allow-multidot -l -J -r -V config-2 "$dir/cd3"
port3=$(free_port)
python3 "$dir/mdserver.py" "$dir/cd3" "$port3" & pids+=("$!")
sleep 0.3
sock=$(free_port)
sshport=""
boot run3 "$port3" -drive "file=$dir/cd3.iso,if=virtio,format=raw,readonly=on" \
    -netdev "socket,id=n1,listen=127.0.0.1:$sock" -device virtio-net-pci,netdev=n1
echo "run3 checks (DHCP server guest; its eth1 has no DHCP server):"
check run3 '^ROVA-GUEST: ip 169\.254\.[0-9.]+ prefix=16 iface=eth0 '
check_not run3 '^ROVA-GUEST: ip .* iface=eth1'
check run3 '^dhcp-server started'
check run3 '^metadata-server started'
sshport=$(free_port)
boot run4 - -netdev "socket,id=n0,connect=127.0.0.1:$sock" -device virtio-net-pci,netdev=n0 \
    -netdev "user,id=n1,hostfwd=tcp:127.0.0.1:$sshport-:22" -device virtio-net-pci,netdev=n1
echo "run4 checks (DHCP with option 121, metadata through the 169.254.169.254/32 route):"
check run4 '^ROVA-GUEST: ip 10\.66\.0\.(1[0-9]|20) prefix=24 iface=eth0 router=10\.66\.0\.254 dns=10\.66\.0\.1$'
check run4 '^ROVA-GUEST: mtu 1400 iface=eth0'
check run4 '^ROVA-GUEST: route 10\.99\.0\.0/16 via 0\.0\.0\.0 iface=eth0'
check run4 '^ROVA-GUEST: route 169\.254\.169\.254/32 via 10\.66\.0\.1 iface=eth0'
check run4 '^ROVA-GUEST: route 0\.0\.0\.0/0 via 10\.66\.0\.1 iface=eth0'
check run4 '^ROVA-GUEST: ip 10\.0\.2\.15 prefix=24 iface=eth1 router=10\.0\.2\.2 '
check_not run4 '^ROVA-GUEST: route .* iface=eth1'
check run4 "^ROVA-GUEST: metadata uuid=$u4 hostname=smoke-four.novalocal name=smoke-four"
check run4 '^ROVA-GUEST: datasource metadata'
check run4 "^ROVA-GUEST: ssh-key name=ecdsa384 fingerprint=$(re "$(fp_of "$dir/key_ecdsa384.pub")")"
boot_id=$(proto run4 | sed -n 's/^boot .* boot_id=\([0-9a-f-]*\)$/\1/p' | tail -n1)
out=$(gssh "$sshport" ecdsa384 'cat /proc/sys/kernel/random/boot_id; ip route; cat /sys/class/net/eth0/mtu; ping -c 1 -W 5 10.66.0.1 >/dev/null && echo ping-ok' 2>&1 || true)
if [ -n "$boot_id" ] && [ "$(head -n1 <<<"$out")" = "$boot_id" ]; then ok "ssh (ECDSA P-384) boot_id $boot_id"; else bad "ssh: $out"; fi
if [ "$(grep -c '^default' <<<"$out")" = 1 ] && grep -q '^default via 10.66.0.1 dev eth0' <<<"$out" &&
   grep -q '^169.254.169.254 via 10.66.0.1 dev eth0' <<<"$out" && grep -q '^10.99.0.0/16 dev eth0' <<<"$out"; then
    ok "routes: $(grep -E '^(default|169|10\.99)' <<<"$out" | tr '\n' ';')"
else
    bad "routes: $out"
fi
if grep -qx 1400 <<<"$out"; then ok "eth0 mtu 1400"; else bad "mtu: $out"; fi
if grep -qx ping-ok <<<"$out"; then ok "ping 10.66.0.1 (the DHCP server guest) answered"; else bad "ping: $out"; fi
stop run4
stop run3

[ -z "${ROVA_SMOKE_DIR:-}" ] || echo "serial logs in $dir"
if [ "$fail" = 0 ]; then echo "smoke: all checks passed"; else echo "smoke: FAILED"; exit 1; fi
