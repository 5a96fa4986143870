"""Block storage through the real `openstack` CLI and openstacksdk: the
catalog's block-storage endpoint, `volume create/list/show/set/unset/
delete` (blank, from an image, from a volume), growing a volume, a
volume uploaded to an image, and another project's volumes staying out
of sight."""

import time

import pytest


def wait_volume(cli, cloud, name_or_id, status, timeout=60):
    """The volume once its status is `status` (None: once it is gone)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        listed = {v["ID"]: v for v in cli.json(cloud, "volume", "list")}
        match = [v for v in listed.values()
                 if name_or_id in (v["ID"], v["Name"])]
        if status is None and not match:
            return None
        if match and match[0]["Status"] == status:
            return cli.json(cloud, "volume", "show", match[0]["ID"])
        time.sleep(0.2)
    pytest.fail("volume %s never reached %s" % (name_or_id, status))


def test_volume_lifecycle(cli, unique):
    name = "vol-" + unique
    made = cli.json("rova-demo", "volume", "create", "--size", "1",
                    "--property", "purpose=cli", name)
    assert made["size"] == 1, made
    vol = wait_volume(cli, "rova-demo", name, "available")
    assert vol["properties"] == {"purpose": "cli"}, vol
    assert vol["type"] == "__DEFAULT__", vol

    cli.run("rova-demo", "volume", "set", "--name", name + "-b",
            "--description", "grown", "--property", "tier=gold",
            "--size", "2", name)
    vol = wait_volume(cli, "rova-demo", name + "-b", "available")
    assert vol["size"] == 2, vol
    assert vol["description"] == "grown", vol
    assert vol["properties"] == {"purpose": "cli", "tier": "gold"}, vol
    cli.run("rova-demo", "volume", "unset", "--property", "purpose",
            vol["id"])
    vol = cli.json("rova-demo", "volume", "show", vol["id"])
    assert vol["properties"] == {"tier": "gold"}, vol

    # Another project neither sees nor changes it.
    assert vol["id"] not in {v["ID"] for v in
                             cli.json("rova-alt", "volume", "list")}
    cli.fail("rova-alt", "volume", "show", vol["id"])
    cli.fail("rova-alt", "volume", "delete", vol["id"])
    # A reader looks but may not create.
    assert cli.json("rova-reader", "volume", "show", vol["id"])["id"] == \
        vol["id"]
    cli.fail("rova-reader", "volume", "create", "--size", "1",
             "reader-" + unique)

    cli.run("rova-demo", "volume", "delete", vol["id"])
    wait_volume(cli, "rova-demo", vol["id"], None)


def test_volume_from_image_and_from_volume(cli, unique, cirros_image):
    name = "boot-" + unique
    cli.run("rova-demo", "volume", "create", "--image", cirros_image["ID"],
            "--size", "1", name)
    vol = wait_volume(cli, "rova-demo", name, "available")
    assert vol["bootable"] in (True, "true"), vol
    assert vol["volume_image_metadata"]["image_id"] == cirros_image["ID"], vol

    clone = "clone-" + unique
    cli.run("rova-demo", "volume", "create", "--source", name, clone)
    copy = wait_volume(cli, "rova-demo", clone, "available")
    assert copy["source_volid"] == vol["id"], copy
    assert copy["size"] == vol["size"], copy
    cli.run("rova-demo", "volume", "delete", clone, name)
    wait_volume(cli, "rova-demo", name, None)


def test_image_create_from_volume(cli, unique, cirros_image):
    """`image create --volume` uploads a volume made from the image to a
    new image (Cinder's `os-volume_upload_image`): the volume is
    `available` again after, the image `active` with the volume's bytes,
    and a server boots from it."""
    name = "upsrc-" + unique
    cli.run("rova-demo", "volume", "create", "--image", cirros_image["ID"],
            "--size", "1", name)
    vol = wait_volume(cli, "rova-demo", name, "available")
    made = cli.json("rova-demo", "image", "create", "--volume", vol["id"],
                    "--disk-format", "qcow2", "upimg-" + unique)
    assert made["status"] == "uploading", made
    assert made["volume_type"] == "__DEFAULT__", made
    image_id = made["image_id"]
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        shown = cli.json("rova-demo", "image", "show", image_id)
        if shown["status"] == "active":
            break
        time.sleep(0.2)
    assert shown["status"] == "active", shown
    assert (shown["name"], shown["disk_format"]) == (
        "upimg-" + unique, "qcow2"), shown
    assert shown["virtual_size"] == 1 << 30, shown
    wait_volume(cli, "rova-demo", vol["id"], "available")
    # Not another project's.
    cli.fail("rova-alt", "image", "show", image_id)

    server = cli.json("rova-demo", "server", "create", "--wait",
                      "--image", image_id, "--flavor", "m1.tiny",
                      "--network", "private", "upsrv-" + unique)
    assert server["status"] == "ACTIVE", server
    cli.run("rova-demo", "server", "delete", "--wait", server["id"])
    cli.run("rova-demo", "image", "delete", image_id)
    cli.run("rova-demo", "volume", "delete", vol["id"])
    wait_volume(cli, "rova-demo", vol["id"], None)


def test_sdk_block_storage(sdk_connect, unique):
    conn = sdk_connect("rova-demo")
    vol = conn.block_storage.create_volume(size=1, name="sdk-" + unique)
    vol = conn.block_storage.wait_for_status(vol, "available", wait=60)
    assert vol.size == 1
    conn.block_storage.extend_volume(vol, 3)
    # The answer is 202: the volume is `extending` until the bytes grow.
    assert conn.block_storage.get_volume(vol.id).status in (
        "extending", "available")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        vol = conn.block_storage.get_volume(vol.id)
        if vol.status == "available":
            break
        time.sleep(0.2)
    assert (vol.status, vol.size) == ("available", 3), vol
    names = [v.name for v in conn.block_storage.volumes()]
    assert "sdk-" + unique in names, names
    conn.block_storage.delete_volume(vol)
    conn.block_storage.wait_for_delete(vol, wait=60)


def test_server_add_remove_volume(cli, unique, cirros_image):
    """`server add volume` attaches (the volume in-use, the server lists
    it), `server remove volume` detaches; deleting the server detaches
    what is still attached."""
    server = cli.json("rova-demo", "server", "create", "--wait",
                      "--image", cirros_image["Name"], "--flavor", "m1.tiny",
                      "--network", "private", "vsrv-" + unique)
    names = ["data-" + unique, "logs-" + unique]
    for name in names:
        cli.run("rova-demo", "volume", "create", "--size", "1", name)
    vols = [wait_volume(cli, "rova-demo", n, "available") for n in names]

    cli.run("rova-demo", "server", "add", "volume", "--device", "/dev/vdc",
            server["id"], vols[0]["id"])
    cli.run("rova-demo", "server", "add", "volume", server["id"],
            vols[1]["id"])
    shown = cli.json("rova-demo", "volume", "show", vols[0]["id"])
    assert shown["status"] == "in-use", shown
    att = shown["attachments"][0]
    assert (att["server_id"], att["device"]) == (server["id"], "/dev/vdc"), att
    listed = cli.json("rova-demo", "server", "volume", "list", server["id"])
    assert {(v["Volume ID"], v["Device"]) for v in listed} == {
        (vols[0]["id"], "/dev/vdc"), (vols[1]["id"], "/dev/vdb")}, listed
    # An attached volume is not deleted.
    cli.fail("rova-demo", "volume", "delete", vols[0]["id"])

    cli.run("rova-demo", "server", "remove", "volume", server["id"],
            vols[0]["id"])
    assert wait_volume(cli, "rova-demo", vols[0]["id"],
                       "available")["attachments"] == []
    cli.run("rova-demo", "server", "delete", "--wait", server["id"])
    assert wait_volume(cli, "rova-demo", vols[1]["id"],
                       "available")["attachments"] == []
    cli.run("rova-demo", "volume", "delete", *[v["id"] for v in vols])


def test_server_create_boot_from_volume(cli, unique, cirros_image):
    """`server create --boot-from-volume SIZE`: the server boots from a
    volume made from the image, which goes with the server."""
    server = cli.json("rova-demo", "server", "create", "--wait",
                      "--image", cirros_image["Name"], "--boot-from-volume",
                      "2", "--flavor", "m1.tiny", "--network", "private",
                      "bfv-" + unique)
    assert server["status"] == "ACTIVE", server
    listed = cli.json("rova-demo", "server", "volume", "list", server["id"])
    assert len(listed) == 1 and listed[0]["Device"] == "/dev/vda", listed
    vol = cli.json("rova-demo", "volume", "show", listed[0]["Volume ID"])
    assert (vol["status"], vol["size"], vol["bootable"]) in (
        ("in-use", 2, True), ("in-use", 2, "true")), vol
    assert vol["attachments"][0]["server_id"] == server["id"], vol
    cli.run("rova-demo", "server", "delete", "--wait", server["id"])
    # --boot-from-volume does not ask for the volume to go with the server.
    assert wait_volume(cli, "rova-demo", vol["id"],
                       "available")["attachments"] == []
    cli.run("rova-demo", "volume", "delete", vol["id"])


def test_volume_backed_server_image(cli, unique, cirros_image):
    """`server image create --wait` of a `--boot-from-volume` server makes
    an image of its volume's snapshot; `server create --image` of that
    image goes ACTIVE on a volume made from the snapshot."""
    server = cli.json("rova-demo", "server", "create", "--wait",
                      "--image", cirros_image["Name"], "--boot-from-volume",
                      "1", "--flavor", "m1.tiny", "--network", "private",
                      "vbsrc-" + unique)
    assert server["status"] == "ACTIVE", server
    root = cli.json("rova-demo", "server", "volume", "list",
                    server["id"])[0]["Volume ID"]
    image = cli.json("rova-demo", "server", "image", "create", "--wait",
                     "--name", "vbimg-" + unique, server["id"])
    shown = cli.json("rova-demo", "image", "show", image["id"])
    assert shown["status"] == "active", shown
    props = shown["properties"]
    assert str(props["bdm_v2"]) in ("True", "true"), props
    snaps = cli.json("rova-demo", "volume", "snapshot", "list")
    mine = [s for s in snaps if s["Name"] == "snapshot for vbimg-" + unique]
    assert len(mine) == 1, snaps
    snap = cli.json("rova-demo", "volume", "snapshot", "show", mine[0]["ID"])
    assert (snap["volume_id"], snap["status"]) == (root, "available"), snap

    booted = cli.json("rova-demo", "server", "create", "--wait",
                      "--image", image["id"], "--flavor", "m1.tiny",
                      "--network", "private", "vbnew-" + unique)
    assert booted["status"] == "ACTIVE", booted
    listed = cli.json("rova-demo", "server", "volume", "list", booted["id"])
    assert len(listed) == 1 and listed[0]["Device"] == "/dev/vda", listed
    vol = cli.json("rova-demo", "volume", "show", listed[0]["Volume ID"])
    assert vol["status"] == "in-use", vol
    assert vol["snapshot_id"] == mine[0]["ID"], vol

    made = vol["id"]
    for s in (booted, server):
        cli.run("rova-demo", "server", "delete", "--wait", s["id"])
    # The mappings do not ask for the volumes to go with the servers.
    for v in (made, root):
        wait_volume(cli, "rova-demo", v, "available")
    cli.run("rova-demo", "volume", "delete", made)
    cli.run("rova-demo", "volume", "snapshot", "delete", mine[0]["ID"])
    wait_volume(cli, "rova-demo", made, None)
    cli.run("rova-demo", "image", "delete", image["id"])
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if not any(s["ID"] == mine[0]["ID"] for s in
                   cli.json("rova-demo", "volume", "snapshot", "list")):
            break
        time.sleep(0.2)
    cli.run("rova-demo", "volume", "delete", root)
