//! The admin-side compute APIs over HTTP: private flavors and
//! `os-flavor-access`, flavor extra specs and PUT /flavors/{id}, server
//! diagnostics, server external events, and the 2.75 rebuild body.

use crate::common::{self, Resp, TestCloud, User};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use std::collections::BTreeSet;

fn keys(v: &Value) -> BTreeSet<String> {
    v.as_object()
        .map(|o| o.keys().cloned().collect())
        .unwrap_or_default()
}

async fn put(cloud: &TestCloud, u: &User, path: &str, v: Option<&str>, body: Value) -> Resp {
    cloud.compute(u, Method::PUT, path, v, Some(body)).await
}

async fn delete(cloud: &TestCloud, u: &User, path: &str, v: Option<&str>) -> Resp {
    cloud.compute(u, Method::DELETE, path, v, None).await
}

/// Creates a flavor as admin and returns its id.
async fn flavor(cloud: &TestCloud, admin: &User, id: &str, is_public: Value) -> String {
    let r = cloud
        .post(
            admin,
            "/flavors",
            None,
            json!({"flavor": {"name": format!("fl-{id}"), "id": id, "ram": 512, "vcpus": 1,
                              "disk": 1, "os-flavor-access:is_public": is_public}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    r.body["flavor"]["id"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

async fn detail_ids(cloud: &TestCloud, u: &User, query: &str) -> BTreeSet<String> {
    let r = cloud.get(u, &format!("/flavors/detail{query}"), None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    r.body["flavors"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|f| f["id"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

async fn access(cloud: &TestCloud, u: &User, id: &str, action: &str, tenant: &str) -> Resp {
    cloud
        .post(
            u,
            &format!("/flavors/{id}/action"),
            None,
            json!({ action: {"tenant": tenant} }),
        )
        .await
}

async fn booted(cloud: &TestCloud, u: &User, name: &str) -> Value {
    let s = cloud.boot(u, name, None, json!({})).await;
    assert_eq!(s["status"], "ACTIVE", "{s}");
    s
}

// ---- private flavors ----

#[tokio::test]
async fn private_flavors_hidden_from_other_projects() {
    let cloud = common::start().await;
    let admin = cloud.login("admin").await;
    let demo = cloud.login("demo").await;
    // Nova's boolean strings are accepted for is_public.
    let private = flavor(&cloud, &admin, "priv", json!("False")).await;
    let public = flavor(&cloud, &admin, "pub", json!("True")).await;
    let r = cloud
        .post(
            &admin,
            "/flavors",
            None,
            json!({"flavor": {"name": "x", "ram": 1, "vcpus": 1, "disk": 0,
                              "os-flavor-access:is_public": "maybe"}}),
        )
        .await;
    let m = r.fault(400);
    assert!(m.contains("os-flavor-access:is_public"), "{m}");

    // The owner of nothing: demo sees only public flavors.
    let ids = detail_ids(&cloud, &demo, "").await;
    assert!(ids.contains(&public) && !ids.contains(&private), "{ids:?}");
    // A non-admin's is_public filter is ignored.
    let ids = detail_ids(&cloud, &demo, "?is_public=false").await;
    assert!(!ids.contains(&private), "{ids:?}");
    cloud
        .get(&demo, &format!("/flavors/{private}"), None)
        .await
        .fault(404);
    cloud
        .get(&demo, &format!("/flavors/{private}/os-extra_specs"), None)
        .await
        .fault(404);
    // Booting from it is a bad request, as in Nova.
    let r = cloud
        .post(
            &demo,
            "/servers",
            None,
            json!({"server": {"name": "p", "imageRef": cloud.image_id(), "flavorRef": private}}),
        )
        .await;
    r.fault(400);

    // Admin: absent means public (or granted to the admin project), false
    // only private, none everything; any other word is refused.
    let ids = detail_ids(&cloud, &admin, "").await;
    assert!(ids.contains(&public) && !ids.contains(&private));
    for word in ["f", "false", "no", "0", "FALSE", "off"] {
        let ids = detail_ids(&cloud, &admin, &format!("?is_public={word}")).await;
        assert!(ids.contains(&private) && !ids.contains(&public), "{word}");
    }
    for word in ["t", "true", "yes", "1", "On"] {
        let ids = detail_ids(&cloud, &admin, &format!("?is_public={word}")).await;
        assert!(ids.contains(&public) && !ids.contains(&private), "{word}");
    }
    let ids = detail_ids(&cloud, &admin, "?is_public=None").await;
    assert!(ids.contains(&public) && ids.contains(&private));
    let m = cloud
        .get(&admin, "/flavors?is_public=maybe", None)
        .await
        .fault(400);
    assert_eq!(m, "Invalid is_public filter [maybe]");
    // The admin still sees it directly.
    let r = cloud
        .get(&admin, &format!("/flavors/{private}"), None)
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["flavor"]["os-flavor-access:is_public"], json!(false));
}

#[tokio::test]
async fn flavor_access_grants_and_revokes() {
    let cloud = common::start().await;
    let admin = cloud.login("admin").await;
    let demo = cloud.login("demo").await;
    let alt = cloud.login("alt_demo").await;
    let private = flavor(&cloud, &admin, "10", json!(false)).await;
    let public = flavor(&cloud, &admin, "11", json!(true)).await;
    let list = format!("/flavors/{private}/os-flavor-access");

    let r = cloud.get(&admin, &list, None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body, json!({"flavor_access": []}));
    let m = cloud
        .get(&admin, &format!("/flavors/{public}/os-flavor-access"), None)
        .await
        .fault(404);
    assert_eq!(m, "Access list not available for public flavors.");
    cloud.get(&demo, &list, None).await.fault(403);
    cloud
        .get(&admin, "/flavors/nope/os-flavor-access", None)
        .await
        .fault(404);

    // Grant demo: echoed with the whole list; demo now sees and uses it.
    let r = access(
        &cloud,
        &admin,
        &private,
        "addTenantAccess",
        &demo.project_id,
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(
        r.body,
        json!({"flavor_access": [{"flavor_id": private, "tenant_id": demo.project_id}]})
    );
    let m = access(
        &cloud,
        &admin,
        &private,
        "addTenantAccess",
        &demo.project_id,
    )
    .await
    .fault(409);
    assert!(
        m.starts_with("Flavor access already exists for flavor"),
        "{m}"
    );
    assert!(detail_ids(&cloud, &demo, "").await.contains(&private));
    assert!(!detail_ids(&cloud, &alt, "").await.contains(&private));
    let r = cloud.get(&demo, &format!("/flavors/{private}"), None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let s = cloud
        .boot(&demo, "granted", None, json!({"flavorRef": private}))
        .await;
    assert_eq!(s["status"], "ACTIVE", "{s}");
    // Admin's default listing includes flavors granted to its project only.
    assert!(!detail_ids(&cloud, &admin, "").await.contains(&private));

    // Non-admins may not change the list.
    access(&cloud, &demo, &private, "addTenantAccess", &alt.project_id)
        .await
        .fault(403);
    access(
        &cloud,
        &demo,
        &private,
        "removeTenantAccess",
        &demo.project_id,
    )
    .await
    .fault(403);
    // Bad requests: unknown project, unknown action, bad body.
    let m = access(
        &cloud,
        &admin,
        &private,
        "addTenantAccess",
        "no-such-project",
    )
    .await
    .fault(400);
    assert_eq!(m, "Project ID no-such-project is not a valid project.");
    access(&cloud, &admin, &private, "frobnicate", &demo.project_id)
        .await
        .fault(400);
    cloud
        .post(
            &admin,
            &format!("/flavors/{private}/action"),
            None,
            json!({"addTenantAccess": {"tenant": ""}}),
        )
        .await
        .fault(400);
    access(&cloud, &admin, "nope", "addTenantAccess", &alt.project_id)
        .await
        .fault(404);

    // Public flavors: allowed below 2.7, a conflict from 2.7.
    let r = cloud
        .post(
            &admin,
            &format!("/flavors/{public}/action"),
            Some("2.7"),
            json!({"addTenantAccess": {"tenant": alt.project_id}}),
        )
        .await;
    assert_eq!(
        r.fault(409),
        "Can not add access to a public flavor.",
        "{}",
        r.text
    );
    let r = access(&cloud, &admin, &public, "addTenantAccess", &alt.project_id).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);

    // Revoke: gone from demo's view; a second revoke is not found.
    let r = access(
        &cloud,
        &admin,
        &private,
        "removeTenantAccess",
        &demo.project_id,
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body, json!({"flavor_access": []}));
    assert!(!detail_ids(&cloud, &demo, "").await.contains(&private));
    let m = access(
        &cloud,
        &admin,
        &private,
        "removeTenantAccess",
        &demo.project_id,
    )
    .await
    .fault(404);
    assert!(m.starts_with("Flavor access not found for"), "{m}");
}

// ---- extra specs and flavor update ----

#[tokio::test]
async fn extra_specs_follow_nova_codes_and_bodies() {
    let cloud = common::start().await;
    let admin = cloud.login("admin").await;
    let demo = cloud.login("demo").await;
    let id = flavor(&cloud, &admin, "es", json!(true)).await;
    let base = format!("/flavors/{id}/os-extra_specs");

    // Create echoes the request (numbers stay numbers); reads give text.
    let body = json!({"extra_specs": {"hw:numa_nodes": 1, "hw:cpu_policy": "shared"}});
    let r = cloud.post(&admin, &base, None, body.clone()).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body, body);
    let r = cloud.get(&demo, &base, None).await;
    assert_eq!(
        r.body,
        json!({"extra_specs": {"hw:numa_nodes": "1", "hw:cpu_policy": "shared"}})
    );
    let r = cloud
        .get(&demo, &format!("{base}/hw:numa_nodes"), None)
        .await;
    assert_eq!(r.body, json!({"hw:numa_nodes": "1"}));

    // Update: one key, the URI's; the body comes back.
    let r = put(
        &cloud,
        &admin,
        &format!("{base}/hw:numa_nodes"),
        None,
        json!({"hw:numa_nodes": "2"}),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body, json!({"hw:numa_nodes": "2"}));
    let m = put(
        &cloud,
        &admin,
        &format!("{base}/hw:numa_nodes"),
        None,
        json!({"hw:cpu_policy": "2"}),
    )
    .await
    .fault(400);
    assert_eq!(m, "Request body and URI mismatch");
    put(
        &cloud,
        &admin,
        &format!("{base}/a"),
        None,
        json!({"a": "1", "b": "2"}),
    )
    .await
    .fault(400);

    // Schema: bad keys, booleans, missing wrapper.
    for bad in [
        json!({"extra_specs": {"bad/key": "1"}}),
        json!({"extra_specs": {"k": true}}),
        json!({"extra_specs": {"k": "x".repeat(256)}}),
        json!({"specs": {}}),
    ] {
        cloud.post(&admin, &base, None, bad).await.fault(400);
    }
    // Policy.
    cloud
        .post(&demo, &base, None, json!({"extra_specs": {"a": "b"}}))
        .await
        .fault(403);
    delete(&cloud, &demo, &format!("{base}/hw:numa_nodes"), None)
        .await
        .fault(403);

    // Delete answers 200 with no body (not 202).
    let r = delete(&cloud, &admin, &format!("{base}/hw:numa_nodes"), None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert!(r.text.is_empty(), "{}", r.text);
    let m = delete(&cloud, &admin, &format!("{base}/hw:numa_nodes"), None)
        .await
        .fault(404);
    assert_eq!(
        m,
        format!("Flavor {id} has no extra specs with key hw:numa_nodes.")
    );
    let r = cloud.get(&demo, &base, None).await;
    assert_eq!(r.body, json!({"extra_specs": {"hw:cpu_policy": "shared"}}));
}

#[tokio::test]
async fn flavor_update_sets_description_from_2_55() {
    let cloud = common::start().await;
    let admin = cloud.login("admin").await;
    let demo = cloud.login("demo").await;
    let r = cloud
        .post(
            &admin,
            "/flavors",
            Some("2.55"),
            json!({"flavor": {"name": "d", "id": "d1", "ram": 512, "vcpus": 1, "disk": 1,
                              "description": "first"}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["flavor"]["description"], "first");
    // No description below 2.55 (schema refuses the key).
    cloud
        .post(
            &admin,
            "/flavors",
            Some("2.54"),
            json!({"flavor": {"name": "e", "ram": 512, "vcpus": 1, "disk": 1,
                              "description": "x"}}),
        )
        .await
        .fault(400);

    let body = json!({"flavor": {"description": "new"}});
    let r = put(&cloud, &admin, "/flavors/d1", Some("2.55"), body.clone()).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["flavor"]["description"], "new");
    assert!(r.body["flavor"].get("extra_specs").is_none());
    let r = put(&cloud, &admin, "/flavors/d1", Some("2.61"), body.clone()).await;
    assert_eq!(r.body["flavor"]["extra_specs"], json!({}));
    let r = put(
        &cloud,
        &admin,
        "/flavors/d1",
        Some("2.55"),
        json!({"flavor": {"description": null}}),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["flavor"]["description"], Value::Null);

    // Not there below 2.55; admin only; strict body; unknown flavor.
    put(&cloud, &admin, "/flavors/d1", Some("2.54"), body.clone())
        .await
        .fault(404);
    put(&cloud, &demo, "/flavors/d1", Some("2.55"), body.clone())
        .await
        .fault(403);
    for bad in [
        json!({"flavor": {}}),
        json!({"flavor": {"description": "x", "name": "y"}}),
        json!({"flavor": {"description": 5}}),
    ] {
        put(&cloud, &admin, "/flavors/d1", Some("2.55"), bad)
            .await
            .fault(400);
    }
    put(&cloud, &admin, "/flavors/nope", Some("2.55"), body)
        .await
        .fault(404);
    // Delete stays 202.
    let r = delete(&cloud, &admin, "/flavors/d1", None).await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
}

// ---- diagnostics ----

#[tokio::test]
async fn server_diagnostics_describe_the_guest() {
    let cloud = common::start().await;
    let admin = cloud.login("admin").await;
    let demo = cloud.login("demo").await;
    let s = booted(&cloud, &demo, "diag").await;
    let id = s["id"].as_str().unwrap_or_default().to_string();
    let path = format!("/servers/{id}/diagnostics");
    let mac = s["addresses"]
        .as_object()
        .and_then(|a| a.values().next())
        .and_then(|l| l[0]["OS-EXT-IPS-MAC:mac_addr"].as_str())
        .unwrap_or_default()
        .to_string();
    assert!(!mac.is_empty(), "{s}");

    cloud.get(&demo, &path, None).await.fault(403);
    cloud
        .get(
            &admin,
            "/servers/00000000-0000-0000-0000-000000000000/diagnostics",
            None,
        )
        .await
        .fault(404);

    // Before 2.48: Nova's fake-driver style per-device dict (m1.tiny).
    let r = cloud.get(&admin, &path, None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["memory"], json!(512 * 1024));
    for k in [
        "cpu0_time",
        "vda_read",
        "vda_write_req",
        "vnet0_rx",
        "vnet0_tx_packets",
    ] {
        assert!(r.body.get(k).is_some(), "{k}: {}", r.text);
    }
    assert!(r.body.get("cpu1_time").is_none());

    // 2.48+: the standardized document.
    let r = cloud.get(&admin, &path, Some("2.48")).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let d = &r.body;
    let want: BTreeSet<String> = [
        "state",
        "driver",
        "hypervisor",
        "hypervisor_os",
        "uptime",
        "config_drive",
        "num_cpus",
        "num_nics",
        "num_disks",
        "cpu_details",
        "nic_details",
        "disk_details",
        "memory_details",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    assert_eq!(keys(d), want);
    assert_eq!(d["state"], "running");
    assert_eq!(d["driver"], "libvirt");
    assert_eq!(d["config_drive"], json!(false));
    assert_eq!(d["num_cpus"], json!(1));
    assert_eq!(d["num_nics"], json!(1));
    assert_eq!(d["num_disks"], json!(1));
    assert_eq!(d["nic_details"][0]["mac_address"], json!(mac));
    assert_eq!(keys(&d["nic_details"][0]).len(), 11);
    assert_eq!(keys(&d["disk_details"][0]).len(), 5);
    assert_eq!(keys(&d["cpu_details"][0]).len(), 3);
    assert_eq!(d["memory_details"]["maximum"], json!(512 * 1024));

    // Only a running guest has diagnostics.
    cloud.stop(&demo, &id).await;
    let m = cloud.get(&admin, &path, Some("2.48")).await.fault(409);
    assert_eq!(
        m,
        format!("Cannot 'get_diagnostics' instance {id} while it is in power state shutdown")
    );
}

// ---- external events ----

#[tokio::test]
async fn external_events_answer_per_event() {
    let cloud = common::start().await;
    let admin = cloud.login("admin").await;
    let demo = cloud.login("demo").await;
    let s = booted(&cloud, &demo, "ev").await;
    let id = s["id"].as_str().unwrap_or_default().to_string();
    let missing = "3df201cf-2451-44f2-8d25-a4ca826fc1f3";

    let r = cloud
        .post(
            &admin,
            "/os-server-external-events",
            None,
            json!({"events": [{"name": "network-changed", "server_uuid": id, "tag": "foo"}]}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(
        r.body,
        json!({"events": [{"name": "network-changed", "server_uuid": id, "tag": "foo",
                           "status": "completed", "code": 200}]})
    );

    // An unknown server fails that event only: 207 overall.
    let r = cloud
        .post(
            &admin,
            "/os-server-external-events",
            None,
            json!({"events": [
                {"name": "network-vif-plugged", "server_uuid": id, "status": "failed"},
                {"name": "network-vif-plugged", "server_uuid": missing}]}),
        )
        .await;
    assert_eq!(r.status, StatusCode::MULTI_STATUS, "{}", r.text);
    assert_eq!(r.body["events"][0]["code"], json!(200));
    assert_eq!(r.body["events"][0]["status"], "completed");
    assert_eq!(r.body["events"][1]["code"], json!(404));
    assert_eq!(r.body["events"][1]["status"], "failed");

    // volume-extended exists from 2.51 and needs a tag.
    let ev = json!({"events": [{"name": "volume-extended", "server_uuid": id}]});
    cloud
        .post(
            &admin,
            "/os-server-external-events",
            Some("2.50"),
            ev.clone(),
        )
        .await
        .fault(400);
    let r = cloud
        .post(&admin, "/os-server-external-events", Some("2.51"), ev)
        .await;
    assert_eq!(r.status, StatusCode::MULTI_STATUS, "{}", r.text);
    assert_eq!(r.body["events"][0]["code"], json!(400));

    // power-update (2.76+) powers an idle server off and on.
    let off = json!({"events": [{"name": "power-update", "server_uuid": id, "tag": "POWER_OFF"}]});
    let r = cloud
        .post(&admin, "/os-server-external-events", Some("2.76"), off)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    cloud.wait_status(&demo, &id, &["SHUTOFF"], None).await;
    let on = json!({"events": [{"name": "power-update", "server_uuid": id, "tag": "POWER_ON"}]});
    let r = cloud
        .post(&admin, "/os-server-external-events", Some("2.76"), on)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    cloud.wait_status(&demo, &id, &["ACTIVE"], None).await;
    let r = cloud
        .get(&demo, &format!("/servers/{id}/os-instance-actions"), None)
        .await;
    let acts: Vec<&str> = r.body["instanceActions"]
        .as_array()
        .map(|a| a.iter().filter_map(|x| x["action"].as_str()).collect())
        .unwrap_or_default();
    assert!(
        acts.contains(&"stop") && acts.contains(&"start"),
        "{acts:?}"
    );

    // Schema and policy.
    for bad in [
        json!({"events": []}),
        json!({"events": [{"name": "bogus", "server_uuid": id}]}),
        json!({"events": [{"name": "network-changed", "server_uuid": "nope"}]}),
        json!({"events": [{"name": "network-changed", "server_uuid": id, "x": 1}]}),
        json!({"events": [{"name": "network-changed", "server_uuid": id, "status": "done"}]}),
    ] {
        cloud
            .post(&admin, "/os-server-external-events", None, bad)
            .await
            .fault(400);
    }
    cloud
        .post(
            &demo,
            "/os-server-external-events",
            None,
            json!({"events": [{"name": "network-changed", "server_uuid": id}]}),
        )
        .await
        .fault(403);
}

// ---- 2.75 rebuild body ----

#[tokio::test]
async fn admin_rebuild_at_2_75_matches_show() {
    let cloud = common::start().await;
    let admin = cloud.login("admin").await;
    let demo = cloud.login("demo").await;
    let s = booted(&cloud, &demo, "rb").await;
    let id = s["id"].as_str().unwrap_or_default().to_string();
    let r = cloud
        .post(
            &admin,
            &format!("/servers/{id}/action"),
            Some("2.75"),
            json!({"rebuild": {"imageRef": cloud.image_id()}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    let rebuilt = keys(&r.body["server"]);
    assert!(
        !rebuilt.contains("OS-EXT-SRV-ATTR:user_data"),
        "{rebuilt:?}"
    );
    assert!(rebuilt.contains("user_data") && rebuilt.contains("adminPass"));
    cloud
        .wait_status(&demo, &id, &["ACTIVE"], Some("2.75"))
        .await;
    let shown = cloud
        .get(&admin, &format!("/servers/{id}"), Some("2.75"))
        .await;
    let mut want = keys(&shown.body["server"]);
    want.remove("OS-EXT-SRV-ATTR:user_data");
    want.insert("user_data".into());
    want.insert("adminPass".into());
    assert_eq!(rebuilt, want);
    // PUT at 2.75 is the full GET view, admin attributes included.
    let r = put(
        &cloud,
        &admin,
        &format!("/servers/{id}"),
        Some("2.75"),
        json!({"server": {}}),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(keys(&r.body["server"]), keys(&shown.body["server"]));
}
