//! A failure injected at every named step of build, resize / cold migrate
//! (with confirm and revert) and live migration (docs/simulation.md,
//! `driver::STEPS`) ends where Nova leaves the server — status, task,
//! host, migration status, instance fault, a failed instance-action event
//! — and nothing leaks: each host's claimed vCPUs and RAM are the flavors
//! of the servers on it (a server in VERIFY_RESIZE also holds its old
//! flavor on the source), the project's quota usage is its servers', and
//! every compute port belongs to a live server.

use crate::common::{start_with, TestCloud, User};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use std::collections::HashMap;

const V: Option<&str> = Some("2.87");

/// What the case does after the server is ACTIVE on its source.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Op {
    Build,
    Resize,
    /// A resize of a stopped server.
    ResizeStopped,
    Migrate,
    Confirm,
    Revert,
    Live,
}

/// Where the server ends.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Host {
    None,
    Source,
    Dest,
}

struct Case {
    /// The faults: (operation, step); step "" = the step-less form.
    faults: &'static [(&'static str, &'static str)],
    op: Op,
    status: &'static str,
    host: Host,
    /// The last migration's status (None: no migration).
    migration: Option<&'static str>,
    /// Whether the instance carries the injected fault.
    fault: bool,
}

const fn case(
    faults: &'static [(&'static str, &'static str)],
    op: Op,
    status: &'static str,
    host: Host,
    migration: Option<&'static str>,
    fault: bool,
) -> Case {
    Case {
        faults,
        op,
        status,
        host,
        migration,
        fault,
    }
}

const CASES: &[Case] = &[
    // Build (nova/conductor/manager.py, nova/compute/manager.py
    // _do_build_and_run_instance): ERROR, host cleared, ports and claims
    // released.
    case(
        &[("spawn", "scheduling")],
        Op::Build,
        "ERROR",
        Host::None,
        None,
        true,
    ),
    case(
        &[("spawn", "networking")],
        Op::Build,
        "ERROR",
        Host::None,
        None,
        true,
    ),
    case(
        &[("spawn", "block_device_mapping")],
        Op::Build,
        "ERROR",
        Host::None,
        None,
        true,
    ),
    case(
        &[("spawn", "spawn")],
        Op::Build,
        "ERROR",
        Host::None,
        None,
        true,
    ),
    case(&[("spawn", "")], Op::Build, "ERROR", Host::None, None, true),
    // Resize: prep_resize rolls back; resize_instance and finish_resize
    // error the server out (on the source / on the destination).
    case(
        &[],
        Op::Resize,
        "VERIFY_RESIZE",
        Host::Dest,
        Some("finished"),
        false,
    ),
    case(
        &[("resize", "prep_resize")],
        Op::Resize,
        "ACTIVE",
        Host::Source,
        Some("error"),
        true,
    ),
    case(
        &[("resize", "resize_instance")],
        Op::Resize,
        "ERROR",
        Host::Source,
        Some("error"),
        true,
    ),
    case(
        &[("resize", "")],
        Op::Resize,
        "ERROR",
        Host::Source,
        Some("error"),
        true,
    ),
    case(
        &[("resize", "finish_resize")],
        Op::Resize,
        "ERROR",
        Host::Dest,
        Some("error"),
        true,
    ),
    case(
        &[("resize", "prep_resize")],
        Op::ResizeStopped,
        "SHUTOFF",
        Host::Source,
        Some("error"),
        true,
    ),
    case(
        &[("resize", "resize_instance")],
        Op::ResizeStopped,
        "ERROR",
        Host::Source,
        Some("error"),
        true,
    ),
    case(
        &[("migrate", "prep_resize")],
        Op::Migrate,
        "ACTIVE",
        Host::Source,
        Some("error"),
        true,
    ),
    case(
        &[("migrate", "resize_instance")],
        Op::Migrate,
        "ERROR",
        Host::Source,
        Some("error"),
        true,
    ),
    case(
        &[("migrate", "finish_resize")],
        Op::Migrate,
        "ERROR",
        Host::Dest,
        Some("error"),
        true,
    ),
    // Confirm and revert of a finished resize.
    case(
        &[],
        Op::Confirm,
        "ACTIVE",
        Host::Dest,
        Some("confirmed"),
        false,
    ),
    case(
        &[("resize", "confirm_resize")],
        Op::Confirm,
        "ERROR",
        Host::Dest,
        Some("error"),
        true,
    ),
    case(
        &[("confirmResize", "")],
        Op::Confirm,
        "ERROR",
        Host::Dest,
        Some("error"),
        true,
    ),
    case(
        &[],
        Op::Revert,
        "ACTIVE",
        Host::Source,
        Some("reverted"),
        false,
    ),
    case(
        &[("resize", "revert_resize")],
        Op::Revert,
        "ERROR",
        Host::Dest,
        Some("error"),
        true,
    ),
    case(
        &[("revertResize", "")],
        Op::Revert,
        "ERROR",
        Host::Dest,
        Some("error"),
        true,
    ),
    case(
        &[("resize", "finish_revert_resize")],
        Op::Revert,
        "ERROR",
        Host::Source,
        Some("error"),
        true,
    ),
    case(
        &[("revertResize", "finish_revert_resize")],
        Op::Revert,
        "ERROR",
        Host::Source,
        Some("error"),
        true,
    ),
    // Live migration.
    case(
        &[],
        Op::Live,
        "ACTIVE",
        Host::Dest,
        Some("completed"),
        false,
    ),
    case(
        &[("live-migration", "check_can_live_migrate_destination")],
        Op::Live,
        "ACTIVE",
        Host::Source,
        Some("error"),
        true,
    ),
    case(
        &[("live-migration", "pre_live_migration")],
        Op::Live,
        "ACTIVE",
        Host::Source,
        Some("failed"),
        true,
    ),
    case(
        &[("live-migration", "live_migration")],
        Op::Live,
        "ACTIVE",
        Host::Source,
        Some("failed"),
        false,
    ),
    case(
        &[("live-migration", "")],
        Op::Live,
        "ACTIVE",
        Host::Source,
        Some("failed"),
        false,
    ),
    case(
        &[("live-migration", "post_live_migration")],
        Op::Live,
        "ERROR",
        Host::Dest,
        Some("error"),
        true,
    ),
    case(
        &[
            ("live-migration", "pre_live_migration"),
            ("live-migration", "rollback_live_migration_at_destination"),
        ],
        Op::Live,
        "ACTIVE",
        Host::Source,
        Some("failed"),
        true,
    ),
];

async fn sim(c: &TestCloud, admin: &User, method: Method, body: Option<Value>) -> Value {
    let mut req = c
        .http
        .request(method, format!("{}/rova/v1/sim/faults", c.base))
        .header("X-Auth-Token", &admin.token);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let r = req.send().await.expect("sim request");
    assert!(r.status().is_success(), "sim: {}", r.status());
    r.json().await.unwrap_or(Value::Null)
}

fn server_of(c: &TestCloud, id: &str) -> std::sync::Arc<rova_core::model::Instance> {
    c.app.compute.instances.get(id).expect("instance")
}

fn last_migration(c: &TestCloud, id: &str) -> Option<String> {
    let mut m = c.app.compute.migrations.filter(|m| m.instance_uuid == id);
    m.sort_by_key(|m| m.id);
    m.last().map(|m| m.status.clone())
}

/// Waits until the server has no task and no migration in progress.
async fn settle(c: &TestCloud, id: &str) {
    let busy = [
        "pre-migrating",
        "migrating",
        "post-migrating",
        "accepted",
        "queued",
    ];
    let more = ["preparing", "running", "reverting", "confirming"];
    for _ in 0..2000 {
        let i = server_of(c, id);
        let moving = last_migration(c, id)
            .is_some_and(|s| busy.contains(&s.as_str()) || more.contains(&s.as_str()));
        let building = i.vm_state == rova_core::states::VmState::Building;
        if i.task_state.is_none() && !moving && !building {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    panic!("server {id} never settled");
}

async fn action(c: &TestCloud, u: &User, id: &str, body: Value) {
    let r = c.post(u, &format!("/servers/{id}/action"), V, body).await;
    assert!(r.status.is_success(), "action: {} {}", r.status, r.text);
}

/// Runs one case; returns the server id.
async fn run_case(c: &TestCloud, admin: &User, n: usize, k: &Case) -> String {
    let label = format!("case {n} {:?} {:?}", k.op, k.faults);
    let inject = |op: &'static str, step: &'static str| {
        let mut b = json!({"operation": op, "message": format!("fault at {op}/{step}")});
        if !step.is_empty() {
            b["step"] = json!(step);
        }
        b
    };
    // Faults of the build go in first; the others once the server is up.
    if k.op == Op::Build {
        for (op, step) in k.faults {
            sim(c, admin, Method::POST, Some(inject(op, step))).await;
        }
    }
    let s = c
        .boot(admin, &format!("steps-{n}"), V, json!({"networks": "auto"}))
        .await;
    let id = s["id"].as_str().expect("id").to_string();
    let source = server_of(c, &id).host.clone();
    if k.op != Op::Build {
        assert_eq!(s["status"], "ACTIVE", "{label}");
        if k.op == Op::ResizeStopped {
            action(c, admin, &id, json!({"os-stop": null})).await;
            c.wait_status(admin, &id, &["SHUTOFF"], V).await;
            settle(c, &id).await;
        }
        if matches!(k.op, Op::Confirm | Op::Revert) {
            action(c, admin, &id, json!({"resize": {"flavorRef": "2"}})).await;
            c.wait_status(admin, &id, &["VERIFY_RESIZE"], V).await;
            settle(c, &id).await;
        }
        for (op, step) in k.faults {
            sim(c, admin, Method::POST, Some(inject(op, step))).await;
        }
        let body = match k.op {
            Op::Resize | Op::ResizeStopped => json!({"resize": {"flavorRef": "2"}}),
            Op::Migrate => json!({"migrate": null}),
            Op::Confirm => json!({"confirmResize": null}),
            Op::Revert => json!({"revertResize": null}),
            Op::Live => json!({"os-migrateLive": {"host": null, "block_migration": "auto"}}),
            Op::Build => Value::Null,
        };
        action(c, admin, &id, body).await;
    }
    settle(c, &id).await;
    let pending = sim(c, admin, Method::GET, None).await;
    assert_eq!(pending["faults"], json!([]), "{label}: every fault fired");

    let i = server_of(c, &id);
    let r = c.get(admin, &format!("/servers/{id}"), V).await;
    assert_eq!(r.body["server"]["status"], k.status, "{label}");
    assert_eq!(
        r.body["server"]["OS-EXT-STS:task_state"],
        Value::Null,
        "{label}"
    );
    let host = match k.host {
        Host::None => None,
        Host::Source => source.clone(),
        Host::Dest => c
            .app
            .compute
            .fleet
            .hosts()
            .iter()
            .map(|h| h.name.clone())
            .find(|h| Some(h) != source.as_ref()),
    };
    assert_eq!(i.host, host, "{label}: host");
    assert_eq!(last_migration(c, &id).as_deref(), k.migration, "{label}");
    let fault = i.fault.as_ref().map(|f| f.message.clone());
    if k.fault {
        let msg = fault.unwrap_or_default();
        let injected = k
            .faults
            .iter()
            .any(|(op, step)| msg == format!("fault at {op}/{step}"));
        let nova_abort = msg.starts_with(&format!("Build of instance {id} aborted: "));
        assert!(injected || nova_abort, "{label}: fault {msg:?}");
        if k.status == "ERROR" {
            assert_eq!(r.body["server"]["fault"]["message"], json!(msg), "{label}");
        }
    } else {
        assert_eq!(fault, None, "{label}: no fault");
    }
    if !k.faults.is_empty() {
        let log = rova::compute::actions::log_of(&c.app, &id);
        assert!(!log.actions.is_empty(), "{label}: actions");
        let failed = log
            .actions
            .iter()
            .flat_map(|a| a.events.iter())
            .any(|e| e.result.as_deref() == Some("Error"));
        assert!(failed, "{label}: a failed instance-action event");
    }
    if k.status == "ERROR" && k.op == Op::Build {
        assert!(i.vifs.is_empty(), "{label}: ports released");
    }
    id
}

/// The flavors by id: (vcpus, ram).
async fn flavors(c: &TestCloud, u: &User) -> HashMap<String, (u64, u64)> {
    let r = c.get(u, "/flavors/detail", V).await;
    r.body["flavors"]
        .as_array()
        .expect("flavors")
        .iter()
        .map(|f| {
            let id = f["id"].as_str().unwrap_or_default().to_string();
            (
                id,
                (
                    f["vcpus"].as_u64().unwrap_or(0),
                    f["ram"].as_u64().unwrap_or(0),
                ),
            )
        })
        .collect()
}

/// Used vCPUs and RAM per hypervisor.
async fn used(c: &TestCloud, admin: &User) -> HashMap<String, (u64, u64)> {
    let r = c.get(admin, "/os-hypervisors/detail", V).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    r.body["hypervisors"]
        .as_array()
        .expect("hypervisors")
        .iter()
        .map(|h| {
            let name = h["hypervisor_hostname"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            let v = h["vcpus_used"].as_u64().unwrap_or(0);
            (name, (v, h["memory_mb_used"].as_u64().unwrap_or(0)))
        })
        .collect()
}

/// Claims, quota usage and ports match the servers that exist.
async fn no_leaks(c: &TestCloud, admin: &User, base: &HashMap<String, (u64, u64)>, label: &str) {
    let fl = flavors(c, admin).await;
    let servers = c.app.compute.instances.filter(|i| !i.deleted);
    let mut want: HashMap<String, (u64, u64)> = base.clone();
    let mut add = |host: &str, flavor: &str| {
        let (v, r) = fl.get(flavor).copied().unwrap_or_default();
        let e = want.entry(host.to_string()).or_default();
        e.0 += v;
        e.1 += r;
    };
    for s in &servers {
        if let Some(h) = &s.host {
            add(h, &s.flavor.id);
        }
        if s.vm_state == rova_core::states::VmState::Resized {
            let old: Value = serde_json::from_str(
                s.system_metadata
                    .get("old_flavor")
                    .map(String::as_str)
                    .unwrap_or("{}"),
            )
            .unwrap_or(Value::Null);
            let mut m = c
                .app
                .compute
                .migrations
                .filter(|m| m.instance_uuid == s.uuid);
            m.sort_by_key(|m| m.id);
            let src = m
                .last()
                .and_then(|m| m.source_compute.clone())
                .unwrap_or_default();
            add(&src, old["id"].as_str().unwrap_or_default());
        }
    }
    assert_eq!(used(c, admin).await, want, "{label}: hypervisor usage");

    let r = c
        .get(
            admin,
            &format!("/os-quota-sets/{}/detail", admin.project_id),
            V,
        )
        .await;
    let q = &r.body["quota_set"];
    let mine: Vec<_> = servers
        .iter()
        .filter(|s| s.project_id == admin.project_id)
        .collect();
    let cores: u64 = mine.iter().map(|s| u64::from(s.flavor.vcpus)).sum();
    let ram: u64 = mine.iter().map(|s| s.flavor.ram).sum();
    assert_eq!(
        q["instances"]["in_use"],
        json!(mine.len()),
        "{label}: instances in use"
    );
    assert_eq!(q["cores"]["in_use"], json!(cores), "{label}: cores in use");
    assert_eq!(q["ram"]["in_use"], json!(ram), "{label}: ram in use");

    let live: Vec<&str> = servers.iter().map(|s| s.uuid.as_str()).collect();
    for p in c.app.networks.ports.all() {
        if p.device_owner.starts_with("compute:") {
            assert!(
                live.contains(&p.device_id.as_str()),
                "{label}: port {} leaked",
                p.id
            );
        }
    }
    for s in &servers {
        for v in &s.vifs {
            let port = c.app.networks.ports.get(&v.port_id);
            assert!(
                port.is_some_and(|p| p.device_id == s.uuid),
                "{label}: vif without port"
            );
        }
    }
}

#[tokio::test]
async fn a_fault_at_every_step_ends_where_nova_leaves_it_and_nothing_leaks() {
    let c = start_with(|cfg| cfg.sim_hosts = 2).await;
    let admin = c.login("admin").await;
    let base = used(&c, &admin).await;
    assert_eq!(base.len(), 2, "two hosts");
    let quota = json!({"quota_set": {"instances": 100, "cores": 400, "ram": 1_000_000}});
    let path = format!("/os-quota-sets/{}", admin.project_id);
    let r = c.compute(&admin, Method::PUT, &path, V, Some(quota)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    for (n, k) in CASES.iter().enumerate() {
        run_case(&c, &admin, n, k).await;
        no_leaks(
            &c,
            &admin,
            &base,
            &format!("case {n} {:?} {:?}", k.op, k.faults),
        )
        .await;
    }
    // Deleting everything gives every claim, port and quota back.
    for s in c.app.compute.instances.filter(|i| !i.deleted) {
        let r = c
            .compute(
                &admin,
                Method::DELETE,
                &format!("/servers/{}", s.uuid),
                V,
                None,
            )
            .await;
        assert_eq!(r.status, StatusCode::NO_CONTENT, "delete: {}", r.text);
        c.wait_status(&admin, &s.uuid, &["404"], V).await;
    }
    // A deleted server's claim goes after its record (as Nova's
    // _complete_deletion): wait for the hosts to be empty (10 s limit).
    for _ in 0..1000 {
        if used(&c, &admin).await == base {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    no_leaks(&c, &admin, &base, "after deleting every server").await;
}

#[tokio::test]
async fn a_step_must_be_one_the_operation_has() {
    let c = start_with(|cfg| cfg.sim_hosts = 2).await;
    let admin = c.login("admin").await;
    for body in [
        json!({"operation": "resize", "step": "spawn"}),
        json!({"operation": "reboot", "step": "reboot"}),
        json!({"operation": "live-migration", "step": 3}),
    ] {
        let r = c
            .http
            .post(format!("{}/rova/v1/sim/faults", c.base))
            .header("X-Auth-Token", &admin.token)
            .json(&body)
            .send()
            .await
            .expect("request");
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{body}");
        let v: Value = r.json().await.expect("json");
        assert_eq!(v["badRequest"]["code"], 400, "{v}");
    }
    let listed = sim(&c, &admin, Method::GET, None).await;
    assert_eq!(listed["faults"], json!([]), "nothing was stored");
    sim(
        &c,
        &admin,
        Method::POST,
        Some(json!({"operation": "resize", "step": "finish_resize", "count": 2})),
    )
    .await;
    let listed = sim(&c, &admin, Method::GET, None).await;
    assert_eq!(listed["faults"][0]["step"], "finish_resize", "{listed}");
    assert_eq!(listed["faults"][0]["count"], 2, "{listed}");
}
