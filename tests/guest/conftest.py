"""Fixtures for the real-guest suite (tests/guest).

The session builds (or finds in its cache) the test guest with
`bash guest/build.sh`, starts its own `rova serve --driver qemu
--qemu-hosts 2` on a free loopback port with a fresh data directory, and
drives it with the real `openstack` CLI and openstacksdk from the client
venv (scripts/client-venv.sh). Guests are real QEMU processes; what they do
is read back from their serial console (`ROVA-GUEST: ...` lines, see
guest/README.md).

Nothing here skips: a missing QEMU, guest or binary is a failure.

Environment:
  ROVA_BIN                  the rova binary (default target/release/rova)
  ROVA_GUEST_ACCEL          passed as --qemu-accel (default: rova's "auto")
  ROVA_GUEST_BOOT_TIMEOUT   seconds for a guest to become ACTIVE and print
                            `ready` (default 300; TCG on a busy 2-core
                            machine is slow)
  ROVA_START_TIMEOUT        seconds to wait for "rova: serving on" (default 120)
  ROVA_CLI_TIMEOUT          seconds allowed per CLI command (default 300)
  ROVA_GUEST_WORKDIR        where the data directory goes (default: a new
                            temp dir; kept when a test failed, path printed)
  ROVA_KEEP_DATA=1          keep the work directory even when all passed
"""

import base64
import binascii
import hashlib
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import pytest

# the helpers shared with tests/cli live in tests/common/osclient.py
_COMMON = str(Path(__file__).resolve().parents[1] / "common")
if _COMMON not in sys.path:
    sys.path.insert(0, _COMMON)
from osclient import (Cli, ServeProcess, build_guest,  # noqa: E402
                      free_port, rova_binary, sdk_environ)

HOSTS = ("rova-qemu-1", "rova-qemu-2")
PREFIX = "ROVA-GUEST: "
# host tools the QEMU driver and this suite need; missing ones fail the run
HOST_TOOLS = ("qemu-system-x86_64", "qemu-img", "genisoimage", "socat",
              "ssh-keygen")

BOOT_TIMEOUT = float(os.environ.get("ROVA_GUEST_BOOT_TIMEOUT", "300"))


# ---------------------------------------------------------------------------
# processes started (directly or not) by the rova under test
# ---------------------------------------------------------------------------

def _proc_argv(pid):
    try:
        raw = Path("/proc/%d/cmdline" % pid).read_bytes()
    except OSError:
        return None
    return [a.decode("utf-8", "replace") for a in raw.split(b"\0") if a]


def _proc_cwd(pid):
    try:
        return os.readlink("/proc/%d/cwd" % pid)
    except OSError:
        return ""


def _proc_start_ticks(pid):
    try:
        stat = Path("/proc/%d/stat" % pid).read_text()
    except OSError:
        return None
    # field 22 (starttime), counted after the ")" that ends comm
    return int(stat[stat.rindex(")") + 2:].split()[19])


def _own_start_ticks():
    return _proc_start_ticks(os.getpid()) or 0


def guest_processes(data_dir, kinds=("qemu-system",), also=()):
    """{pid: argv} of processes whose command line or cwd refers to
    data_dir (or whose command line has one of the strings `also`, e.g.
    server ids) and whose program name starts with one of `kinds`."""
    data = str(data_dir)
    also = [a for a in also if a]
    found = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        pid = int(entry)
        if pid == os.getpid():
            continue
        argv = _proc_argv(pid)
        if not argv:
            continue
        prog = os.path.basename(argv[0])
        if not any(prog.startswith(k) for k in kinds):
            continue
        if (any(data in a for a in argv) or _proc_cwd(pid).startswith(data)
                or any(x in a for a in argv for x in also)):
            found[pid] = argv
    return found


def _pidfile_processes(data_dir, not_before):
    """Processes named by *.pid files under data_dir that are QEMU or socat
    and were started after this test session (a stale pid file can name a
    recycled pid; such a process is left alone)."""
    found = {}
    for pf in Path(data_dir).rglob("*.pid"):
        try:
            pid = int(pf.read_text().split()[0])
        except (OSError, ValueError, IndexError):
            continue
        argv = _proc_argv(pid)
        start = _proc_start_ticks(pid)
        if not argv or start is None or start < not_before:
            continue
        prog = os.path.basename(argv[0])
        if prog.startswith("qemu-system") or prog == "socat":
            found[pid] = argv
    return found


def _stop_pids(pids, grace=10.0):
    for pid in pids:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + grace
    left = set(pids)
    while left and time.monotonic() < deadline:
        left = {p for p in left if Path("/proc/%d" % p).exists()
                and _proc_state(p) != "Z"}
        time.sleep(0.1)
    for pid in left:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def _proc_state(pid):
    try:
        stat = Path("/proc/%d/stat" % pid).read_text()
    except OSError:
        return "Z"
    return stat[stat.rindex(")") + 2:].split()[0]


# ---------------------------------------------------------------------------
# the rova under test
# ---------------------------------------------------------------------------

class GuestRova(ServeProcess):
    """One `rova serve --driver qemu --qemu-hosts 2` owned by the session;
    it can be stopped and started again on the same data directory."""

    log_lines = 80
    stop_timeout = 60

    def __init__(self, binary, base_dir, env):
        base_dir = Path(base_dir)
        super().__init__(binary, base_dir / "data",
                         base_dir / "rova-serve.log")
        self.base_dir = base_dir
        self.port = free_port()
        self.env = env
        self.starts = 0
        self.session_start_ticks = _own_start_ticks()

    def command(self):
        cmd = [str(self.binary), "serve", "--driver", "qemu",
               "--qemu-hosts", str(len(HOSTS)),
               "--data-dir", str(self.data_dir),
               "--listen", "127.0.0.1:%d" % self.port]
        if os.environ.get("ROVA_GUEST_ACCEL"):
            cmd += ["--qemu-accel", os.environ["ROVA_GUEST_ACCEL"]]
        return cmd

    def start(self, timeout):
        # the port of the previous run may linger for a moment after a stop
        for attempt in range(5):
            try:
                self._start_once(timeout)
                return
            except RuntimeError as e:
                if "Address already in use" not in str(e) or attempt == 4:
                    raise
                time.sleep(1)

    def _start_once(self, timeout):
        self.starts += 1
        log = open(self.log_path, "ab")
        log.write(("\n===== start #%d: %s\n" % (
            self.starts, " ".join(self.command()))).encode())
        log.flush()
        start_offset = log.tell()

        def exit_output():
            time.sleep(0.2)  # let the pump copy the last lines
            return self._log_since(start_offset)

        self._launch(self.command(), self.env, log, timeout, exit_output)

    def _log_since(self, offset):
        try:
            with open(self.log_path, "rb") as f:
                f.seek(offset)
                return f.read().decode("utf-8", "replace")[-6000:]
        except OSError:
            return "(no log)"

    def restart(self, timeout):
        rc = self.stop()
        self.start(timeout)
        return rc

    def kill_leftovers(self):
        """Stops every QEMU (and socat connector) still running for this
        data directory; returns what was found."""
        if not self.data_dir.exists():
            return {}
        found = guest_processes(self.data_dir, ("qemu-system", "socat"))
        found.update(_pidfile_processes(self.data_dir, self.session_start_ticks))
        if found:
            _stop_pids(list(found))
        return found


def _socket_dir(data_dir):
    """Where the QEMU driver keeps this data directory's unix sockets
    ($TMPDIR/rova-<sha256 of the data dir>[:10], short for sun_path); the
    driver leaves it behind, so a passing session removes it."""
    digest = hashlib.sha256(str(Path(data_dir).resolve()).encode()).hexdigest()
    return Path(tempfile.gettempdir()) / ("rova-" + digest[:10])


_STATE = {"rova": None, "sdk": None, "servers": {}, "failed": False}


def _sigterm(signum, frame):
    _STATE["failed"] = True     # keep the data directory for a look
    raise KeyboardInterrupt("SIGTERM")


def pytest_configure(config):
    # scripts/test.sh stops a suite that runs too long with SIGTERM: turn it
    # into an interrupt so the session fixtures still stop rova and QEMU
    signal.signal(signal.SIGTERM, _sigterm)


def need_state(state, *keys):
    """The values an earlier test left in `state` under `keys`; fails
    (saying which are missing) when that test did not get so far."""
    missing = [k for k in keys if k not in state]
    if missing:
        pytest.fail("an earlier test did not get this far (no %s)"
                    % ", ".join(missing), pytrace=False)
    return [state[k] for k in keys]


def register_server(sid, label):
    """Servers whose console tail goes into a failing test's report."""
    _STATE["servers"][sid] = label


@pytest.fixture(scope="session")
def guest_assets():
    missing = [t for t in HOST_TOOLS if shutil.which(t) is None]
    if missing:
        pytest.fail("host tools missing for the QEMU driver: %s (scripts/setup.sh "
                    "installs them; see guest/README.md)"
                    % " ".join(missing), pytrace=False)
    return build_guest()


@pytest.fixture(scope="session")
def rova(guest_assets):
    binary = rova_binary()
    workdir = os.environ.get("ROVA_GUEST_WORKDIR")
    if workdir:
        Path(workdir).mkdir(parents=True, exist_ok=True)
        base = Path(tempfile.mkdtemp(prefix="rg-", dir=workdir))
    else:
        # short: unix socket paths under the data dir must fit in 108 bytes
        base = Path(tempfile.mkdtemp(prefix="rg-"))
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("ROVA_PASSWORD_") and k not in
           ("ROVA_DRIVER", "ROVA_QEMU_HOSTS", "ROVA_SIM_LATENCY_MS")}
    env.update(guest_assets)
    env.setdefault("RUST_BACKTRACE", "1")
    server = GuestRova(binary, base, env)
    _STATE["rova"] = server
    try:
        server.start(float(os.environ.get("ROVA_START_TIMEOUT", "120")))
    except RuntimeError as e:
        server.kill_leftovers()
        pytest.fail(str(e), pytrace=False)
    yield server
    rc = server.stop()
    left = server.kill_leftovers()
    _STATE["rova"] = None
    if left:
        print("\nguest suite: stopped %d process(es) left by rova (exit %s): %s"
              % (len(left), rc, sorted(left)), file=sys.stderr)
    if os.environ.get("ROVA_KEEP_DATA") == "1" or _STATE["failed"]:
        print("\nguest suite: rova data kept in %s (log %s)"
              % (base, server.log_path), file=sys.stderr)
    else:
        shutil.rmtree(_socket_dir(server.data_dir), ignore_errors=True)
        shutil.rmtree(base, ignore_errors=True)


def _console_tail_for_report(sid, lines=40):
    sdk = _STATE.get("sdk")
    if sdk is None:
        return "(no openstacksdk connection in this session)"
    try:
        out = sdk().compute.get_server_console_output(sid, length=lines)
        return out.get("output", "")
    except Exception as e:  # the report must not fail
        return "(console log not readable through the API: %s)" % e


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if not rep.failed:
        return
    _STATE["failed"] = True
    server = _STATE["rova"]
    if server is None:
        return
    alive = "running" if server.running() else "NOT running"
    rep.sections.append(("rova serve log (tail; process %s)" % alive,
                         server.log_tail()))
    for sid, label in list(_STATE["servers"].items()):
        text = _console_tail_for_report(sid) if server.running() else \
            "(rova is not running)"
        rep.sections.append(("console log of %s %s (tail)" % (label, sid),
                             text.replace("\r", "")))


# ---------------------------------------------------------------------------
# the openstack CLI and openstacksdk
# ---------------------------------------------------------------------------

@pytest.fixture(scope="session")
def cli(rova):
    return Cli(rova, default_timeout=300, stderr_lines=60,
               cache_dir=rova.base_dir / "client-cache")


class Sdk:
    """openstacksdk connections per cloud name; dropped after a restart."""

    def __init__(self, server):
        self.server = server
        self.conns = {}

    def __call__(self, cloud="rova-demo", **options):
        """A connection; options go to openstack.connect (e.g.
        compute_api_version="2.56")."""
        import openstack
        key = (cloud, tuple(sorted(options.items())))
        if key not in self.conns:
            self.conns[key] = openstack.connect(cloud=cloud, **options)
        return self.conns[key]

    def reset(self):
        for c in self.conns.values():
            try:
                c.close()
            except Exception:
                pass
        self.conns = {}


@pytest.fixture(scope="session")
def sdk(rova):
    with sdk_environ(rova.clouds_yaml):
        s = Sdk(rova)
        _STATE["sdk"] = s
        yield s
        _STATE["sdk"] = None
        s.reset()


# ---------------------------------------------------------------------------
# the guest's console protocol
# ---------------------------------------------------------------------------

BOOT_RE = re.compile(r"^boot kernel=(\S+) uptime=(\S+) boot_id=([0-9a-fA-F-]+)")
HEARTBEAT_RE = re.compile(r"^heartbeat (\d+)$")


class GuestLog:
    """A serial console log, parsed for `ROVA-GUEST: ` protocol lines."""

    def __init__(self, text):
        self.text = text or ""
        # the serial port ends lines with \r\n; firmware escape codes may
        # precede the prefix on a line
        self.lines = [ln.replace("\r", "") for ln in self.text.split("\n")]
        self.proto = []   # (line index, payload)
        for i, ln in enumerate(self.lines):
            at = ln.find(PREFIX)
            if at >= 0:
                self.proto.append((i, ln[at + len(PREFIX):].strip()))

    def payloads(self, verb=None):
        return [p for _, p in self.proto
                if verb is None or p == verb or p.startswith(verb + " ")]

    def fields(self, verb):
        """key=value fields of every `verb ...` line, in order."""
        out = []
        for p in self.payloads(verb):
            out.append(dict(re.findall(r"(\w+)=(\S*)", p[len(verb):])))
        return out

    @property
    def boot_ids(self):
        return [m.group(3) for m in (BOOT_RE.match(p) for _, p in self.proto)
                if m]

    @property
    def last_boot_id(self):
        ids = self.boot_ids
        return ids[-1] if ids else None

    @property
    def heartbeats(self):
        return [int(m.group(1)) for m in
                (HEARTBEAT_RE.match(p) for _, p in self.proto) if m]

    @property
    def last_heartbeat(self):
        hb = self.heartbeats
        return hb[-1] if hb else None

    def since_last_boot(self):
        """The part of the log from the last `boot` line on."""
        idx = [i for i, p in self.proto if BOOT_RE.match(p)]
        if not idx:
            return self
        return GuestLog("\n".join(self.lines[idx[-1]:]))

    def boot_segment(self, boot_id):
        """The lines of the boot `boot_id` (from its `boot` line to the next
        `boot` line), or None when that boot is not in the log."""
        starts = [(i, m.group(3)) for i, m in
                  ((i, BOOT_RE.match(p)) for i, p in self.proto) if m]
        for n, (i, b) in enumerate(starts):
            if b == boot_id:
                end = starts[n + 1][0] if n + 1 < len(starts) else len(self.lines)
                return GuestLog("\n".join(self.lines[i:end]))
        return None

    def ready(self):
        return bool(self.payloads("ready"))

    def block(self, tag):
        """The bytes of a `<tag>-begin` ... `<tag>-end` base64 block (the
        first one in this log), or None."""
        begin = end = None
        for i, p in self.proto:
            if begin is None and p.startswith(tag + "-begin"):
                begin = i
            elif begin is not None and p.startswith(tag + "-end"):
                end = i
                break
        if begin is None or end is None:
            return None
        body = "".join(ln.strip() for ln in self.lines[begin + 1:end])
        try:
            return base64.b64decode(body, validate=True)
        except (binascii.Error, ValueError):
            return None

    def lines_between(self, start_verb, end_verb):
        """Raw lines between the first `start_verb` and the next `end_verb`
        protocol lines."""
        begin = end = None
        for i, p in self.proto:
            if begin is None and p.startswith(start_verb):
                begin = i
            elif begin is not None and p.startswith(end_verb):
                end = i
                break
        if begin is None or end is None:
            return None
        return self.lines[begin + 1:end]

    def tail(self, n=40):
        return "\n".join(self.lines[-n:])


class Guests:
    """Waiting on servers and on what their guests print."""

    def __init__(self, rova, sdk):
        self.rova = rova
        self.sdk = sdk

    # -- API state ----------------------------------------------------------
    def server(self, sid, cloud="rova-demo"):
        return self.sdk(cloud).compute.get_server(sid)

    def host_of(self, sid):
        return self.server(sid, "rova-admin").compute_host

    def wait_status(self, sid, status, timeout=BOOT_TIMEOUT, cloud="rova-demo"):
        """Until status is `status` with no task in progress; fails at once
        on ERROR (unless asked for)."""
        deadline = time.monotonic() + timeout
        s = None
        while time.monotonic() < deadline:
            s = self.server(sid, cloud)
            if s.status == status and not s.task_state:
                return s
            if s.status == "ERROR" and status != "ERROR":
                raise AssertionError("server %s went to ERROR (fault %s)\n%s"
                                     % (sid, s.fault, self.context(sid)))
            time.sleep(0.5)
        raise AssertionError(
            "server %s not %s after %ss: status=%s task_state=%s "
            "vm_state=%s\n%s" % (sid, status, timeout,
                                 getattr(s, "status", None),
                                 getattr(s, "task_state", None),
                                 getattr(s, "vm_state", None),
                                 self.context(sid)))

    # -- console --------------------------------------------------------------
    def console(self, sid, lines=None):
        out = self.sdk().compute.get_server_console_output(sid, length=lines)
        return GuestLog(out.get("output", ""))

    def wait_console(self, sid, what, pred, timeout=BOOT_TIMEOUT):
        """Polls the console log until pred(GuestLog) is truthy; returns
        (value, log)."""
        deadline = time.monotonic() + timeout
        log = GuestLog("")
        while True:
            try:
                log = self.console(sid)
            except Exception as e:  # e.g. console not there yet
                log = GuestLog("(console log error: %s)" % e)
            value = pred(log)
            if value:
                return value, log
            if time.monotonic() > deadline:
                raise AssertionError("%s: %s not seen after %ss\n%s"
                                     % (sid, what, timeout,
                                        self.context(sid, log)))
            time.sleep(0.5)

    def wait_ready(self, sid, boot_id=None, timeout=BOOT_TIMEOUT):
        """Until the guest printed `ready` in the boot `boot_id` (default:
        its latest boot); returns the log."""
        def pred(log):
            seg = (log.since_last_boot() if boot_id is None
                   else log.boot_segment(boot_id))
            return log if seg is not None and seg.ready() else None
        what = "`ready`" + (" of boot %s" % boot_id if boot_id else "")
        return self.wait_console(sid, what, pred, timeout)[0]

    def wait_heartbeat_above(self, sid, n, timeout=60):
        def pred(log):
            hb = log.last_heartbeat
            return log if hb is not None and hb > n else None
        return self.wait_console(sid, "a heartbeat above %s" % n, pred,
                                 timeout)[0]

    def wait_new_boot(self, sid, old_boot_id, timeout=BOOT_TIMEOUT):
        """Until a `boot` line with another boot_id than old_boot_id is the
        latest; returns (new boot_id, log)."""
        def pred(log):
            b = log.last_boot_id
            return b if b and b != old_boot_id else None
        return self.wait_console(sid, "a new boot (not %s)" % old_boot_id,
                                 pred, timeout)

    # -- reports --------------------------------------------------------------
    def context(self, sid, log=None):
        if log is None:
            try:
                log = self.console(sid)
            except Exception as e:
                log = GuestLog("(console log not readable: %s)" % e)
        return ("--- console log of %s (tail)\n%s\n--- rova log (tail)\n%s"
                % (sid, log.tail(40), self.rova.log_tail(40)))


@pytest.fixture(scope="session")
def guests(rova, sdk):
    return Guests(rova, sdk)


@pytest.fixture(scope="session")
def unique():
    return uuid.uuid4().hex[:8]
