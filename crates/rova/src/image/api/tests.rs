//! Unit tests for the Glance API's list query, validation and JSON patch
//! parsing.

use super::images::{apply_patch, image_from_body, parse_patch, pointer_key};
use super::list::{listed_for, parse_list_query, select_page};

use super::*;
use chrono::TimeZone;
use std::collections::BTreeMap;

fn ctx(project: &str, roles: &[&str]) -> Ctx {
    Ctx {
        user_id: "u".into(),
        user_name: "u".into(),
        project_id: project.into(),
        project_name: project.into(),
        roles: roles.iter().map(|r| r.to_string()).collect(),
        request_id: String::new(),
        version: rova_core::microversion::MIN,
    }
}

fn img(id: &str, owner: &str, vis: &str, secs: i64) -> Arc<Image> {
    let t = chrono::Utc
        .timestamp_opt(1_700_000_000 + secs, 0)
        .single()
        .unwrap_or_default();
    let mut props = BTreeMap::new();
    props.insert("hw_rescue_bus".to_string(), json!("scsi"));
    Arc::new(Image {
        id: id.into(),
        name: Some(format!("n-{id}")),
        status: "active".into(),
        visibility: vis.into(),
        owner: owner.into(),
        container_format: Some("bare".into()),
        disk_format: Some("qcow2".into()),
        size: Some(secs as u64),
        virtual_size: None,
        checksum: None,
        os_hash_algo: None,
        os_hash_value: None,
        min_disk: 0,
        min_ram: 0,
        protected: false,
        os_hidden: false,
        tags: vec!["t1".into()],
        properties: props,
        created_at: t,
        updated_at: t,
    })
}

fn pairs(q: &str) -> Vec<(String, String)> {
    form_urlencoded::parse(q.as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

#[test]
fn default_listing_hides_foreign_community_images() {
    let c = img("c", "other", "community", 1);
    let p = img("p", "other", "private", 2);
    let own = img("o", "me", "community", 3);
    let none = (None, "accepted");
    assert!(!listed_for(&c, "me", false, None, none));
    assert!(listed_for(&c, "me", false, Some("community"), none));
    assert!(listed_for(&c, "me", false, Some("all"), none));
    assert!(!listed_for(&p, "me", false, Some("all"), none));
    assert!(listed_for(&p, "me", true, None, none));
    assert!(listed_for(&own, "me", false, None, none));
    assert!(!listed_for(&own, "me", false, Some("public"), none));
}

#[test]
fn a_shared_image_is_listed_by_its_members_status() {
    let s = img("s", "other", "shared", 1);
    let offer = |status: &str| crate::image::members::Member {
        image_id: "s".into(),
        member_id: "me".into(),
        status: status.into(),
        created_at: s.created_at,
        updated_at: s.created_at,
    };
    let (pending, accepted) = (offer("pending"), offer("accepted"));
    assert!(
        !listed_for(&s, "me", false, None, (None, "all")),
        "not offered"
    );
    assert!(!listed_for(
        &s,
        "me",
        false,
        None,
        (Some(&pending), "accepted")
    ));
    assert!(listed_for(
        &s,
        "me",
        false,
        None,
        (Some(&pending), "pending")
    ));
    assert!(listed_for(&s, "me", false, None, (Some(&pending), "all")));
    assert!(listed_for(
        &s,
        "me",
        false,
        None,
        (Some(&accepted), "accepted")
    ));
    assert!(listed_for(
        &s,
        "me",
        false,
        Some("shared"),
        (Some(&accepted), "accepted")
    ));
    assert!(!listed_for(
        &s,
        "me",
        false,
        Some("private"),
        (Some(&accepted), "accepted")
    ));
    let own = img("o", "me", "shared", 2);
    assert!(
        listed_for(&own, "me", false, None, (None, "rejected")),
        "own images always"
    );
}

#[test]
fn filters_sorting_and_paging() {
    let imgs = vec![
        img("a", "me", "public", 1),
        img("b", "me", "public", 2),
        img("c", "me", "public", 3),
    ];
    let q = parse_list_query(&pairs("limit=2")).expect("query");
    let (page, full) = select_page(imgs.clone(), &q, None);
    assert_eq!(
        page.iter().map(|i| i.id.as_str()).collect::<Vec<_>>(),
        ["c", "b"]
    );
    assert!(full);
    let (page, full) = select_page(imgs.clone(), &q, Some(&imgs[1]));
    assert_eq!(
        page.iter().map(|i| i.id.as_str()).collect::<Vec<_>>(),
        ["a"]
    );
    assert!(!full);
    let q = parse_list_query(&pairs("sort=name:asc")).expect("query");
    let (page, _) = select_page(imgs.clone(), &q, None);
    assert_eq!(page[0].id, "a");
    let q = parse_list_query(&pairs("name=in:n-a,n-c&hw_rescue_bus=scsi&tag=t1")).expect("query");
    assert_eq!(select_page(imgs.clone(), &q, None).0.len(), 2);
    let q = parse_list_query(&pairs("hw_rescue_bus=virtio")).expect("query");
    assert!(select_page(imgs.clone(), &q, None).0.is_empty());
    let q = parse_list_query(&pairs("size_min=2&size_max=2")).expect("query");
    assert_eq!(select_page(imgs, &q, None).0.len(), 1);
    assert!(parse_list_query(&pairs("limit=-1")).is_err());
    assert!(parse_list_query(&pairs("sort_key=bogus")).is_err());
    assert!(parse_list_query(&pairs("sort_dir=sideways")).is_err());
    assert!(parse_list_query(&pairs("status=nope")).is_err());
    assert!(parse_list_query(&pairs("sort=name&sort_key=id")).is_err());
}

#[test]
fn create_body_rules() {
    let member = ctx("me", &["member", "reader"]);
    let now = chrono::Utc::now();
    let body =
        json!({"name": "x", "disk_format": "qcow2", "hw_disk_bus": "scsi", "tags": ["a", "a"]});
    let i = image_from_body(body.as_object().expect("obj"), &member, now).expect("valid");
    assert_eq!(i.visibility, "shared");
    assert_eq!(i.tags, vec!["a".to_string()]);
    assert_eq!(i.properties.get("hw_disk_bus"), Some(&json!("scsi")));
    let bad = |v: Value| {
        image_from_body(v.as_object().expect("obj"), &member, now)
            .map(|_| ())
            .unwrap_err()
            .code
    };
    assert_eq!(bad(json!({"status": "active"})), 403);
    assert_eq!(bad(json!({"deleted": true})), 403);
    assert_eq!(bad(json!({"visibility": "public"})), 403);
    assert_eq!(bad(json!({"disk_format": "floppy"})), 400);
    assert_eq!(bad(json!({"min_ram": -1})), 400);
    assert_eq!(bad(json!({"extra": 5})), 400);
    assert_eq!(bad(json!({"id": "not-a-uuid"})), 400);
    assert_eq!(bad(json!({"owner": "someone-else"})), 403);
    let admin = ctx("adm", &["admin", "member", "reader"]);
    assert!(image_from_body(
        json!({"visibility": "public"}).as_object().expect("obj"),
        &admin,
        now
    )
    .is_ok());
}

#[test]
fn patch_semantics() {
    let member = ctx("me", &["member"]);
    let mut i = (*img("a", "me", "private", 1)).clone();
    let ops = parse_patch(
        &json!([
            {"op": "replace", "path": "/name", "value": "new"},
            {"op": "add", "path": "/hw_rescue_device", "value": "disk"},
            {"op": "remove", "path": "/hw_rescue_bus"},
            {"op": "replace", "path": "/min_ram", "value": 512},
        ]),
        true,
    )
    .expect("ops");
    apply_patch(&mut i, &member, &ops).expect("applies");
    assert_eq!(i.name.as_deref(), Some("new"));
    assert_eq!(i.min_ram, 512);
    assert!(i.properties.contains_key("hw_rescue_device"));
    assert!(!i.properties.contains_key("hw_rescue_bus"));
    let code = |ops: Value, v21: bool| {
        let mut j = i.clone();
        parse_patch(&ops, v21)
            .and_then(|o| apply_patch(&mut j, &member, &o))
            .map(|_| ())
            .unwrap_err()
            .code
    };
    assert_eq!(
        code(
            json!([{"op": "replace", "path": "/nope", "value": "x"}]),
            true
        ),
        409
    );
    assert_eq!(code(json!([{"op": "remove", "path": "/nope"}]), true), 409);
    assert_eq!(code(json!([{"op": "remove", "path": "/name"}]), true), 403);
    assert_eq!(
        code(
            json!([{"op": "replace", "path": "/status", "value": "active"}]),
            true
        ),
        403
    );
    assert_eq!(
        code(
            json!([{"op": "replace", "path": "/disk_format", "value": "raw"}]),
            true
        ),
        403
    );
    assert_eq!(code(json!([{"op": "move", "path": "/name"}]), true), 400);
    assert_eq!(code(json!({"op": "add"}), true), 400);
    assert_eq!(
        code(
            json!([{"replace": "/visibility", "value": "public"}]),
            false
        ),
        403
    );
    assert_eq!(pointer_key("/a~1b").expect("key"), "a/b");
    assert!(pointer_key("name").is_err());
    assert!(pointer_key("/a/b").is_err());
}
