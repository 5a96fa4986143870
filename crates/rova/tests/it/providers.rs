//! Compute nodes as `resource_providers` rows: each host a cloud serves
//! is registered with its inventory when the cloud starts, and the fleet
//! (scheduling, `os-hypervisors`, `os-services`) is what the rows hold; a
//! changed configuration changes the rows at the next start. Deleting a
//! compute service takes its host out (refused while servers or
//! unfinished migrations are on it, as Nova refuses), until the host is
//! registered again.

use crate::common::{start_with, TestCloud, User};
use crate::storage::query;
use reqwest::{Method, StatusCode};
use rova::config::SimHostOverride;
use rova::store::Database;
use serde_json::json;

fn database(c: &TestCloud) -> Database {
    c.database
        .clone()
        .unwrap_or_else(|| Database::Sqlite(c.dir.join("rova.sqlite")))
}

/// `(name, vcpu_capacity, memory_capacity, disk_capacity)` of every row.
fn provider_rows(c: &TestCloud) -> Vec<(String, i64, i64, i64)> {
    query(
        &database(c),
        "SELECT name, vcpu_capacity, memory_capacity, disk_capacity FROM resource_providers ORDER BY name",
    )
    .into_iter()
    .map(|r| {
        let n = |i: usize| {
            r[i].as_deref()
                .and_then(|v| v.parse::<i64>().ok())
                .unwrap_or(-1)
        };
        (r[0].clone().unwrap_or_default(), n(1), n(2), n(3))
    })
    .collect()
}

fn host_override(c: &mut rova::config::Config, spec: &str) {
    let (name, o) = SimHostOverride::parse(spec).expect("host spec");
    c.sim_host_overrides.insert(name, o);
}

/// `hypervisor_hostname → vcpus` as `os-hypervisors/detail` shows them.
pub(crate) async fn hypervisors(c: &TestCloud, admin: &User) -> Vec<(String, i64)> {
    let r = c.get(admin, "/os-hypervisors/detail", Some("2.53")).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let mut out: Vec<(String, i64)> = r.body["hypervisors"]
        .as_array()
        .expect("hypervisors")
        .iter()
        .map(|h| {
            (
                h["hypervisor_hostname"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
                h["vcpus"].as_i64().unwrap_or(-1),
            )
        })
        .collect();
    out.sort();
    out
}

/// The nova-compute services listed: `host → id` at 2.53 (uuids).
pub(crate) async fn compute_services(c: &TestCloud, admin: &User) -> Vec<(String, String)> {
    let r = c
        .get(admin, "/os-services?binary=nova-compute", Some("2.53"))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let mut out: Vec<(String, String)> = r.body["services"]
        .as_array()
        .expect("services")
        .iter()
        .map(|s| {
            (
                s["host"].as_str().unwrap_or_default().to_string(),
                s["id"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    out.sort();
    out
}

pub(crate) async fn delete_service(
    c: &TestCloud,
    u: &User,
    id: &str,
    version: &str,
) -> crate::common::Resp {
    c.compute(
        u,
        Method::DELETE,
        &format!("/os-services/{id}"),
        Some(version),
        None,
    )
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn every_host_is_a_resource_provider_row_and_the_rows_are_the_fleet() {
    let cloud = start_with(|c| {
        c.sim_hosts = 3;
        host_override(
            c,
            "rova-sim-2:vcpus=4,cpu_ratio=1.0,ram_mb=4096,ram_ratio=1.0,disk_gb=50,disk_ratio=1.0",
        );
    })
    .await;
    let admin = cloud.login("admin").await;
    let rows = provider_rows(&cloud);
    assert_eq!(rows.len(), 3, "{rows:?}");
    assert_eq!(
        rows[1],
        ("rova-sim-2".to_string(), 4, 4096 - 512, 50),
        "capacity: ratios 1.0, 512 MB reserved"
    );
    let hv = hypervisors(&cloud, &admin).await;
    assert_eq!(
        hv.iter().map(|h| h.0.as_str()).collect::<Vec<_>>(),
        ["rova-sim-1", "rova-sim-2", "rova-sim-3"]
    );
    assert_eq!(hv[1].1, 4);

    // Restarted with another inventory for rova-sim-2 and without
    // rova-sim-3: the row changes; on SQLite (one process) the host no
    // longer served leaves the fleet, on PostgreSQL it stays registered
    // (another process may serve it) until its service is deleted.
    let shared = cloud.database.is_some();
    let cloud = cloud
        .restart_with(|c| {
            c.sim_hosts = 2;
            host_override(c, "rova-sim-2:vcpus=8,cpu_ratio=1.0");
        })
        .await;
    let admin = cloud.login("admin").await;
    let rows = provider_rows(&cloud);
    let names: Vec<&str> = rows.iter().map(|r| r.0.as_str()).collect();
    if shared {
        assert_eq!(names, ["rova-sim-1", "rova-sim-2", "rova-sim-3"]);
    } else {
        assert_eq!(names, ["rova-sim-1", "rova-sim-2"]);
    }
    assert_eq!(rows[1].1, 8, "rova-sim-2's new inventory: {rows:?}");
    let hv = hypervisors(&cloud, &admin).await;
    assert_eq!(hv.len(), names.len(), "{hv:?}");
    assert_eq!(hv[1], ("rova-sim-2".to_string(), 8));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_deleted_compute_service_takes_its_host_out_until_it_registers_again() {
    let cloud = start_with(|c| c.sim_hosts = 2).await;
    let admin = cloud.login("admin").await;
    let demo = cloud.login("demo").await;
    let server = cloud
        .boot(&demo, "s1", Some("2.47"), json!({"networks": "none"}))
        .await;
    assert_eq!(server["status"], "ACTIVE", "{server}");
    let sid = server["id"].as_str().expect("id").to_string();
    let shown = cloud.get(&admin, &format!("/servers/{sid}"), None).await;
    let busy = shown.body["server"]["OS-EXT-SRV-ATTR:host"]
        .as_str()
        .expect("host")
        .to_string();
    let services = compute_services(&cloud, &admin).await;
    assert_eq!(services.len(), 2, "{services:?}");
    let id_of = |host: &str| {
        services
            .iter()
            .find(|s| s.0 == host)
            .map(|s| s.1.clone())
            .expect("service")
    };
    let idle = services
        .iter()
        .map(|s| s.0.clone())
        .find(|h| *h != busy)
        .expect("the other host");

    // Bad requests change nothing.
    let r = delete_service(&cloud, &demo, &id_of(&idle), "2.53").await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text);
    let r = delete_service(&cloud, &admin, "not-a-uuid", "2.53").await;
    assert_eq!(r.fault(400), "Invalid uuid not-a-uuid");
    let r = delete_service(&cloud, &admin, "abc", "2.1").await;
    assert_eq!(
        r.fault(400),
        "Invalid input received: id must be an integer"
    );
    let missing = "7e6b4ae0-96b4-4a37-a3a8-3c1c6b1c0b0d";
    let r = delete_service(&cloud, &admin, missing, "2.53").await;
    assert_eq!(r.fault(404), format!("Service {missing} not found."));
    let r = delete_service(&cloud, &admin, &id_of(&busy), "2.53").await;
    assert_eq!(
        r.fault(409),
        "Unable to delete compute service that is hosting instances. \
         Migrate or delete the instances first."
    );

    // A resize waiting for its confirmation moves the server to the
    // other host; the source still takes part in an unfinished migration.
    let r = cloud
        .post(
            &demo,
            &format!("/servers/{sid}/action"),
            None,
            json!({"resize": {"flavorRef": "2"}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    cloud
        .wait_status(&demo, &sid, &["VERIFY_RESIZE"], None)
        .await;
    let r = delete_service(&cloud, &admin, &id_of(&busy), "2.53").await;
    assert_eq!(
        r.fault(409),
        "Unable to delete compute service that has in-progress migrations. \
         Complete the migrations or delete the instances first."
    );
    let r = cloud
        .post(
            &demo,
            &format!("/servers/{sid}/action"),
            None,
            json!({"confirmResize": null}),
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
    cloud.wait_status(&demo, &sid, &["ACTIVE"], None).await;
    let (busy, idle) = (idle, busy);

    // The host with nothing on it goes: its row, its service, its
    // hypervisor; every new server lands on the other host.
    let r = delete_service(&cloud, &admin, &id_of(&idle), "2.53").await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
    let r = delete_service(&cloud, &admin, &id_of(&idle), "2.53").await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "deleted once: {}", r.text);
    assert_eq!(
        provider_rows(&cloud)
            .iter()
            .map(|r| r.0.as_str())
            .collect::<Vec<_>>(),
        [busy.as_str()]
    );
    let listed = compute_services(&cloud, &admin).await;
    assert_eq!(
        listed.iter().map(|s| s.0.as_str()).collect::<Vec<_>>(),
        [busy.as_str()]
    );
    let hv = hypervisors(&cloud, &admin).await;
    assert_eq!(
        hv.iter().map(|h| h.0.as_str()).collect::<Vec<_>>(),
        [busy.as_str()]
    );
    for n in 0..3 {
        let s = cloud
            .boot(
                &demo,
                &format!("after-{n}"),
                Some("2.47"),
                json!({"networks": "none"}),
            )
            .await;
        assert_eq!(s["status"], "ACTIVE", "{s}");
        let id = s["id"].as_str().expect("id");
        let shown = cloud.get(&admin, &format!("/servers/{id}"), None).await;
        assert_eq!(
            shown.body["server"]["OS-EXT-SRV-ATTR:host"].as_str(),
            Some(busy.as_str())
        );
    }

    // A control service is hidden once deleted.
    let r = cloud
        .get(&admin, "/os-services?binary=nova-scheduler", Some("2.53"))
        .await;
    let scheduler = r.body["services"][0]["id"]
        .as_str()
        .expect("scheduler")
        .to_string();
    let r = delete_service(&cloud, &admin, &scheduler, "2.53").await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
    let r = cloud
        .get(&admin, "/os-services?binary=nova-scheduler", Some("2.53"))
        .await;
    assert_eq!(r.body["services"], json!([]), "{}", r.text);

    // Started again, the process registers what it serves.
    let cloud = cloud.restart_with(|c| c.sim_hosts = 2).await;
    let admin = cloud.login("admin").await;
    assert_eq!(compute_services(&cloud, &admin).await.len(), 2);
    assert_eq!(provider_rows(&cloud).len(), 2);
    let r = cloud
        .get(&admin, "/os-services?binary=nova-scheduler", Some("2.53"))
        .await;
    assert_eq!(
        r.body["services"].as_array().map(Vec::len),
        Some(1),
        "{}",
        r.text
    );
}
