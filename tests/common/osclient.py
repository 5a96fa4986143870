"""osclient: what the black-box pytest suites share (tests/cli, tests/guest).

Owns the pieces both suites' conftest.py use to run a `rova serve` of their
own and drive it with the real OpenStack clients from the client venv
(scripts/client-venv.sh):

  - locating things: REPO_ROOT, rova_binary() ($ROVA_BIN or
    target/release/rova, failing the session when it is not there),
    venv_tool(), free_port(), tail() of a log file;
  - ServeProcess: a `rova serve` child whose output is copied to a log file
    and which is ready once it prints "rova: serving on URL"; the suites
    subclass it with their own command line and environment;
  - the `openstack` CLI: client_env(), Cli (raw/run/json/fail) and CliError;
  - openstacksdk: sdk_environ(), which points OS_CLIENT_CONFIG_FILE at the
    server's clouds.yaml for the session and puts stray OS_* settings back
    afterwards.

Where the suites differ (CLI timeout default, how much of a log or of the
CLI's stderr a failure shows, how long a stop may take) the caller says so.
Each conftest puts tests/common on sys.path and imports from here; this
module holds no per-session state.
"""

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
READY_RE = re.compile(r"rova: serving on (http://\S+)")


def free_port():
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tail(path, lines):
    """The last `lines` lines of a text file, or a note that it is not
    there."""
    try:
        data = Path(path).read_text(errors="replace").splitlines()
    except OSError:
        return "(no log at %s)" % path
    return "\n".join(data[-lines:])


def rova_binary():
    """The rova binary under test: $ROVA_BIN (relative to the repository
    root unless absolute) or target/release/rova. Fails the test (not a
    skip) when it is not an executable file."""
    b = os.environ.get("ROVA_BIN")
    path = Path(b) if b else REPO_ROOT / "target" / "release" / "rova"
    if not path.is_absolute():
        path = REPO_ROOT / path
    if not (path.is_file() and os.access(path, os.X_OK)):
        pytest.fail("rova binary not found at %s (build it with cargo build "
                    "--release -p rova, or set ROVA_BIN)" % path,
                    pytrace=False)
    return path


def build_guest():
    """Runs guest/build.sh (a no-op when its cache is current) and returns
    {"ROVA_GUEST_KERNEL": path, "ROVA_GUEST_INITRD": path}."""
    proc = subprocess.run(["bash", str(REPO_ROOT / "guest" / "build.sh")],
                          capture_output=True, text=True,
                          stdin=subprocess.DEVNULL, timeout=900)
    if proc.returncode != 0:
        pytest.fail("guest/build.sh failed (exit %d):\n%s\n%s"
                    % (proc.returncode, proc.stdout[-2000:],
                       proc.stderr[-4000:]), pytrace=False)
    assets = dict(re.findall(r"^(ROVA_GUEST_[A-Z]+)=(.+)$", proc.stdout, re.M))
    for key in ("ROVA_GUEST_KERNEL", "ROVA_GUEST_INITRD"):
        if key not in assets or not Path(assets[key]).is_file():
            pytest.fail("guest/build.sh printed no usable %s:\n%s"
                        % (key, proc.stdout), pytrace=False)
    return assets


def venv_tool(name):
    """A program of the client venv: next to the running python, else on
    PATH; fails the test when neither has it."""
    here = Path(sys.executable).parent / name
    if here.exists():
        return str(here)
    found = shutil.which(name)
    if not found:
        pytest.fail("%s not found next to %s nor on PATH; run the suite "
                    "with the client venv's python (scripts/client-venv.sh)"
                    % (name, sys.executable), pytrace=False)
    return found


# ---------------------------------------------------------------------------
# a `rova serve` child process
# ---------------------------------------------------------------------------

class ServeProcess:
    """A `rova serve` owned by a test session. Subclasses set `log_lines`
    (how much of the log a failure shows) and `stop_timeout` (seconds
    SIGTERM gets before SIGKILL), and start it with `_launch`."""

    log_lines = 60
    stop_timeout = 15

    def __init__(self, binary, data_dir, log_path):
        self.binary = binary
        self.data_dir = Path(data_dir)
        self.log_path = Path(log_path)
        self.proc = None
        self.base_url = None

    def _launch(self, cmd, env, log, timeout, exit_output=None):
        """Runs `cmd` with `env`, copying its output to the binary file
        object `log` (closed when the output ends), and waits up to
        `timeout` seconds for the readiness line, which sets base_url. Raises
        RuntimeError when the process exits first (with exit_output(), by
        default the log's tail) or is not ready in time (after stopping it),
        and when clouds.yaml or passwords.json is missing once it is."""
        self.base_url = None
        self.proc = proc = subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, env=env, start_new_session=True)
        ready = threading.Event()

        def pump():
            # copy the output to the log, watch for the readiness line; keep
            # reading so the pipe never fills up
            for raw in iter(proc.stdout.readline, b""):
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
            if proc.poll() is not None:
                out = exit_output() if exit_output else self.log_tail()
                raise RuntimeError("rova exited with %s before it was ready:\n%s"
                                   % (proc.returncode, out))
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("rova not ready after %ss:\n%s"
                                   % (timeout, self.log_tail()))
        # the files the clients need must exist once the server says ready
        for name in ("clouds.yaml", "passwords.json"):
            if not (self.data_dir / name).is_file():
                raise RuntimeError("rova is serving but %s/%s is missing"
                                   % (self.data_dir, name))

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout=None):
        """SIGTERM, as an operator's service manager would, then SIGKILL
        after `timeout` (default stop_timeout) seconds; returns the exit
        status (None when never started)."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=self.stop_timeout if timeout is None
                               else timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=15)
        return self.proc.returncode

    @property
    def clouds_yaml(self):
        return self.data_dir / "clouds.yaml"

    def log_tail(self, lines=None):
        return tail(self.log_path, self.log_lines if lines is None else lines)


# ---------------------------------------------------------------------------
# the openstack CLI
# ---------------------------------------------------------------------------

def client_env(clouds_yaml, cache_dir=None):
    """Environment for a client process: no stray OS_* settings, the
    server's clouds.yaml, and caches in `cache_dir` (default: client-cache
    beside the data directory that holds clouds.yaml) rather than the
    developer's home."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OS_")}
    env["OS_CLIENT_CONFIG_FILE"] = str(clouds_yaml)
    if cache_dir is None:
        cache_dir = Path(clouds_yaml).parent.parent / "client-cache"
    env["XDG_CACHE_HOME"] = str(cache_dir)
    return env


class CliError(AssertionError):
    """A CLI command that should have succeeded failed; the message shows
    its stdout and the last `stderr_lines` lines of its --debug stderr."""

    def __init__(self, argv, proc, stderr_lines=80):
        self.argv = argv
        self.returncode = proc.returncode
        self.stdout = proc.stdout
        self.stderr = proc.stderr
        super().__init__(
            "openstack %s -> exit %s\n--- stdout\n%s\n--- stderr (tail)\n%s"
            % (" ".join(argv), proc.returncode, proc.stdout[-3000:],
               "\n".join(proc.stderr.splitlines()[-stderr_lines:])))


class Cli:
    """Runs `openstack --os-cloud CLOUD ...` against the test server.

    Each command may take $ROVA_CLI_TIMEOUT seconds, else `default_timeout`;
    `stderr_lines` and `cache_dir` go to CliError and client_env."""

    def __init__(self, server, default_timeout, stderr_lines=80,
                 cache_dir=None):
        self.server = server
        self.exe = venv_tool("openstack")
        self.env = client_env(server.clouds_yaml, cache_dir)
        self.timeout = float(os.environ.get("ROVA_CLI_TIMEOUT",
                                            default_timeout))
        self.stderr_lines = stderr_lines

    def raw(self, cloud, *args):
        """Runs a command; returns (argv, completed process) whatever its
        exit status."""
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
            raise CliError(argv, proc, self.stderr_lines)
        return proc.stdout

    def json(self, cloud, *args):
        """Run a command that must succeed with `-f json`; return the
        parsed document."""
        out = self.run(cloud, *(list(args) + ["-f", "json"]))
        # strict: the whole of stdout must be the document, as `| jq` needs
        # (`--wait` prints "Progress: N" there when a server reports
        # progress while it builds)
        try:
            return json.loads(out)
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


# ---------------------------------------------------------------------------
# openstacksdk
# ---------------------------------------------------------------------------

@contextlib.contextmanager
def sdk_environ(clouds_yaml):
    """Within: os.environ has no OS_* settings but OS_CLIENT_CONFIG_FILE =
    clouds_yaml (openstacksdk in this process reads it); afterwards the
    OS_* settings are as they were."""
    saved = {k: v for k, v in os.environ.items() if k.startswith("OS_")}
    for k in saved:
        del os.environ[k]
    os.environ["OS_CLIENT_CONFIG_FILE"] = str(clouds_yaml)
    try:
        yield
    finally:
        os.environ.pop("OS_CLIENT_CONFIG_FILE", None)
        os.environ.update(saved)
