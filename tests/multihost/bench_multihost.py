"""Multi-host benchmark: runs in the client namespace of a cloud that
`scripts/multihost.sh up DIR 4` made (two control replicas, four agents):

    scripts/multihost.sh up /tmp/rova-mhb 4
    scripts/multihost.sh exec /tmp/rova-mhb \\
        "$(scripts/client-venv.sh)/bin/python" tests/multihost/bench_multihost.py
    scripts/multihost.sh down /tmp/rova-mhb

It measures, over the compute API with plain HTTP:
  1. servers created to ACTIVE per second through one replica, then through
     both (POSTs spread over them), N servers each (default 1000, 64 POSTs
     in flight; $BENCH_SERVERS, $BENCH_CONCURRENCY);
  2. the time from `kill -9` of an agent to its service `down` and its
     servers' `host_status` UNKNOWN;
  3. the time from evacuating its 100 servers (forced down first) to all of
     them ACTIVE on other agents.
It prints a markdown section for docs/benchmarks.md.
"""

import concurrent.futures as cf
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import requests

BASE = Path(os.environ["ROVA_MH_DIR"])
SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "multihost.sh"
REPLICAS = ["http://10.250.0.1:8774", "http://10.250.0.2:8774"]
N = int(os.environ.get("BENCH_SERVERS", "1000"))
CONC = int(os.environ.get("BENCH_CONCURRENCY", "64"))
EVACUEES = int(os.environ.get("BENCH_EVACUEES", "100"))
# m1.nano: 1,000 servers fit on four agents of 64 GiB (RAM ratio 1.5)
FLAVOR = os.environ.get("BENCH_FLAVOR", "42")
local = threading.local()
BENCH = next((p for p in (Path(os.environ.get("ROVA_BENCH_BIN", "")),
                          SCRIPT.parents[1] / "target/release/rova-bench")
              if p.name and p.is_file()), None)


def session():
    s = getattr(local, "s", None)
    if s is None:
        s = local.s = requests.Session()
    return s


def token(base):
    pw = json.loads((BASE / "data" / "passwords.json").read_text())["admin"]
    body = {"auth": {"identity": {"methods": ["password"], "password": {
        "user": {"name": "admin", "domain": {"id": "default"},
                 "password": pw}}},
        "scope": {"project": {"name": "admin",
                              "domain": {"id": "default"}}}}}
    r = requests.post(base + "/identity/v3/auth/tokens", json=body,
                      timeout=30)
    r.raise_for_status()
    return r.headers["X-Subject-Token"], r.json()["token"]["project"]["id"]


def api(base, tok, method, path, body=None, version="2.74"):
    r = session().request(
        method, base + "/compute/v2.1" + path, json=body, timeout=120,
        headers={"X-Auth-Token": tok,
                 "OpenStack-API-Version": "compute " + version})
    return r


def image_id(tok):
    r = session().get(REPLICAS[0] + "/image/v2/images",
                      headers={"X-Auth-Token": tok}, timeout=30)
    return next(i["id"] for i in r.json()["images"]
                if i["name"] == "cirros-0.6.2-x86_64-disk")


def count(tok, status, prefix):
    r = api(REPLICAS[0], tok, "GET",
            "/servers?status=%s&name=^%s&limit=1000" % (status, prefix))
    return len(r.json()["servers"])


def ids(tok, prefix):
    out, marker = [], None
    while True:
        q = "/servers?name=^%s&limit=1000" % prefix
        if marker:
            q += "&marker=" + marker
        page = api(REPLICAS[0], tok, "GET", q).json()["servers"]
        out += [s["id"] for s in page]
        if len(page) < 1000:
            return out
        marker = page[-1]["id"]


def cpu_by_role():
    """CPU seconds used so far by the control replicas, the agents,
    PostgreSQL and this client (from /proc; the namespaces share it)."""
    tick = os.sysconf("SC_CLK_TCK")
    out = {"control": 0.0, "agents": 0.0, "postgres": 0.0}
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            cmd = (d / "cmdline").read_bytes().split(b"\0")
            stat = (d / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        words = [c.decode(errors="replace") for c in cmd if c]
        role = None
        if len(words) > 1 and words[0].endswith("rova"):
            role = {"control": "control", "agent": "agents"}.get(words[1])
        elif words and "postgres" in words[0]:
            role = "postgres"
        if role:
            out[role] += (int(stat[11]) + int(stat[12])) / tick
    t = os.times()
    out["client"] = t.user + t.system + t.children_user + t.children_system
    return out


def create_burst(tokens, img, prefix, n, bases):
    """n servers POSTed CONC at a time over `bases`: (seconds to the last
    POST answered, seconds to all ACTIVE, servers in ERROR). The POSTs
    come from `rova-bench --burst` (one Rust thread) when it is built,
    else from this process's threads ($BENCH_CLIENT=python forces them:
    they cost the two cores about as much as a control replica)."""
    if BENCH and os.environ.get("BENCH_CLIENT", "rust") == "rust":
        out = subprocess.run(
            [str(BENCH), "--burst", ",".join(bases), "--cloud-data",
             str(BASE / "data"), "--servers", str(n), "--concurrency",
             str(CONC), "--flavor", FLAVOR, "--prefix", prefix],
            check=True, capture_output=True, text=True).stdout
        r = json.loads(out.strip().splitlines()[-1])
        if r["failed"]:
            raise RuntimeError("failed POSTs: %s" % r["failures"])
        print("  POST p50 / p99: %.1f / %.1f ms"
              % (r["post_p50_ms"], r["post_p99_ms"]), flush=True)
        return r["posted_s"], r["total_s"], r["errors"]

    def one(i):
        base = bases[i % len(bases)]
        body = {"server": {"name": "%s-%d" % (prefix, i), "imageRef": img,
                           "flavorRef": FLAVOR, "networks": "none"}}
        r = api(base, tokens[base], "POST", "/servers", body)
        if r.status_code != 202:
            raise RuntimeError("POST %s: %s" % (r.status_code, r.text[:300]))

    t0 = time.monotonic()
    with cf.ThreadPoolExecutor(CONC) as pool:
        list(pool.map(one, range(n)))
    posted = time.monotonic() - t0
    tok = tokens[REPLICAS[0]]
    while count(tok, "BUILD", prefix) > 0:
        time.sleep(0.2)
    total = time.monotonic() - t0
    errors = count(tok, "ERROR", prefix)
    return posted, total, errors


def delete_all(tok, prefix):
    victims = ids(tok, prefix)
    with cf.ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda i: api(REPLICAS[0], tok, "DELETE",
                                    "/servers/" + i), victims))
    while ids(tok, prefix):
        time.sleep(0.5)


def service(tok, host):
    r = api(REPLICAS[0], tok, "GET",
            "/os-services?binary=nova-compute&host=" + host, version="2.53")
    return r.json()["services"][0]


def main():
    tokens = {b: token(b)[0] for b in REPLICAS}
    tok, project = token(REPLICAS[0])
    img = image_id(tok)
    api(REPLICAS[0], tok, "PUT", "/os-quota-sets/" + project,
        {"quota_set": {"instances": -1, "cores": -1, "ram": -1}})
    rows = []
    for label, bases in (("1 replica", REPLICAS[:1]), ("2 replicas", REPLICAS)):
        prefix = "bench-%d" % len(bases)
        before = cpu_by_role()
        posted, total, errors = create_burst(tokens, img, prefix, N, bases)
        after = cpu_by_role()
        cpu = {k: after[k] - before[k] for k in after}
        rows.append((label, N, posted, total, errors, cpu))
        print("  CPU s in the burst: " + ", ".join(
            "%s %.2f" % kv for kv in sorted(cpu.items())), flush=True)
        print("%s: %d servers POSTed in %.2f s, all ACTIVE after %.2f s "
              "(%.0f servers/s), %d ERROR" % (label, N, posted, total,
                                              N / total, errors), flush=True)
        delete_all(tok, prefix)

    # 100 servers on agent-1, then agent-1 is killed.
    def forced(i):
        body = {"server": {"name": "evac-%d" % i, "imageRef": img,
                           "flavorRef": FLAVOR, "networks": "none",
                           "availability_zone": "nova:agent-1"}}
        r = api(REPLICAS[0], tok, "POST", "/servers", body)
        assert r.status_code == 202, r.text
    with cf.ThreadPoolExecutor(16) as pool:
        list(pool.map(forced, range(EVACUEES)))
    while count(tok, "BUILD", "evac-") > 0:
        time.sleep(0.2)
    victims = ids(tok, "evac-")
    t0 = time.monotonic()
    subprocess.run(["bash", str(SCRIPT), "kill", str(BASE), "a1"],
                   check=True)
    while service(tok, "agent-1")["state"] != "down":
        time.sleep(0.1)
    # from the moment the KILL was sent (the script then waits for the
    # process to be gone)
    down = time.monotonic() - t0
    s = api(REPLICAS[0], tok, "GET", "/servers/" + victims[0],
            version="2.16").json()["server"]
    assert s["host_status"] == "UNKNOWN", s
    sid = service(tok, "agent-1")["id"]
    r = api(REPLICAS[0], tok, "PUT", "/os-services/" + sid,
            {"forced_down": True}, version="2.53")
    assert r.status_code == 200, r.text
    t0 = time.monotonic()
    with cf.ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda i: api(REPLICAS[i % 2], tokens[REPLICAS[i % 2]],
                                    "POST", "/servers/%s/action" % victims[i],
                                    {"evacuate": {}}, version="2.29"),
                      range(len(victims))))

    def moved():
        n = 0
        for i in victims:
            s = api(REPLICAS[0], tok, "GET", "/servers/" + i).json()["server"]
            if s["status"] == "ACTIVE" and \
                    s["OS-EXT-SRV-ATTR:host"] != "agent-1":
                n += 1
        return n
    while moved() < len(victims):
        time.sleep(0.2)
    evac = time.monotonic() - t0
    print("kill -9 agent-1 -> down: %.2f s; evacuate %d -> all ACTIVE: %.2f s"
          % (down, len(victims), evac), flush=True)

    print("\n## multi-host (2 control replicas, 4 agents)\n")
    print("| replicas serving the POSTs | servers | POSTs done (s) | "
          "all ACTIVE (s) | servers/s | ERROR | CPU s: control / agents "
          "/ PostgreSQL / client |")
    print("|---|---|---|---|---|---|---|")
    for label, n, posted, total, errors, cpu in rows:
        print("| %s | %d | %.2f | %.2f | %.0f | %d | %.2f / %.2f / %.2f / "
              "%.2f |" % (label, n, posted, total, n / total, errors,
                          cpu["control"], cpu["agents"], cpu["postgres"],
                          cpu["client"]))
    print("\n- `kill -9` of an agent to its service `down` (host_status "
          "UNKNOWN): %.2f s (service_down_time %s s, report_interval 1 s)"
          % (down, os.environ.get("ROVA_MH_DOWN_TIME", "8")))
    print("- evacuate %d servers of the dead agent to all ACTIVE elsewhere: "
          "%.2f s" % (len(victims), evac))
    return 0


if __name__ == "__main__":
    sys.exit(main())
