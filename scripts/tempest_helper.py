#!/usr/bin/env python3
"""Helper for scripts/tempest.sh (runs with the client venv's python).

  discover  --url URL --data-dir DIR --out FILE
      Logs in as every bootstrap account of a running rova (passwords from
      DIR/passwords.json), learns user/project ids and the service catalog,
      and picks image_ref/image_ref_alt/flavor_ref/flavor_ref_alt and the
      compute max microversion from the APIs. Exit 3 when identity fails.
  configure --discovery FILE --workspace DIR --workers N
      Writes DIR/etc/tempest.conf and DIR/etc/accounts.yaml.
  select    --all FILE --out FILE (--include-list FILE | --regex RE)
            [--exclude-regex RE]
      Filters the full test list the way stestr does (re.search, '#'
      starts a comment in list files) and reports patterns matching nothing.
  summary   --subunit FILE --selected FILE
      Prints failures, then 'N passed, N failed, N skipped' as last line.
      Exit 1 when anything failed.

Tunables come from the environment (see scripts/tempest.sh).
"""

import argparse
import json
import os
import re
import sys
import urllib.error
import urllib.request

# The bootstrap accounts rova creates on first start: user -> project.
ACCOUNTS = {
    "demo": "demo",
    "demo_reader": "demo",
    "demo_manager": "demo",
    "alt_demo": "alt_demo",
    "admin": "admin",
}
DOMAIN = "Default"
# Accounts a cloud bootstrapped by an older rova lacks.
OPTIONAL_ACCOUNTS = {"demo_manager"}

# [compute-feature-enabled] booleans left on unless switched off; every
# other boolean in that group is written as false unless switched on with
# ROVA_TEMPEST_FEATURES (rova's driver is simulated: no console, no
# migration, no rescue ... until the server says otherwise).
FEATURES_ON_BY_DEFAULT = {"enable_instance_password"}


def log(msg):
    print("tempest-helper: %s" % msg, file=sys.stderr)


def env_list(name):
    return [x.strip() for x in os.environ.get(name, "").split(",")
            if x.strip()]


# ---------------------------------------------------------------------------
# discover
# ---------------------------------------------------------------------------

def http(method, url, body=None, token=None, timeout=30):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method)
    req.add_header("Accept", "application/json")
    if data is not None:
        req.add_header("Content-Type", "application/json")
    if token:
        req.add_header("X-Auth-Token", token)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            raw = resp.read()
            return resp.status, dict(resp.headers), raw
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


def parse_json(raw):
    try:
        return json.loads(raw.decode("utf-8") or "null")
    except ValueError:
        return None


def login(identity, user, password, project):
    body = {"auth": {
        "identity": {"methods": ["password"], "password": {"user": {
            "name": user, "password": password,
            "domain": {"name": DOMAIN}}}},
        "scope": {"project": {"name": project,
                              "domain": {"name": DOMAIN}}}}}
    status, headers, raw = http("POST", identity + "/auth/tokens", body)
    token = headers.get("X-Subject-Token") or headers.get("x-subject-token")
    doc = parse_json(raw) or {}
    if status != 201 or not token or "token" not in doc:
        raise RuntimeError("token for %s/%s: HTTP %s %s"
                           % (user, project, status, raw[:300]))
    return token, doc["token"]


def catalog_url(catalog, service_type, region="RegionOne"):
    for svc in catalog:
        if svc.get("type") != service_type:
            continue
        eps = [e for e in svc.get("endpoints", [])
               if e.get("interface") == "public"] or svc.get("endpoints", [])
        eps = [e for e in eps if e.get("region") == region] or eps
        if eps:
            return eps[0]["url"].rstrip("/")
    return None


def flavor_key(f):
    return (f.get("ram", 0), f.get("vcpus", 0), f.get("disk", 0),
            str(f.get("id")))


def cmd_discover(args):
    identity = os.environ.get("ROVA_TEMPEST_IDENTITY_URL",
                              args.url.rstrip("/") + "/identity/v3")
    pw_file = os.path.join(args.data_dir, "passwords.json")
    try:
        with open(pw_file) as f:
            passwords = json.load(f)
    except (OSError, ValueError) as e:
        log("cannot read %s: %s" % (pw_file, e))
        return 2
    out = {"identity_url": identity, "accounts": {}}
    demo_token = None
    for user, project in ACCOUNTS.items():
        if user not in passwords and user in OPTIONAL_ACCOUNTS:
            continue
        if user not in passwords:
            log("passwords.json has no %r" % user)
            return 2
        try:
            token, body = login(identity, user, passwords[user], project)
        except (RuntimeError, OSError) as e:
            log("identity: %s" % e)
            return 3
        out["accounts"][user] = {
            "password": passwords[user], "project": project,
            "user_id": body["user"]["id"],
            "project_id": body["project"]["id"],
            "roles": sorted(r.get("name") for r in body.get("roles", [])),
        }
        if user == "demo":
            demo_token, out["catalog"] = token, body.get("catalog", [])
        log("token for %-11s ok (project %s, roles %s)"
            % (user, project, ",".join(out["accounts"][user]["roles"])))

    catalog = out["catalog"]
    for t in ("compute", "image", "network"):
        out[t + "_url"] = catalog_url(catalog, t)
    if not out["compute_url"] or not out["image_url"]:
        log("catalog lacks compute or image: %s"
            % [s.get("type") for s in catalog])
        return 3
    if not out["network_url"]:
        log("warning: no network endpoint in the catalog")

    status, _, raw = http("GET", out["compute_url"], token=demo_token)
    version = (parse_json(raw) or {}).get("version") or {}
    out["max_microversion"] = version.get("version") or "latest"
    log("compute version document: HTTP %s, max microversion %s"
        % (status, out["max_microversion"]))

    status, _, raw = http("GET", out["compute_url"] + "/flavors/detail",
                          token=demo_token)
    flavors = (parse_json(raw) or {}).get("flavors") or []
    usable = sorted((f for f in flavors if f.get("disk", 0) > 0
                     and f.get("os-flavor-access:is_public", True)),
                    key=flavor_key) or sorted(flavors, key=flavor_key)
    out["flavors"] = [[f["id"], f.get("name")] for f in usable]
    log("flavors: HTTP %s, %d (smallest: %s)" % (
        status, len(flavors), ", ".join(f.get("name", "?")
                                        for f in usable[:2])))

    image_api = out["image_url"]
    if not re.search(r"/v2(\.\d+)?$", image_api):
        image_api += "/v2"
    status, _, raw = http("GET", image_api + "/images?status=active",
                          token=demo_token)
    images = (parse_json(raw) or {}).get("images") or []
    # a cirros image first (the server's default), then by name
    images.sort(key=lambda i: (not str(i.get("name", "")).startswith(
        "cirros"), str(i.get("name")), i.get("id")))
    out["images"] = [[i["id"], i.get("name")] for i in images]
    log("images: HTTP %s, %d active (%s)" % (
        status, len(images), ", ".join(str(i.get("name")) for i in images)))

    # With a Neutron-style network named "private" the servers tempest
    # makes get attached to it ([compute] fixed_network_name), as in
    # devstack; it also enables the list-servers-by-IP tests.
    out["fixed_network"] = None
    if out["network_url"]:
        status, _, raw = http("GET", out["network_url"] +
                              "/v2.0/networks?name=private", token=demo_token)
        nets = (parse_json(raw) or {}).get("networks") or []
        if status == 200 and [n for n in nets if n.get("name") == "private"]:
            out["fixed_network"] = "private"
        log("network 'private': HTTP %s, %s" % (
            status, "found" if out["fixed_network"] else "not found"))

    with open(args.out, "w") as f:
        json.dump(out, f, indent=1)
    return 0


# ---------------------------------------------------------------------------
# configure
# ---------------------------------------------------------------------------

def spellings(username, user_id, project, project_id, count):
    """`count` distinct accounts.yaml identities for one real user.

    Tempest locks a pre-provisioned account by the md5 of its identity
    fields (username, user_id, project_name, tenant_name, project_id,
    tenant_id, password), so one user written in different ways counts as
    different accounts; that is how a handful of real users serve several
    workers. Constraints honoured here:
      - each spelling names the project (project_name or tenant_name):
        tempest puts the reader into the primary's project by that name;
      - all spellings of one user have the same number of fields and no
        two have the same field set: tempest frees a lock by the first
        entry whose fields all equal the credential's, so an entry whose
        fields are a superset of another's could be freed in its place.
    Up to two spellings need nothing but names ({username, project_name},
    {username, tenant_name}). Beyond two, every spelling has three fields:
    the 1st is names only, the 2nd to 5th scope the token to the project
    by id, and from the 6th on the user is given by id too.
    """
    u, uid = ("username", username), ("user_id", user_id)
    pn, tn = ("project_name", project), ("tenant_name", project)
    pi, ti = ("project_id", project_id), ("tenant_id", project_id)
    if count <= 2:
        combos = [[u, pn], [u, tn]]
    else:
        combos = [[u, pn, tn],                                # names only
                  [u, pn, pi], [u, tn, ti], [u, pn, ti], [u, tn, pi],
                  [uid, pn, tn],                              # user by id
                  [uid, pn, pi], [uid, tn, ti], [uid, pn, ti], [uid, tn, pi],
                  [u, uid, pn], [u, uid, tn]]
    if count > len(combos):
        raise ValueError("%d spellings of %s asked, at most %d exist"
                         % (count, username, len(combos)))
    return [dict(c) for c in combos[:count]]


def build_accounts(disc, workers):
    acc = disc["accounts"]

    def entries(user, count, roles):
        a = acc[user]
        out = []
        for s in spellings(user, a["user_id"], a["project"],
                           a["project_id"], count):
            s["password"] = a["password"]
            s["user_domain_name"] = DOMAIN
            s["project_domain_name"] = DOMAIN
            if roles:
                s["roles"] = list(roles)
            out.append(s)
        return out

    # Per worker tempest holds at most: one primary (member), one
    # project_reader in the same project, one "alt", one admin and one
    # admin+service (test_server_external_events asks for a second admin
    # account that also has the `service` role).
    #
    # "alt" is taken as the first free account without the admin role in
    # file order, whatever its roles, so the alt_demo entries come first and
    # carry no role: then they can never be handed out as a primary, whose
    # reader would have to live in alt_demo.
    #
    # The admin entries claim roles admin+service. Rova's admin user has the
    # admin role; if rova ever checks the `service` role for
    # os-server-external-events, its bootstrap must give the admin user the
    # service role too (tempest trusts this file and does not check).
    out = entries("alt_demo", workers, None)
    out += entries("demo", workers, ["member"])
    out += entries("demo_reader", workers, ["reader"])
    # Tempest's migration tests ask for a project manager (Nova's
    # project-manager persona); the bootstrap's demo_manager has the
    # `manager` role, which implies member and reader.
    if "demo_manager" in acc:
        out += entries("demo_manager", workers, ["manager"])
    out += entries("admin", 2 * workers, ["admin", "service"])
    return out


def ini(sections):
    lines = []
    for name, opts in sections:
        lines.append("[%s]" % name)
        for key, value in opts:
            if value is None:
                continue
            if isinstance(value, bool):
                value = "true" if value else "false"
            lines.append("%s = %s" % (key, value))
        lines.append("")
    return "\n".join(lines)


def compute_features():
    from tempest import config
    from oslo_config import cfg

    on = set(env_list("ROVA_TEMPEST_FEATURES"))
    off = set(env_list("ROVA_TEMPEST_FEATURES_OFF"))
    known = {o.name for o in config.ComputeFeaturesGroup
             if isinstance(o, cfg.BoolOpt)}
    for name in sorted((on | off) - known):
        log("warning: %s is not a [compute-feature-enabled] boolean" % name)
    return [(name, (name in FEATURES_ON_BY_DEFAULT or name in on)
             and name not in off) for name in sorted(known)]


def pick(env_name, candidates, index):
    if os.environ.get(env_name):
        return os.environ[env_name]
    if not candidates:
        return None
    return candidates[min(index, len(candidates) - 1)][0]


def cmd_configure(args):
    import yaml

    with open(args.discovery) as f:
        disc = json.load(f)
    ws = os.path.abspath(args.workspace)
    etc = os.path.join(ws, "etc")
    os.makedirs(etc, exist_ok=True)
    os.makedirs(os.path.join(ws, "logs"), exist_ok=True)

    accounts_file = os.path.join(etc, "accounts.yaml")
    with open(accounts_file, "w") as f:
        f.write("# generated by scripts/tempest.sh from passwords.json\n")
        try:
            accounts = build_accounts(disc, args.workers)
        except ValueError as e:
            log("too many workers for the accounts rova has: %s" % e)
            return 2
        yaml.safe_dump(accounts, f, default_flow_style=False,
                       sort_keys=False)
    os.chmod(accounts_file, 0o600)

    image_ref = pick("ROVA_TEMPEST_IMAGE_REF", disc.get("images"), 0)
    image_ref_alt = pick("ROVA_TEMPEST_IMAGE_REF_ALT", disc.get("images"), 1)
    flavor_ref = pick("ROVA_TEMPEST_FLAVOR_REF", disc.get("flavors"), 0)
    flavor_ref_alt = pick("ROVA_TEMPEST_FLAVOR_REF_ALT", disc.get("flavors"),
                          1)
    if not image_ref or not flavor_ref:
        log("no image or flavor discovered; set ROVA_TEMPEST_IMAGE_REF / "
            "ROVA_TEMPEST_FLAVOR_REF")
        return 2
    for a, b, what in ((image_ref, image_ref_alt, "image"),
                       (flavor_ref, flavor_ref_alt, "flavor")):
        if a == b:
            log("warning: %s_ref_alt == %s_ref (%s)" % (what, what, a))

    fixed_network = os.environ.get("ROVA_TEMPEST_FIXED_NETWORK",
                                   disc.get("fixed_network") or "none")
    if fixed_network == "none":
        fixed_network = None
    build_timeout = os.environ.get("ROVA_TEMPEST_BUILD_TIMEOUT", "120")
    sections = [
        ("DEFAULT", [
            ("log_dir", os.path.join(ws, "logs")),
            ("log_file", "tempest.log"),
            ("debug", os.environ.get("ROVA_TEMPEST_DEBUG", "1") == "1"),
        ]),
        ("oslo_concurrency", [("lock_path", os.path.join(ws, "locks"))]),
        ("auth", [
            # Rova has no identity admin API to make users with, so tempest
            # uses the pre-provisioned accounts written above.
            ("use_dynamic_credentials", False),
            ("test_accounts_file", accounts_file),
            ("default_credentials_domain_name", DOMAIN),
            ("create_isolated_networks", False),
        ]),
        ("identity", [
            ("uri_v3", disc["identity_url"]),
            ("auth_version", "v3"),
            ("region", "RegionOne"),
            ("v3_endpoint_type", "public"),
            ("admin_role", "admin"),
        ]),
        ("identity-feature-enabled", [
            ("api_v2", False), ("api_v3", True), ("trust", False),
            ("access_rules", False), ("security_compliance", False),
        ]),
        # neutron must stay true even though no compute test in scope
        # creates networks: the server test classes that ask for a default
        # network (test_servers, test_server_metadata, test_server_tags,
        # test_instance_actions, test_list_servers_negative, ...) skip
        # themselves entirely when it is false.
        ("service_available", [
            ("nova", True), ("glance", True), ("neutron", True),
            ("cinder", os.environ.get("ROVA_TEMPEST_CINDER") == "1"),
            ("swift", False), ("horizon", False),
        ]),
        # Rova's block storage (asked for with ROVA_TEMPEST_CINDER=1):
        # volumes, snapshots and attachments; no backups, no volume types
        # beyond the default one. The extensions are the ones its API
        # lists (GET /extensions).
        ("volume", [("catalog_type", "block-storage"),
                    ("build_timeout", build_timeout),
                    ("max_microversion", "3.71")]),
        ("volume-feature-enabled", [
            ("snapshot", True), ("backup", False), ("clone", True),
            ("extend_attached_volume", False), ("manage_volume", False),
            ("manage_snapshot", False), ("volume_revert", False),
            ("api_extensions", "os-vol-tenant-attr,os-volume-actions,"
                               "os-admin-actions,os-vol-image-meta"),
        ]),
        ("compute", [
            ("image_ref", image_ref),
            ("image_ref_alt", image_ref_alt),
            ("flavor_ref", flavor_ref),
            ("flavor_ref_alt", flavor_ref_alt),
            # min_microversion stays unset: tests without a microversion of
            # their own then send no microversion header at all.
            ("min_microversion", os.environ.get("ROVA_TEMPEST_MIN_MICROVERSION")
             or None),
            ("max_microversion", os.environ.get("ROVA_TEMPEST_MAX_MICROVERSION")
             or disc.get("max_microversion") or "latest"),
            ("build_timeout", build_timeout),
            ("build_interval", os.environ.get("ROVA_TEMPEST_BUILD_INTERVAL",
                                              "1")),
            ("fixed_network_name", fixed_network),
            ("region", "RegionOne"),
            # more than one compute host: the multi-host harness's agents
            ("min_compute_nodes", os.environ.get(
                "ROVA_TEMPEST_MIN_COMPUTE_NODES", "1")),
        ]),
        ("compute-feature-enabled", compute_features() + [
            # unset: tempest's default list
            ("scheduler_enabled_filters",
             os.environ.get("ROVA_TEMPEST_SCHEDULER_FILTERS") or None),
        ]),
        ("image", [("build_timeout", build_timeout)]),
        ("image-feature-enabled", [
            ("api_v2", True), ("import_image", False),
            ("os_glance_reserved", False), ("manage_locations", False),
            ("image_conversion", False), ("do_secure_hash", False),
        ]),
        ("network-feature-enabled", [
            ("ipv6", False), ("floating_ips", False),
            ("port_security", False),
        ]),
        # no guest is reachable: never ssh or ping into servers
        ("validation", [("run_validation", False)]),
        ("enforce_scope", [("nova", False), ("neutron", False),
                           ("glance", False), ("keystone", False)]),
        ("service-clients", [("http_timeout", os.environ.get(
            "ROVA_TEMPEST_HTTP_TIMEOUT", "60"))]),
    ]
    with open(os.path.join(etc, "tempest.conf"), "w") as f:
        f.write("# generated by scripts/tempest.sh\n")
        f.write(ini(sections))
    log("wrote %s/tempest.conf and accounts.yaml (%d workers; image_ref %s, "
        "image_ref_alt %s, flavor_ref %s, flavor_ref_alt %s)"
        % (etc, args.workers, image_ref, image_ref_alt, flavor_ref,
           flavor_ref_alt))
    return 0


# ---------------------------------------------------------------------------
# select
# ---------------------------------------------------------------------------

def read_patterns(path):
    pats = []
    with open(path) as f:
        for line in f:
            pat = line.split("#", 1)[0].strip()
            if pat:
                pats.append(pat)
    return pats


def cmd_select(args):
    with open(args.all) as f:
        ids = [x.strip() for x in f
               if x.strip().startswith("tempest.")]
    pats = read_patterns(args.include_list) if args.include_list \
        else [args.regex]
    try:
        compiled = [(p, re.compile(p)) for p in pats]
        exclude = re.compile(args.exclude_regex) if args.exclude_regex \
            else None
    except re.error as e:
        log("bad regular expression: %s" % e)
        return 2
    chosen = []
    hits = {p: 0 for p in pats}
    for tid in ids:
        matched = [p for p, rx in compiled if rx.search(tid)]
        for p in matched:
            hits[p] += 1
        if matched and not (exclude and exclude.search(tid)):
            chosen.append(tid)
    for p in pats:
        log("%5d tests  %s" % (hits[p], p))
        if not hits[p]:
            log("warning: pattern matches no test: %s" % p)
    with open(args.out, "w") as f:
        f.write("".join(t + "\n" for t in chosen))
    log("%d tests selected" % len(chosen))
    return 0 if chosen else 2


# ---------------------------------------------------------------------------
# summary
# ---------------------------------------------------------------------------

FIXTURE_RE = re.compile(r"^(setUpClass|tearDownClass) \((.+)\)$")


def class_of(test_id):
    return test_id.split("[", 1)[0].rsplit(".", 1)[0]


def read_subunit(path):
    """{test id: final status}, {test id: traceback text}."""
    import subunit
    import testtools

    status, details = {}, {}

    class Sink(testtools.StreamResult):
        def status(self, test_id=None, test_status=None, file_name=None,
                   file_bytes=None, **kwargs):
            if not test_id:
                return
            if file_name in ("traceback", "reason") and file_bytes:
                details.setdefault(test_id, bytearray()).extend(file_bytes)
            if test_status in ("success", "fail", "skip", "xfail",
                               "uxsuccess"):
                status[test_id] = test_status

    if os.path.exists(path) and os.path.getsize(path):
        with open(path, "rb") as stream:
            sink = Sink()
            sink.startTestRun()
            subunit.ByteStreamToStreamResult(
                stream, non_subunit_name="stdout").run(sink)
            sink.stopTestRun()
    return status, {k: bytes(v).decode("utf-8", "replace")
                    for k, v in details.items()}


def last_line(text):
    lines = [x.strip() for x in (text or "").splitlines() if x.strip()]
    return lines[-1][:300] if lines else ""


def cmd_summary(args):
    status, details = read_subunit(args.subunit)
    with open(args.selected) as f:
        selected = [x.strip() for x in f if x.strip()]
    fixtures = {}
    for tid, st in status.items():
        m = FIXTURE_RE.match(tid)
        if m:
            fixtures[(m.group(1), m.group(2))] = st

    passed = skipped = 0
    failures = []            # (label, reason)
    class_failed = {}        # class -> tests lost to a failed setUpClass
    for tid in selected:
        st = status.get(tid)
        if st in ("success", "xfail"):
            passed += 1
        elif st == "skip":
            skipped += 1
        elif st in ("fail", "uxsuccess"):
            failures.append((tid, last_line(details.get(tid))))
        else:
            cls = class_of(tid)
            setup = fixtures.get(("setUpClass", cls))
            if setup == "skip":
                skipped += 1
            elif setup == "fail":
                class_failed[cls] = class_failed.get(cls, 0) + 1
            else:
                failures.append((tid, "no result (run timed out or a "
                                      "worker died)"))
    n_failed = len(failures) + sum(class_failed.values())
    lines = []
    for cls, n in sorted(class_failed.items()):
        lines.append("FAIL setUpClass (%s), %d tests: %s" % (
            cls, n, last_line(details.get("setUpClass (%s)" % cls))))
    # a failed cleanup is a failure of its own (servers that never go away)
    for (kind, cls), st in sorted(fixtures.items()):
        if kind == "tearDownClass" and st == "fail":
            n_failed += 1
            lines.append("FAIL tearDownClass (%s): %s" % (
                cls, last_line(details.get("tearDownClass (%s)" % cls))))
    for tid, reason in failures:
        lines.append("FAIL %s%s" % (tid, ": " + reason if reason else ""))
    if lines:
        print("Tempest failures:")
        for line in lines:
            print("  " + line)
    print("%d passed, %d failed, %d skipped" % (passed, n_failed, skipped))
    return 1 if n_failed else 0


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    d = sub.add_parser("discover")
    d.add_argument("--url", required=True)
    d.add_argument("--data-dir", required=True)
    d.add_argument("--out", required=True)
    c = sub.add_parser("configure")
    c.add_argument("--discovery", required=True)
    c.add_argument("--workspace", required=True)
    c.add_argument("--workers", type=int, default=2)
    s = sub.add_parser("select")
    s.add_argument("--all", required=True)
    s.add_argument("--out", required=True)
    g = s.add_mutually_exclusive_group(required=True)
    g.add_argument("--include-list")
    g.add_argument("--regex")
    s.add_argument("--exclude-regex")
    m = sub.add_parser("summary")
    m.add_argument("--subunit", required=True)
    m.add_argument("--selected", required=True)
    args = p.parse_args()
    return {"discover": cmd_discover, "configure": cmd_configure,
            "select": cmd_select, "summary": cmd_summary}[args.cmd](args)


if __name__ == "__main__":
    sys.exit(main())
