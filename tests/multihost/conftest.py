"""Fixtures for the multi-host suite.

It runs inside the client namespace of a cloud `scripts/multihost.sh up`
made (`scripts/multihost.sh test DIR` does both): ROVA_MH_DIR names that
cloud's directory. The tests drive it with the `openstack` CLI and
openstacksdk, and kill and restart its processes through the script.
"""

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

_COMMON = str(Path(__file__).resolve().parents[1] / "common")
if _COMMON not in sys.path:
    sys.path.insert(0, _COMMON)
from osclient import Cli  # noqa: E402

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "multihost.sh"


class Cloud:
    """The harness's cloud: its directory, its clouds.yaml, its script."""

    def __init__(self, base):
        self.base = Path(base)
        self.clouds_yaml = self.base / "clouds.yaml"
        self.agents = int((self.base / "agents").read_text())

    def script(self, *args):
        subprocess.run(["bash", str(SCRIPT)] + [str(a) for a in args],
                       check=True, timeout=120)

    def kill(self, name, sig="KILL"):
        """Signals c1, c2 or aK and waits until it is gone."""
        self.script("kill", self.base, name, sig)

    def crash(self, name):
        """Host aK fails: its agent and every process in its namespace
        (its guests too) are killed."""
        self.script("crash", self.base, name)

    def start(self, name):
        """Starts c1, c2 or aK again."""
        self.script("start", self.base, name)


class Via:
    """A Cli whose server is a clouds.yaml (the harness has no process
    object for it)."""

    def __init__(self, clouds_yaml):
        self.clouds_yaml = clouds_yaml


@pytest.fixture(scope="session")
def cloud():
    base = os.environ.get("ROVA_MH_DIR")
    if not base:
        pytest.fail("ROVA_MH_DIR is not set: run this suite with "
                    "scripts/multihost.sh test DIR", pytrace=False)
    return Cloud(base)


@pytest.fixture(scope="session")
def cli(cloud):
    c = Cli(Via(cloud.clouds_yaml), 180,
            cache_dir=cloud.base / "client-cache")
    return c


@pytest.fixture(scope="session")
def cli_c2(cloud):
    """The CLI through the second control replica."""
    return Cli(Via(cloud.base / "clouds-c2.yaml"), 180,
               cache_dir=cloud.base / "client-cache-c2")


def wait_for(what, fn, timeout=60, every=0.5):
    """Polls fn() until it returns something true; that value."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            v = fn()
            if v:
                return v
        except Exception as e:  # noqa: BLE001 - a retryable poll
            last = e
        time.sleep(every)
    raise AssertionError("timed out waiting for %s (last error: %r)"
                         % (what, last))
