"""Real guests on the bridge data path: `rova serve --driver qemu
--qemu-network bridge --qemu-netns NS`, with a network namespace this
module creates and removes.

Inside the namespace Rova makes a bridge per network, a tap per port,
one dnsmasq per network and the metadata listener at 169.254.169.254 on
the bridge; QEMU runs there too. The test's own clients (ping, the DHCP
and tap checks) run inside the namespace; no guest address is reached
from the root namespace.

The tests run in file order and share two guests, both in their
project's `default` security group (all egress, ingress only from the
group's members):

  guest A  booted with no config drive: its eth0 must get exactly the
           fixed IP that the API shows, from DHCP, and its metadata must
           come from 169.254.169.254 over the bridge (the data source is
           `metadata`, with A's uuid); the namespace (the host side, not a
           member of the group) cannot ping it until an ICMP rule is added
           through the API, and cannot again once the rule is deleted;
           on the network's SLAAC subnet A gives itself the address the
           API shows (its MAC's EUI-64);
           A NIC attached through os-interface is hot-plugged: the guest
           sees it and gets the new port's address by DHCP; detached, it
           goes again;
  guest B  booted after A with a user-data script that pings A (allowed:
           same group) and then pings A from an address that is not its
           own (dropped: anti-spoofing); deleting B removes its tap, its
           DHCP entry and its firewall chains.

Needs root (namespaces, bridges, taps) and dnsmasq; nothing skips.
"""

import base64
import ipaddress
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

import pytest

from conftest import BOOT_TIMEOUT, GuestRova, Guests, _socket_dir
from osclient import rova_binary

IMAGE = "rova-guest"
FLAVOR = "cirros256"
NETWORK = "private"

S = {}


def need(*keys):
    missing = [k for k in keys if k not in S]
    if missing:
        pytest.fail("an earlier test did not get this far (no %s)"
                    % ", ".join(missing), pytrace=False)
    return [S[k] for k in keys]


def in_ns(ns, *argv, check=False, timeout=30):
    return subprocess.run(["ip", "netns", "exec", ns] + list(argv),
                          capture_output=True, text=True, timeout=timeout,
                          check=check, stdin=subprocess.DEVNULL)


def ip_ns(ns, *argv):
    return subprocess.run(["ip", "-n", ns] + list(argv), capture_output=True,
                          text=True, timeout=30, stdin=subprocess.DEVNULL)


class BridgeRova(GuestRova):
    """The session's kind of rova, on the bridge data path in `netns`."""

    def __init__(self, binary, base_dir, env, netns):
        super().__init__(binary, base_dir, env)
        self.netns = netns

    def command(self):
        return super().command() + ["--qemu-network", "bridge",
                                    "--qemu-netns", self.netns]


class Conns:
    """openstacksdk connections to this module's rova (its own
    clouds.yaml, not the session's)."""

    def __init__(self, clouds_yaml):
        self.clouds_yaml = str(clouds_yaml)
        self.conns = {}

    def __call__(self, cloud="rova-demo"):
        if cloud not in self.conns:
            from openstack import config as occ
            from openstack import connection
            # Not from the environment: the session's fixtures point
            # OS_CLIENT_CONFIG_FILE at the other rova's clouds.yaml (same
            # cloud names), which openstacksdk would read first.
            cfg = occ.OpenStackConfig(config_files=[self.clouds_yaml],
                                      load_envvars=False)
            self.conns[cloud] = connection.Connection(
                config=cfg.get_one(cloud=cloud))
        return self.conns[cloud]

    def close(self):
        for c in self.conns.values():
            try:
                c.close()
            except Exception:
                pass


@pytest.fixture(scope="module")
def netns():
    missing = [t for t in ("ip", "dnsmasq", "ping") if shutil.which(t) is None]
    if missing:
        pytest.fail("host tools missing for the bridge data path: %s "
                    "(scripts/setup.sh installs them)" % " ".join(missing),
                    pytrace=False)
    name = "rova-gt-" + uuid.uuid4().hex[:8]
    subprocess.run(["ip", "netns", "add", name], check=True)
    yield name
    pids = subprocess.run(["ip", "netns", "pids", name], capture_output=True,
                          text=True).stdout.split()
    for pid in pids:
        try:
            os.kill(int(pid), signal.SIGKILL)
        except (ProcessLookupError, ValueError):
            pass
    subprocess.run(["ip", "netns", "del", name], check=False)
    # the routers' namespaces Rova made beside it
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True,
                            text=True).stdout.split("\n")
    for line in listed:
        other = line.split(" ")[0]
        if other.startswith(name + "-qrouter-"):
            for pid in subprocess.run(["ip", "netns", "pids", other],
                                      capture_output=True,
                                      text=True).stdout.split():
                try:
                    os.kill(int(pid), signal.SIGKILL)
                except (ProcessLookupError, ValueError):
                    pass
            subprocess.run(["ip", "netns", "del", other], check=False)


@pytest.fixture(scope="module")
def brova(guest_assets, netns):
    base = Path(tempfile.mkdtemp(prefix="rn-"))
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("ROVA_PASSWORD_") and k not in
           ("ROVA_DRIVER", "ROVA_QEMU_HOSTS", "ROVA_SIM_LATENCY_MS",
            "ROVA_QEMU_NETWORK", "ROVA_QEMU_NETNS")}
    env.update(guest_assets)
    server = BridgeRova(rova_binary(), base, env, netns)
    failed = []
    try:
        server.start(float(os.environ.get("ROVA_START_TIMEOUT", "120")))
    except RuntimeError as e:
        server.kill_leftovers()
        pytest.fail(str(e), pytrace=False)
    server.failed = failed
    yield server
    server.stop()
    server.kill_leftovers()
    if failed or os.environ.get("ROVA_KEEP_DATA") == "1":
        print("\nbridge guests: rova data kept in %s" % base)
    else:
        shutil.rmtree(_socket_dir(server.data_dir), ignore_errors=True)
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="module")
def conns(brova):
    c = Conns(brova.clouds_yaml)
    yield c
    c.close()


@pytest.fixture(scope="module")
def bguests(brova, conns):
    return Guests(brova, conns)


def ipv4_of(server):
    addrs = [a["addr"] for net in server.addresses.values() for a in net
             if a.get("version") == 4 and a.get("OS-EXT-IPS:type", "fixed")
             == "fixed"]
    assert len(addrs) == 1, server.addresses
    return addrs[0]


def port_of(conn, server_id):
    ports = list(conn.network.ports(device_id=server_id))
    assert len(ports) == 1, ports
    return ports[0]


def boot(conn, name, user_data=None, key_name=None):
    attrs = dict(
        name=name,
        image_id=conn.image.find_image(IMAGE, ignore_missing=False).id,
        flavor_id=conn.compute.find_flavor(FLAVOR, ignore_missing=False).id,
        networks=[{"uuid": conn.network.find_network(
            NETWORK, ignore_missing=False).id}])
    if user_data is not None:
        attrs["user_data"] = base64.b64encode(user_data.encode()).decode()
    if key_name is not None:
        attrs["key_name"] = key_name
    return conn.compute.create_server(**attrs).id


def ssh(netns, key, ip, command, timeout=20):
    """OpenSSH from the namespace to root@ip with `key`."""
    return in_ns(netns, "ssh", "-i", str(key), "-o", "BatchMode=yes",
                 "-o", "StrictHostKeyChecking=no",
                 "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR",
                 "-o", "ConnectTimeout=3", "root@" + ip, command,
                 timeout=timeout)


def test_guest_gets_its_fixed_ip_and_metadata_over_the_bridge(
        brova, conns, bguests, netns):
    conn = conns()
    # Tempest's default key type: ECDSA P-384
    key = brova.base_dir / "id_ecdsa"
    subprocess.run(["ssh-keygen", "-q", "-t", "ecdsa", "-b", "384", "-N", "",
                    "-f", str(key)], check=True)
    conn.compute.create_keypair(
        name="net-key", public_key=Path(str(key) + ".pub").read_text())
    sid = boot(conn, "net-a", key_name="net-key")
    S.update(a=sid, key=key)
    server = bguests.wait_status(sid, "ACTIVE")
    want = ipv4_of(server)
    log = bguests.wait_ready(sid)
    ips = log.fields("ip")
    assert ips and ips[0].get("iface") == "eth0", bguests.context(sid, log)
    got = log.payloads("ip")[0].split()[1]
    assert got == want, ("eth0 has %s, the API says %s\n%s"
                         % (got, want, bguests.context(sid, log)))
    # the metadata service answered over the bridge, for this instance
    md = log.fields("metadata")
    assert md and md[0].get("uuid") == sid, bguests.context(sid, log)
    assert log.payloads("datasource") == ["datasource metadata"], \
        bguests.context(sid, log)
    # the host side of the bridge is not in A's group: no ping
    r = in_ns(netns, "ping", "-c", "2", "-W", "1", want)
    assert r.returncode != 0, "ping passed with no ICMP rule:\n" + r.stdout
    # its tap is on the network's bridge, with the port's DHCP entry
    port = port_of(conn, sid)
    tap = "tap" + port.id[:11]
    link = ip_ns(netns, "-o", "link", "show", "dev", tap)
    assert link.returncode == 0 and "master brq" + port.network_id[:11] in \
        link.stdout, link.stdout + link.stderr
    hosts = (brova.data_dir / "qemu" / "datapath" / "dhcp" / port.network_id
             / "host").read_text()
    assert "%s,host-%s,%s" % (port.mac_address, want.replace(".", "-"),
                              want) in hosts, hosts
    S.update(a_ip=want, a_tap=tap, network_id=port.network_id)


def test_two_guests_on_one_network_ping_each_other(brova, conns, bguests,
                                                   netns):
    (a_ip,) = need("a_ip")
    conn = conns()
    script = ("#!/bin/sh\n"
              "if ping -c 3 -W 3 %(a)s >/dev/null 2>&1; then echo PING-A-OK; "
              "else echo PING-A-FAILED; fi\n"
              "ip addr add 10.0.250.250/16 dev eth0\n"
              "if ping -c 3 -W 3 -I 10.0.250.250 %(a)s >/dev/null 2>&1; "
              "then echo SPOOF-PASSED; else echo SPOOF-BLOCKED; fi\n"
              "ip addr del 10.0.250.250/16 dev eth0\n" % {"a": a_ip})
    sid = boot(conn, "net-b", user_data=script)
    S["b"] = sid
    server = bguests.wait_status(sid, "ACTIVE")
    b_ip = ipv4_of(server)
    assert b_ip != a_ip
    log = bguests.wait_ready(sid)
    got = log.payloads("ip")[0].split()[1]
    assert got == b_ip, bguests.context(sid, log)
    assert "PING-A-OK" in log.text, bguests.context(sid, log)
    assert "SPOOF-BLOCKED" in log.text, bguests.context(sid, log)
    S.update(b_ip=b_ip, b_port=port_of(conn, sid))


def wait_ping(netns, ip, want_ok, within):
    """Seconds until a ping from the namespace to `ip` succeeds (or
    fails, with want_ok False); fails after `within` seconds."""
    start = time.monotonic()
    while True:
        r = in_ns(netns, "ping", "-c", "1", "-W", "0.3", ip)
        if (r.returncode == 0) == want_ok:
            return time.monotonic() - start
        assert time.monotonic() - start < within, (
            "ping %s still %s after %ss" % (ip, "failing" if want_ok
                                            else "passing", within))
        time.sleep(0.1)


def test_a_rule_change_reaches_the_running_guest(brova, conns, netns):
    a, a_ip, key = need("a", "a_ip", "key")
    conn = conns()
    groups = list(conn.network.security_groups(name="default"))
    assert len(groups) == 1, groups
    r = ssh(netns, key, a_ip, "true")
    assert r.returncode != 0, "ssh passed with no rule for port 22"
    icmp = conn.network.create_security_group_rule(
        security_group_id=groups[0].id, direction="ingress",
        ethertype="IPv4", protocol="icmp")
    took = wait_ping(netns, a_ip, True, 10)
    print("icmp rule took effect in %.2fs" % took)
    conn.network.create_security_group_rule(
        security_group_id=groups[0].id, direction="ingress",
        ethertype="IPv4", protocol="tcp", port_range_min=22,
        port_range_max=22)
    deadline = time.monotonic() + 10
    while True:
        # the keypair from the metadata service lets root in; inside, the
        # metadata service answers for this server
        r = ssh(netns, key, a_ip, "cat /proc/sys/kernel/random/boot_id; "
                "wget -qO- http://169.254.169.254/openstack/latest/"
                "meta_data.json")
        if r.returncode == 0 or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert r.returncode == 0, r.stdout + r.stderr
    boot_id, _, md = r.stdout.partition("\n")
    assert json.loads(md)["uuid"] == a, md
    S["a_boot_id"] = boot_id.strip()
    conn.network.delete_security_group_rule(icmp)
    took = wait_ping(netns, a_ip, False, 10)
    print("rule removal took effect in %.2fs" % took)


def slaac_address(prefix, mac):
    """The address a guest with `mac` configures itself on the /64
    `prefix` (modified EUI-64), worked out here independently of Rova."""
    b = [int(x, 16) for x in mac.split(":")]
    b[0] ^= 0x02
    iid = bytes(b[:3] + [0xff, 0xfe] + b[3:])
    net = ipaddress.IPv6Network(prefix)
    return str(net.network_address + int.from_bytes(iid, "big"))


def test_the_guest_configures_its_slaac_address_itself(brova, conns, netns):
    """The bootstrap network's IPv6 subnet is SLAAC: its port address is
    the MAC's EUI-64, and the guest, told the prefix by the router
    advertisements of the network's dnsmasq, configures that very address
    on eth0 (seen over SSH to it), reachable once the group lets IPv6
    in."""
    a, key = need("a", "key")
    conn = conns()
    port = port_of(conn, a)
    v6 = [f for f in port.fixed_ips if ":" in f["ip_address"]]
    assert len(v6) == 1, port.fixed_ips
    want = v6[0]["ip_address"]
    subnet = conn.network.get_subnet(v6[0]["subnet_id"])
    assert subnet.ipv6_address_mode == "slaac", subnet
    assert want == slaac_address(subnet.cidr, port.mac_address), \
        (want, port.mac_address)
    groups = list(conn.network.security_groups(name="default"))
    rules = [conn.network.create_security_group_rule(
        security_group_id=groups[0].id, direction="ingress",
        ethertype="IPv6", protocol=proto, **extra)
        for proto, extra in (("ipv6-icmp", {}),
                             ("tcp", dict(port_range_min=22,
                                          port_range_max=22)))]
    try:
        took = wait_ping(netns, want, True, 30)
        print("ping to the SLAAC address after %.2fs" % took)
        r = ssh(netns, key, want, "ip -6 addr show dev eth0")
        assert r.returncode == 0, r.stdout + r.stderr
        assert want + "/64" in r.stdout, r.stdout
    finally:
        for rule in rules:
            conn.network.delete_security_group_rule(rule)


def test_ssh_through_a_floating_ip_from_the_external_network(
        brova, conns, bguests, netns):
    """The bootstrap's `public` network and `router1` (devstack's): a
    member associates a floating IP with A's port and reaches A by SSH at
    that address from the external network's host side (172.24.4.1, in
    the data path's namespace); A reaches the outside through the
    router's SNAT; after disassociation the address answers no more."""
    a, a_ip, key = need("a", "a_ip", "key")
    conn = conns()
    public = conn.network.find_network("public", ignore_missing=False)
    port = port_of(conn, a)
    fip = conn.network.create_ip(floating_network_id=public.id,
                                 port_id=port.id)
    addr = fip.floating_ip_address
    assert addr.startswith("172.24.4."), addr
    deadline = time.monotonic() + 30
    while True:
        r = ssh(netns, key, addr,
                "wget -qO- http://169.254.169.254/openstack/latest/"
                "meta_data.json; echo; ping -c 2 -W 2 172.24.4.1 "
                ">/dev/null && echo OUT-OK")
        if r.returncode == 0 or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert r.returncode == 0, r.stdout + r.stderr + brova.log_tail(30)
    md, _, rest = r.stdout.partition("\n")
    assert json.loads(md)["uuid"] == a, r.stdout
    assert "OUT-OK" in rest, r.stdout
    conn.network.update_ip(fip, port_id=None)
    deadline = time.monotonic() + 10
    while ssh(netns, key, addr, "true", timeout=10).returncode == 0:
        assert time.monotonic() < deadline, "the floating IP still answers"
        time.sleep(0.5)
    conn.network.delete_ip(fip)


def test_interface_attach_gives_the_guest_a_second_nic(brova, conns, bguests,
                                                       netns):
    a, network_id = need("a", "network_id")
    conn = conns()
    iface = conn.compute.create_server_interface(a, net_id=network_id)
    port = conn.network.get_port(iface.port_id)
    ip = [f["ip_address"] for f in port.fixed_ips
          if ":" not in f["ip_address"]][0]
    mac = port.mac_address.lower()

    def plugged(log):
        nics = [p.split()[1] for p in log.payloads("nic")
                if "mac=" + mac in p and p.endswith(" added")]
        ips = [p for p in log.payloads("ip") if p.split()[1:2] == [ip]]
        return (nics[0], ips[0]) if nics and ips else None

    (name, line), log = bguests.wait_console(
        a, "a NIC with %s and address %s" % (mac, ip), plugged, timeout=120)
    assert "iface=%s" % name in line, bguests.context(a, log)
    tap = "tap" + port.id[:11]
    assert ip_ns(netns, "link", "show", "dev", tap).returncode == 0
    conn.compute.delete_server_interface(iface, server=a)

    def removed(log):
        return "nic %s removed" % name in log.payloads("nic")
    bguests.wait_console(a, "nic %s removed" % name, removed, timeout=120)
    deadline = time.monotonic() + 30
    while ip_ns(netns, "link", "show", "dev", tap).returncode == 0:
        assert time.monotonic() < deadline, "tap %s is still there" % tap
        time.sleep(0.5)


def test_deleting_a_server_removes_its_tap_and_dhcp_entry(brova, conns,
                                                          bguests, netns):
    b, port, network_id, a_tap = need("b", "b_port", "network_id", "a_tap")
    conn = conns()
    conn.compute.delete_server(b)
    deadline = time.monotonic() + BOOT_TIMEOUT
    while conn.compute.find_server(b) is not None:
        assert time.monotonic() < deadline, "server B was not deleted"
        time.sleep(0.5)
    tap = "tap" + port.id[:11]
    assert ip_ns(netns, "link", "show", "dev", tap).returncode != 0, \
        "tap %s is still there" % tap
    hosts = (brova.data_dir / "qemu" / "datapath" / "dhcp" / network_id
             / "host").read_text()
    assert port.mac_address not in hosts, hosts
    # guest A is untouched
    assert ip_ns(netns, "link", "show", "dev", a_tap).returncode == 0
    leases = (brova.data_dir / "qemu" / "datapath" / "dhcp" / network_id
              / "leases").read_text()
    assert port.mac_address not in leases, leases
    b_ip = S["b_ip"]
    rules = in_ns(netns, "nft", "list", "ruleset").stdout
    assert tap not in rules and b_ip + " " not in rules, rules
    assert a_tap in rules, rules
    print(json.dumps({"tap_removed": tap}))
