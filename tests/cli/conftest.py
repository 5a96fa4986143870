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
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
CLOUDS = ("rova-admin", "rova-demo", "rova-reader", "rova-alt")
READY_RE = re.compile(r"rova: serving on (http://\S+)")


def _free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _tail(path, lines=60):
    try:
        data = Path(path).read_text(errors="replace").splitlines()
    except OSError:
        return "(no log)"
    return "\n".join(data[-lines:])


class RovaServer:
    """One `rova serve` process owned by the test session."""

    def __init__(self, binary, data_dir, port):
        self.binary = binary
        self.data_dir = Path(data_dir)
        self.port = port
        self.base_url = None
        self.log_path = self.data_dir.parent / "rova-serve.log"
        self.proc = None

    def start(self, timeout):
        cmd = [str(self.binary), "serve", "--data-dir", str(self.data_dir),
               "--listen", "127.0.0.1:%d" % self.port]
        if os.environ.get("ROVA_SIM_LATENCY_MS"):
            cmd += ["--sim-latency-ms", os.environ["ROVA_SIM_LATENCY_MS"]]
        env = {k: v for k, v in os.environ.items()
               if not k.startswith("ROVA_PASSWORD_")}
        env.setdefault("RUST_BACKTRACE", "1")
        log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, env=env,
                                     start_new_session=True)
        ready = threading.Event()

        def pump():
            # Copy the server's output to the log file and watch for the
            # readiness line; keeps reading so the pipe never fills up.
            for raw in iter(self.proc.stdout.readline, b""):
                log.write(raw)
                log.flush()
                if not ready.is_set():
                    m = READY_RE.search(raw.decode("utf-8", "replace"))
                    if m:
                        self.base_url = m.group(1).rstrip("/")
                        ready.set()
            log.close()

        threading.Thread(target=pump, daemon=True).start()
        deadline = time.monotonic() + timeout
        while not ready.wait(0.1):
            if self.proc.poll() is not None:
                raise RuntimeError(
                    "rova exited with %s before it was ready:\n%s"
                    % (self.proc.returncode, _tail(self.log_path)))
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("rova not ready after %ss:\n%s"
                                   % (timeout, _tail(self.log_path)))
        # The files the clients need must exist once the server says ready.
        for name in ("clouds.yaml", "passwords.json"):
            if not (self.data_dir / name).is_file():
                raise RuntimeError("rova is serving but %s/%s is missing"
                                   % (self.data_dir, name))

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=15)

    @property
    def clouds_yaml(self):
        return self.data_dir / "clouds.yaml"

    def passwords(self):
        return json.loads((self.data_dir / "passwords.json").read_text())

    def log_tail(self, lines=60):
        return _tail(self.log_path, lines)


def _rova_binary():
    b = os.environ.get("ROVA_BIN")
    path = Path(b) if b else REPO_ROOT / "target" / "release" / "rova"
    if not path.is_absolute():
        path = REPO_ROOT / path
    return path


_SERVER = None


@pytest.fixture(scope="session")
def rova(tmp_path_factory):
    global _SERVER
    binary = _rova_binary()
    if not (binary.is_file() and os.access(binary, os.X_OK)):
        pytest.fail("rova binary not found at %s (build it with cargo build "
                    "--release -p rova, or set ROVA_BIN)" % binary,
                    pytrace=False)
    base = Path(tempfile.mkdtemp(prefix="rova-cli-"))
    data_dir = base / "data"
    server = RovaServer(binary, data_dir, _free_port())
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

def _venv_tool(name):
    here = Path(sys.executable).parent / name
    if here.exists():
        return str(here)
    found = shutil.which(name)
    if not found:
        pytest.fail("%s not found next to %s nor on PATH; run the suite "
                    "with the client venv's python (scripts/client-venv.sh)"
                    % (name, sys.executable), pytrace=False)
    return found


def client_env(clouds_yaml):
    """Environment for a client process: no stray OS_* settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OS_")}
    env["OS_CLIENT_CONFIG_FILE"] = str(clouds_yaml)
    # keep the CLI from writing caches into the developer's home
    env["XDG_CACHE_HOME"] = str(Path(clouds_yaml).parent.parent / "client-cache")
    return env


class CliError(AssertionError):
    def __init__(self, argv, proc):
        self.argv = argv
        self.returncode = proc.returncode
        self.stdout = proc.stdout
        self.stderr = proc.stderr
        super().__init__(
            "openstack %s -> exit %s\n--- stdout\n%s\n--- stderr (tail)\n%s"
            % (" ".join(argv), proc.returncode, proc.stdout[-3000:],
               "\n".join(proc.stderr.splitlines()[-80:])))


class Cli:
    """Runs `openstack --os-cloud CLOUD ...` against the test server."""

    def __init__(self, server):
        self.server = server
        self.exe = _venv_tool("openstack")
        self.env = client_env(server.clouds_yaml)
        self.timeout = float(os.environ.get("ROVA_CLI_TIMEOUT", "180"))

    def raw(self, cloud, *args):
        # --debug puts every request and response on stderr, which is what
        # a failure message needs to show what the server did.
        argv = ["--os-cloud", cloud, "--debug"] + [str(a) for a in args]
        proc = subprocess.run([self.exe] + argv, env=self.env,
                              capture_output=True, text=True,
                              stdin=subprocess.DEVNULL, timeout=self.timeout)
        return argv, proc

    def run(self, cloud, *args):
        """Run a command that must succeed; return its stdout."""
        argv, proc = self.raw(cloud, *args)
        if proc.returncode != 0:
            raise CliError(argv, proc)
        return proc.stdout

    def json(self, cloud, *args):
        out = self.run(cloud, *(list(args) + ["-f", "json"]))
        # `--wait` writes "\rProgress: N" to stdout ahead of the document
        starts = [i for i in (out.find("{"), out.find("[")) if i >= 0]
        try:
            return json.loads(out[min(starts):] if starts else out)
        except ValueError:
            raise AssertionError("openstack %s printed no JSON:\n%s"
                                 % (" ".join(map(str, args)), out))

    def fail(self, cloud, *args):
        """Run a command that must fail; return the completed process."""
        argv, proc = self.raw(cloud, *args)
        if proc.returncode == 0:
            raise AssertionError(
                "openstack %s succeeded but should have failed:\n%s"
                % (" ".join(argv), proc.stdout))
        return proc


@pytest.fixture(scope="session")
def cli(rova):
    return Cli(rova)


# ---------------------------------------------------------------------------
# openstacksdk
# ---------------------------------------------------------------------------

@pytest.fixture(scope="session")
def sdk_connect(rova):
    import openstack

    saved = {k: v for k, v in os.environ.items() if k.startswith("OS_")}
    for k in saved:
        del os.environ[k]
    os.environ["OS_CLIENT_CONFIG_FILE"] = str(rova.clouds_yaml)
    conns = []

    def connect(cloud):
        conn = openstack.connect(cloud=cloud)
        conns.append(conn)
        return conn

    yield connect
    for c in conns:
        c.close()
    os.environ.pop("OS_CLIENT_CONFIG_FILE", None)
    os.environ.update(saved)


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
