//! `os-volume_upload_image`: a volume's bytes become a new image in the
//! disk format asked for, with the volume's own image properties; the
//! volume is `uploading` meanwhile and `available` after; Cinder's 400s,
//! 403 and 404 change nothing; a restart ends an upload a stopped process
//! left, deleting its unfinished image.

use crate::common::{start, Resp, TestCloud, User};
use crate::snapshots::reset_vol;
use crate::volumes::{call, create, wait};
use reqwest::{Method, StatusCode};
use rova::volume::backend::Location;
use serde_json::{json, Value};
use std::io::{Read, Seek, SeekFrom, Write};
use std::time::Duration;

const GIB: u64 = 1 << 30;

async fn upload(c: &TestCloud, u: &User, id: &str, version: &str, body: Value) -> Resp {
    let path = format!("/volumes/{id}/action");
    let body = json!({ "os-volume_upload_image": body });
    call(c, u, Method::POST, &path, Some(version), Some(body)).await
}

async fn image(c: &TestCloud, u: &User, id: &str) -> Resp {
    let url = format!("{}/image/v2/images/{id}", c.base);
    Resp::of(c.http.get(url).header("X-Auth-Token", &u.token)).await
}

/// Waits until image `id` is `active`.
async fn active(c: &TestCloud, u: &User, id: &str) -> Value {
    for _ in 0..3000 {
        let r = image(c, u, id).await;
        if r.body["status"] == "active" {
            return r.body;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("image {id} never became active");
}

fn head(path: &std::path::Path, n: usize) -> Vec<u8> {
    let mut buf = vec![0u8; n];
    std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut buf))
        .expect("read");
    buf
}

fn image_count(c: &TestCloud) -> usize {
    c.app.images.filter(|_| true).len()
}

#[tokio::test]
async fn a_volume_uploaded_to_an_image_carries_its_bytes_and_properties() {
    let cloud = start().await;
    let demo = cloud.login("demo").await;
    let r = create(&cloud, &demo, json!({"size": 1, "name": "data"})).await;
    let id = r.body["volume"]["id"].as_str().expect("id").to_string();
    wait(&cloud, &demo, &id, Some("available")).await;
    let meta = json!({"metadata": {"hw_disk_bus": "scsi", "min_ram": "64"}});
    let path = format!("/volumes/{id}/action");
    let r = call(
        &cloud,
        &demo,
        Method::POST,
        &path,
        None,
        Some(json!({ "os-set_image_metadata": meta })),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    // A marker in the middle of the volume.
    let Location::File(file) = cloud.app.volumes.location(&id);
    {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .open(&file)
            .expect("volume file");
        f.seek(SeekFrom::Start(GIB / 2)).expect("seek");
        f.write_all(b"ROVA-MARKER").expect("write");
    }

    let r = upload(
        &cloud,
        &demo,
        &id,
        "3.1",
        json!({"image_name": "from-data"}),
    )
    .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    let a = &r.body["os-volume_upload_image"];
    assert_eq!(a["id"], id.as_str());
    assert_eq!(a["status"], "uploading");
    assert_eq!(a["size"], 1);
    assert_eq!(a["disk_format"], "raw");
    assert_eq!(a["container_format"], "bare");
    assert_eq!(a["image_name"], "from-data");
    assert_eq!(a["visibility"], "private");
    assert_eq!(a["protected"], false);
    assert_eq!(a["volume_type"]["name"], "__DEFAULT__");
    let raw = a["image_id"].as_str().expect("image id").to_string();
    // The volume is busy until the bytes are in.
    let r = upload(&cloud, &demo, &id, "3.1", json!({"image_name": "again"})).await;
    if r.status != StatusCode::ACCEPTED {
        assert_eq!(
            r.fault(400),
            format!("Invalid volume: Volume {id} status must be available")
        );
    } else {
        let again = r.body["os-volume_upload_image"]["image_id"].clone();
        let again = again.as_str().expect("image id").to_string();
        active(&cloud, &demo, &again).await;
    }
    let img = active(&cloud, &demo, &raw).await;
    let vol = wait(&cloud, &demo, &id, Some("available")).await;
    assert_eq!(vol["status"], "available");
    assert_eq!(img["name"], "from-data");
    assert_eq!(img["disk_format"], "raw");
    assert_eq!(img["size"], GIB);
    assert_eq!(img["virtual_size"], GIB);
    assert_eq!(img["os_hash_algo"], "sha512");
    assert_eq!(
        img["hw_disk_bus"], "scsi",
        "the volume's own image property"
    );
    assert!(
        img.get("min_ram").is_none_or(|v| v == 0),
        "a core one is not carried: {img}"
    );
    let stored = cloud.app.images.file_path(&raw);
    let mut f = std::fs::File::open(&stored).expect("image file");
    f.seek(SeekFrom::Start(GIB / 2)).expect("seek");
    let mut got = [0u8; 11];
    f.read_exact(&mut got).expect("read");
    assert_eq!(&got, b"ROVA-MARKER", "the volume's bytes");
    assert_eq!(img["checksum"].as_str().map(str::len), Some(32));

    // In another disk format, converted.
    let r = upload(
        &cloud,
        &demo,
        &id,
        "3.0",
        json!({"image_name": "as-qcow2", "disk_format": "qcow2", "force": false}),
    )
    .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    assert!(r.body["os-volume_upload_image"].get("visibility").is_some());
    let q = r.body["os-volume_upload_image"]["image_id"]
        .as_str()
        .expect("id")
        .to_string();
    let img = active(&cloud, &demo, &q).await;
    assert_eq!(img["disk_format"], "qcow2");
    assert_eq!(img["virtual_size"], GIB);
    assert!(
        img["size"].as_u64().expect("size") < GIB / 4,
        "a sparse qcow2: {img}"
    );
    let stored = cloud.app.images.file_path(&q);
    assert_eq!(head(&stored, 4), b"QFI\xfb");
    let sum = {
        use md5::Digest;
        let bytes = std::fs::read(&stored).expect("image file");
        hex::encode(md5::Md5::digest(&bytes))
    };
    assert_eq!(img["checksum"], sum.as_str(), "the stored bytes' MD5");
    wait(&cloud, &demo, &id, Some("available")).await;
}

#[tokio::test]
async fn a_refused_upload_changes_nothing() {
    let cloud = start().await;
    let demo = cloud.login("demo").await;
    let admin = cloud.login("admin").await;
    let r = create(&cloud, &demo, json!({"size": 1})).await;
    let id = r.body["volume"]["id"].as_str().expect("id").to_string();
    wait(&cloud, &demo, &id, Some("available")).await;
    let before = image_count(&cloud);
    let cases: Vec<(&str, Value, u16, String)> = vec![
        (
            "3.1",
            json!({"image_name": "x", "disk_format": "iso"}),
            400,
            "Invalid input for field/attribute disk_format. Value: iso. 'iso' is not one of \
             ['raw', 'vmdk', 'vdi', 'qcow2', 'vhd', 'vhdx', 'ploop']"
                .into(),
        ),
        (
            "3.1",
            json!({"disk_format": "raw"}),
            400,
            "Invalid input for field/attribute os-volume_upload_image. Value: \
             {'disk_format': 'raw'}. 'image_name' is a required property"
                .into(),
        ),
        (
            "3.1",
            json!({"image_name": ""}),
            400,
            "Invalid input for field/attribute image_name. Value: . '' is too short".into(),
        ),
        (
            "3.0",
            json!({"image_name": "x", "visibility": "private"}),
            400,
            "Invalid input for field/attribute os-volume_upload_image. Value: \
             {'image_name': 'x', 'visibility': 'private'}. Additional properties are not \
             allowed ('visibility' was unexpected)"
                .into(),
        ),
        (
            "3.1",
            json!({"image_name": "x", "force": "maybe"}),
            400,
            String::new(),
        ),
        (
            "3.1",
            json!({"image_name": "x", "container_format": "tarball"}),
            400,
            "Invalid container format 'tarball' for image.".into(),
        ),
        (
            "3.1",
            json!({"image_name": "x", "visibility": "public"}),
            403,
            "Policy doesn't allow volume_extension:volume_actions:upload_public to be performed."
                .into(),
        ),
    ];
    for (version, body, code, want) in cases {
        let r = upload(&cloud, &demo, &id, version, body.clone()).await;
        let got = r.fault(code);
        if !want.is_empty() {
            assert_eq!(got, want, "{body}");
        }
    }
    let alt = cloud.login("alt_demo").await;
    let r = upload(&cloud, &alt, &id, "3.1", json!({"image_name": "x"})).await;
    assert_eq!(r.fault(404), format!("Volume {id} could not be found."));
    reset_vol(&cloud, &admin, &id, "error").await;
    let r = upload(&cloud, &demo, &id, "3.1", json!({"image_name": "x"})).await;
    assert_eq!(
        r.fault(400),
        format!("Invalid volume: Volume {id} status must be available")
    );
    assert_eq!(image_count(&cloud), before, "no image was made");
    let r = crate::volumes::get(&cloud, &demo, &format!("/volumes/{id}")).await;
    assert_eq!(r.body["volume"]["status"], "error");
}

#[tokio::test]
async fn a_restart_ends_an_upload_a_stopped_process_left() {
    let cloud = start().await;
    let demo = cloud.login("demo").await;
    let r = create(&cloud, &demo, json!({"size": 1})).await;
    let id = r.body["volume"]["id"].as_str().expect("id").to_string();
    wait(&cloud, &demo, &id, Some("available")).await;
    // As a process killed while copying leaves them: the volume
    // `uploading` naming its image, the image `saving`.
    let now = cloud.app.clock.now();
    let mut img = rova::image::Image::queued(&demo.project_id, "private", now);
    img.status = "saving".into();
    img.name = Some("cut-short".into());
    let image_id = img.id.clone();
    cloud.app.images.put(img).await.expect("image row");
    let row = (*cloud.app.volumes.table.get(&id).expect("row")).clone();
    let row = rova::volume::Volume {
        status: "uploading".into(),
        upload_image: Some(image_id.clone()),
        updated_at: Some(now - chrono::Duration::hours(1)),
        ..row
    };
    cloud.app.volumes.table.put(&id, row).await.expect("write");
    let cloud = cloud.restart().await;
    let demo = cloud.login("demo").await;
    let r = crate::volumes::get(&cloud, &demo, &format!("/volumes/{id}")).await;
    assert_eq!(r.body["volume"]["status"], "available");
    let r = image(&cloud, &demo, &image_id).await;
    assert_eq!(
        r.status,
        StatusCode::NOT_FOUND,
        "the unfinished image is gone"
    );
}
