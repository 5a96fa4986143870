"""openstacksdk (cloud layer and proxy layer) against a fresh rova."""

import openstack.exceptions


def test_sdk_server_lifecycle(sdk_connect, unique, cirros_image):
    conn = sdk_connect("rova-demo")
    assert conn.current_project_id

    flavor = conn.get_flavor("m1.tiny")
    assert flavor is not None and flavor.ram == 512 and flavor.vcpus == 1
    image = conn.get_image(cirros_image["ID"])
    assert image is not None and image.name == cirros_image["Name"]
    net = conn.get_network("private")
    assert net is not None and net.name == "private"

    name = "sdk-srv-%s" % unique
    server = conn.create_server(
        name, image=image.id, flavor=flavor.id, network="private",
        meta={"made-by": "sdk"}, wait=True, auto_ip=False, timeout=180)
    try:
        assert server.status == "ACTIVE"
        assert server.name == name
        assert server.project_id == conn.current_project_id
        sid = server.id

        got = conn.get_server(sid)
        assert got is not None
        assert got.id == sid and got.name == name
        assert got.status == "ACTIVE"
        assert got.metadata == {"made-by": "sdk"}
        assert list(got.addresses) == ["private"], got.addresses
        assert got.private_v4, got.addresses
        assert conn.get_server(name).id == sid

        assert sid in {s.id for s in conn.list_servers()}

        # the proxy layer sees the same server
        raw = conn.compute.get_server(sid)
        assert raw.status == "ACTIVE" and raw.name == name
        assert raw.image.id == image.id
        assert raw.flavor.name == "m1.tiny" or raw.flavor.id == flavor.id
        assert sid in {s.id for s in conn.compute.servers(name="^" + name)}

        # another project cannot see it
        alt = sdk_connect("rova-alt")
        assert alt.get_server(sid) is None
        assert sid not in {s.id for s in alt.list_servers()}
        try:
            alt.compute.get_server(sid)
        except openstack.exceptions.NotFoundException as e:
            assert e.status_code == 404
        else:
            raise AssertionError("alt project could GET the demo server")
    finally:
        assert conn.delete_server(server.id, wait=True, timeout=180) is True

    assert conn.get_server(server.id) is None
    assert server.id not in {s.id for s in conn.list_servers()}
    # deleting again reports "nothing to delete"
    assert conn.delete_server(server.id) is False
