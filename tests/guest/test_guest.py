"""Real guests under `rova serve --driver qemu --qemu-hosts 2`.

The tests run in file order and share two servers (each boot takes
7-15 s under TCG, more on a busy machine):

  guest A  booted from `rova-guest` with a config drive, a keypair, a
           `#!/bin/sh` user-data script, a personality file and a
           `rova_password` property; then paused, suspended, snapshotted,
           live-migrated, reached through its consoles, kept across a rova
           restart, hard-rebooted, stopped and started;
  guest B  booted from A's snapshot while A's lifecycle tests run; its
           root disk must start with the marker A's script wrote.

Everything about a guest is read back from its serial console through the
API (`ROVA-GUEST: ...` lines, guest/README.md). A test whose prerequisite
failed fails too (it says which); nothing is skipped.
"""

import base64
import hashlib
import re
import subprocess
import time
import urllib.parse

from conftest import (HOSTS, GuestLog, _socket_dir, guest_processes, need_state,
                      register_server)

IMAGE = "rova-guest"
FLAVOR = "cirros256"
NETWORK = "private"
PERSONALITY_PATH = "/etc/rova-test.txt"

# What earlier tests made, for later ones.
S = {}


def need(*keys):
    return need_state(S, *keys)


def heartbeat_line_in(text):
    return re.search(r"ROVA-GUEST: heartbeat \d+", text)


def assert_same_boot(guests, sid, before, what):
    """The guest was not restarted since the log `before`: no `boot` line
    with another boot_id, and the heartbeat goes on above the last one seen
    (a reboot starts it again at 0 behind a new `boot` line)."""
    last = before.last_heartbeat
    after = guests.wait_heartbeat_above(sid, -1 if last is None else last)
    new = [b for b in after.boot_ids if b not in before.boot_ids]
    assert not new, ("%s: guest %s booted again (boot_id %s, was %s)\n%s"
                     % (what, sid, new, before.last_boot_id,
                        guests.context(sid, after)))
    if after.boot_ids:
        assert after.last_boot_id == before.last_boot_id, (
            "%s: boot_id %s, was %s" % (what, after.last_boot_id,
                                        before.last_boot_id))
    return after


# ---------------------------------------------------------------------------
# the console protocol parser (no guest needed)
# ---------------------------------------------------------------------------

def test_console_protocol_parser():
    text = ("\x1b[2J\r\n\x1b[0mROVA-GUEST: boot kernel=6.1 uptime=1.0 "
            "boot_id=aaaa-1\r\nROVA-GUEST: user-data-begin source=configdrive"
            "\r\nIyEvYmluL3No\r\nCg==\r\nROVA-GUEST: user-data-end bytes=10 "
            "sha256=x\r\nscript output\r\nROVA-GUEST: ready uptime=4.2\r\n"
            "ROVA-GUEST: heartbeat 0\r\nROVA-GUEST: heartbeat 1\r\n"
            "ROVA-GUEST: boot kernel=6.1 uptime=0.9 boot_id=bbbb-2\r\n"
            "ROVA-GUEST: heartbeat 0\r\n")
    log = GuestLog(text)
    assert log.boot_ids == ["aaaa-1", "bbbb-2"]
    assert log.last_boot_id == "bbbb-2"
    assert log.heartbeats == [0, 1, 0]
    assert log.block("user-data") == b"#!/bin/sh\n"
    assert log.boot_segment("aaaa-1").ready()
    assert not log.boot_segment("bbbb-2").ready()
    assert not log.since_last_boot().ready()
    assert log.fields("ready") == [{"uptime": "4.2"}]
    assert log.lines_between("user-data-end", "ready") == ["script output"]


# ---------------------------------------------------------------------------
# A. guest configuration
# ---------------------------------------------------------------------------

def test_boot_configured_guest(cli, sdk, guests, unique, tmp_path_factory):
    d = tmp_path_factory.mktemp("guest-a")
    key = d / "key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C",
                    "rova-guest-test", "-f", str(key)], check=True)
    fingerprint = subprocess.run(
        ["ssh-keygen", "-lf", str(key) + ".pub"], check=True,
        capture_output=True, text=True).stdout.split()[1]
    keyname = "gk-" + unique
    cli.json("rova-demo", "keypair", "create", "--public-key",
             str(key) + ".pub", keyname)

    marker = "ROVA-MARK-" + unique
    script = (
        "#!/bin/sh\n"
        "echo \"rova-test-script marker=%(m)s\"\n"
        "rc=1\n"
        "for b in /sys/block/vd*; do\n"
        "  if [ \"$(cat $b/serial 2>/dev/null)\" = root ]; then\n"
        "    printf '%%s' '%(m)s' | dd of=/dev/${b##*/} bs=512 conv=notrunc,fsync 2>/dev/null && rc=0\n"
        "    echo \"rova-test-script wrote /dev/${b##*/}\"\n"
        "  fi\n"
        "done\n"
        "sync\n"
        "exit $rc\n" % {"m": marker}).encode()
    personality = d / "personality.txt"
    personality.write_bytes(("personality of %s\n\ttab, \"quotes\", "
                             "caf\u00e9\n" % unique).encode())
    password = "pw-%s-Xy9" % unique
    name = "guest-a-" + unique

    # openstacksdk, not `openstack server create --file`: OSC 10.5 hands
    # the open file to openstacksdk ("Object of type BufferedReader is not
    # JSON serializable") and never sends the personality. Personality
    # needs microversion 2.56 or lower.
    conn = sdk("rova-demo", compute_api_version="2.56")
    s = conn.compute.create_server(
        name=name,
        image_id=conn.image.find_image(IMAGE, ignore_missing=False).id,
        flavor_id=conn.compute.find_flavor(FLAVOR, ignore_missing=False).id,
        networks=[{"uuid": conn.network.find_network(
            NETWORK, ignore_missing=False).id}],
        config_drive=True,
        key_name=keyname,
        user_data=base64.b64encode(script).decode(),
        personality=[{"path": PERSONALITY_PATH,
                      "contents": base64.b64encode(
                          personality.read_bytes()).decode()}],
        metadata={"rova_password": password})
    sid = s.id
    register_server(sid, "guest A")
    S.update(keyname=keyname, fingerprint=fingerprint, marker=marker,
             user_data=script, personality=personality.read_bytes(),
             password=password, a_name=name)
    guests.wait_status(sid, "ACTIVE")
    S["a"] = sid
    log = guests.wait_ready(sid)
    assert len(log.boot_ids) == 1, log.tail()
    S["a_boot"] = log.last_boot_id
    S["a_log"] = log


def test_configdrive_and_metadata_name_the_server(guests):
    sid, log = need("a", "a_log")
    admin = guests.server(sid, "rova-admin")
    hostname = admin.hostname
    assert hostname, "no OS-EXT-SRV-ATTR:hostname for %s" % sid
    # the guest sees hostname[.dhcp_domain] (Nova's default domain novalocal)
    allowed = {hostname, hostname + ".novalocal"}

    cd = log.fields("configdrive")
    assert cd and cd[0].get("uuid"), ("no `configdrive` line with a uuid "
                                      "(config drive not found?)\n" + log.tail(60))
    assert cd[0]["uuid"] == sid, cd
    assert cd[0].get("hostname") in allowed, (cd, allowed)
    assert cd[0].get("name") == S["a_name"], cd
    assert cd[0].get("fs") in ("iso9660", "vfat"), cd

    md = log.fields("metadata")
    assert md and md[0].get("uuid"), ("no `metadata` line with a uuid "
                                      "(metadata service not reached?)\n"
                                      + log.tail(60))
    assert md[0]["uuid"] == sid, md
    assert md[0].get("hostname") == cd[0]["hostname"], (md, cd)
    assert md[0].get("name") == S["a_name"], md
    assert log.payloads("datasource") == ["datasource configdrive"], log.tail(60)
    assert ("hostname " + cd[0]["hostname"]) in log.payloads("hostname")


def test_user_data_bytes_and_script(guests):
    sid, log = need("a", "a_log")
    expected = S["user_data"]
    got = log.block("user-data")
    assert got is not None, "no user-data block on the console\n" + log.tail(60)
    assert got == expected, "user data differs:\n%r\n%r" % (got, expected)
    end = log.fields("user-data-end")[0]
    assert end == {"bytes": str(len(expected)),
                   "sha256": hashlib.sha256(expected).hexdigest()}, end
    output = log.lines_between("user-data-script start",
                               "user-data-script exit")
    assert output is not None, "the user-data script did not run\n" + log.tail(60)
    assert "rova-test-script marker=%s" % S["marker"] in output, output
    assert any(ln.startswith("rova-test-script wrote /dev/vd") for ln in output), output
    exits = [p for p in log.payloads("user-data-script")
             if p.startswith("user-data-script exit=")]
    assert exits == ["user-data-script exit=0"], exits
    # the root disk (virtio serial `root`) carries the marker from now on
    disks = [f for f in log.fields("disk") if f.get("serial") == "root"]
    assert len(disks) == 1, log.payloads("disk")
    assert disks[0]["head"].startswith(S["marker"]), disks
    assert disks[0]["ro"] == "0", disks


def test_personality_file(guests):
    sid, log = need("a", "a_log")
    content = S["personality"]
    lines = [p for p in log.payloads("file")
             if p.startswith("file path=%s " % PERSONALITY_PATH)]
    assert lines == ["file path=%s bytes=%d sha256=%s"
                     % (PERSONALITY_PATH, len(content),
                        hashlib.sha256(content).hexdigest())], log.payloads("file")


def test_ssh_key_fingerprint(guests):
    sid, log = need("a", "a_log")
    assert log.payloads("ssh-key") == [
        "ssh-key name=%s fingerprint=%s" % (S["keyname"], S["fingerprint"])]
    ak = log.fields("authorized-keys")
    assert ak and ak[0].get("count") == "1", ak


def test_password_posted_and_readable(guests, sdk):
    sid, log = need("a", "a_log")
    pw = S["password"]
    assert log.payloads("password") == ["password posted bytes=%d" % len(pw)], \
        log.tail(60)
    assert sdk().compute.get_server_password(sid) == pw


# ---------------------------------------------------------------------------
# B. lifecycle (guest B boots from A's snapshot meanwhile)
# ---------------------------------------------------------------------------

def test_guest_sockets_are_private(rova):
    """The metadata, console and QMP sockets live in a directory only the
    service's user can enter."""
    need("a")
    d = _socket_dir(rova.data_dir)
    assert d.is_dir(), d
    assert d.stat().st_mode & 0o777 == 0o700, oct(d.stat().st_mode)


def test_snapshot_and_boot_from_it(cli, guests, unique):
    sid, = need("a")
    img = cli.json("rova-demo", "server", "image", "create", "--wait",
                   "--name", "snap-a-" + unique, sid)
    shown = cli.json("rova-demo", "image", "show", img["id"])
    assert shown["status"] == "active", shown
    guests.wait_status(sid, "ACTIVE")
    S["snapshot"] = img["id"]
    # not waited for here: it boots while the next tests work on guest A
    b = cli.json("rova-demo", "server", "create", "--image", img["id"],
                 "--flavor", FLAVOR, "--network", NETWORK, "guest-b-" + unique)
    register_server(b["id"], "guest B")
    S["b"] = b["id"]


def test_pause_unpause(cli, guests):
    sid, boot = need("a", "a_boot")
    cli.run("rova-demo", "server", "pause", sid)
    guests.wait_status(sid, "PAUSED")
    paused = guests.console(sid)
    time.sleep(3)
    still = guests.console(sid)
    assert still.last_heartbeat == paused.last_heartbeat, (
        "heartbeat went on while PAUSED: %s -> %s"
        % (paused.last_heartbeat, still.last_heartbeat))
    cli.run("rova-demo", "server", "unpause", sid)
    guests.wait_status(sid, "ACTIVE")
    assert_same_boot(guests, sid, still, "after unpause")


def test_suspend_resume(cli, guests):
    sid, = need("a")
    cli.run("rova-demo", "server", "suspend", sid)
    guests.wait_status(sid, "SUSPENDED")
    before = guests.console(sid)
    assert before.last_heartbeat is not None, before.tail()
    cli.run("rova-demo", "server", "resume", sid)
    guests.wait_status(sid, "ACTIVE")
    assert_same_boot(guests, sid, before, "after resume")


def test_snapshot_guest_sees_marker(guests):
    b, = need("b")
    guests.wait_status(b, "ACTIVE")
    log = guests.wait_ready(b)
    disks = [f for f in log.fields("disk") if f.get("serial") == "root"]
    assert len(disks) == 1, log.payloads("disk")
    assert disks[0]["head"].startswith(S["marker"]), (
        "snapshot's root disk does not start with %s: %s"
        % (S["marker"], disks))
    # no config drive asked for: the metadata service is the data source
    md = log.fields("metadata")
    assert md and md[0].get("uuid") == b, log.tail(60)
    S["b_boot"] = log.last_boot_id


def test_live_migration(cli, guests):
    sid, = need("a")
    src = guests.host_of(sid)
    assert src in HOSTS, src
    dest = [h for h in HOSTS if h != src][0]
    before = guests.console(sid)
    cli.run("rova-admin", "--os-compute-api-version", "2.30", "server",
            "migrate", "--live-migration", "--host", dest, sid)
    guests.wait_status(sid, "ACTIVE", cloud="rova-admin")
    shown = cli.json("rova-admin", "server", "show", "-c",
                     "OS-EXT-SRV-ATTR:host", sid)
    assert shown["OS-EXT-SRV-ATTR:host"] == dest, (shown, src)
    assert_same_boot(guests, sid, before, "after live migration")


# ---------------------------------------------------------------------------
# C. consoles
# ---------------------------------------------------------------------------

def test_console_log_lines(cli, guests):
    sid, = need("a")
    guests.wait_heartbeat_above(sid, 0)
    out = cli.run("rova-demo", "console", "log", "show", "--lines", "5", sid)
    lines = out.rstrip("\n").split("\n")
    assert 1 <= len(lines) <= 5, out
    assert heartbeat_line_in(out), out


def _ws_connect(url):
    import websocket
    return websocket.create_connection(url, subprotocols=["binary"],
                                       timeout=10)


def _ws_read_until(ws, pred, seconds):
    """Bytes received until pred(buffer) or `seconds` pass."""
    import websocket
    buf = b""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and not pred(buf):
        ws.settimeout(max(0.1, deadline - time.monotonic()))
        try:
            data = ws.recv()
        except websocket.WebSocketTimeoutException:
            break
        except websocket.WebSocketConnectionClosedException:
            break
        if not data:
            break
        buf += data if isinstance(data, bytes) else data.encode()
    return buf


def _assert_token_refused(url, seconds=4):
    """A second connection with a used token must not get a console."""
    import websocket
    try:
        ws = _ws_connect(url)
    except (websocket.WebSocketException, OSError):
        return
    try:
        got = _ws_read_until(ws, lambda b: len(b) > 0, seconds)
    finally:
        ws.close()
    assert not got, "a used console token was accepted again: %r" % got[:80]


def test_serial_console_websocket(cli, guests):
    sid, = need("a")
    url = cli.json("rova-demo", "console", "url", "show", "--serial", sid)
    assert url.get("type") == "serial", url
    parts = urllib.parse.urlsplit(url["url"])
    assert parts.scheme == "ws" and parts.path.endswith("/serial"), url
    assert urllib.parse.parse_qs(parts.query).get("token"), url
    ws = _ws_connect(url["url"])
    try:
        got = _ws_read_until(
            ws, lambda b: re.search(rb"ROVA-GUEST: heartbeat \d+\r?\n", b), 15)
    finally:
        ws.close()
    assert re.search(rb"ROVA-GUEST: heartbeat \d+", got), \
        "no heartbeat on the serial websocket in 15 s: %r" % got[-300:]
    _assert_token_refused(url["url"])


def _novnc_ws_url(url):
    parts = urllib.parse.urlsplit(url)
    query = urllib.parse.parse_qs(parts.query)
    path = query.get("path", [""])[0]      # "websockify?token=..."
    assert "token=" in path, url
    return "ws://%s/%s" % (parts.netloc, path.lstrip("/"))


def test_vnc_console_websocket(cli, guests):
    sid, = need("a")
    url = cli.json("rova-demo", "console", "url", "show", "--novnc", sid)
    assert url.get("type") == "novnc", url
    assert url["url"].startswith("http://") and "vnc_auto.html" in url["url"], url
    ws_url = _novnc_ws_url(url["url"])
    ws = _ws_connect(ws_url)
    try:
        got = _ws_read_until(ws, lambda b: len(b) >= 12, 10)
    finally:
        ws.close()
    assert got.startswith(b"RFB 003.008\n"), got[:40]
    _assert_token_refused(ws_url)


# ---------------------------------------------------------------------------
# D. a rova restart leaves the guests alone
# ---------------------------------------------------------------------------

def test_restart_keeps_guests_running(cli, guests, rova, sdk):
    a, b = need("a", "b")
    before = {sid: guests.wait_heartbeat_above(sid, 0) for sid in (a, b)}
    rc = rova.restart(120)
    print("rova exited with %s on SIGTERM" % rc)
    sdk.reset()
    for sid in (a, b):
        guests.wait_status(sid, "ACTIVE", timeout=60)
    for sid in (a, b):
        assert_same_boot(guests, sid, before[sid], "after a rova restart")
    # the restarted rova still drives the guest
    cli.run("rova-demo", "server", "pause", a)
    guests.wait_status(a, "PAUSED")
    paused = guests.console(a)
    cli.run("rova-demo", "server", "unpause", a)
    guests.wait_status(a, "ACTIVE")
    assert_same_boot(guests, a, paused, "unpause after a rova restart")


# ---------------------------------------------------------------------------
# B, continued: the operations that boot the guest again
# ---------------------------------------------------------------------------

def test_reboot_hard(cli, guests):
    sid, first = need("a", "a_boot")
    # after the live migration the log may start after the boot line
    old = guests.console(sid).last_boot_id or first
    cli.run("rova-demo", "server", "reboot", "--hard", sid)
    guests.wait_status(sid, "ACTIVE")
    new, _ = guests.wait_new_boot(sid, old)
    assert new != first
    S["a_boot"] = new
    log = guests.wait_ready(sid, new)
    seg = log.boot_segment(new)
    assert seg.heartbeats[:1] in ([], [0]), seg.heartbeats[:3]
    # the user data runs again on every boot; the root disk keeps its marker
    disks = [f for f in seg.fields("disk") if f.get("serial") == "root"]
    assert disks and disks[0]["head"].startswith(S["marker"]), disks


def test_stop_start(cli, guests):
    sid, known = need("a", "a_boot")
    old = guests.console(sid).last_boot_id or known
    cli.run("rova-demo", "server", "stop", sid)
    guests.wait_status(sid, "SHUTOFF")
    # a clean stop: the guest saw the ACPI power button first
    log = guests.console(sid)
    seg = log.boot_segment(old) or log
    assert "powerdown" in seg.payloads("powerdown"), guests.context(sid, log)
    cli.run("rova-demo", "server", "start", sid)
    guests.wait_status(sid, "ACTIVE")
    new, _ = guests.wait_new_boot(sid, old)
    S["a_boot"] = new
    guests.wait_ready(sid, new)


def test_server_outlives_its_images(cli, guests):
    """Guest B's snapshot image is deleted, then B is shelved (offloaded)
    and unshelved, which deletes the shelved image, then stopped and
    started: every QEMU start still finds its disk's backing file and its
    kernel (the driver's image cache), and the disk keeps the marker."""
    b, snap = need("b", "snapshot")
    guests.wait_status(b, "ACTIVE")
    cli.run("rova-demo", "image", "delete", snap)
    del S["snapshot"]  # gone: the cleanup below has nothing to delete
    cli.run("rova-demo", "server", "shelve", b)
    guests.wait_status(b, "SHELVED_OFFLOADED")
    cli.run("rova-demo", "server", "unshelve", b)
    guests.wait_status(b, "ACTIVE")
    log = guests.wait_ready(b)
    old = log.last_boot_id
    cli.run("rova-demo", "server", "stop", b)
    guests.wait_status(b, "SHUTOFF")
    cli.run("rova-demo", "server", "start", b)
    guests.wait_status(b, "ACTIVE")
    new, _ = guests.wait_new_boot(b, old)
    log = guests.wait_ready(b, new)
    seg = log.boot_segment(new)
    disks = [f for f in seg.fields("disk") if f.get("serial") == "root"]
    assert disks and disks[0]["head"].startswith(S["marker"]), disks


# ---------------------------------------------------------------------------
# cleanup: deleting the servers ends their QEMU processes
# ---------------------------------------------------------------------------

def test_delete_ends_qemu(cli, guests, rova):
    a, b = need("a", "b")
    procs = guest_processes(rova.data_dir, also=(a, b))
    assert len(procs) == 2, (
        "expected one QEMU process per server (2), found %d:\n%s"
        % (len(procs), "\n".join("%d %s" % (p, " ".join(v))
                                 for p, v in sorted(procs.items()))))
    for sid in (a, b):
        cli.run("rova-demo", "server", "delete", "--wait", sid)
    deadline = time.monotonic() + 60
    left = procs
    while time.monotonic() < deadline:
        left = {p: v for p, v in procs.items()
                if p in guest_processes(rova.data_dir, also=(a, b))}
        if not left:
            break
        time.sleep(0.5)
    assert not left, "QEMU still running after delete: %s" % sorted(left)
    if "snapshot" in S:
        cli.run("rova-demo", "image", "delete", S["snapshot"])
    cli.run("rova-demo", "keypair", "delete", S["keyname"])
