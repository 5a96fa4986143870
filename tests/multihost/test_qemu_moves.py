"""Real guests on QEMU agents in two network namespaces
(`scripts/multihost.sh test-qemu DIR`): 2 control replicas on PostgreSQL,
agents agent-1 and agent-2 with `--driver qemu` under TCG (KVM guests do
not run on this machine: nested PVM), instance disks on storage the two
agents share. The test guest (guest/build.sh) is uploaded through the
image API as a user would, then booted on one agent and moved between
them; what the guest does is read from its serial console through the
API (`ROVA-GUEST: ` lines, guest/README.md).
"""

import json
import os
import re
import subprocess
import sys
import tempfile
import time
import urllib.parse
import uuid
from pathlib import Path

import pytest

from conftest import wait_for

_COMMON = str(Path(__file__).resolve().parents[1] / "common")
if _COMMON not in sys.path:
    sys.path.insert(0, _COMMON)
from osclient import build_guest  # noqa: E402

pytestmark = pytest.mark.qemu

FLAVOR = "cirros256"
NETWORK = "private"
BOOT_TIMEOUT = float(os.environ.get("ROVA_GUEST_BOOT_TIMEOUT", "300"))
PREFIX = "ROVA-GUEST: "
BOOT_RE = re.compile(r"^boot kernel=\S+ uptime=\S+ boot_id=([0-9a-fA-F-]+)")
HEARTBEAT_RE = re.compile(r"^heartbeat (\d+)$")


def protocol(text):
    """The `ROVA-GUEST: ` payloads of a console log, in order."""
    out = []
    for ln in (text or "").replace("\r", "").split("\n"):
        at = ln.find(PREFIX)
        if at >= 0:
            out.append(ln[at + len(PREFIX):].strip())
    return out


def boot_ids(text):
    return [m.group(1) for m in map(BOOT_RE.match, protocol(text)) if m]


def heartbeats(text):
    return [int(m.group(1)) for m in map(HEARTBEAT_RE.match, protocol(text))
            if m]


ADMIN = "rova-admin"
V = ("--os-compute-api-version", "2.latest")


def console(cli, sid):
    return cli.run(ADMIN, "console", "log", "show", sid)


@pytest.fixture(scope="module")
def guest_image(cli):
    return upload_guest_image(cli)


def upload_guest_image(cli):
    """rova-guest uploaded as Nova's AMI-style triple: a kernel (aki), a
    ramdisk (ari) and a blank qcow2 root disk pointing at both; its id."""
    assets = build_guest()
    tag = uuid.uuid4().hex[:8]
    kernel = cli.json(ADMIN, "image", "create", "--public",
                      "--disk-format", "aki", "--container-format", "aki",
                      "--file", assets["ROVA_GUEST_KERNEL"],
                      "mh-guest-kernel-" + tag)
    ramdisk = cli.json(ADMIN, "image", "create", "--public",
                       "--disk-format", "ari", "--container-format", "ari",
                       "--file", assets["ROVA_GUEST_INITRD"],
                       "mh-guest-ramdisk-" + tag)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "root.qcow2"
        subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(root),
                        "1G"], check=True, timeout=60)
        image = cli.json(
            ADMIN, "image", "create", "--public", "--disk-format", "qcow2",
            "--container-format", "bare", "--min-disk", "1",
            "--property", "kernel_id=" + kernel["id"],
            "--property", "ramdisk_id=" + ramdisk["id"],
            "--property", "os_command_line=console=ttyS0 panic=-1 quiet",
            "--file", str(root), "mh-guest-" + tag)
    return image["id"]


def server(cli, sid):
    return cli.json(ADMIN, *V, "server", "show", sid)


def host_of(cli, sid):
    return server(cli, sid)["OS-EXT-SRV-ATTR:host"]


def wait_status(cli, sid, status, timeout=BOOT_TIMEOUT):
    def done():
        s = server(cli, sid)
        assert s["status"] != "ERROR", s.get("fault")
        return s if s["status"] == status and not s.get(
            "OS-EXT-STS:task_state") else None
    return wait_for("%s %s" % (sid, status), done, timeout=timeout, every=1)


def wait_console(cli, sid, what, pred, timeout=BOOT_TIMEOUT):
    def check():
        text = console(cli, sid)
        return text if pred(text) else None
    return wait_for("%s: %s" % (sid, what), check, timeout=timeout, every=1)


# User data that marks the root disk (virtio serial `root`) once: the
# first boot writes MARK-<boot_id> at its start, later boots leave it.
MARK_SCRIPT = """#!/bin/sh
for b in /sys/block/vd*; do
  if [ "$(cat $b/serial 2>/dev/null)" = root ]; then
    dev=/dev/${b##*/}
    if [ "$(dd if=$dev bs=5 count=1 2>/dev/null)" != MARK- ]; then
      printf 'MARK-%s' "$(cat /proc/sys/kernel/random/boot_id)" |
        dd of=$dev bs=512 conv=notrunc,fsync 2>/dev/null
    fi
  fi
done
sync
"""


def root_heads(text):
    """The `head=` of the root disk's `disk` lines, in order."""
    return [dict(re.findall(r"(\w+)=(\S*)", p[len("disk "):])).get("head")
            for p in protocol(text)
            if p.startswith("disk ") and "serial=root" in p]


def boot(cli, image, name, host, *extra):
    s = cli.json(ADMIN, *V, "server", "create", "--image", image,
                 "--flavor", FLAVOR, "--network", NETWORK,
                 "--availability-zone", "nova:" + host, *extra, name)
    wait_status(cli, s["id"], "ACTIVE")
    wait_console(cli, s["id"], "a heartbeat",
                 lambda t: heartbeats(t) and boot_ids(t))
    return s["id"]


def assert_same_guest(cli, sid, before, what):
    """The guest did not boot again and its heartbeat went on."""
    last = heartbeats(before)[-1]
    after = wait_console(cli, sid, "a heartbeat above %d" % last,
                         lambda t: heartbeats(t)[-1:] and
                         heartbeats(t)[-1] > last, timeout=120)
    assert boot_ids(after) == boot_ids(before), (
        "%s: the guest booted again: %s, was %s"
        % (what, boot_ids(after), boot_ids(before)))


def assert_storage_refused(cli, sid, dest, flag, words):
    """An explicit `block_migration` (`flag`) that the two hosts' storage
    contradicts is refused with 400 and Nova's message (`words` after the
    source host's name; openstacksdk sends a live migration with a host
    at 2.30, before the pre-checks ran after the 202 from 2.34 on). The
    migration is recorded in `error`; the server stays ACTIVE where it
    was."""
    host = host_of(cli, sid)
    p = cli.fail(ADMIN, *V, "server", "migrate", "--live-migration", flag,
                 "--host", dest, sid)
    assert "%s %s" % (host, words) in p.stderr, p.stderr[-3000:]
    assert '"code":400' in p.stderr, p.stderr[-3000:]
    migs = cli.json(ADMIN, *V, "server", "migration", "list", "--server",
                    sid, "--type", "live-migration")
    assert migs[0]["Status"] == "error", migs
    s = server(cli, sid)
    assert (s["status"], s["OS-EXT-SRV-ATTR:host"],
            s["OS-EXT-STS:task_state"]) == ("ACTIVE", host, None), s


def test_a_real_guest_live_migrates_between_agents_and_back(cli,
                                                            guest_image):
    sid = boot(cli, guest_image, "mh-live", "agent-1")
    try:
        assert host_of(cli, sid) == "agent-1"
        for dest in ("agent-2", "agent-1"):
            before = console(cli, sid)
            started = time.monotonic()
            cli.run(ADMIN, *V, "server", "migrate", "--live-migration",
                    "--host", dest, "--wait", sid)
            s = wait_status(cli, sid, "ACTIVE", timeout=300)
            assert s["OS-EXT-SRV-ATTR:host"] == dest, s
            print("live migration to %s: %.1f s"
                  % (dest, time.monotonic() - started))
            assert_same_guest(cli, sid, before,
                              "after live migration to " + dest)
        migs = cli.json(ADMIN, *V, "server", "migration", "list",
                        "--server", sid, "--type", "live-migration")
        assert len(migs) == 2, migs
        assert {m["Status"] for m in migs} == {"completed"}, migs
        # The agents share their instances path: asking for a block
        # migration is refused.
        assert_storage_refused(
            cli, sid, "agent-2", "--block-migration",
            "is not on local storage: Block migration can not be used with "
            "shared storage.")
    finally:
        cli.run(ADMIN, "server", "delete", "--wait", sid)


def ws_read(url, pred, seconds=20):
    """Bytes a console websocket at `url` sent until pred(bytes) held or
    `seconds` passed."""
    import websocket
    ws = websocket.create_connection(url, subprotocols=["binary"],
                                     timeout=10)
    buf = b""
    deadline = time.monotonic() + seconds
    try:
        while time.monotonic() < deadline and not pred(buf):
            ws.settimeout(max(0.1, deadline - time.monotonic()))
            try:
                data = ws.recv()
            except (websocket.WebSocketTimeoutException,
                    websocket.WebSocketConnectionClosedException):
                break
            if not data:
                break
            buf += data if isinstance(data, bytes) else data.encode()
    finally:
        ws.close()
    return buf


def assert_consoles(cli, sid, where):
    """The guest's serial console shows its heartbeat and its VNC console
    greets with RFB, through the console proxy of a control replica and
    the agent of the guest's host."""
    serial = cli.json(ADMIN, "console", "url", "show", "--serial", sid)
    got = ws_read(serial["url"],
                  lambda b: re.search(rb"ROVA-GUEST: heartbeat \d+\r?\n", b))
    assert re.search(rb"ROVA-GUEST: heartbeat \d+", got), \
        "%s: no heartbeat on the serial console: %r" % (where, got[-300:])
    novnc = cli.json(ADMIN, "console", "url", "show", "--novnc", sid)
    parts = urllib.parse.urlsplit(novnc["url"])
    path = urllib.parse.parse_qs(parts.query)["path"][0]
    got = ws_read("ws://%s/%s" % (parts.netloc, path.lstrip("/")),
                  lambda b: len(b) >= 12)
    assert got.startswith(b"RFB 003.008\n"), (where, got[:40])


def test_a_real_guests_consoles_follow_it_between_agents(cli, guest_image):
    sid = boot(cli, guest_image, "mh-console", "agent-1")
    try:
        assert_consoles(cli, sid, "on agent-1")
        cli.run(ADMIN, *V, "server", "migrate", "--live-migration",
                "--host", "agent-2", "--wait", sid)
        s = wait_status(cli, sid, "ACTIVE", timeout=300)
        assert s["OS-EXT-SRV-ATTR:host"] == "agent-2", s
        assert_consoles(cli, sid, "on agent-2")
    finally:
        cli.run(ADMIN, "server", "delete", "--wait", sid)


def test_a_cold_migration_moves_the_guest_and_its_disk(cli, guest_image,
                                                       tmp_path):
    script = tmp_path / "mark.sh"
    script.write_text(MARK_SCRIPT)
    sid = boot(cli, guest_image, "mh-cold", "agent-2", "--user-data",
               str(script))
    try:
        first = console(cli, sid)
        mark = "MARK-" + boot_ids(first)[-1]
        # (boot() waited for a heartbeat: the user data ran before it)
        cli.run(ADMIN, *V, "server", "migrate", "--host", "agent-1",
                "--wait", sid)
        s = wait_status(cli, sid, "VERIFY_RESIZE", timeout=300)
        assert s["OS-EXT-SRV-ATTR:host"] == "agent-1", s
        cli.run(ADMIN, *V, "server", "migration", "confirm", sid)
        wait_status(cli, sid, "ACTIVE", timeout=120)
        # It booted again on agent-1, from the disk it had on agent-2.
        after = wait_console(cli, sid, "a boot on agent-1",
                             lambda t: len(boot_ids(t)) > len(boot_ids(first))
                             and heartbeats(t), timeout=BOOT_TIMEOUT)
        assert boot_ids(after)[-1] != boot_ids(first)[-1]
        got = root_heads(after)
        assert got and got[-1].startswith(mark), (mark, got)
        migs = cli.json(ADMIN, *V, "server", "migration", "list",
                        "--server", sid, "--type", "cold-migration")
        assert [m["Status"] for m in migs] == ["confirmed"], migs
    finally:
        cli.run(ADMIN, "server", "delete", "--wait", sid)


def compute_state(cli, host):
    """`up` or `down`: the compute service of `host` as os-services says."""
    return next(s["State"] for s in cli.json(
        ADMIN, "compute", "service", "list", "--service",
        "nova-compute") if s["Host"] == host)


def test_a_server_of_a_failed_host_is_evacuated_and_boots_elsewhere(
        cloud, cli, guest_image, tmp_path):
    script = tmp_path / "mark.sh"
    script.write_text(MARK_SCRIPT)
    sid = boot(cli, guest_image, "mh-evac", "agent-1", "--user-data",
               str(script))
    addresses = server(cli, sid)["addresses"]
    first = console(cli, sid)
    mark = "MARK-" + boot_ids(first)[-1]

    try:
        cloud.crash("a1")
        wait_for("agent-1 down",
                 lambda: compute_state(cli, "agent-1") == "down", timeout=60)
        assert server(cli, sid)["host_status"] == "UNKNOWN"
        cli.run(ADMIN, *V, "compute", "service", "set", "--down", "agent-1",
                "nova-compute")
        cli.run(ADMIN, "--os-compute-api-version", "2.94", "server",
                "evacuate", sid)
        s = wait_status(cli, sid, "ACTIVE", timeout=BOOT_TIMEOUT)
        assert s["OS-EXT-SRV-ATTR:host"] == "agent-2", s
        assert s["addresses"] == addresses, (addresses, s["addresses"])
        # (a rebuilt guest's console starts anew)
        after = wait_console(cli, sid, "a boot on agent-2",
                             lambda t: boot_ids(t) and boot_ids(t)[-1] !=
                             boot_ids(first)[-1] and heartbeats(t),
                             timeout=BOOT_TIMEOUT)
        assert boot_ids(after)[-1] != boot_ids(first)[-1]
        # Its disk is on storage the hosts share: it booted from it again
        # (Nova's recreate on shared storage), not from a new one.
        got = root_heads(after)
        assert got and got[-1].startswith(mark), (mark, got)

        def evacuation():
            migs = cli.json(ADMIN, *V, "server", "migration", "list",
                            "--server", sid, "--type", "evacuation")
            return migs[0]["Status"] if migs else None

        wait_for("the evacuation done", lambda: evacuation() == "done",
                 timeout=60)
        # The host returns: its agent cleans up its copy (nothing of it
        # runs there) and leaves the guest on agent-2 alone.
        cloud.start("a1")
        wait_for("the evacuation completed",
                 lambda: evacuation() == "completed", timeout=120)
        last = heartbeats(console(cli, sid))[-1]
        again = wait_console(cli, sid, "heartbeats on agent-2 going on",
                             lambda t: heartbeats(t)[-1] > last + 2,
                             timeout=60)
        assert boot_ids(again) == boot_ids(after)
        s = server(cli, sid)
        assert s["status"] == "ACTIVE" and \
            s["OS-EXT-SRV-ATTR:host"] == "agent-2", s
        guests = json.loads((cloud.base / "agent-1" / "guests.json")
                            .read_text())
        assert sid not in guests, guests
    finally:
        cli.run(ADMIN, *V, "compute", "service", "set", "--up", "agent-1",
                "nova-compute")
        cli.run(ADMIN, "server", "delete", "--wait", sid)


# User data that fills ~96 MiB of the guest's RAM (its root file system is
# in memory) with random bytes: with the harness's 8 MiB/s cap on a live
# migration's stream, a migration of it takes more than 12 s, time enough
# to act on it while it is in flight.
FILL_SCRIPT = """#!/bin/sh
head -c 100663296 /dev/urandom > /fill
sync
"""


def agent_log(cloud, name):
    text = (cloud.base / "log" / (name + ".log")).read_text(errors="replace")
    return re.sub(r"\x1b\[[0-9;]*m", "", text)


def start_live_migration(cli, sid, dest):
    """Starts a live migration to dest; returns the migration's id once
    its status is `running` (QEMU's stream under way)."""
    cli.run(ADMIN, *V, "server", "migrate", "--live-migration", "--host",
            dest, sid)

    def running():
        migs = cli.json(ADMIN, *V, "server", "migration", "list", "--server",
                        sid, "--type", "live-migration")
        live = [m for m in migs if m["Status"] == "running"]
        return live[0]["Id"] if live else None
    return wait_for("the migration running", running, timeout=60, every=0.5)


def migration_status(cli, sid, mid):
    migs = cli.json(ADMIN, *V, "server", "migration", "list", "--server",
                    sid, "--type", "live-migration")
    return next(m["Status"] for m in migs if m["Id"] == mid)


def test_a_real_live_migration_is_aborted_and_the_guest_runs_on(
        cli, guest_image, tmp_path):
    script = tmp_path / "fill.sh"
    script.write_text(FILL_SCRIPT)
    sid = boot(cli, guest_image, "mh-abort", "agent-1", "--user-data",
               str(script))
    try:
        before = console(cli, sid)
        mid = start_live_migration(cli, sid, "agent-2")
        cli.run(ADMIN, *V, "server", "migration", "abort", sid, str(mid))
        wait_for("the migration cancelled",
                 lambda: migration_status(cli, sid, mid) == "cancelled",
                 timeout=120)
        s = wait_status(cli, sid, "ACTIVE", timeout=60)
        assert s["OS-EXT-SRV-ATTR:host"] == "agent-1", s
        assert_same_guest(cli, sid, before, "after the aborted migration")
    finally:
        cli.run(ADMIN, "server", "delete", "--wait", sid)


def test_a_real_live_migration_forced_to_complete_pauses_then_resumes(
        cloud, cli, guest_image, tmp_path):
    script = tmp_path / "fill.sh"
    script.write_text(FILL_SCRIPT)
    sid = boot(cli, guest_image, "mh-force", "agent-1", "--user-data",
               str(script))
    try:
        before = console(cli, sid)
        mid = start_live_migration(cli, sid, "agent-2")
        cli.run(ADMIN, *V, "server", "migration", "force", "complete", sid,
                str(mid))
        wait_for("the migration completed",
                 lambda: migration_status(cli, sid, mid) == "completed",
                 timeout=120)
        s = wait_status(cli, sid, "ACTIVE", timeout=60)
        assert s["OS-EXT-SRV-ATTR:host"] == "agent-2", s
        # The source agent paused the guest to finish; the destination
        # resumed it: the same guest, its heartbeat going on.
        assert_same_guest(cli, sid, before, "after the forced migration")
        forced = [ln for ln in agent_log(cloud, "a1").splitlines()
                  if "forced to complete" in ln and sid in ln]
        assert forced, "agent-1 never acted on the force-complete"
    finally:
        cli.run(ADMIN, "server", "delete", "--wait", sid)
