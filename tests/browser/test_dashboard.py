"""The dashboard in headless Chromium: log in as demo, launch a server and
watch it turn ACTIVE without a reload, pause and unpause it from its page,
read its console log, open its VNC console (noVNC from the installed
package, connected to the simulator's RFB server), delete it; a member
sees no admin links and gets the 403 page; another project's server is the
404 page; a form posted without its CSRF token is refused; log-out revokes
the token. The tests share one demo browser and run in file order."""

import threading
import time
import uuid

import pytest
from conftest import FIGURES, Browser
from selenium.webdriver.support.ui import Select

NAME = "web-" + uuid.uuid4().hex[:6]
STATE = {}


def slow(rova, admin_token, operation, ms):
    r = rova.api("POST", "/rova/v1/sim/slow", admin_token,
                 json={"operation": operation, "delay_ms": ms})
    assert r.status_code < 300, r.text


def clear_slow(rova, admin_token):
    rova.api("DELETE", "/rova/v1/sim/faults", admin_token)


def row_status(b, server_id):
    return b.find('tr[data-id="%s"] .status' % server_id).get_attribute("data-status")


def mark_page(b):
    """Marks the loaded document: a reload or navigation drops the mark."""
    b.driver.execute_script("window.__rovaMark = 'kept';")


def still_marked(b):
    return b.driver.execute_script("return window.__rovaMark === 'kept';")


def console_button(b, label):
    return [x for x in b.finds("#h-vnc + .actions button") if x.text == label][0]


def test_log_in_as_demo(rova):
    b = Browser(rova)
    try:
        b.go("/")
        b.wait(lambda: b.path() == "/dashboard/login", what="the log-in page")
        assert b.find("label[for=username]").text == "User name"
        b.shot("login")
        b.login("demo", "demo")
        assert "demo · project demo" in b.text("header")
    finally:
        b.quit()


def test_launch_and_watch_it_turn_active(rova, demo, admin_token):
    # the build is slowed so that the list is on screen well before it ends
    slow(rova, admin_token, "spawn", 6000)
    try:
        demo.go("/dashboard/servers/new")
        demo.shot("launch")
        demo.find("#name").send_keys(NAME)
        Select(demo.find("#image")).select_by_visible_text("cirros-0.6.2-x86_64-disk")
        Select(demo.find("#flavor")).select_by_value("1")
        demo.find("#launch button[type=submit]").click()
        demo.wait(lambda: demo.path() == "/dashboard/servers", what="the list")
        mark_page(demo)
        link = demo.wait(lambda: [a for a in demo.finds("#server-rows a")
                                  if a.text == NAME], what="the new row")[0]
        server_id = link.get_attribute("href").rsplit("/", 1)[1]
        STATE["id"] = server_id
        assert row_status(demo, server_id) == "BUILD"
        demo.wait(lambda: row_status(demo, server_id) == "ACTIVE", timeout=60,
                  what="ACTIVE in the list")
        assert still_marked(demo), "the list updated without a reload"
        demo.shot("servers")
    finally:
        clear_slow(rova, admin_token)


def _timed_change(rova, b, token, server_id, want):
    """Seconds from the API first reporting `want` to the page showing it
    (the page not reloaded in between)."""
    seen = {}

    def poll_api():
        end = time.monotonic() + 60
        while time.monotonic() < end and "api" not in seen:
            if rova.server_status(token, server_id) == want:
                seen["api"] = time.monotonic()
            time.sleep(0.02)

    t = threading.Thread(target=poll_api, daemon=True)
    t.start()
    b.wait(lambda: b.find("#server-status").get_attribute("data-status") == want,
           timeout=60, what="%s on the server page" % want)
    shown = time.monotonic()
    t.join(timeout=60)
    assert "api" in seen
    return max(0.0, shown - seen["api"])


def test_pause_and_unpause_from_its_page(rova, demo, admin_token):
    server_id = STATE["id"]
    token = rova.token("demo", "demo")
    demo.go("/dashboard/servers/" + server_id)
    demo.wait(lambda: demo.find("#server-status").get_attribute("data-status") == "ACTIVE")
    demo.shot("server")
    delays = []
    for op, want in (("pause", "PAUSED"), ("unpause", "ACTIVE")):
        slow(rova, admin_token, op, 1500)
        try:
            demo.click_action(op)
            # the POST answers with a redirect to the page, rendered while
            # the action still runs; from then on the page updates itself
            demo.wait(lambda: demo.find("#server-status").get_attribute("data-status") != want
                      or demo.find("#part-actions").text, what="the page after %s" % op)
            mark_page(demo)
            delays.append(_timed_change(rova, demo, token, server_id, want))
            assert still_marked(demo), "%s shown without a reload" % want
        finally:
            clear_slow(rova, admin_token)
    # the buttons follow the state: an active server cannot be unpaused
    unpause = demo.find('#part-actions input[value="unpause"] + button')
    assert unpause.get_attribute("disabled") is not None
    FIGURES["status shown after the action ended, seconds (pause, unpause)"] = \
        ", ".join("%.2f" % d for d in delays)
    assert max(delays) < 5, delays


def test_console_log(demo):
    demo.go("/dashboard/servers/" + STATE["id"])
    log = demo.wait(lambda: demo.find("#console-log").text, what="the console log")
    assert "rova simulated console for " + STATE["id"] in log
    assert "login:" in log


def test_vnc_console_connects(demo):
    demo.go("/dashboard/servers/" + STATE["id"])
    console_button(demo, "Open the VNC console").click()
    frame = demo.wait(lambda: demo.find("iframe#vnc"), what="the console frame")
    assert "simulated server" in demo.text("main")
    demo.driver.switch_to.frame(frame)
    try:
        status = demo.wait(lambda: demo.find("#status").text.startswith("Connected")
                           and demo.find("#status").text, timeout=30,
                           what="noVNC connected")
        assert NAME in status or STATE["id"][:8] in status or "Connected" in status
        assert demo.finds("canvas"), "noVNC drew its canvas"
    finally:
        demo.driver.switch_to.default_content()
    demo.shot("console")


def test_serial_console_of_a_simulated_server_echoes_a_sent_line(demo):
    demo.go("/dashboard/servers/" + STATE["id"])
    console_button(demo, "Open the serial console").click()
    assert "echoes what is sent" in demo.find("#sim-serial").text
    demo.wait(lambda: demo.find("#serial-state").text == "Connected.",
              what="the serial console connected")
    line = demo.find("#serial-line")
    line.send_keys("hello-serial")
    demo.find("#serial-send button").click()
    out = demo.wait(lambda: "hello-serial" in demo.find("#serial-out").text
                    and demo.find("#serial-out").text,
                    what="the line echoed")
    assert out.strip() == "hello-serial", out


def test_a_form_without_csrf_is_refused(rova, demo):
    token = rova.token("demo", "demo")
    server_id = STATE["id"]
    demo.go("/dashboard/servers/" + server_id)
    demo.driver.execute_script("""
        var f = document.querySelector('#part-actions input[value="pause"]').form;
        f.querySelector('input[name=csrf]').remove();
        f.submit();""")
    demo.wait(lambda: demo.find("h1").text == "Forbidden", what="the 403 page")
    assert "CSRF" in demo.text("main")
    assert rova.server_status(token, server_id) == "ACTIVE", "nothing changed"


def test_delete_it(rova, demo):
    token = rova.token("demo", "demo")
    server_id = STATE["id"]
    demo.go("/dashboard/servers/" + server_id)
    demo.click_action("delete")
    demo.wait(lambda: demo.path() == "/dashboard/servers", what="the list")
    demo.wait(lambda: not demo.finds('tr[data-id="%s"]' % server_id),
              timeout=60, what="the row gone")
    assert rova.server_status(token, server_id) in (None, "DELETED")


def test_a_member_sees_no_admin_pages(demo):
    demo.go("/dashboard/servers")
    assert not demo.finds('a[href^="/dashboard/admin/"]')
    demo.go("/dashboard/admin/hypervisors")
    assert demo.find("h1").text == "Forbidden"
    r = demo.session().get(demo.rova.base_url + "/dashboard/admin/hypervisors",
                           allow_redirects=False, timeout=30)
    assert r.status_code == 403 and "text/html" in r.headers["Content-Type"]


def test_another_projects_server_is_the_404_page(rova, demo):
    alt = rova.token("alt_demo", "alt_demo")
    images = rova.api("GET", "/image/v2/images", alt).json()["images"]
    image = [i for i in images if i["name"] == "cirros-0.6.2-x86_64-disk"][0]
    r = rova.api("POST", "/compute/v2.1/servers", alt, json={"server": {
        "name": "alt-secret", "imageRef": image["id"], "flavorRef": "1",
        "networks": "none"}})
    assert r.status_code == 202, r.text
    theirs = r.json()["server"]["id"]
    try:
        demo.go("/dashboard/servers/" + theirs)
        assert demo.find("h1").text == "Not found"
        assert "alt-secret" not in demo.driver.page_source
        r = demo.session().get(demo.rova.base_url + "/dashboard/servers/" + theirs,
                               allow_redirects=False, timeout=30)
        assert r.status_code == 404
    finally:
        rova.api("DELETE", "/compute/v2.1/servers/" + theirs, alt)


def test_admin_pages(rova, admin_token):
    b = Browser(rova)
    try:
        b.login("admin", "admin")
        # some usage for the bars to show
        images = rova.api("GET", "/image/v2/images", admin_token).json()["images"]
        image = [i for i in images if i["name"] == "cirros-0.6.2-x86_64-disk"][0]
        r = rova.api("POST", "/compute/v2.1/servers", admin_token, json={"server": {
            "name": "admin-load", "imageRef": image["id"], "flavorRef": "3",
            "networks": "none", "min_count": 2, "max_count": 2}})
        assert r.status_code == 202, r.text
        b.go("/dashboard/admin/servers")
        b.wait(lambda: sum(1 for r in b.finds("#server-rows tr")
                           if "admin-load" in r.text and "ACTIVE" in r.text) == 2,
               timeout=60, what="both admin servers ACTIVE in every project's list")
        b.go("/dashboard/admin/hypervisors")
        assert b.finds("meter"), "capacity bars"
        b.shot("hypervisors")
        b.go("/dashboard/admin/services")
        row = [r for r in b.finds("tbody tr") if "nova-compute" in r.text][0]
        row.find_element("css selector", "input[name=reason]").send_keys("maintenance")
        row.find_element("css selector", "button").click()
        b.wait(lambda: "maintenance" in b.text("tbody"), what="the disabled reason")
        row = [r for r in b.finds("tbody tr") if "nova-compute" in r.text][0]
        row.find_element("css selector", 'input[value="enable"] + button').click()
        b.wait(lambda: "maintenance" not in b.text("tbody"), what="enabled again")
    finally:
        b.quit()


UNLABELLED = """
return Array.from(document.querySelectorAll(
    'main input:not([type=hidden]), main select, main textarea'))
  .filter(function (e) { return !e.labels.length && !e.getAttribute('aria-label'); })
  .map(function (e) { return e.name; });"""


def test_accessible_markup_that_fits_a_phone(rova):
    b = Browser(rova)
    try:
        b.login("demo", "demo")
        for path in ("/dashboard/servers", "/dashboard/servers/new",
                     "/dashboard/keypairs", "/dashboard/project"):
            b.go(path)
            assert b.driver.execute_script(UNLABELLED) == [], path
            assert all(th.get_attribute("scope") == "col" for th in b.finds("thead th"))
        # the first Tab reaches the skip link, which leads to the content
        from selenium.webdriver.common.keys import Keys
        b.go("/dashboard/servers")
        b.find("body").send_keys(Keys.TAB)
        active = b.driver.switch_to.active_element
        assert active.get_attribute("class") == "skip"
        assert active.get_attribute("href").endswith("#main")
        # a phone-sized window: the page does not scroll sideways (wide
        # tables scroll inside their own box)
        b.driver.set_window_size(390, 844)
        for path in ("/dashboard/servers", "/dashboard/servers/new"):
            b.go(path)
            assert b.driver.execute_script(
                "return document.documentElement.scrollWidth <= window.innerWidth + 1;"), path
        b.go("/dashboard/servers")
        b.shot("phone")
    finally:
        b.quit()


def test_key_pairs_and_quotas(demo):
    name = "kp-" + uuid.uuid4().hex[:6]
    demo.go("/dashboard/keypairs")
    demo.find("#kp-name").send_keys(name)
    demo.find("#kp-name").submit()
    secret = demo.wait(lambda: demo.find("pre.secret").text, what="the private key")
    assert "PRIVATE KEY" in secret
    row = [r for r in demo.finds("tbody tr") if name in r.text][0]
    row.find_element("css selector", "button").click()
    demo.wait(lambda: demo.path() == "/dashboard/keypairs"
              and name not in demo.text("main"), what="the key pair deleted")
    demo.go("/dashboard/quotas")
    assert len(demo.finds("meter")) >= 3
    assert "Instances:" in demo.text("main")


def test_upload_and_delete_an_image(demo, tmp_path):
    name = "img-" + uuid.uuid4().hex[:6]
    data = tmp_path / "disk.raw"
    data.write_bytes(bytes(range(256)) * 64)
    demo.go("/dashboard/images")
    demo.find("#img-name").send_keys(name)
    Select(demo.find("#img-format")).select_by_value("raw")
    demo.find("#img-file").send_keys(str(data))
    demo.find("#upload button[type=submit]").click()

    def row():
        rows = [r for r in demo.finds("tbody tr") if name in r.text]
        return rows[0] if rows and "active" in rows[0].text else None
    r = demo.wait(row, timeout=60, what="the uploaded image, active")
    assert "16384" in r.text, r.text
    r.find_element("css selector", "button").click()
    demo.wait(lambda: demo.path() == "/dashboard/images"
              and name not in demo.text("main"), what="the image deleted")


def test_security_group_with_a_rule(demo):
    name = "sg-" + uuid.uuid4().hex[:6]
    demo.go("/dashboard/security-groups")
    demo.find("#sg-name").send_keys(name)
    demo.find("#sg-name").submit()

    def card():
        cards = [c for c in demo.finds("section.card") if c.find_element(
            "css selector", "h2").text == name]
        return cards[0] if cards else None
    c = demo.wait(card, what="the new group")
    c.find_element("css selector", "input[name=port_min]").send_keys("22")
    c.find_element("css selector", "input[name=port_max]").send_keys("22")
    c.find_element("css selector", "input[name=remote_ip_prefix]").send_keys("10.0.0.0/8")
    c.find_element("css selector", "input[name=remote_ip_prefix]").submit()
    demo.wait(lambda: "10.0.0.0/8" in card().text, what="the rule listed")
    card().find_element(
        "css selector",
        'form[action^="/dashboard/security-groups/"][action$="/delete"] button').click()
    demo.wait(lambda: card() is None, what="the group deleted")


def test_log_out_revokes_the_token(rova, demo):
    demo.go("/dashboard/api-access")
    token = demo.find("#session-token").get_attribute("textContent").strip()
    assert rova.api("GET", "/compute/v2.1/servers", token).status_code == 200
    demo.find("#logout").click()
    demo.wait(lambda: demo.path() == "/dashboard/login", what="the log-in page")
    assert rova.api("GET", "/compute/v2.1/servers", token).status_code == 401
    demo.go("/dashboard/servers")
    assert demo.path() == "/dashboard/login"
