//! The smaller server APIs over HTTP: metadata items, tags, instance
//! actions, ips, PUT /servers/{id}, delete, and a build that fails in the
//! driver (nova-facts §f, §g, §h).

use crate::common::{self, Resp, TestCloud, User};
use reqwest::{Method, StatusCode};
use rova::compute::driver::InjectedFault;
use serde_json::{json, Map, Value};
use std::collections::BTreeSet;

async fn call(
    cloud: &TestCloud,
    u: &User,
    m: Method,
    path: &str,
    v: Option<&str>,
    body: Option<Value>,
) -> Resp {
    cloud.compute(u, m, path, v, body).await
}

fn keys(v: &Value) -> BTreeSet<String> {
    v.as_object()
        .map(|o| o.keys().cloned().collect())
        .unwrap_or_default()
}

async fn booted(cloud: &TestCloud, u: &User, name: &str) -> String {
    let s = cloud.boot(u, name, None, json!({})).await;
    assert_eq!(s["status"], "ACTIVE", "{s}");
    s["id"].as_str().unwrap().to_string()
}

// ---- metadata ----

#[tokio::test]
async fn metadata_item_api() {
    let cloud = common::start().await;
    let demo = cloud.login("demo").await;
    let s = cloud
        .boot(&demo, "m", None, json!({"metadata": {"a": "1"}}))
        .await;
    let id = s["id"].as_str().unwrap();
    let base = format!("/servers/{id}/metadata");

    let r = cloud.get(&demo, &base, None).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body, json!({"metadata": {"a": "1"}}));
    // POST merges and returns everything.
    let r = cloud
        .post(
            &demo,
            &base,
            None,
            json!({"metadata": {"b": "2", "a": "1x"}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body, json!({"metadata": {"a": "1x", "b": "2"}}));
    // PUT replaces.
    let r = call(
        &cloud,
        &demo,
        Method::PUT,
        &base,
        None,
        Some(json!({"metadata": {"c": "3"}})),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body, json!({"metadata": {"c": "3"}}));
    let r = cloud.get(&demo, &format!("/servers/{id}"), None).await;
    assert_eq!(r.body["server"]["metadata"], json!({"c": "3"}));
    // One item.
    let r = cloud.get(&demo, &format!("{base}/c"), None).await;
    assert_eq!(r.body, json!({"meta": {"c": "3"}}));
    let r = cloud.get(&demo, &format!("{base}/zz"), None).await;
    assert_eq!(r.fault(404), "Metadata item was not found");
    let r = call(
        &cloud,
        &demo,
        Method::PUT,
        &format!("{base}/d"),
        None,
        Some(json!({"meta": {"d": "4"}})),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body, json!({"meta": {"d": "4"}}));
    let r = cloud.get(&demo, &base, None).await;
    assert_eq!(r.body, json!({"metadata": {"c": "3", "d": "4"}}));
    let r = call(
        &cloud,
        &demo,
        Method::PUT,
        &format!("{base}/d"),
        None,
        Some(json!({"meta": {"x": "4"}})),
    )
    .await;
    assert_eq!(r.fault(400), "Request body and URI mismatch");
    let r = call(
        &cloud,
        &demo,
        Method::PUT,
        &format!("{base}/d"),
        None,
        Some(json!({"meta": {"d": "4", "e": "5"}})),
    )
    .await;
    r.fault(400);
    let r = call(
        &cloud,
        &demo,
        Method::PUT,
        &format!("{base}/d"),
        None,
        Some(json!({"meta": {}})),
    )
    .await;
    r.fault(400);
    let r = call(
        &cloud,
        &demo,
        Method::PUT,
        &format!("{base}/d"),
        None,
        Some(json!({"metadata": {"d": "4"}})),
    )
    .await;
    r.fault(400);
    // DELETE one: 204, then 404.
    let r = call(
        &cloud,
        &demo,
        Method::DELETE,
        &format!("{base}/d"),
        None,
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert!(r.text.is_empty());
    let r = call(
        &cloud,
        &demo,
        Method::DELETE,
        &format!("{base}/d"),
        None,
        None,
    )
    .await;
    assert_eq!(r.fault(404), "Metadata item was not found");
    let r = cloud.get(&demo, &base, None).await;
    assert_eq!(r.body, json!({"metadata": {"c": "3"}}));
    // Bodies are checked.
    let r = cloud
        .post(&demo, &base, None, json!({"meta": {"a": "b"}}))
        .await;
    r.fault(400);
    let r = cloud
        .post(&demo, &base, None, json!({"metadata": {"a": 1}}))
        .await;
    r.fault(400);
}

#[tokio::test]
async fn metadata_limits() {
    let cloud = common::start().await;
    let demo = cloud.login("demo").await;
    let id = booted(&cloud, &demo, "lim").await;
    let base = format!("/servers/{id}/metadata");
    // 255 characters for keys and values; 256 is too long.
    let k255 = "k".repeat(255);
    let v255 = "v".repeat(255);
    let r = call(
        &cloud,
        &demo,
        Method::PUT,
        &format!("{base}/{k255}"),
        None,
        Some(json!({"meta": {k255.clone(): v255}})),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let k256 = "k".repeat(256);
    let r = cloud
        .post(&demo, &base, None, json!({"metadata": {k256.clone(): "v"}}))
        .await;
    let m = r.fault(400);
    assert!(m.contains("does not match any of the regexes"), "{m}");
    let r = call(
        &cloud,
        &demo,
        Method::PUT,
        &format!("{base}/{k256}"),
        None,
        Some(json!({"meta": {k256: "v"}})),
    )
    .await;
    r.fault(400);
    let r = cloud
        .post(
            &demo,
            &base,
            None,
            json!({"metadata": {"k": "v".repeat(256)}}),
        )
        .await;
    let m = r.fault(400);
    assert!(
        m.starts_with("Invalid input for field/attribute k.") && m.ends_with("is too long"),
        "{m}"
    );
    let r = call(
        &cloud,
        &demo,
        Method::PUT,
        &format!("{base}/k"),
        None,
        Some(json!({"meta": {"k": "v".repeat(256)}})),
    )
    .await;
    r.fault(400);

    // maxServerMeta (128): in one body, and after merging with what is there.
    let lim = cloud.get(&demo, "/limits", None).await;
    assert_eq!(lim.body["limits"]["absolute"]["maxServerMeta"], 128);
    let many: Map<String, Value> = (0..129).map(|i| (format!("m{i}"), json!("v"))).collect();
    let r = cloud
        .post(&demo, &base, None, json!({"metadata": many}))
        .await;
    assert_eq!(r.fault(403), "Maximum number of metadata items exceeds 128");
    let r = call(
        &cloud,
        &demo,
        Method::PUT,
        &base,
        None,
        Some(json!({"metadata": many})),
    )
    .await;
    assert_eq!(r.fault(403), "Maximum number of metadata items exceeds 128");
    let fill: Map<String, Value> = (0..127).map(|i| (format!("m{i}"), json!("v"))).collect();
    let r = cloud
        .post(&demo, &base, None, json!({"metadata": fill}))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["metadata"].as_object().unwrap().len(), 128);
    let r = cloud
        .post(&demo, &base, None, json!({"metadata": {"one-more": "v"}}))
        .await;
    assert_eq!(r.fault(403), "Maximum number of metadata items exceeds 128");
    let r = call(
        &cloud,
        &demo,
        Method::PUT,
        &format!("{base}/one-more"),
        None,
        Some(json!({"meta": {"one-more": "v"}})),
    )
    .await;
    assert_eq!(r.fault(403), "Maximum number of metadata items exceeds 128");
    // Replacing an existing key at the limit is fine.
    let r = call(
        &cloud,
        &demo,
        Method::PUT,
        &format!("{base}/m0"),
        None,
        Some(json!({"meta": {"m0": "new"}})),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    let r = cloud.get(&demo, &base, None).await;
    assert_eq!(r.body["metadata"].as_object().unwrap().len(), 128);
    assert_eq!(r.body["metadata"]["m0"], "new");
}

#[tokio::test]
async fn metadata_needs_an_unlocked_settled_server() {
    let cloud = common::start().await;
    let demo = cloud.login("demo").await;
    let admin = cloud.login("admin").await;
    let id = booted(&cloud, &demo, "lk").await;
    let r = cloud
        .post(
            &admin,
            &format!("/servers/{id}/action"),
            None,
            json!({"lock": null}),
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    let r = cloud
        .post(
            &demo,
            &format!("/servers/{id}/metadata"),
            None,
            json!({"metadata": {"a": "b"}}),
        )
        .await;
    assert_eq!(r.fault(409), format!("Instance {id} is locked"));
    let r = call(
        &cloud,
        &demo,
        Method::DELETE,
        &format!("/servers/{id}/metadata/a"),
        None,
        None,
    )
    .await;
    r.fault(409);
    // The admin may.
    let r = cloud
        .post(
            &admin,
            &format!("/servers/{id}/metadata"),
            None,
            json!({"metadata": {"a": "b"}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    // A server still building refuses metadata changes (409, vm_state).
    cloud
        .app
        .compute
        .fake
        .as_ref()
        .unwrap()
        .set_slow("spawn", std::time::Duration::from_millis(500))
        .await
        .expect("slow step set");
    let r = cloud
        .post(
            &demo,
            "/servers",
            None,
            json!({"server": {"name": "slow", "imageRef": cloud.image_id(), "flavorRef": "1"}}),
        )
        .await;
    let sid = r.body["server"]["id"].as_str().unwrap().to_string();
    let r = cloud
        .post(
            &demo,
            &format!("/servers/{sid}/metadata"),
            None,
            json!({"metadata": {"a": "b"}}),
        )
        .await;
    assert_eq!(
        r.fault(409),
        format!("Cannot 'update metadata' instance {sid} while it is in vm_state building")
    );
}

// ---- tags ----

#[tokio::test]
async fn server_tags_api() {
    let cloud = common::start().await;
    let demo = cloud.login("demo").await;
    let id = booted(&cloud, &demo, "tags").await;
    let v = Some("2.26");
    let base = format!("/servers/{id}/tags");

    let r = cloud.get(&demo, &base, v).await;
    assert_eq!(r.body, json!({"tags": []}));
    // PUT one: 201 with Location when new, 204 when already there.
    let r = call(&cloud, &demo, Method::PUT, &format!("{base}/a"), v, None).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    assert_eq!(
        r.header("location"),
        Some(format!("{}/compute/v2.1/servers/{id}/tags/a", cloud.base))
    );
    assert!(r.text.is_empty());
    let r = call(&cloud, &demo, Method::PUT, &format!("{base}/a"), v, None).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert!(r.header("location").is_none());
    // GET one: 204 or 404.
    let r = cloud.get(&demo, &format!("{base}/a"), v).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let r = cloud.get(&demo, &format!("{base}/b"), v).await;
    assert_eq!(r.fault(404), format!("Server {id} has no tag 'b'"));
    // PUT all replaces (200 with the list).
    let r = call(
        &cloud,
        &demo,
        Method::PUT,
        &base,
        v,
        Some(json!({"tags": ["x", "y", "x"]})),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body, json!({"tags": ["x", "y"]}));
    let r = cloud.get(&demo, &format!("/servers/{id}"), v).await;
    assert_eq!(r.body["server"]["tags"], json!(["x", "y"]));
    // DELETE one: 204, then 404.
    let r = call(&cloud, &demo, Method::DELETE, &format!("{base}/x"), v, None).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let r = call(&cloud, &demo, Method::DELETE, &format!("{base}/x"), v, None).await;
    assert_eq!(r.fault(404), format!("Instance {id} has no tag 'x'"));
    // DELETE all.
    let r = call(&cloud, &demo, Method::DELETE, &base, v, None).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert_eq!(cloud.get(&demo, &base, v).await.body, json!({"tags": []}));
    // Invalid tags.
    let r = call(&cloud, &demo, Method::PUT, &format!("{base}/a,b"), v, None).await;
    let m = r.fault(400);
    assert!(
        m.starts_with(
            "Tag 'a,b' is invalid. It must be a non empty string without characters '/' and ','."
        ),
        "{m}"
    );
    let long = "t".repeat(61);
    let r = call(
        &cloud,
        &demo,
        Method::PUT,
        &format!("{base}/{long}"),
        v,
        None,
    )
    .await;
    r.fault(400);
    let r = call(
        &cloud,
        &demo,
        Method::PUT,
        &base,
        v,
        Some(json!({"tags": ["ok", "bad/tag"]})),
    )
    .await;
    r.fault(400);
    let r = call(
        &cloud,
        &demo,
        Method::PUT,
        &base,
        v,
        Some(json!({"tag": ["a"]})),
    )
    .await;
    r.fault(400);
    // The reader may look but not change.
    let reader = cloud.login("demo_reader").await;
    assert_eq!(cloud.get(&reader, &base, v).await.status, StatusCode::OK);
    let r = call(&cloud, &reader, Method::PUT, &format!("{base}/r"), v, None).await;
    r.fault(403);
}

#[tokio::test]
async fn server_tags_limit_of_50() {
    let cloud = common::start().await;
    let demo = cloud.login("demo").await;
    let id = booted(&cloud, &demo, "fifty").await;
    let v = Some("2.26");
    let base = format!("/servers/{id}/tags");
    let fifty: Vec<String> = (0..50).map(|i| format!("t{i}")).collect();
    let r = call(
        &cloud,
        &demo,
        Method::PUT,
        &base,
        v,
        Some(json!({"tags": fifty})),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["tags"].as_array().unwrap().len(), 50);
    let limit = "The number of tags exceeded the per-server limit 50";
    let r = call(
        &cloud,
        &demo,
        Method::PUT,
        &format!("{base}/extra"),
        v,
        None,
    )
    .await;
    assert_eq!(r.fault(400), limit);
    // Nova counts before it looks: even an existing tag is refused when full.
    let r = call(&cloud, &demo, Method::PUT, &format!("{base}/t0"), v, None).await;
    assert_eq!(r.fault(400), limit);
    let fifty_one: Vec<String> = (0..51).map(|i| format!("u{i}")).collect();
    let r = call(
        &cloud,
        &demo,
        Method::PUT,
        &base,
        v,
        Some(json!({"tags": fifty_one})),
    )
    .await;
    let m = r.fault(400);
    assert!(
        m.starts_with("Invalid input for field/attribute tags.") && m.ends_with("is too long"),
        "{m}"
    );
    assert_eq!(
        cloud.get(&demo, &base, v).await.body["tags"]
            .as_array()
            .unwrap()
            .len(),
        50
    );
    // After removing one, a new one fits.
    let r = call(
        &cloud,
        &demo,
        Method::DELETE,
        &format!("{base}/t0"),
        v,
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let r = call(
        &cloud,
        &demo,
        Method::PUT,
        &format!("{base}/extra"),
        v,
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED);
}

// ---- instance actions ----

#[tokio::test]
async fn instance_actions_list_and_show() {
    let cloud = common::start().await;
    let demo = cloud.login("demo").await;
    let admin = cloud.login("admin").await;
    let r = cloud
        .post(
            &demo,
            "/servers",
            None,
            json!({"server": {"name": "ia", "imageRef": cloud.image_id(), "flavorRef": "1"}}),
        )
        .await;
    let create_req = r.header("x-openstack-request-id").unwrap();
    let id = r.body["server"]["id"].as_str().unwrap().to_string();
    cloud.wait_status(&demo, &id, &["ACTIVE"], None).await;
    // A second action: stop.
    let stop_req = cloud.stop(&demo, &id).await;

    let base = format!("/servers/{id}/os-instance-actions");
    let r = cloud.get(&demo, &base, None).await;
    assert_eq!(r.status, StatusCode::OK);
    let acts = r.body["instanceActions"].as_array().unwrap().clone();
    assert_eq!(acts.len(), 2, "{}", r.text);
    assert_eq!(acts[0]["action"], "stop", "newest first");
    assert_eq!(acts[0]["request_id"], json!(stop_req));
    assert_eq!(acts[1]["action"], "create");
    assert_eq!(acts[1]["request_id"], json!(create_req));
    // Each action is a row of its own, keyed by the server and its place.
    let db = cloud
        .database
        .clone()
        .unwrap_or_else(|| rova::store::Database::Sqlite(cloud.dir.join("rova.sqlite")));
    let rows = crate::storage::query(
        &db,
        &format!(
            "SELECT id, action FROM instance_actions WHERE instance_uuid = '{id}' ORDER BY id"
        ),
    );
    assert_eq!(
        rows,
        vec![
            vec![Some(format!("{id}/000000")), Some("create".to_string())],
            vec![Some(format!("{id}/000001")), Some("stop".to_string())],
        ]
    );
    let want: BTreeSet<String> = [
        "action",
        "instance_uuid",
        "request_id",
        "user_id",
        "project_id",
        "start_time",
        "message",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    assert_eq!(keys(&acts[1]), want);
    assert_eq!(acts[1]["instance_uuid"], json!(id));
    assert_eq!(acts[1]["user_id"], json!(demo.user_id));
    assert_eq!(acts[1]["project_id"], json!(demo.project_id));
    assert_eq!(acts[1]["message"], Value::Null);
    let start = acts[1]["start_time"].as_str().unwrap();
    assert!(
        chrono::NaiveDateTime::parse_from_str(start, "%Y-%m-%dT%H:%M:%S%.6f").is_ok(),
        "{start}"
    );
    // 2.58 adds updated_at.
    let r = cloud.get(&demo, &base, Some("2.58")).await;
    assert!(r.body["instanceActions"][0].get("updated_at").is_some());

    // Show: events for admins always, for members from 2.51.
    let r = cloud
        .get(&demo, &format!("{base}/{create_req}"), None)
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["instanceAction"]["action"], "create");
    assert!(
        r.body["instanceAction"].get("events").is_none(),
        "{}",
        r.text
    );
    let r = cloud
        .get(&demo, &format!("{base}/{create_req}"), Some("2.51"))
        .await;
    let ev = &r.body["instanceAction"]["events"];
    assert_eq!(
        ev[0]["event"], "compute__do_build_and_run_instance",
        "{}",
        r.text
    );
    assert_eq!(ev[0]["result"], "Success");
    assert!(ev[0]["start_time"].is_string() && ev[0]["finish_time"].is_string());
    assert!(ev[0].get("traceback").is_none(), "no traceback for members");
    let r = cloud
        .get(&admin, &format!("{base}/{create_req}"), None)
        .await;
    let ev = &r.body["instanceAction"]["events"][0];
    assert_eq!(ev["event"], "compute__do_build_and_run_instance");
    assert!(
        ev.get("traceback").is_some(),
        "admins see the traceback key"
    );
    let r = cloud
        .get(&admin, &format!("{base}/{stop_req}"), Some("2.62"))
        .await;
    let ev = &r.body["instanceAction"]["events"][0];
    assert_eq!(ev["event"], "compute_stop_instance");
    assert_eq!(ev["host"], "rova-sim-1");
    assert_eq!(ev["hostId"].as_str().map(str::len), Some(56));
    let r = cloud
        .get(&demo, &format!("{base}/{stop_req}"), Some("2.62"))
        .await;
    let ev = &r.body["instanceAction"]["events"][0];
    assert!(ev.get("host").is_none(), "host is admin-only");
    assert!(ev.get("hostId").is_some());
    // Unknown request id.
    let r = cloud.get(&demo, &format!("{base}/req-bogus"), None).await;
    assert_eq!(r.fault(404), "Action req-bogus not found");
    // Another project's server.
    let alt = cloud.login("alt_demo").await;
    let r = cloud.get(&alt, &format!("{base}/{create_req}"), None).await;
    assert_eq!(r.fault(404), format!("Instance {id} could not be found."));
    // Paging at 2.58.
    let r = cloud
        .get(&demo, &format!("{base}?limit=1"), Some("2.58"))
        .await;
    assert_eq!(r.body["instanceActions"].as_array().unwrap().len(), 1);
    let next = r.body["links"][0]["href"]
        .as_str()
        .expect("next link")
        .to_string();
    assert!(
        next.ends_with(&format!("limit=1&marker={stop_req}")),
        "{next}"
    );
    let r = cloud
        .get(&demo, &format!("{base}?marker={stop_req}"), Some("2.58"))
        .await;
    assert_eq!(r.body["instanceActions"][0]["action"], "create");
    let r = cloud
        .get(&demo, &format!("{base}?marker=req-nope"), Some("2.58"))
        .await;
    assert_eq!(r.fault(400), "Marker req-nope could not be found.");
    let r = cloud
        .get(&demo, &format!("{base}?foo=1"), Some("2.58"))
        .await;
    r.fault(400);
}

// ---- ips ----

#[tokio::test]
async fn ips_and_ips_by_network() {
    let cloud = common::start().await;
    let demo = cloud.login("demo").await;
    let id = booted(&cloud, &demo, "ips").await;
    let r = cloud.get(&demo, &format!("/servers/{id}/ips"), None).await;
    assert_eq!(r.status, StatusCode::OK);
    let addrs = r.body["addresses"].as_object().expect("addresses");
    assert_eq!(addrs.keys().collect::<Vec<_>>(), ["private"]);
    let list = addrs["private"].as_array().unwrap();
    let versions: BTreeSet<i64> = list
        .iter()
        .map(|a| a["version"].as_i64().unwrap())
        .collect();
    assert_eq!(
        versions,
        [4, 6].into_iter().collect(),
        "an IPv4 and an IPv6 address"
    );
    for a in list {
        assert_eq!(
            keys(a),
            ["addr", "version"].iter().map(|s| s.to_string()).collect(),
            "no OS-EXT-IPS keys: {a}"
        );
    }
    // The same addresses as the extended ones in show.
    let s = cloud.get(&demo, &format!("/servers/{id}"), None).await;
    let shown: Vec<&str> = s.body["server"]["addresses"]["private"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            assert_eq!(a["OS-EXT-IPS:type"], "fixed");
            assert!(a["OS-EXT-IPS-MAC:mac_addr"]
                .as_str()
                .is_some_and(|m| m.len() == 17));
            a["addr"].as_str().unwrap()
        })
        .collect();
    let listed: Vec<&str> = list.iter().map(|a| a["addr"].as_str().unwrap()).collect();
    assert_eq!(shown, listed);
    let r = cloud
        .get(&demo, &format!("/servers/{id}/ips/private"), None)
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body, json!({"private": list}));
    let r = cloud
        .get(&demo, &format!("/servers/{id}/ips/public"), None)
        .await;
    assert_eq!(
        r.fault(404),
        "Instance is not a member of specified network"
    );
    // No NICs: empty addresses.
    let s = cloud
        .boot(&demo, "nonet", Some("2.37"), json!({"networks": "none"}))
        .await;
    let nid = s["id"].as_str().unwrap();
    let r = cloud.get(&demo, &format!("/servers/{nid}/ips"), None).await;
    assert_eq!(r.body, json!({"addresses": {}}));
}

// ---- PUT /servers/{id} ----

#[tokio::test]
async fn update_reduced_below_2_75_and_full_from_2_75() {
    let cloud = common::start().await;
    let demo = cloud.login("demo").await;
    let id = booted(&cloud, &demo, "before").await;
    let path = format!("/servers/{id}");

    let r = call(
        &cloud,
        &demo,
        Method::PUT,
        &path,
        None,
        Some(json!({"server": {"name": "after"}})),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let s = &r.body["server"];
    assert_eq!(s["name"], "after");
    let want: BTreeSet<String> = [
        "id",
        "name",
        "status",
        "tenant_id",
        "user_id",
        "created",
        "updated",
        "hostId",
        "links",
        "image",
        "flavor",
        "addresses",
        "accessIPv4",
        "accessIPv6",
        "metadata",
        "OS-DCF:diskConfig",
        "progress",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    assert_eq!(keys(s), want, "the reduced body below 2.75");
    for a in s["addresses"]["private"].as_array().unwrap() {
        assert!(
            a.get("OS-EXT-IPS:type").is_none(),
            "no extended address keys: {a}"
        );
    }
    assert!(r.body["server"].get("adminPass").is_none());
    // The change is stored.
    let g = cloud.get(&demo, &path, None).await;
    assert_eq!(g.body["server"]["name"], "after");

    // 2.75+: the GET representation.
    let r = call(
        &cloud,
        &demo,
        Method::PUT,
        &path,
        Some("2.75"),
        Some(json!({"server": {"accessIPv4": "192.0.2.1"}})),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    let g = cloud.get(&demo, &path, Some("2.75")).await;
    assert_eq!(keys(&r.body["server"]), keys(&g.body["server"]));
    assert_eq!(r.body["server"]["accessIPv4"], "192.0.2.1");
    assert_eq!(r.body["server"]["OS-EXT-STS:vm_state"], "active");
    // Between: microversion fields join the reduced body.
    let r = call(
        &cloud,
        &demo,
        Method::PUT,
        &path,
        Some("2.74"),
        Some(json!({"server": {}})),
    )
    .await;
    let k = keys(&r.body["server"]);
    for f in [
        "locked",
        "description",
        "tags",
        "trusted_image_certificates",
        "server_groups",
        "locked_reason",
    ] {
        assert!(k.contains(f), "{f} at 2.74: {k:?}");
    }
    assert!(!k.contains("OS-EXT-STS:vm_state") && !k.contains("key_name"));
}

#[tokio::test]
async fn update_fields_and_validation() {
    let cloud = common::start().await;
    let demo = cloud.login("demo").await;
    let id = booted(&cloud, &demo, "u").await;
    let path = format!("/servers/{id}");
    let put = |v: Option<&'static str>, body: Value| {
        let cloud = &cloud;
        let demo = &demo;
        let path = path.clone();
        async move { call(cloud, demo, Method::PUT, &path, v, Some(body)).await }
    };
    let r = put(None, json!({"server": {"accessIPv4": "198.51.100.4", "accessIPv6": "2001:db8::4", "OS-DCF:diskConfig": "AUTO"}})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["server"]["accessIPv4"], "198.51.100.4");
    assert_eq!(r.body["server"]["accessIPv6"], "2001:db8::4");
    assert_eq!(r.body["server"]["OS-DCF:diskConfig"], "AUTO");
    let m = put(None, json!({"server": {"accessIPv4": "1.2.3"}}))
        .await
        .fault(400);
    assert_eq!(
        m,
        "Invalid input for field/attribute accessIPv4. Value: 1.2.3. '1.2.3' is not a 'ipv4'"
    );
    let m = put(None, json!({"server": {"name": " x"}}))
        .await
        .fault(400);
    assert!(
        m.starts_with("An invalid 'name' value was provided."),
        "{m}"
    );
    let m = put(None, json!({"server": {"description": "d"}}))
        .await
        .fault(400);
    assert!(
        m.ends_with("Additional properties are not allowed ('description' was unexpected)"),
        "{m}"
    );
    let m = put(None, json!({"name": "x"})).await.fault(400);
    assert!(
        m.contains("'server' is a required property") || m.contains("was unexpected"),
        "{m}"
    );

    // description from 2.19 (null clears it).
    let r = put(Some("2.19"), json!({"server": {"description": "hello"}})).await;
    assert_eq!(r.body["server"]["description"], "hello");
    let r = put(Some("2.19"), json!({"server": {"description": null}})).await;
    assert_eq!(r.body["server"]["description"], Value::Null);
    // hostname from 2.90, an FQDN from 2.94.
    let m = put(Some("2.89"), json!({"server": {"hostname": "h1"}}))
        .await
        .fault(400);
    assert!(m.contains("('hostname' was unexpected)"), "{m}");
    let r = put(Some("2.90"), json!({"server": {"hostname": "new-host"}})).await;
    assert_eq!(r.body["server"]["OS-EXT-SRV-ATTR:hostname"], "new-host");
    put(Some("2.90"), json!({"server": {"hostname": "a.b"}}))
        .await
        .fault(400);
    let r = put(Some("2.94"), json!({"server": {"hostname": "a.b.example"}})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let g = cloud.get(&demo, &path, Some("2.94")).await;
    assert_eq!(g.body["server"]["OS-EXT-SRV-ATTR:hostname"], "a.b.example");
    assert_eq!(g.body["server"]["description"], Value::Null);
    assert_eq!(g.body["server"]["accessIPv4"], "198.51.100.4");
    // Unknown server.
    let r = call(
        &cloud,
        &demo,
        Method::PUT,
        "/servers/7a3e2f1c-0000-4000-8000-000000000000",
        None,
        Some(json!({"server": {}})),
    )
    .await;
    r.fault(404);
}

// ---- delete ----

#[tokio::test]
async fn delete_then_404_and_quota_released() {
    let cloud = common::start().await;
    let demo = cloud.login("demo").await;
    let id = booted(&cloud, &demo, "del").await;
    let ports_before = cloud.app.networks.ports.all().len();
    assert!(ports_before >= 1);
    let lim = cloud.get(&demo, "/limits", None).await;
    assert_eq!(lim.body["limits"]["absolute"]["totalInstancesUsed"], 1);
    let r = call(
        &cloud,
        &demo,
        Method::DELETE,
        &format!("/servers/{id}"),
        None,
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert!(r.text.is_empty());
    cloud.wait_status(&demo, &id, &["404"], None).await;
    let r = cloud.get(&demo, &format!("/servers/{id}"), None).await;
    assert_eq!(r.fault(404), format!("Instance {id} could not be found."));
    let r = call(
        &cloud,
        &demo,
        Method::DELETE,
        &format!("/servers/{id}"),
        None,
        None,
    )
    .await;
    assert_eq!(r.fault(404), format!("Instance {id} could not be found."));
    let r = call(
        &cloud,
        &demo,
        Method::PUT,
        &format!("/servers/{id}"),
        None,
        Some(json!({"server": {"name": "z"}})),
    )
    .await;
    r.fault(404);
    assert_eq!(
        cloud.get(&demo, "/servers", None).await.body,
        json!({"servers": []})
    );
    let lim = cloud.get(&demo, "/limits", None).await;
    assert_eq!(lim.body["limits"]["absolute"]["totalInstancesUsed"], 0);
    assert_eq!(lim.body["limits"]["absolute"]["totalCoresUsed"], 0);
    assert_eq!(
        cloud.app.networks.ports.all().len(),
        ports_before - 1,
        "its port is gone"
    );
    // Actions of a deleted server: readable from 2.21, 404 before.
    let r = cloud
        .get(
            &demo,
            &format!("/servers/{id}/os-instance-actions"),
            Some("2.21"),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let acts: Vec<&str> = r.body["instanceActions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["action"].as_str().unwrap())
        .collect();
    assert_eq!(acts, ["delete", "create"]);
    let r = cloud
        .get(
            &demo,
            &format!("/servers/{id}/os-instance-actions"),
            Some("2.20"),
        )
        .await;
    r.fault(404);
    // A locked server cannot be deleted by its owner.
    let id2 = booted(&cloud, &demo, "locked").await;
    let r = cloud
        .post(
            &demo,
            &format!("/servers/{id2}/action"),
            None,
            json!({"lock": null}),
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
    let r = call(
        &cloud,
        &demo,
        Method::DELETE,
        &format!("/servers/{id2}"),
        None,
        None,
    )
    .await;
    assert_eq!(r.fault(409), format!("Instance {id2} is locked"));
}

// ---- a build that fails ----

#[tokio::test]
async fn build_failure_ends_in_error_with_a_fault() {
    let cloud = common::start().await;
    let demo = cloud.login("demo").await;
    let admin = cloud.login("admin").await;
    let fake = cloud.app.compute.fake.as_ref().expect("the fake driver");
    fake.inject(InjectedFault {
        op: "spawn".into(),
        count: 1,
        message: "Simulated spawn failure".into(),
        host: None,
        step: None,
    })
    .await
    .expect("fault injected");
    let r = cloud
        .post(
            &demo,
            "/servers",
            None,
            json!({"server": {"name": "doomed", "imageRef": cloud.image_id(), "flavorRef": "1"}}),
        )
        .await;
    assert_eq!(
        r.status,
        StatusCode::ACCEPTED,
        "a driver failure is not an API error"
    );
    let req = r.header("x-openstack-request-id").unwrap();
    let id = r.body["server"]["id"].as_str().unwrap().to_string();
    let s = cloud
        .wait_status(&demo, &id, &["ERROR", "ACTIVE"], None)
        .await;
    assert_eq!(s["status"], "ERROR");
    assert_eq!(s["OS-EXT-STS:vm_state"], "error");
    assert_eq!(s["OS-EXT-STS:task_state"], Value::Null);
    assert!(s.get("progress").is_none(), "no progress in ERROR");

    // Member: code, message, created; details hidden for a 500.
    let f = &s["fault"];
    assert_eq!(
        keys(f),
        ["code", "created", "message"]
            .iter()
            .map(|s| s.to_string())
            .collect(),
        "{f}"
    );
    assert_eq!(f["code"], 500);
    assert_eq!(f["message"], "Simulated spawn failure");
    let created = f["created"].as_str().unwrap();
    assert!(
        chrono::DateTime::parse_from_rfc3339(created).is_ok() && created.ends_with('Z'),
        "{created}"
    );
    // Admin: details too.
    let a = cloud.get(&admin, &format!("/servers/{id}"), None).await;
    let f = &a.body["server"]["fault"];
    assert_eq!(
        keys(f),
        ["code", "created", "details", "message"]
            .iter()
            .map(|s| s.to_string())
            .collect(),
        "{f}"
    );
    assert!(f["details"].as_str().is_some_and(|d| !d.is_empty()));
    // Detail lists carry the fault too.
    let d = cloud.get(&demo, "/servers/detail", None).await;
    assert_eq!(
        d.body["servers"][0]["fault"]["message"],
        "Simulated spawn failure"
    );

    // The action records the error.
    let r = cloud
        .get(
            &admin,
            &format!("/servers/{id}/os-instance-actions/{req}"),
            None,
        )
        .await;
    let act = &r.body["instanceAction"];
    assert_eq!(act["action"], "create");
    assert_eq!(act["message"], "Error", "{}", r.text);
    assert_eq!(
        act["events"][0]["event"],
        "compute__do_build_and_run_instance"
    );
    assert_eq!(act["events"][0]["result"], "Error");
    assert!(act["events"][0]["traceback"].is_string());
    let r = cloud
        .get(
            &demo,
            &format!("/servers/{id}/os-instance-actions/{req}"),
            Some("2.51"),
        )
        .await;
    assert!(r.body["instanceAction"]["events"][0]
        .get("traceback")
        .is_none());

    // Only the one build failed; the next one works. The failed server can be deleted.
    let ok = cloud.boot(&demo, "fine", None, json!({})).await;
    assert_eq!(ok["status"], "ACTIVE");
    assert!(ok.get("fault").is_none());
    let r = call(
        &cloud,
        &demo,
        Method::DELETE,
        &format!("/servers/{id}"),
        None,
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    cloud.wait_status(&demo, &id, &["404"], None).await;
    let lim = cloud.get(&demo, "/limits", None).await;
    assert_eq!(lim.body["limits"]["absolute"]["totalInstancesUsed"], 1);
}

#[tokio::test]
async fn a_fault_that_is_not_500_shows_details_to_everyone() {
    // Nova hides `details` from non-admins only for code 500. Rova's
    // driver faults are 500s, so write a 4xx fault directly and read it back.
    let cloud = common::start().await;
    let demo = cloud.login("demo").await;
    let id = booted(&cloud, &demo, "f").await;
    let now = cloud.app.clock.now();
    cloud
        .app
        .compute
        .instances
        .update(
            &id,
            || rova_core::Fault::not_found("x"),
            |i| {
                i.vm_state = rova_core::states::VmState::Error;
                i.fault = Some(rova_core::model::InstanceFault {
                    code: 404,
                    message: "Image not found".into(),
                    details: Some("the details".into()),
                    created: now,
                });
                Ok(())
            },
        )
        .await
        .unwrap();
    let r = cloud.get(&demo, &format!("/servers/{id}"), None).await;
    assert_eq!(r.body["server"]["status"], "ERROR");
    assert_eq!(r.body["server"]["fault"]["details"], "the details");
    assert_eq!(r.body["server"]["fault"]["code"], 404);
}

#[tokio::test]
async fn metadata_quota_on_rebuild_and_create_image() {
    let cloud = common::start().await;
    let demo = cloud.login("demo").await;
    let id = booted(&cloud, &demo, "rb").await;
    let many: Map<String, Value> = (0..129).map(|i| (format!("m{i}"), json!("v"))).collect();
    let action = format!("/servers/{id}/action");
    let r = cloud
        .post(
            &demo,
            &action,
            None,
            json!({"rebuild": {"imageRef": cloud.image_id(), "metadata": many}}),
        )
        .await;
    assert_eq!(r.fault(403), "Maximum number of metadata items exceeds 128");
    // createImage checks the image metadata quota below 2.39 only.
    let r = cloud
        .post(
            &demo,
            &action,
            Some("2.38"),
            json!({"createImage": {"name": "snap", "metadata": many}}),
        )
        .await;
    assert_eq!(r.fault(403), "Image metadata limit exceeded");
    let r = cloud
        .post(
            &demo,
            &action,
            Some("2.39"),
            json!({"createImage": {"name": "snap", "metadata": many}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
}
