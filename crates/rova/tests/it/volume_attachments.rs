//! Volumes on servers (`os-volume_attachments`): attach and detach walk
//! both sides — the volume `reserved` → `in-use` → `detaching` →
//! `available` with its attachment, the server's mapping and its
//! `attach_volume` / `detach_volume` actions — with Nova's 400/404/409s,
//! the microversioned views (2.70 tag, 2.79 delete_on_termination, 2.89
//! attachment ids, 2.101 no body), a server's delete detaching or deleting
//! its volumes, and a restart ending an attach a stopped process left
//! between its steps.

use crate::common::{start, Resp, TestCloud, User};
use crate::volumes::{create, del, get, wait};
use reqwest::{Method, StatusCode};
use rova_core::Fault;
use serde_json::{json, Value};

pub(crate) async fn new_volume(c: &TestCloud, u: &User, name: &str) -> String {
    let r = create(c, u, json!({"size": 1, "name": name})).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    let id = r.body["volume"]["id"].as_str().expect("id").to_string();
    wait(c, u, &id, Some("available")).await;
    id
}

pub(crate) async fn attach(c: &TestCloud, u: &User, server: &str, v: &str, body: Value) -> Resp {
    c.compute(
        u,
        Method::POST,
        &format!("/servers/{server}/os-volume_attachments"),
        Some(v),
        Some(json!({ "volumeAttachment": body })),
    )
    .await
}

pub(crate) async fn detach(c: &TestCloud, u: &User, server: &str, volume: &str) -> Resp {
    c.compute(
        u,
        Method::DELETE,
        &format!("/servers/{server}/os-volume_attachments/{volume}"),
        Some("2.79"),
        None,
    )
    .await
}

/// Deletes server `id` (Nova's 204).
async fn delete_server(c: &TestCloud, u: &User, id: &str) {
    let r = c
        .compute(u, Method::DELETE, &format!("/servers/{id}"), None, None)
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
}

pub(crate) async fn volume_of(c: &TestCloud, u: &User, id: &str) -> Value {
    get(c, u, &format!("/volumes/{id}")).await.body["volume"].clone()
}

/// Volume `id` once it is in `status` (a detach ends in a task).
pub(crate) async fn settled(c: &TestCloud, u: &User, id: &str, status: &str) -> Value {
    for _ in 0..500 {
        let v = volume_of(c, u, id).await;
        if v["status"] == status {
            return v;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    panic!(
        "volume {id} never became {status}: {}",
        volume_of(c, u, id).await
    );
}

/// Marks volumes `ids` as last changed an hour ago (on PostgreSQL a
/// volume changed within two process leases may be a live process's, and
/// a restart leaves it alone).
pub(crate) async fn backdate(cloud: &TestCloud, ids: &[&String]) {
    let past = cloud.app.clock.now() - chrono::Duration::hours(1);
    for id in ids {
        cloud
            .app
            .volumes
            .table
            .update(
                id,
                || Fault::not_found("volume"),
                |v| {
                    v.updated_at = Some(past);
                    Ok(())
                },
            )
            .await
            .expect("backdated");
    }
}

pub(crate) async fn server_id(c: &TestCloud, u: &User, name: &str) -> String {
    let s = c
        .boot(u, name, Some("2.79"), json!({"networks": "none"}))
        .await;
    assert_eq!(s["status"], "ACTIVE", "{s}");
    s["id"].as_str().expect("id").to_string()
}

#[tokio::test]
async fn a_volume_is_attached_and_detached_as_nova_does() {
    let cloud = start().await;
    let demo = cloud.login("demo").await;
    let sid = server_id(&cloud, &demo, "va1").await;
    let other = server_id(&cloud, &demo, "va2").await;
    let vol = new_volume(&cloud, &demo, "data").await;

    let r = attach(
        &cloud,
        &demo,
        &sid,
        "2.79",
        json!({"volumeId": vol, "tag": "db"}),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(
        r.body["volumeAttachment"],
        json!({"id": vol, "serverId": sid, "volumeId": vol, "device": "/dev/vdb",
               "tag": "db", "delete_on_termination": false})
    );
    let v = volume_of(&cloud, &demo, &vol).await;
    assert_eq!(v["status"], "in-use");
    assert_eq!(v["attachments"][0]["server_id"], sid.as_str());
    assert_eq!(v["attachments"][0]["device"], "/dev/vdb");
    let shown = cloud
        .get(&demo, &format!("/servers/{sid}"), Some("2.79"))
        .await;
    assert_eq!(
        shown.body["server"]["os-extended-volumes:volumes_attached"],
        json!([{"id": vol, "delete_on_termination": false}])
    );
    let acts = cloud
        .get(&demo, &format!("/servers/{sid}/os-instance-actions"), None)
        .await;
    assert_eq!(acts.body["instanceActions"][0]["action"], "attach_volume");

    // Listed and shown as each microversion shows them.
    let path = format!("/servers/{sid}/os-volume_attachments");
    let old = cloud.get(&demo, &path, None).await;
    assert_eq!(
        old.body["volumeAttachments"],
        json!([{"id": vol, "serverId": sid, "volumeId": vol, "device": "/dev/vdb"}])
    );
    let new = cloud
        .get(&demo, &format!("{path}/{vol}"), Some("2.89"))
        .await;
    let a = &new.body["volumeAttachment"];
    assert!(a.get("id").is_none(), "{a}");
    assert_eq!(a["attachment_id"], v["attachments"][0]["attachment_id"]);
    assert!(a["bdm_uuid"].is_string(), "{a}");
    assert_eq!(a["tag"], "db");

    // Refusals change nothing.
    let second = new_volume(&cloud, &demo, "second").await;
    let alt = cloud.login("alt_demo").await;
    let alts = new_volume(&cloud, &alt, "alts").await;
    let missing = "0d6c4b7e-6f1a-4c1e-9e55-1e4f8a0b2c3d";
    let cases: [(&str, Value, u16, String); 6] = [
        (&sid, json!({"volumeId": vol}), 400, format!("Invalid volume: volume {vol} already attached")),
        (&other, json!({"volumeId": vol}), 400, format!(
            "Invalid volume: Volume {vol} status must be available or downloading to reserve, but the current status is in-use.")),
        (&sid, json!({"volumeId": second, "device": "/dev/vdb"}), 409,
            "The supplied device path (/dev/vdb) is in use.".to_string()),
        (&sid, json!({"volumeId": alts}), 404, format!("Volume {alts} could not be found.")),
        (&sid, json!({"volumeId": missing}), 404, format!("Volume {missing} could not be found.")),
        (&sid, json!({"volumeId": second, "device": "vdc"}), 400, format!(
            "Invalid input for field/attribute device. Value: vdc. 'vdc' does not match '{}'",
            rova_core::validate::volume_attach::DEVICE_PATTERN)),
    ];
    for (server, body, code, msg) in cases {
        let r = attach(&cloud, &demo, server, "2.79", body.clone()).await;
        assert_eq!(r.fault(code), msg, "{body}");
    }
    assert_eq!(
        volume_of(&cloud, &demo, &second).await["status"],
        "available"
    );
    let reader = cloud.login("demo_reader").await;
    let r = attach(&cloud, &reader, &sid, "2.79", json!({"volumeId": second})).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text);
    let r = attach(&cloud, &alt, &sid, "2.79", json!({"volumeId": alts})).await;
    assert_eq!(r.fault(404), format!("Instance {sid} could not be found."));

    // An attached volume is not deleted; a locked server keeps its volumes.
    let r = del(&cloud, &demo, &vol).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    let r = cloud
        .post(
            &demo,
            &format!("/servers/{sid}/action"),
            None,
            json!({"lock": null}),
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    let admin = cloud.login("admin").await;
    let r = cloud
        .post(
            &admin,
            &format!("/servers/{sid}/action"),
            None,
            json!({"lock": null}),
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    let r = detach(&cloud, &demo, &sid, &vol).await;
    assert_eq!(r.fault(409), format!("Instance {sid} is locked"));
    let r = cloud
        .post(
            &admin,
            &format!("/servers/{sid}/action"),
            None,
            json!({"unlock": null}),
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);

    // 2.85 changes delete_on_termination; detach puts the volume back.
    let r = cloud
        .compute(
            &demo,
            Method::PUT,
            &format!("{path}/{vol}"),
            Some("2.85"),
            Some(json!({"volumeAttachment": {"volumeId": vol, "delete_on_termination": true}})),
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    let r = cloud
        .get(&demo, &format!("{path}/{vol}"), Some("2.85"))
        .await;
    assert_eq!(r.body["volumeAttachment"]["delete_on_termination"], true);
    let r = cloud
        .compute(
            &demo,
            Method::PUT,
            &format!("{path}/{vol}"),
            Some("2.84"),
            Some(json!({"volumeAttachment": {"volumeId": second}})),
        )
        .await;
    assert_eq!(
        r.status,
        StatusCode::FORBIDDEN,
        "swapping is the service's: {}",
        r.text
    );
    let r = detach(&cloud, &demo, &sid, &vol).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    let v = settled(&cloud, &demo, &vol, "available").await;
    assert_eq!(v["attachments"], json!([]));
    let r = detach(&cloud, &demo, &sid, &vol).await;
    assert_eq!(
        r.fault(404),
        format!("Instance {sid} is not attached to volume {vol}")
    );
    let shown = cloud
        .get(&demo, &format!("/servers/{sid}"), Some("2.79"))
        .await;
    assert_eq!(
        shown.body["server"]["os-extended-volumes:volumes_attached"],
        json!([])
    );
    let acts = cloud
        .get(&demo, &format!("/servers/{sid}/os-instance-actions"), None)
        .await;
    assert_eq!(acts.body["instanceActions"][0]["action"], "detach_volume");

    // A failed plug (an injected fault) answers 500 and gives the volume
    // back; a failed unplug (after the 202) leaves it attached, and the
    // action's event says so.
    for (op, then) in [("attach_volume", "available"), ("detach_volume", "in-use")] {
        if op == "detach_volume" {
            let r = attach(&cloud, &demo, &sid, "2.79", json!({"volumeId": vol})).await;
            assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        }
        let r = cloud
            .http
            .post(format!("{}/rova/v1/sim/faults", cloud.base))
            .header("X-Auth-Token", &admin.token)
            .json(&json!({"operation": op, "message": "no slot"}))
            .send()
            .await
            .expect("fault");
        assert_eq!(r.status().as_u16(), 201);
        if op == "attach_volume" {
            let r = attach(&cloud, &demo, &sid, "2.79", json!({"volumeId": vol})).await;
            assert!(
                r.fault(500).starts_with("Unexpected API Error"),
                "{}",
                r.text
            );
        } else {
            let r = detach(&cloud, &demo, &sid, &vol).await;
            assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
        }
        settled(&cloud, &demo, &vol, then).await;
    }
    let acts = cloud
        .get(&demo, &format!("/servers/{sid}/os-instance-actions"), None)
        .await;
    let req = acts.body["instanceActions"][0]["request_id"]
        .as_str()
        .expect("request id")
        .to_string();
    assert_eq!(acts.body["instanceActions"][0]["action"], "detach_volume");
    let act = cloud
        .get(
            &admin,
            &format!("/servers/{sid}/os-instance-actions/{req}"),
            Some("2.51"),
        )
        .await;
    assert_eq!(
        act.body["instanceAction"]["message"], "Error",
        "{}",
        act.text
    );
    assert_eq!(
        act.body["instanceAction"]["events"][0]["result"], "Error",
        "{}",
        act.text
    );
    let r = detach(&cloud, &demo, &sid, &vol).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    settled(&cloud, &demo, &vol, "available").await;

    // 2.101: no body.
    let r = attach(&cloud, &demo, &other, "2.101", json!({"volumeId": vol})).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    assert!(r.text.is_empty(), "{}", r.text);
    assert_eq!(volume_of(&cloud, &demo, &vol).await["status"], "in-use");
}

#[tokio::test]
async fn a_servers_delete_detaches_or_deletes_its_volumes() {
    let cloud = start().await;
    let demo = cloud.login("demo").await;
    let sid = server_id(&cloud, &demo, "doomed").await;
    let kept = new_volume(&cloud, &demo, "kept").await;
    let gone = new_volume(&cloud, &demo, "gone").await;
    let r = attach(&cloud, &demo, &sid, "2.79", json!({"volumeId": kept})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let body = json!({"volumeId": gone, "delete_on_termination": true});
    let r = attach(&cloud, &demo, &sid, "2.79", body).await;
    assert_eq!(r.body["volumeAttachment"]["device"], "/dev/vdc");
    delete_server(&cloud, &demo, &sid).await;
    wait(&cloud, &demo, &gone, None).await;
    let v = wait(&cloud, &demo, &kept, Some("available")).await;
    assert_eq!(v["attachments"], json!([]));
}

#[tokio::test]
async fn a_restart_ends_an_attach_cut_short() {
    let cloud = start().await;
    let demo = cloud.login("demo").await;
    let sid = server_id(&cloud, &demo, "cut").await;
    let reserved = new_volume(&cloud, &demo, "reserved").await;
    let attached = new_volume(&cloud, &demo, "attached").await;
    let r = attach(&cloud, &demo, &sid, "2.79", json!({"volumeId": attached})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    // A process that reserved a volume and died before the server's
    // record named it; another that died mid-detach.
    let now = cloud.app.clock.now();
    cloud
        .app
        .volumes
        .reserve(&reserved, &sid, now)
        .await
        .expect("reserve");
    cloud
        .app
        .volumes
        .begin_detach(&attached, now)
        .await
        .expect("detaching");
    backdate(&cloud, &[&reserved, &attached]).await;
    let cloud = cloud.restart().await;
    let demo = cloud.login("demo").await;
    let v = volume_of(&cloud, &demo, &reserved).await;
    assert_eq!(
        (v["status"].as_str(), &v["attachments"]),
        (Some("available"), &json!([]))
    );
    let v = volume_of(&cloud, &demo, &attached).await;
    assert_eq!(v["status"], "in-use", "the server still maps it");
}

pub(crate) async fn boot_bdm(
    c: &TestCloud,
    u: &User,
    name: &str,
    bdm: Value,
    extra: Value,
) -> Resp {
    let mut server = json!({"name": name, "imageRef": "", "flavorRef": "1",
        "networks": "none", "block_device_mapping_v2": [bdm]});
    if let (Some(s), Some(e)) = (server.as_object_mut(), extra.as_object()) {
        for (k, v) in e {
            s.insert(k.clone(), v.clone());
        }
    }
    c.post(u, "/servers", Some("2.79"), json!({ "server": server }))
        .await
}

/// Boots server `name` on mapping `bdm` and waits until it is ACTIVE;
/// its id and its `volumes_attached` (2.79).
pub(crate) async fn boot_active(
    c: &TestCloud,
    u: &User,
    name: &str,
    bdm: Value,
) -> (String, Value) {
    let r = boot_bdm(c, u, name, bdm, json!({})).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    let sid = r.body["server"]["id"].as_str().expect("id").to_string();
    let s = c
        .wait_status(u, &sid, &["ACTIVE", "ERROR"], Some("2.79"))
        .await;
    assert_eq!(s["status"], "ACTIVE", "{s}");
    (sid, s["os-extended-volumes:volumes_attached"].clone())
}

/// The one volume of `attached`, deleted with its server, and its view.
async fn root_volume(c: &TestCloud, u: &User, attached: &Value) -> (String, Value) {
    let vol = attached[0]["id"].as_str().expect("a volume").to_string();
    assert_eq!(
        attached,
        &json!([{"id": vol, "delete_on_termination": true}])
    );
    let v = volume_of(c, u, &vol).await;
    (vol, v)
}

#[tokio::test]
async fn a_server_boots_from_a_volume() {
    let cloud = start().await;
    let demo = cloud.login("demo").await;
    let image = cloud.image_id();

    // From an image: Nova has the volume made, attached as /dev/vda.
    let bdm = json!({"boot_index": 0, "uuid": image, "source_type": "image",
        "destination_type": "volume", "volume_size": 2, "delete_on_termination": true});
    let (sid, attached) = boot_active(&cloud, &demo, "bfv", bdm).await;
    let (vol, v) = root_volume(&cloud, &demo, &attached).await;
    assert_eq!(
        (
            v["status"].as_str(),
            v["size"].as_u64(),
            v["bootable"].as_str()
        ),
        (Some("in-use"), Some(2), Some("true"))
    );
    assert_eq!(v["attachments"][0]["device"], "/dev/vda");
    assert_eq!(v["volume_image_metadata"]["image_id"], image.as_str());
    let r = detach(&cloud, &demo, &sid, &vol).await;
    assert_eq!(r.fault(400), "Cannot detach a root device volume");
    delete_server(&cloud, &demo, &sid).await;
    wait(&cloud, &demo, &vol, None).await;

    // From the user's volume, kept when the server goes: a blank one is
    // not bootable (Nova's 400) until its owner says it is.
    let mine = new_volume(&cloud, &demo, "root").await;
    let bdm = json!({"boot_index": 0, "uuid": mine, "source_type": "volume",
        "destination_type": "volume"});
    let before = cloud.app.compute.instances.len();
    let r = boot_bdm(&cloud, &demo, "not-bootable", bdm.clone(), json!({})).await;
    assert_eq!(
        r.fault(400),
        format!("Block Device {mine} is not bootable.")
    );
    assert_eq!(cloud.app.compute.instances.len(), before, "no server made");
    let r = crate::volumes::call(
        &cloud,
        &demo,
        Method::POST,
        &format!("/volumes/{mine}/action"),
        None,
        Some(json!({"os-set_bootable": {"bootable": true}})),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let (sid, _) = boot_active(&cloud, &demo, "bfv2", bdm.clone()).await;
    assert_eq!(volume_of(&cloud, &demo, &mine).await["status"], "in-use");

    // Refused at the API, nothing made.
    let missing = "5d2f0e1c-3a4b-4c5d-8e9f-0a1b2c3d4e5f";
    let cases = [
        (json!({"boot_index": 0, "uuid": missing, "source_type": "volume",
            "destination_type": "volume"}), json!({}),
            format!("Block Device Mapping is Invalid: failed to get volume {missing}.")),
        (bdm.clone(), json!({}), format!(
            "Invalid volume: Volume {mine} status must be available or downloading to reserve, but the current status is in-use.")),
        (json!({"boot_index": 0, "uuid": missing, "source_type": "snapshot",
            "destination_type": "volume"}), json!({}),
            format!("Block Device Mapping is Invalid: failed to get snapshot {missing}.")),
        (json!({"boot_index": 0, "uuid": missing, "source_type": "image",
            "destination_type": "volume", "volume_size": 1}), json!({}),
            format!("Block Device Mapping is Invalid: failed to get image {missing}.")),
    ];
    let before = cloud.app.compute.instances.len();
    for (b, extra, msg) in cases {
        let r = boot_bdm(&cloud, &demo, "refused", b.clone(), extra).await;
        assert_eq!(r.fault(400), msg, "{b}");
    }
    assert_eq!(cloud.app.compute.instances.len(), before, "no server made");

    delete_server(&cloud, &demo, &sid).await;
    let v = wait(&cloud, &demo, &mine, Some("available")).await;
    assert_eq!(v["attachments"], json!([]));
}

#[tokio::test]
async fn a_build_that_cannot_make_its_volumes_fails_and_gives_them_back() {
    let cloud = start().await;
    let demo = cloud.login("demo").await;
    let image = cloud.image_id();
    // Nine of the project's ten volumes are taken: the build's first
    // volume is made, its second is over the quota.
    for i in 0..9 {
        new_volume(&cloud, &demo, &format!("fill{i}")).await;
    }
    let mut server = json!({"name": "two-vols", "imageRef": "", "flavorRef": "1",
    "networks": "none", "block_device_mapping_v2": [
        {"boot_index": 0, "uuid": image, "source_type": "image",
         "destination_type": "volume", "volume_size": 1},
        {"boot_index": 1, "source_type": "blank", "destination_type": "volume",
         "volume_size": 1},
    ]});
    server["min_count"] = json!(1);
    let r = cloud
        .post(&demo, "/servers", Some("2.79"), json!({ "server": server }))
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    let sid = r.body["server"]["id"].as_str().expect("id").to_string();
    let s = cloud
        .wait_status(&demo, &sid, &["ACTIVE", "ERROR"], Some("2.79"))
        .await;
    assert_eq!(s["status"], "ERROR", "{s}");
    assert_eq!(
        s["fault"]["message"],
        format!("Build of instance {sid} aborted: Failure prepping block device.")
    );
    // The volume made for it is deleting or gone; once gone, only the
    // project's own nine are left.
    let mut names: Vec<String> = Vec::new();
    for _ in 0..500 {
        let listed = get(&cloud, &demo, "/volumes/detail").await;
        let vols = listed.body["volumes"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        assert!(
            vols.iter()
                .all(|v| v["status"] == "available" || v["status"] == "deleting"),
            "{vols:?}"
        );
        names = vols
            .iter()
            .map(|v| v["name"].as_str().unwrap_or("?").to_string())
            .collect();
        if names.len() == 9 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_eq!(names.len(), 9, "the volume made for it is gone: {names:?}");
    assert!(names.iter().all(|n| n.starts_with("fill")), "{names:?}");
}

#[tokio::test]
async fn a_server_boots_from_a_snapshot() {
    use crate::snapshots::{reset_snap, snapshot};
    let cloud = start().await;
    let demo = cloud.login("demo").await;
    let alt = cloud.login("alt_demo").await;
    let admin = cloud.login("admin").await;
    let image = cloud.image_id();

    // A bootable volume made from the image, and a snapshot of it.
    let r = create(&cloud, &demo, json!({"size": 2, "imageRef": image})).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    let origin = r.body["volume"]["id"].as_str().expect("id").to_string();
    wait(&cloud, &demo, &origin, Some("available")).await;
    let snap = snapshot(&cloud, &demo, &origin, json!({})).await;

    // The build makes a volume from it (the size asked for), attached as
    // /dev/vda and deleted with the server.
    let bdm = json!({"boot_index": 0, "uuid": snap, "source_type": "snapshot",
        "destination_type": "volume", "volume_size": 3, "delete_on_termination": true});
    let (sid, attached) = boot_active(&cloud, &demo, "from-snap", bdm).await;
    let (vol, v) = root_volume(&cloud, &demo, &attached).await;
    assert_eq!(
        (
            v["status"].as_str(),
            v["size"].as_u64(),
            v["bootable"].as_str(),
            v["snapshot_id"].as_str()
        ),
        (Some("in-use"), Some(3), Some("true"), Some(snap.as_str()))
    );
    assert_eq!(v["attachments"][0]["device"], "/dev/vda");
    assert_eq!(v["volume_image_metadata"]["image_id"], image.as_str());
    delete_server(&cloud, &demo, &sid).await;
    wait(&cloud, &demo, &vol, None).await;

    // Without a size, the snapshot's; kept when the server goes.
    let bdm = json!({"boot_index": 0, "uuid": snap, "source_type": "snapshot",
        "destination_type": "volume"});
    let (sid, attached) = boot_active(&cloud, &demo, "from-snap2", bdm.clone()).await;
    let vol = attached[0]["id"].as_str().expect("a volume").to_string();
    assert_eq!(volume_of(&cloud, &demo, &vol).await["size"], 2);
    delete_server(&cloud, &demo, &sid).await;
    let v = wait(&cloud, &demo, &vol, Some("available")).await;
    assert_eq!(v["snapshot_id"], snap.as_str());

    // Refused at the API, nothing made: another project's snapshot, a
    // size below the snapshot's, a snapshot that is not available.
    let before = cloud.app.compute.instances.len();
    let r = boot_bdm(&cloud, &alt, "refused", bdm.clone(), json!({})).await;
    assert_eq!(
        r.fault(400),
        format!("Block Device Mapping is Invalid: failed to get snapshot {snap}.")
    );
    let mut small = bdm.clone();
    small["volume_size"] = json!(1);
    let r = boot_bdm(&cloud, &demo, "refused", small, json!({})).await;
    assert_eq!(
        r.fault(400),
        "Invalid input received: Volume size '1'GB cannot be smaller than the snapshot \
         size 2GB. They must be >= original snapshot size."
    );
    reset_snap(&cloud, &admin, &snap, "error").await;
    let r = boot_bdm(&cloud, &demo, "refused", bdm, json!({})).await;
    assert_eq!(
        r.fault(400),
        "Invalid snapshot: Originating snapshot status must be one of 'available' values"
    );
    assert_eq!(cloud.app.compute.instances.len(), before, "no server made");
}

#[tokio::test]
async fn a_volume_backed_servers_image_boots_from_its_snapshots() {
    let cloud = start().await;
    let demo = cloud.login("demo").await;
    let image = cloud.image_id();

    // A server on a volume made from the image, with a data volume.
    let bdm = json!({"boot_index": 0, "uuid": image, "source_type": "image",
        "destination_type": "volume", "volume_size": 2, "delete_on_termination": true});
    let (sid, attached) = boot_active(&cloud, &demo, "vb", bdm).await;
    let (root, _) = root_volume(&cloud, &demo, &attached).await;
    let data = new_volume(&cloud, &demo, "data").await;
    let r = attach(&cloud, &demo, &sid, "2.79", json!({"volumeId": data})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);

    // createImage: 202 naming the image (2.45: in the body), at once
    // active with no bytes, each volume snapshotted (forced: in use).
    let r = cloud
        .compute(
            &demo,
            Method::POST,
            &format!("/servers/{sid}/action"),
            Some("2.45"),
            Some(json!({"createImage": {"name": "vb-snap", "metadata": {"k": "v"}}})),
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    let img_id = r.body["image_id"].as_str().expect("image_id").to_string();
    let img = cloud.app.images.get(&img_id).expect("the image");
    assert_eq!(
        (
            img.status.as_str(),
            img.size,
            img.disk_format.as_deref(),
            img.container_format.as_deref()
        ),
        ("active", Some(0), Some("raw"), Some("bare"))
    );
    let prop = |k: &str| {
        img.properties
            .get(k)
            .and_then(Value::as_str)
            .map(String::from)
    };
    assert_eq!(prop("bdm_v2").as_deref(), Some("True"));
    assert_eq!(prop("root_device_name").as_deref(), Some("/dev/vda"));
    assert_eq!(prop("k").as_deref(), Some("v"));
    let mapping: Vec<Value> =
        serde_json::from_str(&prop("block_device_mapping").expect("mapping")).expect("JSON");
    assert_eq!(mapping.len(), 2, "{mapping:?}");
    let mut snaps = Vec::new();
    for (m, (vol, boot, device, dot, size)) in mapping.iter().zip([
        (&root, json!(0), "/dev/vda", true, 2),
        (&data, Value::Null, "/dev/vdb", false, 1),
    ]) {
        let snap = m["snapshot_id"].as_str().expect("snapshot_id").to_string();
        assert_eq!(
            (
                &m["source_type"],
                &m["destination_type"],
                &m["boot_index"],
                &m["device_name"],
                &m["delete_on_termination"],
                &m["volume_size"]
            ),
            (
                &json!("snapshot"),
                &json!("volume"),
                &boot,
                &json!(device),
                &json!(dot),
                &json!(size)
            ),
            "{m}"
        );
        let s = get(&cloud, &demo, &format!("/snapshots/{snap}")).await;
        assert_eq!(s.status, StatusCode::OK, "{}", s.text);
        assert_eq!(s.body["snapshot"]["volume_id"], vol.as_str());
        assert_eq!(s.body["snapshot"]["name"], "snapshot for vb-snap");
        assert_eq!(s.body["snapshot"]["status"], "available");
        snaps.push(snap);
    }
    let actions = cloud
        .get(&demo, &format!("/servers/{sid}/os-instance-actions"), None)
        .await;
    assert_eq!(actions.body["instanceActions"][0]["action"], "createImage");

    // Booting from the image: its mappings become the server's, each
    // volume made from its snapshot.
    let server = json!({"name": "from-image", "imageRef": img_id, "flavorRef": "1",
        "networks": "none"});
    let r = cloud
        .post(&demo, "/servers", Some("2.79"), json!({ "server": server }))
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    let sid2 = r.body["server"]["id"].as_str().expect("id").to_string();
    let s = cloud
        .wait_status(&demo, &sid2, &["ACTIVE", "ERROR"], Some("2.79"))
        .await;
    assert_eq!(s["status"], "ACTIVE", "{s}");
    // Booted from an image, though its root disk is a volume: the
    // server's image is that image (as Nova keeps it).
    assert_eq!(s["image"]["id"], img_id.as_str(), "{s}");
    let vols = s["os-extended-volumes:volumes_attached"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(vols.len(), 2, "{s}");
    for (want_snap, device) in snaps.iter().zip(["/dev/vda", "/dev/vdb"]) {
        let found = vols
            .iter()
            .map(|v| {
                cloud
                    .app
                    .volumes
                    .table
                    .get(v["id"].as_str().unwrap_or_default())
            })
            .find_map(|v| v.filter(|v| v.snapshot_id.as_deref() == Some(want_snap.as_str())))
            .expect("a volume from the snapshot");
        assert_eq!(found.status, "in-use");
        assert_eq!(found.attachments[0].server_id, sid2);
        assert_eq!(found.attachments[0].device.as_deref(), Some(device));
    }
    // The root volume goes with the server (the image's mapping says
    // so), the data volume stays.
    delete_server(&cloud, &demo, &sid2).await;
    let left: Vec<Value> = vols
        .iter()
        .filter(|v| v["delete_on_termination"] == false)
        .cloned()
        .collect();
    assert_eq!(left.len(), 1, "{vols:?}");
    let kept = left[0]["id"].as_str().expect("id");
    wait(&cloud, &demo, kept, Some("available")).await;
}
