//! A server's tags as rows of `instance_tags` (one per server and tag),
//! never inside the server's document: written with the server at create
//! and on every tag change, read back by a fresh process for views, the
//! tags API and the list filters, gone with the server's delete; and
//! migration 19 moving the tags a document listed into rows. Both
//! backends (PostgreSQL when `ROVA_TEST_PG_URL` is set).

use super::common::{self, TestCloud, User};
use super::storage::{backends, exec, query};
use reqwest::{Method, StatusCode};
use rova::store::{Database, Store, Table};
use serde_json::{json, Value};

const V: Option<&str> = Some("2.52");

/// The database the cloud keeps its tables in.
fn database(cloud: &TestCloud) -> Database {
    cloud
        .database
        .clone()
        .unwrap_or_else(|| Database::Sqlite(cloud.dir.join("rova.sqlite")))
}

/// The tag rows of server `id`: (tag, position), in position order.
fn tag_rows(cloud: &TestCloud, id: &str) -> Vec<(String, String)> {
    let sql =
        format!("SELECT tag, body FROM instance_tags WHERE instance_uuid = '{id}' ORDER BY id");
    let mut rows: Vec<(String, String)> = query(&database(cloud), &sql)
        .into_iter()
        .map(|r| {
            let tag = r[0].clone().unwrap_or_default();
            let body: Value = serde_json::from_str(r[1].as_deref().unwrap_or("{}")).expect("body");
            (tag, body["position"].to_string())
        })
        .collect();
    rows.sort_by(|a, b| a.1.cmp(&b.1));
    rows
}

/// The server's stored document.
fn document(cloud: &TestCloud, id: &str) -> Value {
    let rows = query(
        &database(cloud),
        &format!("SELECT body FROM instances WHERE id = '{id}'"),
    );
    serde_json::from_str(rows[0][0].as_deref().expect("body")).expect("json")
}

/// The names of the servers `GET /servers?<filter>` lists.
async fn listed(cloud: &TestCloud, u: &User, filter: &str) -> Vec<String> {
    let r = cloud.get(u, &format!("/servers/detail?{filter}"), V).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let mut names: Vec<String> = r.body["servers"]
        .as_array()
        .expect("servers")
        .iter()
        .map(|s| s["name"].as_str().unwrap_or_default().to_string())
        .collect();
    names.sort();
    names
}

#[tokio::test(flavor = "multi_thread")]
async fn a_servers_tags_are_rows_written_with_it_and_gone_with_its_delete() {
    let cloud = common::start().await;
    let demo = cloud.login("demo").await;
    let a = cloud
        .boot(&demo, "tagged", V, json!({"tags": ["b", "a"]}))
        .await;
    assert_eq!(a["status"], "ACTIVE", "{a}");
    let a = a["id"].as_str().expect("id").to_string();
    let other = cloud.boot(&demo, "plain", V, json!({})).await;
    let other = other["id"].as_str().expect("id").to_string();

    // Written with the server, in their order; not in its document.
    let pair = |t: &str, p: u32| (t.to_string(), p.to_string());
    assert_eq!(tag_rows(&cloud, &a), vec![pair("b", 0), pair("a", 1)]);
    assert!(tag_rows(&cloud, &other).is_empty());
    assert!(document(&cloud, &a).get("tags").is_none());

    // A change through the tags API rewrites the rows.
    let base = format!("/servers/{a}/tags");
    let r = cloud
        .compute(&demo, Method::PUT, &format!("{base}/c"), V, None)
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let r = cloud
        .compute(&demo, Method::DELETE, &format!("{base}/b"), V, None)
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
    assert_eq!(tag_rows(&cloud, &a), vec![pair("a", 0), pair("c", 1)]);
    assert!(document(&cloud, &a).get("tags").is_none());

    // A fresh process reads them back: views, the tags API, the filters.
    let cloud = cloud.restart().await;
    let demo = cloud.login("demo").await;
    let show = cloud.get(&demo, &format!("/servers/{a}"), V).await;
    assert_eq!(
        show.body["server"]["tags"],
        json!(["a", "c"]),
        "{}",
        show.text
    );
    let r = cloud.get(&demo, &base, V).await;
    assert_eq!(r.body, json!({"tags": ["a", "c"]}));
    let r = cloud.get(&demo, &format!("{base}/c"), V).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert_eq!(listed(&cloud, &demo, "tags=a,c").await, vec!["tagged"]);
    assert_eq!(listed(&cloud, &demo, "tags-any=c,z").await, vec!["tagged"]);
    assert_eq!(listed(&cloud, &demo, "not-tags=a").await, vec!["plain"]);
    assert_eq!(
        listed(&cloud, &demo, "not-tags-any=z").await,
        vec!["plain", "tagged"]
    );
    // Another order than the default walks every row: the same answer.
    assert_eq!(
        listed(&cloud, &demo, "tags=a&sort_key=display_name").await,
        vec!["tagged"]
    );
    let detail = cloud.get(&demo, "/servers/detail?name=tagged", V).await;
    assert_eq!(detail.body["servers"][0]["tags"], json!(["a", "c"]));

    // The delete takes them along (Nova's instance destroy does).
    let r = cloud
        .compute(&demo, Method::DELETE, &format!("/servers/{a}"), V, None)
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !tag_rows(&cloud, &a).is_empty() {
        assert!(std::time::Instant::now() < deadline, "tag rows left behind");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(listed(&cloud, &demo, "tags=a").await.is_empty());
}

/// A database from before tag rows (version 18: a server's document lists
/// its tags) is brought to version 19 on open: each tag becomes a row in
/// its place, and every document loses the list.
#[tokio::test(flavor = "multi_thread")]
async fn a_servers_listed_tags_become_rows() {
    for db in backends("server-tags-migrate") {
        {
            let store = Store::connect(&db).expect("open");
            let raw: Table<Value> = Table::load("instance", &store).expect("load");
            let doc = |tags: Value| json!({"uuid": "ignored", "display_name": "s", "tags": tags});
            raw.put("s1", doc(json!(["z", "y", "x"])))
                .await
                .expect("s1");
            raw.put("s2", doc(json!([]))).await.expect("s2");
        }
        exec(
            &db,
            "DROP TABLE instance_tags; DELETE FROM schema_migrations WHERE version = 19;",
        );
        let store = Store::connect(&db).expect("reopen migrates");
        drop(store);
        let rows = query(
            &db,
            "SELECT id, instance_uuid, tag FROM instance_tags ORDER BY id",
        );
        let ids: Vec<Option<String>> = rows.iter().map(|r| r[0].clone()).collect();
        assert_eq!(
            ids,
            vec![
                Some("s1/x".to_string()),
                Some("s1/y".to_string()),
                Some("s1/z".to_string())
            ],
            "{db:?}"
        );
        assert!(rows.iter().all(|r| r[1].as_deref() == Some("s1")), "{db:?}");
        let positions = query(&db, "SELECT tag, body FROM instance_tags WHERE tag = 'z'");
        let body: Value =
            serde_json::from_str(positions[0][1].as_deref().expect("body")).expect("json");
        assert_eq!(body["position"], 0, "{db:?}: z was first");
        for id in ["s1", "s2"] {
            let doc = query(
                &db,
                &format!("SELECT body FROM instances WHERE id = '{id}'"),
            );
            let doc: Value =
                serde_json::from_str(doc[0][0].as_deref().expect("body")).expect("json");
            assert!(doc.get("tags").is_none(), "{db:?}: {doc}");
            assert_eq!(doc["display_name"], "s", "{db:?}: the rest is kept");
        }
    }
}
