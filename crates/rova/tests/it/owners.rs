//! Settling with several processes on one database: at start a server
//! whose operation a dead process owned is settled (its stop carried out
//! again, its delete resumed), while one a live process owns — a lease
//! `process/<owner>` held by a store this test keeps on the same database
//! — is left alone with its stray port, until that lease is given up: then
//! the running cloud takes it over within a bounded time.

use crate::common::{start, TestCloud, User};
use rova::compute::owners::lease_name;
use rova::store::{Database, Store, Table};
use rova_core::model::Instance;
use rova_core::states::TaskState;
use rova_core::Fault;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

/// Longest wait for anything asynchronous (the takeover runs every 3 s).
const WAIT: Duration = Duration::from_secs(60);

/// Marks server `id` as left by `owner` in the middle of `task`, writing
/// the record through another store on the cloud's database.
async fn leave_mid_operation(table: &Table<Instance>, id: &str, task: TaskState, owner: &str) {
    table
        .update(
            id,
            || Fault::instance_not_found(id),
            |i| {
                i.task_state = Some(task);
                i.op_owner = Some(owner.to_string());
                Ok(())
            },
        )
        .await
        .expect("record written");
}

/// Polls until `done` holds (or fails after [`WAIT`], saying `what`).
async fn until(what: &str, mut done: impl AsyncFnMut() -> bool) {
    let end = Instant::now() + WAIT;
    while !done().await {
        assert!(Instant::now() < end, "never: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn status(cloud: &TestCloud, admin: &User, id: &str) -> (u16, Value) {
    let r = cloud
        .get(admin, &format!("/servers/{id}"), Some("2.47"))
        .await;
    (r.status.as_u16(), r.body["server"].clone())
}

fn record(cloud: &TestCloud, id: &str) -> std::sync::Arc<Instance> {
    cloud.app.compute.instances.get(id).expect("record")
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dead_owners_work_is_settled_and_a_live_owners_is_left_until_it_dies() {
    let cloud = start().await;
    let demo = cloud.login("demo").await;
    let admin = cloud.login("admin").await;
    let mut ids = Vec::new();
    for name in ["dead-stop", "dead-delete", "live-stop", "live-pause"] {
        let s = cloud.boot(&demo, name, Some("2.47"), json!({})).await;
        assert_eq!(s["status"], "ACTIVE", "{s}");
        ids.push(s["id"].as_str().expect("id").to_string());
    }
    let (dead_stop, dead_delete, live_stop, live_pause) = (&ids[0], &ids[1], &ids[2], &ids[3]);
    // A compute port claiming to belong to the live owner's server, which
    // its record does not list (as if allocated just before a write).
    let net = cloud.network_id();
    let r = cloud
        .http
        .post(format!("{}/network/v2.0/ports", cloud.base))
        .header("X-Auth-Token", &admin.token)
        .json(&json!({"port": {"network_id": net, "device_id": live_stop,
            "device_owner": "compute:nova"}}))
        .send()
        .await
        .expect("port");
    assert_eq!(r.status().as_u16(), 201);
    let stray: Value = r.json().await.expect("port body");
    let stray = stray["port"]["id"].as_str().expect("port id").to_string();

    // Another process on the same database: alive while it holds its lease.
    let db = cloud
        .database
        .clone()
        .unwrap_or_else(|| Database::default_in(&cloud.dir));
    let other = Store::connect(&db).expect("a second store on the database");
    let other_lease = lease_name(other.owner());
    assert!(other
        .acquire_lease(&other_lease, Duration::from_secs(600))
        .await
        .expect("lease"));
    // A process of this OS process that never took a lease: dead.
    let dead = format!("{}/gone-{}", std::process::id(), uuid::Uuid::new_v4());
    let table: Table<Instance> = Table::load("instance", &other).expect("instances");
    leave_mid_operation(&table, dead_stop, TaskState::PoweringOff, &dead).await;
    leave_mid_operation(&table, dead_delete, TaskState::Deleting, &dead).await;
    leave_mid_operation(&table, live_stop, TaskState::PoweringOff, other.owner()).await;
    leave_mid_operation(&table, live_pause, TaskState::Pausing, other.owner()).await;

    let cloud = cloud.restart().await;
    let admin = cloud.login("admin").await;
    // At start: the live owner's server and its port are untouched.
    let live = record(&cloud, live_stop);
    assert_eq!(live.task_state, Some(TaskState::PoweringOff));
    assert_eq!(live.op_owner.as_deref(), Some(other.owner()));
    assert!(cloud.app.networks.ports.get(&stray).is_some());
    // The dead owner's: the stop carried out again, the delete finished.
    until("the dead owner's stop is retried", async || {
        let (_, s) = status(&cloud, &admin, dead_stop).await;
        s["status"] == "SHUTOFF" && s["OS-EXT-STS:task_state"].is_null()
    })
    .await;
    assert_eq!(record(&cloud, dead_stop).op_owner, None);
    until("the dead owner's delete is resumed", async || {
        status(&cloud, &admin, dead_delete).await.0 == 404
    })
    .await;
    // Still the live owner's, through a few takeover rounds' worth of
    // writes: nothing was done to it.
    let live = record(&cloud, live_stop);
    assert_eq!(live.task_state, Some(TaskState::PoweringOff));
    assert_eq!(live.op_owner.as_deref(), Some(other.owner()));
    assert!(cloud.app.networks.ports.get(&stray).is_some());
    let (_, s) = status(&cloud, &admin, live_stop).await;
    assert_eq!(s["status"], "ACTIVE", "{s}");
    assert_eq!(s.get("op_owner"), None, "never shown: {s}");
    assert_eq!(
        record(&cloud, live_pause).task_state,
        Some(TaskState::Pausing)
    );

    // The other process dies (its lease is gone): taken over.
    other.release_lease(&other_lease).await.expect("released");
    until("the dead process's stop is taken over", async || {
        let (_, s) = status(&cloud, &admin, live_stop).await;
        s["status"] == "SHUTOFF" && s["OS-EXT-STS:task_state"].is_null()
    })
    .await;
    assert_eq!(record(&cloud, live_stop).op_owner, None);
    // An action that cannot be picked up is cleared, as at start.
    until("the dead process's pause is cleared", async || {
        let i = record(&cloud, live_pause);
        i.task_state.is_none() && i.op_owner.is_none()
    })
    .await;
    until("its stray port is settled", async || {
        cloud.app.networks.ports.get(&stray).is_none()
    })
    .await;
}

/// Puts server `id` back at step `step` of its build as a process that
/// died there left it, writing through a second store on the database as
/// that process would; `clear_vifs` takes its recorded ports away too.
/// The second store and the record as written.
async fn left_by_a_dead_build(
    cloud: &TestCloud,
    id: &str,
    step: TaskState,
    clear_vifs: bool,
) -> (std::sync::Arc<Store>, std::sync::Arc<Instance>) {
    let db = cloud
        .database
        .clone()
        .unwrap_or_else(|| Database::default_in(&cloud.dir));
    let other = Store::connect(&db).expect("a second store on the database");
    let table: Table<Instance> = Table::load("instance", &other).expect("instances");
    let dead = format!("{}/gone-{}", std::process::id(), uuid::Uuid::new_v4());
    let (back, ()) = table
        .update(
            id,
            || Fault::instance_not_found(id),
            |i| {
                i.vm_state = rova_core::states::VmState::Building;
                i.task_state = Some(step);
                i.power_state = rova_core::states::PowerState::NoState;
                i.launched_at = None;
                if clear_vifs {
                    i.vifs.clear();
                }
                i.op_owner = Some(dead.clone());
                Ok(())
            },
        )
        .await
        .expect("record written");
    (other, back)
}

/// A build left by a dead owner is resumed at start and ends ACTIVE with
/// its one port; the server then has no operation owner.
#[tokio::test(flavor = "multi_thread")]
async fn a_dead_owners_build_is_resumed_at_start() {
    let cloud = start().await;
    let demo = cloud.login("demo").await;
    let s = cloud.boot(&demo, "rebuilt", Some("2.47"), json!({})).await;
    let id = s["id"].as_str().expect("id").to_string();
    // Back to the block-device step of its build, as a process that died
    // there left it (ports already recorded).
    left_by_a_dead_build(&cloud, &id, TaskState::BlockDeviceMapping, false).await;
    let cloud = cloud.restart().await;
    let demo = cloud.login("demo").await;
    let s = cloud
        .wait_status(&demo, &id, &["ACTIVE", "ERROR"], Some("2.47"))
        .await;
    assert_eq!(s["status"], "ACTIVE", "{s}");
    let i = record(&cloud, &id);
    assert_eq!(i.op_owner, None);
    assert!(i.launched_at.is_some());
    let ports = cloud
        .app
        .networks
        .ports
        .filter(|p| p.device_id == id && p.device_owner.starts_with("compute:"));
    assert_eq!(ports.len(), 1, "one NIC, one port");
}

/// A build whose process died before its ports were made is resumed with
/// the NICs its request asked for, which its operations row carries (the
/// server's record does not): here a fixed address on the bootstrap
/// network.
#[tokio::test(flavor = "multi_thread")]
async fn a_resumed_build_asks_for_the_nics_its_operation_row_carries() {
    let cloud = start().await;
    let demo = cloud.login("demo").await;
    let net = cloud.network_id();
    let s = cloud.boot(&demo, "nics", Some("2.47"), json!({})).await;
    let id = s["id"].as_str().expect("id").to_string();
    let first_ports: Vec<String> = cloud
        .app
        .networks
        .ports
        .filter(|p| p.device_id == id)
        .iter()
        .map(|p| p.id.clone())
        .collect();
    assert_eq!(first_ports.len(), 1);
    let rec = record(&cloud, &id);
    assert!(
        !rec.system_metadata
            .contains_key(rova::compute::build::NIC_PLAN_KEY),
        "the plan is not in the record"
    );
    // Back to the networking step of its build with no ports recorded, as
    // a process that died there left it; its row asks for 10.0.0.77.
    let (other, back) = left_by_a_dead_build(&cloud, &id, TaskState::Networking, true).await;
    let ops: Table<rova::compute::operations::Operation> =
        Table::load("operation", &other).expect("operations");
    let mut row = rova::compute::operations::start(&back, Some("create"), back.created_at);
    row.args =
        Some(json!({"nics": [{"Network": {"id": net, "fixed_ip": "10.0.0.77", "tag": null}}]}));
    ops.put(&id, row).await.expect("operations row");
    let cloud = cloud.restart().await;
    let demo = cloud.login("demo").await;
    let s = cloud
        .wait_status(&demo, &id, &["ACTIVE", "ERROR"], Some("2.47"))
        .await;
    assert_eq!(s["status"], "ACTIVE", "{s}");
    let addrs: Vec<String> = s["addresses"]
        .as_object()
        .into_iter()
        .flat_map(|m| m.values())
        .flat_map(|a| a.as_array().cloned().unwrap_or_default())
        .filter(|a| a["version"] == 4)
        .filter_map(|a| a["addr"].as_str().map(str::to_string))
        .collect();
    // (The port also has its SLAAC address on the network's IPv6 subnet,
    // as Neutron gives every port one.)
    assert_eq!(addrs, vec!["10.0.0.77".to_string()], "{s}");
    // The first build's port, no longer in the record, was settled away.
    for p in &first_ports {
        assert!(cloud.app.networks.ports.get(p).is_none(), "port {p} left");
    }
    assert!(
        cloud.app.compute.operations.get(&id).is_none(),
        "the row ends with the build"
    );
}
