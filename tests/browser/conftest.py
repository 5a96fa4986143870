"""Fixtures for the dashboard's browser suite.

The suite starts its own `rova serve` (binary from $ROVA_BIN, default
target/release/rova; simulated driver; test_qemu_console.py starts one more
with the QEMU driver and the test guest) on a free loopback port with a fresh
data directory, and drives the dashboard with headless Chromium through
chromedriver (Debian's `chromium` and `chromium-driver`, installed by
scripts/setup.sh) and selenium (from the client venv).

Environment:
  ROVA_BIN                      path to the rova binary
  ROVA_START_TIMEOUT            seconds to wait for "rova: serving on" (60)
  ROVA_CHROMIUM, ROVA_CHROMEDRIVER  the browser and driver binaries
                                (default /usr/bin/chromium, /usr/bin/chromedriver)
  ROVA_DASHBOARD_SCREENSHOTS    a directory: the main pages are saved there
                                as PNG (docs/dashboard in the repository)
  ROVA_DASHBOARD_BENCH          a file: the measured figures are written
                                there as JSON (they are printed anyway)
"""

import json
import os
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path

import pytest
import requests

_COMMON = str(Path(__file__).resolve().parents[1] / "common")
if _COMMON not in sys.path:
    sys.path.insert(0, _COMMON)
from osclient import REPO_ROOT, ServeProcess, free_port, rova_binary  # noqa: E402

FIGURES = {}


class RovaServer(ServeProcess):
    log_lines = 60
    stop_timeout = 15

    def __init__(self, binary, data_dir, port):
        super().__init__(binary, data_dir,
                         Path(data_dir).parent / "rova-serve.log")
        self.port = port

    def start(self, timeout, extra_args=(), extra_env=None):
        cmd = [str(self.binary), "serve", "--data-dir", str(self.data_dir),
               "--listen", "127.0.0.1:%d" % self.port] + list(extra_args)
        env = {k: v for k, v in os.environ.items()
               if not k.startswith("ROVA_PASSWORD_")}
        env.pop("ROVA_DATABASE_URL", None)
        env.update(extra_env or {})
        self._launch(cmd, env, open(self.log_path, "wb"), timeout)

    def passwords(self):
        return json.loads((self.data_dir / "passwords.json").read_text())

    # ---- the APIs, for set-up and for checking what the pages did ----

    def token(self, user, project):
        pw = self.passwords()[user]
        body = {"auth": {"identity": {"methods": ["password"], "password": {
            "user": {"name": user, "domain": {"name": "Default"},
                     "password": pw}}},
            "scope": {"project": {"name": project,
                                  "domain": {"name": "Default"}}}}}
        r = requests.post(self.base_url + "/identity/v3/auth/tokens",
                          json=body, timeout=30)
        assert r.status_code == 201, r.text
        return r.headers["X-Subject-Token"]

    def api(self, method, path, token, **kw):
        headers = {"X-Auth-Token": token,
                   "OpenStack-API-Version": "compute 2.100"}
        return requests.request(method, self.base_url + path,
                                headers=headers, timeout=30, **kw)

    def server_status(self, token, server_id):
        r = self.api("GET", "/compute/v2.1/servers/" + server_id, token)
        if r.status_code == 404:
            return None
        return r.json()["server"]["status"]


_SERVER = None


@pytest.fixture(scope="session")
def rova():
    global _SERVER
    base = Path(tempfile.mkdtemp(prefix="rova-browser-"))
    server = RovaServer(rova_binary(), base / "data", free_port())
    _SERVER = server
    server.start(float(os.environ.get("ROVA_START_TIMEOUT", "60")))
    yield server
    server.stop()
    _SERVER = None
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="session")
def admin_token(rova):
    return rova.token("admin", "admin")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if rep.failed and _SERVER is not None:
        rep.sections.append(("rova serve log (tail)", _SERVER.log_tail()))


def pytest_terminal_summary(terminalreporter):
    if not FIGURES:
        return
    terminalreporter.section("dashboard figures")
    for k, v in sorted(FIGURES.items()):
        terminalreporter.write_line("%s: %s" % (k, v))
    out = os.environ.get("ROVA_DASHBOARD_BENCH")
    if out:
        Path(out).write_text(json.dumps(FIGURES, indent=2, sort_keys=True))


# ---------------------------------------------------------------------------
# the browser
# ---------------------------------------------------------------------------

class Browser:
    """One headless Chromium with its own cookies, on the rova's dashboard."""

    def __init__(self, rova):
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service

        opts = webdriver.ChromeOptions()
        opts.binary_location = os.environ.get("ROVA_CHROMIUM",
                                              "/usr/bin/chromium")
        for arg in ("--headless=new", "--no-sandbox", "--disable-gpu",
                    "--disable-dev-shm-usage", "--no-first-run",
                    "--disable-background-networking", "--disable-sync",
                    "--disable-extensions", "--window-size=1280,900"):
            opts.add_argument(arg)
        service = Service(os.environ.get("ROVA_CHROMEDRIVER",
                                         "/usr/bin/chromedriver"))
        self.driver = webdriver.Chrome(service=service, options=opts)
        self.driver.set_page_load_timeout(60)
        self.rova = rova

    def quit(self):
        self.driver.quit()

    def go(self, path):
        self.driver.get(self.rova.base_url + path)

    def path(self):
        return re.sub(r"^https?://[^/]+", "", self.driver.current_url)

    def find(self, css):
        from selenium.webdriver.common.by import By
        return self.driver.find_element(By.CSS_SELECTOR, css)

    def finds(self, css):
        from selenium.webdriver.common.by import By
        return self.driver.find_elements(By.CSS_SELECTOR, css)

    def text(self, css):
        return self.find(css).text

    def wait(self, cond, timeout=30, what="condition"):
        """Polls `cond()` (exceptions count as not yet) every 20 ms."""
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            try:
                v = cond()
                if v:
                    return v
            except Exception as e:  # stale elements while the page updates
                last = e
            time.sleep(0.02)
        raise AssertionError("timed out waiting for %s (last error: %r); page:\n%s"
                             % (what, last, self.driver.page_source[:3000]))

    def login(self, user, project):
        self.go("/dashboard/login")
        self.find("#username").send_keys(user)
        self.find("#password").send_keys(self.rova.passwords()[user])
        self.find("#project").send_keys(project)
        self.find("form button[type=submit]").click()
        self.wait(lambda: self.path().startswith("/dashboard/servers"),
                  what="the servers page after log-in")

    def click_action(self, op):
        """Clicks the server page's button for `op` (the parts refresh
        themselves, so the button is found afresh)."""
        def press():
            self.find('#part-actions input[name=op][value="%s"] + button' % op).click()
            return True
        self.wait(press, what="the %s button" % op)

    def shot(self, name):
        out = os.environ.get("ROVA_DASHBOARD_SCREENSHOTS")
        if not out:
            return
        d = Path(out)
        if not d.is_absolute():
            d = REPO_ROOT / d
        d.mkdir(parents=True, exist_ok=True)
        self.driver.save_screenshot(str(d / ("%s.png" % name)))

    def session(self):
        """A requests session carrying this browser's cookies (to read
        status codes, which WebDriver does not show)."""
        s = requests.Session()
        for c in self.driver.get_cookies():
            s.cookies.set(c["name"], c["value"], path=c.get("path", "/"))
        return s


@pytest.fixture(scope="module")
def demo(rova):
    b = Browser(rova)
    b.login("demo", "demo")
    yield b
    b.quit()


@pytest.fixture
def browser(rova):
    b = Browser(rova)
    yield b
    b.quit()
