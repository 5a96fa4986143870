"""The dashboard's servers page with many servers: time to first byte,
whole-page time and page weight, as docs/benchmarks.md reports them.

  "$(scripts/client-venv.sh)/bin/python" tests/browser/bench_list.py [N]

Starts a `rova serve` of its own (release binary, simulated driver, quotas
and host sizes raised), creates N servers (default 1000) through the
compute API, logs in to the dashboard as demo and times GET
/dashboard/servers (and the 2-second refresh's /dashboard/servers/rows)
ten times each over one kept-alive connection. Prints the figures.
"""

import http.client
import os
import re
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from conftest import RovaServer  # noqa: E402
from osclient import free_port, rova_binary  # noqa: E402


def login(rova):
    """A dashboard session cookie for demo."""
    conn = http.client.HTTPConnection("127.0.0.1", rova.port, timeout=60)
    conn.request("GET", "/dashboard/login")
    r = conn.getresponse()
    page = r.read().decode()
    pre = re.search(r"rova_login=([0-9a-f]+)", r.getheader("Set-Cookie")).group(1)
    csrf = re.search(r'name="csrf" value="([0-9a-f]+)"', page).group(1)
    body = "csrf=%s&username=demo&password=%s&project=demo" % (
        csrf, rova.passwords()["demo"])
    conn.request("POST", "/dashboard/login", body=body, headers={
        "Content-Type": "application/x-www-form-urlencoded",
        "Cookie": "rova_login=" + pre})
    r = conn.getresponse()
    r.read()
    return re.search(r"rova_session=([0-9a-f]+)", r.getheader("Set-Cookie")).group(1)


def timed(conn, path, cookie, etag=None):
    """(seconds to the first byte, seconds to the last, bytes, ETag)."""
    headers = {"Cookie": "rova_session=" + cookie}
    if etag:
        headers["If-None-Match"] = etag
    start = time.perf_counter()
    conn.request("GET", path, headers=headers)
    r = conn.getresponse()
    first = time.perf_counter() - start
    body = r.read()
    assert r.status == (304 if etag else 200), (r.status, body[:300])
    return first, time.perf_counter() - start, len(body), r.getheader("ETag")


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
    base = Path(tempfile.mkdtemp(prefix="rova-dash-bench-"))
    rova = RovaServer(rova_binary(), base / "data", free_port())
    rova.start(60, extra_args=["--sim-host-vcpus", "100000",
                               "--sim-host-ram-mb", "100000000",
                               "--sim-host-disk-gb", "1000000"],
               extra_env={"ROVA_QUOTA_INSTANCES": "-1", "ROVA_QUOTA_CORES": "-1",
                          "ROVA_QUOTA_RAM": "-1"})
    try:
        token = rova.token("demo", "demo")
        images = rova.api("GET", "/image/v2/images", token).json()["images"]
        image = [i for i in images if i["name"] == "cirros-0.6.2-x86_64-disk"][0]["id"]
        made = 0
        while made < n:
            k = min(100, n - made)
            r = rova.api("POST", "/compute/v2.1/servers", token, json={"server": {
                "name": "bench", "imageRef": image, "flavorRef": "42",
                "networks": "none", "min_count": k, "max_count": k}})
            assert r.status_code == 202, r.text
            made += k
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            r = rova.api("GET", "/compute/v2.1/servers?status=BUILD&limit=1", token)
            if not r.json()["servers"]:
                break
            time.sleep(0.5)
        listed = rova.api("GET", "/compute/v2.1/servers?limit=%d" % (n + 10), token)
        count = len(listed.json()["servers"])
        cookie = login(rova)
        conn = http.client.HTTPConnection("127.0.0.1", rova.port, timeout=120)
        rows = "/dashboard/servers/rows"
        etag = timed(conn, rows, cookie)[3]
        for path, tag, what in (("/dashboard/servers", None, ""),
                                (rows, None, ""),
                                (rows, etag, " unchanged (If-None-Match: 304)")):
            timed(conn, path, cookie, tag)  # warm up
            runs = [timed(conn, path, cookie, tag) for _ in range(10)]
            ttfb = statistics.median(r[0] for r in runs) * 1000
            total = statistics.median(r[1] for r in runs) * 1000
            size = runs[-1][2]
            print("%s%s with %d servers: time to first byte %.0f ms (median of 10), "
                  "whole page %.0f ms, %d bytes (%.0f KiB)"
                  % (path, what, count, ttfb, total, size, size / 1024))
    finally:
        rova.stop()
        if os.environ.get("ROVA_KEEP_DATA") != "1":
            shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
