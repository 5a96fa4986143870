"""Fixtures for the black-box client tests.

The suite starts its own `rova serve` (binary from $ROVA_BIN, default
target/release/rova relative to the repository root) on a free loopback port
with a fresh data directory, and drives it with the real `openstack` CLI and
openstacksdk from the client virtualenv (scripts/client-venv.sh).

Environment:
  ROVA_BIN              path to the rova binary
  ROVA_SIM_LATENCY_MS   passed as --sim-latency-ms when set
  ROVA_START_TIMEOUT    seconds to wait for "rova: serving on" (default 60)
  ROVA_CLI_TIMEOUT      seconds allowed per CLI command (default 180)
  ROVA_KEEP_DATA=1      keep the server's data directory (path is printed)
"""

import json
import os
import shutil
import sys
import tempfile
import uuid
from pathlib import Path

import pytest

# the helpers shared with tests/guest live in tests/common/osclient.py
_COMMON = str(Path(__file__).resolve().parents[1] / "common")
if _COMMON not in sys.path:
    sys.path.insert(0, _COMMON)
from osclient import (Cli, ServeProcess, free_port,  # noqa: E402
                      rova_binary, sdk_environ)

CLOUDS = ("rova-admin", "rova-demo", "rova-reader", "rova-alt")


class RovaServer(ServeProcess):
    """One `rova serve` process owned by the test session."""

    log_lines = 60
    stop_timeout = 15

    def __init__(self, binary, data_dir, port):
        super().__init__(binary, data_dir,
                         Path(data_dir).parent / "rova-serve.log")
        self.port = port

    def start(self, timeout):
        cmd = [str(self.binary), "serve", "--data-dir", str(self.data_dir),
               "--listen", "127.0.0.1:%d" % self.port]
        if os.environ.get("ROVA_SIM_LATENCY_MS"):
            cmd += ["--sim-latency-ms", os.environ["ROVA_SIM_LATENCY_MS"]]
        env = {k: v for k, v in os.environ.items()
               if not k.startswith("ROVA_PASSWORD_")}
        env.setdefault("RUST_BACKTRACE", "1")
        self._launch(cmd, env, open(self.log_path, "wb"), timeout)

    def passwords(self):
        return json.loads((self.data_dir / "passwords.json").read_text())


_SERVER = None


@pytest.fixture(scope="session")
def rova(tmp_path_factory):
    global _SERVER
    binary = rova_binary()
    base = Path(tempfile.mkdtemp(prefix="rova-cli-"))
    data_dir = base / "data"
    server = RovaServer(binary, data_dir, free_port())
    _SERVER = server
    server.start(float(os.environ.get("ROVA_START_TIMEOUT", "60")))
    yield server
    server.stop()
    _SERVER = None
    if os.environ.get("ROVA_KEEP_DATA") == "1":
        print("\nrova data kept in %s" % base, file=sys.stderr)
    else:
        shutil.rmtree(base, ignore_errors=True)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if rep.failed and _SERVER is not None:
        rep.sections.append(("rova serve log (tail)", _SERVER.log_tail()))


# ---------------------------------------------------------------------------
# the openstack CLI
# ---------------------------------------------------------------------------

@pytest.fixture(scope="session")
def cli(rova):
    return Cli(rova, default_timeout=180, stderr_lines=80)


# ---------------------------------------------------------------------------
# openstacksdk
# ---------------------------------------------------------------------------

@pytest.fixture(scope="session")
def sdk_connect(rova):
    import openstack

    conns = []

    def connect(cloud):
        conn = openstack.connect(cloud=cloud)
        conns.append(conn)
        return conn

    with sdk_environ(rova.clouds_yaml):
        yield connect
        for c in conns:
            c.close()


# ---------------------------------------------------------------------------
# shared test data
# ---------------------------------------------------------------------------

@pytest.fixture(scope="session")
def unique():
    """A short random tag that keeps resource names of this run apart."""
    return uuid.uuid4().hex[:8]


@pytest.fixture(scope="session")
def cirros_image(cli):
    images = cli.json("rova-demo", "image", "list")
    names = [i["Name"] for i in images]
    # the exact name first: the alt image's name starts the same way
    for i in sorted(images, key=lambda i: len(i["Name"])):
        if i["Name"].startswith("cirros-0.6.2-x86_64-disk"):
            return i
    pytest.fail("no cirros-0.6.2-x86_64-disk image in %s" % names)
