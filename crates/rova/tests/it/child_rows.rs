//! Child tables: rows that belong to a parent row (a flavor's extra specs
//! and grants) are written together with their parent, all or nothing,
//! on both backends, and the migration that moved them out of their
//! parent's document keeps every one.

use super::storage::{backends, exec, query};
use rova::compute::flavors::Flavors;
use rova::compute::Flavor;
use rova::store::{Store, Table};
use rova_core::Fault;
use serde_json::{json, Value};
use std::collections::BTreeMap;

fn flavor(id: &str, name: &str) -> Flavor {
    Flavor {
        id: id.into(),
        name: name.into(),
        vcpus: 1,
        ram: 512,
        disk: 1,
        ephemeral: 0,
        swap: 0,
        rxtx_factor: 1.0,
        is_public: false,
        disabled: false,
        description: None,
        extra_specs: BTreeMap::new(),
        created_at: chrono::Utc::now(),
        projects: Vec::new(),
    }
}

fn taken(what: &str) -> Fault {
    Fault::conflict(format!("{what} taken"))
}

fn specs(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn count(db: &rova::store::Database, sql: &str) -> String {
    query(db, sql)
        .first()
        .and_then(|r| r.first().cloned().flatten())
        .unwrap_or_default()
}

/// Extra specs and grants are rows of their own: set, replaced, removed
/// and read back with the flavor, grants in the order they were made; a
/// flavor's delete takes its rows with it.
#[tokio::test(flavor = "multi_thread")]
async fn a_flavors_specs_and_grants_are_rows_of_their_own() {
    for db in backends("flavor-rows") {
        let store = Store::connect(&db).expect("open");
        let flavors = Flavors::load(&store).expect("load");
        flavors
            .create(flavor("f1", "one"), taken("id"), taken("name"))
            .await
            .expect("create");
        flavors
            .set_specs(
                "f1",
                specs(&[("hw:cpu_policy", "dedicated"), ("a/b c", "1")]),
            )
            .await
            .expect("set");
        flavors
            .set_specs("f1", specs(&[("hw:cpu_policy", "shared")]))
            .await
            .expect("replace");
        for p in ["pz", "pa", "pm"] {
            flavors
                .grant("f1", p, || taken("grant"))
                .await
                .expect("grant");
        }
        let again = flavors.grant("f1", "pa", || taken("grant")).await;
        assert_eq!(again.expect_err("twice").message, "grant taken");
        flavors
            .revoke("f1", "pa", || Fault::not_found("no grant"))
            .await
            .expect("revoke");
        flavors
            .grant("f1", "pa", || taken("grant"))
            .await
            .expect("again");
        let f = flavors.get("f1").expect("flavor");
        assert_eq!(
            f.extra_specs,
            specs(&[("hw:cpu_policy", "shared"), ("a/b c", "1")]),
            "{db:?}"
        );
        assert_eq!(f.projects, vec!["pz", "pm", "pa"], "{db:?}: grant order");
        assert_eq!(
            query(
                &db,
                "SELECT spec_key FROM flavor_extra_specs ORDER BY spec_key"
            ),
            vec![
                vec![Some("a/b c".into())],
                vec![Some("hw:cpu_policy".into())]
            ],
            "{db:?}"
        );
        // The document holds neither list.
        let body = count(&db, "SELECT body FROM flavors WHERE id = 'f1'");
        let doc: Value = serde_json::from_str(&body).expect("json");
        assert!(
            doc.get("extra_specs").is_none() && doc.get("projects").is_none(),
            "{body}"
        );
        // A fresh process reads the same flavor.
        let reread = Flavors::load(&store).expect("reload");
        let g = reread.get("f1").expect("flavor");
        assert_eq!(
            (g.extra_specs.clone(), g.projects.clone()),
            (f.extra_specs.clone(), f.projects.clone())
        );
        let gone = flavors
            .delete_spec("f1", "nope", || Fault::not_found("no spec"))
            .await;
        assert_eq!(gone.expect_err("absent key").code, 404);
        flavors.delete("f1").await.expect("delete");
        assert!(flavors.get("f1").is_none());
        for table in ["flavors", "flavor_extra_specs", "flavor_projects"] {
            assert_eq!(
                count(&db, &format!("SELECT count(*) FROM {table}")),
                "0",
                "{db:?}: {table}"
            );
        }
    }
}

/// A change to a flavor's child rows is written with its flavor row: when
/// another process deleted the flavor meanwhile, nothing is written and no
/// row is left without its flavor. A flavor name is unique by the
/// database's count, so a flavor another process named first is refused.
#[tokio::test(flavor = "multi_thread")]
async fn a_child_row_is_never_left_without_its_flavor() {
    for db in backends("flavor-orphans") {
        let store = Store::connect(&db).expect("open");
        let flavors = Flavors::load(&store).expect("load");
        flavors
            .create(flavor("f2", "two"), taken("id"), taken("name"))
            .await
            .expect("create");
        // Another process deletes the flavor.
        exec(&db, "DELETE FROM flavors WHERE id = 'f2'");
        let set = flavors.set_specs("f2", specs(&[("k", "v")])).await;
        assert!(set.is_err(), "{db:?}: set on a deleted flavor");
        let grant = flavors.grant("f2", "p", || taken("grant")).await;
        assert!(grant.is_err(), "{db:?}: grant on a deleted flavor");
        assert_eq!(
            count(&db, "SELECT count(*) FROM flavor_extra_specs"),
            "0",
            "{db:?}"
        );
        assert_eq!(
            count(&db, "SELECT count(*) FROM flavor_projects"),
            "0",
            "{db:?}"
        );
        // Another process holds the name "three".
        exec(
            &db,
            r#"INSERT INTO flavors (id, gen, name, is_public, disabled, body) VALUES ('x', 1, 'three', true, false, '{}')"#,
        );
        let dup = flavors
            .create(flavor("f3", "three"), taken("id"), taken("name"))
            .await;
        assert_eq!(dup.expect_err("name taken").message, "name taken", "{db:?}");
        assert!(flavors.get("f3").is_none());
        exec(&db, "DELETE FROM flavors WHERE id = 'x'");
        // Grants a flavor's delete left behind are gone with the next
        // flavor of its id.
        exec(
            &db,
            r#"INSERT INTO flavor_projects (id, gen, flavor_id, project_id, body) VALUES ('f4/old', 1, 'f4', 'old', '{"flavor_id":"f4","project_id":"old","position":0}')"#,
        );
        let fresh = Flavors::load(&store).expect("reload");
        fresh
            .create(flavor("f4", "four"), taken("id"), taken("name"))
            .await
            .expect("create f4");
        assert!(fresh.get("f4").expect("f4").projects.is_empty(), "{db:?}");
        assert_eq!(
            count(&db, "SELECT count(*) FROM flavor_projects"),
            "0",
            "{db:?}"
        );
    }
}

/// A database from before child rows (version 9: a flavor's document
/// holds its extra specs and projects) is brought to version 10 on open:
/// each spec and grant becomes a row, grants keep their order, and the
/// document loses both lists.
#[tokio::test(flavor = "multi_thread")]
async fn a_flavors_listed_specs_and_grants_become_rows() {
    for db in backends("flavor-migrate") {
        {
            let store = Store::connect(&db).expect("open");
            let raw: Table<Value> = Table::load("flavor", &store).expect("load");
            raw.put(
                "f",
                json!({"id": "f", "name": "f", "vcpus": 1, "ram": 64, "disk": 1, "ephemeral": 0,
                       "swap": 0, "rxtx_factor": 1.0, "is_public": false, "disabled": false,
                       "description": null, "created_at": "2026-12-05T00:00:00Z",
                       "extra_specs": {"hw:mem_page_size": "large", "quota:disk_read_bytes_sec": "10"},
                       "projects": ["p2", "p1"]}),
            )
            .await
            .expect("flavor");
        }
        exec(
            &db,
            "DROP TABLE flavor_extra_specs; DROP TABLE flavor_projects; DROP INDEX flavors_name; \
             DELETE FROM schema_migrations WHERE version = 10;",
        );
        let store = Store::connect(&db).expect("reopen migrates");
        let flavors = Flavors::load(&store).expect("load");
        let f = flavors.get("f").expect("flavor");
        assert_eq!(
            f.extra_specs,
            specs(&[
                ("hw:mem_page_size", "large"),
                ("quota:disk_read_bytes_sec", "10")
            ]),
            "{db:?}"
        );
        assert_eq!(f.projects, vec!["p2", "p1"], "{db:?}");
        let body = count(&db, "SELECT body FROM flavors WHERE id = 'f'");
        let doc: Value = serde_json::from_str(&body).expect("json");
        assert!(
            doc.get("extra_specs").is_none() && doc.get("projects").is_none(),
            "{body}"
        );
        assert_eq!(doc["name"], "f", "{db:?}: the rest is kept");
    }
}

mod security_group_rules {
    use super::{backends, count, exec, query};
    use rova::network::secgroups::store::SecurityGroups;
    use rova::network::secgroups::{new_group, SecurityGroupRule};
    use rova::store::{Store, Table};
    use rova_core::Fault;
    use serde_json::{json, Value};

    fn rule(id: &str, group: &str, remote: Option<&str>, port: u32) -> SecurityGroupRule {
        let now = chrono::Utc::now();
        SecurityGroupRule {
            id: id.into(),
            security_group_id: group.into(),
            project_id: "p".into(),
            direction: "ingress".into(),
            ethertype: "IPv4".into(),
            protocol: Some("tcp".into()),
            port_range_min: Some(port),
            port_range_max: Some(port),
            remote_ip_prefix: None,
            remote_group_id: remote.map(str::to_string),
            description: String::new(),
            created_at: now,
            updated_at: now,
        }
    }

    fn ids(rules: &[SecurityGroupRule]) -> Vec<String> {
        rules.iter().map(|r| r.id.clone()).collect()
    }

    /// A group's rules are rows: added in order (a duplicate refused with
    /// the existing rule's id), found by id, removed one by one, and gone
    /// with their group together with the other groups' rules naming it.
    #[tokio::test(flavor = "multi_thread")]
    async fn a_groups_rules_are_rows_written_with_it() {
        for db in backends("sg-rules") {
            let store = Store::connect(&db).expect("open");
            let sgs = SecurityGroups::load(&store).expect("load");
            let now = chrono::Utc::now();
            for (id, default) in [("a", true), ("b", false)] {
                let g = new_group(id.into(), id.into(), String::new(), "p", true, default, now);
                sgs.insert_new(g, Fault::conflict("taken"))
                    .await
                    .expect("group");
            }
            let template = ids(&sgs.get("a").expect("a").rules);
            assert_eq!(template.len(), 4, "{db:?}");
            let port = |p: u32| move |r: &SecurityGroupRule| r.port_range_min == Some(p);
            for (rid, p) in [("r22", 22), ("r80", 80)] {
                sgs.add_rule(rule(rid, "a", None, p), |g| g.revision_number += 1, port(p))
                    .await
                    .expect("add")
                    .expect("new");
            }
            let dup = sgs
                .add_rule(
                    rule("r22b", "a", None, 22),
                    |g| g.revision_number += 1,
                    port(22),
                )
                .await
                .expect("answered");
            assert_eq!(dup, Err("r22".to_string()), "{db:?}");
            // b's rule names a as its remote group.
            sgs.add_rule(rule("rb", "b", Some("a"), 443), |_| {}, port(443))
                .await
                .expect("add")
                .expect("new");
            let a = sgs.get("a").expect("a");
            let mut want = template.clone();
            want.extend(["r22".to_string(), "r80".to_string()]);
            assert_eq!(ids(&a.rules), want, "{db:?}: added in order");
            assert_eq!(a.revision_number, 3, "{db:?}");
            assert_eq!(sgs.rule("r80").expect("r80").0.id, "a");
            sgs.delete_rule("a", "r80", |g| g.revision_number += 1)
                .await
                .expect("delete rule");
            let gone = sgs.delete_rule("b", "r22", |_| {}).await;
            assert_eq!(gone.expect_err("another group's rule").code, 404);
            // The document holds no rules; a fresh process reads the same.
            let body = count(&db, "SELECT body FROM security_groups WHERE id = 'a'");
            let doc: Value = serde_json::from_str(&body).expect("json");
            assert!(doc.get("rules").is_none(), "{body}");
            let again = SecurityGroups::load(&store).expect("reload");
            assert_eq!(
                ids(&again.get("a").expect("a").rules),
                ids(&sgs.get("a").expect("a").rules)
            );
            let touched = sgs.delete("a").await.expect("delete").expect("was there");
            assert_eq!(touched, vec!["b".to_string()], "{db:?}");
            assert!(sgs.get("b").expect("b").rules.iter().all(|r| r.id != "rb"));
            assert_eq!(
                query(&db, "SELECT security_group_id, count(*) FROM security_group_rules GROUP BY security_group_id"),
                vec![vec![Some("b".into()), Some("2".into())]],
                "{db:?}: a's rules and the rule naming a are gone"
            );
            assert!(sgs.delete("a").await.expect("again").is_none());
        }
    }

    /// A rule for a group another process deleted meanwhile is refused
    /// and leaves no row.
    #[tokio::test(flavor = "multi_thread")]
    async fn a_rule_is_never_left_without_its_group() {
        for db in backends("sg-orphans") {
            let store = Store::connect(&db).expect("open");
            let sgs = SecurityGroups::load(&store).expect("load");
            let g = new_group(
                "c".into(),
                "c".into(),
                String::new(),
                "p",
                true,
                false,
                chrono::Utc::now(),
            );
            sgs.insert_new(g, Fault::conflict("taken"))
                .await
                .expect("group");
            exec(&db, "DELETE FROM security_groups WHERE id = 'c'");
            let made = sgs
                .add_rule(rule("rc", "c", None, 22), |_| {}, |_| false)
                .await;
            assert!(made.is_err(), "{db:?}: {made:?}");
            assert_eq!(
                count(
                    &db,
                    "SELECT count(*) FROM security_group_rules WHERE id = 'rc'"
                ),
                "0",
                "{db:?}"
            );
        }
    }

    /// A database from before rule rows (version 10: a group's document
    /// lists its rules) is brought to version 11 on open: each rule
    /// becomes a row in its place, and the document loses the list.
    #[tokio::test(flavor = "multi_thread")]
    async fn a_groups_listed_rules_become_rows() {
        for db in backends("sg-migrate") {
            {
                let store = Store::connect(&db).expect("open");
                let raw: Table<Value> = Table::load("security_group", &store).expect("load");
                let g = new_group(
                    "d".into(),
                    "d".into(),
                    "x".into(),
                    "p",
                    true,
                    true,
                    chrono::Utc::now(),
                );
                let mut doc = serde_json::to_value(&g).expect("doc");
                let rules: Vec<Value> = g
                    .rules
                    .iter()
                    .map(|r| serde_json::to_value(r).expect("rule"))
                    .collect();
                doc["rules"] = json!(rules);
                raw.put("d", doc).await.expect("group");
            }
            let listed = {
                let body = count(&db, "SELECT body FROM security_groups WHERE id = 'd'");
                let doc: Value = serde_json::from_str(&body).expect("json");
                doc["rules"]
                    .as_array()
                    .expect("rules")
                    .iter()
                    .map(|r| r["id"].as_str().unwrap_or("").to_string())
                    .collect::<Vec<_>>()
            };
            assert_eq!(listed.len(), 4);
            exec(
                &db,
                "DROP TABLE security_group_rules; DELETE FROM schema_migrations WHERE version = 11;",
            );
            let store = Store::connect(&db).expect("reopen migrates");
            let sgs = SecurityGroups::load(&store).expect("load");
            let d = sgs.get("d").expect("d");
            assert_eq!(ids(&d.rules), listed, "{db:?}: every rule, in its place");
            assert!(d.rules.iter().all(|r| r.security_group_id == "d"));
            let body = count(&db, "SELECT body FROM security_groups WHERE id = 'd'");
            let doc: Value = serde_json::from_str(&body).expect("json");
            assert!(doc.get("rules").is_none(), "{body}");
            assert_eq!(doc["description"], "x", "{db:?}: the rest is kept");
        }
    }
}

/// An image's members are rows written with the image's row: an offer of
/// an image another process deleted meanwhile is refused and leaves no
/// row, and an image's delete takes its members.
#[tokio::test(flavor = "multi_thread")]
async fn an_image_member_is_never_left_without_its_image() {
    use rova::image::{Image, Images};
    for db in backends("image-members") {
        let store = Store::connect(&db).expect("open");
        let dir = super::storage::temp_dir("image-members-files");
        let images = Images::load(&store, &dir).expect("load");
        let now = chrono::Utc::now();
        for id in ["i1", "i2"] {
            let mut img = Image::queued("owner", "shared", now);
            img.id = id.into();
            images.create(img, None).await.expect("image");
        }
        images.add_member("i1", "pa", now).await.expect("offer");
        images.add_member("i1", "pb", now).await.expect("offer");
        let again = images.add_member("i1", "pa", now).await;
        assert_eq!(again.expect_err("twice").code, 409, "{db:?}");
        let m = images
            .set_member_status("i1", "pa", "accepted", now, || Fault::not_found("none"))
            .await
            .expect("accept");
        assert_eq!(m.status, "accepted");
        exec(&db, "DELETE FROM images WHERE id = 'i2'");
        let orphan = images.add_member("i2", "pa", now).await;
        assert!(orphan.is_err(), "{db:?}: offer of a deleted image");
        assert_eq!(
            count(
                &db,
                "SELECT count(*) FROM image_members WHERE image_id = 'i2'"
            ),
            "0",
            "{db:?}"
        );
        assert_eq!(
            query(
                &db,
                "SELECT member_id, status FROM image_members ORDER BY member_id"
            ),
            vec![
                vec![Some("pa".into()), Some("accepted".into())],
                vec![Some("pb".into()), Some("pending".into())]
            ],
            "{db:?}"
        );
        images.delete("i1").await.expect("delete");
        assert_eq!(
            count(&db, "SELECT count(*) FROM image_members"),
            "0",
            "{db:?}"
        );
    }
}

/// An image's tags are rows written with the image's row: set at its
/// insert, changed by its updates (in their order), read back by a fresh
/// process, gone with the image; the document holds none.
#[tokio::test(flavor = "multi_thread")]
async fn an_images_tags_are_rows_written_with_it() {
    use rova::image::{Image, Images};
    for db in backends("image-tags") {
        let store = Store::connect(&db).expect("open");
        let dir = super::storage::temp_dir("image-tags-files");
        let images = Images::load(&store, &dir).expect("load");
        let mut img = Image::queued("owner", "private", chrono::Utc::now());
        img.id = "t1".into();
        img.tags = vec!["b".into(), "a".into()];
        images
            .insert_new(img, Fault::conflict("taken"))
            .await
            .expect("insert");
        let (changed, ()) = images
            .update(
                "t1",
                || Fault::not_found("none"),
                |i| {
                    i.tags.retain(|t| t != "b");
                    i.tags.push("c".into());
                    Ok(())
                },
            )
            .await
            .expect("update");
        assert_eq!(changed.tags, vec!["a", "c"], "{db:?}");
        // An update of other fields keeps the tags.
        images
            .update(
                "t1",
                || Fault::not_found("none"),
                |i| {
                    i.name = Some("named".into());
                    Ok(())
                },
            )
            .await
            .expect("rename");
        let again = Images::load(&store, &dir).expect("reload");
        assert_eq!(again.get("t1").expect("t1").tags, vec!["a", "c"], "{db:?}");
        assert_eq!(
            query(&db, "SELECT tag FROM image_tags ORDER BY tag"),
            vec![vec![Some("a".into())], vec![Some("c".into())]],
            "{db:?}"
        );
        let body = count(&db, "SELECT body FROM images WHERE id = 't1'");
        let doc: Value = serde_json::from_str(&body).expect("json");
        assert!(doc.get("tags").is_none(), "{body}");
        images.delete("t1").await.expect("delete");
        assert_eq!(count(&db, "SELECT count(*) FROM image_tags"), "0", "{db:?}");
    }
}

/// A database from before tag rows (version 12: an image's document lists
/// its tags) is brought to version 13 on open: each tag becomes a row in
/// its place, and the document loses the list.
#[tokio::test(flavor = "multi_thread")]
async fn an_images_listed_tags_become_rows() {
    use rova::image::{Image, Images};
    for db in backends("image-tags-migrate") {
        {
            let store = Store::connect(&db).expect("open");
            let raw: Table<Value> = Table::load("image", &store).expect("load");
            let img = Image::queued("owner", "public", chrono::Utc::now());
            let mut doc = serde_json::to_value(&img).expect("doc");
            doc["id"] = json!("t2");
            doc["tags"] = json!(["z", "y", "x"]);
            raw.put("t2", doc).await.expect("image");
        }
        exec(
            &db,
            "DROP TABLE image_tags; DELETE FROM schema_migrations WHERE version = 13;",
        );
        let store = Store::connect(&db).expect("reopen migrates");
        let dir = super::storage::temp_dir("image-tags-migrate-files");
        let images = Images::load(&store, &dir).expect("load");
        assert_eq!(
            images.get("t2").expect("t2").tags,
            vec!["z", "y", "x"],
            "{db:?}"
        );
        let body = count(&db, "SELECT body FROM images WHERE id = 't2'");
        let doc: Value = serde_json::from_str(&body).expect("json");
        assert!(doc.get("tags").is_none(), "{body}");
        assert_eq!(doc["visibility"], "public", "{db:?}: the rest is kept");
    }
}

mod instance_actions;
