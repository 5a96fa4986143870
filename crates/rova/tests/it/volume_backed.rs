//! A volume-backed server's own paths: a rebuild below 2.93 keeps its
//! root volume and only takes the image in it, from 2.93 re-images the
//! volume (its bytes and image metadata the new image's, the server still
//! booted from a volume); a shelve offloads it at once whatever
//! `shelved_offload_time` says.

use crate::common::{start, start_with, TestCloud, User};
use crate::volume_attachments::boot_active;
use reqwest::StatusCode;
use rova::volume::backend::Location;
use serde_json::{json, Value};

/// A new raw image of `bytes`, active; its id.
async fn upload_image(c: &TestCloud, u: &User, name: &str, bytes: &[u8]) -> String {
    let r = c
        .http
        .post(format!("{}/image/v2/images", c.base))
        .header("X-Auth-Token", &u.token)
        .json(&json!({"name": name, "disk_format": "raw", "container_format": "bare"}))
        .send()
        .await
        .expect("image create");
    assert_eq!(r.status(), StatusCode::CREATED, "image create");
    let v: Value = r.json().await.expect("image JSON");
    let id = v["id"].as_str().expect("image id").to_string();
    let r = c
        .http
        .put(format!("{}/image/v2/images/{id}/file", c.base))
        .header("X-Auth-Token", &u.token)
        .header("Content-Type", "application/octet-stream")
        .body(bytes.to_vec())
        .send()
        .await
        .expect("upload");
    assert_eq!(r.status(), StatusCode::NO_CONTENT, "upload");
    id
}

/// The first `n` bytes of volume `id`'s file.
fn volume_head(c: &TestCloud, id: &str, n: usize) -> Vec<u8> {
    let Location::File(path) = c.app.volumes.location(id);
    let bytes = std::fs::read(&path).expect("the volume's file");
    bytes[..n.min(bytes.len())].to_vec()
}

fn root_image_id(c: &TestCloud, vol: &str) -> Option<String> {
    let v = c.app.volumes.table.get(vol).expect("the root volume");
    v.image_metadata.get("image_id").cloned()
}

#[tokio::test]
async fn a_volume_backed_rebuild_reimages_its_root_volume_from_2_93() {
    let cloud = start().await;
    let demo = cloud.login("demo").await;
    let image = cloud.image_id();
    let bdm = json!({"boot_index": 0, "uuid": image, "source_type": "image",
        "destination_type": "volume", "volume_size": 1, "delete_on_termination": true});
    let (sid, attached) = boot_active(&cloud, &demo, "vb", bdm).await;
    let vol = attached[0]["id"].as_str().expect("root volume").to_string();
    let old_head = volume_head(&cloud, &vol, 16);
    let new = upload_image(&cloud, &demo, "new-root", b"NEW-ROOT-BYTES").await;
    let path = format!("/servers/{sid}/action");
    let rebuild = |v: &'static str, img: &str| {
        let body = json!({"rebuild": {"imageRef": img}});
        cloud.post(&demo, &path, Some(v), body)
    };

    // Below 2.93 only the image in the root volume is taken, and the
    // volume is left as it is.
    let r = rebuild("2.92", &new).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    assert!(
        r.text
            .contains("Unable to rebuild with a different image for a volume-backed server."),
        "{}",
        r.text
    );
    let r = rebuild("2.92", &image).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    let s = cloud
        .wait_status(&demo, &sid, &["ACTIVE", "ERROR"], None)
        .await;
    assert_eq!(s["status"], "ACTIVE", "{s}");
    assert_eq!(root_image_id(&cloud, &vol), Some(image.clone()));
    assert_eq!(volume_head(&cloud, &vol, 16), old_head);

    // An image needing a larger disk than the mapped root volume: 400.
    let big = upload_image(&cloud, &demo, "big-root", b"BIG").await;
    let r = cloud
        .http
        .patch(format!("{}/image/v2/images/{big}", cloud.base))
        .header("X-Auth-Token", &demo.token)
        .header(
            "Content-Type",
            "application/openstack-images-v2.1-json-patch",
        )
        .body(r#"[{"op": "replace", "path": "/min_disk", "value": 2}]"#)
        .send()
        .await
        .expect("image update");
    assert_eq!(r.status(), StatusCode::OK, "min_disk set");
    let r = rebuild("2.93", &big).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    assert!(
        r.text.contains(
            "Volume is smaller than the minimum size specified in image metadata. \
             Volume size is 1073741824 bytes, minimum size is 2147483648 bytes."
        ),
        "{}",
        r.text
    );

    // From 2.93 the root volume is re-imaged from the new image.
    let r = rebuild("2.93", &new).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    let s = cloud
        .wait_status(&demo, &sid, &["ACTIVE", "ERROR"], None)
        .await;
    assert_eq!(s["status"], "ACTIVE", "{s}");
    assert_eq!(s["image"], "", "still booted from a volume: {s}");
    assert_eq!(root_image_id(&cloud, &vol), Some(new.clone()));
    assert_eq!(volume_head(&cloud, &vol, 14), b"NEW-ROOT-BYTES");
    let v = cloud.app.volumes.table.get(&vol).expect("the root volume");
    assert_eq!((v.status.as_str(), v.size), ("in-use", 1));
    assert_eq!(v.attachments[0].server_id, sid);
}

#[tokio::test]
async fn a_volume_backed_shelve_offloads_at_once() {
    let cloud = start_with(|cfg| cfg.shelved_offload_time = 3600).await;
    let demo = cloud.login("demo").await;
    let image = cloud.image_id();
    let bdm = json!({"boot_index": 0, "uuid": image, "source_type": "image",
        "destination_type": "volume", "volume_size": 1, "delete_on_termination": true});
    let (sid, _) = boot_active(&cloud, &demo, "vb-shelve", bdm).await;
    let path = format!("/servers/{sid}/action");
    let r = cloud
        .post(&demo, &path, None, json!({"shelve": null}))
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    let s = cloud
        .wait_status(&demo, &sid, &["SHELVED_OFFLOADED", "ERROR"], None)
        .await;
    assert_eq!(s["status"], "SHELVED_OFFLOADED", "{s}");
    let inst = cloud.app.compute.instances.get(&sid).expect("the server");
    assert_eq!(
        inst.system_metadata
            .get("shelved_image_id")
            .map(String::as_str),
        Some("")
    );
    let r = cloud
        .post(&demo, &path, None, json!({"unshelve": null}))
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    let s = cloud
        .wait_status(&demo, &sid, &["ACTIVE", "ERROR"], None)
        .await;
    assert_eq!(s["status"], "ACTIVE", "{s}");
}
