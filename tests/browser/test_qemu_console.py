"""The VNC console of a real guest in the dashboard: a `rova serve
--driver qemu` of this module's own (the test guest from guest/build.sh,
run under QEMU — TCG on machines without usable KVM), a server launched
for demo, its page's VNC console opened: noVNC (Debian's package, served
by Rova) connects through Rova's console proxy to the guest's QEMU VNC
display and draws its canvas. Nothing here skips: a missing QEMU or guest
is a failure (scripts/setup.sh installs them)."""

import os
import shutil
import tempfile
import time
from pathlib import Path

import pytest
from conftest import Browser, RovaServer
from osclient import build_guest, free_port, rova_binary

BOOT_TIMEOUT = float(os.environ.get("ROVA_GUEST_BOOT_TIMEOUT", "300"))


@pytest.fixture(scope="module")
def qemu_rova():
    if shutil.which("qemu-system-x86_64") is None:
        pytest.fail("qemu-system-x86_64 is missing (scripts/setup.sh installs it)",
                    pytrace=False)
    assets = build_guest()
    # short: the QEMU driver's unix socket paths must fit in 108 bytes
    base = Path(tempfile.mkdtemp(prefix="rb-"))
    server = RovaServer(rova_binary(), base / "data", free_port())
    server.start(float(os.environ.get("ROVA_START_TIMEOUT", "120")),
                 extra_args=("--driver", "qemu", "--qemu-hosts", "1"),
                 extra_env=assets)
    yield server
    server.stop()
    shutil.rmtree(base, ignore_errors=True)


def wait_for(cond, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = cond()
        if v:
            return v
        time.sleep(0.5)
    raise AssertionError("timed out waiting for " + what)


def test_vnc_console_of_a_qemu_guest_connects(qemu_rova):
    token = qemu_rova.token("demo", "demo")
    images = qemu_rova.api("GET", "/image/v2/images?name=rova-guest", token).json()
    assert images["images"], "the test guest image is registered"
    r = qemu_rova.api("POST", "/compute/v2.1/servers", token, json={"server": {
        "name": "vnc-qemu", "imageRef": images["images"][0]["id"],
        "flavorRef": "c1", "networks": "auto"}})
    assert r.status_code == 202, r.text
    sid = r.json()["server"]["id"]
    b = Browser(qemu_rova)
    try:
        wait_for(lambda: qemu_rova.server_status(token, sid) in ("ACTIVE", "ERROR"),
                 BOOT_TIMEOUT, "the guest to be ACTIVE")
        assert qemu_rova.server_status(token, sid) == "ACTIVE"
        b.login("demo", "demo")
        b.go("/dashboard/servers/" + sid)
        button = b.wait(lambda: [x for x in b.finds("#h-vnc + .actions button")
                                 if x.text == "Open the VNC console"][0],
                        what="the VNC console button")
        button.click()
        frame = b.wait(lambda: b.find("iframe#vnc"), what="the console frame")
        assert "simulated server" not in b.text("main")
        b.driver.switch_to.frame(frame)
        try:
            status = b.wait(lambda: b.find("#status").text.startswith("Connected")
                            and b.find("#status").text, timeout=60,
                            what="noVNC connected to the guest")
            assert status.startswith("Connected")
            assert b.finds("canvas"), "noVNC drew its canvas"
        finally:
            b.driver.switch_to.default_content()
    finally:
        b.quit()
        qemu_rova.api("DELETE", "/compute/v2.1/servers/" + sid, token)
        wait_for(lambda: qemu_rova.server_status(token, sid) is None, 120,
                 "the guest to be deleted")
