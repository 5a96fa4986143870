"""Server actions through the real `openstack` CLI (the issue-3 flows).

Each test makes its own server so a failure in one does not cascade; the
servers are deleted at the end of each test.
"""

import time

import pytest

IMAGE = "cirros-0.6.2-x86_64-disk"
IMAGE_ALT = "cirros-0.6.2-x86_64-disk-alt"


def wait_status(cli, sid, *want, cloud="rova-demo", timeout=60):
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        s = cli.json(cloud, "server", "show", sid)
        last = s["status"]
        if last in want and not s.get("OS-EXT-STS:task_state"):
            return s
        time.sleep(0.2)
    raise AssertionError("server %s stayed %s, wanted %s" % (sid, last, want))


@pytest.fixture
def server(cli, unique):
    made = []

    def make(suffix="", *extra, cloud="rova-demo"):
        s = cli.json(cloud, "server", "create", "--wait", "--image", IMAGE,
                     "--flavor", "m1.tiny", "--network", "private",
                     *extra, "act-%s%s" % (unique, suffix))
        made.append((cloud, s["id"]))
        return s["id"]

    yield make
    for cloud, sid in made:
        cli.raw(cloud, "server", "delete", sid)


def test_pause_suspend_stop_reboot(cli, server):
    sid = server()
    cli.run("rova-demo", "server", "pause", sid)
    assert wait_status(cli, sid, "PAUSED")["OS-EXT-STS:power_state"] in ("Paused", 3)
    cli.run("rova-demo", "server", "unpause", sid)
    wait_status(cli, sid, "ACTIVE")
    cli.run("rova-demo", "server", "suspend", sid)
    wait_status(cli, sid, "SUSPENDED")
    cli.run("rova-demo", "server", "resume", sid)
    wait_status(cli, sid, "ACTIVE")
    cli.run("rova-demo", "server", "stop", sid)
    wait_status(cli, sid, "SHUTOFF")
    cli.run("rova-demo", "server", "start", sid)
    wait_status(cli, sid, "ACTIVE")
    cli.run("rova-demo", "server", "reboot", "--soft", "--wait", sid)
    cli.run("rova-demo", "server", "reboot", "--hard", "--wait", sid)
    wait_status(cli, sid, "ACTIVE")
    actions = [a["Action"] for a in
               cli.json("rova-demo", "server", "event", "list", sid)]
    assert actions[:8] == ["reboot", "reboot", "start", "stop", "resume",
                           "suspend", "unpause", "pause"], actions


def test_rebuild_and_resize(cli, server):
    sid = server()
    cli.run("rova-demo", "server", "rebuild", "--image", IMAGE_ALT,
            "--wait", sid)
    s = wait_status(cli, sid, "ACTIVE")
    alt = cli.json("rova-demo", "image", "show", IMAGE_ALT)
    assert alt["id"] in str(s["image"]), s["image"]

    cli.run("rova-demo", "server", "resize", "--flavor", "m1.small",
            "--wait", sid)
    wait_status(cli, sid, "VERIFY_RESIZE")
    cli.run("rova-demo", "server", "resize", "confirm", sid)
    s = wait_status(cli, sid, "ACTIVE")
    assert "m1.small" in str(s["flavor"]), s["flavor"]

    # Nova refuses to shrink the disk.
    proc = cli.fail("rova-demo", "server", "resize", "--flavor", "m1.tiny", sid)
    assert "Unable to resize disk down" in proc.stderr + proc.stdout
    cli.run("rova-demo", "server", "resize", "--flavor", "m1.medium",
            "--wait", sid)
    wait_status(cli, sid, "VERIFY_RESIZE")
    cli.run("rova-demo", "server", "resize", "revert", sid)
    s = wait_status(cli, sid, "ACTIVE")
    assert "m1.small" in str(s["flavor"]), s["flavor"]


def test_lock_with_reason_refuses_member(cli, server):
    sid = server()
    cli.run("rova-demo", "--os-compute-api-version", "2.73", "server",
            "lock", "--reason", "maintenance window", sid)
    s = cli.json("rova-demo", "--os-compute-api-version", "2.73",
                 "server", "show", sid)
    assert s["locked"] is True
    assert s["locked_reason"] == "maintenance window"
    proc = cli.fail("rova-demo", "server", "stop", sid)
    assert "is locked" in (proc.stderr + proc.stdout)
    # the admin is not blocked by the lock
    cli.run("rova-admin", "server", "pause", sid)
    wait_status(cli, sid, "PAUSED", cloud="rova-admin")
    cli.run("rova-demo", "server", "unlock", sid)
    cli.run("rova-demo", "server", "unpause", sid)
    s = wait_status(cli, sid, "ACTIVE")
    assert s["locked"] is False


def test_shelve_unshelve_rescue(cli, server):
    sid = server()
    cli.run("rova-demo", "server", "shelve", sid)
    wait_status(cli, sid, "SHELVED_OFFLOADED", "SHELVED")
    cli.run("rova-demo", "server", "unshelve", sid)
    wait_status(cli, sid, "ACTIVE")
    cli.run("rova-demo", "server", "rescue", sid)
    wait_status(cli, sid, "RESCUE")
    cli.run("rova-demo", "server", "unrescue", sid)
    wait_status(cli, sid, "ACTIVE")


def test_image_and_backup_create(cli, server, unique):
    sid = server()
    snap = cli.json("rova-demo", "server", "image", "create", "--wait",
                    "--name", "snap-" + unique, sid)
    img = cli.json("rova-demo", "image", "show", snap["id"])
    assert img["status"] == "active"
    assert img["properties"]["image_type"] == "snapshot"
    wait_status(cli, sid, "ACTIVE")
    names = []
    for n in range(3):
        name = "bk-%s-%d" % (unique, n)
        names.append(name)
        cli.json("rova-demo", "server", "backup", "create", "--wait",
                 "--name", name, "--type", "daily", "--rotate", "2", sid)
        wait_status(cli, sid, "ACTIVE")
    deadline = time.time() + 30
    while time.time() < deadline:
        left = {i["Name"] for i in cli.json("rova-demo", "image", "list")}
        if not names[0] in left:
            break
        time.sleep(0.3)
    assert names[0] not in left and names[1] in left and names[2] in left, left
    cli.run("rova-demo", "image", "delete", snap["id"])


def test_console_log_and_url(cli, server):
    sid = server()
    log = cli.run("rova-demo", "console", "log", "show", "--lines", "3", sid)
    assert 0 < len(log.strip().splitlines()) <= 3, log
    url = cli.json("rova-demo", "console", "url", "show", "--novnc", sid)
    assert url["type"] == "novnc"
    # Nova's noVNC URL carries the token inside an encoded `path`.
    assert "token%3D" in url["url"] or "token=" in url["url"], url


def test_server_group_affinity(cli, server, unique):
    g = cli.json("rova-demo", "server", "group", "create", "--policy",
                 "affinity", "grp-" + unique)
    assert g["policy"] == "affinity" or "affinity" in str(g.get("policies"))
    a = server("-a", "--hint", "group=%s" % g["id"])
    b = server("-b", "--hint", "group=%s" % g["id"])
    sa = cli.json("rova-demo", "server", "show", a)
    sb = cli.json("rova-demo", "server", "show", b)
    assert sa["hostId"] == sb["hostId"] != ""
    shown = cli.json("rova-demo", "server", "group", "show", g["id"])
    key = next(k for k in shown if "member" in k.lower())
    members = shown[key]
    if isinstance(members, str):
        members = members.replace(",", " ").split()
    assert set(members) >= {a, b}, shown
    for sid in (a, b):
        cli.run("rova-demo", "server", "delete", "--wait", sid)
    cli.run("rova-demo", "server", "group", "delete", g["id"])


def test_compute_service_delete(cli, server):
    """`openstack compute service delete`: refused with Nova's 409 while
    the host has a server; a control service deleted leaves the list (a
    compute host deleted would leave this one-host cloud without hosts;
    the integration suite deletes one of two)."""
    sid = server()
    host = cli.json("rova-admin", "server", "show", sid)["OS-EXT-SRV-ATTR:host"]
    computes = cli.json("rova-admin", "compute", "service", "list",
                        "--service", "nova-compute")
    svc = next(s for s in computes if s["Host"] == host)
    _, proc = cli.raw("rova-admin", "compute", "service", "delete",
                      str(svc["ID"]))
    assert proc.returncode != 0, proc.stdout
    assert "Unable to delete compute service that is hosting instances" \
        in proc.stderr, proc.stderr[-2000:]
    assert len(cli.json("rova-admin", "compute", "service", "list",
                        "--service", "nova-compute")) == len(computes)
    sched = cli.json("rova-admin", "compute", "service", "list",
                     "--service", "nova-scheduler")
    assert len(sched) == 1, sched
    cli.run("rova-admin", "compute", "service", "delete", str(sched[0]["ID"]))
    assert cli.json("rova-admin", "compute", "service", "list",
                    "--service", "nova-scheduler") == []


def test_server_add_remove_port_and_network(cli, server, unique):
    """`openstack server add/remove network|port` (os-interface): a new
    port on the network, the user's own port; removed, Rova's port goes
    and the user's is kept unbound."""
    sid = server()

    def ports():
        return cli.json("rova-demo", "port", "list", "--server", sid)

    assert len(ports()) == 1
    cli.run("rova-demo", "server", "add", "network", sid, "private")
    assert len(ports()) == 2
    mine = cli.json("rova-demo", "port", "create", "--network", "private",
                    "port-%s" % unique)["id"]
    cli.run("rova-demo", "server", "add", "port", sid, mine)
    attached = {p["ID"] for p in ports()}
    assert mine in attached and len(attached) == 3, attached
    events = [a["Action"] for a in
              cli.json("rova-demo", "server", "event", "list", sid)]
    assert events[:2] == ["attach_interface", "attach_interface"], events
    cli.run("rova-demo", "server", "remove", "port", sid, mine)
    assert cli.json("rova-demo", "port", "show", mine)["device_id"] == ""
    assert len(ports()) == 2
    cli.run("rova-demo", "server", "remove", "network", sid, "private")
    assert ports() == []
    cli.run("rova-demo", "port", "delete", mine)
