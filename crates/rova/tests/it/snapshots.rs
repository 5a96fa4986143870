//! Volume snapshots (the Cinder v3 subset): the status machine with the
//! bytes checked in the file backend, `force` and 3.66 for an in-use
//! volume, views by microversion, filters, sorting and paging, update and
//! metadata, the admin actions, other projects' snapshots as 404, bad
//! requests changing nothing, and Nova's `os-snapshots` proxy. What
//! snapshots do to volumes (deletes, cascades, volumes made from one,
//! quotas, restarts) is in `snapshot_volumes`.

use crate::common::{start, Resp, TestCloud, User};
use crate::volumes::{call, create, del, get, wait};
use reqwest::{Method, StatusCode};
use rova::volume::backend::Location;
use rova::volume::Volume;
use serde_json::{json, Value};
use std::time::Duration;

const GIB: u64 = 1 << 30;

pub(crate) async fn snap_create(
    c: &TestCloud,
    u: &User,
    version: Option<&str>,
    body: Value,
) -> Resp {
    let body = Some(json!({ "snapshot": body }));
    call(c, u, Method::POST, "/snapshots", version, body).await
}

pub(crate) async fn snap_act(c: &TestCloud, u: &User, id: &str, body: Value) -> Resp {
    let path = format!("/snapshots/{id}/action");
    call(c, u, Method::POST, &path, None, Some(body)).await
}

pub(crate) async fn snap_del(c: &TestCloud, u: &User, id: &str) -> Resp {
    let path = format!("/snapshots/{id}");
    call(c, u, Method::DELETE, &path, None, None).await
}

/// Deletes volume `id` with query `q` (e.g. `?cascade=true`), at 3.23
/// (where `force` is read).
pub(crate) async fn vol_del(c: &TestCloud, u: &User, id: &str, q: &str) -> Resp {
    let path = format!("/volumes/{id}{q}");
    call(c, u, Method::DELETE, &path, Some("3.23"), None).await
}

/// An admin sets snapshot `id`'s status (`os-reset_status`).
pub(crate) async fn reset_snap(c: &TestCloud, admin: &User, id: &str, status: &str) {
    let r = snap_act(c, admin, id, json!({"os-reset_status": {"status": status}})).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
}

/// An admin sets volume `id`'s status (`os-reset_status`).
pub(crate) async fn reset_vol(c: &TestCloud, admin: &User, id: &str, status: &str) {
    let path = format!("/volumes/{id}/action");
    let body = json!({"os-reset_status": {"status": status}});
    let r = call(c, admin, Method::POST, &path, None, Some(body)).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
}

/// Waits until snapshot `id` is in `status` (or gone, for `None`).
pub(crate) async fn snap_wait(c: &TestCloud, u: &User, id: &str, status: Option<&str>) -> Value {
    for _ in 0..400 {
        let r = get(c, u, &format!("/snapshots/{id}")).await;
        match (status, r.status) {
            (None, StatusCode::NOT_FOUND) => return Value::Null,
            (Some(s), StatusCode::OK) if r.body["snapshot"]["status"] == s => {
                return r.body["snapshot"].clone()
            }
            _ => tokio::time::sleep(Duration::from_millis(10)).await,
        }
    }
    panic!("snapshot {id} never reached {status:?}");
}

/// A new available volume of `size` GiB; its id.
pub(crate) async fn volume(c: &TestCloud, u: &User, size: u64) -> String {
    let r = create(c, u, json!({ "size": size })).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    let id = r.body["volume"]["id"].as_str().expect("id").to_string();
    wait(c, u, &id, Some("available")).await;
    id
}

/// A new available snapshot of volume `vol`; its id.
pub(crate) async fn snapshot(c: &TestCloud, u: &User, vol: &str, extra: Value) -> String {
    let mut body = json!({ "volume_id": vol, "force": true });
    if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
        b.extend(e.clone());
    }
    let r = snap_create(c, u, None, body).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    let id = r.body["snapshot"]["id"].as_str().expect("id").to_string();
    snap_wait(c, u, &id, Some("available")).await;
    id
}

pub(crate) fn volume_file(c: &TestCloud, id: &str) -> std::path::PathBuf {
    let Location::File(p) = c.app.volumes.location(id);
    p
}

pub(crate) fn snapshot_file(c: &TestCloud, id: &str) -> std::path::PathBuf {
    let Location::File(p) = c.app.volumes.snapshot_location(id);
    p
}

/// The first `n` bytes of a file.
pub(crate) fn head(path: &std::path::Path, n: usize) -> Vec<u8> {
    use std::io::Read;
    let mut buf = vec![0u8; n];
    std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut buf))
        .expect("read");
    buf
}

/// Writes `bytes` at the start of a file, keeping its length.
pub(crate) fn scribble(path: &std::path::Path, bytes: &[u8]) {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .expect("open");
    f.write_all(bytes).expect("write");
}

pub(crate) fn ids(r: &Resp, key: &str) -> Vec<String> {
    r.body[key]
        .as_array()
        .unwrap_or_else(|| panic!("a list: {}", r.text))
        .iter()
        .map(|s| s["id"].as_str().unwrap_or("").to_string())
        .collect()
}

#[tokio::test]
async fn a_snapshot_goes_through_cinders_status_machine() {
    let cloud = start().await;
    let demo = cloud.login("demo").await;
    let alt = cloud.login("alt_demo").await;
    let reader = cloud.login("demo_reader").await;
    let vol = volume(&cloud, &demo, 1).await;
    scribble(&volume_file(&cloud, &vol), b"ROVA-SNAP");

    let r = snap_create(
        &cloud,
        &demo,
        None,
        json!({"volume_id": vol, "name": "s1", "description": "first", "metadata": {"a": "1"}}),
    )
    .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    let s = &r.body["snapshot"];
    assert_eq!(s["status"], "creating");
    let keys: Vec<&String> = s.as_object().expect("object").keys().collect();
    assert_eq!(
        keys,
        [
            "created_at",
            "description",
            "id",
            "metadata",
            "name",
            "size",
            "status",
            "updated_at",
            "volume_id"
        ],
        "Cinder's view at 3.0"
    );
    let id = s["id"].as_str().expect("id").to_string();
    let shown = get(&cloud, &demo, &format!("/volumes/{vol}")).await;
    assert_eq!(
        shown.body["volume"]["status"], "available",
        "a volume keeps its status while it is snapshotted"
    );
    let s = snap_wait(&cloud, &demo, &id, Some("available")).await;
    assert_eq!(
        (&s["size"], &s["volume_id"], &s["name"], &s["metadata"]),
        (&json!(1), &json!(vol), &json!("s1"), &json!({"a": "1"}))
    );
    assert_eq!(
        s["os-extended-snapshot-attributes:project_id"],
        demo.project_id.as_str()
    );
    assert_eq!(s["os-extended-snapshot-attributes:progress"], "100%");

    // The snapshot keeps the bytes the volume had.
    let file = snapshot_file(&cloud, &id);
    assert_eq!(std::fs::metadata(&file).expect("file").len(), GIB);
    scribble(&volume_file(&cloud, &vol), b"CHANGED!!");
    assert_eq!(head(&file, 9), b"ROVA-SNAP");

    // Microversioned keys.
    let at = |v: &'static str| {
        let path = format!("/snapshots/{id}");
        let (c, u) = (&cloud, &demo);
        async move { call(c, u, Method::GET, &path, Some(v), None).await }
    };
    let r = at("3.13").await;
    assert!(r.body["snapshot"].get("group_snapshot_id").is_none());
    let r = at("3.14").await;
    assert_eq!(r.body["snapshot"]["group_snapshot_id"], Value::Null);
    assert!(r.body["snapshot"].get("user_id").is_none());
    let r = at("3.41").await;
    assert_eq!(r.body["snapshot"]["user_id"], demo.user_id.as_str());
    assert!(r.body["snapshot"].get("consumes_quota").is_none());
    let r = at("3.65").await;
    assert_eq!(r.body["snapshot"]["consumes_quota"], true);

    // Lists: the summary has no extended attributes; filters, sort, pages.
    let second = snapshot(&cloud, &demo, &vol, json!({"name": "s2"})).await;
    let r = get(&cloud, &demo, "/snapshots").await;
    assert_eq!(ids(&r, "snapshots"), [second.clone(), id.clone()]);
    assert!(r.body["snapshots"][0]
        .get("os-extended-snapshot-attributes:progress")
        .is_none());
    let r = get(&cloud, &demo, "/snapshots/detail").await;
    assert_eq!(
        r.body["snapshots"][1]["os-extended-snapshot-attributes:progress"],
        "100%"
    );
    let (id_s, second_s) = (id.as_str(), second.as_str());
    for (q, want) in [
        ("name=s1".to_string(), vec![id_s]),
        (
            format!("status=available&volume_id={vol}"),
            vec![second_s, id_s],
        ),
        ("sort=name:asc".to_string(), vec![id_s, second_s]),
        (
            "volume_id=9c1a0d3e-1111-4a8e-9b0c-3d1f5e6a7b8c".to_string(),
            vec![],
        ),
    ] {
        let r = get(&cloud, &demo, &format!("/snapshots/detail?{q}")).await;
        assert_eq!(ids(&r, "snapshots"), want, "{q}");
    }
    let r = get(&cloud, &demo, "/snapshots?limit=1").await;
    let next = r.body["snapshots_links"][0]["href"].as_str().expect("next");
    assert!(
        next.contains(&format!("/snapshots?marker={second}")),
        "{next}"
    );
    let r = get(&cloud, &demo, &format!("/snapshots?marker={second}")).await;
    assert_eq!(ids(&r, "snapshots"), [id.as_str()]);
    // The metadata filter from 3.22 (ignored before).
    let q = "/snapshots?metadata=%7B%27a%27%3A+%271%27%7D";
    let r = call(&cloud, &demo, Method::GET, q, Some("3.22"), None).await;
    assert_eq!(ids(&r, "snapshots"), [id.as_str()]);
    let r = call(&cloud, &demo, Method::GET, q, Some("3.21"), None).await;
    assert_eq!(ids(&r, "snapshots").len(), 2);

    // Update (the v3 names and the legacy ones) and metadata.
    let path = format!("/snapshots/{id}");
    let body = json!({"snapshot": {"name": "renamed", "display_description": "old-style"}});
    let r = call(&cloud, &demo, Method::PUT, &path, None, Some(body)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(
        (
            &r.body["snapshot"]["name"],
            &r.body["snapshot"]["description"]
        ),
        (&json!("renamed"), &json!("old-style"))
    );
    let mpath = format!("/snapshots/{id}/metadata");
    let body = json!({"metadata": {"b": "2"}});
    let r = call(&cloud, &demo, Method::POST, &mpath, None, Some(body)).await;
    assert_eq!(
        r.body["metadata"],
        json!({"a": "1", "b": "2"}),
        "{}",
        r.text
    );
    let body = json!({"meta": {"b": "3"}});
    let r = call(
        &cloud,
        &demo,
        Method::PUT,
        &format!("{mpath}/b"),
        None,
        Some(body),
    )
    .await;
    assert_eq!(r.body["meta"], json!({"b": "3"}), "{}", r.text);
    let r = call(
        &cloud,
        &demo,
        Method::DELETE,
        &format!("{mpath}/a"),
        None,
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let r = get(&cloud, &demo, &format!("{mpath}/a")).await;
    assert_eq!(
        r.fault(404),
        format!("Snapshot {id} has no metadata with key a.")
    );
    let body = json!({"metadata": {"c": "4"}});
    let r = call(&cloud, &demo, Method::PUT, &mpath, None, Some(body)).await;
    assert_eq!(r.body["metadata"], json!({"c": "4"}), "{}", r.text);

    // Another project sees nothing; a reader may look but not change.
    let missing = format!("Snapshot {id} could not be found.");
    assert_eq!(get(&cloud, &alt, &path).await.fault(404), missing);
    assert_eq!(get(&cloud, &alt, &mpath).await.fault(404), missing);
    assert_eq!(
        get(&cloud, &alt, "/snapshots/detail").await.body["snapshots"],
        json!([])
    );
    let body = json!({"snapshot": {"name": "stolen"}});
    let r = call(&cloud, &alt, Method::PUT, &path, None, Some(body)).await;
    assert_eq!(r.fault(404), missing);
    let r = call(&cloud, &alt, Method::DELETE, &path, None, None).await;
    assert_eq!(r.fault(404), missing);
    let r = snap_create(&cloud, &alt, None, json!({"volume_id": vol})).await;
    assert_eq!(r.fault(404), format!("Volume {vol} could not be found."));
    assert_eq!(get(&cloud, &reader, &path).await.status, StatusCode::OK);
    let r = snap_create(&cloud, &reader, None, json!({"volume_id": vol})).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text);
    let r = call(&cloud, &reader, Method::DELETE, &path, None, None).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text);

    // Limits count the snapshots and their gigabytes.
    let r = get(&cloud, &demo, "/limits").await;
    let abs = &r.body["limits"]["absolute"];
    assert_eq!(
        (
            &abs["maxTotalSnapshots"],
            &abs["totalSnapshotsUsed"],
            &abs["totalGigabytesUsed"]
        ),
        (&json!(10), &json!(2), &json!(3))
    );

    // A volume with snapshots is not deleted; its snapshots are, one by
    // one, and then it is.
    let r = del(&cloud, &demo, &vol).await;
    assert_eq!(
        r.fault(400),
        "Invalid volume: Volume status must be available or error or error_restoring or \
         error_extending or error_managing and must not be migrating, attached, belong to a \
         group, have snapshots, awaiting a transfer, or be disassociated from snapshots after \
         volume transfer."
    );
    for s in [&id, &second] {
        let r = snap_del(&cloud, &demo, s).await;
        assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
        snap_wait(&cloud, &demo, s, None).await;
    }
    assert!(!file.exists(), "the bytes went with the snapshot");
    assert_eq!(del(&cloud, &demo, &vol).await.status, StatusCode::ACCEPTED);
    wait(&cloud, &demo, &vol, None).await;
}

#[tokio::test]
async fn an_in_use_volume_is_snapshotted_only_when_forced() {
    let cloud = start().await;
    let demo = cloud.login("demo").await;
    let admin = cloud.login("admin").await;
    let vol = volume(&cloud, &demo, 1).await;
    reset_vol(&cloud, &admin, &vol, "in-use").await;

    let r = snap_create(&cloud, &demo, None, json!({"volume_id": vol})).await;
    assert_eq!(
        r.fault(400),
        format!(
            "Invalid volume: Volume {vol} status must be available, but current status is: \
             in-use."
        )
    );
    let r = snap_create(
        &cloud,
        &demo,
        None,
        json!({"volume_id": vol, "force": "True"}),
    )
    .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    let r = get(&cloud, &demo, &format!("/volumes/{vol}")).await;
    assert_eq!(r.body["volume"]["status"], "in-use", "left as it was");
    // From 3.66 an in-use volume needs no force, and `force: false` is
    // refused.
    let r = snap_create(&cloud, &demo, Some("3.66"), json!({"volume_id": vol})).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    let r = snap_create(
        &cloud,
        &demo,
        Some("3.66"),
        json!({"volume_id": vol, "force": false}),
    )
    .await;
    assert_eq!(
        r.fault(400),
        "Since microversion 3.66 the 'force' flag is invalid for this request.  For backward \
         compatability, however, when the 'force' flag is passed with a value evaluating to \
         True, it is silently ignored."
    );

    // A volume in error, or one no backend holds yet, is not snapshotted.
    reset_vol(&cloud, &admin, &vol, "error").await;
    let r = snap_create(
        &cloud,
        &demo,
        None,
        json!({"volume_id": vol, "force": true}),
    )
    .await;
    assert_eq!(
        r.fault(400),
        "Invalid volume: The snapshot cannot be created when the volume is in error status."
    );
    let row: Volume = (*cloud.app.volumes.table.get(&vol).expect("row")).clone();
    let row = Volume {
        status: "creating".into(),
        host: None,
        ..row
    };
    cloud.app.volumes.table.put(&vol, row).await.expect("write");
    let r = snap_create(&cloud, &demo, None, json!({"volume_id": vol})).await;
    assert_eq!(
        r.fault(400),
        "Invalid volume: The snapshot cannot be created because volume has not been scheduled \
         to any host."
    );
    let r = get(&cloud, &demo, "/snapshots").await;
    assert_eq!(ids(&r, "snapshots").len(), 2, "only the two accepted");
}

#[tokio::test]
async fn bad_snapshot_requests_change_nothing() {
    let cloud = start().await;
    let demo = cloud.login("demo").await;
    let admin = cloud.login("admin").await;
    let vol = volume(&cloud, &demo, 1).await;
    let snap = snapshot(&cloud, &demo, &vol, json!({"name": "kept"})).await;
    let missing = "9c1a0d3e-1111-4a8e-9b0c-3d1f5e6a7b8c";
    let long = "x".repeat(256);
    let bad = [
        (json!({"name": "n"}), 400, "Invalid input for field/attribute snapshot. Value: {'name': 'n'}. 'volume_id' is a required property".to_string()),
        (json!({"volume_id": "nope"}), 400, "Invalid input for field/attribute volume_id. Value: nope. 'nope' is not a 'uuid'".to_string()),
        (json!({"volume_id": vol, "size": 1}), 400, format!("Invalid input for field/attribute snapshot. Value: {{'size': 1, 'volume_id': '{vol}'}}. Additional properties are not allowed ('size' was unexpected)")),
        (json!({"volume_id": vol, "name": long}), 400, format!("Invalid input for field/attribute name. Value: {long}. '{long}' is too long")),
        (json!({"volume_id": vol, "force": "maybe"}), 400, "Invalid input for field/attribute force. Value: maybe. 'maybe' is not one of [True, 'True', 'TRUE', 'true', '1', 'ON', 'On', 'on', 'YES', 'Yes', 'yes', False, 'False', 'FALSE', 'false', '0', 'OFF', 'Off', 'off', 'NO', 'No', 'no']".to_string()),
        (json!({"volume_id": missing}), 404, format!("Volume {missing} could not be found.")),
        (json!({"volume_id": null}), 404, "Volume None could not be found.".to_string()),
    ];
    for (body, code, msg) in bad {
        let r = snap_create(&cloud, &demo, None, body.clone()).await;
        assert_eq!(r.fault(code), msg, "{body}");
    }
    let path = format!("/snapshots/{snap}");
    let r = call(
        &cloud,
        &demo,
        Method::PUT,
        &path,
        None,
        Some(json!({"snapshot": {}})),
    )
    .await;
    assert_eq!(
        r.fault(400),
        "Invalid input for field/attribute snapshot. Value: {}. {} is not valid under any of the given schemas"
    );
    let body = json!({"snapshot": {"name": "x", "status": "error"}});
    let r = call(&cloud, &demo, Method::PUT, &path, None, Some(body)).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    let r = snap_act(
        &cloud,
        &admin,
        &snap,
        json!({"os-reset_status": {"status": "bogus"}}),
    )
    .await;
    assert_eq!(
        r.fault(400),
        "Snapshot status: bogus is invalid, valid statuses are: ('error', 'available', \
         'creating', 'deleting', 'deleted', 'updating', 'error_deleting', 'unmanaging', \
         'backing-up', 'restoring')."
    );
    let r = snap_act(&cloud, &admin, &snap, json!({"os-reset_status": {}})).await;
    assert_eq!(
        r.fault(400),
        "Invalid input for field/attribute os-reset_status. Value: {}. 'status' is a required property"
    );
    let r = snap_act(
        &cloud,
        &demo,
        &snap,
        json!({"os-reset_status": {"status": "error"}}),
    )
    .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text);
    let r = snap_act(&cloud, &demo, &snap, json!({"os-bogus": {}})).await;
    assert_eq!(r.fault(400), "There is no such action: os-bogus");
    let r = call(
        &cloud,
        &demo,
        Method::GET,
        "/snapshots?sort=bogus",
        None,
        None,
    )
    .await;
    assert_eq!(
        r.fault(400),
        "Invalid input received: Invalid sort key bogus"
    );

    // Nothing changed.
    let r = get(&cloud, &demo, "/snapshots/detail").await;
    assert_eq!(ids(&r, "snapshots"), [snap.as_str()]);
    let s = &r.body["snapshots"][0];
    assert_eq!(
        (&s["name"], &s["status"]),
        (&json!("kept"), &json!("available"))
    );
    let r = get(&cloud, &demo, &format!("/volumes/{vol}")).await;
    assert_eq!(r.body["volume"]["status"], "available");
}

#[tokio::test]
async fn the_admin_resets_and_force_deletes_a_snapshot() {
    let cloud = start().await;
    let demo = cloud.login("demo").await;
    let admin = cloud.login("admin").await;
    let vol = volume(&cloud, &demo, 1).await;
    let snap = snapshot(&cloud, &demo, &vol, json!({})).await;
    reset_snap(&cloud, &admin, &snap, "Creating").await;
    snap_wait(&cloud, &demo, &snap, Some("creating")).await;
    let path = format!("/snapshots/{snap}");
    let r = call(&cloud, &demo, Method::DELETE, &path, None, None).await;
    assert_eq!(
        r.fault(400),
        "Invalid snapshot: Snapshot status must be available or error and must not be part of a group."
    );
    let r = snap_act(&cloud, &demo, &snap, json!({"os-force_delete": {}})).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text);
    let r = snap_act(&cloud, &admin, &snap, json!({"os-force_delete": {}})).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    snap_wait(&cloud, &demo, &snap, None).await;
    assert!(!snapshot_file(&cloud, &snap).exists());
}

/// `POST /os-snapshots` at 2.35 (Nova's proxy).
async fn nova_snap(c: &TestCloud, u: &User, snapshot: Value) -> Resp {
    let body = Some(json!({ "snapshot": snapshot }));
    c.compute(u, Method::POST, "/os-snapshots", Some("2.35"), body)
        .await
}

#[tokio::test]
async fn novas_snapshot_proxy_answers_until_2_35() {
    let cloud = start().await;
    let demo = cloud.login("demo").await;
    let alt = cloud.login("alt_demo").await;
    let admin = cloud.login("admin").await;
    let vol = volume(&cloud, &demo, 1).await;
    let body = json!({"volume_id": vol, "display_name": "nova-snap", "display_description": "d"});
    let r = nova_snap(&cloud, &demo, body).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let s = &r.body["snapshot"];
    let keys: Vec<&String> = s.as_object().expect("object").keys().collect();
    let want = [
        "createdAt",
        "displayDescription",
        "displayName",
        "id",
        "size",
        "status",
        "volumeId",
    ];
    assert_eq!(keys, want);
    assert_eq!(
        (&s["volumeId"], &s["displayName"], &s["size"]),
        (&json!(vol), &json!("nova-snap"), &json!(1))
    );
    let id = s["id"].as_str().expect("id").to_string();
    snap_wait(&cloud, &demo, &id, Some("available")).await;
    for path in ["/os-snapshots", "/os-snapshots/detail"] {
        let r = cloud.get(&demo, path, Some("2.35")).await;
        assert_eq!(ids(&r, "snapshots"), [id.as_str()], "{path}");
        assert_eq!(r.body["snapshots"][0]["status"], "available");
    }
    let one = format!("/os-snapshots/{id}");
    let r = cloud.get(&alt, "/os-snapshots/detail", Some("2.1")).await;
    assert_eq!(r.body["snapshots"], json!([]));
    let r = cloud.get(&alt, &one, Some("2.1")).await;
    assert_eq!(r.fault(404), format!("Snapshot {id} could not be found."));
    let r = cloud.get(&demo, &one, Some("2.36")).await;
    assert_eq!(r.fault(404), "The resource could not be found.");

    // Cinder's refusals, as Nova's proxy passes them on.
    reset_vol(&cloud, &admin, &vol, "in-use").await;
    let r = nova_snap(&cloud, &demo, json!({"volume_id": vol})).await;
    assert_eq!(
        r.fault(400),
        format!(
            "Invalid input received: Invalid volume: Volume {vol} status must be available, but \
             current status is: in-use."
        )
    );
    let r = nova_snap(&cloud, &demo, json!({"volume_id": vol, "name": "x"})).await;
    let msg = r.fault(400);
    assert!(msg.contains("Additional properties are not allowed ('name' was unexpected)"));
    let r = nova_snap(&cloud, &demo, json!({"force": true})).await;
    assert_eq!(
        r.fault(400),
        "Invalid input for field/attribute snapshot. Value: {'force': True}. 'volume_id' is a \
         required property"
    );
    let r = nova_snap(&cloud, &demo, json!({"volume_id": vol, "force": true})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);

    let r = cloud
        .compute(&demo, Method::DELETE, &one, Some("2.35"), None)
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    snap_wait(&cloud, &demo, &id, None).await;
}
