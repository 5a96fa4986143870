//! GET /servers and /servers/detail over HTTP (nova-facts §c): filters for
//! admins and non-admins per microversion, deleted servers, tenancy,
//! sorting, and limit/marker paging with working `servers_links`.

use crate::common::{self, Resp, TestCloud, User};
use chrono::{DateTime, Duration, Utc};
use reqwest::StatusCode;
use rova::compute::driver::InjectedFault;
use serde_json::{json, Value};
use std::collections::BTreeSet;

/// Names in response order.
fn names(r: &Resp) -> Vec<String> {
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    r.body["servers"]
        .as_array()
        .unwrap_or_else(|| panic!("servers list: {}", r.text))
        .iter()
        .map(|s| s["name"].as_str().unwrap_or_default().to_string())
        .collect()
}

/// Names as a set.
fn set(r: &Resp) -> BTreeSet<String> {
    names(r).into_iter().collect()
}

fn want(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}

async fn list(cloud: &TestCloud, u: &User, query: &str, version: Option<&str>) -> Resp {
    cloud.get(u, &format!("/servers{query}"), version).await
}

/// GET an absolute URL (a `next` link) with the user's token.
async fn get_url(cloud: &TestCloud, u: &User, url: &str) -> Resp {
    let r = cloud
        .http
        .get(url)
        .header("X-Auth-Token", &u.token)
        .send()
        .await
        .expect("request");
    Resp::read(r).await
}

fn iso(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
}

fn id_of(s: &Value) -> String {
    s["id"].as_str().expect("id").to_string()
}

async fn delete_and_wait(cloud: &TestCloud, u: &User, id: &str) {
    delete_server(cloud, u, id).await;
    cloud.wait_status(u, id, &["404"], None).await;
}

/// DELETE /servers/{id}: 204 (a soft or a hard delete, as configured).
async fn delete_server(cloud: &TestCloud, u: &User, id: &str) {
    let r = cloud
        .compute(
            u,
            reqwest::Method::DELETE,
            &format!("/servers/{id}"),
            None,
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
}

#[tokio::test]
async fn name_is_an_unanchored_regex() {
    let cloud = common::start().await;
    let demo = cloud.login("demo").await;
    for n in ["alpha", "alpha2", "beta", "t1", "t14", "test11"] {
        cloud.boot(&demo, n, None, json!({})).await;
    }
    assert_eq!(
        set(&list(&cloud, &demo, "?name=^al", None).await),
        want(&["alpha", "alpha2"])
    );
    assert_eq!(
        set(&list(&cloud, &demo, "?name=pha2", None).await),
        want(&["alpha2"])
    );
    assert_eq!(
        set(&list(&cloud, &demo, "?name=t1", None).await),
        want(&["t1", "t14", "test11"])
    );
    assert_eq!(
        set(&list(&cloud, &demo, "?name=alpha%7Cbeta", None).await),
        want(&["alpha", "alpha2", "beta"])
    );
    assert_eq!(
        set(&list(&cloud, &demo, "?name=zzz", None).await),
        want(&[])
    );
    // Repeated: the last value wins.
    assert_eq!(
        set(&list(&cloud, &demo, "?name=beta&name=^t1$", None).await),
        want(&["t1"])
    );
    let m = list(&cloud, &demo, "?name=%5B", None).await.fault(400);
    assert_eq!(
        m,
        "Invalid input for query parameters name. Value: [. '[' is not a 'regex'"
    );
    // Detail filters the same way.
    let d = cloud.get(&demo, "/servers/detail?name=^be", None).await;
    assert_eq!(set(&d), want(&["beta"]));
    assert_eq!(d.body["servers"][0]["status"], "ACTIVE");
}

#[tokio::test]
async fn status_filter_and_its_version_boundaries() {
    let cloud = common::start().await;
    let demo = cloud.login("demo").await;
    let admin = cloud.login("admin").await;
    cloud.boot(&demo, "ok1", None, json!({})).await;
    let gone = cloud.boot(&demo, "gone", None, json!({})).await;
    let fake = cloud.app.compute.fake.as_ref().expect("fake driver");
    fake.inject(InjectedFault {
        op: "spawn".into(),
        count: 1,
        message: "boom".into(),
        host: None,
        step: None,
    })
    .await
    .expect("fault injected");
    let bad = cloud.boot(&demo, "bad", None, json!({})).await;
    assert_eq!(bad["status"], "ERROR");
    delete_and_wait(&cloud, &demo, &id_of(&gone)).await;

    assert_eq!(
        set(&list(&cloud, &demo, "?status=ACTIVE", None).await),
        want(&["ok1"])
    );
    assert_eq!(
        set(&list(&cloud, &demo, "?status=ERROR", None).await),
        want(&["bad"])
    );
    assert_eq!(
        set(&list(&cloud, &demo, "?status=ACTIVE&status=ERROR", None).await),
        want(&["ok1", "bad"]),
        "repeated status values are all used"
    );
    assert_eq!(
        set(&list(&cloud, &demo, "?status=SHUTOFF", None).await),
        want(&[])
    );
    // Unknown status: empty below 2.38, 400 from 2.38.
    let r = list(&cloud, &demo, "?status=BOGUS", Some("2.37")).await;
    assert_eq!(r.body, json!({"servers": []}));
    let m = list(&cloud, &demo, "?status=BOGUS", Some("2.38"))
        .await
        .fault(400);
    assert_eq!(m, "Invalid status value");
    // DELETED needs admin.
    let m = list(&cloud, &demo, "?status=DELETED", None)
        .await
        .fault(403);
    assert_eq!(m, "Only administrators may list deleted instances");
    let r = cloud
        .get(&admin, "/servers/detail?status=DELETED&all_tenants=1", None)
        .await;
    assert_eq!(set(&r), want(&["gone"]));
    assert_eq!(r.body["servers"][0]["status"], "DELETED");
}

#[tokio::test]
async fn image_flavor_and_ip_filters() {
    let cloud = common::start().await;
    let demo = cloud.login("demo").await;
    let alt_image = cloud
        .app
        .images
        .filter(|_| true)
        .iter()
        .find(|i| i.name.as_deref() == Some(rova::bootstrap::IMAGE_ALT_NAME))
        .map(|i| i.id.clone())
        .expect("alt image");
    let a = cloud.boot(&demo, "a", None, json!({})).await;
    cloud
        .boot(
            &demo,
            "b",
            None,
            json!({"imageRef": alt_image, "flavorRef": "42"}),
        )
        .await;
    cloud
        .boot(&demo, "nonet", Some("2.37"), json!({"networks": "none"}))
        .await;

    let q = format!("?image={alt_image}");
    assert_eq!(set(&list(&cloud, &demo, &q, None).await), want(&["b"]));
    let q = format!("?image={}", cloud.image_id());
    assert_eq!(
        set(&list(&cloud, &demo, &q, None).await),
        want(&["a", "nonet"])
    );
    assert_eq!(
        set(&list(&cloud, &demo, "?flavor=42", None).await),
        want(&["b"])
    );
    assert_eq!(
        set(&list(&cloud, &demo, "?flavor=1", None).await),
        want(&["a", "nonet"])
    );
    assert_eq!(
        set(&list(&cloud, &demo, "?flavor=999", None).await),
        want(&[]),
        "unknown flavor: empty"
    );

    // ip: start-anchored regex over fixed IPv4 addresses.
    let addr = a["addresses"]["private"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["version"] == 4)
        .and_then(|x| x["addr"].as_str())
        .expect("v4 address")
        .to_string();
    assert_eq!(
        set(&list(&cloud, &demo, "?ip=10%5C.", None).await),
        want(&["a", "b"])
    );
    let exact = format!("?ip=%5E{}%24", addr.replace('.', "%5C."));
    assert_eq!(set(&list(&cloud, &demo, &exact, None).await), want(&["a"]));
    assert_eq!(
        set(&list(&cloud, &demo, "?ip=0%5C.0", None).await),
        want(&[]),
        "anchored at the start"
    );
    // ip6 is allowed for non-admins from 2.5; ignored before.
    assert_eq!(
        set(&list(&cloud, &demo, "?ip6=fd00", Some("2.5")).await),
        want(&["a", "b"])
    );
    assert_eq!(
        set(&list(&cloud, &demo, "?ip6=zz", Some("2.4")).await),
        want(&["a", "b", "nonet"])
    );
    assert_eq!(
        set(&list(&cloud, &demo, "?ip6=zz", Some("2.5")).await),
        want(&[])
    );
}

#[tokio::test]
async fn changes_since_and_before_show_deleted_servers() {
    let cloud = common::start().await;
    let demo = cloud.login("demo").await;
    let s0 = cloud.boot(&demo, "s0", None, json!({})).await;
    let s1 = cloud.boot(&demo, "s1", None, json!({})).await;
    let s2 = cloud.boot(&demo, "s2", None, json!({})).await;
    cloud.app.clock.advance(Duration::seconds(60));
    let t = cloud.app.clock.now();
    cloud.app.clock.advance(Duration::seconds(60));
    // After t: s1 deleted, s2 renamed, s3 created.
    delete_and_wait(&cloud, &demo, &id_of(&s1)).await;
    let r = cloud
        .compute(
            &demo,
            reqwest::Method::PUT,
            &format!("/servers/{}", id_of(&s2)),
            None,
            Some(json!({"server": {"name": "s2b"}})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    cloud.boot(&demo, "s3", None, json!({})).await;

    let since = format!("?changes-since={}", iso(t));
    let r = cloud
        .get(&demo, &format!("/servers/detail{since}"), None)
        .await;
    assert_eq!(set(&r), want(&["s1", "s2b", "s3"]));
    let deleted = r.body["servers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "s1")
        .cloned()
        .unwrap();
    assert_eq!(
        deleted["status"], "DELETED",
        "a deleted server shows as DELETED: {deleted}"
    );
    // Without changes-since the deleted one is hidden.
    assert_eq!(
        set(&list(&cloud, &demo, "", None).await),
        want(&["s0", "s2b", "s3"])
    );
    // changes-before needs 2.66 for non-admins.
    let before = format!("?changes-before={}", iso(t));
    assert_eq!(
        set(&list(&cloud, &demo, &before, Some("2.66")).await),
        want(&["s0"])
    );
    assert_eq!(
        set(&list(&cloud, &demo, &before, Some("2.65")).await),
        want(&["s0", "s2b", "s3"]),
        "ignored below 2.66"
    );
    let both = format!(
        "?changes-since={}&changes-before={}",
        iso(t),
        iso(t + Duration::seconds(3600))
    );
    assert_eq!(
        set(&list(&cloud, &demo, &both, Some("2.66")).await),
        want(&["s1", "s2b", "s3"])
    );
    let inverted = format!(
        "?changes-since={}&changes-before={}",
        iso(t),
        iso(t - Duration::seconds(1))
    );
    let m = list(&cloud, &demo, &inverted, Some("2.66"))
        .await
        .fault(400);
    assert_eq!(
        m,
        "The value of changes-since must be less than or equal to changes-before."
    );
    let m = list(&cloud, &demo, "?changes-since=yesterday", None)
        .await
        .fault(400);
    assert_eq!(
        m,
        "Invalid input for query parameters changes-since. Value: yesterday. 'yesterday' is not a 'date-time'"
    );
    // The deleted server's own GET is 404.
    let r = cloud
        .get(&demo, &format!("/servers/{}", id_of(&s1)), None)
        .await;
    r.fault(404);
    let _ = s0;
}

#[tokio::test]
async fn deleted_true_is_admin_only() {
    let cloud = common::start().await;
    let demo = cloud.login("demo").await;
    let admin = cloud.login("admin").await;
    cloud.boot(&demo, "live", None, json!({})).await;
    let dead = cloud.boot(&demo, "dead", None, json!({})).await;
    delete_and_wait(&cloud, &demo, &id_of(&dead)).await;
    let r = cloud
        .get(&admin, "/servers/detail?deleted=true&all_tenants=1", None)
        .await;
    assert_eq!(set(&r), want(&["dead"]));
    assert_eq!(r.body["servers"][0]["status"], "DELETED");
    assert!(r.body["servers"][0]["OS-SRV-USG:terminated_at"].is_string());
    let r = cloud
        .get(&admin, "/servers?deleted=false&all_tenants=1", None)
        .await;
    assert_eq!(set(&r), want(&["live"]));
    // A non-admin's `deleted` is stripped by the allow-list.
    assert_eq!(
        set(&list(&cloud, &demo, "?deleted=true", None).await),
        want(&["live"])
    );
}

#[tokio::test]
async fn all_tenants_and_project_filters() {
    let cloud = common::start().await;
    let demo = cloud.login("demo").await;
    let alt = cloud.login("alt_demo").await;
    let admin = cloud.login("admin").await;
    cloud.boot(&demo, "d1", None, json!({})).await;
    cloud.boot(&alt, "a1", None, json!({})).await;
    cloud.boot(&admin, "adm", None, json!({})).await;

    let m = list(&cloud, &demo, "?all_tenants=1", None).await.fault(403);
    assert_eq!(
        m,
        "Policy doesn't allow os_compute_api:servers:index:get_all_tenants to be performed."
    );
    let m = cloud
        .get(&demo, "/servers/detail?all_tenants", None)
        .await
        .fault(403);
    assert_eq!(
        m,
        "Policy doesn't allow os_compute_api:servers:detail:get_all_tenants to be performed."
    );

    // Each project sees only its own without all_tenants, admins included.
    assert_eq!(set(&list(&cloud, &demo, "", None).await), want(&["d1"]));
    assert_eq!(set(&list(&cloud, &alt, "", None).await), want(&["a1"]));
    assert_eq!(set(&list(&cloud, &admin, "", None).await), want(&["adm"]));
    let q = format!("?tenant_id={}", alt.project_id);
    assert_eq!(
        set(&list(&cloud, &admin, &q, None).await),
        want(&["adm"]),
        "tenant_id dropped without all_tenants"
    );

    assert_eq!(
        set(&list(&cloud, &admin, "?all_tenants=1", None).await),
        want(&["d1", "a1", "adm"])
    );
    assert_eq!(
        set(&list(&cloud, &admin, "?all_tenants", None).await),
        want(&["d1", "a1", "adm"])
    );
    assert_eq!(
        set(&list(&cloud, &admin, "?all_tenants=0", None).await),
        want(&["adm"])
    );
    let q = format!("?all_tenants=1&project_id={}", alt.project_id);
    assert_eq!(set(&list(&cloud, &admin, &q, None).await), want(&["a1"]));
    let q = format!("?all_tenants=true&tenant_id={}", demo.project_id);
    assert_eq!(set(&list(&cloud, &admin, &q, None).await), want(&["d1"]));
    let m = list(&cloud, &admin, "?all_tenants=maybe", None)
        .await
        .fault(400);
    assert!(
        m.starts_with("Invalid input received: Unrecognized value 'maybe'"),
        "{m}"
    );
    // Detail shows the owner of each.
    let r = cloud
        .get(&admin, "/servers/detail?all_tenants=1&name=a1", None)
        .await;
    assert_eq!(r.body["servers"][0]["tenant_id"], json!(alt.project_id));
}

#[tokio::test]
async fn tag_filters_from_2_26() {
    let cloud = common::start().await;
    let demo = cloud.login("demo").await;
    let v = Some("2.52");
    cloud
        .boot(&demo, "ab", v, json!({"tags": ["a", "b"]}))
        .await;
    cloud.boot(&demo, "a", v, json!({"tags": ["a"]})).await;
    cloud.boot(&demo, "none", v, json!({})).await;
    let v26 = Some("2.26");
    assert_eq!(
        set(&list(&cloud, &demo, "?tags=a,b", v26).await),
        want(&["ab"])
    );
    assert_eq!(
        set(&list(&cloud, &demo, "?tags=a", v26).await),
        want(&["ab", "a"])
    );
    assert_eq!(
        set(&list(&cloud, &demo, "?tags-any=a,b", v26).await),
        want(&["ab", "a"])
    );
    assert_eq!(
        set(&list(&cloud, &demo, "?tags-any=b,zz", v26).await),
        want(&["ab"])
    );
    assert_eq!(
        set(&list(&cloud, &demo, "?not-tags=a,b", v26).await),
        want(&["a", "none"])
    );
    assert_eq!(
        set(&list(&cloud, &demo, "?not-tags-any=a", v26).await),
        want(&["none"])
    );
    assert_eq!(
        set(&list(&cloud, &demo, "?tags=a&not-tags-any=b", v26).await),
        want(&["a"]),
        "filters combine"
    );
    // Below 2.26 the tag filters are not in the schema: ignored.
    assert_eq!(
        set(&list(&cloud, &demo, "?tags=a,b", Some("2.25")).await),
        want(&["ab", "a", "none"])
    );
}

#[tokio::test]
async fn locked_filter_from_2_73() {
    let cloud = common::start().await;
    let demo = cloud.login("demo").await;
    let l = cloud.boot(&demo, "locked", None, json!({})).await;
    cloud.boot(&demo, "free", None, json!({})).await;
    let r = cloud
        .post(
            &demo,
            &format!("/servers/{}/action", id_of(&l)),
            None,
            json!({"lock": null}),
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    let v = Some("2.73");
    assert_eq!(
        set(&list(&cloud, &demo, "?locked=true", v).await),
        want(&["locked"])
    );
    assert_eq!(
        set(&list(&cloud, &demo, "?locked=False", v).await),
        want(&["free"])
    );
    assert_eq!(
        set(&list(&cloud, &demo, "?locked=1", v).await),
        want(&["locked"])
    );
    let m = list(&cloud, &demo, "?locked=maybe", v).await.fault(400);
    assert!(
        m.starts_with("Invalid input received: Unrecognized value 'maybe'"),
        "{m}"
    );
    // Below 2.73 it is not a filter.
    assert_eq!(
        set(&list(&cloud, &demo, "?locked=true", Some("2.72")).await),
        want(&["locked", "free"])
    );
    let admin = cloud.login("admin").await;
    assert_eq!(
        set(&list(&cloud, &admin, "?locked=true&all_tenants=1", Some("2.72")).await),
        want(&["locked", "free"])
    );
    // Sorting by locked from 2.73.
    let r = list(&cloud, &demo, "?sort_key=locked&sort_dir=desc", v).await;
    assert_eq!(names(&r)[0], "locked");
    let r = list(&cloud, &demo, "?sort_key=locked&sort_dir=asc", v).await;
    assert_eq!(names(&r)[0], "free");
}

#[tokio::test]
async fn unknown_filters_by_version_and_role() {
    let cloud = common::start().await;
    let demo = cloud.login("demo").await;
    let admin = cloud.login("admin").await;
    cloud.boot(&demo, "x", None, json!({})).await;
    cloud.boot(&admin, "y", None, json!({})).await;
    // Non-admin: unknown names stripped below 2.75, so nothing is filtered.
    assert_eq!(
        set(&list(&cloud, &demo, "?foo=bar", Some("2.74")).await),
        want(&["x"])
    );
    // Names in the schema but not on the non-admin allow-list are ignored too.
    assert_eq!(
        set(&list(&cloud, &demo, "?host=nowhere", Some("2.74")).await),
        want(&["x"])
    );
    assert_eq!(
        set(&list(&cloud, &demo, "?key_name=zzz", Some("2.82")).await),
        want(&["x"])
    );
    assert_eq!(
        set(&list(&cloud, &demo, "?key_name=zzz", Some("2.83")).await),
        want(&[]),
        "allowed from 2.83"
    );
    let m = list(&cloud, &demo, "?foo=bar", Some("2.75"))
        .await
        .fault(400);
    assert_eq!(m, "'foo' does not match any of the regexes: '^_'");
    // `_x` passes the schema: ignored for non-admins, 400 for admins.
    assert_eq!(
        set(&list(&cloud, &demo, "?_x=1", Some("2.75")).await),
        want(&["x"])
    );
    let m = list(&cloud, &admin, "?_x=1", None).await.fault(400);
    assert_eq!(m, "Invalid filter field: _x.");
    let m = list(&cloud, &admin, "?metadata=a", None).await.fault(400);
    assert_eq!(m, "Invalid filter field: metadata.");
    // Admin: unknown names stripped below 2.75 as well, 400 from 2.75.
    assert_eq!(
        set(&list(&cloud, &admin, "?foo=bar", None).await),
        want(&["y"])
    );
    list(&cloud, &admin, "?foo=bar", Some("2.75"))
        .await
        .fault(400);
    // Admin filters on anything in the schema: host.
    assert_eq!(
        set(&list(&cloud, &admin, "?all_tenants=1&host=nowhere", None).await),
        want(&[])
    );
    assert_eq!(
        set(&list(&cloud, &admin, "?all_tenants=1&host=rova-sim-1", None).await),
        want(&["x", "y"])
    );
}

#[tokio::test]
async fn sorting() {
    let cloud = common::start().await;
    let demo = cloud.login("demo").await;
    for n in ["c", "a", "b"] {
        cloud.boot(&demo, n, None, json!({})).await;
        cloud.app.clock.advance(Duration::seconds(1));
    }
    assert_eq!(
        names(&list(&cloud, &demo, "", None).await),
        ["b", "a", "c"],
        "created_at desc by default"
    );
    assert_eq!(
        names(&list(&cloud, &demo, "?sort_key=display_name&sort_dir=asc", None).await),
        ["a", "b", "c"]
    );
    assert_eq!(
        names(&list(&cloud, &demo, "?sort_key=display_name", None).await),
        ["c", "b", "a"],
        "the default direction is desc"
    );
    assert_eq!(
        names(&list(&cloud, &demo, "?sort_key=created_at&sort_dir=asc", None).await),
        ["c", "a", "b"]
    );
    let m = list(&cloud, &demo, "?sort_dir=up", None).await.fault(400);
    assert_eq!(
        m,
        "Invalid input received: Unknown sort direction, must be 'desc' or 'asc'"
    );
    let m = list(
        &cloud,
        &demo,
        "?sort_key=display_name&sort_dir=asc&sort_dir=desc",
        None,
    )
    .await
    .fault(400);
    assert_eq!(
        m,
        "Invalid input received: Sort direction size exceeds sort key size"
    );
    let m = list(&cloud, &demo, "?sort_key=bogus", None)
        .await
        .fault(400);
    assert!(
        m.starts_with(
            "Invalid input for query parameters sort_key. Value: bogus. 'bogus' is not one of ["
        ),
        "{m}"
    );
    let m = list(&cloud, &demo, "?sort_key=host", None).await.fault(403);
    assert_eq!(m, "Only administrators can sort servers by host");
    let m = list(&cloud, &demo, "?sort_key=node", None).await.fault(403);
    assert_eq!(m, "Only administrators can sort servers by node");
    // Keys ignored below 2.75 (with their direction), 400 from 2.75.
    assert_eq!(
        names(&list(&cloud, &demo, "?sort_key=vcpus&sort_dir=asc", Some("2.74")).await),
        ["b", "a", "c"]
    );
    list(&cloud, &demo, "?sort_key=vcpus", Some("2.75"))
        .await
        .fault(400);
    let admin = cloud.login("admin").await;
    let r = list(
        &cloud,
        &admin,
        "?all_tenants=1&sort_key=host&sort_key=display_name&sort_dir=asc",
        None,
    )
    .await;
    assert_eq!(names(&r), ["a", "b", "c"]);
}

#[tokio::test]
async fn paging_with_limit_marker_and_next_links() {
    let cloud = common::start().await;
    let demo = cloud.login("demo").await;
    for i in 0..5 {
        cloud.boot(&demo, &format!("p{i}"), None, json!({})).await;
    }
    let all = names(&list(&cloud, &demo, "", None).await);
    assert_eq!(all.len(), 5);
    assert!(list(&cloud, &demo, "", None)
        .await
        .body
        .get("servers_links")
        .is_none());

    for path in ["/servers", "/servers/detail"] {
        let mut seen: Vec<String> = Vec::new();
        let mut r = cloud.get(&demo, &format!("{path}?limit=2"), None).await;
        let mut pages = 0;
        loop {
            pages += 1;
            seen.extend(names(&r));
            let Some(links) = r.body.get("servers_links") else {
                break;
            };
            assert_eq!(links[0]["rel"], "next");
            let href = links[0]["href"].as_str().expect("href").to_string();
            let prefix = format!("{}/compute/v2.1{path}?", cloud.base);
            assert!(
                href.starts_with(&prefix),
                "{href} should start with {prefix}"
            );
            let last = r.body["servers"].as_array().unwrap().last().unwrap()["id"]
                .as_str()
                .unwrap()
                .to_string();
            assert!(href.ends_with(&format!("limit=2&marker={last}")), "{href}");
            r = get_url(&cloud, &demo, &href).await;
            assert!(pages < 10, "paging must end");
        }
        assert_eq!(seen, all, "paging {path} walks the whole list in order");
        assert_eq!(pages, 3);
    }

    // A page that happens to be the last one still gets a link (Nova's rule);
    // following it gives an empty page without a link.
    let r = list(&cloud, &demo, "?limit=5", None).await;
    let href = r.body["servers_links"][0]["href"]
        .as_str()
        .expect("link")
        .to_string();
    let r2 = get_url(&cloud, &demo, &href).await;
    assert_eq!(r2.body, json!({"servers": []}));

    // Other parameters are kept in the link, sorted by name; Nova then sets
    // `marker` on that ordered dict, so a new marker goes last and an
    // existing one keeps its sorted place.
    let keys_of = |href: &str| -> Vec<String> {
        let q = href.split_once('?').unwrap().1;
        q.split('&')
            .map(|kv| kv.split('=').next().unwrap().to_string())
            .collect()
    };
    let r = list(
        &cloud,
        &demo,
        "?sort_key=display_name&sort_dir=asc&limit=2&name=p",
        None,
    )
    .await;
    assert_eq!(names(&r), ["p0", "p1"]);
    let href = r.body["servers_links"][0]["href"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        keys_of(&href),
        ["limit", "name", "sort_dir", "sort_key", "marker"]
    );
    let r = get_url(&cloud, &demo, &href).await;
    assert_eq!(names(&r), ["p2", "p3"]);
    let href = r.body["servers_links"][0]["href"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        keys_of(&href),
        ["limit", "marker", "name", "sort_dir", "sort_key"]
    );
    let r = get_url(&cloud, &demo, &href).await;
    assert_eq!(names(&r), ["p4"]);

    // Marker directly; limit=0; bad values.
    let first = list(&cloud, &demo, "?limit=1", None).await;
    let m1 = first.body["servers"][0]["id"].as_str().unwrap().to_string();
    let r = list(&cloud, &demo, &format!("?marker={m1}"), None).await;
    assert_eq!(names(&r), all[1..].to_vec());
    let r = list(&cloud, &demo, "?limit=0", None).await;
    assert_eq!(r.body, json!({"servers": []}));
    let m = list(&cloud, &demo, "?marker=nope", None).await.fault(400);
    assert_eq!(m, "marker [nope] not found");
    let m = list(&cloud, &demo, "?limit=-1", None).await.fault(400);
    assert_eq!(
        m,
        "Invalid input for query parameters limit. Value: -1. '-1' does not match '^[0-9]*$'"
    );
    let m = list(&cloud, &demo, "?limit=abc", None).await.fault(400);
    assert!(
        m.starts_with("Invalid input for query parameters limit."),
        "{m}"
    );
    // A deleted server still works as a marker (Nova looks markers up with deleted rows).
    let victim = m1.clone();
    delete_and_wait(&cloud, &demo, &victim).await;
    let r = list(&cloud, &demo, &format!("?marker={victim}"), None).await;
    assert_eq!(
        names(&r),
        all[1..].to_vec(),
        "a deleted server still works as a marker"
    );
}

#[tokio::test]
async fn max_limit_caps_pages_and_project_id_links() {
    let cloud = common::start_with(|cfg| cfg.max_limit = 2).await;
    let demo = cloud.login("demo").await;
    for i in 0..3 {
        cloud.boot(&demo, &format!("m{i}"), None, json!({})).await;
    }
    let r = list(&cloud, &demo, "", None).await;
    assert_eq!(names(&r).len(), 2, "max_limit applies without a limit");
    assert!(r.body.get("servers_links").is_some());
    let r = list(&cloud, &demo, "?limit=100", None).await;
    assert_eq!(names(&r).len(), 2, "and caps a bigger limit");
    // With the project id in the URL the link keeps it, and it works.
    let url = format!(
        "{}/compute/v2.1/{}/servers/detail",
        cloud.base, demo.project_id
    );
    let r = get_url(&cloud, &demo, &url).await;
    assert_eq!(names(&r).len(), 2);
    let href = r.body["servers_links"][0]["href"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        href.starts_with(&format!(
            "{}/compute/v2.1/{}/servers/detail?",
            cloud.base, demo.project_id
        )),
        "{href}"
    );
    let r2 = get_url(&cloud, &demo, &href).await;
    assert_eq!(names(&r2).len(), 1);
    assert!(r2.body.get("servers_links").is_none());
}

/// Creates `n` servers named `<prefix>-<i>` in one multi-create request
/// (so their `created_at` ties and `id` orders them) and waits until none
/// is building; returns their ids.
async fn create_batch(cloud: &TestCloud, u: &User, prefix: &str, n: usize) -> Vec<String> {
    let body = json!({"server": {"name": prefix, "imageRef": cloud.image_id(), "flavorRef": "1",
        "networks": "none", "min_count": n}});
    let r = cloud.post(u, "/servers", Some("2.74"), body).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    for _ in 0..1000 {
        let r = cloud
            .get(u, &format!("/servers/detail?name=^{prefix}-"), Some("2.74"))
            .await;
        let servers = r.body["servers"].as_array().cloned().unwrap_or_default();
        if servers.len() == n && servers.iter().all(|s| s["status"] != json!("BUILD")) {
            return servers.iter().map(id_of).collect();
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    panic!("batch {prefix} never finished building");
}

/// One list request's answer: ids and the next link's query, or a fault.
#[derive(Debug, PartialEq)]
enum Answer {
    Page(Vec<String>, Option<String>),
    Fault(u16, String),
}

/// A list in Nova's default order walks the instances' ordered index from
/// the marker; any other order filters and sorts every row. The walk must
/// answer exactly as the sort would: for members and admins, with and
/// without markers (live, deleted, another project's, unknown), filters,
/// `all_tenants`, `project_id`/`tenant_id`, `deleted=true`, `changes-since`,
/// both directions, and limits 0, 1, 3 and 1000. Each GET goes through the
/// walk (asserted); its ids and next link are compared with the full sort
/// run on the same rows and the same parsed query.
#[tokio::test]
async fn default_order_walk_answers_as_the_full_sort() {
    use rova::compute::servers::{sorted_page, walked_page};
    use rova_core::microversion::Microversion;
    use rova_core::query::{parse_list_query, ListContext};

    let cloud = common::start_with(|cfg| {
        cfg.reclaim_instance_interval = 86400;
        cfg.quota.instances = 100;
        cfg.quota.cores = 100;
        cfg.quota.ram = 1 << 20;
    })
    .await;
    let demo = cloud.login("demo").await;
    let alt = cloud.login("alt_demo").await;
    let admin = cloud.login("admin").await;
    let mut ids = create_batch(&cloud, &demo, "d1", 12).await;
    ids.extend(create_batch(&cloud, &alt, "a1", 12).await);
    let since = Utc::now();
    ids.extend(create_batch(&cloud, &demo, "d2", 12).await);
    ids.extend(create_batch(&cloud, &alt, "a2", 12).await);
    // Soft-delete some of each project's; then hard-delete a few of those.
    for (u, id) in [
        (&demo, &ids[0]),
        (&demo, &ids[5]),
        (&demo, &ids[30]),
        (&alt, &ids[13]),
        (&alt, &ids[40]),
    ] {
        delete_server(&cloud, u, id).await;
    }
    for (u, id) in [(&demo, &ids[5]), (&alt, &ids[40])] {
        let r = cloud
            .post(
                u,
                &format!("/servers/{id}/action"),
                None,
                json!({"forceDelete": null}),
            )
            .await;
        assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
        cloud.wait_status(u, id, &["404"], None).await;
    }
    let gone = cloud
        .get(&admin, "/servers/detail?all_tenants=1&deleted=true", None)
        .await;
    let statuses: Vec<&str> = gone.body["servers"]
        .as_array()
        .expect("servers")
        .iter()
        .filter_map(|s| s["status"].as_str())
        .collect();
    assert_eq!(statuses.len(), 5, "{}", gone.text);
    assert_eq!(statuses.iter().filter(|s| **s == "DELETED").count(), 2);

    let since = iso(since);
    let base: Vec<String> = vec![
        String::new(),
        "status=ACTIVE".into(),
        "name=-1".into(),
        "sort_dir=asc".into(),
        "sort_key=created_at&sort_dir=desc".into(),
        format!("changes-since={since}"),
        format!("changes-before={since}"),
        "all_tenants=1".into(),
        "all_tenants=1&deleted=true".into(),
        "all_tenants=1&deleted=true&sort_dir=asc".into(),
        "all_tenants=1&status=SOFT_DELETED".into(),
        format!("all_tenants=1&project_id={}", alt.project_id),
        format!("all_tenants=1&tenant_id={}&sort_dir=asc", demo.project_id),
        format!("all_tenants=1&changes-since={since}"),
        format!("tenant_id={}", alt.project_id),
    ];
    let markers: Vec<Option<String>> = [0, 1, 5, 11, 12, 13, 20, 30, 35, 40, 47]
        .iter()
        .map(|&i| Some(ids[i].clone()))
        .chain([None, Some("no-such-server".to_string())])
        .collect();
    let users = [(&demo, false), (&alt, false), (&admin, true)];
    let mut compared = 0;
    let mut nonempty = 0;
    for (u, is_admin) in users {
        for b in &base {
            for limit in [None, Some(0), Some(1), Some(3), Some(1000)] {
                for marker in &markers {
                    let mut pairs: Vec<(String, String)> = form_urlencoded_pairs(b);
                    if let Some(l) = limit {
                        pairs.push(("limit".into(), l.to_string()));
                    }
                    if let Some(m) = marker {
                        pairs.push(("marker".into(), m.clone()));
                    }
                    let query: String = form_urlencoded::Serializer::new(String::new())
                        .extend_pairs(&pairs)
                        .finish();
                    let lctx = ListContext {
                        is_admin,
                        project_id: u.project_id.clone(),
                        version: Microversion::new(2, 74),
                        max_limit: cloud.app.cfg.max_limit,
                        detail: true,
                    };
                    let Ok(q) = parse_list_query(&pairs, &lctx) else {
                        // Non-admins' all_tenants: a 403 before any paging.
                        assert!(!is_admin && b.contains("all_tenants"), "{query}");
                        continue;
                    };
                    let sorted = match sorted_page(&cloud.app, &q) {
                        Ok(p) => Answer::Page(
                            p.servers.iter().map(|s| s.uuid.clone()).collect(),
                            p.next_query,
                        ),
                        Err(f) => Answer::Fault(f.code, f.message),
                    };
                    let walked = match walked_page(&cloud.app, &q).expect("default order walks") {
                        Ok(p) => Answer::Page(
                            p.servers.iter().map(|s| s.uuid.clone()).collect(),
                            p.next_query,
                        ),
                        Err(f) => Answer::Fault(f.code, f.message),
                    };
                    assert_eq!(walked, sorted, "{query} as admin={is_admin}");
                    // The endpoint answers the same (it takes the walk).
                    let r = cloud
                        .get(u, &format!("/servers/detail?{query}"), Some("2.74"))
                        .await;
                    let http = if r.status == StatusCode::OK {
                        let next = r.body["servers_links"][0]["href"]
                            .as_str()
                            .and_then(|h| h.split_once('?'))
                            .map(|(_, q)| q.to_string());
                        let ids = r.body["servers"]
                            .as_array()
                            .expect("servers")
                            .iter()
                            .map(id_of)
                            .collect();
                        Answer::Page(ids, next)
                    } else {
                        Answer::Fault(r.status.as_u16(), r.fault(r.status.as_u16()))
                    };
                    assert_eq!(http, sorted, "GET ?{query} as admin={is_admin}");
                    if matches!(&sorted, Answer::Page(ids, _) if !ids.is_empty()) {
                        nonempty += 1;
                    }
                    compared += 1;
                }
            }
        }
    }
    assert!(
        compared > 500 && nonempty > 200,
        "{compared} compared, {nonempty} non-empty"
    );
}

fn form_urlencoded_pairs(q: &str) -> Vec<(String, String)> {
    form_urlencoded::parse(q.as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}
