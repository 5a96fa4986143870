//! Swapping a server's volume (`PUT os-volume_attachments/{old}` with
//! another `volumeId`): the service role's only, taken only while Cinder
//! migrates the old volume (Nova's 409 otherwise); the old volume ends
//! `available`, the new one `in-use` at the same device with the mapping's
//! tag and `delete_on_termination`, and a `swap_volume` action; Nova's
//! 400/404/409s change nothing, a hypervisor without the capability is
//! Nova's 501 up front, one that fails the copy leaves both volumes as
//! they were, and a restart ends a swap a stopped process left between
//! its steps.

use crate::common::{start, Resp, TestCloud, User};
use crate::volume_attachments::{attach, backdate, new_volume, server_id, volume_of};
use crate::volumes::{call, create, wait};
use reqwest::{Method, StatusCode};
use rova::compute::driver::DriverOpKind;
use serde_json::{json, Value};

async fn swap(c: &TestCloud, u: &User, server: &str, old: &str, new: &str, v: &str) -> Resp {
    c.compute(
        u,
        Method::PUT,
        &format!("/servers/{server}/os-volume_attachments/{old}"),
        Some(v),
        Some(json!({"volumeAttachment": {"volumeId": new}})),
    )
    .await
}

/// An admin's `os-reset_status` of volume `id` with `fields`.
async fn reset(c: &TestCloud, admin: &User, id: &str, fields: Value) {
    let body = json!({ "os-reset_status": fields });
    let path = format!("/volumes/{id}/action");
    let r = call(c, admin, Method::POST, &path, None, Some(body)).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
}

/// Marks volume `id` as Cinder does while it migrates it.
async fn migrating(c: &TestCloud, admin: &User, id: &str, status: &str) {
    reset(c, admin, id, json!({ "migration_status": status })).await;
}

/// Server action `body` on server `id` (202).
async fn act(c: &TestCloud, u: &User, id: &str, body: Value) {
    let r = c
        .post(u, &format!("/servers/{id}/action"), None, body)
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
}

/// Status and attached servers of volume `id`.
async fn state(c: &TestCloud, u: &User, id: &str) -> (String, Vec<String>) {
    let v = volume_of(c, u, id).await;
    let servers = v["attachments"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|x| x["server_id"].as_str().unwrap_or_default().to_string())
                .collect()
        })
        .unwrap_or_default();
    (
        v["status"].as_str().unwrap_or_default().to_string(),
        servers,
    )
}

/// The volumes after a swap of `old` for `new` on server `sid` at
/// `/dev/vdb`: old `available` with no attachment, new `in-use` there.
async fn swapped(c: &TestCloud, u: &User, sid: &str, old: &str, new: &str) {
    assert_eq!(state(c, u, old).await, ("available".to_string(), vec![]));
    assert_eq!(
        state(c, u, new).await,
        ("in-use".to_string(), vec![sid.to_string()])
    );
    let v = volume_of(c, u, new).await;
    assert_eq!(v["attachments"][0]["device"], "/dev/vdb");
}

async fn listing(c: &TestCloud, u: &User, server: &str) -> Value {
    let r = c
        .get(
            u,
            &format!("/servers/{server}/os-volume_attachments"),
            Some("2.79"),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    r.body["volumeAttachments"].clone()
}

async fn actions(c: &TestCloud, u: &User, server: &str) -> Vec<String> {
    let r = c
        .get(u, &format!("/servers/{server}/os-instance-actions"), None)
        .await;
    r.body["instanceActions"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|x| x["action"].as_str().unwrap_or_default().to_string())
                .collect()
        })
        .unwrap_or_default()
}

/// A cloud with demo's server `name`, volume `old` attached to it with
/// `attach_body`'s extra fields, and volume `new` beside it: the cloud,
/// demo, the admin (who has the service role), the server, old and new.
async fn setup(name: &str, attach_body: Value) -> (TestCloud, User, User, String, String, String) {
    let cloud = start().await;
    let demo = cloud.login("demo").await;
    let admin = cloud.login("admin").await;
    let sid = server_id(&cloud, &demo, name).await;
    let old = new_volume(&cloud, &demo, "old").await;
    let new = new_volume(&cloud, &demo, "new").await;
    let mut body = attach_body;
    body["volumeId"] = json!(old);
    let r = attach(&cloud, &demo, &sid, "2.79", body).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    (cloud, demo, admin, sid, old, new)
}

#[tokio::test]
async fn a_volume_is_swapped_as_nova_does() {
    let (cloud, demo, admin, sid, old, new) =
        setup("sw1", json!({"tag": "db", "delete_on_termination": true})).await;
    let before = listing(&cloud, &demo, &sid).await;

    // A member may not swap, at any microversion.
    for v in ["2.1", "2.84", "2.85"] {
        let r = swap(&cloud, &demo, &sid, &old, &new, v).await;
        assert_eq!(
            r.fault(403),
            "Policy doesn't allow os_compute_api:os-volumes-attachments:swap to be performed."
        );
    }
    // The service role only while Cinder migrates the old volume.
    let r = swap(&cloud, &admin, &sid, &old, &new, "2.85").await;
    assert_eq!(
        r.fault(409),
        format!("volume {old} is not migrating; this API should only be called by Cinder")
    );
    assert_eq!(listing(&cloud, &demo, &sid).await, before);
    assert_eq!(state(&cloud, &demo, &old).await.0, "in-use");
    assert_eq!(state(&cloud, &demo, &new).await.0, "available");

    migrating(&cloud, &admin, &old, "starting").await;
    let r = swap(&cloud, &admin, &sid, &old, &new, "2.85").await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    assert_eq!(r.text, "", "no body");
    swapped(&cloud, &demo, &sid, &old, &new).await;
    assert_eq!(
        listing(&cloud, &demo, &sid).await,
        json!([{"id": new, "serverId": sid, "volumeId": new, "device": "/dev/vdb",
                "tag": "db", "delete_on_termination": true}])
    );
    let shown = cloud
        .get(&demo, &format!("/servers/{sid}"), Some("2.79"))
        .await;
    assert_eq!(
        shown.body["server"]["os-extended-volumes:volumes_attached"],
        json!([{"id": new, "delete_on_termination": true}])
    );
    let acts = actions(&cloud, &demo, &sid).await;
    assert_eq!(acts.first().map(String::as_str), Some("swap_volume"));
    let req = cloud
        .get(
            &admin,
            &format!("/servers/{sid}/os-instance-actions"),
            Some("2.51"),
        )
        .await;
    let rid = req.body["instanceActions"][0]["request_id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let one = cloud
        .get(
            &admin,
            &format!("/servers/{sid}/os-instance-actions/{rid}"),
            Some("2.51"),
        )
        .await;
    let ev = &one.body["instanceAction"]["events"][0];
    assert_eq!(ev["event"], "compute_swap_volume", "{}", one.text);
    assert_eq!(ev["result"], "Success", "{}", one.text);

    // The swapped-in volume detaches like any other.
    let r = cloud
        .compute(
            &demo,
            Method::DELETE,
            &format!("/servers/{sid}/os-volume_attachments/{new}"),
            Some("2.79"),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    wait(&cloud, &demo, &new, Some("available")).await;
    // Before 2.85 any PUT is a swap, even to the volume it has.
    let r = attach(&cloud, &demo, &sid, "2.79", json!({"volumeId": new})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    migrating(&cloud, &admin, &new, "starting").await;
    let r = swap(&cloud, &admin, &sid, &new, &new, "2.1").await;
    assert_eq!(
        r.fault(400),
        "Invalid volume: New volume must be detached in order to swap."
    );
    assert_eq!(state(&cloud, &demo, &new).await.0, "in-use");
}

#[tokio::test]
async fn a_swap_nova_refuses_changes_nothing() {
    let (cloud, demo, admin, sid, old, new) = setup("sw2", json!({})).await;
    let other = server_id(&cloud, &demo, "sw3").await;
    let loose = new_volume(&cloud, &demo, "loose").await;
    let elsewhere = new_volume(&cloud, &demo, "elsewhere").await;
    let r = attach(
        &cloud,
        &demo,
        &other,
        "2.79",
        json!({"volumeId": elsewhere}),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let r = create(&cloud, &demo, json!({"size": 2, "name": "big"})).await;
    let big = r.body["volume"]["id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    wait(&cloud, &demo, &big, Some("available")).await;
    for v in [&old, &loose, &big, &elsewhere] {
        migrating(&cloud, &admin, v, "starting").await;
    }
    let before = listing(&cloud, &demo, &sid).await;
    let missing = "00000000-0000-4000-8000-000000000000";

    let unmapped = |v: &str| format!("No volume Block Device Mapping with id {v}.");
    let cases: Vec<(&str, &str, &str, u16, String)> = vec![
        (
            missing,
            &new,
            "2.84",
            404,
            format!("Volume {missing} could not be found."),
        ),
        (missing, &new, "2.85", 404, unmapped(missing)),
        (
            &old,
            missing,
            "2.85",
            400,
            format!("Volume {missing} could not be found."),
        ),
        (
            &loose,
            &new,
            "2.84",
            400,
            "Invalid volume: Old volume is attached to a different instance.".into(),
        ),
        (&loose, &new, "2.85", 404, unmapped(&loose)),
        (
            &old,
            &elsewhere,
            "2.85",
            400,
            "Invalid volume: New volume must be detached in order to swap.".into(),
        ),
    ];
    for (from, to, version, code, message) in cases {
        let r = swap(&cloud, &admin, &sid, from, to, version).await;
        assert_eq!(r.fault(code), message, "{from} -> {to} at {version}");
    }
    // A smaller volume cannot take a larger one's place.
    let r = attach(&cloud, &demo, &other, "2.79", json!({"volumeId": big})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let r = swap(&cloud, &admin, &other, &big, &new, "2.85").await;
    assert_eq!(
        r.fault(400),
        "Invalid volume: New volume must be the same size or larger."
    );
    // A volume Cinder holds otherwise is not available to take it.
    reset(&cloud, &admin, &new, json!({"status": "error"})).await;
    let r = swap(&cloud, &admin, &sid, &old, &new, "2.85").await;
    assert_eq!(
        r.fault(400),
        format!(
            "Invalid volume: Volume {new} status must be available or downloading to reserve, \
             but the current status is error."
        )
    );
    assert_eq!(state(&cloud, &demo, &old).await.0, "in-use", "rolled back");
    reset(&cloud, &admin, &new, json!({"status": "available"})).await;

    // A server in a state Nova does not swap in, or locked for others.
    act(&cloud, &demo, &sid, json!({"lock": null})).await;
    let r = swap(&cloud, &admin, &sid, &old, &new, "2.85").await;
    assert_eq!(
        r.status,
        StatusCode::ACCEPTED,
        "an admin passes a lock: {}",
        r.text
    );
    let r = swap(&cloud, &admin, &sid, &new, &old, "2.85").await;
    assert_eq!(
        r.fault(409),
        format!("volume {new} is not migrating; this API should only be called by Cinder")
    );
    act(&cloud, &demo, &sid, json!({"unlock": null})).await;
    cloud.stop(&demo, &sid).await;
    migrating(&cloud, &admin, &new, "starting").await;
    migrating(&cloud, &admin, &old, "none").await;
    let r = swap(&cloud, &admin, &sid, &new, &old, "2.85").await;
    assert_eq!(
        r.fault(409),
        format!("Cannot 'swap_volume' instance {sid} while it is in vm_state stopped")
    );
    // Cinder's own migration needs its completion, which is not built.
    // From 2.85 the mapping's own fields change first, as Nova's do, even
    // when the swap is then refused.
    migrating(&cloud, &admin, &new, "migrating").await;
    let body = json!({"volumeAttachment": {"volumeId": old, "delete_on_termination": true}});
    let r = cloud
        .compute(
            &admin,
            Method::PUT,
            &format!("/servers/{sid}/os-volume_attachments/{new}"),
            Some("2.85"),
            Some(body),
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_IMPLEMENTED, "{}", r.text);
    assert_eq!(
        listing(&cloud, &demo, &sid).await[0]["delete_on_termination"],
        true
    );

    assert_eq!(state(&cloud, &demo, &new).await.0, "in-use");
    assert_eq!(state(&cloud, &demo, &old).await.0, "available");
    assert_eq!(state(&cloud, &demo, &loose).await.0, "available");
    assert_eq!(
        state(&cloud, &demo, &elsewhere).await,
        ("in-use".to_string(), vec![other.clone()])
    );
    let after = listing(&cloud, &demo, &sid).await;
    assert_eq!(after[0]["volumeId"], new.as_str());
    assert_eq!(after[0]["device"], before[0]["device"]);
}

#[tokio::test]
async fn a_hypervisor_that_fails_the_copy_leaves_both_volumes_as_they_were() {
    let (cloud, demo, admin, sid, old, new) = setup("sw4", json!({})).await;
    migrating(&cloud, &admin, &old, "starting").await;
    let before = listing(&cloud, &demo, &sid).await;
    // A hypervisor that cannot swap is refused up front (Nova's 501).
    let fake = cloud.app.compute.fake.clone().expect("fake driver");
    fake.set_supported(DriverOpKind::SwapVolume, false);
    let r = swap(&cloud, &admin, &sid, &old, &new, "2.85").await;
    assert_eq!(
        r.fault(501),
        "The requested functionality is not supported."
    );
    assert_eq!(state(&cloud, &demo, &old).await.0, "in-use");
    assert_eq!(state(&cloud, &demo, &new).await.0, "available");
    fake.set_supported(DriverOpKind::SwapVolume, true);
    let r = cloud
        .http
        .post(format!("{}/rova/v1/sim/faults", cloud.base))
        .header("X-Auth-Token", &admin.token)
        .json(&json!({"operation": "swap_volume", "message": "mirror failed"}))
        .send()
        .await
        .expect("sim request");
    assert_eq!(r.status().as_u16(), 201);
    let r = swap(&cloud, &admin, &sid, &old, &new, "2.85").await;
    assert_eq!(r.status, StatusCode::INTERNAL_SERVER_ERROR, "{}", r.text);
    assert_eq!(r.body["computeFault"]["code"], 500, "{}", r.text);
    assert_eq!(
        state(&cloud, &demo, &old).await,
        ("in-use".to_string(), vec![sid.clone()])
    );
    assert_eq!(
        state(&cloud, &demo, &new).await,
        ("available".to_string(), vec![])
    );
    assert_eq!(listing(&cloud, &demo, &sid).await, before);
    assert!(!actions(&cloud, &demo, &sid)
        .await
        .contains(&"swap_volume".to_string()));
    // The fault was used up: the next swap goes through.
    let r = swap(&cloud, &admin, &sid, &old, &new, "2.85").await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    assert_eq!(state(&cloud, &demo, &new).await.0, "in-use");
}

/// A process that died after the server's mapping named the new volume
/// but before the volumes' last steps: the next start completes the new
/// volume's attachment (`in-use`) and lets the old one go (`available`).
#[tokio::test]
async fn a_restart_ends_a_swap_cut_short_by_the_mapping() {
    let (cloud, _, _, sid, old, new) = setup("sw5", json!({})).await;
    let now = cloud.app.clock.now();
    let volumes = &cloud.app.volumes;
    volumes.begin_detach(&old, now).await.expect("detaching");
    let att = volumes.reserve(&new, &sid, now).await.expect("reserved");
    let (old_id, new_id) = (old.clone(), new.clone());
    cloud
        .app
        .compute
        .update_instance(&sid, now, move |i| {
            for b in i.block_device_mapping.iter_mut() {
                if b.uuid.as_deref() == Some(old_id.as_str()) {
                    b.uuid = Some(new_id.clone());
                    b.attachment_id = Some(att.clone());
                }
            }
            Ok(())
        })
        .await
        .expect("mapping moved");
    backdate(&cloud, &[&old, &new]).await;
    let cloud = cloud.restart().await;
    let demo = cloud.login("demo").await;
    swapped(&cloud, &demo, &sid, &old, &new).await;
}
