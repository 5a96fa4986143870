//! The storage suite: the store's operations and guarantees, run against
//! SQLite always and against PostgreSQL when `ROVA_TEST_PG_URL` names a
//! server (scripts/test.sh's nextest-pg stage sets it): the schema holds
//! every kind's columns, records round-trip through a reopen with their
//! key columns and write counts, concurrent writers lose nothing, a
//! pre-relational data directory is moved into the tables, a newer schema
//! and a second serving process are refused.

use rova::store::{schema, Database, Store, Table};
use serde_json::{json, Value};
use std::path::PathBuf;
use std::sync::Arc;

/// A fresh database on each backend this run has.
pub(crate) fn backends(tag: &str) -> Vec<Database> {
    let dir = temp_dir(tag);
    std::fs::create_dir_all(&dir).expect("dir");
    let mut out = vec![Database::Sqlite(dir.join("rova.sqlite"))];
    if let Ok(url) = std::env::var("ROVA_TEST_PG_URL") {
        if !url.is_empty() {
            let name = format!("rova_st_{}", uuid::Uuid::new_v4().simple());
            rova::store::create_database(&url, &name).expect("create database");
            out.push(Database::Postgres(rova::store::with_database(&url, &name)));
        }
    }
    out
}

pub(crate) fn temp_dir(tag: &str) -> PathBuf {
    std::env::temp_dir().join(format!("rova-storage-{tag}-{}", uuid::Uuid::new_v4()))
}

/// Every row of `sql`'s answer, each cell as text (NULL as `None`).
pub(crate) fn query(db: &Database, sql: &str) -> Vec<Vec<Option<String>>> {
    match db {
        Database::Sqlite(path) => {
            let conn = rusqlite::Connection::open(path).expect("open sqlite");
            let mut stmt = conn.prepare(sql).expect("prepare");
            let n = stmt.column_count();
            let rows = stmt
                .query_map([], |r| {
                    (0..n)
                        .map(|i| {
                            use rusqlite::types::ValueRef;
                            Ok(match r.get_ref(i)? {
                                ValueRef::Null => None,
                                ValueRef::Integer(v) => Some(v.to_string()),
                                ValueRef::Real(v) => Some(v.to_string()),
                                ValueRef::Text(t) | ValueRef::Blob(t) => {
                                    Some(String::from_utf8_lossy(t).into_owned())
                                }
                            })
                        })
                        .collect()
                })
                .expect("query");
            rows.collect::<Result<_, _>>().expect("rows")
        }
        Database::Postgres(url) => {
            let (url, sql) = (url.clone(), sql.to_string());
            std::thread::spawn(move || {
                let mut c = postgres::Client::connect(&url, postgres::NoTls).expect("connect");
                c.simple_query(&sql)
                    .expect("query")
                    .into_iter()
                    .filter_map(|m| match m {
                        postgres::SimpleQueryMessage::Row(r) => {
                            Some((0..r.len()).map(|i| r.get(i).map(str::to_string)).collect())
                        }
                        _ => None,
                    })
                    .collect()
            })
            .join()
            .expect("query thread")
        }
    }
}

pub(crate) fn exec(db: &Database, sql: &str) {
    match db {
        Database::Sqlite(path) => {
            let conn = rusqlite::Connection::open(path).expect("open sqlite");
            conn.execute_batch(sql).expect("exec");
        }
        Database::Postgres(url) => {
            let (url, sql) = (url.clone(), sql.to_string());
            std::thread::spawn(move || {
                let mut c = postgres::Client::connect(&url, postgres::NoTls).expect("connect");
                c.batch_execute(&sql).expect("exec");
            })
            .join()
            .expect("exec thread");
        }
    }
}

fn columns_of(db: &Database, table: &str) -> Vec<String> {
    let sql = match db {
        Database::Sqlite(_) => format!("SELECT name FROM pragma_table_info('{table}')"),
        Database::Postgres(_) => format!(
            "SELECT column_name FROM information_schema.columns WHERE table_name = '{table}'"
        ),
    };
    query(db, &sql)
        .into_iter()
        .filter_map(|r| r.into_iter().next().flatten())
        .collect()
}

fn instance(id: &str, project: &str, name: &str) -> Value {
    json!({
        "id": 1, "uuid": id, "project_id": project, "user_id": "u", "display_name": name,
        "host": "rova-sim-1", "node": null, "vm_state": "building", "task_state": "spawning",
        "deleted": false, "created_at": "2026-12-05T00:00:00Z", "updated_at": "2026-12-05T00:00:00Z",
        "metadata": {"k": "v"}
    })
}

/// The guards a write can carry, checked by the database in the writing
/// transaction: the quota counted from the project's rows (Nova's message
/// on refusal), the host capacity counted from the node's allocation rows
/// (on PostgreSQL read from `node_usage`, which a trigger on allocations
/// keeps) against its `resource_providers` row, and a fixed IP unique per subnet. A refused
/// write changes nothing and leaves the copy as the database has it.
#[tokio::test(flavor = "multi_thread")]
async fn guards_and_unique_ips_are_decided_by_the_database() {
    use rova::store::{is_capacity_refusal, taken_ip, Guard};
    for db in backends("guards") {
        let store = Store::connect(&db).expect("open");
        let t: Table<Value> = Table::load("instance", &store).expect("load");
        let quota = Guard::Quota {
            project: "p".into(),
            instances: 2,
            cores: -1,
            ram: -1,
        };
        let server = |id: &str| {
            let mut v = instance(id, "p", id);
            v["flavor"] = json!({"vcpus": 2, "ram": 512});
            v
        };
        for id in ["q1", "q2"] {
            t.insert_guarded(
                id,
                server(id),
                rova_core::Fault::conflict("dup"),
                Some(quota.clone()),
            )
            .await
            .expect("within quota");
        }
        let over = t
            .insert_guarded(
                "q3",
                server("q3"),
                rova_core::Fault::conflict("dup"),
                Some(quota.clone()),
            )
            .await
            .expect_err("over quota");
        assert_eq!(over.code, 403, "{db:?}");
        assert_eq!(
            over.message,
            "Quota exceeded for instances: Requested 1, but already used 2 of 2 instances"
        );
        assert!(
            t.get("q3").is_none(),
            "{db:?}: the copy dropped the refused row"
        );
        assert_eq!(
            query(&db, "SELECT count(*) FROM instances"),
            vec![vec![Some("2".into())]]
        );

        // Capacity: read from the node's resource_providers row. Without
        // one the node has no room; with 5 vCPUs it holds two of these
        // (2 each), not three; raised to 6 it holds the third. The guard
        // counts the node's allocation rows, each written before the write
        // that places its server.
        let allocations: Table<Value> = Table::load("allocation", &store).expect("allocations");
        let providers: Table<Value> = Table::load("resource_provider", &store).expect("providers");
        let allocate = |id: &'static str| {
            allocations.put(
                id,
                json!({"instance_uuid": id, "host": "n1", "vcpus": 2, "memory_mb": 512, "disk_gb": 1}),
            )
        };
        let inventory = |vcpus: i64| {
            providers.put(
                "n1-uuid",
                json!({"name": "n1", "capacity": {"vcpus": vcpus, "memory_mb": 100000, "disk_gb": 100}}),
            )
        };
        let cap = Some(Guard::Capacity { node: "n1".into() });
        let place = |id: &'static str| {
            t.update_guarded(
                id,
                || rova_core::Fault::not_found("gone"),
                cap.clone(),
                |v| {
                    v["node"] = json!("n1");
                    Ok(())
                },
            )
        };
        allocate("q1").await.expect("allocation");
        let unknown = place("q1").await.expect_err("n1 is not registered");
        assert!(is_capacity_refusal(&unknown), "{db:?}: {}", unknown.message);
        inventory(5).await.expect("n1 registered");
        for id in ["q1", "q2"] {
            if id != "q1" {
                allocate(id).await.expect("allocation");
            }
            place(id).await.expect("fits");
        }
        t.insert_new("c3", server("c3"), rova_core::Fault::conflict("dup"))
            .await
            .expect("c3");
        allocate("c3").await.expect("allocation");
        let full = place("c3").await.expect_err("n1 is full");
        assert!(is_capacity_refusal(&full), "{db:?}: {}", full.message);
        assert_eq!(
            t.get("c3").expect("c3")["node"],
            Value::Null,
            "{db:?}: unchanged"
        );
        inventory(6).await.expect("n1 grows");
        place("c3").await.expect("fits the larger inventory");
        // A server leaving the node makes room: its allocation goes.
        t.insert_new("c4", server("c4"), rova_core::Fault::conflict("dup"))
            .await
            .expect("c4");
        allocate("c4").await.expect("allocation");
        let full = place("c4").await.expect_err("n1 is full again");
        assert!(is_capacity_refusal(&full), "{db:?}: {}", full.message);
        t.update(
            "q1",
            || rova_core::Fault::not_found("gone"),
            |v| {
                v["deleted"] = json!(true);
                Ok(())
            },
        )
        .await
        .expect("delete q1");
        allocations.remove("q1").await.expect("q1's allocation");
        place("c4").await.expect("room again");

        // A fixed IP is one port's per subnet.
        let ports: Table<Value> = Table::load("port", &store).expect("ports");
        let port = |id: &str, ip: &str| {
            json!({"id": id, "network_id": "n", "project_id": "p", "mac_address": "fa:16:3e:00:00:01",
                "device_id": "", "fixed_ips": [{"subnet_id": "s1", "ip_address": ip}]})
        };
        ports.put("a", port("a", "10.0.0.5")).await.expect("a");
        let taken = ports
            .put("b", port("b", "10.0.0.5"))
            .await
            .expect_err("the address is a's");
        assert_eq!(
            taken_ip(&taken),
            Some(("s1".into(), "10.0.0.5".into())),
            "{db:?}"
        );
        assert!(ports.get("b").is_none());
        ports
            .put("b", port("b", "10.0.0.6"))
            .await
            .expect("another address");
        // Given back when the port goes.
        ports.remove("a").await.expect("remove a");
        ports
            .put("c", port("c", "10.0.0.5"))
            .await
            .expect("free again");
        assert_eq!(
            query(
                &db,
                "SELECT ip_address FROM ip_allocations ORDER BY ip_address"
            ),
            vec![vec![Some("10.0.0.5".into())], vec![Some("10.0.0.6".into())]],
            "{db:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_schema_holds_every_kinds_columns() {
    for db in backends("schema") {
        let _store = Store::connect(&db).expect("open");
        for kind in schema::KINDS {
            let cols = columns_of(&db, kind.table);
            for want in ["id", "gen", "body"]
                .into_iter()
                .chain(kind.cols.iter().map(|c| c.name))
            {
                assert!(
                    cols.iter().any(|c| c == want),
                    "{:?}: {}.{want} missing (has {cols:?})",
                    db,
                    kind.table
                );
            }
        }
        let versions = query(
            &db,
            "SELECT version FROM schema_migrations ORDER BY version",
        );
        let every: Vec<Vec<Option<String>>> = (1..=24).map(|v| vec![Some(v.to_string())]).collect();
        assert_eq!(versions, every, "{db:?}");
        for (table, want) in [
            ("leases", &["name", "owner", "expires_at"][..]),
            (
                "ip_allocations",
                &["subnet_id", "ip_address", "port_id"][..],
            ),
            ("counters", &["name", "next"][..]),
        ] {
            let cols = columns_of(&db, table);
            for w in want {
                assert!(cols.iter().any(|c| c == w), "{db:?}: {table}.{w}");
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn records_round_trip_with_their_key_columns_and_version_tokens() {
    for db in backends("roundtrip") {
        let store = Store::connect(&db).expect("open");
        let t: Table<Value> = Table::load("instance", &store).expect("load");
        t.put("a", instance("a", "p1", "alpha"))
            .await
            .expect("put a");
        t.put("b", instance("b", "p2", "beta"))
            .await
            .expect("put b");
        let (_, ()) = t
            .update(
                "a",
                || rova_core::Fault::not_found("gone"),
                |v| {
                    v["vm_state"] = json!("active");
                    v["task_state"] = Value::Null;
                    Ok(())
                },
            )
            .await
            .expect("update a");
        // A refused change writes nothing.
        let refused = t
            .update(
                "b",
                || rova_core::Fault::not_found("gone"),
                |_| Err::<(), _>(rova_core::Fault::conflict("no")),
            )
            .await;
        assert!(refused.is_err());
        t.transact(|tx| {
            let mut c = tx.get("b").expect("b");
            c["display_name"] = json!("beta-2");
            tx.put("b", c);
            tx.put("c", instance("c", "p1", "gamma\u{0}nul"));
            Ok(())
        })
        .await
        .expect("transact");
        t.remove("c").await.expect("remove c");
        t.put("c", instance("c", "p1", "gamma\u{0}nul"))
            .await
            .expect("put c");
        drop(t);

        // The rows and their key columns, as another reader sees them.
        let rows = query(
            &db,
            "SELECT id, project_id, display_name, vm_state, task_state, host FROM instances ORDER BY id",
        );
        let s = |v: &str| Some(v.to_string());
        assert_eq!(
            rows,
            vec![
                vec![
                    s("a"),
                    s("p1"),
                    s("alpha"),
                    s("active"),
                    None,
                    s("rova-sim-1")
                ],
                vec![
                    s("b"),
                    s("p2"),
                    s("beta-2"),
                    s("building"),
                    s("spawning"),
                    s("rova-sim-1")
                ],
                vec![
                    s("c"),
                    s("p1"),
                    s("gamma\u{fffd}nul"),
                    s("building"),
                    s("spawning"),
                    s("rova-sim-1")
                ],
            ],
            "{db:?}"
        );
        // Every row carries the version token of its last write: distinct,
        // never 0 (0 means "no row" to a compare-and-swap).
        assert_eq!(
            query(
                &db,
                "SELECT count(DISTINCT gen) FROM instances WHERE gen <> 0"
            ),
            vec![vec![s("3")]],
            "{db:?}"
        );
        // Reopened, the records are what was written (the NUL intact in
        // the document).
        let again: Table<Value> = Table::load("instance", &store).expect("reload");
        assert_eq!(again.len(), 3);
        assert_eq!(again.get("a").expect("a")["vm_state"], json!("active"));
        assert_eq!(again.get("b").expect("b")["display_name"], json!("beta-2"));
        assert_eq!(
            again.get("c").expect("c")["display_name"],
            json!("gamma\u{0}nul")
        );
        assert_eq!(again.get("c").expect("c")["metadata"], json!({"k": "v"}));
    }
}

/// `Table::transact` is one transaction, all or nothing: when another
/// process changed one of its rows meanwhile, none of its writes is made —
/// in the database or in the copy, which keeps every row as stored — and
/// the refusal is the changed row's 409; run again on fresh rows, every
/// write is made.
#[tokio::test(flavor = "multi_thread")]
async fn a_transaction_is_all_or_nothing() {
    for db in backends("all-or-nothing") {
        let a = Store::connect(&db).expect("store a");
        let ta: Table<Value> = Table::load("quota", &a).expect("load a");
        for id in ["x", "y"] {
            ta.put(id, json!({"project_id": id, "n": 0}))
                .await
                .expect("seed");
        }
        // Another process changes y. It is written straight to the
        // database, announcing nothing: on PostgreSQL a store's change feed
        // would otherwise refresh a's copy of y before the transaction
        // below, and the copy would not be stale.
        exec(
            &db,
            r#"UPDATE quotas SET body = '{"project_id":"y","n":5}', gen = gen + 1 WHERE id = 'y'"#,
        );
        let write_all = |n: i64| {
            move |tx: &mut rova::store::TxView<'_, Value>| {
                for id in ["x", "y", "z"] {
                    tx.put(id, json!({"project_id": id, "n": n}));
                }
                Ok(())
            }
        };
        let refused = ta.transact(write_all(1)).await.expect_err("y changed");
        assert_eq!(refused.code, 409, "{db:?}");
        assert_ne!(
            refused.message,
            rova::store::TOGETHER,
            "{db:?}: the refusal names the changed row's reason"
        );
        let stored = query(&db, "SELECT id, body FROM quotas ORDER BY id");
        let n_of = |id: &str| {
            stored
                .iter()
                .find(|r| r[0].as_deref() == Some(id))
                .and_then(|r| serde_json::from_str::<Value>(r[1].as_deref()?).ok())
                .map(|v| v["n"].clone())
        };
        assert_eq!(n_of("x"), Some(json!(0)), "{db:?}: x not written");
        assert_eq!(n_of("y"), Some(json!(5)), "{db:?}: y as b wrote it");
        assert_eq!(n_of("z"), None, "{db:?}: z not inserted");
        assert_eq!(ta.get("x").expect("x")["n"], json!(0), "{db:?}: copy of x");
        assert_eq!(ta.get("y").expect("y")["n"], json!(5), "{db:?}: copy of y");
        assert!(ta.get("z").is_none(), "{db:?}: no z in the copy");

        ta.transact(write_all(2)).await.expect("fresh rows");
        let stored = query(&db, "SELECT body FROM quotas ORDER BY id");
        let ns: Vec<Value> = stored
            .iter()
            .filter_map(|r| serde_json::from_str::<Value>(r[0].as_deref()?).ok())
            .map(|v| v["n"].clone())
            .collect();
        assert_eq!(ns, vec![json!(2), json!(2), json!(2)], "{db:?}: all made");
    }
}

/// The quota guard counts a server being resized at what it holds (the
/// larger flavor, `resize_hold`), not at its current flavor: a write that
/// fits beside the current flavors is refused beside the hold, and fits
/// again once the hold is gone.
#[tokio::test(flavor = "multi_thread")]
async fn the_quota_guard_counts_a_resize_hold() {
    use rova::store::Guard;
    for db in backends("hold") {
        let store = Store::connect(&db).expect("open");
        let t: Table<Value> = Table::load("instance", &store).expect("load");
        let mut resizing = instance("r1", "p", "r1");
        resizing["flavor"] = json!({"vcpus": 1, "ram": 512});
        resizing["resize_hold"] = json!({"vcpus": 4, "ram": 512});
        t.put("r1", resizing).await.expect("r1");
        let cores5 = Some(Guard::Quota {
            project: "p".into(),
            instances: -1,
            cores: 5,
            ram: -1,
        });
        let mut second = instance("r2", "p", "r2");
        second["flavor"] = json!({"vcpus": 2, "ram": 512});
        let over = t
            .insert_guarded(
                "r2",
                second.clone(),
                rova_core::Fault::conflict("dup"),
                cores5.clone(),
            )
            .await
            .expect_err("4 held + 2 > 5");
        assert_eq!(
            over.message, "Quota exceeded for cores: Requested 2, but already used 4 of 5 cores",
            "{db:?}"
        );
        // The resize ends: its server counts at its flavor again.
        t.update(
            "r1",
            || rova_core::Fault::not_found("gone"),
            |v| {
                if let Some(o) = v.as_object_mut() {
                    o.remove("resize_hold");
                }
                Ok(())
            },
        )
        .await
        .expect("hold dropped");
        t.insert_guarded("r2", second, rova_core::Fault::conflict("dup"), cores5)
            .await
            .expect("1 + 2 <= 5");
    }
}

/// A counted guard (key pairs per user, server groups per project) is
/// decided by the database from the rows in the writing transaction, not
/// from the writer's copy: rows another process wrote count too.
#[tokio::test(flavor = "multi_thread")]
async fn a_counted_guard_counts_every_processs_rows() {
    use rova::store::Guard;
    for db in backends("count") {
        let store = Store::connect(&db).expect("open");
        let groups: Table<Value> = Table::load("server_group", &store).expect("load");
        // Two groups of project p written behind this store's back.
        for id in ["g1", "g2"] {
            query(
                &db,
                &format!(
                    r#"INSERT INTO server_groups (id, gen, project_id, name, body) VALUES ('{id}', 1, 'p', '{id}', '{{"project_id":"p"}}')"#
                ),
            );
        }
        let two = |id: &'static str| {
            let guard = Guard::Count {
                column: "project_id",
                value: "p".into(),
                limit: 2,
                message: "Quota exceeded, too many server groups.".into(),
            };
            move |tx: &mut rova::store::TxView<'_, Value>| {
                tx.put_guarded(id, json!({"project_id": "p", "name": id}), guard);
                Ok(())
            }
        };
        let over = groups.transact(two("g3")).await.expect_err("a third");
        assert_eq!(over.code, 403, "{db:?}");
        assert_eq!(over.message, "Quota exceeded, too many server groups.");
        assert!(groups.get("g3").is_none(), "{db:?}: not in the copy");
        assert_eq!(
            query(&db, "SELECT count(*) FROM server_groups"),
            vec![vec![Some("2".into())]],
            "{db:?}"
        );
        // Another project's count is its own.
        let other = Guard::Count {
            column: "project_id",
            value: "q".into(),
            limit: 2,
            message: "no".into(),
        };
        groups
            .transact(|tx| {
                tx.put_guarded("h1", json!({"project_id": "q", "name": "h1"}), other);
                Ok(())
            })
            .await
            .expect("q has room");
    }
}

/// A guard on another table's rows (a volume's delete: at most the
/// snapshots it takes along) is decided by the database: a snapshot row
/// written behind this store's back refuses the write.
#[tokio::test(flavor = "multi_thread")]
async fn a_rows_guard_counts_another_tables_rows() {
    use rova::store::Guard;
    for db in backends("rows") {
        let store = Store::connect(&db).expect("open");
        let vols: Table<Value> = Table::load("volume", &store).expect("load");
        let vol = |status: &str| json!({"id": "v", "project_id": "p", "status": status});
        vols.put("v", vol("available")).await.expect("v");
        query(
            &db,
            r#"INSERT INTO snapshots (id, gen, volume_id, body) VALUES ('s', 1, 'v', '{"volume_id":"v"}')"#,
        );
        let at_most = |max| Guard::Rows {
            table: "snapshots",
            column: "volume_id",
            value: "v".into(),
            max,
            message: "Volume v has snapshots.".into(),
        };
        let refused = vols
            .write_behind_guarded("v", vol("deleting"), at_most(0))
            .expect("queued")
            .outcome()
            .await
            .expect_err("a snapshot names it");
        assert_eq!(
            (refused.code, refused.message.as_str()),
            (403, "Volume v has snapshots."),
            "{db:?}"
        );
        assert_eq!(
            vols.get("v").map(|v| v["status"].clone()),
            Some(json!("available")),
            "{db:?}"
        );
        vols.write_behind_guarded("v", vol("deleting"), at_most(1))
            .expect("queued")
            .outcome()
            .await
            .expect("the one it takes along");
    }
}

/// All-or-nothing groups share the writer's batch with the single writes
/// around them: a refused group takes back only its own writes, a group
/// beside it and the single writes are made, and a single write queued
/// right after a group to one of the group's rows is made after it.
#[tokio::test(flavor = "multi_thread")]
async fn groups_share_a_batch_with_single_writes() {
    for db in backends("batch-groups") {
        let store = Store::connect(&db).expect("open");
        let t: Table<Value> = Table::load("quota", &store).expect("load");
        for id in ["a", "b", "c"] {
            t.put(id, json!({"project_id": id, "n": 0}))
                .await
                .expect("seed");
        }
        // c changes behind this store's back: a group writing it is refused.
        query(
            &db,
            r#"UPDATE quotas SET gen = gen + 9, body = '{"project_id":"c","n":7}' WHERE id = 'c'"#,
        );
        let set = |ids: &'static [&'static str], n: i64| {
            move |tx: &mut rova::store::TxView<'_, Value>| {
                for id in ids {
                    tx.put(id, json!({"project_id": id, "n": n}));
                }
                Ok(())
            }
        };
        let bump_a = async {
            t.update(
                "a",
                || rova_core::Fault::not_found("gone"),
                |v| {
                    v["n"] = json!(v["n"].as_i64().unwrap_or(0) + 10);
                    Ok(())
                },
            )
            .await
        };
        let (first, after, single, refused) = tokio::join!(
            t.transact(set(&["a", "b"], 1)),
            bump_a,
            t.put("d", json!({"project_id": "d", "n": 4})),
            t.transact(set(&["c", "e"], 2)),
        );
        first.expect("the first group is made");
        after.expect("the write after it too, on top of it");
        single.expect("the single write");
        assert_eq!(refused.expect_err("c changed").code, 409, "{db:?}");
        let stored: Vec<(String, i64)> = query(&db, "SELECT id, body FROM quotas ORDER BY id")
            .into_iter()
            .map(|r| {
                let body: Value =
                    serde_json::from_str(r[1].as_deref().unwrap_or("{}")).expect("json");
                (
                    r[0].clone().unwrap_or_default(),
                    body["n"].as_i64().unwrap_or(-1),
                )
            })
            .collect();
        assert_eq!(
            stored,
            vec![
                ("a".to_string(), 11),
                ("b".to_string(), 1),
                ("c".to_string(), 7),
                ("d".to_string(), 4)
            ],
            "{db:?}: e was not made with c"
        );
        assert!(t.get("e").is_none(), "{db:?}");
        assert_eq!(t.get("c").expect("c")["n"], json!(7), "{db:?}");
    }
}

/// A change to one row made together with a change to a row of another
/// table (a server's state change and its instance action) is one
/// transaction: when the database refuses the second write (its row was
/// changed behind this store's back), the first is not made either, in
/// the database or in the copy; once the copy has the row as stored, both
/// are made.
#[tokio::test(flavor = "multi_thread")]
async fn a_change_and_its_companion_row_commit_together() {
    for db in backends("along") {
        let a = Store::connect(&db).expect("store");
        let states: Table<Value> = Table::load("quota", &a).expect("load states");
        let logs: Table<Value> = Table::load("instance_action", &a).expect("load logs");
        states
            .put("s", json!({"project_id": "p", "n": 0}))
            .await
            .expect("seed state");
        logs.put("s", json!({"actions": ["create"]}))
            .await
            .expect("seed log");
        // Another writer changes the log in the database.
        query(
            &db,
            r#"UPDATE instance_actions SET gen = gen + 7, body = '{"actions":["create","other"]}' WHERE id = 's'"#,
        );
        let change = |n: i64| {
            move |v: &mut Value| {
                v["n"] = json!(n);
                Ok(())
            }
        };
        let push = |state: &Value, log: &mut Value| {
            if let Some(list) = log["actions"].as_array_mut() {
                list.push(json!(format!("pause-{}", state["n"])));
            }
        };
        let missing = || rova_core::Fault::not_found("gone");
        let init = || json!({"actions": []});
        let refused = states
            .update_along("s", missing, change(1), &logs, "s", init, push, None)
            .await
            .expect_err("the log changed");
        assert_eq!(refused.code, 409, "{db:?}");
        assert_ne!(refused.message, rova::store::TOGETHER, "{db:?}");
        let n_stored = |db: &Database| {
            let rows = query(db, "SELECT body FROM quotas WHERE id = 's'");
            let body = rows[0][0].clone().expect("body");
            serde_json::from_str::<Value>(&body).expect("json")["n"].clone()
        };
        assert_eq!(
            n_stored(&db),
            json!(0),
            "{db:?}: the state change was not made"
        );
        assert_eq!(states.get("s").expect("s")["n"], json!(0), "{db:?}: copy");
        assert_eq!(
            logs.get("s").expect("log")["actions"],
            json!(["create", "other"]),
            "{db:?}: the log's copy is the stored row"
        );

        states
            .update_along("s", missing, change(2), &logs, "s", init, push, None)
            .await
            .expect("both made");
        assert_eq!(n_stored(&db), json!(2), "{db:?}");
        let rows = query(&db, "SELECT body FROM instance_actions WHERE id = 's'");
        let log: Value = serde_json::from_str(rows[0][0].as_deref().expect("body")).expect("json");
        assert_eq!(
            log["actions"],
            json!(["create", "other", "pause-2"]),
            "{db:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn two_stores_never_lose_each_others_writes() {
    for db in backends("cas") {
        let a = Store::connect(&db).expect("store a");
        let b = Store::connect(&db).expect("store b");
        let ta: Arc<Table<Value>> = Arc::new(Table::load("quota", &a).expect("load a"));
        ta.put("shared", json!({"project_id": "p", "n": 0}))
            .await
            .expect("seed");
        let tb: Arc<Table<Value>> = Arc::new(Table::load("quota", &b).expect("load b"));
        let refused = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for (w, t) in [ta.clone(), tb.clone(), ta.clone(), tb.clone()]
            .into_iter()
            .enumerate()
        {
            let refused = refused.clone();
            tasks.push(tokio::spawn(async move {
                for _ in 0..50 {
                    loop {
                        let r = t
                            .update(
                                "shared",
                                || rova_core::Fault::not_found("gone"),
                                |v| {
                                    v["n"] = json!(v["n"].as_i64().unwrap_or(0) + 1);
                                    v["by"] = json!(w);
                                    Ok(())
                                },
                            )
                            .await;
                        match r {
                            Ok(_) => break,
                            Err(f) if f.code == 409 => {
                                refused.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                                tokio::task::yield_now().await;
                            }
                            Err(f) => panic!("writer {w}: {}", f.message),
                        }
                    }
                }
            }));
        }
        for task in tasks {
            task.await.expect("writer");
        }
        let stored = query(&db, "SELECT body FROM quotas WHERE id = 'shared'");
        let body: Value =
            serde_json::from_str(stored[0][0].as_deref().expect("row")).expect("json");
        assert_eq!(
            body["n"],
            json!(200),
            "{db:?}: no increment lost or doubled"
        );
        assert!(
            refused.load(std::sync::atomic::Ordering::SeqCst) > 0,
            "{db:?}: stale copies were refused, not overwritten"
        );
        // A delete based on a stale copy is refused too, and an insert of an
        // id the other store created meanwhile.
        ta.put("x", json!({"project_id": "x", "v": 1}))
            .await
            .expect("a creates x");
        let e = tb
            .insert_new(
                "x",
                json!({"project_id": "x", "v": 2}),
                rova_core::Fault::conflict("exists"),
            )
            .await
            .expect_err("b cannot create x again");
        assert_eq!(e.code, 409);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_writers_lose_nothing() {
    for db in backends("concurrent") {
        let store = Store::connect(&db).expect("open");
        let t: Arc<Table<Value>> = Arc::new(Table::load("quota", &store).expect("load"));
        t.put("shared", json!({"project_id": "p", "n": 0}))
            .await
            .expect("seed");
        let mut tasks = Vec::new();
        for w in 0..8 {
            let t = t.clone();
            tasks.push(tokio::spawn(async move {
                for i in 0..100 {
                    t.put(
                        &format!("w{w}-{i}"),
                        json!({"project_id": format!("p{w}"), "i": i}),
                    )
                    .await
                    .expect("put");
                    t.update(
                        "shared",
                        || rova_core::Fault::not_found("gone"),
                        |v| {
                            v["n"] = json!(v["n"].as_i64().unwrap_or(0) + 1);
                            Ok(())
                        },
                    )
                    .await
                    .expect("update");
                }
            }));
        }
        for task in tasks {
            task.await.expect("writer");
        }
        let count = query(&db, "SELECT count(*) FROM quotas");
        assert_eq!(count, vec![vec![Some("801".to_string())]], "{db:?}");
        let again: Table<Value> = Table::load("quota", &store).expect("reload");
        assert_eq!(again.len(), 801, "{db:?}: every row, across load chunks");
        assert_eq!(again.get("shared").expect("shared")["n"], json!(800));
        assert_eq!(again.get("w7-99").expect("last row")["i"], json!(99));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_newer_schema_is_refused_with_a_clear_message() {
    for db in backends("newer") {
        drop(Store::connect(&db).expect("open"));
        exec(
            &db,
            "INSERT INTO schema_migrations (version, name, applied_at) VALUES (999, 'future', 'now')",
        );
        let err = Store::connect(&db).err().expect("refused");
        assert!(err.contains("newer than this Rova knows"), "{db:?}: {err}");
    }
}

/// What a release before the relational schema left: one
/// `objects(kind, id, body)` table.
fn legacy_file(path: &std::path::Path, rows: &[(&str, &str, Value)]) {
    let conn = rusqlite::Connection::open(path).expect("open");
    conn.execute_batch(
        "CREATE TABLE objects (kind TEXT NOT NULL, id TEXT NOT NULL, body TEXT NOT NULL, PRIMARY KEY (kind, id)) WITHOUT ROWID;",
    )
    .expect("legacy schema");
    for (kind, id, body) in rows {
        conn.execute(
            "INSERT INTO objects (kind, id, body) VALUES (?1, ?2, ?3)",
            (kind, id, body.to_string()),
        )
        .expect("legacy row");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_pre_relational_data_directory_is_moved_into_the_tables() {
    let dir = temp_dir("legacy");
    std::fs::create_dir_all(&dir).expect("dir");
    let path = dir.join("rova.sqlite");
    legacy_file(
        &path,
        &[
            ("instance", "i-1", instance("i-1", "p1", "old")),
            (
                "flavor",
                "f-1",
                json!({"id": "f-1", "name": "m1.tiny", "is_public": true, "disabled": false}),
            ),
            ("id_counter", "instance", json!({"next": 42})),
        ],
    );
    let db = Database::Sqlite(path.clone());
    let store = Store::connect(&db).expect("migrated");
    let instances: Table<Value> = Table::load("instance", &store).expect("instances");
    assert_eq!(
        instances.get("i-1").expect("moved")["display_name"],
        json!("old")
    );
    let flavors: Table<Value> = Table::load("flavor", &store).expect("flavors");
    assert_eq!(flavors.get("f-1").expect("moved")["name"], json!("m1.tiny"));
    let counters: Table<Value> = Table::load("id_counter", &store).expect("counters");
    assert_eq!(counters.get("instance").expect("moved")["next"], json!(42));
    assert_eq!(
        query(&db, "SELECT project_id FROM instances WHERE id = 'i-1'"),
        vec![vec![Some("p1".to_string())]]
    );
    assert!(
        query(&db, "SELECT name FROM sqlite_master WHERE name = 'objects'").is_empty(),
        "the old table is gone once moved"
    );

    // A record of a kind this release does not know stops the start, and
    // the file is left as it was.
    let dir = temp_dir("legacy-unknown");
    std::fs::create_dir_all(&dir).expect("dir");
    let path = dir.join("rova.sqlite");
    legacy_file(&path, &[("hologram", "h-1", json!({"id": "h-1"}))]);
    let db = Database::Sqlite(path);
    let err = Store::connect(&db).err().expect("refused");
    assert!(err.contains("\"hologram\""), "{err}");
    assert_eq!(
        query(&db, "SELECT count(*) FROM objects"),
        vec![vec![Some("1".to_string())]],
        "nothing lost"
    );
}

/// A whole cloud on a pre-relational data directory: the records written
/// by the old layout are served after the move.
#[tokio::test(flavor = "multi_thread")]
async fn a_cloud_started_on_a_pre_relational_directory_serves_its_records() {
    // Make a real cloud's records, then write them back in the old layout.
    let cloud = crate::common::start().await;
    if cloud.database.is_some() {
        return; // the old layout only ever existed on SQLite; covered there
    }
    let demo = cloud.login("demo").await;
    let r = cloud
        .post(
            &demo,
            "/os-keypairs",
            None,
            json!({"keypair": {"name": "legacy-key"}}),
        )
        .await;
    assert_eq!(r.status.as_u16(), 200, "{}", r.text);
    let dir = cloud.dir.clone();
    let db = Database::Sqlite(dir.join("rova.sqlite"));
    let mut old: Vec<(String, String, String)> = Vec::new();
    for kind in schema::KINDS {
        for row in query(&db, &format!("SELECT id, body FROM {}", kind.table)) {
            old.push((
                kind.kind.to_string(),
                row[0].clone().unwrap_or_default(),
                row[1].clone().unwrap_or_default(),
            ));
        }
    }
    let keep = dir.with_extension("moved");
    std::fs::create_dir_all(&keep).expect("dir");
    for f in ["passwords.json", "clouds.yaml"] {
        let _ = std::fs::copy(dir.join(f), keep.join(f));
    }
    drop(cloud);
    let path = keep.join("rova.sqlite");
    let rows: Vec<(&str, &str, Value)> = old
        .iter()
        .map(|(k, i, b)| {
            (
                k.as_str(),
                i.as_str(),
                serde_json::from_str(b).expect("body"),
            )
        })
        .collect();
    legacy_file(&path, &rows);
    let cloud = crate::common::start_in_dir(keep).await;
    let demo = cloud.login("demo").await;
    let r = cloud.get(&demo, "/os-keypairs", None).await;
    assert_eq!(r.status.as_u16(), 200, "{}", r.text);
    assert_eq!(
        r.body["keypairs"][0]["keypair"]["name"],
        json!("legacy-key"),
        "{}",
        r.text
    );
}

/// An SQLite file is served by one process: a second one exits with a
/// message. A PostgreSQL database is shared: the second one serves too.
#[tokio::test(flavor = "multi_thread")]
async fn a_second_process_is_refused_on_sqlite_and_shares_postgres() {
    for db in backends("second") {
        let dir = temp_dir("second-data");
        let serve = |data: &std::path::Path| {
            let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_rova"));
            cmd.arg("serve")
                .arg("--data-dir")
                .arg(data)
                .args(["--listen", "127.0.0.1:0"])
                .env("ROVA_LOG", "warn")
                .stdin(std::process::Stdio::null())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped());
            if let Database::Postgres(url) = &db {
                cmd.env("ROVA_DATABASE_URL", url);
            }
            cmd
        };
        let (first_dir, second_dir) = match &db {
            // The same data directory, so the same SQLite file.
            Database::Sqlite(_) => (dir.clone(), dir.clone()),
            Database::Postgres(_) => (dir.clone(), dir.with_extension("b")),
        };
        let mut first = serve(&first_dir).spawn().expect("first starts");
        let stdout = first.stdout.take().expect("stdout");
        let ready = std::thread::spawn(move || {
            use std::io::BufRead;
            std::io::BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
                .any(|l| l.starts_with("rova: serving on"))
        })
        .join()
        .expect("reader");
        assert!(ready, "{db:?}: the first process serves");
        if let Database::Postgres(_) = &db {
            let mut second = serve(&second_dir).spawn().expect("second starts");
            let stdout = second.stdout.take().expect("stdout");
            let ready = std::thread::spawn(move || {
                use std::io::BufRead;
                std::io::BufReader::new(stdout)
                    .lines()
                    .map_while(Result::ok)
                    .any(|l| l.starts_with("rova: serving on"))
            })
            .join()
            .expect("reader");
            for p in [&mut first, &mut second] {
                let _ = p.kill();
                let _ = p.wait();
            }
            assert!(ready, "{db:?}: the second process serves the same database");
            continue;
        }
        let second = serve(&second_dir).output().expect("second runs");
        let _ = first.kill();
        let _ = first.wait();
        let err = String::from_utf8_lossy(&second.stderr);
        assert!(!second.status.success(), "{db:?}: the second one exits");
        assert!(
            err.contains("another Rova process is serving"),
            "{db:?}: {err}"
        );
    }
}

/// PostgreSQL: a writer whose session is terminated (the server
/// restarted, an operator killed it) connects again and the write that
/// met the closed connection is committed, not lost.
#[tokio::test(flavor = "multi_thread")]
async fn a_write_after_the_connection_was_lost_is_committed() {
    for db in backends("reconnect") {
        let store = Store::connect(&db).expect("open");
        let t: Table<Value> = Table::load("flavor", &store).expect("load");
        t.put("before", json!({"name": "before", "is_public": true}))
            .await
            .expect("put before");
        if let Database::Postgres(_) = &db {
            let killed = query(
                &db,
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                 WHERE datname = current_database() AND pid <> pg_backend_pid()",
            );
            assert!(!killed.is_empty(), "the writer's session was terminated");
        }
        t.put("after", json!({"name": "after", "is_public": false}))
            .await
            .expect("put after the connection was lost");
        assert_eq!(
            query(&db, "SELECT id FROM flavors ORDER BY id"),
            vec![
                vec![Some("after".to_string())],
                vec![Some("before".to_string())]
            ],
            "{db:?}"
        );
    }
}

/// Leases are decided by the database: of two stores on one database
/// (two processes, later), one holds a lease until it lapses or is given
/// up; the holder renews it; an expired lease goes to whoever asks.
#[tokio::test(flavor = "multi_thread")]
async fn a_lease_has_one_holder_until_it_lapses() {
    use std::time::Duration;
    for db in backends("lease") {
        let a = Store::connect(&db).expect("store a");
        let b = Store::connect(&db).expect("store b (same process: allowed)");
        assert_ne!(a.owner(), b.owner());
        let long = Duration::from_secs(60);
        assert!(
            a.acquire_lease("duty", long).await.expect("a takes"),
            "{db:?}"
        );
        assert!(
            !b.acquire_lease("duty", long).await.expect("b asks"),
            "{db:?}: held by a"
        );
        assert!(
            a.acquire_lease("duty", long).await.expect("a renews"),
            "{db:?}"
        );
        assert!(b
            .acquire_lease("other", long)
            .await
            .expect("b, another duty"));
        // Given up: the next one to ask gets it.
        b.release_lease("duty")
            .await
            .expect("b cannot give up a's lease");
        assert!(!b.acquire_lease("duty", long).await.expect("b asks again"));
        a.release_lease("duty").await.expect("a gives up");
        assert!(
            b.acquire_lease("duty", long).await.expect("b takes"),
            "{db:?}"
        );
        // Lapsed: a lease taken for no time at all is already over when
        // the next one asks (no waiting, so no race with a busy machine).
        assert!(b.acquire_lease("short", Duration::ZERO).await.expect("b"));
        assert!(
            a.acquire_lease("short", long)
                .await
                .expect("a after expiry"),
            "{db:?}"
        );
        assert!(
            !b.acquire_lease("short", long).await.expect("b, now a's"),
            "{db:?}"
        );
        assert_eq!(
            query(&db, "SELECT owner FROM leases WHERE name = 'short'"),
            vec![vec![Some(a.owner().to_string())]]
        );
        // Which leases are held: by prefix, expired ones left out.
        assert!(a.acquire_lease("proc/a", long).await.expect("a"));
        assert!(b.acquire_lease("proc/b", Duration::ZERO).await.expect("b"));
        assert_eq!(
            a.leases_held("proc/").await.expect("held"),
            vec![("proc/a".to_string(), a.owner().to_string())],
            "{db:?}"
        );
    }
}

/// A secondary index follows every kind of write: put, update (moving a
/// row to another key), transact, remove; and is rebuilt on load.
#[tokio::test(flavor = "multi_thread")]
async fn a_secondary_index_follows_every_write() {
    fn device(v: &Value) -> Option<String> {
        v["device_id"].as_str().map(str::to_string)
    }
    let ids = |rows: Vec<Arc<Value>>| {
        let mut v: Vec<String> = rows
            .iter()
            .filter_map(|r| r["id"].as_str().map(str::to_string))
            .collect();
        v.sort();
        v
    };
    for db in backends("index") {
        let store = Store::connect(&db).expect("open");
        let t: Table<Value> = Table::load("port", &store)
            .expect("load")
            .indexed("device", device);
        for (id, dev) in [("p1", "s1"), ("p2", "s1"), ("p3", "s2")] {
            t.put(id, json!({"id": id, "device_id": dev}))
                .await
                .expect("put");
        }
        t.put("p4", json!({"id": "p4"})).await.expect("no key");
        assert_eq!(ids(t.find("device", "s1")), ["p1", "p2"]);
        t.update(
            "p2",
            || rova_core::Fault::not_found("gone"),
            |v| {
                v["device_id"] = json!("s2");
                Ok(())
            },
        )
        .await
        .expect("move p2");
        assert_eq!(ids(t.find("device", "s1")), ["p1"]);
        assert_eq!(ids(t.find("device", "s2")), ["p2", "p3"]);
        t.transact(|tx| {
            tx.delete("p3");
            tx.put("p5", json!({"id": "p5", "device_id": "s1"}));
            Ok(())
        })
        .await
        .expect("transact");
        t.remove("p1").await.expect("remove");
        assert_eq!(ids(t.find("device", "s1")), ["p5"]);
        assert_eq!(ids(t.find("device", "s2")), ["p2"]);
        assert!(t.find("device", "nothing").is_empty());
        let again: Table<Value> = Table::load("port", &store)
            .expect("reload")
            .indexed("device", device);
        assert_eq!(ids(again.find("device", "s1")), ["p5"], "{db:?}");
        assert_eq!(ids(again.find("device", "s2")), ["p2"], "{db:?}");
    }
}

/// A stored record the release cannot read stops the load with a message
/// naming it (on whichever of the parsing threads meets it).
#[tokio::test(flavor = "multi_thread")]
async fn an_unreadable_record_stops_the_load_and_is_named() {
    #[derive(Clone, serde::Serialize, serde::Deserialize)]
    struct Strict {
        name: String,
    }
    for db in backends("unreadable") {
        let store = Store::connect(&db).expect("open");
        let t: Table<Strict> = Table::load("flavor", &store).expect("load");
        for i in 0..1500 {
            t.put(
                &format!("f{i:04}"),
                Strict {
                    name: format!("n{i}"),
                },
            )
            .await
            .expect("put");
        }
        assert_eq!(
            Table::<Strict>::load("flavor", &store)
                .expect("reload")
                .len(),
            1500
        );
        exec(
            &db,
            "INSERT INTO flavors (id, gen, body) VALUES ('broken', 1, '{\"other\": 1}')",
        );
        let err = Table::<Strict>::load("flavor", &store)
            .err()
            .expect("refused");
        assert!(
            err.contains("stored flavor broken is unreadable"),
            "{db:?}: {err}"
        );
    }
}

/// `rova db copy`: a cloud kept in SQLite, stopped, copied into another
/// database (a new SQLite file; a PostgreSQL database when the suite has
/// one) and served from there keeps its servers and key pairs; a copy
/// into a database that holds records is refused; a copy from a database
/// being served is refused.
#[tokio::test(flavor = "multi_thread")]
async fn db_copy_moves_a_cloud_to_another_database() {
    use crate::crash;
    let dir = temp_dir("copy-src");
    std::fs::create_dir_all(&dir).expect("dir");
    let source = dir.join("rova.sqlite");
    let from = format!("sqlite://{}", source.display());
    let sqlite_source = ["--database", from.as_str()];
    let r = crash::start(&dir, &sqlite_source).await;
    let id = r.create("copied", "1").await.expect("202");
    r.wait_active(&id).await;
    let (s, kp) = r
        .post(
            &r.demo,
            "/compute/v2.1/os-keypairs",
            json!({"keypair": {"name": "copied-key"}}),
        )
        .await;
    assert_eq!(s, 201, "{kp}");
    let copy = |to: &str| {
        std::process::Command::new(env!("CARGO_BIN_EXE_rova"))
            .args(["db", "copy", "--from", &from, "--to", to])
            .output()
            .expect("rova db copy runs")
    };
    // While the source is served, no copy.
    let busy = copy(&format!("sqlite://{}", dir.join("busy.sqlite").display()));
    assert!(!busy.status.success());
    assert!(
        String::from_utf8_lossy(&busy.stderr).contains("another Rova process is serving"),
        "{}",
        String::from_utf8_lossy(&busy.stderr)
    );
    r.kill();

    for db in backends("copy-dst") {
        let to = match &db {
            Database::Sqlite(p) => format!("sqlite://{}", p.display()),
            Database::Postgres(url) => url.clone(),
        };
        let out = copy(&to);
        let said = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{db:?}: {said}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(said.contains("instances"), "{said}");
        // Copying again into what now holds records is refused.
        let again = copy(&to);
        assert!(!again.status.success(), "{db:?}: a second copy");
        assert!(
            String::from_utf8_lossy(&again.stderr).contains("copy into an empty database"),
            "{}",
            String::from_utf8_lossy(&again.stderr)
        );
        // Served from the copy (same data directory for the image bytes
        // and passwords): the server and the key pair are there.
        let served = ["--database", to.as_str()];
        let r = crash::start(&dir, &served).await;
        let (s, b) = r.server(&id).await;
        assert_eq!(s, 200, "{db:?}: {b}");
        assert_eq!(b["server"]["name"], json!("copied"));
        assert_eq!(b["server"]["status"], json!("ACTIVE"));
        let (s, b) = r.get(&r.demo, "/compute/v2.1/os-keypairs/copied-key").await;
        assert_eq!(s, 200, "{db:?}: {b}");
        // A database being served is no copy source, whatever the backend.
        let busy = std::process::Command::new(env!("CARGO_BIN_EXE_rova"))
            .args(["db", "copy", "--from", &to, "--to"])
            .arg(format!("sqlite://{}", dir.join("busy2.sqlite").display()))
            .output()
            .expect("rova db copy runs");
        assert!(!busy.status.success(), "{db:?}: copied a served database");
        let err = String::from_utf8_lossy(&busy.stderr);
        assert!(
            err.contains("another Rova process is serving") || err.contains("is being served"),
            "{db:?}: {err}"
        );
        r.kill();
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// A cached table (`Table::load_cached`) keeps at most its capacity of
/// rows in memory and reads the others from the database: a row it gave
/// up is read back by id, by condition and by a version-token lookup, is
/// changed with a compare-and-swap on the token the database holds, and a
/// change another store made reaches it on the next read. Nothing is read
/// at load, and the new key columns (creation time in nanoseconds, flavor
/// resources, port ids) are filled on every write.
#[tokio::test(flavor = "multi_thread")]
async fn a_cached_table_keeps_few_rows_and_reads_the_rest_from_the_database() {
    for db in backends("cached") {
        let store = Store::connect(&db).expect("open");
        let t: Table<Value> = Table::load_cached("instance", &store, 4).expect("load");
        for n in 0..20 {
            let mut row = instance(&format!("i{n:02}"), "p", &format!("name-{n}"));
            row["id"] = json!(n + 1);
            row["flavor"] = json!({"vcpus": 2, "ram": 512, "disk": 1, "ephemeral": 0, "swap": 0});
            row["vifs"] = json!([{"port_id": format!("port-{n}")}, {"port_id": "x"}]);
            row["created_at"] = json!(format!("2026-12-05T00:00:{n:02}.5Z"));
            t.put(&format!("i{n:02}"), row).await.expect("put");
        }
        let held = (0..20)
            .filter(|n| t.in_copy(&format!("i{n:02}")).is_some())
            .count();
        assert!(
            held <= 4,
            "{db:?}: the copy holds {held} rows, over its capacity"
        );
        assert_eq!(t.len(), 20, "{db:?}: counted in the database");
        // A row given up is read back.
        let first = t.get("i00").expect("i00 from the database");
        assert_eq!(first["display_name"], "name-0");
        // Changed through a compare-and-swap on the stored token.
        for n in [1, 2, 3] {
            let id = format!("i{n:02}");
            t.update(
                &id,
                || rova_core::Fault::not_found("gone"),
                |v| {
                    v["display_name"] = json!(format!("renamed-{n}"));
                    Ok(())
                },
            )
            .await
            .expect("update a row the copy gave up");
        }
        // Another store (another process) changes a row this copy holds.
        let other = Store::connect(&db);
        if let Ok(other) = other {
            let ot: Table<Value> = Table::load_cached("instance", &other, 4).expect("other");
            ot.update(
                "i03",
                || rova_core::Fault::not_found("gone"),
                |v| {
                    v["display_name"] = json!("changed-elsewhere");
                    Ok(())
                },
            )
            .await
            .expect("update through the other store");
            let (found_gen, found_name): (i64, String) = {
                let rows = store
                    .select(
                        "SELECT gen, display_name FROM instances WHERE id = ?1",
                        vec![rova::store::schema::Cell::Text("i03".into())],
                    )
                    .expect("select");
                (
                    rows[0][0].int().expect("gen"),
                    rows[0][1].text().expect("name").to_string(),
                )
            };
            assert_eq!(found_name, "changed-elsewhere");
            let resolved = t
                .resolve(&[("i03".to_string(), found_gen)])
                .expect("resolve");
            assert_eq!(
                resolved[0]["display_name"], "changed-elsewhere",
                "{db:?}: a newer version in the database replaces the copy's"
            );
        }
        // Queries by condition, in the statement's order.
        let renamed = t
            .select(
                "display_name LIKE ?1 ORDER BY created_ns DESC",
                vec![rova::store::schema::Cell::Text("renamed-%".into())],
            )
            .expect("select");
        let names: Vec<&str> = renamed
            .iter()
            .filter_map(|v| v["display_name"].as_str())
            .collect();
        assert_eq!(names, ["renamed-2", "renamed-1"], "{db:?}");
        // The key columns the lists and claims read.
        let cols = store
            .select(
                "SELECT created_ns, vcpus, memory_mb, root_gb, vif_ports FROM instances WHERE id = ?1",
                vec![rova::store::schema::Cell::Text("i07".into())],
            )
            .expect("columns");
        let want_ns = chrono::DateTime::parse_from_rfc3339("2026-12-05T00:00:07.5Z")
            .expect("time")
            .timestamp_nanos_opt();
        assert_eq!(cols[0][0].int(), want_ns, "{db:?}");
        assert_eq!(cols[0][1].int(), Some(2));
        assert_eq!(cols[0][2].int(), Some(512));
        assert_eq!(cols[0][3].int(), Some(1));
        assert_eq!(cols[0][4].text(), Some("port-7 x"));
        // A delete of a row the copy does not hold.
        assert!(t.remove("i00").await.expect("remove").is_some());
        assert!(t.get("i00").is_none(), "{db:?}: deleted in the database");
        assert_eq!(t.len(), 19);
        // A fresh copy reads nothing at load and still finds every row.
        let again: Table<Value> = Table::load_cached("instance", &store, 4).expect("again");
        assert!(again.in_copy("i05").is_none());
        assert_eq!(again.get("i05").expect("i05")["display_name"], "name-5");
    }
}

/// A database at schema version 4 (before the instance columns) is
/// brought to version 5 on open: the columns are added and filled from
/// each stored document, so lists and usage read them at once.
#[tokio::test(flavor = "multi_thread")]
async fn the_instance_columns_are_filled_for_rows_stored_before_them() {
    for db in backends("rekey") {
        {
            let store = Store::connect(&db).expect("open");
            let t: Table<Value> = Table::load("instance", &store).expect("load");
            let mut row = instance("old", "p", "stored-before");
            row["flavor"] =
                json!({"vcpus": 4, "ram": 2048, "disk": 20, "ephemeral": 1, "swap": 512});
            row["created_at"] = json!("2026-12-05T00:00:01.25Z");
            t.put("old", row).await.expect("put");
        }
        // Back to version 4: the columns and their indexes go.
        let drops = [
            "created_ns",
            "op_owner",
            "image_ref",
            "vcpus",
            "memory_mb",
            "root_gb",
            "ephemeral_gb",
            "vif_ports",
            "swap_mb",
        ];
        let mut sql = String::from(
            "DROP INDEX instances_list_order; DROP INDEX instances_project_list_order;",
        );
        for c in drops {
            sql.push_str(&format!(" ALTER TABLE instances DROP COLUMN {c};"));
        }
        sql.push_str(" DELETE FROM schema_migrations WHERE version = 5;");
        exec(&db, &sql);
        let store = Store::connect(&db).expect("reopen migrates");
        let rows = store
            .select(
                "SELECT created_ns, vcpus, memory_mb, root_gb, ephemeral_gb, swap_mb FROM instances WHERE id = ?1",
                vec![rova::store::schema::Cell::Text("old".into())],
            )
            .expect("columns");
        let want_ns = chrono::DateTime::parse_from_rfc3339("2026-12-05T00:00:01.25Z")
            .expect("time")
            .timestamp_nanos_opt();
        let got: Vec<Option<i64>> = rows[0].iter().map(|c| c.int()).collect();
        assert_eq!(
            got,
            vec![want_ns, Some(4), Some(2048), Some(20), Some(1), Some(512)],
            "{db:?}"
        );
    }
}

/// A database from before member rows (version 8: a group's document
/// lists its members) is brought to version 9 on open: each listed member
/// becomes a row of `server_group_members`, with its user from the
/// server's row and its place in the list, counted by the quota.
#[tokio::test(flavor = "multi_thread")]
async fn a_groups_listed_members_become_member_rows() {
    for db in backends("members") {
        {
            let store = Store::connect(&db).expect("open");
            let servers: Table<Value> = Table::load("instance", &store).expect("load");
            for (id, user) in [("m1", "alice"), ("m2", "bob")] {
                let mut row = instance(id, "p", id);
                row["user_id"] = json!(user);
                servers.put(id, row).await.expect("server");
            }
            let groups: Table<Value> = Table::load("server_group", &store).expect("groups");
            groups
                .put(
                    "g",
                    json!({"uuid": "g", "name": "g", "project_id": "p", "user_id": "alice",
                           "policy": "anti-affinity", "created_at": "2026-12-05T00:00:00Z",
                           "members": ["m2", "m1"]}),
                )
                .await
                .expect("group");
        }
        exec(
            &db,
            "DROP TABLE server_group_members; DELETE FROM schema_migrations WHERE version = 9;",
        );
        let store = Store::connect(&db).expect("reopen migrates");
        let members: Table<Value> = Table::load("server_group_member", &store).expect("members");
        let mut rows: Vec<(i64, String, String)> = members
            .all()
            .iter()
            .map(|m| {
                (
                    m["position"].as_i64().unwrap_or(-1),
                    m["instance_uuid"].as_str().unwrap_or("").to_string(),
                    m["group_user"].as_str().unwrap_or("").to_string(),
                )
            })
            .collect();
        rows.sort();
        assert_eq!(
            rows,
            vec![
                (0, "m2".to_string(), "g/bob".to_string()),
                (1, "m1".to_string(), "g/alice".to_string())
            ],
            "{db:?}"
        );
        assert_eq!(
            query(
                &db,
                "SELECT id, group_id, group_user FROM server_group_members ORDER BY id"
            ),
            vec![
                vec![
                    Some("g/m1".into()),
                    Some("g".into()),
                    Some("g/alice".into())
                ],
                vec![Some("g/m2".into()), Some("g".into()), Some("g/bob".into())]
            ],
            "{db:?}"
        );
    }
}

/// The SQLite WAL stays bounded under a steady stream of commits: the
/// checkpointer's passive checkpoints never catch up with the last commit,
/// so the writer checkpoints it whole between two batches once it passed
/// its bound and SQLite starts it over (before, it grew to 7 GB over
/// 100,000 creates). Here with a bound of 64 frames (256 KiB) and rows
/// written one commit at a time for four seconds.
#[tokio::test(flavor = "multi_thread")]
async fn the_sqlite_wal_stays_bounded_under_steady_writes() {
    // This test's own process (nextest runs each test in one).
    std::env::set_var("ROVA_SQLITE_WAL_FRAMES", "64");
    let dir = temp_dir("wal-bound");
    std::fs::create_dir_all(&dir).expect("dir");
    let path = dir.join("rova.sqlite");
    let store = Store::connect(&Database::Sqlite(path.clone())).expect("open");
    let t: Table<Value> = Table::load("quota", &store).expect("load");
    let filler = "x".repeat(1500);
    let began = std::time::Instant::now();
    let mut n = 0u64;
    let mut largest = 0u64;
    while began.elapsed() < std::time::Duration::from_secs(4) {
        for _ in 0..20 {
            let id = format!("q{}", n % 200);
            t.put(&id, json!({"project_id": id, "n": n, "filler": filler}))
                .await
                .expect("write");
            n += 1;
        }
        let wal = std::fs::metadata(dir.join("rova.sqlite-wal")).map_or(0, |m| m.len());
        largest = largest.max(wal);
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    assert!(n > 200, "only {n} writes");
    // Each write is a commit of its own and appends at least one 4 KiB
    // page to the WAL: unbounded, it would hold all of them at the end.
    // Bounded, it holds what the writer appends between the checkpointer
    // noticing (every 500 ms) and the writer's checkpoint: a fraction of
    // the run, however fast the machine.
    let appended = n * 4120;
    assert!(
        largest < appended / 2,
        "the WAL reached {largest} bytes over {n} writes (at least {appended} appended)"
    );
}
