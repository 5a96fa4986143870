//! The operations rows: a server with an operation in flight has its row
//! in the database (kind, step, owner, attempts) and a finished operation
//! leaves none; a build taken up too often after its process died is given
//! up (ERROR with a fault) rather than resumed again; a row left behind by
//! a crash is removed at start.

use crate::common::{start, TestCloud};
use crate::storage::query;
use rova::compute::operations::Operation;
use rova::store::{Database, Store, Table};
use rova_core::model::Instance;
use rova_core::states::{PowerState, TaskState, VmState};
use rova_core::Fault;
use serde_json::json;

fn database(cloud: &TestCloud) -> Database {
    cloud
        .database
        .clone()
        .unwrap_or_else(|| Database::default_in(&cloud.dir))
}

/// Writes server `id`'s task state as an operation's step would.
async fn set_task(cloud: &TestCloud, id: &str, task: Option<TaskState>) {
    let now = cloud.app.clock.now();
    cloud
        .app
        .compute
        .update_instance(id, now, |i| {
            i.task_state = task;
            Ok(())
        })
        .await
        .expect("server written");
}

/// The stored operations rows: `(id, kind, step, owner, attempts)`.
fn rows(db: &Database) -> Vec<Vec<Option<String>>> {
    query(
        db,
        "SELECT id, kind, step, owner, attempts FROM operations ORDER BY id",
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn a_server_has_its_operation_row_exactly_while_one_is_in_flight() {
    let cloud = start().await;
    let demo = cloud.login("demo").await;
    let db = database(&cloud);
    let a = cloud.boot(&demo, "a", Some("2.47"), json!({})).await;
    let a = a["id"].as_str().expect("id").to_string();
    // The status reads the copy, which changes before the commit: the
    // build's last write (and the row's removal, queued before it) land
    // soon after.
    no_rows_soon(&db).await;
    // A write that starts an operation queues its row first: by the time
    // the server's write is durable, so is the row.
    set_task(&cloud, &a, Some(TaskState::Pausing)).await;
    let owner = cloud.app.compute.owner().to_string();
    assert_eq!(
        rows(&db),
        vec![vec![
            Some(a.clone()),
            Some("pausing".into()),
            Some("pausing".into()),
            Some(owner),
            Some("0".into())
        ]]
    );
    let op_id = cloud
        .app
        .compute
        .operations
        .get(&a)
        .expect("row")
        .op_id
        .clone();
    // A step moves it; the operation stays the same one.
    set_task(&cloud, &a, Some(TaskState::Unpausing)).await;
    let row = cloud.app.compute.operations.get(&a).expect("row");
    assert_eq!((row.step.as_str(), &row.op_id), ("unpausing", &op_id));
    set_task(&cloud, &a, None).await;
    // The row's removal was queued before the server's write, as its
    // start was: both are durable.
    assert_eq!(
        rows(&db),
        Vec::<Vec<Option<String>>>::new(),
        "nothing in flight"
    );
    let b = cloud.boot(&demo, "b", Some("2.47"), json!({})).await;
    let b = b["id"].as_str().expect("id").to_string();

    // Real actions through the API, each to its end: no row is left.
    for (body, want) in [
        (json!({"pause": null}), "PAUSED"),
        (json!({"unpause": null}), "ACTIVE"),
        (json!({"os-stop": null}), "SHUTOFF"),
        (json!({"os-start": null}), "ACTIVE"),
        (json!({"reboot": {"type": "HARD"}}), "ACTIVE"),
    ] {
        let r = cloud
            .post(&demo, &format!("/servers/{b}/action"), None, body)
            .await;
        assert_eq!(r.status.as_u16(), 202, "{}", r.text);
        cloud.wait_status(&demo, &b, &[want], None).await;
        // The status shows once the task is cleared; wait for the row.
        let end = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while cloud.app.compute.operations.get(&b).is_some() {
            assert!(std::time::Instant::now() < end, "the row of {b} stays");
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    }
    let r = cloud
        .compute(
            &demo,
            reqwest::Method::DELETE,
            &format!("/servers/{b}"),
            None,
            None,
        )
        .await;
    assert_eq!(r.status.as_u16(), 204, "{}", r.text);
    cloud.wait_status(&demo, &b, &["404"], None).await;
    let _ = cloud.boot(&demo, "c", Some("2.47"), json!({})).await;
    no_rows_soon(&db).await;
}

/// Waits (30 s at most) until no operations row is stored.
async fn no_rows_soon(db: &Database) {
    let end = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !rows(db).is_empty() {
        assert!(std::time::Instant::now() < end, "rows left: {:?}", rows(db));
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}

/// Leaves server `id` mid-build, owned by a dead process, with an
/// operations row saying it was taken up `attempts` times already.
async fn leave_mid_build(db: &Database, id: &str, attempts: u32) {
    let other = Store::connect(db).expect("a second store on the database");
    let servers: Table<Instance> = Table::load("instance", &other).expect("instances");
    let ops: Table<Operation> = Table::load("operation", &other).expect("operations");
    let dead = format!("{}/gone-{}", std::process::id(), uuid::Uuid::new_v4());
    let (inst, _) = servers
        .update(
            id,
            || Fault::instance_not_found(id),
            |i| {
                i.vm_state = VmState::Building;
                i.task_state = Some(TaskState::Spawning);
                i.power_state = PowerState::NoState;
                i.launched_at = None;
                i.op_owner = Some(dead.clone());
                Ok(())
            },
        )
        .await
        .expect("record written");
    let mut row = rova::compute::operations::start(&inst, Some("create"), chrono::Utc::now());
    row.attempts = attempts;
    ops.put(id, row).await.expect("row written");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_build_taken_up_too_often_is_given_up() {
    let cloud = start().await;
    let demo = cloud.login("demo").await;
    let db = database(&cloud);
    let twice = cloud.boot(&demo, "twice", Some("2.47"), json!({})).await;
    let twice = twice["id"].as_str().expect("id").to_string();
    let thrice = cloud.boot(&demo, "thrice", Some("2.47"), json!({})).await;
    let thrice = thrice["id"].as_str().expect("id").to_string();
    let idle = cloud.boot(&demo, "idle", Some("2.47"), json!({})).await;
    let idle = idle["id"].as_str().expect("id").to_string();
    leave_mid_build(&db, &twice, 2).await;
    leave_mid_build(&db, &thrice, rova_core::restart::MAX_TAKE_UPS).await;
    // A row whose server finished (its removal was lost in a crash).
    {
        let other = Store::connect(&db).expect("store");
        let ops: Table<Operation> = Table::load("operation", &other).expect("operations");
        let servers: Table<Instance> = Table::load("instance", &other).expect("instances");
        let inst = servers.get(&idle).expect("idle");
        let mut row = rova::compute::operations::start(&inst, Some("pause"), chrono::Utc::now());
        row.owner = Some("1/long-gone".into());
        ops.put(&idle, row).await.expect("stale row");
    }
    let cloud = cloud.restart().await;
    let demo = cloud.login("demo").await;
    let s = cloud
        .wait_status(&demo, &twice, &["ACTIVE", "ERROR"], Some("2.47"))
        .await;
    assert_eq!(s["status"], "ACTIVE", "taken up a third time: {s}");
    let s = cloud
        .wait_status(&demo, &thrice, &["ACTIVE", "ERROR"], Some("2.47"))
        .await;
    assert_eq!(s["status"], "ERROR", "{s}");
    assert_eq!(s["OS-EXT-STS:task_state"], json!(null));
    assert!(
        s["fault"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("taken up 3 times")),
        "{s}"
    );
    // Nothing is left in flight, and no row outlives its operation.
    no_rows_soon(&database(&cloud)).await;
    assert!(cloud.app.compute.operations.get(&idle).is_none());
}
