//! Crash tests: the real `rova serve` binary runs as a child process, is
//! driven over HTTP, killed with SIGKILL at chosen points — a create storm,
//! deletes held in the driver, a resize held in `resize_prep` and one held
//! in the driver, a snapshot and a shelve held in the driver, an image
//! upload whose body is still streaming — and started again on the same
//! data directory. After every restart the invariants are checked: each
//! server is counted exactly once on its host with its flavor
//! (os-hypervisors), no compute port is orphaned or duplicated, no image
//! is left `saving` or `queued` by an interrupted operation, interrupted
//! deletes finish, and a 2xx answered before the kill is still there.
//! Also: the data directory is private and the database keeps no admin
//! password.

use reqwest::{Client, Method};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt;

const V: &str = "2.47";
const WAIT: Duration = Duration::from_secs(60);

/// A running `rova serve` child.
pub(crate) struct Rova {
    child: Child,
    pub(crate) base: String,
    http: Client,
    pub(crate) admin: String,
    pub(crate) demo: String,
    /// The database it serves.
    pub(crate) db: rova::store::Database,
}

impl Drop for Rova {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn temp_dir(tag: &str) -> PathBuf {
    std::env::temp_dir().join(format!("rova-crash-{tag}-{}", uuid::Uuid::new_v4()))
}

/// Starts the binary on `dir` and waits for its "serving on" line (printed
/// once start-up settling is done).
pub(crate) async fn start(dir: &Path, extra: &[&str]) -> Rova {
    start_env(dir, extra, &[]).await
}

/// [`start`] with more environment for the process.
pub(crate) async fn start_env(dir: &Path, extra: &[&str], env: &[(&str, &str)]) -> Rova {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.with_extension("log"))
        .expect("log file");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_rova"));
    let db = match crate::common::test_database(dir) {
        Some(rova::store::Database::Postgres(url)) => {
            cmd.env("ROVA_DATABASE_URL", &url);
            rova::store::Database::Postgres(url)
        }
        _ => rova::store::Database::default_in(dir),
    };
    cmd.arg("serve")
        .arg("--data-dir")
        .arg(dir)
        .args(["--listen", "127.0.0.1:0"])
        .args(extra)
        .env("ROVA_LOG", "warn")
        .env("ROVA_QUOTA_INSTANCES", "-1")
        .env("ROVA_QUOTA_CORES", "-1")
        .env("ROVA_QUOTA_RAM", "-1")
        .env("ROVA_QUOTA_SERVER_GROUPS", "-1")
        .env("ROVA_QUOTA_SERVER_GROUP_MEMBERS", "-1")
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(log);
    let mut child = cmd.spawn().expect("rova serve starts");
    let stdout = child.stdout.take().expect("stdout");
    let addr = tokio::task::spawn_blocking(move || {
        let mut lines = BufReader::new(stdout).lines();
        let mut addr = None;
        for line in lines.by_ref() {
            let Ok(line) = line else { break };
            if let Some(rest) = line.strip_prefix("rova: serving on http://") {
                addr = rest.split_whitespace().next().map(str::to_string);
                break;
            }
        }
        // Keep draining so the child never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        addr
    })
    .await
    .expect("reader");
    let Some(addr) = addr else {
        let _ = child.kill();
        let log = std::fs::read_to_string(dir.with_extension("log")).unwrap_or_default();
        panic!("rova serve did not start:\n{log}");
    };
    let base = format!("http://{addr}");
    let http = Client::new();
    let pw: HashMap<String, String> =
        serde_json::from_slice(&std::fs::read(dir.join("passwords.json")).expect("passwords"))
            .expect("passwords json");
    let admin = login(&http, &base, "admin", &pw["admin"]).await;
    let demo = login(&http, &base, "demo", &pw["demo"]).await;
    // Slow steps and faults survive a restart: the killed run's are cleared
    // (which also releases the operations the restart resumed that they
    // hold). Without the simulated driver this is a 409, ignored.
    http.delete(format!("{base}/rova/v1/sim/faults"))
        .header("X-Auth-Token", &admin)
        .send()
        .await
        .expect("clearing simulated faults");
    Rova {
        child,
        base,
        http,
        admin,
        demo,
        db,
    }
}

async fn login(http: &Client, base: &str, user: &str, pw: &str) -> String {
    let project = if user == "admin" { "admin" } else { "demo" };
    let body = json!({"auth": {"identity": {"methods": ["password"], "password": {"user": {
        "name": user, "domain": {"name": "Default"}, "password": pw}}},
        "scope": {"project": {"name": project, "domain": {"name": "Default"}}}}});
    let r = http
        .post(format!("{base}/identity/v3/auth/tokens"))
        .json(&body)
        .send()
        .await
        .expect("login");
    assert_eq!(r.status().as_u16(), 201, "login {user}");
    r.headers()["x-subject-token"]
        .to_str()
        .expect("token")
        .to_string()
}

impl Rova {
    /// SIGKILL, no chance to finish anything.
    pub(crate) fn kill(mut self) {
        self.child.kill().expect("SIGKILL");
        let _ = self.child.wait();
    }

    pub(crate) async fn call(
        &self,
        tok: &str,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.base))
            .header("X-Auth-Token", tok)
            .header("OpenStack-API-Version", format!("compute {V}"));
        if let Some(b) = body {
            req = req.json(&b);
        }
        let r = req.send().await.expect("request");
        let status = r.status().as_u16();
        let text = r.text().await.unwrap_or_default();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    pub(crate) async fn get(&self, tok: &str, path: &str) -> (u16, Value) {
        self.call(tok, Method::GET, path, None).await
    }

    pub(crate) async fn post(&self, tok: &str, path: &str, body: Value) -> (u16, Value) {
        self.call(tok, Method::POST, path, Some(body)).await
    }

    /// A server action by the demo member, which must be accepted (202).
    pub(crate) async fn action(&self, id: &str, body: Value) {
        let (s, b) = self
            .post(
                &self.demo,
                &format!("/compute/v2.1/servers/{id}/action"),
                body,
            )
            .await;
        assert_eq!(s, 202, "{b}");
    }

    async fn sim(&self, what: &str, body: Value) {
        let (s, b) = self
            .post(&self.admin, &format!("/rova/v1/sim/{what}"), body)
            .await;
        assert!(s < 300, "sim {what}: {s} {b}");
    }

    pub(crate) async fn image_id(&self) -> String {
        let (_, b) = self
            .get(
                &self.admin,
                "/image/v2/images?name=cirros-0.6.2-x86_64-disk",
            )
            .await;
        b["images"][0]["id"]
            .as_str()
            .expect("bootstrap image")
            .to_string()
    }

    /// POST /servers as demo; the new id on 202.
    pub(crate) async fn create(&self, name: &str, flavor: &str) -> Option<String> {
        let image = self.image_id().await;
        let (s, b) = self
            .post(
                &self.demo,
                "/compute/v2.1/servers",
                json!({"server": {"name": name, "imageRef": image, "flavorRef": flavor,
                    "networks": "auto"}}),
            )
            .await;
        (s == 202).then(|| b["server"]["id"].as_str().expect("id").to_string())
    }

    pub(crate) async fn server(&self, id: &str) -> (u16, Value) {
        self.get(&self.admin, &format!("/compute/v2.1/servers/{id}"))
            .await
    }

    /// Polls until `ok` holds for the server body (or fails after WAIT).
    pub(crate) async fn wait_server(
        &self,
        id: &str,
        what: &str,
        ok: impl Fn(&Value) -> bool,
    ) -> Value {
        let end = Instant::now() + WAIT;
        loop {
            let (_, b) = self.server(id).await;
            if ok(&b["server"]) {
                return b["server"].clone();
            }
            assert!(Instant::now() < end, "server {id} never {what}: {b}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub(crate) async fn wait_active(&self, id: &str) -> Value {
        self.wait_server(id, "ACTIVE", |s| {
            s["status"] == "ACTIVE" && s["OS-EXT-STS:task_state"].is_null()
        })
        .await
    }

    async fn wait_gone(&self, id: &str) {
        let end = Instant::now() + WAIT;
        while self.server(id).await.0 != 404 {
            assert!(Instant::now() < end, "server {id} never went away");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub(crate) async fn servers(&self) -> Vec<Value> {
        let (s, b) = self
            .get(&self.admin, "/compute/v2.1/servers/detail?all_tenants=1")
            .await;
        assert_eq!(s, 200, "{b}");
        b["servers"].as_array().cloned().unwrap_or_default()
    }

    /// The bootstrap network's id.
    async fn private_net(&self) -> String {
        let (_, nets) = self
            .get(&self.admin, "/network/v2.0/networks?name=private")
            .await;
        nets["networks"][0]["id"]
            .as_str()
            .expect("network")
            .to_string()
    }

    async fn image(&self, id: &str) -> (u16, Value) {
        self.get(&self.admin, &format!("/image/v2/images/{id}"))
            .await
    }
}

/// Every server settled (no build, no task), resizes confirmed, then:
/// each server counted once on its host with its flavor, compute ports
/// exactly the servers' NICs, no image saving or left queued by a server
/// operation. `mem_base` is each host's memory_mb_used with no servers.
pub(crate) async fn check_invariants(r: &Rova, mem_base: &BTreeMap<String, i64>) {
    let end = Instant::now() + WAIT;
    let servers = loop {
        let all = r.servers().await;
        let busy: Vec<&Value> = all
            .iter()
            .filter(|s| s["status"] == "BUILD" || !s["OS-EXT-STS:task_state"].is_null())
            .collect();
        let resized: Vec<String> = all
            .iter()
            .filter(|s| s["status"] == "VERIFY_RESIZE" && s["OS-EXT-STS:task_state"].is_null())
            .filter_map(|s| s["id"].as_str().map(str::to_string))
            .collect();
        for id in &resized {
            let (st, b) = r
                .post(
                    &r.admin,
                    &format!("/compute/v2.1/servers/{id}/action"),
                    json!({"confirmResize": null}),
                )
                .await;
            assert_eq!(st, 204, "confirm {id}: {b}");
        }
        if busy.is_empty() && resized.is_empty() {
            break all;
        }
        assert!(Instant::now() < end, "servers never settled: {busy:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };

    // Claims: os-hypervisors agrees with the servers' flavors.
    let mut want: BTreeMap<String, (i64, i64, i64)> = BTreeMap::new();
    for s in &servers {
        if s["status"] == "SHELVED_OFFLOADED" {
            continue;
        }
        let Some(host) = s["OS-EXT-SRV-ATTR:host"].as_str() else {
            continue;
        };
        let e = want.entry(host.to_string()).or_default();
        e.0 += s["flavor"]["vcpus"].as_i64().expect("flavor vcpus");
        e.1 += s["flavor"]["ram"].as_i64().expect("flavor ram");
        e.2 += 1;
    }
    // A takeover (a killed process's servers settled by the survivor, on
    // PostgreSQL once its lease lapses) clears a server's task state and
    // then derives its claims again: the hypervisors may lag the records
    // by that step, so they are read until they agree (or WAIT passes).
    let hv = loop {
        let (_, hv) = r.get(&r.admin, "/compute/v2.1/os-hypervisors/detail").await;
        let agree = hv["hypervisors"]
            .as_array()
            .expect("hypervisors")
            .iter()
            .all(|h| {
                let name = h["hypervisor_hostname"].as_str().unwrap_or("");
                let (vcpus, ram, count) = want.get(name).copied().unwrap_or_default();
                (
                    h["vcpus_used"].as_i64().unwrap_or(-1),
                    h["memory_mb_used"].as_i64().unwrap_or(-1)
                        - mem_base.get(name).copied().unwrap_or(0),
                    h["running_vms"].as_i64().unwrap_or(-1),
                ) == (vcpus, ram, count)
            });
        if agree || Instant::now() >= end {
            break hv;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    for h in hv["hypervisors"].as_array().expect("hypervisors") {
        let name = h["hypervisor_hostname"].as_str().expect("name");
        let (vcpus, ram, count) = want.get(name).copied().unwrap_or_default();
        let got = (
            h["vcpus_used"].as_i64().unwrap_or(-1),
            h["memory_mb_used"].as_i64().unwrap_or(-1) - mem_base.get(name).copied().unwrap_or(0),
            h["running_vms"].as_i64().unwrap_or(-1),
        );
        assert_eq!(
            got,
            (vcpus, ram, count),
            "host {name}: (vcpus, ram, servers) used vs the servers' flavors\n{h}"
        );
        assert!(
            h["vcpus_used"].as_i64().unwrap_or(0) <= h["vcpus"].as_i64().unwrap_or(0) * 4,
            "over-committed: {h}"
        );
    }

    // Allocations: the rows (written behind the claims) say the same
    // per host: the servers' flavors, one consumer per server.
    let rows = loop {
        let db = r.db.clone();
        let rows = tokio::task::spawn_blocking(move || {
            crate::storage::query(
                &db,
                "SELECT host, CAST(sum(vcpus) AS BIGINT), CAST(sum(memory_mb) AS BIGINT), \
                 count(DISTINCT instance_uuid) FROM allocations GROUP BY host",
            )
        })
        .await
        .expect("allocations query");
        let got: BTreeMap<String, (i64, i64, i64)> = rows
            .iter()
            .filter_map(|r| {
                let n = |i: usize| r.get(i)?.as_deref()?.parse::<i64>().ok();
                Some((r.first()?.clone()?, (n(1)?, n(2)?, n(3)?)))
            })
            .filter(|(_, used)| *used != (0, 0, 0))
            .collect();
        let wanted: BTreeMap<String, (i64, i64, i64)> = want
            .iter()
            .filter(|(_, used)| **used != (0, 0, 0))
            .map(|(h, used)| (h.clone(), *used))
            .collect();
        if got == wanted || Instant::now() >= end {
            break (got, wanted);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(
        rows.0, rows.1,
        "allocation rows per host (vcpus, ram, servers) vs the servers' flavors"
    );

    // Ports: a compute port belongs to a server, one per NIC.
    let (_, ports) = r.get(&r.admin, "/network/v2.0/ports").await;
    let ids: BTreeSet<&str> = servers.iter().filter_map(|s| s["id"].as_str()).collect();
    let mut per_server: BTreeMap<String, usize> = BTreeMap::new();
    for p in ports["ports"].as_array().expect("ports") {
        let owner = p["device_owner"].as_str().unwrap_or("");
        if !owner.starts_with("compute:") {
            continue;
        }
        let dev = p["device_id"].as_str().unwrap_or("");
        assert!(ids.contains(dev), "port {} of no server: {p}", p["id"]);
        *per_server.entry(dev.to_string()).or_default() += 1;
    }
    for s in &servers {
        let id = s["id"].as_str().expect("id");
        let macs: BTreeSet<String> = s["addresses"]
            .as_object()
            .into_iter()
            .flat_map(|nets| nets.values())
            .flat_map(|a| a.as_array().cloned().unwrap_or_default())
            .filter_map(|a| a["OS-EXT-IPS-MAC:mac_addr"].as_str().map(str::to_string))
            .collect();
        let ports = per_server.get(id).copied().unwrap_or(0);
        assert_eq!(ports, macs.len(), "server {id}: ports vs NICs {s}");
        if s["status"] != "ERROR" {
            assert_eq!(ports, 1, "server {id} asked for one NIC: {s}");
        }
    }

    // Quota usage: each project's in-use counts are its servers'.
    let mut per_project: BTreeMap<String, (i64, i64, i64)> = BTreeMap::new();
    for s in &servers {
        let e = per_project
            .entry(s["tenant_id"].as_str().expect("tenant_id").to_string())
            .or_default();
        e.0 += 1;
        e.1 += s["flavor"]["vcpus"].as_i64().expect("flavor vcpus");
        e.2 += s["flavor"]["ram"].as_i64().expect("flavor ram");
    }
    for (project, (instances, cores, ram)) in &per_project {
        let (st, q) = r
            .get(
                &r.admin,
                &format!("/compute/v2.1/os-quota-sets/{project}/detail"),
            )
            .await;
        assert_eq!(st, 200, "{q}");
        let used = |k: &str| q["quota_set"][k]["in_use"].as_i64().unwrap_or(-1);
        assert_eq!(
            (used("instances"), used("cores"), used("ram")),
            (*instances, *cores, *ram),
            "project {project}: quota usage vs its servers\n{q}"
        );
    }

    // Server groups: every member row is a server that exists and is not
    // deleted, and every server a storm put in a group (named `…-g`) is
    // its member.
    let stray = crate::storage::query(
        &r.db,
        "SELECT m.id FROM server_group_members m LEFT JOIN instances i ON i.id = m.instance_uuid \
         WHERE i.id IS NULL OR CAST(i.deleted AS INTEGER) = 1",
    );
    assert!(
        stray.is_empty(),
        "members that are no live server: {stray:?}"
    );
    let lonely = crate::storage::query(
        &r.db,
        "SELECT i.id FROM instances i WHERE i.display_name LIKE '%-g' \
         AND CAST(i.deleted AS INTEGER) = 0 AND NOT EXISTS \
         (SELECT 1 FROM server_group_members m WHERE m.instance_uuid = i.id)",
    );
    assert!(
        lonely.is_empty(),
        "grouped servers with no membership: {lonely:?}"
    );

    // Images: nothing saving; nothing queued by a server operation.
    let (_, imgs) = r.get(&r.admin, "/image/v2/images?limit=1000").await;
    for i in imgs["images"].as_array().expect("images") {
        assert_ne!(i["status"], "saving", "image stuck saving: {i}");
        if i["status"] == "queued" {
            assert!(
                i.get("instance_uuid").is_none(),
                "snapshot left queued: {i}"
            );
        }
    }
}

/// memory_mb_used of each host before any server exists.
pub(crate) async fn memory_baseline(r: &Rova) -> BTreeMap<String, i64> {
    let (_, hv) = r.get(&r.admin, "/compute/v2.1/os-hypervisors/detail").await;
    hv["hypervisors"]
        .as_array()
        .expect("hypervisors")
        .iter()
        .map(|h| {
            (
                h["hypervisor_hostname"].as_str().unwrap_or("").to_string(),
                h["memory_mb_used"].as_i64().unwrap_or(0),
            )
        })
        .collect()
}

fn cleanup(dir: &Path) {
    let _ = std::fs::remove_dir_all(dir);
    let _ = std::fs::remove_file(dir.with_extension("log"));
}

const SIM: &[&str] = &["--sim-latency-ms", "15", "--sim-hosts", "2"];

/// Creates `n` servers concurrently and SIGKILLs the service as soon as
/// `kill_after` of the POSTs have been answered; returns the ids answered
/// 202 before the kill.
pub(crate) async fn storm(r: Rova, tag: &str, n: usize, kill_after: usize) -> Vec<String> {
    let image = r.image_id().await;
    // Every other create joins a server group (its name ends in `-g`):
    // the server and its membership are written together.
    let (s, g) = r
        .post(
            &r.demo,
            "/compute/v2.1/os-server-groups",
            json!({"server_group": {"name": tag, "policies": ["soft-anti-affinity"]}}),
        )
        .await;
    assert_eq!(s, 200, "{g}");
    let group = g["server_group"]["id"]
        .as_str()
        .expect("group id")
        .to_string();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    for k in 0..n {
        let (http, base, tok, tx, image) = (
            r.http.clone(),
            r.base.clone(),
            r.demo.clone(),
            tx.clone(),
            image.clone(),
        );
        let mut body = json!({"server": {"name": format!("{tag}-{k}"), "imageRef": image,
            "flavorRef": "1", "networks": "auto"}});
        if k % 2 == 0 {
            body["server"]["name"] = json!(format!("{tag}-{k}-g"));
            body["os:scheduler_hints"] = json!({"group": group});
        }
        tokio::spawn(async move {
            let res = http
                .post(format!("{base}/compute/v2.1/servers"))
                .header("X-Auth-Token", tok)
                .header("OpenStack-API-Version", format!("compute {V}"))
                .json(&body)
                .send()
                .await;
            let id = match res {
                Ok(resp) if resp.status().as_u16() == 202 => resp
                    .json::<Value>()
                    .await
                    .ok()
                    .and_then(|b| b["server"]["id"].as_str().map(str::to_string)),
                _ => None,
            };
            let _ = tx.send(id);
        });
    }
    drop(tx);
    let mut acked = Vec::new();
    let mut answered = 0;
    while answered < kill_after {
        let Some(id) = rx.recv().await else { break };
        answered += 1;
        acked.extend(id);
    }
    r.kill();
    acked
}

/// An admin port on the bootstrap network claiming to belong to `device`.
async fn stray_port(r: &Rova, device: &str) -> String {
    let net = r.private_net().await;
    let (s, b) = r
        .post(
            &r.admin,
            "/network/v2.0/ports",
            json!({"port": {"network_id": net, "device_id": device,
                "device_owner": "compute:nova"}}),
        )
        .await;
    assert_eq!(s, 201, "{b}");
    b["port"]["id"].as_str().expect("port id").to_string()
}

/// A port the user brought, bound to a server whose build had not yet
/// recorded it when the service died, is unbound (not deleted) at start
/// and the resumed build takes it.
#[tokio::test(flavor = "multi_thread")]
async fn crash_before_a_users_port_is_recorded_keeps_the_port() {
    let dir = temp_dir("userport");
    std::fs::create_dir_all(&dir).expect("dir");
    let r = start(&dir, SIM).await;
    let mem = memory_baseline(&r).await;
    let net = r.private_net().await;
    let (s, b) = r
        .post(
            &r.demo,
            "/network/v2.0/ports",
            json!({"port": {"network_id": net, "name": "mine"}}),
        )
        .await;
    assert_eq!(s, 201, "{b}");
    let port = b["port"]["id"].as_str().expect("port").to_string();
    // The build is held before scheduling; the port is then marked bound
    // to it as the networking step does, and the service dies before the
    // server records it.
    r.sim("latency", json!({"step_ms": 600000})).await;
    let image = r.image_id().await;
    let (s, b) = r
        .post(
            &r.demo,
            "/compute/v2.1/servers",
            json!({"server": {"name": "byo", "imageRef": image, "flavorRef": "1",
                "networks": [{"port": port}]}}),
        )
        .await;
    assert_eq!(s, 202, "{b}");
    let id = b["server"]["id"].as_str().expect("id").to_string();
    let (s, b) = r
        .call(
            &r.admin,
            Method::PUT,
            &format!("/network/v2.0/ports/{port}"),
            Some(json!({"port": {"device_id": id, "device_owner": "compute:nova"}})),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    r.kill();
    let r = start(&dir, SIM).await;
    let srv = r.wait_active(&id).await;
    let (s, p) = r.get(&r.demo, &format!("/network/v2.0/ports/{port}")).await;
    assert_eq!(s, 200, "the user's port was deleted: {p}");
    assert_eq!(p["port"]["device_id"], id.as_str(), "{p}");
    let mac = p["port"]["mac_address"].as_str().expect("mac");
    assert_eq!(
        srv["addresses"]["private"][0]["OS-EXT-IPS-MAC:mac_addr"], mac,
        "the server took the user's port: {srv}"
    );
    check_invariants(&r, &mem).await;
    r.kill();
    println!("crash rounds run: 1");
    cleanup(&dir);
}

#[tokio::test(flavor = "multi_thread")]
async fn crash_during_create_storm_and_deletes() {
    let dir = temp_dir("storm");
    std::fs::create_dir_all(&dir).expect("dir");
    let mut rounds = 0;
    let mut r = start(&dir, SIM).await;
    let mem = memory_baseline(&r).await;
    let mut acked = Vec::new();

    // Rounds 1–3: SIGKILL while a storm of creates is being answered.
    for (round, kill_after) in [(1, 3), (2, 8), (3, 12)] {
        acked.extend(storm(r, &format!("storm{round}"), 12, kill_after).await);
        rounds += 1;
        r = start(&dir, SIM).await;
        for id in &acked {
            let (s, b) = r.server(id).await;
            assert_eq!(s, 200, "server {id} was answered 202 before the kill: {b}");
        }
        check_invariants(&r, &mem).await;
    }

    // Round 4: deletes held in the driver, plus ports that claim a server
    // (a duplicate of a live one's, one of a server that never was).
    let victims: Vec<String> = acked.iter().take(3).cloned().collect();
    let keeper = acked[3].clone();
    let dup = stray_port(&r, &keeper).await;
    let orphan = stray_port(&r, &uuid::Uuid::new_v4().to_string()).await;
    r.sim("slow", json!({"operation": "destroy", "delay_ms": 600000}))
        .await;
    for id in &victims {
        let (s, b) = r
            .call(
                &r.demo,
                Method::DELETE,
                &format!("/compute/v2.1/servers/{id}"),
                None,
            )
            .await;
        assert_eq!(s, 204, "{b}");
    }
    let (_, b) = r.server(&victims[0]).await;
    assert_eq!(b["server"]["OS-EXT-STS:task_state"], "deleting", "{b}");
    r.kill();
    rounds += 1;
    let r = start(&dir, SIM).await;
    for id in &victims {
        r.wait_gone(id).await;
    }
    for p in [&dup, &orphan] {
        let (s, b) = r.get(&r.admin, &format!("/network/v2.0/ports/{p}")).await;
        assert_eq!(s, 404, "stray port {p} survived the restart: {b}");
    }
    check_invariants(&r, &mem).await;

    // Round 5: a burst of mixed actions on the survivors, SIGKILL once
    // half of them have been answered.
    let survivors: Vec<String> = acked.iter().skip(3).cloned().collect();
    let bodies = [
        json!({"resize": {"flavorRef": "2"}}),
        json!({"os-stop": null}),
        json!({"pause": null}),
        json!({"reboot": {"type": "HARD"}}),
        json!({"shelve": null}),
        json!({"createImage": {"name": "burst"}}),
        json!({"suspend": null}),
        json!({"rescue": null}),
    ];
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    for (k, id) in survivors.iter().enumerate() {
        let (http, base, tok, tx) = (r.http.clone(), r.base.clone(), r.demo.clone(), tx.clone());
        let (url, body) = (
            format!("{base}/compute/v2.1/servers/{id}/action"),
            bodies[k % bodies.len()].clone(),
        );
        tokio::spawn(async move {
            let _ = http
                .post(url)
                .header("X-Auth-Token", tok)
                .header("OpenStack-API-Version", format!("compute {V}"))
                .json(&body)
                .send()
                .await;
            let _ = tx.send(());
        });
    }
    drop(tx);
    for _ in 0..survivors.len() / 2 {
        let _ = rx.recv().await;
    }
    r.kill();
    rounds += 1;
    let r = start(&dir, SIM).await;
    check_invariants(&r, &mem).await;
    r.kill();
    println!("crash rounds run: {rounds}");
    cleanup(&dir);
}

/// Every id answered 202 is one server, listed once; no two servers came
/// from one request (names are unique per request here).
pub(crate) fn exactly_once(servers: &[Value], acked: &[String]) {
    let mut names: BTreeMap<&str, usize> = BTreeMap::new();
    let mut ids: BTreeMap<&str, usize> = BTreeMap::new();
    for s in servers {
        *names.entry(s["name"].as_str().unwrap_or("")).or_default() += 1;
        *ids.entry(s["id"].as_str().unwrap_or("")).or_default() += 1;
    }
    for id in acked {
        assert_eq!(ids.get(id.as_str()), Some(&1), "server {id} answered 202");
    }
    for (name, n) in names {
        assert_eq!(n, 1, "{n} servers named {name}");
    }
}

/// The scale: 300 concurrent creates, SIGKILL once half have been
/// answered; then a burst of pause/stop/resize/delete/reboot and one of
/// unpause/start/confirm, each cut by a SIGKILL. After every restart the
/// invariants hold (on whichever database the suite runs on).
#[tokio::test(flavor = "multi_thread")]
async fn crash_during_300_creates_and_action_bursts() {
    let dir = temp_dir("storm300");
    std::fs::create_dir_all(&dir).expect("dir");
    let args = &[
        "--sim-latency-ms",
        "10",
        "--sim-hosts",
        "2",
        "--sim-host-vcpus",
        "1024",
        "--sim-host-ram-mb",
        "1048576",
    ];
    let r = start(&dir, args).await;
    let mem = memory_baseline(&r).await;
    let acked = storm(r, "big", 300, 150).await;
    assert!(
        acked.len() >= 140,
        "only {} of 150 answers were 202",
        acked.len()
    );
    let r = start(&dir, args).await;
    check_invariants(&r, &mem).await;
    let servers = r.servers().await;
    exactly_once(&servers, &acked);

    // Burst 1 over every ACTIVE server, SIGKILL halfway through the answers.
    let burst = |r: &Rova, ids: Vec<String>, bodies: Vec<Option<Value>>| {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        for (k, id) in ids.iter().enumerate() {
            let (http, base, tok, tx) =
                (r.http.clone(), r.base.clone(), r.demo.clone(), tx.clone());
            let body = bodies[k % bodies.len()].clone();
            let id = id.clone();
            tokio::spawn(async move {
                let req = match body {
                    Some(b) => http
                        .post(format!("{base}/compute/v2.1/servers/{id}/action"))
                        .json(&b),
                    None => http.delete(format!("{base}/compute/v2.1/servers/{id}")),
                };
                let _ = req
                    .header("X-Auth-Token", tok)
                    .header("OpenStack-API-Version", format!("compute {V}"))
                    .send()
                    .await;
                let _ = tx.send(());
            });
        }
        rx
    };
    let active: Vec<String> = servers
        .iter()
        .filter(|s| s["status"] == "ACTIVE")
        .filter_map(|s| s["id"].as_str().map(str::to_string))
        .collect();
    let mut rx = burst(
        &r,
        active.clone(),
        vec![
            Some(json!({"pause": null})),
            Some(json!({"os-stop": null})),
            Some(json!({"resize": {"flavorRef": "2"}})),
            None,
            Some(json!({"reboot": {"type": "SOFT"}})),
        ],
    );
    for _ in 0..active.len() / 2 {
        let _ = rx.recv().await;
    }
    r.kill();
    let r = start(&dir, args).await;
    check_invariants(&r, &mem).await;

    // Burst 2: undo what burst 1 did, SIGKILL halfway again.
    let servers = r.servers().await;
    let mut ids = Vec::new();
    let mut bodies = Vec::new();
    for s in &servers {
        let body = match s["status"].as_str().unwrap_or("") {
            "PAUSED" => json!({"unpause": null}),
            "SHUTOFF" => json!({"os-start": null}),
            "ACTIVE" => json!({"os-stop": null}),
            _ => continue,
        };
        ids.push(s["id"].as_str().expect("id").to_string());
        bodies.push(Some(body));
    }
    let n = ids.len();
    let mut rx = burst(&r, ids, bodies);
    for _ in 0..n / 2 {
        let _ = rx.recv().await;
    }
    r.kill();
    let r = start(&dir, args).await;
    check_invariants(&r, &mem).await;
    let servers = r.servers().await;
    exactly_once(&servers, &[]);
    println!(
        "storm300: {} answered 202 before the first kill, {} servers at the end",
        acked.len(),
        servers.len()
    );
    r.kill();
    cleanup(&dir);
}

#[tokio::test(flavor = "multi_thread")]
async fn crash_during_resize_keeps_one_claim_per_server() {
    let dir = temp_dir("resize");
    std::fs::create_dir_all(&dir).expect("dir");
    let args = &[
        "--sim-latency-ms",
        "5",
        "--sim-hosts",
        "2",
        "--sim-host-vcpus",
        "2",
    ];
    let mut rounds = 0;
    let r = start(&dir, args).await;
    let mem = memory_baseline(&r).await;
    // Two hosts of 2 vCPUs (x4 allocation ratio): room for 16 one-vCPU
    // servers.
    let mut ids = Vec::new();
    for k in 0..2 {
        ids.push(r.create(&format!("rs-{k}"), "1").await.expect("create"));
    }
    for id in &ids {
        r.wait_active(id).await;
    }

    // Round 1: both servers in resize_prep (the scheduling step is held by
    // a long driver latency), then SIGKILL.
    r.sim("latency", json!({"step_ms": 600000})).await;
    for id in &ids {
        let (s, b) = r
            .post(
                &r.demo,
                &format!("/compute/v2.1/servers/{id}/action"),
                json!({"resize": {"flavorRef": "3"}}),
            )
            .await;
        assert_eq!(s, 202, "{b}");
        let (_, b) = r.server(id).await;
        assert_eq!(b["server"]["OS-EXT-STS:task_state"], "resize_prep", "{b}");
    }
    r.kill();
    rounds += 1;
    let r = start(&dir, args).await;
    for id in &ids {
        let s = r.wait_active(id).await;
        assert_eq!(s["flavor"]["vcpus"], 1, "{s}");
    }
    check_invariants(&r, &mem).await;

    // Round 2: the resize held in the driver, after the destination was
    // claimed (migration `migrating`), then SIGKILL.
    r.sim("slow", json!({"operation": "resize", "delay_ms": 600000}))
        .await;
    r.action(&ids[0], json!({"resize": {"flavorRef": "3"}}))
        .await;
    r.wait_server(&ids[0], "resize_finish", |s| {
        s["OS-EXT-STS:task_state"] == "resize_finish"
    })
    .await;
    r.kill();
    rounds += 1;
    let r = start(&dir, args).await;
    let s = r.wait_active(&ids[0]).await;
    assert_eq!(s["flavor"]["vcpus"], 1, "{s}");
    check_invariants(&r, &mem).await;

    // Round 3: a revert held in the driver, then SIGKILL: the server is
    // left in VERIFY_RESIZE with its resize to confirm or revert again
    // (the check confirms it).
    r.action(&ids[0], json!({"resize": {"flavorRef": "3"}}))
        .await;
    r.wait_server(&ids[0], "VERIFY_RESIZE", |s| {
        s["status"] == "VERIFY_RESIZE" && s["OS-EXT-STS:task_state"].is_null()
    })
    .await;
    r.sim(
        "slow",
        json!({"operation": "revertResize", "delay_ms": 600000}),
    )
    .await;
    r.action(&ids[0], json!({"revertResize": null})).await;
    let (_, b) = r.server(&ids[0]).await;
    assert_eq!(
        b["server"]["OS-EXT-STS:task_state"], "resize_reverting",
        "{b}"
    );
    r.kill();
    rounds += 1;
    let r = start(&dir, args).await;
    let s = r
        .wait_server(&ids[0], "VERIFY_RESIZE", |s| {
            s["status"] == "VERIFY_RESIZE" && s["OS-EXT-STS:task_state"].is_null()
        })
        .await;
    assert_eq!(s["flavor"]["vcpus"], 2, "{s}");
    check_invariants(&r, &mem).await;

    // Round 4: after the restarts the books are right: a resize goes
    // through (confirmed by the check), and filling the hosts up to their
    // capacity works and goes no further — with 2 + 2 vCPUs taken, 12
    // more one-vCPU servers fit, another one does not.
    r.action(&ids[1], json!({"resize": {"flavorRef": "3"}}))
        .await;
    r.wait_server(&ids[1], "VERIFY_RESIZE", |s| s["status"] == "VERIFY_RESIZE")
        .await;
    check_invariants(&r, &mem).await;
    let mut more = Vec::new();
    for k in 0..12 {
        more.push(r.create(&format!("fill-{k}"), "1").await.expect("create"));
    }
    for id in &more {
        r.wait_active(id).await;
    }
    let extra = r.create("one-too-many", "1").await.expect("create");
    let s = r
        .wait_server(&extra, "ERROR", |s| {
            s["status"] == "ERROR" || s["status"] == "ACTIVE"
        })
        .await;
    assert_eq!(s["status"], "ERROR", "a host was over-committed: {s}");
    let (st, b) = r
        .call(
            &r.demo,
            Method::DELETE,
            &format!("/compute/v2.1/servers/{extra}"),
            None,
        )
        .await;
    assert_eq!(st, 204, "{b}");
    r.wait_gone(&extra).await;
    r.kill();
    rounds += 1;
    let r = start(&dir, args).await;
    check_invariants(&r, &mem).await;
    r.kill();
    println!("crash rounds run: {rounds}");
    cleanup(&dir);
}

/// Starts `PUT .../file` with a body that never finishes: the image goes
/// `saving` and the connection stays open.
async fn stalled_upload(r: &Rova, image: &str) -> tokio::net::TcpStream {
    let addr = r.base.trim_start_matches("http://").to_string();
    let mut sock = tokio::net::TcpStream::connect(&addr)
        .await
        .expect("connect");
    let head = format!(
        "PUT /image/v2/images/{image}/file HTTP/1.1\r\nHost: {addr}\r\nX-Auth-Token: {}\r\nContent-Type: application/octet-stream\r\nContent-Length: 1000000\r\n\r\n",
        r.admin
    );
    sock.write_all(head.as_bytes()).await.expect("head");
    sock.write_all(&[7u8; 4096]).await.expect("some bytes");
    sock.flush().await.expect("flush");
    sock
}

#[tokio::test(flavor = "multi_thread")]
async fn crash_during_image_operations() {
    let dir = temp_dir("images");
    std::fs::create_dir_all(&dir).expect("dir");
    let mut rounds = 0;
    let r = start(&dir, SIM).await;
    let mem = memory_baseline(&r).await;
    let a = r.create("snap-src", "1").await.expect("create");
    let b = r.create("shelve-src", "1").await.expect("create");
    r.wait_active(&a).await;
    r.wait_active(&b).await;

    // Round 1: an upload streaming, a snapshot and a shelve held in the
    // driver — SIGKILL.
    let (s, img) = r
        .post(
            &r.admin,
            "/image/v2/images",
            json!({"name": "half", "disk_format": "raw", "container_format": "bare"}),
        )
        .await;
    assert_eq!(s, 201, "{img}");
    let up = img["id"].as_str().expect("id").to_string();
    let _sock = stalled_upload(&r, &up).await;
    let end = Instant::now() + WAIT;
    while r.image(&up).await.1["status"] != "saving" {
        assert!(Instant::now() < end, "upload never started");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    r.sim(
        "slow",
        json!({"operation": "createImage", "delay_ms": 600000}),
    )
    .await;
    r.sim("slow", json!({"operation": "shelve", "delay_ms": 600000}))
        .await;
    let (s, body) = r
        .post(
            &r.demo,
            &format!("/compute/v2.1/servers/{a}/action"),
            json!({"createImage": {"name": "snap-1"}}),
        )
        .await;
    assert_eq!(s, 202, "{body}");
    let snap = body["image_id"].as_str().expect("image_id").to_string();
    let (s, body) = r
        .post(
            &r.demo,
            &format!("/compute/v2.1/servers/{b}/action"),
            json!({"shelve": null}),
        )
        .await;
    assert_eq!(s, 202, "{body}");
    r.wait_server(&b, "uploading", |s| {
        s["OS-EXT-STS:task_state"] == "shelving_image_uploading"
    })
    .await;
    r.wait_server(&a, "uploading", |s| {
        s["OS-EXT-STS:task_state"] == "image_uploading"
    })
    .await;
    let (_, list) = r
        .get(&r.admin, "/image/v2/images?name=shelve-src-shelved")
        .await;
    let shelved = list["images"][0]["id"]
        .as_str()
        .expect("shelved image")
        .to_string();
    r.kill();
    rounds += 1;

    let r = start(&dir, SIM).await;
    // The upload cut short is back to queued, without data, and can be
    // uploaded again.
    let (_, i) = r.image(&up).await;
    assert_eq!(i["status"], "queued", "{i}");
    let file = format!("{}/image/v2/images/{up}/file", r.base);
    let got = r
        .http
        .get(&file)
        .header("X-Auth-Token", &r.admin)
        .send()
        .await
        .expect("download");
    assert_eq!(got.status().as_u16(), 204);
    let put = r
        .http
        .put(&file)
        .header("X-Auth-Token", &r.admin)
        .header("Content-Type", "application/octet-stream")
        .body(vec![9u8; 1000])
        .send()
        .await
        .expect("upload");
    assert_eq!(put.status().as_u16(), 204);
    let got = r
        .http
        .get(&file)
        .header("X-Auth-Token", &r.admin)
        .send()
        .await
        .expect("download");
    assert_eq!(got.bytes().await.expect("bytes").len(), 1000);
    // The interrupted snapshot's and shelve's images are gone; the servers
    // are back to ACTIVE. (At once on SQLite; on a shared database once
    // the killed process's lease has lapsed and its servers are taken
    // over.)
    for id in [&snap, &shelved] {
        let end = Instant::now() + WAIT;
        while r.image(id).await.0 != 404 {
            assert!(Instant::now() < end, "image {id} of an interrupted action");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    r.wait_active(&a).await;
    r.wait_active(&b).await;
    check_invariants(&r, &mem).await;

    // Round 2: shelved (offloaded), SIGKILL, then deleted: the shelved
    // image goes with the server.
    let (s, body) = r
        .post(
            &r.demo,
            &format!("/compute/v2.1/servers/{b}/action"),
            json!({"shelve": null}),
        )
        .await;
    assert_eq!(s, 202, "{body}");
    r.wait_server(&b, "SHELVED_OFFLOADED", |s| {
        s["status"] == "SHELVED_OFFLOADED" && s["OS-EXT-STS:task_state"].is_null()
    })
    .await;
    let (_, list) = r
        .get(&r.admin, "/image/v2/images?name=shelve-src-shelved")
        .await;
    let shelved = list["images"][0]["id"]
        .as_str()
        .expect("shelved image")
        .to_string();
    assert_eq!(r.image(&shelved).await.1["status"], "active");
    r.kill();
    rounds += 1;
    let r = start(&dir, SIM).await;
    check_invariants(&r, &mem).await;
    let (s, body) = r
        .call(
            &r.demo,
            Method::DELETE,
            &format!("/compute/v2.1/servers/{b}"),
            None,
        )
        .await;
    assert_eq!(s, 204, "{body}");
    r.wait_gone(&b).await;
    assert_eq!(
        r.image(&shelved).await.0,
        404,
        "shelved image outlived its server"
    );
    check_invariants(&r, &mem).await;
    r.kill();
    println!("crash rounds run: {rounds}");
    cleanup(&dir);
}

/// Every file under `dir` 0600, every directory 0700.
fn assert_private(dir: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::symlink_metadata(dir).expect("meta");
    let mode = meta.permissions().mode() & 0o7777;
    if meta.is_dir() {
        assert_eq!(mode, 0o700, "{} is {mode:o}", dir.display());
        for e in std::fs::read_dir(dir).expect("read_dir") {
            assert_private(&e.expect("entry").path());
        }
    } else {
        assert_eq!(mode, 0o600, "{} is {mode:o}", dir.display());
    }
}

/// What the database holds: the SQLite file and its WAL, or on PostgreSQL
/// every row of every table as text.
fn db_bytes(dir: &Path) -> Vec<u8> {
    if let Some(rova::store::Database::Postgres(url)) = crate::common::test_database(dir) {
        return std::thread::spawn(move || {
            let mut c = postgres::Client::connect(&url, postgres::NoTls).expect("connect");
            let mut all = Vec::new();
            for k in rova::store::schema::KINDS {
                for row in c
                    .query(&format!("SELECT t::text FROM {} t", k.table), &[])
                    .expect("dump")
                {
                    all.extend(row.get::<_, String>(0).into_bytes());
                }
            }
            all
        })
        .join()
        .expect("dump thread");
    }
    let mut all = Vec::new();
    for f in ["rova.sqlite", "rova.sqlite-wal"] {
        all.extend(std::fs::read(dir.join(f)).unwrap_or_default());
    }
    all
}

fn contains(hay: &[u8], needle: &str) -> bool {
    hay.windows(needle.len()).any(|w| w == needle.as_bytes())
}

#[tokio::test(flavor = "multi_thread")]
async fn data_dir_is_private_and_keeps_no_admin_pass() {
    use std::os::unix::fs::PermissionsExt;
    let dir = temp_dir("private");
    // What an older version left: a world-readable directory and files.
    std::fs::create_dir_all(dir.join("images")).expect("dir");
    std::fs::write(dir.join("images").join("old"), b"old bytes").expect("old");
    for (p, m) in [
        (dir.clone(), 0o755),
        (dir.join("images"), 0o755),
        (dir.join("images/old"), 0o644),
    ] {
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(m)).expect("chmod");
    }
    let r = start(&dir, &["--sim-latency-ms", "1"]).await;
    assert_private(&dir);

    // A server with a chosen password, one with a generated one, a
    // password change and an image upload.
    let image = r.image_id().await;
    let chosen = format!("Chosen-{}", uuid::Uuid::new_v4().simple());
    let (s, body) = r
        .post(
            &r.demo,
            "/compute/v2.1/servers",
            json!({"server": {"name": "pw1", "imageRef": image, "flavorRef": "1",
                "networks": "auto", "adminPass": chosen}}),
        )
        .await;
    assert_eq!(s, 202, "{body}");
    assert_eq!(body["server"]["adminPass"], chosen.as_str());
    let one = body["server"]["id"].as_str().expect("id").to_string();
    let two = r.create("pw2", "1").await.expect("create");
    r.wait_active(&one).await;
    r.wait_active(&two).await;
    let (s, body) = r
        .get(&r.demo, &format!("/compute/v2.1/servers/{two}"))
        .await;
    assert_eq!(s, 200, "{body}");
    let (s, body) = r
        .post(
            &r.demo,
            "/compute/v2.1/servers",
            json!({"server": {"name": "pw3", "imageRef": image, "flavorRef": "1",
                "networks": "auto"}}),
        )
        .await;
    assert_eq!(s, 202, "{body}");
    let generated = body["server"]["adminPass"]
        .as_str()
        .expect("adminPass")
        .to_string();
    let three = body["server"]["id"].as_str().expect("id").to_string();
    r.wait_active(&three).await;
    let changed = format!("Changed-{}", uuid::Uuid::new_v4().simple());
    let (s, body) = r
        .post(
            &r.demo,
            &format!("/compute/v2.1/servers/{one}/action"),
            json!({"changePassword": {"adminPass": changed}}),
        )
        .await;
    assert_eq!(s, 202, "{body}");
    r.wait_active(&one).await;
    let (s, body) = r
        .post(
            &r.demo,
            &format!("/compute/v2.1/servers/{three}/action"),
            json!({"rescue": null}),
        )
        .await;
    assert_eq!(s, 200, "{body}");
    let rescue = body["adminPass"]
        .as_str()
        .expect("rescue adminPass")
        .to_string();
    r.wait_server(&three, "RESCUE", |s| {
        s["status"] == "RESCUE" && s["OS-EXT-STS:task_state"].is_null()
    })
    .await;
    let (s, img) = r
        .post(
            &r.admin,
            "/image/v2/images",
            json!({"name": "up", "disk_format": "raw", "container_format": "bare"}),
        )
        .await;
    assert_eq!(s, 201, "{img}");
    let put = r
        .http
        .put(format!(
            "{}/image/v2/images/{}/file",
            r.base,
            img["id"].as_str().expect("id")
        ))
        .header("X-Auth-Token", &r.admin)
        .header("Content-Type", "application/octet-stream")
        .body(vec![1u8; 2048])
        .send()
        .await
        .expect("upload");
    assert_eq!(put.status().as_u16(), 204);

    assert_private(&dir);
    let bytes = db_bytes(&dir);
    assert!(bytes.len() > 4096, "database read");
    for pw in [&chosen, &generated, &changed, &rescue] {
        assert!(
            !contains(&bytes, pw),
            "an admin password is stored in the database"
        );
    }
    // Also after a restart (records rewritten at start stay clean).
    r.kill();
    let r = start(&dir, &["--sim-latency-ms", "1"]).await;
    assert_private(&dir);
    let bytes = db_bytes(&dir);
    for pw in [&chosen, &generated, &changed, &rescue] {
        assert!(
            !contains(&bytes, pw),
            "an admin password is stored in the database"
        );
    }
    r.kill();
    cleanup(&dir);
}
