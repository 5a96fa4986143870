"""Volume snapshots through the real `openstack` CLI and openstacksdk:
`volume snapshot create/list/show/set/unset/delete`, `--force` for an
in-use (attached) volume, a volume made from a snapshot (`volume create
--snapshot`), a volume with snapshots refused a delete unless purged
(Cinder's cascade), and another project's snapshots staying out of
sight."""

import time

import pytest

from test_cli_volumes import wait_volume


def wait_snapshot(cli, cloud, name_or_id, status, timeout=60):
    """The snapshot once its status is `status` (None: once it is gone)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        listed = cli.json(cloud, "volume", "snapshot", "list")
        match = [s for s in listed if name_or_id in (s["ID"], s["Name"])]
        if status is None and not match:
            return None
        if match and match[0]["Status"] == status:
            return cli.json(cloud, "volume", "snapshot", "show",
                            match[0]["ID"])
        time.sleep(0.2)
    pytest.fail("snapshot %s never reached %s" % (name_or_id, status))


def test_snapshot_lifecycle(cli, unique):
    vol_name = "snapvol-" + unique
    cli.run("rova-demo", "volume", "create", "--size", "1", vol_name)
    vol = wait_volume(cli, "rova-demo", vol_name, "available")

    name = "snap-" + unique
    made = cli.json("rova-demo", "volume", "snapshot", "create",
                    "--volume", vol_name, "--description", "first",
                    "--property", "purpose=cli", name)
    assert made["volume_id"] == vol["id"], made
    snap = wait_snapshot(cli, "rova-demo", name, "available")
    assert snap["size"] == 1, snap
    assert snap["description"] == "first", snap
    assert snap["properties"] in ({"purpose": "cli"}, "purpose='cli'"), snap
    # The volume keeps its status.
    assert cli.json("rova-demo", "volume", "show",
                    vol["id"])["status"] == "available"

    listed = cli.json("rova-demo", "volume", "snapshot", "list", "--long")
    row = [s for s in listed if s["ID"] == snap["id"]][0]
    assert row["Volume"] in (vol_name, vol["id"]), row
    by_volume = cli.json("rova-demo", "volume", "snapshot", "list",
                         "--volume", vol["id"])
    assert [s["ID"] for s in by_volume] == [snap["id"]], by_volume

    cli.run("rova-demo", "volume", "snapshot", "set", "--name",
            name + "-b", "--description", "renamed", "--property",
            "tier=gold", snap["id"])
    cli.run("rova-demo", "volume", "snapshot", "unset", "--property",
            "purpose", snap["id"])
    snap = cli.json("rova-demo", "volume", "snapshot", "show", snap["id"])
    assert (snap["name"], snap["description"]) == (name + "-b",
                                                   "renamed"), snap
    assert snap["properties"] in ({"tier": "gold"}, "tier='gold'"), snap

    # Another project neither sees nor deletes it; a reader looks only.
    assert snap["id"] not in {s["ID"] for s in
                              cli.json("rova-alt", "volume", "snapshot",
                                       "list")}
    cli.fail("rova-alt", "volume", "snapshot", "show", snap["id"])
    cli.fail("rova-alt", "volume", "snapshot", "delete", snap["id"])
    assert cli.json("rova-reader", "volume", "snapshot", "show",
                    snap["id"])["id"] == snap["id"]
    cli.fail("rova-reader", "volume", "snapshot", "create", "--volume",
             vol["id"], "reader-" + unique)

    # A volume with a snapshot is not deleted; without it, it is.
    cli.fail("rova-demo", "volume", "delete", vol["id"])
    cli.run("rova-demo", "volume", "snapshot", "delete", snap["id"])
    wait_snapshot(cli, "rova-demo", snap["id"], None)
    cli.run("rova-demo", "volume", "delete", vol["id"])
    wait_volume(cli, "rova-demo", vol["id"], None)


def test_volume_from_snapshot(cli, unique, cirros_image):
    src_name = "snapsrc-" + unique
    cli.run("rova-demo", "volume", "create", "--image", cirros_image["ID"],
            "--size", "2", src_name)
    src = wait_volume(cli, "rova-demo", src_name, "available")
    snap_name = "snapimg-" + unique
    cli.run("rova-demo", "volume", "snapshot", "create", "--volume",
            src_name, snap_name)
    snap = wait_snapshot(cli, "rova-demo", snap_name, "available")

    name = "restored-" + unique
    cli.run("rova-demo", "volume", "create", "--snapshot", snap_name, name)
    vol = wait_volume(cli, "rova-demo", name, "available")
    assert vol["snapshot_id"] == snap["id"], vol
    assert vol["size"] == 2, vol
    assert vol["bootable"] in (True, "true"), vol
    assert vol["volume_image_metadata"]["image_id"] == cirros_image["ID"]

    # Deleting the source volume with --purge takes its snapshot too
    # (a cascade); the restored volume stays.
    cli.run("rova-demo", "volume", "delete", "--purge", src["id"])
    wait_volume(cli, "rova-demo", src["id"], None)
    wait_snapshot(cli, "rova-demo", snap["id"], None)
    assert cli.json("rova-demo", "volume", "show",
                    vol["id"])["status"] == "available"
    cli.run("rova-demo", "volume", "delete", vol["id"])
    wait_volume(cli, "rova-demo", vol["id"], None)


def test_in_use_volume_snapshot_needs_force(cli, unique, cirros_image):
    server = cli.json("rova-demo", "server", "create", "--wait",
                      "--image", cirros_image["Name"], "--flavor", "m1.tiny",
                      "--network", "private", "snapsrv-" + unique)
    name = "attached-" + unique
    cli.run("rova-demo", "volume", "create", "--size", "1", name)
    vol = wait_volume(cli, "rova-demo", name, "available")
    cli.run("rova-demo", "server", "add", "volume", server["id"], vol["id"])
    wait_volume(cli, "rova-demo", vol["id"], "in-use")

    cli.fail("rova-demo", "--os-volume-api-version", "3.0", "volume",
             "snapshot", "create", "--volume", vol["id"], "unforced-" + unique)
    cli.run("rova-demo", "--os-volume-api-version", "3.0", "volume",
            "snapshot", "create", "--volume", vol["id"], "--force",
            "forced-" + unique)
    snap = wait_snapshot(cli, "rova-demo", "forced-" + unique, "available")
    assert cli.json("rova-demo", "volume", "show",
                    vol["id"])["status"] == "in-use"

    cli.run("rova-demo", "volume", "snapshot", "delete", snap["id"])
    wait_snapshot(cli, "rova-demo", snap["id"], None)
    cli.run("rova-demo", "server", "delete", "--wait", server["id"])
    wait_volume(cli, "rova-demo", vol["id"], "available")
    cli.run("rova-demo", "volume", "delete", vol["id"])


def test_sdk_snapshots(sdk_connect, unique):
    conn = sdk_connect("rova-demo")
    vol = conn.block_storage.create_volume(size=1, name="sdksnap-" + unique)
    vol = conn.block_storage.wait_for_status(vol, "available", wait=60)
    snap = conn.block_storage.create_snapshot(volume_id=vol.id,
                                              name="sdk-" + unique)
    snap = conn.block_storage.wait_for_status(snap, "available", wait=60)
    assert snap.size == 1
    assert snap.volume_id == vol.id
    names = [s.name for s in conn.block_storage.snapshots()]
    assert "sdk-" + unique in names, names
    conn.block_storage.delete_snapshot(snap)
    conn.block_storage.wait_for_delete(snap, wait=60)
    conn.block_storage.delete_volume(vol)
    conn.block_storage.wait_for_delete(vol, wait=60)
