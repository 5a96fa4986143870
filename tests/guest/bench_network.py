"""Benchmarks of the bridge data path, printed as markdown rows for
docs/benchmarks.md ("Guest networking"). Not part of the test suite
(pytest only collects test_*.py by itself); run it as root after
scripts/setup.sh and `cargo build --release -p rova`:

  "$(scripts/client-venv.sh)/bin/python" -m pytest \\
      tests/guest/bench_network.py -s -p no:randomly

It uses the guest suite's fixtures (a network namespace of its own, a
`rova serve --qemu-network bridge` in it, the test guest) and measures:

  boot       POST /servers -> ACTIVE, -> the guest's console reports its
             DHCP address, -> SSH answers at the fixed IP from the
             namespace (BENCH_GUESTS guests, one after another; p50, max);
             and the guest's own time from its kernel's start to `ready`
             (DHCP on every NIC, metadata, SSH keys: its console's uptime)
  rules      a security-group rule added through the API -> the first ping
             that passes, and deleted -> the first that fails
             (BENCH_RULES times each)
  throughput TCP from one guest to another on the bridge (busybox nc,
             BENCH_MIB MiB), and the CPU time the two QEMU processes spent
             per MiB

Under TCG every figure is dominated by emulation; the machine and the
accelerator are printed with them.
"""

import os
import statistics
import subprocess
import time
from pathlib import Path

from test_guest_network import (  # noqa: F401  (fixtures)
    bguests, boot, brova, conns, in_ns, ipv4_of, netns, ssh, wait_ping)

GUESTS = int(os.environ.get("BENCH_GUESTS", "3"))
RULES = int(os.environ.get("BENCH_RULES", "5"))
MIB = int(os.environ.get("BENCH_MIB", "32"))

ROWS = []


def row(what, value):
    ROWS.append((what, value))
    print("| %s | %s |" % (what, value), flush=True)


def p50_max(xs):
    return "p50 %.2f s, max %.2f s (n=%d)" % (statistics.median(xs), max(xs),
                                              len(xs))


def qemu_cpu_seconds(server_ids):
    """utime + stime of the QEMU processes of these servers."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            cmd = Path("/proc/%s/cmdline" % pid).read_bytes().decode(
                errors="replace")
            if "qemu-system" not in cmd or not any(
                    s in cmd for s in server_ids):
                continue
            fields = Path("/proc/%s/stat" % pid).read_text().rsplit(")", 1)[1]
            parts = fields.split()
            total += (int(parts[11]) + int(parts[12])) / tick
        except (OSError, IndexError, ValueError):
            continue
    return total


def ssh_ready(netns, key, ip, within):
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if ssh(netns, key, ip, "true", timeout=10).returncode == 0:
            return True
        time.sleep(0.2)
    return False


def test_bench_guest_networking(brova, conns, bguests, netns):
    conn = conns()
    print("\nmachine: %s, %d cores; accelerator: %s" % (
        os.uname().machine, os.cpu_count(),
        os.environ.get("ROVA_GUEST_ACCEL", "auto (TCG here)")))
    key = brova.base_dir / "id_bench"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f",
                    str(key)], check=True)
    conn.compute.create_keypair(
        name="bench-key", public_key=Path(str(key) + ".pub").read_text())
    group = list(conn.network.security_groups(name="default"))[0]
    conn.network.create_security_group_rule(
        security_group_id=group.id, direction="ingress", ethertype="IPv4",
        protocol="tcp", port_range_min=22, port_range_max=22)

    # boot: POST -> ACTIVE -> lease -> SSH
    active, leased, reachable, guest_lease = [], [], [], []
    ids, ips = [], []
    for n in range(GUESTS):
        t0 = time.monotonic()
        sid = boot(conn, "bench-%d" % n, key_name="bench-key")
        server = bguests.wait_status(sid, "ACTIVE")
        active.append(time.monotonic() - t0)
        ip = ipv4_of(server)
        log = bguests.wait_ready(sid)
        leased.append(time.monotonic() - t0)
        ready = log.fields("ready")
        if ready and ready[-1].get("uptime"):
            guest_lease.append(float(ready[-1]["uptime"]))
        assert ssh_ready(netns, key, ip, 60), "no SSH to %s" % ip
        reachable.append(time.monotonic() - t0)
        ids.append(sid)
        ips.append(ip)
    row("POST -> ACTIVE", p50_max(active))
    row("POST -> guest ready with its DHCP address", p50_max(leased))
    row("POST -> SSH answers at the fixed IP", p50_max(reachable))
    if guest_lease:
        row("guest boot -> ready, DHCP and metadata done (guest uptime)",
            p50_max(guest_lease))

    # rules: ICMP rule add -> ping passes, delete -> ping fails
    added, removed = [], []
    for _ in range(RULES):
        rule = conn.network.create_security_group_rule(
            security_group_id=group.id, direction="ingress",
            ethertype="IPv4", protocol="icmp")
        added.append(wait_ping(netns, ips[0], True, 10))
        conn.network.delete_security_group_rule(rule)
        removed.append(wait_ping(netns, ips[0], False, 10))
    row("rule added -> first ping passes", p50_max(added))
    row("rule deleted -> first ping fails", p50_max(removed))

    # throughput: guest 1 -> guest 0 over the bridge
    if len(ips) >= 2:
        listener = subprocess.Popen(
            ["ip", "netns", "exec", netns, "ssh", "-i", str(key),
             "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no",
             "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR",
             # busybox nc ends a connection when its own input ends:
             # keep it open; the count is read as soon as wc prints it
             "root@" + ips[0], "sleep 900 | nc -l -p 5001 | wc -c"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        time.sleep(2)
        cpu0 = qemu_cpu_seconds(ids[:2])
        t0 = time.monotonic()
        r = ssh(netns, key, ips[1],
                "dd if=/dev/zero bs=65536 count=%d 2>/dev/null | nc %s 5001"
                % (MIB * 16, ips[0]), timeout=600)
        took = time.monotonic() - t0
        cpu = qemu_cpu_seconds(ids[:2]) - cpu0
        out = listener.stdout.readline() if listener.stdout else ""
        listener.kill()
        listener.wait(timeout=30)
        got = int(out.strip() or "0")
        assert r.returncode == 0 and got == MIB * 1024 * 1024, (
            r.stdout + r.stderr + out)
        row("guest -> guest TCP, one host (%d MiB)" % MIB,
            "%.1f MiB/s" % (MIB / took))
        row("QEMU CPU per MiB moved (both guests)",
            "%.0f ms" % (1000 * cpu / MIB))

    for sid in ids:
        conn.compute.delete_server(sid)
    print("\n| figure | value |\n|---|---|")
    for what, value in ROWS:
        print("| %s | %s |" % (what, value))
