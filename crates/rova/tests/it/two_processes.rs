//! Two `rova serve` processes on one PostgreSQL database, as two control
//! replicas would share it: the invariants hold across them because the
//! database decides (the quota is counted in the transaction that writes
//! an instance row, host capacity likewise, a fixed IP is a unique key, ids
//! come from a database counter), and each process's copy follows the
//! other's commits through the change feed.
//!
//! PostgreSQL only (an SQLite file is served by one process, which
//! `storage::a_second_process_is_refused_on_sqlite_and_shares_postgres`
//! checks): the test needs `ROVA_TEST_PG_URL`, so the default nextest
//! filter leaves it out and the PostgreSQL stage of `scripts/test.sh`
//! runs it.

use crate::crash::{self, Rova};
use reqwest::Method;
use serde_json::{json, Value};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Two simulated hosts of 8 vCPUs at the default 4.0 ratio: 32 m1.tiny
/// servers each, 64 in all. The project's quota of 100 decides how many
/// creates are accepted; capacity decides how many of those find a host.
/// Each process chooses hosts from its claim book, which follows the other
/// process's allocation rows through the change feed but may lag them:
/// the database's capacity guard makes the difference when both choose
/// one host's last slots at once.
const HOST_ENV: &[(&str, &str)] = &[
    ("ROVA_SIM_HOSTS", "2"),
    ("ROVA_SIM_HOST_VCPUS", "8"),
    ("ROVA_SIM_HOST_RAM_MB", "262144"),
];
const PER_HOST: usize = 32;
const HOSTS: usize = 2;
const QUOTA: usize = 100;
const CREATES: usize = 400;

/// Every server of the demo project, as `r` lists them (admin, detail).
async fn demo_servers(r: &Rova, project: &str) -> Vec<Value> {
    r.servers()
        .await
        .into_iter()
        .filter(|s| s["tenant_id"] == json!(project))
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn two_processes_share_one_database_and_its_invariants() {
    assert!(
        std::env::var("ROVA_TEST_PG_URL").is_ok_and(|u| !u.is_empty()),
        "two_processes needs PostgreSQL: set ROVA_TEST_PG_URL (scripts/pg.sh start DIR prints one)"
    );
    let dir = std::env::temp_dir().join(format!("rova-two-{}", uuid::Uuid::new_v4()));
    // One data directory (token key, passwords) and so one database.
    let a = Arc::new(crash::start_env(&dir, &[], HOST_ENV).await);
    let b = Arc::new(crash::start_env(&dir, &[], HOST_ENV).await);

    let (s, projects) = a.get(&a.demo, "/identity/v3/auth/projects").await;
    assert_eq!(s, 200, "{projects}");
    let project = projects["projects"][0]["id"]
        .as_str()
        .expect("demo project")
        .to_string();
    let (s, q) = a
        .call(
            &a.admin,
            Method::PUT,
            &format!("/compute/v2.1/os-quota-sets/{project}"),
            Some(json!({"quota_set": {"instances": QUOTA}})),
        )
        .await;
    assert_eq!(s, 200, "{q}");
    // The other process sees the new limit (its copy follows the feed).
    let end = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, q) = b
            .get(&b.admin, &format!("/compute/v2.1/os-quota-sets/{project}"))
            .await;
        if q["quota_set"]["instances"] == json!(QUOTA) {
            break;
        }
        assert!(Instant::now() < end, "b never saw the quota: {q}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // 400 creates, half to each process, 16 in flight at each.
    let accepted = Arc::new(parking_lot::Mutex::new(Vec::<String>::new()));
    let refused = Arc::new(parking_lot::Mutex::new(HashMap::<u16, usize>::new()));
    let mut tasks = Vec::new();
    for (side, r) in [a.clone(), b.clone()].into_iter().enumerate() {
        for lane in 0..16 {
            let (r, accepted, refused) = (r.clone(), accepted.clone(), refused.clone());
            tasks.push(tokio::spawn(async move {
                let image = r.image_id().await;
                for n in (lane..CREATES / 2).step_by(16) {
                    let (s, body) = r
                        .post(
                            &r.demo,
                            "/compute/v2.1/servers",
                            json!({"server": {"name": format!("p{side}-{n}"), "imageRef": image,
                                "flavorRef": "1", "networks": "auto"}}),
                        )
                        .await;
                    if s == 202 {
                        let id = body["server"]["id"].as_str().expect("id").to_string();
                        accepted.lock().push(id);
                    } else {
                        assert_eq!(s, 403, "only the quota refuses: {body}");
                        *refused.lock().entry(s).or_default() += 1;
                    }
                }
            }));
        }
    }
    for t in tasks {
        t.await.expect("creates");
    }
    let accepted = accepted.lock().clone();
    assert_eq!(
        accepted.len(),
        QUOTA,
        "exactly the quota was accepted across both processes (refused: {:?})",
        refused.lock()
    );

    // Every accepted server settles, seen alike from either process: the
    // hosts filled exactly, the rest ERROR with Nova's NoValidHost.
    let end = Instant::now() + Duration::from_secs(120);
    let settled = |v: &[Value]| {
        v.iter()
            .filter(|s| {
                (s["status"] == "ACTIVE" || s["status"] == "ERROR")
                    && s["OS-EXT-STS:task_state"].is_null()
            })
            .count()
    };
    let servers = loop {
        let seen_a = demo_servers(&a, &project).await;
        let seen_b = demo_servers(&b, &project).await;
        let same = |x: &[Value], y: &[Value]| {
            let st = |v: &[Value]| -> HashMap<String, String> {
                v.iter()
                    .map(|s| (s["id"].to_string(), s["status"].to_string()))
                    .collect()
            };
            st(x) == st(y)
        };
        if settled(&seen_a) == QUOTA && same(&seen_a, &seen_b) {
            break seen_a;
        }
        assert!(
            Instant::now() < end,
            "not settled alike: a sees {} ({} settled), b sees {} ({} settled)",
            seen_a.len(),
            settled(&seen_a),
            seen_b.len(),
            settled(&seen_b)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let active: Vec<&Value> = servers.iter().filter(|s| s["status"] == "ACTIVE").collect();
    assert_eq!(
        active.len(),
        HOSTS * PER_HOST,
        "the hosts are filled exactly, never past their capacity"
    );
    for s in servers.iter().filter(|s| s["status"] == "ERROR") {
        assert!(
            s["fault"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("No valid host")),
            "{s}"
        );
    }
    assert_eq!(servers.len(), QUOTA, "no server beyond the quota exists");
    let ids: HashSet<&str> = servers.iter().filter_map(|s| s["id"].as_str()).collect();
    for id in &accepted {
        assert!(ids.contains(id.as_str()), "accepted {id} exists");
    }

    // No address twice, no host over its capacity.
    let mut ips = HashSet::new();
    let mut per_host: HashMap<String, usize> = HashMap::new();
    for s in &active {
        for addrs in s["addresses"].as_object().expect("addresses").values() {
            for a in addrs.as_array().expect("address list") {
                let ip = a["addr"].as_str().expect("addr").to_string();
                assert!(ips.insert(ip.clone()), "{ip} assigned twice");
            }
        }
        let host = s["OS-EXT-SRV-ATTR:host"]
            .as_str()
            .expect("host")
            .to_string();
        *per_host.entry(host).or_default() += 1;
    }
    assert!(ips.len() >= active.len(), "every server has its addresses");
    for (host, n) in &per_host {
        assert!(
            *n <= PER_HOST,
            "{host} holds {n} servers, over its {PER_HOST}"
        );
    }
    // Integer ids are unique across the two processes too.
    let (_, d) = a
        .get(&a.admin, "/compute/v2.1/servers/detail?all_tenants=1")
        .await;
    let names: HashSet<&str> = d["servers"]
        .as_array()
        .expect("servers")
        .iter()
        .filter_map(|s| s["OS-EXT-SRV-ATTR:instance_name"].as_str())
        .collect();
    assert_eq!(
        names.len(),
        QUOTA,
        "instance names (integer ids) are unique"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// One of two processes is killed (SIGKILL) in the middle of 200
/// concurrent creates sent to it; the other, still serving, takes over its
/// operations once the dead process's lease lapses: every server whose
/// POST was answered 202 exists exactly once, none stays in BUILD or in a
/// task state, and every port, address and claim belongs to a live server
/// (`crash::check_invariants`), without a restart of anything.
#[tokio::test(flavor = "multi_thread")]
async fn the_survivor_finishes_a_killed_processs_builds() {
    assert!(
        std::env::var("ROVA_TEST_PG_URL").is_ok_and(|u| !u.is_empty()),
        "two_processes needs PostgreSQL: set ROVA_TEST_PG_URL (scripts/pg.sh start DIR prints one)"
    );
    let dir = std::env::temp_dir().join(format!("rova-two-kill-{}", uuid::Uuid::new_v4()));
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
    let a = crash::start(&dir, args).await;
    let b = crash::start(&dir, args).await;
    let mem = crash::memory_baseline(&b).await;
    // `storm` kills `a` once half the answers are in.
    let acked = crash::storm(a, "survivor", 200, 100).await;
    assert!(
        acked.len() >= 90,
        "only {} of 100 answers were 202",
        acked.len()
    );
    crash::check_invariants(&b, &mem).await;
    let servers = b.servers().await;
    crash::exactly_once(&servers, &acked);
    for s in &servers {
        assert_eq!(s["status"], json!("ACTIVE"), "{s}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// A move's hold on its source counts for every process's builds: one
/// process resizes two servers and leaves them in VERIFY_RESIZE (each
/// holding its old flavor on the source and its new one on the
/// destination); the other process creates twelve more. The allocation
/// rows hold every claim, move holds included: the other process's claim
/// book follows them (and the database's capacity guard counts them), so
/// only the ten that fit are built and the rest fail with No valid host —
/// counting the instance rows alone, all twelve would fit and both hosts
/// would be over-committed. Both processes then show the same usage.
#[tokio::test(flavor = "multi_thread")]
async fn a_moves_source_hold_counts_for_the_other_processs_builds() {
    assert!(
        std::env::var("ROVA_TEST_PG_URL").is_ok_and(|u| !u.is_empty()),
        "two_processes needs PostgreSQL: set ROVA_TEST_PG_URL (scripts/pg.sh start DIR prints one)"
    );
    // Two hosts of 2 vCPUs at the 4.0 ratio: 8 one-vCPU slots each.
    const SMALL: &[(&str, &str)] = &[
        ("ROVA_SIM_HOSTS", "2"),
        ("ROVA_SIM_HOST_VCPUS", "2"),
        ("ROVA_SIM_HOST_RAM_MB", "262144"),
    ];
    let dir = std::env::temp_dir().join(format!("rova-two-{}", uuid::Uuid::new_v4()));
    let a = crash::start_env(&dir, &[], SMALL).await;
    let b = crash::start_env(&dir, &[], SMALL).await;

    let mut moved = Vec::new();
    for k in 0..2 {
        moved.push(a.create(&format!("mv-{k}"), "1").await.expect("create"));
    }
    for id in &moved {
        a.wait_active(id).await;
    }
    for id in &moved {
        // m1.tiny (1 vCPU) to m1.medium (2 vCPUs), to the other host.
        a.action(id, json!({"resize": {"flavorRef": "3"}})).await;
    }
    for id in &moved {
        a.wait_server(id, "VERIFY_RESIZE", |s| {
            s["status"] == "VERIFY_RESIZE" && s["OS-EXT-STS:task_state"].is_null()
        })
        .await;
    }
    // 6 of the 16 slots are taken: each server's old vCPU held by its
    // migration and its two new ones.
    let mut built = Vec::new();
    for k in 0..12 {
        built.push(b.create(&format!("fill-{k}"), "1").await.expect("create"));
    }
    let mut outcomes = HashMap::new();
    for id in &built {
        let s = b
            .wait_server(id, "ACTIVE or ERROR", |s| {
                s["status"] == "ACTIVE" || s["status"] == "ERROR"
            })
            .await;
        let status = s["status"].as_str().unwrap_or("").to_string();
        if status == "ERROR" {
            assert!(
                s["fault"]["message"]
                    .as_str()
                    .is_some_and(|m| m.contains("No valid host")),
                "{s}"
            );
        }
        *outcomes.entry(status).or_insert(0) += 1;
    }
    assert_eq!(
        outcomes,
        HashMap::from([("ACTIVE".to_string(), 10), ("ERROR".to_string(), 2)]),
        "only the free slots are built"
    );
    let db = a.db.clone();
    let rows = tokio::task::spawn_blocking(move || {
        crate::storage::query(
            &db,
            "SELECT host, CAST(sum(vcpus) AS BIGINT) FROM allocations GROUP BY host ORDER BY host",
        )
    })
    .await
    .expect("allocations");
    let per_host: Vec<(String, String)> = rows
        .into_iter()
        .filter_map(|r| Some((r.first()?.clone()?, r.get(1)?.clone()?)))
        .collect();
    assert_eq!(
        per_host,
        vec![
            ("rova-sim-1".to_string(), "8".to_string()),
            ("rova-sim-2".to_string(), "8".to_string())
        ],
        "every host full, none over"
    );
    // Each process's claims follow the other's rows: both show the whole
    // cloud's usage on every host (16 servers' worth: 2 moved, 10 built).
    for r in [&a, &b] {
        let end = Instant::now() + Duration::from_secs(30);
        let used = loop {
            let (_, hv) = r.get(&r.admin, "/compute/v2.1/os-hypervisors/detail").await;
            let used: Vec<(String, i64)> = hv["hypervisors"]
                .as_array()
                .expect("hypervisors")
                .iter()
                .map(|h| {
                    (
                        h["hypervisor_hostname"].as_str().unwrap_or("").to_string(),
                        h["vcpus_used"].as_i64().unwrap_or(-1),
                    )
                })
                .collect();
            if used.iter().all(|(_, v)| *v == 8) || Instant::now() >= end {
                break used;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        assert_eq!(
            used,
            vec![("rova-sim-1".to_string(), 8), ("rova-sim-2".to_string(), 8)],
            "each process sees every process's claims"
        );
    }
    drop((a, b));
    let _ = std::fs::remove_dir_all(&dir);
}

/// A host is what its `resource_providers` row says, whichever process
/// wrote it: a host a second cloud on the database registers appears in
/// the first's `os-hypervisors` and `os-services`, and once the second
/// deletes its compute service it leaves the first's too.
#[tokio::test(flavor = "multi_thread")]
async fn a_host_one_process_registers_or_retires_is_so_for_the_other() {
    use crate::common::{start_in, start_with};
    use crate::providers::{compute_services, delete_service, hypervisors};
    let a = start_with(|c| c.sim_hosts = 2).await;
    assert!(a.database.is_some(), "PostgreSQL: set ROVA_TEST_PG_URL");
    // A second process on the same data directory and so the same
    // database, serving a third host.
    let b = start_in(a.dir.clone(), |c| c.sim_hosts = 3).await;
    let (a_admin, b_admin) = (a.login("admin").await, b.login("admin").await);
    let names = |hv: Vec<(String, i64)>| hv.into_iter().map(|h| h.0).collect::<Vec<_>>();
    let three = ["rova-sim-1", "rova-sim-2", "rova-sim-3"];
    let end = Instant::now() + Duration::from_secs(30);
    while names(hypervisors(&a, &a_admin).await) != three {
        assert!(Instant::now() < end, "a never saw rova-sim-3 registered");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let services = compute_services(&a, &a_admin).await;
    assert_eq!(services.len(), 3, "{services:?}");
    let third = services
        .iter()
        .find(|s| s.0 == "rova-sim-3")
        .map(|s| s.1.clone())
        .expect("rova-sim-3's service");
    let r = delete_service(&b, &b_admin, &third, "2.53").await;
    assert_eq!(r.status.as_u16(), 204, "{}", r.text);
    let end = Instant::now() + Duration::from_secs(30);
    while names(hypervisors(&a, &a_admin).await) != three[..2] {
        assert!(Instant::now() < end, "a never saw rova-sim-3 retired");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(compute_services(&a, &a_admin).await.len(), 2);
}

/// A second process starting on the database leaves alone a volume the
/// first is attaching right now (it may be a live process's work), while
/// an attach left for longer than two process leases is ended.
#[tokio::test(flavor = "multi_thread")]
async fn a_starting_process_leaves_the_others_fresh_volume_work_alone() {
    use crate::common::{start, start_in};
    let a = start().await;
    assert!(a.database.is_some(), "PostgreSQL: set ROVA_TEST_PG_URL");
    let demo = a.login("demo").await;
    let server = a
        .boot(&demo, "holder", Some("2.79"), json!({"networks": "none"}))
        .await;
    let sid = server["id"].as_str().expect("id").to_string();
    let mut vols = Vec::new();
    for name in ["fresh", "stale"] {
        let r = crate::volumes::create(&a, &demo, json!({"size": 1, "name": name})).await;
        let id = r.body["volume"]["id"].as_str().expect("id").to_string();
        crate::volumes::wait(&a, &demo, &id, Some("available")).await;
        let now = a.app.clock.now();
        a.app
            .volumes
            .reserve(&id, &sid, now)
            .await
            .expect("reserve");
        vols.push(id);
    }
    crate::volume_attachments::backdate(&a, &[&vols[1]]).await;
    let b = start_in(a.dir.clone(), |_| {}).await;
    let status = |id: &str| b.app.volumes.table.get(id).map(|v| v.status.clone());
    assert_eq!(
        status(&vols[0]).as_deref(),
        Some("reserved"),
        "a's fresh work"
    );
    assert_eq!(
        status(&vols[1]).as_deref(),
        Some("available"),
        "a stale reservation"
    );
}

/// Snapshots across two processes: a volume with a snapshot the other
/// process took is never deleted (its delete is refused, or conflicts
/// while this process's copy lags), and the snapshot quota is counted by
/// the database (creates sent to both at once: ten at most, every one
/// answered 202 a row).
#[tokio::test(flavor = "multi_thread")]
async fn snapshots_hold_across_processes() {
    use crate::common::{start, start_in, Resp};
    use crate::snapshots::{snap_create, snap_wait, volume};
    use rova::store::schema::Cell;
    let a = Arc::new(start().await);
    assert!(a.database.is_some(), "PostgreSQL: set ROVA_TEST_PG_URL");
    let b = Arc::new(start_in(a.dir.clone(), |_| {}).await);
    let demo = a.login("demo").await;
    let vol = volume(&a, &demo, 1).await;
    // b's copy follows a's writes through the change feed.
    crate::volumes::wait(&b, &demo, &vol, Some("available")).await;
    let r = snap_create(&b, &demo, None, json!({"volume_id": vol})).await;
    assert_eq!(r.status.as_u16(), 202, "{}", r.text);
    let first = r.body["snapshot"]["id"].as_str().expect("id").to_string();
    let end = Instant::now() + Duration::from_secs(10);
    loop {
        let r = crate::volumes::del(&a, &demo, &vol).await;
        match r.status.as_u16() {
            400 => break,
            409 => assert!(Instant::now() < end, "a's copy never caught up"),
            other => panic!(
                "a volume with a snapshot: delete answered {other} {}",
                r.text
            ),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let mut tasks = Vec::new();
    for i in 0..16 {
        let cloud = if i % 2 == 0 { a.clone() } else { b.clone() };
        let (demo, vol) = (demo.clone(), vol.clone());
        tasks.push(tokio::spawn(async move {
            snap_create(&cloud, &demo, None, json!({"volume_id": vol})).await
        }));
    }
    let mut made = vec![first];
    for t in tasks {
        let r: Resp = t.await.expect("create");
        match r.status.as_u16() {
            202 => made.push(r.body["snapshot"]["id"].as_str().expect("id").to_string()),
            // Refused by this process's count, or by the database's.
            413 => assert_eq!(
                r.fault(413),
                "Maximum number of snapshots allowed (10) exceeded"
            ),
            other => panic!("snapshot create: {other} {}", r.text),
        }
    }
    assert!(made.len() <= 10, "{} snapshots made", made.len());
    let counted = a
        .app
        .store
        .select(
            "SELECT count(*) FROM snapshots WHERE project_id = ?1",
            vec![Cell::Text(demo.project_id.clone())],
        )
        .expect("count");
    assert_eq!(
        counted[0][0].int(),
        Some(made.len() as i64),
        "a row for every snapshot answered, no other"
    );
    for s in &made {
        snap_wait(&b, &demo, s, Some("available")).await;
    }
}
