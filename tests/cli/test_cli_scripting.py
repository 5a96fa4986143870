"""The CLI as shell scripts use it: `openstack ... --wait -f value -c id`
captured with `$(...)`, and `-f json` piped into a JSON parser.

A slow build (the simulated driver's `/rova/v1/sim/slow` on `spawn`) makes
the CLI's `--wait` poll (every 5 s) land while the server is still in BUILD,
which is when a non-zero `progress` made it print "Progress: N" into
standard output and broke both patterns.
"""

import json
import os
import re
import subprocess
import urllib.request

import pytest

UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
# the CLI polls every 5 s: a 7 s spawn step puts at least one poll in BUILD
SLOW_SPAWN_MS = 7000


def sim(rova, token, method, path, body=None):
    req = urllib.request.Request(
        "http://127.0.0.1:%d/rova/v1/sim/%s" % (rova.port, path),
        method=method, data=None if body is None else json.dumps(body).encode(),
        headers={"X-Auth-Token": token, "Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as r:
        return r.status


@pytest.fixture
def slow_builds(rova, sdk_connect):
    token = sdk_connect("rova-admin").auth_token
    assert sim(rova, token, "POST", "slow",
               {"operation": "spawn", "delay_ms": SLOW_SPAWN_MS}) in (200, 201, 204)
    yield
    sim(rova, token, "DELETE", "faults")


def shell(cli, script):
    """Runs a bash script with the CLI's environment and `openstack` on PATH."""
    env = dict(cli.env)
    env["PATH"] = os.path.dirname(cli.exe) + os.pathsep + env.get("PATH", "")
    return subprocess.run(["bash", "-euo", "pipefail", "-c", script], env=env,
                          capture_output=True, text=True, timeout=cli.timeout,
                          stdin=subprocess.DEVNULL)


def test_create_wait_value_id_in_a_script(cli, unique, slow_builds):
    name = "script-%s" % unique
    proc = shell(cli, (
        'id=$(openstack --os-cloud rova-demo server create --wait -f value -c id '
        '--image cirros-0.6.2-x86_64-disk --flavor m1.tiny --network private %s)\n'
        'printf "%%s" "$id"') % name)
    assert proc.returncode == 0, proc.stderr[-3000:]
    try:
        assert UUID.match(proc.stdout), "stdout is not just the id: %r" % proc.stdout
        show = cli.json("rova-demo", "server", "show", proc.stdout)
        assert show["name"] == name and show["status"] == "ACTIVE", show
        assert show["progress"] == 0, show
    finally:
        cli.raw("rova-demo", "server", "delete", "--wait", name)


def test_create_wait_json_piped(cli, unique, slow_builds):
    name = "script-json-%s" % unique
    proc = shell(cli, (
        'openstack --os-cloud rova-demo server create --wait -f json '
        '--image cirros-0.6.2-x86_64-disk --flavor m1.tiny --network private %s '
        '| python3 -c "import json, sys; d = json.load(sys.stdin); '
        'print(d[\'id\'], d[\'status\'])"') % name)
    try:
        assert proc.returncode == 0, (proc.stdout, proc.stderr[-3000:])
        sid, status = proc.stdout.split()
        assert UUID.match(sid) and status == "ACTIVE", proc.stdout
    finally:
        cli.raw("rova-demo", "server", "delete", "--wait", name)
