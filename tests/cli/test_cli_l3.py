"""Routers and floating IPs through the real `openstack` CLI: a member's
router with a gateway on the bootstrap `public` network and an interface on
a subnet of its own; a floating IP from `public` added to a server on
`private` (joined to `public` by the bootstrap's router1) and shown by
`server show`; association by port, disassociation and deletion.
"""

import ipaddress

import pytest


def _ids(value):
    """OSC prints list columns as lists; older releases as text."""
    if isinstance(value, list):
        return value
    return [x.strip() for x in str(value or "").split(",") if x.strip()]


def _addresses(server):
    addrs = server["addresses"]
    assert isinstance(addrs, dict), addrs
    return addrs


@pytest.fixture(scope="module")
def public_net(cli):
    net = cli.json("rova-demo", "network", "show", "public")
    assert net["router:external"] in (True, "External"), net
    return net


def test_bootstrap_router1(cli, public_net):
    routers = {r["Name"]: r for r in cli.json("rova-admin", "router", "list")}
    assert "router1" in routers, sorted(routers)
    r1 = cli.json("rova-admin", "router", "show", "router1")
    gw = r1["external_gateway_info"]
    assert gw["network_id"] == public_net["id"], gw
    ips = [i["ip_address"] for i in gw["external_fixed_ips"]]
    assert ipaddress.ip_address(ips[0]) in ipaddress.ip_network(
        "172.24.4.0/24"), ips
    # a member sees the external network but not admin's router
    names = {n["Name"] for n in cli.json("rova-demo", "network", "list")}
    assert {"private", "public"} <= names, names
    assert "router1" not in {
        r["Name"] for r in cli.json("rova-demo", "router", "list")}


def test_router_lifecycle(cli, unique, public_net):
    net = cli.json("rova-demo", "network", "create", "l3-net-" + unique)
    sub = cli.json("rova-demo", "subnet", "create", "--network", net["id"],
                   "--subnet-range", "10.77.0.0/24", "l3-sub-" + unique)
    name = "l3-router-" + unique
    router = cli.json("rova-demo", "router", "create", name)
    assert router["name"] == name
    assert router["status"] == "ACTIVE"
    assert not router["external_gateway_info"], router
    assert name in {r["Name"] for r in cli.json("rova-demo", "router",
                                                 "list")}

    cli.run("rova-demo", "router", "set", "--external-gateway", "public",
            name)
    shown = cli.json("rova-demo", "router", "show", name)
    assert shown["external_gateway_info"]["network_id"] == public_net["id"]
    assert shown["external_gateway_info"]["enable_snat"] is True

    cli.run("rova-demo", "router", "add", "subnet", name, sub["id"])
    ports = cli.json("rova-demo", "port", "list", "--router", name,
                     "--long")
    assert len(ports) == 1, ports
    assert "10.77.0.1" in str(ports[0]["Fixed IP Addresses"]), ports
    assert ports[0]["Device Owner"] == "network:router_interface"
    # a router with an interface cannot go
    cli.fail("rova-demo", "router", "delete", name)
    # nor can the interface's subnet
    cli.fail("rova-demo", "subnet", "delete", sub["id"])

    cli.run("rova-demo", "router", "remove", "subnet", name, sub["id"])
    assert cli.json("rova-demo", "port", "list", "--router", name) == []
    cli.run("rova-demo", "router", "unset", "--external-gateway", name)
    assert not cli.json("rova-demo", "router", "show",
                        name)["external_gateway_info"]
    cli.run("rova-demo", "router", "delete", name)
    cli.fail("rova-demo", "router", "show", name)
    cli.run("rova-demo", "subnet", "delete", sub["id"])
    cli.run("rova-demo", "network", "delete", net["id"])


@pytest.fixture(scope="module")
def fip_server(cli, unique, cirros_image):
    name = "l3-srv-" + unique
    created = cli.json(
        "rova-demo", "server", "create", "--wait",
        "--image", cirros_image["Name"], "--flavor", "m1.tiny",
        "--network", "private", name)
    yield created
    cli.raw("rova-demo", "server", "delete", "--wait", created["id"])


def test_floating_ip_on_server(cli, fip_server, public_net):
    fip = cli.json("rova-demo", "floating", "ip", "create", "public")
    addr = fip["floating_ip_address"]
    assert ipaddress.ip_address(addr) in ipaddress.ip_network(
        "172.24.4.0/24"), fip
    assert fip["status"] == "DOWN"
    assert fip["floating_network_id"] == public_net["id"]
    listed = {f["Floating IP Address"]: f
              for f in cli.json("rova-demo", "floating", "ip", "list")}
    assert addr in listed, listed
    # another project cannot see it
    cli.fail("rova-alt", "floating", "ip", "show", fip["id"])

    cli.run("rova-demo", "server", "add", "floating", "ip",
            fip_server["id"], addr)
    shown = cli.json("rova-demo", "floating", "ip", "show", fip["id"])
    assert shown["status"] == "ACTIVE", shown
    assert shown["port_id"], shown
    assert shown["router_id"], shown
    server = cli.json("rova-demo", "server", "show", fip_server["id"])
    assert addr in _addresses(server)["private"], server["addresses"]

    cli.run("rova-demo", "server", "remove", "floating", "ip",
            fip_server["id"], addr)
    shown = cli.json("rova-demo", "floating", "ip", "show", fip["id"])
    assert not shown["port_id"], shown
    assert shown["status"] == "DOWN"
    server = cli.json("rova-demo", "server", "show", fip_server["id"])
    assert addr not in _addresses(server)["private"], server["addresses"]

    # by port: `floating ip set --port` and `unset --port`
    port = cli.json("rova-demo", "port", "list", "--server",
                    fip_server["id"])[0]
    cli.run("rova-demo", "floating", "ip", "set", "--port", port["ID"],
            fip["id"])
    shown = cli.json("rova-demo", "floating", "ip", "show", fip["id"])
    assert shown["port_id"] == port["ID"], shown
    assert shown["fixed_ip_address"] in str(port["Fixed IP Addresses"])
    cli.run("rova-demo", "floating", "ip", "unset", "--port", fip["id"])
    assert not cli.json("rova-demo", "floating", "ip", "show",
                        fip["id"])["port_id"]

    cli.run("rova-demo", "floating", "ip", "delete", fip["id"])
    cli.fail("rova-demo", "floating", "ip", "show", fip["id"])
    assert addr not in {
        f["Floating IP Address"]
        for f in cli.json("rova-demo", "floating", "ip", "list")}


def test_server_delete_keeps_floating_ip(cli, unique, cirros_image):
    name = "l3-gone-" + unique
    srv = cli.json("rova-demo", "server", "create", "--wait",
                   "--image", cirros_image["Name"], "--flavor", "m1.tiny",
                   name)
    # no --nic: the server lands on `private`, not on external `public`
    assert list(_addresses(srv)) == ["private"], srv["addresses"]
    fip = cli.json("rova-demo", "floating", "ip", "create", "public")
    cli.run("rova-demo", "server", "add", "floating", "ip", srv["id"],
            fip["floating_ip_address"])
    cli.run("rova-demo", "server", "delete", "--wait", srv["id"])
    shown = cli.json("rova-demo", "floating", "ip", "show", fip["id"])
    assert not shown["port_id"], shown
    assert shown["status"] == "DOWN"
    cli.run("rova-demo", "floating", "ip", "delete", fip["id"])
