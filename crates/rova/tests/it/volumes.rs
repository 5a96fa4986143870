//! Block storage (the Cinder v3 subset): the catalog's `block-storage`
//! endpoint, version discovery and microversions, volumes through
//! Cinder's status machine (create blank / from an image / from a volume,
//! update, metadata, extend, delete) with their bytes in the file backend,
//! Cinder's 400/404/406/413s, other projects' volumes as 404, quotas
//! counted from the rows, and what a restart does to a volume a stopped
//! process left in flight.

use crate::common::{start, Resp, TestCloud, User};
use reqwest::{Method, StatusCode};
use rova::volume::backend::Location;
use rova::volume::Volume;
use serde_json::{json, Value};
use std::time::Duration;

const GIB: u64 = 1 << 30;

pub(crate) async fn call(
    c: &TestCloud,
    u: &User,
    method: Method,
    path: &str,
    version: Option<&str>,
    body: Option<Value>,
) -> Resp {
    let url = format!("{}/volume/v3/{}{path}", c.base, u.project_id);
    let mut req = c.http.request(method, url).header("X-Auth-Token", &u.token);
    if let Some(v) = version {
        req = req.header("OpenStack-API-Version", format!("volume {v}"));
    }
    if let Some(b) = body {
        req = req.json(&b);
    }
    Resp::of(req).await
}

pub(crate) async fn get(c: &TestCloud, u: &User, path: &str) -> Resp {
    call(c, u, Method::GET, path, None, None).await
}

pub(crate) async fn create(c: &TestCloud, u: &User, body: Value) -> Resp {
    call(
        c,
        u,
        Method::POST,
        "/volumes",
        None,
        Some(json!({ "volume": body })),
    )
    .await
}

/// A volume action.
async fn act(c: &TestCloud, u: &User, id: &str, body: Value) -> Resp {
    let path = format!("/volumes/{id}/action");
    call(c, u, Method::POST, &path, None, Some(body)).await
}

/// Deletes a volume.
pub(crate) async fn del(c: &TestCloud, u: &User, id: &str) -> Resp {
    let path = format!("/volumes/{id}");
    call(c, u, Method::DELETE, &path, None, None).await
}

/// Waits until volume `id` is in `status` (or gone, for `None`).
pub(crate) async fn wait(c: &TestCloud, u: &User, id: &str, status: Option<&str>) -> Value {
    for _ in 0..400 {
        let r = get(c, u, &format!("/volumes/{id}")).await;
        match (status, r.status) {
            (None, StatusCode::NOT_FOUND) => return Value::Null,
            (Some(s), StatusCode::OK) if r.body["volume"]["status"] == s => {
                return r.body["volume"].clone()
            }
            _ => tokio::time::sleep(Duration::from_millis(10)).await,
        }
    }
    panic!("volume {id} never reached {status:?}");
}

fn file_of(c: &TestCloud, id: &str) -> std::path::PathBuf {
    let Location::File(p) = c.app.volumes.location(id);
    p
}

#[tokio::test]
async fn a_volume_goes_through_cinders_status_machine() {
    let cloud = start().await;
    let demo = cloud.login("demo").await;
    let alt = cloud.login("alt_demo").await;
    let reader = cloud.login("demo_reader").await;

    // The catalog names the endpoint; discovery answers Cinder's document.
    let r = Resp::of(
        cloud
            .http
            .get(format!("{}/identity/v3/auth/catalog", cloud.base))
            .header("X-Auth-Token", &demo.token),
    )
    .await;
    let urls: Vec<&str> = r.body["catalog"]
        .as_array()
        .expect("catalog")
        .iter()
        .filter(|e| e["type"] == "block-storage" || e["type"] == "volumev3")
        .map(|e| e["endpoints"][0]["url"].as_str().unwrap_or(""))
        .collect();
    let want = format!("{}/volume/v3/{}", cloud.base, demo.project_id);
    assert_eq!(urls, [want.as_str(), want.as_str()], "{}", r.text);
    let r = cloud
        .http
        .get(format!("{}/volume/", cloud.base))
        .send()
        .await
        .expect("versions");
    assert_eq!(r.status(), StatusCode::MULTIPLE_CHOICES);
    let v: Value = r.json().await.expect("json");
    assert_eq!(v["versions"][0]["id"], "v3.0");
    assert_eq!(v["versions"][0]["version"], "3.71");

    let r = create(
        &cloud,
        &demo,
        json!({"size": 1, "name": "v1", "metadata": {"a": "1"}}),
    )
    .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    assert_eq!(
        r.header("openstack-api-version").as_deref(),
        Some("volume 3.0")
    );
    let vol = &r.body["volume"];
    assert_eq!(vol["status"], "creating");
    assert_eq!(vol["bootable"], "false");
    let id = vol["id"].as_str().expect("id").to_string();
    let vol = wait(&cloud, &demo, &id, Some("available")).await;
    assert_eq!(vol["size"], 1);
    assert_eq!(vol["metadata"], json!({"a": "1"}));
    assert_eq!(
        vol["os-vol-tenant-attr:tenant_id"],
        demo.project_id.as_str()
    );
    assert_eq!(
        std::fs::metadata(file_of(&cloud, &id)).expect("file").len(),
        GIB
    );

    // Microversioned fields.
    let r = call(
        &cloud,
        &demo,
        Method::GET,
        &format!("/volumes/{id}"),
        Some("3.63"),
        None,
    )
    .await;
    assert_eq!(
        r.header("openstack-api-version").as_deref(),
        Some("volume 3.63")
    );
    assert!(r.body["volume"]["volume_type_id"].is_string(), "{}", r.text);
    assert!(r.body["volume"].get("consumes_quota").is_none());
    let r = call(&cloud, &demo, Method::GET, "/volumes", Some("3.72"), None).await;
    assert_eq!(
        r.fault(406),
        "Version 3.72 is not supported by the API. Minimum is 3.0 and maximum is 3.71."
    );

    // Lists: summary and detail, paging.
    let second = create(&cloud, &demo, json!({"size": 2, "name": "v2"})).await;
    let id2 = second.body["volume"]["id"]
        .as_str()
        .expect("id")
        .to_string();
    wait(&cloud, &demo, &id2, Some("available")).await;
    let r = get(&cloud, &demo, "/volumes").await;
    let names: Vec<&str> = r.body["volumes"]
        .as_array()
        .expect("list")
        .iter()
        .map(|v| v["name"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(names, ["v2", "v1"], "newest first");
    assert!(r.body["volumes"][0].get("status").is_none(), "a summary");
    let r = get(&cloud, &demo, "/volumes/detail?limit=1").await;
    assert_eq!(r.body["volumes"].as_array().map(Vec::len), Some(1));
    let next = r.body["volumes_links"][0]["href"].as_str().expect("next");
    assert!(next.contains(&format!("marker={id2}")), "{next}");
    let r = get(&cloud, &demo, &format!("/volumes/detail?marker={id2}")).await;
    assert_eq!(r.body["volumes"][0]["id"], id.as_str());
    let r = get(&cloud, &demo, "/volumes/detail?name=v1").await;
    assert_eq!(r.body["volumes"].as_array().map(Vec::len), Some(1));

    // Another project sees nothing; a reader may look but not change.
    let r = get(&cloud, &alt, &format!("/volumes/{id}")).await;
    assert_eq!(r.fault(404), format!("Volume {id} could not be found."));
    let r = get(&cloud, &alt, "/volumes/detail").await;
    assert_eq!(r.body["volumes"], json!([]));
    let r = get(&cloud, &reader, &format!("/volumes/{id}")).await;
    assert_eq!(r.status, StatusCode::OK);
    let r = create(&cloud, &reader, json!({"size": 1})).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text);

    // Bad requests change nothing.
    let bad = [
        (json!({"size": 0}), "Invalid input for field/attribute size. Value: 0. 0 is less than the minimum of 1"),
        (json!({}), "Invalid input received: Volume size 'None' must be an integer and greater than 0"),
        (json!({"size": 1, "multiattach": true}), "multiattach parameter has been removed. The default behavior is to use multiattach enabled volume types. Contact your administrator to create a multiattach enabled volume type and use it to create multiattach volumes."),
        (json!({"size": 1, "source_volid": "nope"}), "Invalid input for field/attribute source_volid. Value: nope. 'nope' is not a 'uuid'"),
    ];
    for (body, msg) in bad {
        let r = create(&cloud, &demo, body.clone()).await;
        assert_eq!(r.fault(400), msg, "{body}");
    }
    let r = call(
        &cloud,
        &demo,
        Method::POST,
        "/volumes",
        None,
        Some(json!({"size": 1})),
    )
    .await;
    assert_eq!(r.fault(400), "'volume' is a required property");
    let r = act(&cloud, &demo, &id, json!({"os-bogus": {}})).await;
    assert_eq!(r.fault(400), "There is no such action: os-bogus");
    assert_eq!(
        get(&cloud, &demo, "/volumes").await.body["volumes"]
            .as_array()
            .map(Vec::len),
        Some(2)
    );

    // Update and metadata.
    let r = call(
        &cloud,
        &demo,
        Method::PUT,
        &format!("/volumes/{id}"),
        None,
        Some(json!({"volume": {"name": "renamed", "description": "d"}})),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["volume"]["name"], "renamed");
    let r = call(
        &cloud,
        &demo,
        Method::POST,
        &format!("/volumes/{id}/metadata"),
        None,
        Some(json!({"metadata": {"b": "2"}})),
    )
    .await;
    assert_eq!(r.body["metadata"], json!({"a": "1", "b": "2"}));
    let r = call(
        &cloud,
        &demo,
        Method::DELETE,
        &format!("/volumes/{id}/metadata/a"),
        None,
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let r = get(&cloud, &demo, &format!("/volumes/{id}/metadata/a")).await;
    assert_eq!(
        r.fault(404),
        format!("Volume {id} has no metadata with key a.")
    );
    let r = get(&cloud, &demo, &format!("/volumes/{id}/metadata")).await;
    assert_eq!(r.body["metadata"], json!({"b": "2"}));

    // Extend: only growing, only when available.
    let extend = |n: u64| json!({"os-extend": {"new_size": n}});
    let r = act(&cloud, &demo, &id, extend(1)).await;
    assert_eq!(
        r.fault(400),
        "Invalid input received: New size for extend must be greater than current size. (current: 1, extended: 1)."
    );
    let r = act(&cloud, &demo, &id, extend(3)).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    let vol = wait(&cloud, &demo, &id, Some("available")).await;
    assert_eq!(vol["size"], 3);
    assert_eq!(
        std::fs::metadata(file_of(&cloud, &id)).expect("file").len(),
        3 * GIB
    );

    // An admin resets the status; a volume in a status delete does not
    // accept is refused, then deleted once it is available again.
    let admin = cloud.login("admin").await;
    let reset = |s: &str| json!({"os-reset_status": {"status": s}});
    let r = act(&cloud, &demo, &id, reset("in-use")).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text);
    let r = act(&cloud, &admin, &id, reset("in-use")).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    let r = del(&cloud, &demo, &id).await;
    assert!(r.fault(400).starts_with("Invalid volume: Volume status must be available or error or error_restoring or error_extending or error_managing and must not be migrating"), "{}", r.text);
    let r = act(&cloud, &admin, &id, reset("available")).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    let r = del(&cloud, &demo, &id).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    wait(&cloud, &demo, &id, None).await;
    assert!(
        !file_of(&cloud, &id).exists(),
        "the bytes went with the volume"
    );
}

#[tokio::test]
async fn a_volume_is_made_from_an_image_or_another_volume() {
    let cloud = start().await;
    let demo = cloud.login("demo").await;
    let image = cloud.image_id();
    let bytes = std::fs::read(cloud.app.images.file_path(&image)).expect("image bytes");
    let r = create(&cloud, &demo, json!({"imageRef": image, "name": "boot"})).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    let id = r.body["volume"]["id"].as_str().expect("id").to_string();
    let vol = wait(&cloud, &demo, &id, Some("available")).await;
    assert_eq!(vol["bootable"], "true");
    assert_eq!(vol["size"], 1, "the image's size rounded up");
    assert_eq!(vol["volume_image_metadata"]["image_id"], image.as_str());
    let head = {
        use std::io::Read;
        let mut buf = vec![0u8; bytes.len().min(4096)];
        std::fs::File::open(file_of(&cloud, &id))
            .and_then(|mut f| f.read_exact(&mut buf))
            .expect("volume bytes");
        buf
    };
    assert_eq!(head, bytes[..head.len()], "the image's bytes");

    let r = create(&cloud, &demo, json!({"source_volid": id, "size": 2})).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    let clone = r.body["volume"]["id"].as_str().expect("id").to_string();
    let vol = wait(&cloud, &demo, &clone, Some("available")).await;
    assert_eq!(vol["source_volid"], id.as_str());
    assert_eq!(
        std::fs::metadata(file_of(&cloud, &clone))
            .expect("file")
            .len(),
        2 * GIB
    );

    let missing = "9c1a0d3e-1111-4a8e-9b0c-3d1f5e6a7b8c";
    let r = create(&cloud, &demo, json!({"imageRef": missing, "size": 1})).await;
    assert_eq!(r.fault(404), format!("Image {missing} could not be found."));
    let r = create(&cloud, &demo, json!({"source_volid": missing})).await;
    assert_eq!(
        r.fault(404),
        format!("Volume {missing} could not be found.")
    );
    let alt = cloud.login("alt_demo").await;
    let r = create(&cloud, &alt, json!({"source_volid": id})).await;
    assert_eq!(
        r.fault(404),
        format!("Volume {id} could not be found."),
        "another project's"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn volume_quotas_are_counted_from_the_rows() {
    let cloud = std::sync::Arc::new(start().await);
    let demo = cloud.login("demo").await;
    let r = create(&cloud, &demo, json!({"size": 1001})).await;
    assert_eq!(
        r.fault(413),
        "Requested volume or snapshot exceeds allowed gigabytes quota. Requested 1001G, \
         quota is 1000G and 0G has been consumed."
    );
    let mut tasks = Vec::new();
    for i in 0..12 {
        let (cloud, demo) = (cloud.clone(), demo.clone());
        tasks.push(tokio::spawn(async move {
            create(&cloud, &demo, json!({"size": 1, "name": format!("q{i}")})).await
        }));
    }
    let mut answers = Vec::new();
    for t in tasks {
        answers.push(t.await.expect("create"));
    }
    let made = answers
        .iter()
        .filter(|r| r.status == StatusCode::ACCEPTED)
        .count();
    assert_eq!(made, 10, "Cinder's default of 10 volumes");
    let refused: Vec<&Resp> = answers
        .iter()
        .filter(|r| r.status != StatusCode::ACCEPTED)
        .collect();
    for r in refused {
        assert_eq!(
            r.fault(413),
            "Maximum number of volumes allowed (10) exceeded for quota 'volumes'."
        );
    }
    let r = get(&cloud, &demo, "/limits").await;
    assert_eq!(r.body["limits"]["absolute"]["totalVolumesUsed"], 10);
    assert_eq!(r.body["limits"]["absolute"]["totalGigabytesUsed"], 10);
}

#[tokio::test]
async fn a_restart_ends_what_a_stopped_process_left_in_flight() {
    let cloud = start().await;
    let demo = cloud.login("demo").await;
    let mut ids = Vec::new();
    for name in ["creating", "extending", "deleting"] {
        let r = create(&cloud, &demo, json!({"size": 1, "name": name})).await;
        let id = r.body["volume"]["id"].as_str().expect("id").to_string();
        wait(&cloud, &demo, &id, Some("available")).await;
        ids.push(id);
    }
    // As a process killed in the middle of each leaves the rows.
    for (id, status) in ids.iter().zip(["creating", "extending", "deleting"]) {
        let row: Volume = (*cloud.app.volumes.table.get(id).expect("row")).clone();
        // Left a while ago (on PostgreSQL, a volume changed within two
        // process leases may be a live process's and is left alone).
        let row = Volume {
            status: status.into(),
            extend_to: (status == "extending").then_some(2),
            updated_at: Some(cloud.app.clock.now() - chrono::Duration::hours(1)),
            ..row
        };
        cloud.app.volumes.table.put(id, row).await.expect("write");
    }
    let cloud = cloud.restart().await;
    let demo = cloud.login("demo").await;
    let r = get(&cloud, &demo, &format!("/volumes/{}", ids[0])).await;
    assert_eq!(r.body["volume"]["status"], "error", "a create cut short");
    let r = get(&cloud, &demo, &format!("/volumes/{}", ids[1])).await;
    assert_eq!(r.body["volume"]["status"], "error_extending");
    assert_eq!(r.body["volume"]["size"], 1);
    wait(&cloud, &demo, &ids[2], None).await;
    assert!(
        !file_of(&cloud, &ids[2]).exists(),
        "a delete cut short is carried out"
    );
    // An errored volume may be deleted.
    let r = call(
        &cloud,
        &demo,
        Method::DELETE,
        &format!("/volumes/{}", ids[0]),
        None,
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    wait(&cloud, &demo, &ids[0], None).await;
}

#[tokio::test]
async fn novas_volume_proxy_answers_until_2_35() {
    let cloud = start().await;
    let demo = cloud.login("demo").await;
    let r = cloud
        .compute(
            &demo,
            Method::POST,
            "/os-volumes",
            Some("2.35"),
            Some(json!({"volume": {"size": 1, "display_name": "proxied"}})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let v = &r.body["volume"];
    assert_eq!(v["displayName"], "proxied");
    assert_eq!(v["attachments"], json!([{}]));
    let id = v["id"].as_str().expect("id").to_string();
    wait(&cloud, &demo, &id, Some("available")).await;
    let r = cloud.get(&demo, "/os-volumes/detail", Some("2.35")).await;
    assert_eq!(r.body["volumes"][0]["id"], id.as_str());
    assert_eq!(r.body["volumes"][0]["status"], "available");
    let r = cloud
        .get(&demo, &format!("/os-volumes/{id}"), Some("2.36"))
        .await;
    assert_eq!(r.fault(404), "The resource could not be found.");
    let r = cloud
        .compute(
            &demo,
            Method::POST,
            "/os-volumes",
            Some("2.35"),
            Some(json!({"volume": {}})),
        )
        .await;
    assert_eq!(
        r.fault(400),
        "Invalid input for field/attribute volume. Value: {}. 'size' is a required property"
    );
    let r = cloud
        .compute(
            &demo,
            Method::DELETE,
            &format!("/os-volumes/{id}"),
            Some("2.35"),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    wait(&cloud, &demo, &id, None).await;
}
