"""Live migration of a real guest between two QEMU agents in two network
namespaces (TCG): runs in the client namespace of a cloud that
`ROVA_MH_DRIVER=qemu ROVA_MH_QEMU_BANDWIDTH=0 scripts/multihost.sh up DIR 2`
made (no cap on the migration stream; with ROVA_MH_STORAGE=local on both
commands, agents without shared storage: block migrations):

    ROVA_MH_DRIVER=qemu ROVA_MH_QEMU_BANDWIDTH=0 scripts/multihost.sh up /tmp/rova-mhq 2
    scripts/multihost.sh exec /tmp/rova-mhq \\
        "$(scripts/client-venv.sh)/bin/python" tests/multihost/bench_live_qemu.py
    scripts/multihost.sh down /tmp/rova-mhq

It boots the test guest (cirros256: 256 MiB, 1 vCPU) on agent-1, waits for
its heartbeat, then live-migrates it back and forth $BENCH_MIGRATIONS times
(default 6) with the `openstack` CLI. The guest first writes
$BENCH_DISK_MIB MiB (default 64) of random bytes to its root disk. For
each migration it reports the wall time
from the request to the server ACTIVE on the other agent with no task, and
QEMU's own total time and downtime (`query-migrate`), which the source
agent logs. Every migration must keep the guest's boot id. It prints a
markdown section for docs/benchmarks.md.
"""

import os
import re
import statistics
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "common"))

from conftest import Via  # noqa: E402
from osclient import Cli  # noqa: E402
import test_qemu_moves as t  # noqa: E402

BASE = Path(os.environ["ROVA_MH_DIR"])
N = int(os.environ.get("BENCH_MIGRATIONS", "6"))
DISK_MIB = int(os.environ.get("BENCH_DISK_MIB", "64"))

# User data: the guest writes DISK_MIB MiB of random bytes to its root
# disk (after its first MiB) before its first heartbeat, so that a block
# migration has that much to mirror.
FILL_DISK = """#!/bin/sh
for b in /sys/block/vd*; do
  if [ "$(cat $b/serial 2>/dev/null)" = root ]; then
    dd if=/dev/urandom of=/dev/${b##*/} bs=1M seek=1 count=%d conv=fsync 2>/dev/null
  fi
done
"""


def logged(sid):
    """(dest, total_ms, downtime_ms, mirror_ms, disk_bytes) of each
    completed migration of sid, in the agents' logs."""
    out = []
    for log in sorted((BASE / "log").glob("a*.log")):
        text = re.sub(r"\x1b\[[0-9;]*m", "", log.read_text(errors="replace"))
        for line in text.splitlines():
            if "live migration completed" not in line:
                continue
            fields = dict(re.findall(r"(\w+)=(\S+)", line))
            if fields.get("server") == sid:
                out.append((fields.get("dest"), int(fields["total_ms"]),
                            int(fields["downtime_ms"]),
                            int(fields.get("mirror_ms", 0)),
                            int(fields.get("disk_bytes", 0))))
    return out


def main():
    cli = Cli(Via(BASE / "clouds.yaml"), 300, cache_dir=BASE / "bench-cache")
    image = t.upload_guest_image(cli)
    script = BASE / "bench-fill.sh"
    script.write_text(FILL_DISK % DISK_MIB)
    sid = t.boot(cli, image, "bench-live", "agent-1", "--user-data",
                 str(script))
    walls = []
    try:
        host = "agent-1"
        for i in range(N):
            dest = "agent-2" if host == "agent-1" else "agent-1"
            before = t.console(cli, sid)
            started = time.monotonic()
            cli.run(t.ADMIN, *t.V, "server", "migrate", "--live-migration",
                    "--host", dest, sid)
            s = t.wait_status(cli, sid, "ACTIVE", timeout=300)
            while s["OS-EXT-SRV-ATTR:host"] != dest:
                time.sleep(0.2)
                s = t.wait_status(cli, sid, "ACTIVE", timeout=300)
            walls.append(time.monotonic() - started)
            t.assert_same_guest(cli, sid, before, "migration %d" % (i + 1))
            host = dest
        time.sleep(1)
        stats = logged(sid)
    finally:
        cli.run(t.ADMIN, "server", "delete", "--wait", sid)
    totals = [s[1] / 1000 for s in stats]
    downs = [s[2] for s in stats]
    block = os.environ.get("ROVA_MH_STORAGE") == "local"
    print("## Live migration of a real guest between agents (TCG)\n")
    print("%d live migrations of one guest (cirros256: 256 MiB, 1 vCPU) "
          "between agent-1 and agent-2, each agent in its own network "
          "namespace, %s, QEMU under TCG; "
          "the guest's boot id unchanged and its heartbeat going on "
          "after each; the guest wrote %d MiB of random bytes to its root "
          "disk first.\n" % (N, "each agent's own disks (block migration)"
                              if block else "shared instances path",
                              DISK_MIB))
    print("| measure | median | min | max |")
    print("|---|---|---|---|")
    rows = [("API request → ACTIVE on the other agent", walls, "s"),
            ("QEMU total migration time (memory)", totals, "s"),
            ("QEMU downtime", downs, "ms")]
    if block:
        rows += [("disk mirror until in step", [s[3] / 1000 for s in stats],
                  "s"),
                 ("disk bytes mirrored", [s[4] / 2**20 for s in stats],
                  "MiB")]
    for name, vals, unit in rows:
        if not vals:
            print("| %s | (none logged) | | |" % name)
            continue
        fmt = "%d" if unit == "ms" else "%.2f"
        print(("| %s | " + fmt + " %s | " + fmt + " %s | " + fmt + " %s |")
              % (name, statistics.median(vals), unit, min(vals), unit,
                 max(vals), unit))
    if len(stats) != N:
        print("\n(%d of %d migrations found in the agents' logs)"
              % (len(stats), N))


if __name__ == "__main__":
    main()
