"""Live migration of a real guest between two QEMU agents in two network
namespaces (TCG): runs in the client namespace of a cloud that
`ROVA_MH_DRIVER=qemu ROVA_MH_QEMU_BANDWIDTH=0 scripts/multihost.sh up DIR 2`
made (no cap on the migration stream):

    ROVA_MH_DRIVER=qemu ROVA_MH_QEMU_BANDWIDTH=0 scripts/multihost.sh up /tmp/rova-mhq 2
    scripts/multihost.sh exec /tmp/rova-mhq \\
        "$(scripts/client-venv.sh)/bin/python" tests/multihost/bench_live_qemu.py
    scripts/multihost.sh down /tmp/rova-mhq

It boots the test guest (cirros256: 256 MiB, 1 vCPU) on agent-1, waits for
its heartbeat, then live-migrates it back and forth $BENCH_MIGRATIONS times
(default 6) with the `openstack` CLI. For each it reports the wall time
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


def logged(sid):
    """(dest, total_ms, downtime_ms) of each completed migration of sid, in
    the agents' logs."""
    out = []
    for log in sorted((BASE / "log").glob("a*.log")):
        text = re.sub(r"\x1b\[[0-9;]*m", "", log.read_text(errors="replace"))
        for line in text.splitlines():
            if "live migration completed" not in line:
                continue
            fields = dict(re.findall(r"(\w+)=(\S+)", line))
            if fields.get("server") == sid:
                out.append((fields.get("dest"), int(fields["total_ms"]),
                            int(fields["downtime_ms"])))
    return out


def main():
    cli = Cli(Via(BASE / "clouds.yaml"), 300, cache_dir=BASE / "bench-cache")
    image = t.upload_guest_image(cli)
    sid = t.boot(cli, image, "bench-live", "agent-1")
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
    print("## Live migration of a real guest between agents (TCG)\n")
    print("%d live migrations of one guest (cirros256: 256 MiB, 1 vCPU) "
          "between agent-1 and agent-2, each agent in its own network "
          "namespace, shared instances path, QEMU under TCG; "
          "the guest's boot id unchanged and its heartbeat going on "
          "after each.\n" % N)
    print("| measure | median | min | max |")
    print("|---|---|---|---|")
    for name, vals, unit in (
            ("API request → ACTIVE on the other agent", walls, "s"),
            ("QEMU total migration time", totals, "s"),
            ("QEMU downtime", downs, "ms")):
        if not vals:
            print("| %s | (none logged) | | |" % name)
            continue
        fmt = "%.2f" if unit == "s" else "%d"
        print(("| %s | " + fmt + " %s | " + fmt + " %s | " + fmt + " %s |")
              % (name, statistics.median(vals), unit, min(vals), unit,
                 max(vals), unit))
    if len(stats) != N:
        print("\n(%d of %d migrations found in the agents' logs)"
              % (len(stats), N))


if __name__ == "__main__":
    main()
