"""Real guests moved between QEMU agents that do not share storage
(`ROVA_MH_STORAGE=local scripts/multihost.sh test-qemu DIR`): each agent
keeps instance disks in its own state directory, so a live migration
mirrors the disks to the destination over NBD before the memory follows
(a block migration) and a cold migration copies them agent to agent.
Each test marks the root disk from the guest on its first boot and reads
the disk's head again on a later boot: the mark came along with a move,
and is gone after an evacuation (rebuilt from the image).
"""

import pytest

from conftest import wait_for
import test_qemu_moves as g

pytestmark = pytest.mark.qemu_local

ADMIN, V = g.ADMIN, g.V


@pytest.fixture(scope="module")
def guest_image(cli):
    return g.upload_guest_image(cli)


def instance_dir(cloud, host, sid):
    return cloud.base / host / "instances" / sid


def marked_boot(cli, image, name, host, tmp_path):
    script = tmp_path / "mark.sh"
    script.write_text(g.MARK_SCRIPT)
    sid = g.boot(cli, image, name, host, "--user-data", str(script))
    first = g.console(cli, sid)
    return sid, first, "MARK-" + g.boot_ids(first)[-1]


def wait_new_boot(cli, sid, seen, what):
    """The console once a boot whose id is not in `seen` printed a
    heartbeat (its disks are listed before it)."""
    def booted(t):
        p = g.protocol(t)
        starts = [i for i, x in enumerate(p) if g.BOOT_RE.match(x)]
        if not starts:
            return False
        last = p[starts[-1]:]
        return g.BOOT_RE.match(last[0]).group(1) not in seen and \
            any(g.HEARTBEAT_RE.match(x) for x in last)
    return g.wait_console(cli, sid, what, booted, timeout=g.BOOT_TIMEOUT)


def cold_migrate(cli, sid, dest):
    cli.run(ADMIN, *V, "server", "migrate", "--host", dest, "--wait", sid)
    s = g.wait_status(cli, sid, "VERIFY_RESIZE", timeout=300)
    assert s["OS-EXT-SRV-ATTR:host"] == dest, s


def settled_on(cloud, cli, sid, host, left, why):
    """The server ACTIVE on `host`, and its disks gone from `left`."""
    s = g.wait_status(cli, sid, "ACTIVE", timeout=300)
    assert s["OS-EXT-SRV-ATTR:host"] == host, s
    wait_for("%s's copy of the disks gone %s" % (left, why),
             lambda: not instance_dir(cloud, left, sid).exists(), timeout=30)


def test_a_real_guest_block_migrates_between_agents_and_back(
        cloud, cli, guest_image, tmp_path):
    sid, first, mark = marked_boot(cli, guest_image, "mhl-live", "agent-1",
                                   tmp_path)
    try:
        assert (instance_dir(cloud, "agent-1", sid) / "disk.qcow2").is_file()
        assert not instance_dir(cloud, "agent-2", sid).exists()
        for src, dest in (("agent-1", "agent-2"), ("agent-2", "agent-1")):
            before = g.console(cli, sid)
            cli.run(ADMIN, *V, "server", "migrate", "--live-migration",
                    "--host", dest, "--wait", sid)
            # The disks live on the destination now; the source's copy
            # went.
            settled_on(cloud, cli, sid, dest, src, "after the migration")
            assert (instance_dir(cloud, dest, sid) / "disk.qcow2").is_file()
            g.assert_same_guest(cli, sid, before,
                                "after block migration to " + dest)
        # The console kept every line across both hosts.
        assert g.boot_ids(g.console(cli, sid))[0] == g.boot_ids(first)[0]
        migs = cli.json(ADMIN, *V, "server", "migration", "list",
                        "--server", sid, "--type", "live-migration")
        assert [m["Status"] for m in migs] == ["completed"] * 2, migs
        # Each agent keeps its own disks: a migration without a block copy
        # is refused.
        g.assert_storage_refused(
            cli, sid, "agent-2", "--shared-migration",
            "is not on shared storage: Shared storage live-migration requires "
            "either shared storage or boot-from-volume with no local disks.")
        # What the guest wrote on agent-1 came back through both mirrors:
        # a boot now reads its mark from the root disk.
        cli.run(ADMIN, "server", "reboot", "--hard", "--wait", sid)
        after = wait_new_boot(cli, sid, set(g.boot_ids(first)),
                              "a boot after the hard reboot")
        got = g.root_heads(after)
        assert got and got[-1].startswith(mark), (mark, got)
    finally:
        cli.run(ADMIN, "server", "delete", "--wait", sid)


def test_a_cold_migration_copies_the_disks_reverts_and_confirms(
        cloud, cli, guest_image, tmp_path):
    sid, first, mark = marked_boot(cli, guest_image, "mhl-cold", "agent-2",
                                   tmp_path)
    seen = set(g.boot_ids(first))
    try:
        # Migrate, then revert: back on agent-2 from its own disk, and
        # agent-1's copy gone.
        cold_migrate(cli, sid, "agent-1")
        assert (instance_dir(cloud, "agent-1", sid) / "disk.qcow2").is_file()
        assert (instance_dir(cloud, "agent-2", sid) / "disk.qcow2").is_file()
        on1 = wait_new_boot(cli, sid, seen, "a boot on agent-1")
        assert g.root_heads(on1)[-1].startswith(mark), g.root_heads(on1)
        seen |= set(g.boot_ids(on1))
        cli.run(ADMIN, *V, "server", "migration", "revert", sid)
        settled_on(cloud, cli, sid, "agent-2", "agent-1", "after the revert")
        back = wait_new_boot(cli, sid, seen, "a boot back on agent-2")
        assert g.root_heads(back)[-1].startswith(mark), g.root_heads(back)
        seen |= set(g.boot_ids(back))

        # Migrate again and confirm: agent-2 lets go of its disks.
        cold_migrate(cli, sid, "agent-1")
        cli.run(ADMIN, *V, "server", "migration", "confirm", sid)
        settled_on(cloud, cli, sid, "agent-1", "agent-2", "after the confirm")
        again = wait_new_boot(cli, sid, seen, "a boot on agent-1 again")
        assert g.root_heads(again)[-1].startswith(mark), g.root_heads(again)
        migs = cli.json(ADMIN, *V, "server", "migration", "list",
                        "--server", sid, "--type", "cold-migration")
        assert sorted(m["Status"] for m in migs) == \
            ["confirmed", "reverted"], migs
    finally:
        cli.run(ADMIN, "server", "delete", "--wait", sid)


def test_an_evacuated_guest_boots_from_its_image_and_the_host_drops_its_disks(
        cloud, cli, guest_image, tmp_path):
    sid, first, mark = marked_boot(cli, guest_image, "mhl-evac", "agent-1",
                                   tmp_path)
    addresses = g.server(cli, sid)["addresses"]
    try:
        cloud.crash("a1")
        wait_for("agent-1 down",
                 lambda: g.compute_state(cli, "agent-1") == "down",
                 timeout=60)
        cli.run(ADMIN, *V, "compute", "service", "set", "--down", "agent-1",
                "nova-compute")
        cli.run(ADMIN, "--os-compute-api-version", "2.94", "server",
                "evacuate", sid)
        s = g.wait_status(cli, sid, "ACTIVE", timeout=g.BOOT_TIMEOUT)
        assert s["OS-EXT-SRV-ATTR:host"] == "agent-2", s
        assert s["addresses"] == addresses, (addresses, s["addresses"])
        after = wait_new_boot(cli, sid, set(g.boot_ids(first)),
                              "a boot on agent-2")
        # Its disk stayed with the failed host: agent-2 rebuilt it from
        # the image (Nova's recreate without shared storage), so the
        # first boot's mark is not there.
        got = g.root_heads(after)
        assert got and not got[-1].startswith(mark), (mark, got)
        assert (instance_dir(cloud, "agent-1", sid) / "disk.qcow2").is_file()
        # The host returns: its agent removes its copy of the guest, disks
        # included, and the guest on agent-2 runs on.
        cloud.start("a1")
        wait_for("agent-1's disks of the evacuated guest gone",
                 lambda: not instance_dir(cloud, "agent-1", sid).exists(),
                 timeout=120)
        last = g.heartbeats(g.console(cli, sid))[-1]
        again = g.wait_console(cli, sid, "heartbeats on agent-2 going on",
                               lambda t: g.heartbeats(t)[-1] > last + 2,
                               timeout=60)
        assert g.boot_ids(again)[-1] == g.boot_ids(after)[-1]
    finally:
        cli.run(ADMIN, *V, "compute", "service", "set", "--up", "agent-1",
                "nova-compute")
        cli.run(ADMIN, "server", "delete", "--wait", sid)
