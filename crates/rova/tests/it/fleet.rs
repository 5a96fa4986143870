//! The simulated fleet over HTTP: scheduling with server groups and hints,
//! No valid host, quota sets (including 200 concurrent creates against a
//! quota of 100), services and hypervisors, cold and live migration,
//! evacuation from a forced-down host.

use crate::common::{start_with, Resp, TestCloud, User};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use std::collections::BTreeSet;

const NO_HOSTS: &str = "No valid host was found. There are not enough hosts available.";

async fn cloud(hosts: usize) -> TestCloud {
    start_with(|c| c.sim_hosts = hosts).await
}

/// POST /servers with optional scheduler hints; the raw response.
async fn create(c: &TestCloud, u: &User, v: &str, name: &str, flavor: &str, hints: Value) -> Resp {
    let mut body = json!({"server": {"name": name, "imageRef": c.image_id(), "flavorRef": flavor, "networks": "none"}});
    if !hints.is_null() {
        body["os:scheduler_hints"] = hints;
    }
    c.post(u, "/servers", Some(v), body).await
}

/// Creates a server and waits for ACTIVE or ERROR; returns its body.
async fn boot(c: &TestCloud, u: &User, name: &str, hints: Value) -> Value {
    let r = create(c, u, "2.74", name, "1", hints).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    let id = r.body["server"]["id"].as_str().expect("id").to_string();
    c.wait_status(u, &id, &["ACTIVE", "ERROR"], Some("2.74"))
        .await
}

fn host(s: &Value) -> String {
    s["OS-EXT-SRV-ATTR:host"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

fn id(s: &Value) -> String {
    s["id"].as_str().expect("id").to_string()
}

async fn group(c: &TestCloud, u: &User, policy: &str, rules: Value) -> String {
    let mut g = json!({"name": format!("g-{policy}"), "policy": policy});
    if !rules.is_null() {
        g["rules"] = rules;
    }
    let r = c
        .post(
            u,
            "/os-server-groups",
            Some("2.64"),
            json!({"server_group": g}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    r.body["server_group"]["id"]
        .as_str()
        .expect("group id")
        .to_string()
}

async fn show(c: &TestCloud, u: &User, id: &str) -> Value {
    let r = c.get(u, &format!("/servers/{id}"), Some("2.74")).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    r.body["server"].clone()
}

async fn action(c: &TestCloud, u: &User, id: &str, v: &str, body: Value) -> Resp {
    c.post(u, &format!("/servers/{id}/action"), Some(v), body)
        .await
}

async fn migrations(c: &TestCloud, u: &User, query: &str) -> Vec<Value> {
    let r = c
        .get(u, &format!("/os-migrations{query}"), Some("2.80"))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    r.body["migrations"].as_array().cloned().unwrap_or_default()
}

/// Polls until the server's newest migration has `status`.
async fn wait_migration(c: &TestCloud, u: &User, server: &str, status: &str) -> Value {
    for _ in 0..1000 {
        let all = migrations(c, u, &format!("?instance_uuid={server}")).await;
        if let Some(m) = all.first() {
            if m["status"] == json!(status) {
                return m.clone();
            }
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    panic!("migration of {server} never reached {status}");
}

async fn hypervisor(c: &TestCloud, u: &User, name: &str) -> Value {
    let r = c.get(u, "/os-hypervisors/detail", Some("2.53")).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    r.body["hypervisors"]
        .as_array()
        .and_then(|a| {
            a.iter()
                .find(|h| h["hypervisor_hostname"] == json!(name))
                .cloned()
        })
        .expect("hypervisor")
}

async fn force_down(c: &TestCloud, u: &User, host: &str, down: bool) {
    let r = c
        .get(
            u,
            &format!("/os-services?host={host}&binary=nova-compute"),
            Some("2.53"),
        )
        .await;
    let sid = r.body["services"][0]["id"]
        .as_str()
        .expect("service id")
        .to_string();
    let r = c
        .compute(
            u,
            Method::PUT,
            &format!("/os-services/{sid}"),
            Some("2.53"),
            Some(json!({"forced_down": down})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["service"]["forced_down"], json!(down));
    assert_eq!(
        r.body["service"]["state"],
        json!(if down { "down" } else { "up" })
    );
}

#[tokio::test]
async fn anti_affinity_spreads_over_three_hosts_then_no_valid_host() {
    let c = cloud(3).await;
    let a = c.login("admin").await;
    let g = group(&c, &a, "anti-affinity", Value::Null).await;
    let mut hosts = BTreeSet::new();
    let mut ids = vec![];
    for i in 0..3 {
        let s = boot(&c, &a, &format!("aa{i}"), json!({"group": g})).await;
        assert_eq!(s["status"], json!("ACTIVE"), "{s}");
        hosts.insert(host(&s));
        ids.push(id(&s));
    }
    assert_eq!(hosts.len(), 3, "{hosts:?}");
    let s = boot(&c, &a, "aa3", json!({"group": g})).await;
    assert_eq!(s["status"], json!("ERROR"));
    assert_eq!(s["fault"]["code"], json!(500));
    assert_eq!(s["fault"]["message"], json!(NO_HOSTS));
    assert_eq!(host(&s), "");
    // Members and the 2.71 server_groups field.
    let r = c
        .get(&a, &format!("/os-server-groups/{g}"), Some("2.64"))
        .await;
    assert_eq!(
        r.body["server_group"]["members"].as_array().map(Vec::len),
        Some(4)
    );
    let r = c
        .get(&a, &format!("/servers/{}", ids[0]), Some("2.71"))
        .await;
    assert_eq!(r.body["server"]["server_groups"], json!([g]));
    // A deleted server leaves the group and frees its host for a new member.
    let r = c
        .compute(
            &a,
            Method::DELETE,
            &format!("/servers/{}", ids[0]),
            None,
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    c.wait_status(&a, &ids[0], &["404"], None).await;
    let r = c
        .get(&a, &format!("/os-server-groups/{g}"), Some("2.64"))
        .await;
    let members = r.body["server_group"]["members"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert!(!members.contains(&json!(ids[0])));
    let s = boot(&c, &a, "aa4", json!({"group": g})).await;
    assert_eq!(s["status"], json!("ACTIVE"), "{s}");
}

#[tokio::test]
async fn affinity_keeps_members_together() {
    let c = cloud(3).await;
    let a = c.login("admin").await;
    let g = group(&c, &a, "affinity", Value::Null).await;
    let mut hosts = BTreeSet::new();
    for i in 0..3 {
        let s = boot(&c, &a, &format!("af{i}"), json!({"group": g})).await;
        assert_eq!(s["status"], json!("ACTIVE"));
        hosts.insert(host(&s));
    }
    assert_eq!(hosts.len(), 1);
    // Without the group the RAM weigher spreads to an empty host.
    let s = boot(&c, &a, "free", Value::Null).await;
    assert!(!hosts.contains(&host(&s)));
}

#[tokio::test]
async fn max_server_per_host_rule() {
    let c = cloud(2).await;
    let a = c.login("admin").await;
    let r = c
        .post(&a, "/os-server-groups", Some("2.64"), json!({"server_group": {"name": "x", "policy": "affinity", "rules": {"max_server_per_host": 2}}}))
        .await;
    assert_eq!(r.fault(400), "Only anti-affinity policy supports rules.");
    let g = group(&c, &a, "anti-affinity", json!({"max_server_per_host": 2})).await;
    let r = c
        .get(&a, &format!("/os-server-groups/{g}"), Some("2.64"))
        .await;
    assert_eq!(
        r.body["server_group"]["rules"],
        json!({"max_server_per_host": 2})
    );
    let mut per_host = std::collections::BTreeMap::<String, u32>::new();
    for i in 0..4 {
        let s = boot(&c, &a, &format!("m{i}"), json!({"group": g})).await;
        assert_eq!(s["status"], json!("ACTIVE"));
        *per_host.entry(host(&s)).or_default() += 1;
    }
    assert_eq!(per_host.values().copied().collect::<Vec<_>>(), vec![2, 2]);
    let s = boot(&c, &a, "m4", json!({"group": g})).await;
    assert_eq!(s["fault"]["message"], json!(NO_HOSTS));
}

#[tokio::test]
async fn same_host_and_different_host_hints() {
    let c = cloud(3).await;
    let a = c.login("admin").await;
    let first = boot(&c, &a, "first", Value::Null).await;
    let near = boot(&c, &a, "near", json!({"same_host": [id(&first)]})).await;
    assert_eq!(host(&near), host(&first));
    let far = boot(&c, &a, "far", json!({"different_host": id(&first)})).await;
    assert_ne!(host(&far), host(&first));
    let r = create(
        &c,
        &a,
        "2.74",
        "bad",
        "1",
        json!({"group": "6f8a6a3c-2c6f-4f2b-9b74-7d3c1a1e0f00"}),
    )
    .await;
    assert_eq!(
        r.fault(400),
        "Instance group 6f8a6a3c-2c6f-4f2b-9b74-7d3c1a1e0f00 could not be found."
    );
    // JsonFilter and SimpleCIDRAffinityFilter.
    let s = boot(
        &c,
        &a,
        "q",
        json!({"query": "[\"=\", \"$host\", \"rova-sim-3\"]"}),
    )
    .await;
    assert_eq!(host(&s), "rova-sim-3");
    let s = boot(
        &c,
        &a,
        "near-ip",
        json!({"build_near_host_ip": "10.1.0.2", "cidr": "/32"}),
    )
    .await;
    assert_eq!(host(&s), "rova-sim-1");
}

#[tokio::test]
async fn flavor_that_fits_nowhere_errors_with_the_fault() {
    let c = start_with(|cfg| {
        cfg.sim_hosts = 2;
        cfg.quota.cores = -1;
    })
    .await;
    let a = c.login("admin").await;
    let r = c
        .post(
            &a,
            "/flavors",
            None,
            json!({"flavor": {"name": "huge", "ram": 512, "vcpus": 17, "disk": 1, "id": "huge"}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let r = create(&c, &a, "2.74", "big", "huge", Value::Null).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    let s = c
        .wait_status(
            &a,
            r.body["server"]["id"].as_str().expect("id"),
            &["ERROR"],
            None,
        )
        .await;
    assert_eq!(s["fault"]["code"], json!(500));
    let msg = s["fault"]["message"].as_str().unwrap_or_default();
    assert!(msg.starts_with("No valid host was found."), "{msg}");
    for h in ["rova-sim-1", "rova-sim-2"] {
        assert_eq!(hypervisor(&c, &a, h).await["vcpus_used"], json!(0));
    }
}

#[tokio::test]
async fn quota_set_update_then_create_beyond_is_403() {
    let c = cloud(1).await;
    let a = c.login("admin").await;
    let d = c.login("demo").await;
    let path = format!("/os-quota-sets/{}", d.project_id);
    let r = c
        .compute(
            &d,
            Method::PUT,
            &path,
            None,
            Some(json!({"quota_set": {"instances": 2}})),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = c
        .compute(
            &a,
            Method::PUT,
            &path,
            None,
            Some(json!({"quota_set": {"instances": 2}})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["quota_set"]["instances"], json!(2));
    assert!(r.body["quota_set"].get("id").is_none());
    let r = c.get(&d, &path, None).await;
    assert_eq!(r.body["quota_set"]["instances"], json!(2));
    assert_eq!(r.body["quota_set"]["id"], json!(d.project_id));
    for i in 0..2 {
        assert_eq!(
            boot(&c, &d, &format!("q{i}"), Value::Null).await["status"],
            json!("ACTIVE")
        );
    }
    let r = create(&c, &d, "2.74", "q2", "1", Value::Null).await;
    assert_eq!(
        r.fault(403),
        "Quota exceeded for instances: Requested 1, but already used 2 of 2 instances"
    );
    let r = c.get(&d, &format!("{path}/detail"), None).await;
    assert_eq!(
        r.body["quota_set"]["instances"],
        json!({"in_use": 2, "limit": 2, "reserved": 0})
    );
    let r = c.get(&d, "/limits", None).await;
    assert_eq!(r.body["limits"]["absolute"]["maxTotalInstances"], json!(2));
    assert_eq!(r.body["limits"]["absolute"]["totalInstancesUsed"], json!(2));
    // Below usage needs force.
    let r = c
        .compute(
            &a,
            Method::PUT,
            &path,
            None,
            Some(json!({"quota_set": {"instances": 1}})),
        )
        .await;
    assert_eq!(
        r.fault(400),
        "Quota limit 1 for instances must be greater than or equal to already used and reserved 2."
    );
    let r = c
        .compute(
            &a,
            Method::PUT,
            &path,
            None,
            Some(json!({"quota_set": {"instances": "1", "force": "True"}})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let r = c
        .compute(
            &a,
            Method::PUT,
            &path,
            None,
            Some(json!({"quota_set": {"instances": -2}})),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    // Server groups count against their own quota and show in /limits.
    let r = c
        .compute(
            &a,
            Method::PUT,
            &path,
            None,
            Some(json!({"quota_set": {"server_groups": 1}})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    group(&c, &d, "anti-affinity", Value::Null).await;
    let r = c
        .post(
            &d,
            "/os-server-groups",
            Some("2.64"),
            json!({"server_group": {"name": "n", "policy": "affinity"}}),
        )
        .await;
    assert_eq!(r.fault(403), "Quota exceeded, too many server groups.");
    let r = c.get(&d, "/limits", None).await;
    assert_eq!(
        r.body["limits"]["absolute"]["totalServerGroupsUsed"],
        json!(1)
    );
    assert_eq!(r.body["limits"]["absolute"]["maxServerGroups"], json!(1));
    // Delete reverts to the defaults (202).
    let r = c.compute(&a, Method::DELETE, &path, None, None).await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
    let r = c.get(&d, &path, None).await;
    assert_eq!(r.body["quota_set"]["instances"], json!(10));
    let r = c.get(&d, &format!("{path}/defaults"), Some("2.57")).await;
    assert_eq!(
        r.body["quota_set"],
        json!({"id": d.project_id, "cores": 20, "instances": 10, "key_pairs": 100,
        "metadata_items": 128, "ram": 51200, "server_groups": 10, "server_group_members": 10})
    );
    // Another project's quotas are not visible to a member.
    let r = c.get(&d, "/os-quota-sets/admin", None).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn server_group_members_quota() {
    let c = cloud(2).await;
    let a = c.login("admin").await;
    let r = c
        .compute(
            &a,
            Method::PUT,
            &format!("/os-quota-sets/{}", a.project_id),
            None,
            Some(json!({"quota_set": {"server_group_members": 2}})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let g = group(&c, &a, "soft-anti-affinity", Value::Null).await;
    let mut ids = Vec::new();
    for i in 0..2 {
        let s = boot(&c, &a, &format!("s{i}"), json!({"group": g})).await;
        assert_eq!(s["status"], json!("ACTIVE"));
        ids.push(s["id"].as_str().expect("id").to_string());
    }
    let r = create(&c, &a, "2.74", "s2", "1", json!({"group": g})).await;
    assert_eq!(r.fault(403), "Quota exceeded, too many servers in group");
    // A deleted server is no longer a member (Nova counts the members
    // that are not deleted): its place can be taken.
    let r = c
        .compute(
            &a,
            Method::DELETE,
            &format!("/servers/{}", ids[0]),
            None,
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
    c.wait_status(&a, &ids[0], &["404"], None).await;
    let s = boot(&c, &a, "s2", json!({"group": g})).await;
    assert_eq!(s["status"], json!("ACTIVE"), "{s}");
    let r = c.get(&a, &format!("/os-server-groups/{g}"), None).await;
    let mut members: Vec<String> =
        serde_json::from_value(r.body["server_group"]["members"].clone()).expect("members");
    members.sort();
    let mut want = vec![ids[1].clone(), s["id"].as_str().expect("id").to_string()];
    want.sort();
    assert_eq!(members, want);
    // Groups: 2.13 fields, legacy `policies` below 2.64, list and delete.
    let r = c
        .get(&a, &format!("/os-server-groups/{g}"), Some("2.15"))
        .await;
    assert_eq!(
        r.body["server_group"]["policies"],
        json!(["soft-anti-affinity"])
    );
    assert_eq!(r.body["server_group"]["metadata"], json!({}));
    assert_eq!(r.body["server_group"]["project_id"], json!(a.project_id));
    let r = c
        .post(
            &a,
            "/os-server-groups",
            Some("2.14"),
            json!({"server_group": {"name": "x", "policies": ["soft-affinity"]}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let r = c
        .get(&a, "/os-server-groups?limit=1&offset=0", Some("2.64"))
        .await;
    assert_eq!(r.body["server_groups"].as_array().map(Vec::len), Some(1));
    let d = c.login("demo").await;
    let r = c.get(&d, &format!("/os-server-groups/{g}"), None).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = c.get(&d, "/os-server-groups?all_projects=1", None).await;
    assert_eq!(r.body["server_groups"], json!([]));
    let r = c
        .compute(
            &a,
            Method::DELETE,
            &format!("/os-server-groups/{g}"),
            None,
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let r = c.get(&a, &format!("/os-server-groups/{g}"), None).await;
    assert_eq!(
        r.fault(404),
        format!("Instance group {g} could not be found.")
    );
}

#[tokio::test]
async fn two_hundred_parallel_creates_against_a_quota_of_100() {
    let c = cloud(2).await;
    let a = c.login("admin").await;
    let d = c.login("demo").await;
    let path = format!("/os-quota-sets/{}", d.project_id);
    let r = c
        .compute(
            &a,
            Method::PUT,
            &path,
            None,
            Some(json!({"quota_set": {"instances": 100, "cores": 100, "ram": 51200}})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let mut tasks = Vec::new();
    for i in 0..200 {
        let http = c.http.clone();
        let url = format!("{}/compute/v2.1/servers", c.base);
        let token = d.token.clone();
        let body = json!({"server": {"name": format!("p{i}"), "imageRef": c.image_id(), "flavorRef": "1", "networks": "none"}});
        tasks.push(tokio::spawn(async move {
            let r = http
                .post(url)
                .header("X-Auth-Token", token)
                .header("OpenStack-API-Version", "compute 2.74")
                .json(&body)
                .send()
                .await
                .expect("request");
            r.status()
        }));
    }
    let (mut ok, mut over) = (0, 0);
    for t in tasks {
        match t.await.expect("task") {
            StatusCode::ACCEPTED => ok += 1,
            StatusCode::FORBIDDEN => over += 1,
            other => panic!("unexpected {other}"),
        }
    }
    assert_eq!((ok, over), (100, 100));
    let r = c.get(&d, "/limits", None).await;
    assert_eq!(
        r.body["limits"]["absolute"]["totalInstancesUsed"],
        json!(100)
    );
    assert_eq!(r.body["limits"]["absolute"]["totalCoresUsed"], json!(100));
    let r = c.get(&d, &format!("{path}/detail"), None).await;
    assert_eq!(r.body["quota_set"]["instances"]["in_use"], json!(100));
}

#[tokio::test]
async fn cold_migrate_confirm_and_revert_move_hosts() {
    let c = cloud(2).await;
    let a = c.login("admin").await;
    let s = boot(&c, &a, "mover", Value::Null).await;
    let (sid, src) = (id(&s), host(&s));
    let r = action(&c, &a, &sid, "2.56", json!({"migrate": {"host": src}})).await;
    assert_eq!(
        r.fault(400),
        "Cannot migrate to the host where the server exists."
    );
    let r = action(
        &c,
        &a,
        &sid,
        "2.56",
        json!({"migrate": {"host": "nowhere"}}),
    )
    .await;
    assert_eq!(r.fault(400), "Compute host nowhere could not be found.");
    let d = c.login("demo").await;
    let r = action(&c, &d, &sid, "2.56", json!({"migrate": null})).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = action(&c, &a, &sid, "2.56", json!({"migrate": null})).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    let s = c
        .wait_status(&a, &sid, &["VERIFY_RESIZE"], Some("2.74"))
        .await;
    let dst = host(&s);
    assert_ne!(dst, src);
    let m = wait_migration(&c, &a, &sid, "finished").await;
    assert_eq!(m["migration_type"], json!("migration"));
    assert_eq!(m["source_compute"], json!(src));
    assert_eq!(m["dest_compute"], json!(dst));
    // Both hosts hold the server until confirm.
    assert_eq!(hypervisor(&c, &a, &src).await["vcpus_used"], json!(1));
    assert_eq!(hypervisor(&c, &a, &dst).await["vcpus_used"], json!(1));
    let r = action(&c, &a, &sid, "2.56", json!({"confirmResize": null})).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
    let s = c.wait_status(&a, &sid, &["ACTIVE"], Some("2.74")).await;
    assert_eq!(host(&s), dst);
    assert_eq!(
        wait_migration(&c, &a, &sid, "confirmed").await["id"],
        m["id"]
    );
    assert_eq!(hypervisor(&c, &a, &src).await["vcpus_used"], json!(0));
    // Migrate again and revert: back to where it was.
    let r = action(&c, &a, &sid, "2.1", json!({"migrate": null})).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    c.wait_status(&a, &sid, &["VERIFY_RESIZE"], None).await;
    let r = action(&c, &a, &sid, "2.1", json!({"revertResize": null})).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    wait_migration(&c, &a, &sid, "reverted").await;
    let s = c.wait_status(&a, &sid, &["ACTIVE"], Some("2.74")).await;
    assert_eq!(host(&s), dst);
    assert_eq!(hypervisor(&c, &a, &src).await["vcpus_used"], json!(0));
    assert_eq!(hypervisor(&c, &a, &dst).await["vcpus_used"], json!(1));
}

#[tokio::test]
async fn resize_without_another_host_keeps_the_server_with_a_fault() {
    let c = start_with(|cfg| {
        cfg.sim_hosts = 1;
        cfg.allow_resize_to_same_host = Some(false);
    })
    .await;
    let a = c.login("admin").await;
    let s = boot(&c, &a, "r", Value::Null).await;
    let sid = id(&s);
    let r = action(&c, &a, &sid, "2.1", json!({"resize": {"flavorRef": "2"}})).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    let m = wait_migration(&c, &a, &sid, "error").await;
    assert_eq!(m["migration_type"], json!("resize"));
    let s = c.wait_status(&a, &sid, &["ACTIVE"], Some("2.74")).await;
    assert_eq!(s["OS-EXT-STS:task_state"], Value::Null);
    assert_eq!(s["flavor"]["original_name"], json!("m1.tiny"));
    let r = c
        .get(&a, &format!("/servers/{sid}/os-instance-actions"), None)
        .await;
    let resize = r.body["instanceActions"]
        .as_array()
        .and_then(|l| l.iter().find(|x| x["action"] == json!("resize")).cloned())
        .expect("resize action");
    assert_eq!(resize["message"], json!("Error"));
    // The growth reserved for the resize was given back.
    let r = c.get(&a, "/limits", None).await;
    assert_eq!(r.body["limits"]["absolute"]["totalRAMUsed"], json!(512));
}

#[tokio::test]
async fn live_migration_moves_and_keeps_the_state() {
    let c = cloud(2).await;
    let a = c.login("admin").await;
    let s = boot(&c, &a, "live", Value::Null).await;
    let (sid, src) = (id(&s), host(&s));
    let r = action(
        &c,
        &a,
        &sid,
        "2.25",
        json!({"os-migrateLive": {"host": "nowhere", "block_migration": "auto"}}),
    )
    .await;
    assert_eq!(r.fault(400), "Compute host nowhere could not be found.");
    let r = action(
        &c,
        &a,
        &sid,
        "2.24",
        json!({"os-migrateLive": {"host": null, "block_migration": "auto"}}),
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "auto needs 2.25");
    let r = action(&c, &a, &sid, "2.1", json!({"os-migrateLive": {"host": src, "block_migration": false, "disk_over_commit": false}})).await;
    assert_eq!(
        r.fault(400),
        format!("Unable to migrate instance ({sid}) to current host ({src}).")
    );
    assert_eq!(show(&c, &a, &sid).await["status"], json!("ACTIVE"));
    let r = action(
        &c,
        &a,
        &sid,
        "2.68",
        json!({"os-migrateLive": {"host": null, "block_migration": "auto"}}),
    )
    .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    let m = wait_migration(&c, &a, &sid, "completed").await;
    assert_eq!(m["migration_type"], json!("live-migration"));
    let s = c.wait_status(&a, &sid, &["ACTIVE"], Some("2.74")).await;
    assert_ne!(host(&s), src);
    assert_eq!(m["dest_compute"], json!(host(&s)));
    assert_eq!(hypervisor(&c, &a, &src).await["running_vms"], json!(0));
    // A paused server stays paused.
    let r = action(&c, &a, &sid, "2.1", json!({"pause": null})).await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
    c.wait_status(&a, &sid, &["PAUSED"], None).await;
    let r = action(
        &c,
        &a,
        &sid,
        "2.68",
        json!({"os-migrateLive": {"host": src, "block_migration": false}}),
    )
    .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    let all = migrations(
        &c,
        &a,
        &format!("?instance_uuid={sid}&migration_type=live-migration"),
    )
    .await;
    assert_eq!(all.len(), 3);
    wait_migration(&c, &a, &sid, "completed").await;
    let s = c.wait_status(&a, &sid, &["PAUSED"], Some("2.74")).await;
    assert_eq!(host(&s), src);
}

#[tokio::test]
async fn live_migration_force_complete_and_abort() {
    let c = cloud(2).await;
    let a = c.login("admin").await;
    let one = boot(&c, &a, "one", Value::Null).await;
    let two = boot(&c, &a, "two", Value::Null).await;
    if let Some(f) = &c.app.compute.fake {
        f.set_latency(std::time::Duration::from_millis(40));
    }
    // force_complete ends a running migration early.
    let sid = id(&one);
    let r = action(
        &c,
        &a,
        &sid,
        "2.68",
        json!({"os-migrateLive": {"host": null, "block_migration": "auto"}}),
    )
    .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    let m = wait_migration(&c, &a, &sid, "running").await;
    let mid = m["id"].as_i64().expect("mid");
    let r = c
        .get(&a, &format!("/servers/{sid}/migrations"), Some("2.80"))
        .await;
    assert_eq!(r.body["migrations"][0]["server_uuid"], json!(sid));
    let r = c
        .get(
            &a,
            &format!("/servers/{sid}/migrations/{mid}"),
            Some("2.80"),
        )
        .await;
    assert_eq!(r.body["migration"]["status"], json!("running"));
    let r = c
        .post(
            &a,
            &format!("/servers/{sid}/migrations/{mid}/action"),
            Some("2.22"),
            json!({"force_complete": null}),
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    wait_migration(&c, &a, &sid, "completed").await;
    let s = c.wait_status(&a, &sid, &["ACTIVE"], Some("2.74")).await;
    assert_ne!(host(&s), host(&one));
    let r = c
        .post(
            &a,
            &format!("/servers/{sid}/migrations/{mid}/action"),
            Some("2.22"),
            json!({"force_complete": null}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    // Abort puts the server back on its source.
    let sid = id(&two);
    let r = action(
        &c,
        &a,
        &sid,
        "2.68",
        json!({"os-migrateLive": {"host": null, "block_migration": "auto"}}),
    )
    .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    let m = wait_migration(&c, &a, &sid, "running").await;
    let mid = m["id"].as_i64().expect("mid");
    let r = c
        .compute(
            &a,
            Method::DELETE,
            &format!("/servers/{sid}/migrations/{mid}"),
            Some("2.24"),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    wait_migration(&c, &a, &sid, "cancelled").await;
    let s = c.wait_status(&a, &sid, &["ACTIVE"], Some("2.74")).await;
    assert_eq!(host(&s), host(&two));
    assert_eq!(s["OS-EXT-STS:task_state"], Value::Null);
    let r = c
        .compute(
            &a,
            Method::DELETE,
            &format!("/servers/{sid}/migrations/{mid}"),
            Some("2.24"),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT);
}

#[tokio::test]
async fn evacuate_from_a_forced_down_host() {
    let c = cloud(2).await;
    let a = c.login("admin").await;
    let s = boot(&c, &a, "evac", Value::Null).await;
    let (sid, src) = (id(&s), host(&s));
    let r = action(&c, &a, &sid, "2.29", json!({"evacuate": {}})).await;
    assert_eq!(
        r.fault(400),
        format!("Compute service of {src} is still in use.")
    );
    force_down(&c, &a, &src, true).await;
    let r = c
        .get(&a, "/os-services?binary=nova-compute", Some("2.11"))
        .await;
    let svc = r.body["services"]
        .as_array()
        .and_then(|l| l.iter().find(|x| x["host"] == json!(src)).cloned())
        .expect("service");
    assert_eq!(svc["state"], json!("down"));
    assert_eq!(svc["forced_down"], json!(true));
    assert!(svc["id"].is_i64());
    let r = action(&c, &a, &sid, "2.29", json!({"evacuate": {"host": src}})).await;
    assert_eq!(r.fault(400), "The target host can't be the same one.");
    let r = action(
        &c,
        &a,
        &sid,
        "2.29",
        json!({"evacuate": {"host": "nowhere"}}),
    )
    .await;
    assert_eq!(r.fault(404), "Compute host nowhere not found.");
    let r = action(
        &c,
        &a,
        &sid,
        "2.1",
        json!({"evacuate": {"onSharedStorage": false}}),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert!(r.body["adminPass"].is_string());
    let m = wait_migration(&c, &a, &sid, "done").await;
    assert_eq!(m["migration_type"], json!("evacuation"));
    let s = c.wait_status(&a, &sid, &["ACTIVE"], Some("2.74")).await;
    let dst = host(&s);
    assert_ne!(dst, src);
    // The dead host keeps its allocation until it comes back.
    assert_eq!(hypervisor(&c, &a, &src).await["vcpus_used"], json!(1));
    force_down(&c, &a, &src, false).await;
    assert_eq!(hypervisor(&c, &a, &src).await["vcpus_used"], json!(0));
    wait_migration(&c, &a, &sid, "completed").await;
    // From 2.95 an evacuated server ends stopped.
    force_down(&c, &a, &dst, true).await;
    let r = action(&c, &a, &sid, "2.95", json!({"evacuate": null})).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let r = action(&c, &a, &sid, "2.95", json!({"evacuate": {}})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.text, "");
    let s = c.wait_status(&a, &sid, &["SHUTOFF"], Some("2.74")).await;
    assert_eq!(host(&s), src);
}

#[tokio::test]
async fn services_hypervisors_and_zones() {
    let c = start_with(|cfg| {
        cfg.sim_hosts = 2;
        if let Ok((n, o)) =
            rova::config::SimHostOverride::parse("rova-sim-2:vcpus=4,ram_mb=8192,az=zone2")
        {
            cfg.sim_host_overrides.insert(n, o);
        }
    })
    .await;
    let a = c.login("admin").await;
    let d = c.login("demo").await;
    assert_eq!(
        c.get(&d, "/os-services", None).await.status,
        StatusCode::FORBIDDEN
    );
    let r = c.get(&a, "/os-services", Some("2.53")).await;
    let list = r.body["services"].as_array().cloned().unwrap_or_default();
    assert_eq!(list.len(), 4, "{}", r.text);
    let computes: Vec<&Value> = list
        .iter()
        .filter(|s| s["binary"] == json!("nova-compute"))
        .collect();
    assert_eq!(computes[1]["zone"], json!("zone2"));
    let sid = computes[0]["id"].as_str().expect("uuid").to_string();
    // Disable: the scheduler skips the host.
    let r = c
        .compute(
            &a,
            Method::PUT,
            &format!("/os-services/{sid}"),
            Some("2.53"),
            Some(json!({"status": "disabled", "disabled_reason": "maint"})),
        )
        .await;
    assert_eq!(r.body["service"]["status"], json!("disabled"), "{}", r.text);
    assert_eq!(r.body["service"]["disabled_reason"], json!("maint"));
    let r = c
        .compute(
            &a,
            Method::PUT,
            &format!("/os-services/{sid}"),
            Some("2.53"),
            Some(json!({})),
        )
        .await;
    assert_eq!(
        r.fault(400),
        "No updates were requested. Fields 'status' or 'forced_down' should be specified."
    );
    let s = boot(&c, &a, "z", Value::Null).await;
    assert_eq!(host(&s), "rova-sim-2");
    assert_eq!(s["OS-EXT-AZ:availability_zone"], json!("zone2"));
    // Legacy enable URL below 2.53.
    let r = c
        .compute(
            &a,
            Method::PUT,
            "/os-services/enable",
            None,
            Some(json!({"host": "rova-sim-1", "binary": "nova-compute"})),
        )
        .await;
    assert_eq!(
        r.body,
        json!({"service": {"host": "rova-sim-1", "binary": "nova-compute", "status": "enabled"}})
    );
    // Uptime below 2.88 (gone there: `show` has the field).
    let hv = r_hv_id(&c, &a).await;
    let r = c
        .get(&a, &format!("/os-hypervisors/{hv}/uptime"), Some("2.53"))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let up = r.body["hypervisor"]["uptime"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(
        up.contains(" up 0 days, ") && up.contains("load average"),
        "{up}"
    );
    assert_eq!(
        r.body["hypervisor"]["hypervisor_hostname"],
        json!("rova-sim-1")
    );
    let r = c
        .get(&a, &format!("/os-hypervisors/{hv}/uptime"), Some("2.88"))
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.text);
    // Statistics below 2.88: the sums over both hosts, server `z` on one.
    let r = c.get(&a, "/os-hypervisors/statistics", Some("2.87")).await;
    let st = &r.body["hypervisor_statistics"];
    assert_eq!(st["count"], json!(2), "{}", r.text);
    assert_eq!(st["running_vms"], json!(1), "{}", r.text);
    let detail = c.get(&a, "/os-hypervisors/detail", Some("2.87")).await;
    let total: u64 = detail.body["hypervisors"]
        .as_array()
        .map(|hs| hs.iter().filter_map(|h| h["vcpus"].as_u64()).sum())
        .unwrap_or(0);
    assert_eq!(st["vcpus"].as_u64(), Some(total), "{}", detail.text);
    assert!(st["vcpus_used"].as_u64().unwrap_or(0) >= 1, "{}", r.text);
    assert_eq!(
        st["free_ram_mb"].as_i64(),
        Some(st["memory_mb"].as_i64().unwrap_or(0) - st["memory_mb_used"].as_i64().unwrap_or(0))
    );
    let r = c.get(&a, "/os-hypervisors/statistics", Some("2.88")).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.text);
    // Search and servers by host name pattern below 2.53.
    let r = c
        .get(&a, "/os-hypervisors/sim-2/search", Some("2.52"))
        .await;
    assert_eq!(
        r.body["hypervisors"].as_array().map(Vec::len),
        Some(1),
        "{}",
        r.text
    );
    assert_eq!(
        r.body["hypervisors"][0]["hypervisor_hostname"],
        json!("rova-sim-2")
    );
    assert!(r.body["hypervisors"][0].get("servers").is_none());
    let r = c
        .get(&a, "/os-hypervisors/sim-2/servers", Some("2.52"))
        .await;
    assert_eq!(
        r.body["hypervisors"][0]["servers"][0]["uuid"], s["id"],
        "{}",
        r.text
    );
    let r = c
        .get(&a, "/os-hypervisors/nowhere/search", Some("2.52"))
        .await;
    assert_eq!(
        r.fault(404),
        "No hypervisor matching 'nowhere' could be found."
    );
    let r = c.get(&a, "/os-hypervisors/sim/servers", Some("2.53")).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.text);
    let r = c.get(&d, "/os-hypervisors/statistics", Some("2.1")).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text);
    // The zone other than the default one is an aggregate (admin only).
    assert_eq!(
        c.get(&d, "/os-aggregates", None).await.status,
        StatusCode::FORBIDDEN
    );
    let r = c.get(&a, "/os-aggregates", Some("2.41")).await;
    let aggs = r.body["aggregates"].as_array().cloned().unwrap_or_default();
    assert_eq!(aggs.len(), 1, "{}", r.text);
    assert_eq!(aggs[0]["name"], json!("zone2"));
    assert_eq!(aggs[0]["hosts"], json!(["rova-sim-2"]));
    assert_eq!(aggs[0]["metadata"], json!({"availability_zone": "zone2"}));
    assert!(aggs[0]["uuid"].is_string());
    // Zones and the AZ scheduler constraint.
    let r = c.get(&d, "/os-availability-zone", None).await;
    let zones: Vec<&str> = r.body["availabilityZoneInfo"]
        .as_array()
        .map(|l| l.iter().filter_map(|z| z["zoneName"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(zones, ["nova", "zone2"]);
    let r = c
        .post(&d, "/servers", None, json!({"server": {"name": "x", "imageRef": c.image_id(), "flavorRef": "1", "availability_zone": "zone9"}}))
        .await;
    assert_eq!(
        r.fault(400),
        "The requested availability zone is not available"
    );
    let r = c
        .post(&a, "/servers", Some("2.74"), json!({"server": {"name": "y", "imageRef": c.image_id(), "flavorRef": "1", "networks": "none", "availability_zone": "nova"}}))
        .await;
    let s = c
        .wait_status(
            &a,
            r.body["server"]["id"].as_str().expect("id"),
            &["ACTIVE"],
            Some("2.74"),
        )
        .await;
    assert_eq!(host(&s), "rova-sim-1");
    // Hypervisors: inventory and usage.
    let h = hypervisor(&c, &a, "rova-sim-2").await;
    assert_eq!(h["vcpus"], json!(4));
    assert_eq!(h["memory_mb"], json!(8192));
    assert_eq!(h["memory_mb_used"], json!(512 + 512));
    assert_eq!(h["running_vms"], json!(1));
    let r = c.get(&a, "/os-hypervisors", None).await;
    assert_eq!(
        r.body["hypervisors"][0],
        json!({"id": 1, "hypervisor_hostname": "rova-sim-1", "state": "up", "status": "enabled"})
    );
    let r = c.get(&a, "/os-hypervisors/2", None).await;
    assert_eq!(
        r.body["hypervisor"]["hypervisor_hostname"],
        json!("rova-sim-2")
    );
    let r = c.get(&a, "/os-hypervisors/detail", Some("2.88")).await;
    assert!(r.body["hypervisors"][0].get("vcpus").is_none());
    assert_eq!(r.body["hypervisors"][0]["uptime"], Value::Null);
}

#[tokio::test]
async fn claims_and_service_state_are_rebuilt_after_a_restart() {
    let c = cloud(2).await;
    let a = c.login("admin").await;
    let s = boot(&c, &a, "stay", Value::Null).await;
    let m = boot(&c, &a, "moving", Value::Null).await;
    let r = action(&c, &a, &id(&m), "2.1", json!({"migrate": null})).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    c.wait_status(&a, &id(&m), &["VERIFY_RESIZE"], None).await;
    let r = c
        .compute(
            &a,
            Method::PUT,
            "/os-services/disable",
            None,
            Some(json!({"host": host(&s), "binary": "nova-compute"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let before = c.app.compute.fleet.host_states();
    assert_eq!(before.iter().map(|h| h.vcpus_used).sum::<u64>(), 3);
    let again = rova::app::App::open(c.app.cfg.clone()).expect("reopen");
    assert_eq!(again.compute.fleet.host_states(), before);
    assert!(
        again
            .compute
            .fleet
            .service("nova-compute", &host(&s))
            .disabled
    );
}

#[tokio::test]
async fn concurrent_builds_never_double_book_a_host() {
    let c = start_with(|cfg| {
        cfg.sim_hosts = 2;
        cfg.sim_host.vcpus = 1;
        cfg.sim_host.cpu_allocation_ratio = 1.0;
    })
    .await;
    let a = c.login("admin").await;
    let body = json!({"server": {"name": "dense", "imageRef": c.image_id(), "flavorRef": "1",
        "networks": "none", "min_count": 6}});
    let r = c.post(&a, "/servers", Some("2.74"), body).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    let mut servers = vec![];
    for _ in 0..1000 {
        let r = c.get(&a, "/servers/detail?name=dense", Some("2.74")).await;
        servers = r.body["servers"].as_array().cloned().unwrap_or_default();
        if servers.len() == 6 && servers.iter().all(|s| s["status"] != json!("BUILD")) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let active: BTreeSet<String> = servers
        .iter()
        .filter(|s| s["status"] == json!("ACTIVE"))
        .map(host)
        .collect();
    let errors = servers
        .iter()
        .filter(|s| s["status"] == json!("ERROR"))
        .count();
    assert_eq!(active.len(), 2, "{servers:?}");
    assert_eq!(errors, 4);
    for h in ["rova-sim-1", "rova-sim-2"] {
        assert_eq!(hypervisor(&c, &a, h).await["vcpus_used"], json!(1));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn host_status_follows_the_compute_service() {
    let c = cloud(1).await;
    let admin = c.login("admin").await;
    let demo = c.login("demo").await;
    let s = boot(&c, &demo, "hs", json!({})).await;
    let id = s["id"].as_str().expect("id").to_string();
    let status = |v: &Value| v["server"]["host_status"].clone();
    let r = c.get(&admin, &format!("/servers/{id}"), Some("2.16")).await;
    assert_eq!(status(&r.body), json!("UP"));
    // Below 2.16, and for non-admins, the key is absent.
    let r = c.get(&admin, &format!("/servers/{id}"), Some("2.15")).await;
    assert!(r.body["server"].get("host_status").is_none());
    let r = c.get(&demo, &format!("/servers/{id}"), Some("2.16")).await;
    assert!(r.body["server"].get("host_status").is_none());
    force_down(&c, &admin, "rova-sim-1", true).await;
    let r = c.get(&admin, &format!("/servers/{id}"), Some("2.16")).await;
    assert_eq!(status(&r.body), json!("DOWN"));
    force_down(&c, &admin, "rova-sim-1", false).await;
    let r = c.get(&admin, &format!("/servers/{id}"), Some("2.16")).await;
    assert_eq!(status(&r.body), json!("UP"));
}

/// Resizes against the cores quota, as Nova counts them: a resize that
/// grows a server is checked against the limit (and holds the larger
/// flavor from its admission until it is confirmed or reverted); a resize
/// that shrinks one frees the cores at once, so reverting it grows the
/// server back and is checked again ("a revert might go over quota"):
/// refused while another server uses the freed core, admitted once that
/// one gave it back.
#[tokio::test]
async fn resizes_and_reverts_are_held_to_the_cores_quota() {
    let c = start_with(|cfg| {
        cfg.sim_hosts = 2;
        cfg.quota.cores = 3;
    })
    .await;
    let d = c.login("demo").await;
    // "two": 2 vCPUs on m1.tiny's disk, so m1.tiny is a resize down in
    // cores only.
    let admin = c.login("admin").await;
    let flavor = json!({"flavor": {"name": "two", "id": "two", "vcpus": 2, "ram": 512, "disk": 1}});
    let r = c.post(&admin, "/flavors", None, flavor).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let resize = |id: &str, flavor: &str| {
        (
            format!("/servers/{id}/action"),
            json!({"resize": {"flavorRef": flavor}}),
        )
    };
    // a is a "two", b an m1.tiny (1 vCPU): 3 of 3 cores.
    let r = create(&c, &d, "2.74", "a", "two", Value::Null).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    let a = r.body["server"]["id"].as_str().expect("a").to_string();
    c.wait_status(&d, &a, &["ACTIVE"], None).await;
    let b = boot(&c, &d, "b", Value::Null).await["id"]
        .as_str()
        .expect("b")
        .to_string();
    assert_eq!(used(&c, &d).await, json!(3));
    let (path, body) = resize(&b, "two");
    let r = c.post(&d, &path, None, body).await;
    assert_eq!(
        r.fault(403),
        "Quota exceeded for cores: Requested 1, but already used 3 of 3 cores"
    );
    // a shrinks to m1.tiny: a core is free while it awaits confirmation.
    let (path, body) = resize(&a, "1");
    let r = c.post(&d, &path, None, body).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    c.wait_status(&d, &a, &["VERIFY_RESIZE"], None).await;
    assert_eq!(used(&c, &d).await, json!(2));
    // b takes it.
    let (path, body) = resize(&b, "two");
    let r = c.post(&d, &path, None, body).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    c.wait_status(&d, &b, &["VERIFY_RESIZE"], None).await;
    assert_eq!(used(&c, &d).await, json!(3));
    // a's revert would grow it back past the limit.
    let revert = json!({"revertResize": null});
    let r = c
        .post(&d, &format!("/servers/{a}/action"), None, revert.clone())
        .await;
    assert_eq!(
        r.fault(403),
        "Quota exceeded for cores: Requested 1, but already used 3 of 3 cores"
    );
    let s = c
        .wait_status(&d, &a, &["VERIFY_RESIZE"], Some("2.74"))
        .await;
    assert_eq!(s["flavor"]["vcpus"], json!(1), "a is left as it was");
    // b reverts (shrinking back), then a may.
    let r = c
        .post(&d, &format!("/servers/{b}/action"), None, revert.clone())
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    c.wait_status(&d, &b, &["ACTIVE"], None).await;
    assert_eq!(used(&c, &d).await, json!(2));
    let r = c
        .post(&d, &format!("/servers/{a}/action"), None, revert)
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    let s = c.wait_status(&d, &a, &["ACTIVE"], Some("2.74")).await;
    assert_eq!(s["flavor"]["vcpus"], json!(2));
    assert_eq!(used(&c, &d).await, json!(3));
}

/// The cores a project uses, as /limits says.
async fn used(c: &TestCloud, d: &User) -> Value {
    let r = c.get(d, "/limits", None).await;
    r.body["limits"]["absolute"]["totalCoresUsed"].clone()
}

/// The uuid of the first hypervisor (2.53).
async fn r_hv_id(c: &TestCloud, a: &User) -> String {
    let r = c.get(a, "/os-hypervisors", Some("2.53")).await;
    r.body["hypervisors"][0]["id"]
        .as_str()
        .expect("hypervisor uuid")
        .to_string()
}
