#!/usr/bin/env bash
# Boot the guest from guest/build.sh under QEMU (TCG) twice and check its console:
#   run 1: config drive (ISO9660, label config-2) + metadata service, script user data
#   run 2: metadata service only, plain (non-script) user data
# The metadata service is a small Python HTTP server on 127.0.0.1, reached from the
# guest through slirp guestfwd with a per-VM `cmd:` connector (socat).
# Needs: qemu-system-x86_64, genisoimage, socat, python3, ssh-keygen.
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
check() { # check <run> <regex>
    if grep -qE "$2" "$dir/$1.serial"; then echo "  ok    $2"; else echo "  FAIL  $2"; fail=1; fi
}

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

ssh-keygen -q -t ed25519 -N '' -C rova-smoke -f "$dir/key" >/dev/null
pub=$(cat "$dir/key.pub")
fp=$(ssh-keygen -lf "$dir/key.pub" | cut -d' ' -f2 | sed 's/[+]/[+]/g')  # as a regex

make_tree() { # make_tree <dir> <uuid> <hostname> <user_data file>
    local t=$1
    mkdir -p "$t/openstack/latest" "$t/openstack/content"
    cat > "$t/openstack/latest/meta_data.json" <<EOF
{"uuid": "$2", "name": "$3", "hostname": "$3.novalocal", "launch_index": 0, "availability_zone": "nova", "project_id": "p1", "public_keys": {"smoke": "$pub\\n"}, "keys": [{"name": "smoke", "type": "ssh", "data": "$pub\\n"}], "files": [{"path": "/etc/rova/personality.txt", "content_path": "/content/0000"}], "meta": {"rova_password": "s3cret-$2"}, "devices": []}
EOF
    printf 'personality of %s\n' "$2" > "$t/openstack/content/0000"
    cp "$4" "$t/openstack/latest/user_data"
    echo '{"links": [], "networks": [], "services": []}' > "$t/openstack/latest/network_data.json"
}

boot() { # boot <run> <mdport> [extra qemu args...]; waits for 3 heartbeats
    local run=$1 port=$2; shift 2
    local t0 t1 waited=0
    t0=$(date +%s.%N)
    qemu-system-x86_64 -name "$run" -accel "$accel" -m 256 -smp 1 -nodefaults -no-user-config \
        -kernel "$ROVA_GUEST_KERNEL" -initrd "$ROVA_GUEST_INITRD" \
        -append 'console=ttyS0 quiet panic=-1' \
        -chardev "file,id=ser0,path=$dir/$run.serial" -serial chardev:ser0 \
        -display none \
        -netdev "user,id=n0,net=169.254.0.0/16,guestfwd=tcp:169.254.169.254:80-cmd:socat - TCP:127.0.0.1:$port" \
        -device virtio-net-pci,netdev=n0 "$@" > "$dir/$run.qemu.log" 2>&1 &
    local qpid=$!
    pids+=("$qpid")
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
    printf '%s: qemu rss %s KiB\n' "$run" "$(awk '/VmRSS/{print $2}' /proc/$qpid/status)"
    kill "$qpid"; wait "$qpid" 2>/dev/null || true
}

# ---- run 1: config drive + metadata, script user data ------------------------------
u1=11111111-2222-3333-4444-555555555555
# shellcheck disable=SC2016  # $(hostname) is for the guest's shell
printf '#!/bin/sh\necho "user script says hi from $(hostname)"\necho RUN-MARKER > /tmp/marker\nexit 3\n' > "$dir/ud1"
make_tree "$dir/cd1" "$u1" smoke-one "$dir/ud1"
genisoimage -quiet -o "$dir/cd1.iso" -ldots -allow-lowercase -allow-multidot -l -J -r -V config-2 "$dir/cd1"
port1=$((20000 + RANDOM % 20000))
python3 "$dir/mdserver.py" "$dir/cd1" "$port1" & pids+=("$!")
sleep 0.3
boot run1 "$port1" -drive "file=$dir/cd1.iso,if=virtio,format=raw,readonly=on"
ud1sha=$(sha256sum "$dir/ud1" | cut -d' ' -f1)
echo "run1 checks:"
check run1 '^ROVA-GUEST: boot kernel='
check run1 '^ROVA-GUEST: ip 169\.254\.[0-9.]+ prefix=16'
check run1 "^ROVA-GUEST: configdrive device=/dev/vd[a-z] fs=iso9660 uuid=$u1 hostname=smoke-one.novalocal name=smoke-one"
check run1 "^ROVA-GUEST: metadata uuid=$u1 hostname=smoke-one.novalocal name=smoke-one"
check run1 '^ROVA-GUEST: datasource configdrive'
check run1 '^ROVA-GUEST: hostname smoke-one.novalocal'
check run1 "^ROVA-GUEST: ssh-key name=smoke fingerprint=$fp"
check run1 '^ROVA-GUEST: authorized-keys path=/root/.ssh/authorized_keys count=1 '
check run1 "^ROVA-GUEST: file path=/etc/rova/personality.txt bytes=[0-9]+ sha256=$(sha256sum "$dir/cd1/openstack/content/0000" | cut -d' ' -f1)"
check run1 "^ROVA-GUEST: user-data-end bytes=$(wc -c < "$dir/ud1") sha256=$ud1sha"
check run1 '^user script says hi from smoke-one.novalocal'
check run1 '^ROVA-GUEST: user-data-script exit=3'
check run1 "^ROVA-GUEST: password posted bytes=$((7 + ${#u1}))"
check run1 '^ROVA-GUEST: ready uptime='
check run1 '^ROVA-GUEST: heartbeat 2'
if [ "$(cat "$dir/cd1/openstack/latest/password" 2>/dev/null)" = "s3cret-$u1" ]; then
    echo "  ok    metadata server received the password"
else
    echo "  FAIL  metadata server did not receive the password"; fail=1
fi
# user data decoded from the console, byte for byte
tr -d '\r' < "$dir/run1.serial" | sed -n '/^ROVA-GUEST: user-data-begin/,/^ROVA-GUEST: user-data-end/p' |
    sed '1d;$d' | base64 -d > "$dir/ud1.back"
if cmp -s "$dir/ud1" "$dir/ud1.back"; then echo "  ok    user data decoded from console matches"; else echo "  FAIL  user data decode"; fail=1; fi

# ---- run 2: metadata only, plain user data ----------------------------------------------
u2=aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee
printf 'plain user data\n\twith a tab, "quotes", unicode \xc3\xa9 and no trailing newline' > "$dir/ud2"
make_tree "$dir/md2" "$u2" smoke-two "$dir/ud2"
port2=$((20000 + RANDOM % 20000))
[ "$port2" != "$port1" ] || port2=$((port1 + 1))
python3 "$dir/mdserver.py" "$dir/md2" "$port2" & pids+=("$!")
sleep 0.3
boot run2 "$port2"
echo "run2 checks:"
check run2 '^ROVA-GUEST: configdrive none'
check run2 "^ROVA-GUEST: metadata uuid=$u2 hostname=smoke-two.novalocal name=smoke-two"
check run2 '^ROVA-GUEST: datasource metadata'
check run2 "^ROVA-GUEST: file path=/etc/rova/personality.txt bytes="
check run2 "^ROVA-GUEST: user-data-end bytes=$(wc -c < "$dir/ud2") sha256=$(sha256sum "$dir/ud2" | cut -d' ' -f1)"
check run2 '^ROVA-GUEST: heartbeat 2'
if grep -q 'user-data-script' "$dir/run2.serial"; then echo "  FAIL  plain user data was executed"; fail=1; fi

[ -z "${ROVA_SMOKE_DIR:-}" ] || echo "serial logs in $dir"
if [ "$fail" = 0 ]; then echo "smoke: all checks passed"; else echo "smoke: FAILED"; exit 1; fi
