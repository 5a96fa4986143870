"""Volumes on real guests (QEMU under TCG), through the `openstack` CLI.

Two servers boot from volumes, side by side:

  guest C  boots from `bootvol`, a volume made from the `rova-guest`
           image (a mapping without delete_on_termination); its
           `#!/bin/sh` user data starts a loop that writes a marker to the
           start of every empty writable disk that is not its boot volume;
  guest D  boots from a new volume the build makes from the image
           (`--block-device ...,delete_on_termination=true`).

A blank 2 GiB volume is then hot-plugged into C (the guest reports a disk
of 2 GiB with the volume's serial and writes the marker to it), swapped
for another blank one while C runs (the bytes copied, the guest's disk
moved onto it; the suite carries on with that volume), unplugged
(the guest reports it gone; the volume is `available`), plugged into D
(D reads C's marker from it), carried along by a live migration of D and
unplugged again, then plugged into C once more and not let go while C is
paused. Deleting D takes its boot volume along; deleting C leaves
`bootvol` available.

Guest E boots from a volume made from the image; a marker is written to
the start of that volume's file and a blank data volume is plugged in. E
is resized to another host, shelved (offloaded at once, no image) and
unshelved, and evacuated from its forced-down host: each new boot's root
disk starts with the marker and the data volume is there (it is then
unplugged). E's createImage is an image of block device mappings, and
guest F booted from it reads the marker from a volume made from the
snapshot; a 2.93 rebuild with a new image re-images E's root volume (the
new image's bytes, the marker gone).

Everything about a guest is read from its serial console through the API
(guest/README.md). A test whose prerequisite failed fails too.
"""

import json
import os
import subprocess
import time

from conftest import HOSTS, need_state, register_server

IMAGE = "rova-guest"
FLAVOR = "cirros256"
NETWORK = "private"
GIB = 1 << 30

S = {}


def need(*keys):
    return need_state(S, *keys)


def serial(volume_id):
    """What the guest sees as the disk's serial (virtio keeps 20 bytes)."""
    return volume_id[:20]


def wait_volume(cli, vid, status, timeout=120):
    deadline = time.monotonic() + timeout
    v = None
    while time.monotonic() < deadline:
        v = cli.json("rova-demo", "volume", "show", vid)
        if v["status"] == status:
            return v
        if v["status"].startswith("error"):
            raise AssertionError("volume %s went to %s" % (vid, v["status"]))
        time.sleep(0.5)
    raise AssertionError("volume %s not %s: %s" % (vid, status, v))


def disk_lines(log):
    """Every `disk NAME size=...` line as (name, fields), in order."""
    out = []
    for p in log.payloads("disk"):
        words = p.split()
        if len(words) >= 3 and words[2] != "removed":
            out.append((words[1], log_fields(p)))
    return out


def log_fields(payload):
    return dict(w.split("=", 1) for w in payload.split()[2:] if "=" in w)


def removed(log, name):
    return ("disk %s removed" % name) in log.payloads("disk")


def wait_disk(guests, sid, vid, since=0):
    """Until the guest reports a disk with volume `vid`'s serial (beyond
    the first `since` disk lines); returns (name, fields)."""
    def pred(log):
        for name, f in disk_lines(log)[since:]:
            if f.get("serial") == serial(vid):
                return (name, f)
        return None
    return guests.wait_console(sid, "a disk with serial %s" % serial(vid),
                               pred, timeout=120)[0]


def test_boot_two_guests_from_volumes(cli, guests, unique, tmp_path):
    image = cli.json("rova-demo", "image", "show", IMAGE)["id"]
    boot = cli.json("rova-demo", "volume", "create", "--image", image,
                    "--size", "1", "bootvol-" + unique)
    S["bootvol"] = boot["id"]
    wait_volume(cli, boot["id"], "available")
    marker = "VOLMARK-" + unique
    script = tmp_path / "mark.sh"
    script.write_text(
        "#!/bin/sh\n"
        "(while :; do\n"
        "  for b in /sys/block/vd*; do\n"
        "    n=${b##*/}\n"
        "    [ \"$(cat $b/serial 2>/dev/null)\" = %(boot)s ] && continue\n"
        "    [ \"$(cat $b/ro)\" = 1 ] && continue\n"
        "    head=$(dd if=/dev/$n bs=64 count=1 2>/dev/null | tr -d '\\000')\n"
        "    if [ -z \"$head\" ]; then\n"
        "      printf '%%s' %(m)s | dd of=/dev/$n bs=512 conv=notrunc,fsync 2>/dev/null\n"
        "      echo \"rova-test-script marked $n\"\n"
        "    fi\n"
        "  done\n"
        "  sleep 1\n"
        "done) </dev/null >/dev/console 2>&1 &\n"
        "exit 0\n" % {"boot": serial(boot["id"]), "m": marker})
    c = cli.json("rova-demo", "server", "create", "--volume", boot["id"],
                 "--flavor", FLAVOR, "--network", NETWORK,
                 "--user-data", str(script), "guest-c-" + unique)
    register_server(c["id"], "guest C")
    S.update(c=c["id"], marker=marker)
    d = cli.json("rova-demo", "server", "create", "--flavor", FLAVOR,
                 "--network", NETWORK, "--block-device",
                 "source_type=image,uuid=%s,destination_type=volume,"
                 "volume_size=1,boot_index=0,delete_on_termination=true"
                 % image, "guest-d-" + unique)
    register_server(d["id"], "guest D")
    S["d"] = d["id"]
    for sid in (c["id"], d["id"]):
        guests.wait_status(sid, "ACTIVE")
    # C's root disk is bootvol: its serial, 1 GiB, and it is in use.
    log = guests.wait_ready(c["id"])
    roots = [f for _, f in disk_lines(log)
             if f.get("serial") == serial(boot["id"])]
    assert roots and int(roots[0]["size"]) == GIB, (
        disk_lines(log), guests.context(c["id"], log))
    v = cli.json("rova-demo", "volume", "show", boot["id"])
    assert v["status"] == "in-use", v
    assert [a["server_id"] for a in v["attachments"]] == [c["id"]], v
    # D's root disk is the volume its build made from the image.
    shown = cli.json("rova-demo", "server", "show", d["id"])
    attached = shown.get("volumes_attached") or []
    assert len(attached) == 1, shown
    S["d_root"] = attached[0]["id"]
    log = guests.wait_ready(d["id"])
    roots = [f for _, f in disk_lines(log)
             if f.get("serial") == serial(S["d_root"])]
    assert roots and int(roots[0]["size"]) == GIB, (
        disk_lines(log), guests.context(d["id"], log))


def test_attach_blank_volume_to_running_guest(cli, guests, unique, rova):
    c, marker = need("c", "marker")
    data = cli.json("rova-demo", "volume", "create", "--size", "2",
                    "datavol-" + unique)
    S["data"] = data["id"]
    wait_volume(cli, data["id"], "available")
    before = len(disk_lines(guests.console(c)))
    cli.run("rova-demo", "server", "add", "volume", c, data["id"])
    name, f = wait_disk(guests, c, data["id"], since=before)
    assert int(f["size"]) == 2 * GIB, f
    assert f["ro"] == "0", f
    S["c_disk"] = name
    v = wait_volume(cli, data["id"], "in-use")
    assert v["attachments"][0]["server_id"] == c, v
    # The guest's script writes its marker to the new disk; the bytes land
    # in the volume's file.
    guests.wait_console(
        c, "the script marking %s" % name,
        lambda log: ("rova-test-script marked %s" % name) in log.text,
        timeout=60)
    path = rova.data_dir / "volumes" / ("volume-" + data["id"])
    with open(path, "rb") as fh:
        assert fh.read(len(marker)) == marker.encode()


def test_swap_moves_a_running_guests_disk_to_another_volume(
        cli, guests, sdk, unique, rova):
    """The service role swaps C's data volume for a blank one while C
    runs (Cinder has the old volume migrating): QEMU copies it into the
    new volume and pivots the disk onto it. The guest keeps its disk (no
    `removed` line), the new volume's file holds C's marker, the old
    volume is `available`, the new one `in-use` at the same device. From
    here on the suite carries on with the new volume."""
    c, old, name, marker = need("c", "data", "c_disk", "marker")
    new = cli.json("rova-demo", "volume", "create", "--size", "2",
                   "swapvol-" + unique)
    wait_volume(cli, new["id"], "available")
    admin = sdk("rova-admin")
    r = admin.block_storage.post(
        "/volumes/%s/action" % old,
        json={"os-reset_status": {"migration_status": "starting"}})
    assert r.status_code == 202, r.text
    device = cli.json("rova-demo", "volume", "show",
                      old)["attachments"][0]["device"]
    before = guests.console(c)
    r = admin.compute.put(
        "/servers/%s/os-volume_attachments/%s" % (c, old),
        json={"volumeAttachment": {"volumeId": new["id"]}},
        microversion="2.85")
    assert r.status_code == 202, r.text
    v = wait_volume(cli, new["id"], "in-use")
    assert v["attachments"][0]["server_id"] == c, v
    assert v["attachments"][0]["device"] == device, (v, device)
    v = wait_volume(cli, old, "available")
    assert not v["attachments"], v
    shown = cli.json("rova-demo", "server", "show", c)
    ids = [a["id"] for a in shown.get("volumes_attached") or []]
    assert new["id"] in ids and old not in ids, shown
    path = rova.data_dir / "volumes" / ("volume-" + new["id"])
    with open(path, "rb") as fh:
        assert fh.read(len(marker)) == marker.encode(), "the bytes were copied"
    after = guests.wait_heartbeat_above(c, before.last_heartbeat or 0)
    assert after.last_boot_id == before.last_boot_id, guests.context(c, after)
    assert not removed(after, name), guests.context(c, after)
    actions = cli.json("rova-demo", "server", "event", "list", c)
    assert actions[0]["Action"] == "swap_volume", actions
    # Cinder's migration would end here; the old volume then goes.
    r = admin.block_storage.post(
        "/volumes/%s/action" % old,
        json={"os-reset_status": {"migration_status": "none"}})
    assert r.status_code == 202, r.text
    cli.run("rova-demo", "volume", "delete", old)
    S["data"] = new["id"]


def test_detach_from_running_guest(cli, guests):
    c, data, name = need("c", "data", "c_disk")
    cli.run("rova-demo", "server", "remove", "volume", c, data)
    guests.wait_console(c, "disk %s removed" % name,
                        lambda log: removed(log, name), timeout=60)
    v = wait_volume(cli, data, "available")
    assert not v["attachments"], v


def test_volume_moves_to_another_guest_with_its_data(cli, guests):
    d, data, marker = need("d", "data", "marker")
    before = len(disk_lines(guests.console(d)))
    cli.run("rova-demo", "server", "add", "volume", d, data)
    name, f = wait_disk(guests, d, data, since=before)
    assert f["head"].startswith(marker), (f, "C's marker on the volume")
    S["d_disk"] = name
    wait_volume(cli, data, "in-use")


def test_live_migration_keeps_the_volume_attached(cli, guests):
    d, data, name = need("d", "data", "d_disk")
    src = guests.host_of(d)
    dest = [h for h in HOSTS if h != src][0]
    before = guests.console(d)
    cli.run("rova-admin", "--os-compute-api-version", "2.30", "server",
            "migrate", "--live-migration", "--host", dest, d)
    guests.wait_status(d, "ACTIVE", cloud="rova-admin")
    assert guests.host_of(d) == dest, "still on %s" % src
    # The same boot, still holding the volume (no `removed` line), and
    # the volume stays attached in the API.
    after = guests.wait_heartbeat_above(d, before.last_heartbeat or 0)
    assert after.last_boot_id == before.last_boot_id, guests.context(d, after)
    assert not removed(after, name), guests.context(d, after)
    v = cli.json("rova-demo", "volume", "show", data)
    assert v["status"] == "in-use" and v["attachments"][0]["server_id"] == d, v
    # ... and it comes out of the guest on its new host.
    cli.run("rova-demo", "server", "remove", "volume", d, data)
    guests.wait_console(d, "disk %s removed" % name,
                        lambda log: removed(log, name), timeout=60)
    wait_volume(cli, data, "available")


def test_a_guest_that_does_not_let_go_keeps_the_volume(cli, guests):
    """A paused guest cannot answer the unplug request: the detach is
    accepted (202), the volume goes `detaching` and, when the driver gives
    up waiting (30 s), back to `in-use`, still attached; the action's event
    is an error. Once the guest runs again the volume detaches."""
    c, data = need("c", "data")
    before = len(disk_lines(guests.console(c)))
    cli.run("rova-demo", "server", "add", "volume", c, data)
    name, _ = wait_disk(guests, c, data, since=before)
    wait_volume(cli, data, "in-use")
    cli.run("rova-demo", "server", "pause", c)
    guests.wait_status(c, "PAUSED")
    cli.run("rova-demo", "server", "remove", "volume", c, data)
    seen = set()
    deadline = time.monotonic() + 90
    v = None
    while time.monotonic() < deadline:
        v = cli.json("rova-demo", "volume", "show", data)
        seen.add(v["status"])
        if v["status"] == "in-use" and "detaching" in seen:
            break
        time.sleep(0.5)
    assert v["status"] == "in-use" and "detaching" in seen, (v, seen)
    assert v["attachments"][0]["server_id"] == c, v
    actions = cli.json("rova-demo", "server", "event", "list", c)
    last = actions[0]
    assert last["Action"] == "detach_volume", actions
    shown = cli.json("rova-demo", "server", "event", "show", c,
                     last["Request ID"])
    events = shown.get("events") or []
    assert events and events[0]["result"] == "Error", shown
    cli.run("rova-demo", "server", "unpause", c)
    guests.wait_status(c, "ACTIVE")
    cli.run("rova-demo", "server", "remove", "volume", c, data)
    wait_volume(cli, data, "available")
    guests.wait_console(c, "disk %s removed" % name,
                        lambda log: removed(log, name), timeout=60)


def test_delete_on_termination(cli, guests):
    c, d, boot, d_root, data = need("c", "d", "bootvol", "d_root", "data")
    for sid in (c, d):
        cli.run("rova-demo", "server", "delete", "--wait", sid)
    # D's root volume had delete_on_termination: it is gone.
    deadline = time.monotonic() + 60
    listed = []
    while time.monotonic() < deadline:
        listed = [v["ID"] for v in cli.json("rova-demo", "volume", "list")]
        if d_root not in listed:
            break
        time.sleep(0.5)
    assert d_root not in listed, "D's root volume outlived D"
    # C's boot volume had not: it is available again.
    v = wait_volume(cli, boot, "available")
    assert not v["attachments"], v
    for vid in (boot, data):
        cli.run("rova-demo", "volume", "delete", vid)
    print(json.dumps({"bootvol": boot, "datavol": data}))


# ---------------------------------------------------------------------------
# guest E: one volume-backed server through resize, shelve, createImage
# and rebuild (the marker is written to its root volume's file while it
# runs; each step's new boot reports the volume's first bytes)
# ---------------------------------------------------------------------------

def disk_head(log, vid):
    """`head` of the disk with volume `vid`'s serial in `log`, or None."""
    for _, f in disk_lines(log):
        if f.get("serial") == serial(vid):
            return f.get("head", "")
    return None


def next_boot(guests, sid, before):
    """The lines of the guest's first boot after the log `before`, once
    it is ready."""
    boot_id, _ = guests.wait_new_boot(sid, before.last_boot_id)
    return guests.wait_ready(sid, boot_id).boot_segment(boot_id)


def volume_file(rova, vid):
    return rova.data_dir / "volumes" / ("volume-" + vid)


def test_volume_backed_guest_boots(cli, guests, unique, rova):
    image = cli.json("rova-demo", "image", "show", IMAGE)
    vol = cli.json("rova-demo", "volume", "create", "--image", image["id"],
                   "--size", "1", "evol-" + unique)
    wait_volume(cli, vol["id"], "available")
    e = cli.json("rova-demo", "server", "create", "--volume", vol["id"],
                 "--flavor", FLAVOR, "--network", NETWORK,
                 "guest-e-" + unique)
    register_server(e["id"], "guest E")
    S.update(e=e["id"], evol=vol["id"], image=image)
    guests.wait_status(e["id"], "ACTIVE")
    log = guests.wait_ready(e["id"])
    assert disk_head(log.since_last_boot(), vol["id"]) == "", (
        disk_lines(log), guests.context(e["id"], log))
    # A marker on the root volume, under the running guest.
    marker = "EMARK-" + unique
    with open(volume_file(rova, vol["id"]), "r+b") as fh:
        fh.write(marker.encode())
        fh.flush()
        os.fsync(fh.fileno())
    S["emark"] = marker
    # A data volume, plugged in: it follows E through the moves below.
    data = cli.json("rova-demo", "volume", "create", "--size", "1",
                    "edata-" + unique)
    wait_volume(cli, data["id"], "available")
    cli.run("rova-demo", "server", "add", "volume", e["id"], data["id"])
    wait_disk(guests, e["id"], data["id"])
    wait_volume(cli, data["id"], "in-use")
    S["edata"] = data["id"]


def test_resize_volume_backed_guest(cli, guests):
    e, vid, marker, data = need("e", "evol", "emark", "edata")
    src = guests.host_of(e)
    before = guests.console(e)
    cli.run("rova-demo", "server", "resize", "--flavor", "m1.tiny", e)
    guests.wait_status(e, "VERIFY_RESIZE")
    assert guests.host_of(e) != src, "still on %s" % src
    seg = next_boot(guests, e, before)
    assert (disk_head(seg, vid) or "").startswith(marker), (
        disk_lines(seg), guests.context(e))
    assert disk_head(seg, data) is not None, (disk_lines(seg), "data volume")
    cli.run("rova-demo", "server", "resize", "confirm", e)
    guests.wait_status(e, "ACTIVE")
    assert "m1.tiny" in str(cli.json("rova-demo", "server", "show",
                                     e)["flavor"])
    v = cli.json("rova-demo", "volume", "show", vid)
    assert v["status"] == "in-use", v
    assert [a["server_id"] for a in v["attachments"]] == [e], v


def test_shelve_volume_backed_guest(cli, guests, unique):
    e, vid, marker, data = need("e", "evol", "emark", "edata")
    before = guests.console(e)
    cli.run("rova-demo", "server", "shelve", e)
    # Offloaded at once, with no image made.
    guests.wait_status(e, "SHELVED_OFFLOADED")
    names = [i["Name"] for i in cli.json("rova-demo", "image", "list")]
    assert "guest-e-%s-shelved" % unique not in names, names
    cli.run("rova-demo", "server", "unshelve", e)
    guests.wait_status(e, "ACTIVE")
    seg = next_boot(guests, e, before)
    assert (disk_head(seg, vid) or "").startswith(marker), (
        disk_lines(seg), guests.context(e))
    assert disk_head(seg, data) is not None, (disk_lines(seg), "data volume")


def test_evacuate_volume_backed_guest(cli, guests):
    """E's host is forced down; E is rebuilt on the other host from its
    root volume (the marker still there), its data volume along; the data
    volume is then unplugged and deleted."""
    e, vid, marker, data = need("e", "evol", "emark", "edata")
    src = guests.host_of(e)
    before = guests.console(e)
    service = ("rova-admin", "--os-compute-api-version", "2.53", "compute",
               "service", "set")
    cli.run(*service, "--down", src, "nova-compute")
    try:
        cli.run("rova-admin", "--os-compute-api-version", "2.29", "server",
                "evacuate", e)
        guests.wait_status(e, "ACTIVE")
    finally:
        cli.run(*service, "--up", src, "nova-compute")
    assert guests.host_of(e) != src, "still on %s" % src
    seg = next_boot(guests, e, before)
    assert (disk_head(seg, vid) or "").startswith(marker), (
        disk_lines(seg), guests.context(e))
    name = [n for n, f in disk_lines(seg) if f.get("serial") == serial(data)]
    assert name, (disk_lines(seg), "data volume")
    cli.run("rova-demo", "server", "remove", "volume", e, data)
    guests.wait_console(e, "disk %s removed" % name[0],
                        lambda log: removed(log, name[0]), timeout=60)
    wait_volume(cli, data, "available")
    cli.run("rova-demo", "volume", "delete", data)


def test_volume_backed_guest_image_boots_a_new_guest(cli, guests, unique):
    e, marker = need("e", "emark")
    img = cli.json("rova-demo", "server", "image", "create", "--wait",
                   "--name", "eimg-" + unique, e)
    props = cli.json("rova-demo", "image", "show", img["id"])["properties"]
    mapping = json.loads(props["block_device_mapping"])
    assert [(m["boot_index"], m["source_type"]) for m in mapping] == [
        (0, "snapshot")], mapping
    snap = mapping[0]["snapshot_id"]
    f = cli.json("rova-demo", "server", "create", "--image", img["id"],
                 "--flavor", FLAVOR, "--network", NETWORK,
                 "guest-f-" + unique)
    register_server(f["id"], "guest F")
    guests.wait_status(f["id"], "ACTIVE")
    shown = cli.json("rova-demo", "server", "show", f["id"])
    # Nova keeps the image a server booted from as its image.
    assert img["id"] in str(shown["image"]), shown["image"]
    attached = shown.get("volumes_attached") or []
    assert len(attached) == 1, shown
    froot = attached[0]["id"]
    log = guests.wait_ready(f["id"])
    assert (disk_head(log, froot) or "").startswith(marker), (
        disk_lines(log), guests.context(f["id"], log))
    cli.run("rova-demo", "server", "delete", "--wait", f["id"])
    wait_volume(cli, froot, "available")
    cli.run("rova-demo", "volume", "delete", froot)
    wait_gone(cli, froot)
    cli.run("rova-demo", "volume", "snapshot", "delete", snap)
    cli.run("rova-demo", "image", "delete", img["id"])


def test_rebuild_reimages_the_root_volume(cli, guests, unique, rova,
                                          tmp_path):
    """2.93: the root volume is written again from the new image (a raw
    disk starting with its own marker, uploaded as qcow2); the old marker
    is gone and the volume carries the new image's metadata."""
    e, vid, marker, image = need("e", "evol", "emark", "image")
    new_mark = "NEWIMG-" + unique
    raw = tmp_path / "new.raw"
    raw.write_bytes(new_mark.encode() + b"\0" * (1 << 20))
    qcow = tmp_path / "new.qcow2"
    subprocess.run(["qemu-img", "convert", "-q", "-f", "raw", "-O", "qcow2",
                    str(raw), str(qcow)], check=True)
    props = image["properties"]
    new = cli.json("rova-demo", "image", "create", "--disk-format", "qcow2",
                   "--container-format", "bare", "--file", str(qcow),
                   "--property", "kernel_id=%s" % props["kernel_id"],
                   "--property", "ramdisk_id=%s" % props["ramdisk_id"],
                   "newimg-" + unique)
    before = guests.console(e)
    cli.run("rova-demo", "--os-compute-api-version", "2.93", "server",
            "rebuild", "--reimage-boot-volume", "--image", new["id"], e)
    guests.wait_status(e, "ACTIVE")
    seg = next_boot(guests, e, before)
    head = disk_head(seg, vid)
    assert head is not None and head.startswith(new_mark), (
        disk_lines(seg), guests.context(e))
    assert marker not in head
    v = cli.json("rova-demo", "volume", "show", vid)
    assert v["status"] == "in-use", v
    assert v["volume_image_metadata"]["image_id"] == new["id"], v
    # Still a server booted from a volume.
    shown = cli.json("rova-demo", "server", "show", e)
    assert new["id"] not in str(shown["image"]), shown["image"]
    cli.run("rova-demo", "server", "delete", "--wait", e)
    wait_volume(cli, vid, "available")
    cli.run("rova-demo", "volume", "delete", vid)
    cli.run("rova-demo", "image", "delete", new["id"])


def wait_gone(cli, vid, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if vid not in [v["ID"] for v in cli.json("rova-demo", "volume",
                                                 "list")]:
            return
        time.sleep(0.5)
    raise AssertionError("volume %s not deleted" % vid)
