//! The volume and snapshot actions Tempest's volume tests drive beyond
//! the status machine: the read-only flag, a volume's image metadata, the
//! admin's force delete, the project's volume summary and the extensions
//! list, a snapshot list's `offset`, and `os-update_snapshot_status`.

use crate::common::start;
use crate::snapshots::{reset_snap, snap_act, snap_wait, snapshot, volume};
use crate::volumes::{call, get, wait};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

#[tokio::test]
async fn readonly_image_metadata_force_delete_and_summary() {
    let cloud = start().await;
    let demo = cloud.login("demo").await;
    let admin = cloud.login("admin").await;
    let vol = volume(&cloud, &demo, 2).await;
    let act = |u, body: Value| {
        let (cloud, vol) = (&cloud, vol.clone());
        async move {
            call(
                cloud,
                u,
                Method::POST,
                &format!("/volumes/{vol}/action"),
                None,
                Some(body),
            )
            .await
        }
    };
    for ro in [true, false] {
        let r = act(&demo, json!({"os-update_readonly_flag": {"readonly": ro}})).await;
        assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
        let v = get(&cloud, &demo, &format!("/volumes/{vol}")).await;
        assert_eq!(
            v.body["volume"]["metadata"]["readonly"],
            if ro { "True" } else { "False" }
        );
    }
    let r = act(
        &demo,
        json!({"os-update_readonly_flag": {"readonly": "maybe"}}),
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);

    let meta = json!({"image_id": "5137a025-3c5f-43c1-bc64-5f41270040a5", "kernel_id": "k", "ramdisk_id": "r"});
    let r = act(&demo, json!({"os-set_image_metadata": {"metadata": meta}})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["metadata"]["kernel_id"], "k");
    let r = act(
        &demo,
        json!({"os-unset_image_metadata": {"key": "ramdisk_id"}}),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let r = act(
        &demo,
        json!({"os-unset_image_metadata": {"key": "ramdisk_id"}}),
    )
    .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.text);
    let r = act(&demo, json!({"os-show_image_metadata": {}})).await;
    assert_eq!(
        r.body["metadata"],
        json!({"image_id": "5137a025-3c5f-43c1-bc64-5f41270040a5", "kernel_id": "k"})
    );
    let v = get(&cloud, &demo, &format!("/volumes/{vol}")).await;
    assert_eq!(v.body["volume"]["volume_image_metadata"]["kernel_id"], "k");

    // The project's summary (3.12; metadata from 3.36).
    let r = call(
        &cloud,
        &demo,
        Method::GET,
        "/volumes/summary",
        Some("3.11"),
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.text);
    let r = call(
        &cloud,
        &demo,
        Method::GET,
        "/volumes/summary",
        Some("3.36"),
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(
        (
            &r.body["volume-summary"]["total_count"],
            &r.body["volume-summary"]["total_size"]
        ),
        (&json!(1), &json!(2))
    );
    let r = get(&cloud, &demo, "/extensions").await;
    let aliases: Vec<&str> = r.body["extensions"]
        .as_array()
        .expect("list")
        .iter()
        .filter_map(|e| e["alias"].as_str())
        .collect();
    assert!(aliases.contains(&"os-volume-actions"), "{aliases:?}");

    // Force delete: the admin's, whatever the status.
    let r = act(&admin, json!({"os-reset_status": {"status": "creating"}})).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    let r = act(&demo, json!({"os-force_delete": {}})).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text);
    let r = act(&admin, json!({"os-force_delete": {}})).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    wait(&cloud, &demo, &vol, None).await;
}

#[tokio::test]
async fn snapshot_offset_and_status_updates() {
    let cloud = start().await;
    let demo = cloud.login("demo").await;
    let admin = cloud.login("admin").await;
    let vol = volume(&cloud, &demo, 1).await;
    let mut ids = Vec::new();
    for i in 0..4 {
        ids.push(snapshot(&cloud, &demo, &vol, json!({"name": format!("s{i}")})).await);
    }
    let all = get(&cloud, &demo, "/snapshots?sort=name:asc").await;
    let names = |v: &Value| -> Vec<String> {
        v["snapshots"]
            .as_array()
            .expect("list")
            .iter()
            .map(|s| s["name"].as_str().unwrap_or("").to_string())
            .collect()
    };
    assert_eq!(names(&all.body), ["s0", "s1", "s2", "s3"]);
    let page = get(&cloud, &demo, "/snapshots?sort=name:asc&offset=2&limit=3").await;
    assert_eq!(names(&page.body), ["s2", "s3"]);
    let r = get(&cloud, &demo, "/snapshots?offset=x").await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);

    // Nova's report on a snapshot it takes: only from creating/deleting.
    let s = &ids[0];
    let upd =
        |status: &str| json!({"os-update_snapshot_status": {"status": status, "progress": "80%"}});
    let r = snap_act(&cloud, &demo, s, upd("error")).await;
    assert_eq!(
        r.fault(400),
        "Snapshot status available not allowed for update_snapshot_status"
    );
    reset_snap(&cloud, &admin, s, "creating").await;
    let r = snap_act(&cloud, &demo, s, upd("deleting")).await;
    assert_eq!(
        r.fault(400),
        "Provided snapshot status deleting not allowed for snapshot with status creating."
    );
    let r = snap_act(&cloud, &demo, s, upd("error")).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    let shown = snap_wait(&cloud, &admin, s, Some("error")).await;
    assert_eq!(shown["os-extended-snapshot-attributes:progress"], "80%");
}
