//! A server's instance actions and their events as rows: each action a
//! row of `instance_actions` (migration 15 split the per-server logs),
//! each event a row of `instance_action_events` written with its action
//! (migration 20 moved the events out of the actions' documents), on
//! both backends.

use super::{backends, count, exec, query};
use rova::compute::action_events;
use rova::compute::{ActionEvent, InstanceAction};
use rova::store::{Database, Store, Table};
use serde_json::{json, Value};

/// The document of a pre-20 action of server `srv`, its events inside.
fn action_doc(name: &str, req: &str, at: &str, events: &[&str]) -> Value {
    let events: Vec<Value> = events
        .iter()
        .map(|e| {
            json!({"event": e, "start_time": at, "finish_time": at, "result": "Success",
                   "traceback": null, "host": "h", "details": null})
        })
        .collect();
    json!({"action": name, "instance_uuid": "srv", "request_id": req,
        "user_id": "u", "project_id": "p", "start_time": at, "updated_at": at,
        "message": null, "events": events})
}

/// Server `base`'s actions list and each action's show, as an admin sees
/// them at 2.84 (every field).
async fn answers(cloud: &crate::common::TestCloud, base: &str) -> (Value, Vec<Value>) {
    let admin = cloud.login("admin").await;
    let list = cloud.get(&admin, base, Some("2.84")).await;
    assert_eq!(list.status.as_u16(), 200, "{}", list.text);
    let mut shows = Vec::new();
    for a in list.body["instanceActions"].as_array().expect("actions") {
        let req = a["request_id"].as_str().expect("request id");
        let r = cloud
            .get(&admin, &format!("{base}/{req}"), Some("2.84"))
            .await;
        assert_eq!(r.status.as_u16(), 200, "{}", r.text);
        shows.push(r.body["instanceAction"].clone());
    }
    (list.body, shows)
}

fn is_pg(db: &Database) -> bool {
    matches!(db, Database::Postgres(_))
}

/// A database from before action rows (version 14: one document per
/// server listing its actions) is brought up to date on open: each
/// action becomes a row keyed `<server>/<seq>` in its place (migration
/// 15), its events rows of their own (migration 20), and the server's
/// actions read back in order.
#[tokio::test(flavor = "multi_thread")]
async fn a_servers_action_log_becomes_one_row_per_action() {
    for db in backends("action-rows-migrate") {
        drop(Store::connect(&db).expect("open"));
        let body = if is_pg(&db) { "JSON" } else { "TEXT" };
        let action = |name: &str, req: &str, at: &str| {
            action_doc(name, req, at, &[&format!("compute_{name}")])
        };
        let log = json!({"actions": [
            action("create", "req-1", "2026-01-01T00:00:00Z"),
            action("stop", "req-2", "2026-01-01T00:01:00Z"),
            action("start", "req-3", "2026-01-01T00:02:00Z"),
        ]});
        exec(
            &db,
            &format!(
                "DROP TABLE instance_actions; DROP TABLE instance_action_events; \
                 CREATE TABLE instance_actions (id TEXT PRIMARY KEY NOT NULL, gen BIGINT NOT NULL DEFAULT 1, body {body} NOT NULL); \
                 INSERT INTO instance_actions (id, gen, body) VALUES ('srv', 4, '{log}'); \
                 DELETE FROM schema_migrations WHERE version IN (15, 20);"
            ),
        );
        let store = Store::connect(&db).expect("reopen migrates");
        let rows = query(
            &db,
            "SELECT id, instance_uuid, request_id, action FROM instance_actions ORDER BY id",
        );
        let want: Vec<Vec<Option<String>>> = [
            ("srv/000000", "req-1", "create"),
            ("srv/000001", "req-2", "stop"),
            ("srv/000002", "req-3", "start"),
        ]
        .iter()
        .map(|(id, req, act)| {
            [*id, "srv", req, act]
                .iter()
                .map(|s| Some(s.to_string()))
                .collect()
        })
        .collect();
        assert_eq!(rows, want, "{db:?}");
        let table: Table<InstanceAction> = Table::load("instance_action", &store).expect("load");
        let mut actions: Vec<_> = table.all().iter().map(|a| (**a).clone()).collect();
        actions.sort_by_key(|a| a.seq);
        assert_eq!(
            actions
                .iter()
                .map(|a| (a.seq, a.action.as_str()))
                .collect::<Vec<_>>(),
            [(0, "create"), (1, "stop"), (2, "start")],
            "{db:?}"
        );
        assert_eq!(
            query(
                &db,
                "SELECT id, action_id, event FROM instance_action_events ORDER BY id"
            ),
            [
                ("srv/000000/00", "srv/000000", "compute_create"),
                ("srv/000001/00", "srv/000001", "compute_stop"),
                ("srv/000002/00", "srv/000002", "compute_start"),
            ]
            .iter()
            .map(|(id, a, e)| vec![
                Some(id.to_string()),
                Some(a.to_string()),
                Some(e.to_string())
            ])
            .collect::<Vec<_>>(),
            "{db:?}: the events as rows"
        );
    }
}

/// A database at the version before 20 (an action's document lists its
/// events) is brought to version 20 on open: each event becomes a row
/// keyed `<action>/<nn>` in its place, with its action, server and name
/// as columns and its record as the document, and the action's document
/// loses the list (the rest kept).
#[tokio::test(flavor = "multi_thread")]
async fn an_actions_listed_events_become_rows_in_order() {
    for db in backends("action-events-migrate") {
        drop(Store::connect(&db).expect("open"));
        let at = "2026-02-01T00:00:00Z";
        let docs = [
            ("srv/000000", action_doc("create", "req-1", at, &[])),
            (
                "srv/000001",
                action_doc("stop", "req-2", at, &["z_first", "a_second", "m_third"]),
            ),
            ("srv/000002", action_doc("start", "req-3", at, &["only"])),
        ];
        let mut sql = String::from(
            "DROP TABLE instance_action_events; DELETE FROM schema_migrations WHERE version = 20;",
        );
        for (id, doc) in &docs {
            sql.push_str(&format!(
                "INSERT INTO instance_actions (id, gen, instance_uuid, request_id, action, body) \
                 VALUES ('{id}', 3, 'srv', '{}', '{}', '{doc}');",
                doc["request_id"].as_str().unwrap_or_default(),
                doc["action"].as_str().unwrap_or_default(),
            ));
        }
        exec(&db, &sql);
        let store = Store::connect(&db).expect("reopen migrates");
        let rows = query(
            &db,
            "SELECT id, action_id, instance_uuid, event, body FROM instance_action_events ORDER BY id",
        );
        let want = [
            ("srv/000001/00", "srv/000001", "z_first", 0),
            ("srv/000001/01", "srv/000001", "a_second", 1),
            ("srv/000001/02", "srv/000001", "m_third", 2),
            ("srv/000002/00", "srv/000002", "only", 0),
        ];
        assert_eq!(rows.len(), want.len(), "{db:?}: {rows:?}");
        for (row, (id, action, event, position)) in rows.iter().zip(want) {
            let cols: Vec<&str> = row.iter().map(|c| c.as_deref().unwrap_or("")).collect();
            assert_eq!(&cols[..4], [id, action, "srv", event], "{db:?}");
            let body: Value = serde_json::from_str(cols[4]).expect("json");
            assert_eq!(body["position"], json!(position), "{db:?}: {body}");
            assert_eq!(body["event"], json!(event), "{db:?}");
            assert_eq!(body["result"], json!("Success"), "{db:?}");
        }
        for (id, doc) in &docs {
            let body = count(
                &db,
                &format!("SELECT body FROM instance_actions WHERE id = '{id}'"),
            );
            let stored: Value = serde_json::from_str(&body).expect("json");
            assert!(stored.get("events").is_none(), "{db:?}: {body}");
            assert_eq!(stored["request_id"], doc["request_id"], "{db:?}: kept");
        }
        // Read back as the service reads them: every event, in its place.
        let (_, events) = action_events::load(&store, 0).expect("load");
        let keys = docs.iter().map(|(id, _)| *id);
        let found = action_events::by_action(&events, "srv", keys);
        for (id, doc) in &docs {
            let listed: Vec<ActionEvent> =
                serde_json::from_value(doc["events"].clone()).expect("events");
            let got = found.get(*id).cloned().unwrap_or_default();
            assert_eq!(got, listed, "{db:?}: {id}");
        }
    }
}

/// After a server's actions, each of their events is a row of
/// `instance_action_events` (keyed `<action>/<nn>`, with its action,
/// server and name as columns) and the actions' documents hold none; a
/// fresh process on the same data answers the same events in the same
/// order. An event for an action another process removed meanwhile is
/// refused and leaves no row.
#[tokio::test(flavor = "multi_thread")]
async fn an_actions_events_are_rows_read_back_after_a_restart() {
    let cloud = crate::common::start().await;
    let demo = cloud.login("demo").await;
    let server = cloud.boot(&demo, "events", None, json!({})).await;
    let id = server["id"].as_str().expect("id").to_string();
    let stop_req = cloud.stop(&demo, &id).await;
    let db = cloud
        .database
        .clone()
        .unwrap_or_else(|| Database::Sqlite(cloud.dir.join("rova.sqlite")));

    // An event's finish is written after the server's own change (the
    // stop's after SHUTOFF, as in Nova): the rows are read once every
    // event has its result.
    let sql = format!(
        "SELECT id, action_id, instance_uuid, event, body FROM instance_action_events \
         WHERE instance_uuid = '{id}' ORDER BY id"
    );
    let finished = |rows: &Vec<Vec<Option<String>>>| {
        rows.iter().all(|r| {
            r.get(4)
                .and_then(|b| b.as_deref())
                .and_then(|b| serde_json::from_str::<Value>(b).ok())
                .is_some_and(|b| b["result"].is_string())
        })
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let mut rows = query(&db, &sql);
    while !finished(&rows) && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        rows = query(&db, &sql);
    }
    // The rows by action, in order: (action row, event names).
    let mut by_action: Vec<(String, Vec<String>)> = Vec::new();
    for row in &rows {
        let cols: Vec<&str> = row.iter().map(|c| c.as_deref().unwrap_or("")).collect();
        let body: Value = serde_json::from_str(cols[4]).expect("json");
        let position = body["position"].as_u64().expect("position") as usize;
        assert_eq!(cols[0], format!("{}/{position:02}", cols[1]), "{row:?}");
        assert_eq!(cols[2], id);
        assert_eq!(body["event"], json!(cols[3]), "{row:?}");
        assert_eq!(body["action_id"], json!(cols[1]), "{row:?}");
        assert!(body["start_time"].is_string() && body["result"].is_string());
        match by_action.last_mut() {
            Some((a, names)) if a == cols[1] => names.push(cols[3].to_string()),
            _ => by_action.push((cols[1].to_string(), vec![cols[3].to_string()])),
        }
    }
    let stop_key = format!("{id}/000001");
    assert!(
        by_action
            .iter()
            .any(|(a, names)| *a == stop_key && names.contains(&"compute_stop_instance".into())),
        "{rows:?}"
    );
    for row in query(
        &db,
        &format!("SELECT body FROM instance_actions WHERE instance_uuid = '{id}'"),
    ) {
        let doc: Value = serde_json::from_str(row[0].as_deref().unwrap_or("")).expect("json");
        assert!(doc.get("events").is_none(), "{doc}");
    }

    // What the API answers (every field an admin sees at 2.84).
    let base = format!("/servers/{id}/os-instance-actions");
    let (list, shows) = answers(&cloud, &base).await;
    // Oldest first, as the rows are kept.
    let api_events: Vec<Vec<String>> = shows
        .iter()
        .rev()
        .map(|s| {
            s["events"]
                .as_array()
                .expect("events")
                .iter()
                .map(|e| e["event"].as_str().unwrap_or("").to_string())
                .collect()
        })
        .filter(|names: &Vec<String>| !names.is_empty())
        .collect();
    let row_events: Vec<Vec<String>> = by_action.iter().map(|(_, n)| n.clone()).collect();
    assert_eq!(api_events, row_events, "the API answers the rows' events");

    let cloud = cloud.restart().await;
    let (list_again, shows_again) = answers(&cloud, &base).await;
    assert_eq!(list_again, list, "a fresh process lists the same actions");
    assert_eq!(shows_again, shows, "… with the same events in order");

    // Another process removes the stop action: an event for it is
    // refused with it, and no row is left without its action.
    exec(
        &db,
        &format!("DELETE FROM instance_actions WHERE id = '{stop_key}'"),
    );
    rova::compute::actions::event_start(&cloud.app, &id, &stop_req, "late_event", None).await;
    assert_eq!(
        count(
            &db,
            "SELECT count(*) FROM instance_action_events WHERE event = 'late_event'"
        ),
        "0"
    );
}
