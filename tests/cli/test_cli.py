"""The real `openstack` CLI against a fresh rova.

Tests run in file order; the server made by the `demo_server` fixture is
shared by the server tests and removed by test_server_delete_wait (the
fixture's finalizer removes it too if that test did not run).
"""

import base64
import datetime
import hashlib
import ipaddress
import re

import pytest

# Nova's default flavors (name: ram MiB, disk GiB, vcpus).
DEFAULT_FLAVORS = {
    "m1.tiny": (512, 1, 1),
    "m1.small": (2048, 20, 1),
    "m1.medium": (4096, 40, 2),
    "m1.large": (8192, 80, 4),
    "m1.xlarge": (16384, 160, 8),
}
HEX_ID = re.compile(r"^[0-9a-f]{32}$|^[0-9a-f-]{36}$")


def as_dict(value):
    """OSC prints dict columns as JSON objects; older releases as k='v'."""
    if isinstance(value, dict):
        return value
    if not value:
        return {}
    return dict(re.findall(r"(\S+?)='([^']*)'", value))


def md5_fingerprint(public_key_line):
    blob = base64.b64decode(public_key_line.split()[1])
    digest = hashlib.md5(blob).hexdigest()
    return ":".join(digest[i:i + 2] for i in range(0, len(digest), 2))


def server_ids(cli, cloud, *filters):
    return {s["ID"] for s in cli.json(cloud, "server", "list", *filters)}


# ---------------------------------------------------------------------------
# identity and catalog-driven listings
# ---------------------------------------------------------------------------

def test_token_issue(cli):
    demo = cli.json("rova-demo", "token", "issue")
    assert set(demo) >= {"expires", "id", "project_id", "user_id"}
    assert demo["id"]
    assert HEX_ID.match(demo["project_id"]), demo
    assert HEX_ID.match(demo["user_id"]), demo
    expires = datetime.datetime.fromisoformat(
        demo["expires"].replace("Z", "+00:00"))
    if expires.tzinfo is None:
        expires = expires.replace(tzinfo=datetime.timezone.utc)
    assert expires > datetime.datetime.now(datetime.timezone.utc)

    reader = cli.json("rova-reader", "token", "issue")
    alt = cli.json("rova-alt", "token", "issue")
    # the reader is another user in the same project; alt is another project
    assert reader["project_id"] == demo["project_id"]
    assert reader["user_id"] != demo["user_id"]
    assert alt["project_id"] != demo["project_id"]
    assert alt["user_id"] != demo["user_id"]
    assert len({demo["id"], reader["id"], alt["id"]}) == 3


def test_flavor_list(cli):
    flavors = {f["Name"]: f for f in cli.json("rova-demo", "flavor", "list")}
    for name, (ram, disk, vcpus) in DEFAULT_FLAVORS.items():
        assert name in flavors, sorted(flavors)
        f = flavors[name]
        assert (f["RAM"], f["Disk"], f["VCPUs"]) == (ram, disk, vcpus), f
        assert f["Is Public"] is True
    tiny = cli.json("rova-demo", "flavor", "show", "m1.tiny")
    assert tiny["name"] == "m1.tiny"
    assert (tiny["ram"], tiny["disk"], tiny["vcpus"]) == (512, 1, 1)


def test_image_list(cli, cirros_image):
    images = cli.json("rova-demo", "image", "list")
    assert len(images) >= 2, images
    assert all(i["Status"] == "active" for i in images), images
    assert len({i["ID"] for i in images}) == len(images)
    shown = cli.json("rova-demo", "image", "show", cirros_image["ID"])
    assert shown["id"] == cirros_image["ID"]
    assert shown["name"] == cirros_image["Name"]
    assert shown["status"] == "active"



def test_image_sharing(cli, unique, tmp_path):
    """A shared image offered to another project: it sees the image once
    offered, accepts it, lists it; the owner sees the membership and takes
    the image back."""
    data = tmp_path / "shared.raw"
    data.write_bytes(b"\0" * 4096)
    name = "shared-" + unique
    img = cli.json("rova-demo", "image", "create", "--shared",
                   "--disk-format", "raw", "--container-format", "bare",
                   "--file", str(data), name)
    alt_project = cli.json("rova-alt", "token", "issue")["project_id"]
    cli.fail("rova-alt", "image", "show", img["id"])
    cli.run("rova-demo", "image", "add", "project", img["id"], alt_project)
    shown = cli.json("rova-alt", "image", "show", img["id"])
    assert shown["name"] == name, shown
    assert name not in {i["Name"] for i in cli.json("rova-alt", "image", "list")}
    cli.run("rova-alt", "image", "set", "--accept", img["id"])
    assert name in {i["Name"] for i in cli.json("rova-alt", "image", "list")}
    members = cli.json("rova-demo", "image", "member", "list", img["id"])
    assert [(m["Member ID"], m["Status"]) for m in members] == \
        [(alt_project, "accepted")], members
    cli.run("rova-demo", "image", "remove", "project", img["id"], alt_project)
    cli.fail("rova-alt", "image", "show", img["id"])
    cli.run("rova-demo", "image", "delete", img["id"])

def test_network_list(cli):
    nets = {n["Name"]: n for n in cli.json("rova-demo", "network", "list")}
    assert "private" in nets, sorted(nets)
    subnets = nets["private"]["Subnets"]
    if isinstance(subnets, str):
        subnets = [s.strip() for s in subnets.split(",") if s.strip()]
    assert len(subnets) >= 1, nets["private"]
    sub = cli.json("rova-demo", "subnet", "show", subnets[0])
    assert sub["network_id"] == nets["private"]["ID"]
    ipaddress.ip_network(sub["cidr"])  # a real CIDR


# ---------------------------------------------------------------------------
# keypairs
# ---------------------------------------------------------------------------

def test_keypair_create_from_public_key(cli, sdk_connect, unique, tmp_path):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519

    pub = ed25519.Ed25519PrivateKey.generate().public_key().public_bytes(
        serialization.Encoding.OpenSSH,
        serialization.PublicFormat.OpenSSH).decode() + " cli-test"
    pub_file = tmp_path / "id.pub"
    pub_file.write_text(pub + "\n")
    name = "cli-kp-pub-" + unique

    created = cli.json("rova-demo", "keypair", "create",
                       "--public-key", pub_file, name)
    assert created["name"] == name
    assert created["fingerprint"] == md5_fingerprint(pub)

    shown = cli.json("rova-demo", "keypair", "show", name)
    assert shown["name"] == name
    assert shown["fingerprint"] == md5_fingerprint(pub)
    bare = cli.run("rova-demo", "keypair", "show", "--public-key", name)
    assert bare.split()[:2] == pub.split()[:2]

    listed = {k["Name"]: k for k in cli.json("rova-demo", "keypair", "list")}
    assert listed[name]["Fingerprint"] == md5_fingerprint(pub)
    # keypairs belong to the user: the alt user does not see it
    alt = {k["Name"] for k in cli.json("rova-alt", "keypair", "list")}
    assert name not in alt

    cli.run("rova-demo", "keypair", "delete", name)
    listed = {k["Name"] for k in cli.json("rova-demo", "keypair", "list")}
    assert name not in listed
    cli.fail("rova-demo", "keypair", "show", name)
    r = sdk_connect("rova-demo").compute.get("/os-keypairs/%s" % name,
                                             raise_exc=False)
    assert r.status_code == 404, (r.status_code, r.text)


def test_keypair_create_generated(cli, unique, tmp_path):
    from cryptography.hazmat.primitives import serialization

    name = "cli-kp-gen-" + unique
    priv_file = tmp_path / "id_gen"
    created = cli.json("rova-demo", "keypair", "create",
                       "--private-key", priv_file, name)
    assert created["name"] == name
    key = serialization.load_ssh_private_key(priv_file.read_bytes(), None)
    pub = key.public_key().public_bytes(
        serialization.Encoding.OpenSSH,
        serialization.PublicFormat.OpenSSH).decode()
    assert created["fingerprint"] == md5_fingerprint(pub)
    cli.run("rova-demo", "keypair", "delete", name)


# ---------------------------------------------------------------------------
# one server through its life
# ---------------------------------------------------------------------------

USER_DATA = "#!/bin/sh\necho hello from rova cli tests\n"


@pytest.fixture(scope="module")
def demo_server(cli, unique, cirros_image, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("server")
    key_name = "cli-key-" + unique
    cli.json("rova-demo", "keypair", "create",
             "--private-key", tmp / "id", key_name)
    user_data = tmp / "user-data.sh"
    user_data.write_text(USER_DATA)
    name = "cli-srv-%s-one" % unique
    created = cli.json(
        "rova-demo", "server", "create", "--wait",
        "--image", cirros_image["Name"], "--flavor", "m1.tiny",
        "--property", "a=b", "--user-data", user_data,
        "--key-name", key_name, "--network", "private", name)
    info = {"id": created["id"], "name": name, "key_name": key_name,
            "created": created, "image": cirros_image}
    yield info
    # normally already gone (test_server_delete_wait)
    cli.raw("rova-demo", "server", "delete", "--wait", info["id"])
    cli.raw("rova-demo", "keypair", "delete", key_name)


def test_server_create_wait(demo_server):
    s = demo_server["created"]
    assert HEX_ID.match(s["id"]), s
    assert s["name"] == demo_server["name"]
    assert s["status"] == "ACTIVE"
    assert as_dict(s["properties"]) == {"a": "b"}
    assert s["key_name"] == demo_server["key_name"]
    assert "private" in as_dict(s["addresses"]) or "private" in str(
        s["addresses"]), s["addresses"]


def test_server_show(cli, demo_server):
    s = cli.json("rova-demo", "server", "show", demo_server["id"])
    assert s["id"] == demo_server["id"]
    assert s["name"] == demo_server["name"]
    assert s["status"] == "ACTIVE"
    assert as_dict(s["properties"]) == {"a": "b"}
    assert s["key_name"] == demo_server["key_name"]
    assert "m1.tiny" in str(s["flavor"]), s["flavor"]
    assert demo_server["image"]["ID"] in str(s["image"]), s["image"]

    # fixed addresses on "private" only: one IPv4 (plus at most one IPv6
    # on a dual-stack network), each inside one of the network's subnets
    addresses = s["addresses"]
    assert isinstance(addresses, dict), addresses
    assert list(addresses) == ["private"], addresses
    ips = [ipaddress.ip_address(a) for a in addresses["private"]]
    assert [ip.version for ip in ips].count(4) == 1, addresses
    assert [ip.version for ip in ips].count(6) <= 1, addresses
    net = {n["Name"]: n for n in cli.json("rova-demo", "network", "list")}
    subnets = net["private"]["Subnets"]
    if isinstance(subnets, str):
        subnets = [x.strip() for x in subnets.split(",") if x.strip()]
    cidrs = [ipaddress.ip_network(
        cli.json("rova-demo", "subnet", "show", sid)["cidr"])
        for sid in subnets]
    for ip in ips:
        assert any(ip in c for c in cidrs if c.version == ip.version), \
            (ip, cidrs)

    # the same server by name
    by_name = cli.json("rova-demo", "server", "show", demo_server["name"])
    assert by_name["id"] == demo_server["id"]


def test_server_list_name_regex(cli, unique, demo_server):
    sid = demo_server["id"]
    assert server_ids(cli, "rova-demo", "--name",
                      "^cli-srv-%s-" % unique) == {sid}
    # the filter is a regular expression searched anywhere in the name
    assert server_ids(cli, "rova-demo", "--name", "%s-o.e$" % unique) == {sid}
    assert server_ids(cli, "rova-demo", "--name",
                      "^no-such-server-%s$" % unique) == set()
    rows = cli.json("rova-demo", "server", "list", "--name",
                    "^cli-srv-%s-" % unique)
    assert rows[0]["Name"] == demo_server["name"]
    assert rows[0]["Status"] == "ACTIVE"
    assert "private" in str(rows[0]["Networks"])


def test_server_list_status(cli, demo_server):
    assert demo_server["id"] in server_ids(cli, "rova-demo",
                                           "--status", "ACTIVE")
    assert demo_server["id"] not in server_ids(cli, "rova-demo",
                                               "--status", "SHUTOFF")
    assert demo_server["id"] not in server_ids(cli, "rova-demo",
                                               "--status", "ERROR")


def test_server_set_unset_property(cli, demo_server):
    sid = demo_server["id"]
    cli.run("rova-demo", "server", "set", "--property", "c=d",
            "--property", "e=f", sid)
    s = cli.json("rova-demo", "server", "show", sid)
    assert as_dict(s["properties"]) == {"a": "b", "c": "d", "e": "f"}
    cli.run("rova-demo", "server", "unset", "--property", "a",
            "--property", "e", sid)
    s = cli.json("rova-demo", "server", "show", sid)
    assert as_dict(s["properties"]) == {"c": "d"}
    assert s["status"] == "ACTIVE"


def test_alt_project_cannot_see_server(cli, sdk_connect, demo_server):
    sid = demo_server["id"]
    assert sid not in server_ids(cli, "rova-alt")
    assert sid not in server_ids(cli, "rova-alt", "--name",
                                 demo_server["name"])
    proc = cli.fail("rova-alt", "server", "show", sid)
    assert "No Server found" in proc.stderr or "404" in proc.stderr, \
        proc.stderr[-2000:]
    proc = cli.fail("rova-alt", "server", "delete", sid)
    assert sid in proc.stderr or "404" in proc.stderr, proc.stderr[-2000:]

    # the raw API answers 404 (not 403) for another project's server
    alt = sdk_connect("rova-alt")
    r = alt.compute.get("/servers/%s" % sid, raise_exc=False)
    assert r.status_code == 404, (r.status_code, r.text)
    r = alt.compute.delete("/servers/%s" % sid, raise_exc=False)
    assert r.status_code == 404, (r.status_code, r.text)
    r = alt.compute.get("/servers/%s/metadata" % sid, raise_exc=False)
    assert r.status_code == 404, (r.status_code, r.text)

    # and the server is untouched
    s = cli.json("rova-demo", "server", "show", sid)
    assert s["status"] == "ACTIVE"


def test_reader_can_list_but_not_create(cli, unique, demo_server):
    assert demo_server["id"] in server_ids(cli, "rova-reader")
    s = cli.json("rova-reader", "server", "show", demo_server["id"])
    assert s["name"] == demo_server["name"]

    name = "cli-reader-%s" % unique
    proc = cli.fail("rova-reader", "server", "create",
                    "--image", demo_server["image"]["ID"],
                    "--flavor", "m1.tiny", "--network", "private", name)
    assert re.search(r"\b403\b", proc.stderr), proc.stderr[-3000:]
    assert server_ids(cli, "rova-demo", "--name", "^%s$" % name) == set()

    proc = cli.fail("rova-reader", "server", "set", "--property", "x=y",
                    demo_server["id"])
    assert re.search(r"\b403\b", proc.stderr), proc.stderr[-3000:]


def test_server_delete_wait(cli, demo_server):
    sid = demo_server["id"]
    cli.run("rova-demo", "server", "delete", "--wait", sid)
    assert sid not in server_ids(cli, "rova-demo")
    proc = cli.fail("rova-demo", "server", "show", sid)
    assert "No Server found" in proc.stderr or "404" in proc.stderr
