//! What snapshots do to their volumes: a volume with snapshots refused a
//! delete unless it cascades (Cinder's rules for the snapshots' statuses
//! and projects), volumes made from a snapshot (its bytes, size and image
//! metadata; from Nova's `os-volumes` too), quotas counted from the rows
//! (snapshots, and the gigabytes volumes and snapshots share), and what a
//! restart does to snapshots and cascades a stopped process left in
//! flight.

use crate::common::start;
use crate::snapshots::{
    head, reset_snap, scribble, snap_create, snap_del, snap_wait, snapshot, snapshot_file, vol_del,
    volume, volume_file,
};
use crate::volumes::{call, create, get, wait};
use reqwest::{Method, StatusCode};
use rova::volume::snapshot::Snapshot;
use rova::volume::Volume;
use serde_json::json;

const GIB: u64 = 1 << 30;

#[tokio::test]
async fn a_volume_with_snapshots_is_deleted_only_with_cascade() {
    let cloud = start().await;
    let demo = cloud.login("demo").await;
    let admin = cloud.login("admin").await;
    let vol = volume(&cloud, &demo, 1).await;
    let snaps = [
        snapshot(&cloud, &demo, &vol, json!({})).await,
        snapshot(&cloud, &demo, &vol, json!({})).await,
    ];
    let r = vol_del(&cloud, &demo, &vol, "?cascade=maybe").await;
    assert_eq!(
        r.fault(400),
        "Value 'maybe' for 'cascade' is not a boolean."
    );
    let r = vol_del(&cloud, &demo, &vol, "").await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);

    // A snapshot that may not be deleted stops a cascade (not a forced one).
    reset_snap(&cloud, &admin, &snaps[0], "creating").await;
    let r = vol_del(&cloud, &demo, &vol, "?cascade=true").await;
    assert!(
        r.fault(400)
            .starts_with("Invalid volume: Volume status must be"),
        "{}",
        r.text
    );
    reset_snap(&cloud, &admin, &snaps[0], "error").await;
    // Nor does the owner's cascade take another project's snapshot.
    let theirs = snapshot(&cloud, &admin, &vol, json!({})).await;
    let r = vol_del(&cloud, &demo, &vol, "?cascade=true").await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    reset_snap(&cloud, &admin, &theirs, "creating").await;
    // An admin's forced cascade takes every snapshot, whatever its status.
    let r = vol_del(&cloud, &admin, &vol, "?cascade=1&force=true").await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    wait(&cloud, &demo, &vol, None).await;
    for s in snaps.iter().chain([&theirs]) {
        assert!(cloud.app.volumes.snapshots.get(s).is_none(), "{s} went");
        assert!(!snapshot_file(&cloud, s).exists());
    }
    assert!(!volume_file(&cloud, &vol).exists());

    // A plain cascade of the owner.
    let vol = volume(&cloud, &demo, 1).await;
    let snap = snapshot(&cloud, &demo, &vol, json!({})).await;
    let r = vol_del(&cloud, &demo, &vol, "?cascade=True").await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    wait(&cloud, &demo, &vol, None).await;
    snap_wait(&cloud, &demo, &snap, None).await;
}

#[tokio::test]
async fn a_volume_is_made_from_a_snapshot() {
    let cloud = start().await;
    let demo = cloud.login("demo").await;
    let alt = cloud.login("alt_demo").await;
    let admin = cloud.login("admin").await;
    let image = cloud.image_id();
    let r = create(&cloud, &demo, json!({"imageRef": image, "size": 2})).await;
    let src = r.body["volume"]["id"].as_str().expect("id").to_string();
    wait(&cloud, &demo, &src, Some("available")).await;
    scribble(&volume_file(&cloud, &src), b"FROM-SNAPSHOT");
    let snap = snapshot(&cloud, &demo, &src, json!({})).await;
    scribble(&volume_file(&cloud, &src), b"LATER-CHANGE!");

    let r = create(
        &cloud,
        &demo,
        json!({"snapshot_id": snap, "name": "restored"}),
    )
    .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    assert_eq!(r.body["volume"]["snapshot_id"], snap.as_str());
    let id = r.body["volume"]["id"].as_str().expect("id").to_string();
    let v = wait(&cloud, &demo, &id, Some("available")).await;
    assert_eq!(v["size"], 2, "the snapshot's size");
    assert_eq!(v["snapshot_id"], snap.as_str());
    assert_eq!(v["bootable"], "true", "its volume's");
    assert_eq!(v["volume_image_metadata"]["image_id"], image.as_str());
    assert_eq!(head(&volume_file(&cloud, &id), 13), b"FROM-SNAPSHOT");
    assert_eq!(
        std::fs::metadata(volume_file(&cloud, &id))
            .expect("file")
            .len(),
        2 * GIB
    );
    let r = create(&cloud, &demo, json!({"snapshot_id": snap, "size": 3})).await;
    let bigger = r.body["volume"]["id"].as_str().expect("id").to_string();
    let v = wait(&cloud, &demo, &bigger, Some("available")).await;
    assert_eq!(v["size"], 3);

    let r = create(&cloud, &demo, json!({"snapshot_id": snap, "size": 1})).await;
    assert_eq!(
        r.fault(400),
        "Invalid input received: Volume size '1'GB cannot be smaller than the snapshot size 2GB. \
         They must be >= original snapshot size."
    );
    let r = create(
        &cloud,
        &demo,
        json!({"snapshot_id": snap, "source_volid": src}),
    )
    .await;
    assert_eq!(
        r.fault(400),
        "Invalid input received: May specify only one of backup, imageRef, snapshot, source volume"
    );
    let missing = "9c1a0d3e-1111-4a8e-9b0c-3d1f5e6a7b8c";
    let r = create(&cloud, &demo, json!({"snapshot_id": missing})).await;
    assert_eq!(
        r.fault(404),
        format!("Snapshot {missing} could not be found.")
    );
    let r = create(&cloud, &alt, json!({"snapshot_id": snap})).await;
    assert_eq!(r.fault(404), format!("Snapshot {snap} could not be found."));
    reset_snap(&cloud, &admin, &snap, "error").await;
    let r = create(&cloud, &demo, json!({"snapshot_id": snap})).await;
    assert_eq!(
        r.fault(400),
        "Invalid snapshot: Originating snapshot status must be one of 'available' values"
    );
    // Nova's proxy makes one too (its size given).
    reset_snap(&cloud, &admin, &snap, "available").await;
    let body = json!({"volume": {"size": 2, "snapshot_id": snap}});
    let r = cloud
        .compute(&demo, Method::POST, "/os-volumes", Some("2.35"), Some(body))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["volume"]["snapshotId"], snap.as_str());
    let body = json!({"volume": {"size": 1, "snapshot_id": snap}});
    let r = cloud
        .compute(&demo, Method::POST, "/os-volumes", Some("2.35"), Some(body))
        .await;
    assert!(
        r.fault(400)
            .starts_with("Invalid input received: Invalid input received: Volume size"),
        "{}",
        r.text
    );

    // The volumes made from it are its own: the snapshot may go first.
    let r = snap_del(&cloud, &demo, &snap).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    snap_wait(&cloud, &demo, &snap, None).await;
    assert_eq!(head(&volume_file(&cloud, &id), 13), b"FROM-SNAPSHOT");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn snapshot_quotas_are_counted_from_the_rows() {
    let cloud = std::sync::Arc::new(start().await);
    let demo = cloud.login("demo").await;
    let vol = volume(&cloud, &demo, 1).await;
    let mut tasks = Vec::new();
    for i in 0..12 {
        let (cloud, demo, vol) = (cloud.clone(), demo.clone(), vol.clone());
        tasks.push(tokio::spawn(async move {
            let body = json!({"volume_id": vol, "name": format!("q{i}")});
            snap_create(&cloud, &demo, None, body).await
        }));
    }
    let mut made = Vec::new();
    for t in tasks {
        let r = t.await.expect("create");
        match r.status {
            StatusCode::ACCEPTED => {
                made.push(r.body["snapshot"]["id"].as_str().expect("id").to_string())
            }
            _ => assert_eq!(
                r.fault(413),
                "Maximum number of snapshots allowed (10) exceeded"
            ),
        }
    }
    assert_eq!(made.len(), 10, "Cinder's default of 10 snapshots");
    for s in &made {
        snap_wait(&cloud, &demo, s, Some("available")).await;
    }
    let r = get(&cloud, &demo, "/limits").await;
    let abs = &r.body["limits"]["absolute"];
    assert_eq!(
        (&abs["totalSnapshotsUsed"], &abs["totalGigabytesUsed"]),
        (&json!(10), &json!(11))
    );

    // Snapshot gigabytes count against volumes, and volumes' against
    // snapshots (a large volume's row stands in for its bytes).
    let row: Volume = (*cloud.app.volumes.table.get(&vol).expect("row")).clone();
    let big = "0b0e6a43-5d3f-4b1e-9a4c-2f6d8e7c1a90";
    let row = Volume {
        id: big.into(),
        size: 985,
        ..row
    };
    cloud.app.volumes.table.put(big, row).await.expect("write");
    let r = create(&cloud, &demo, json!({"size": 5})).await;
    assert_eq!(
        r.fault(413),
        "Requested volume or snapshot exceeds allowed gigabytes quota. Requested 5G, quota is \
         1000G and 996G has been consumed."
    );
    let r = call(
        &cloud,
        &demo,
        Method::POST,
        &format!("/volumes/{vol}/action"),
        None,
        Some(json!({"os-extend": {"new_size": 6}})),
    )
    .await;
    assert_eq!(r.status.as_u16(), 413, "{}", r.text);
    let r = snap_del(&cloud, &demo, &made[0]).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    snap_wait(&cloud, &demo, &made[0], None).await;
    let r = snap_create(&cloud, &demo, None, json!({"volume_id": big})).await;
    assert_eq!(
        r.fault(413),
        "Requested volume or snapshot exceeds allowed gigabytes quota. Requested 985G, quota is \
         1000G and 995G has been consumed."
    );
    let r = snap_create(&cloud, &demo, None, json!({"volume_id": vol})).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
}

#[tokio::test]
async fn a_restart_ends_snapshots_left_in_flight() {
    let cloud = start().await;
    let demo = cloud.login("demo").await;
    let vol = volume(&cloud, &demo, 1).await;
    let cut = volume(&cloud, &demo, 1).await;
    let creating = snapshot(&cloud, &demo, &vol, json!({})).await;
    let deleting = snapshot(&cloud, &demo, &vol, json!({})).await;
    let cascading = snapshot(&cloud, &demo, &cut, json!({})).await;
    // As a process killed in the middle of each leaves the rows, a while
    // ago (on PostgreSQL, rows changed within two process leases may be a
    // live process's and are left alone).
    let ago = cloud.app.clock.now() - chrono::Duration::hours(1);
    for (id, status) in [
        (&creating, "creating"),
        (&deleting, "deleting"),
        (&cascading, "deleting"),
    ] {
        let row: Snapshot = (*cloud.app.volumes.snapshots.get(id).expect("row")).clone();
        let row = Snapshot {
            status: status.into(),
            updated_at: Some(ago),
            ..row
        };
        cloud
            .app
            .volumes
            .snapshots
            .put(id, row)
            .await
            .expect("write");
    }
    let row: Volume = (*cloud.app.volumes.table.get(&cut).expect("row")).clone();
    let row = Volume {
        status: "deleting".into(),
        updated_at: Some(ago),
        ..row
    };
    cloud.app.volumes.table.put(&cut, row).await.expect("write");

    let cloud = cloud.restart().await;
    let demo = cloud.login("demo").await;
    let r = get(&cloud, &demo, &format!("/snapshots/{creating}")).await;
    assert_eq!(r.body["snapshot"]["status"], "error", "a create cut short");
    snap_wait(&cloud, &demo, &deleting, None).await;
    assert!(
        !snapshot_file(&cloud, &deleting).exists(),
        "a delete cut short is carried out"
    );
    wait(&cloud, &demo, &cut, None).await;
    snap_wait(&cloud, &demo, &cascading, None).await;
    assert!(!snapshot_file(&cloud, &cascading).exists());
    assert!(
        !volume_file(&cloud, &cut).exists(),
        "a cascade cut short too"
    );
    // An errored snapshot may be deleted.
    let r = snap_del(&cloud, &demo, &creating).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    snap_wait(&cloud, &demo, &creating, None).await;
}
