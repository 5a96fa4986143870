//! Server actions over HTTP as a polling client sees them: each action's
//! task-state sequence and final state, its instance-action record, the
//! lock rules, driver faults, and the periodic tasks on the virtual clock.

use crate::common::{self, TestCloud, User};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

const V: Option<&str> = Some("2.90");

/// Posts an action and polls until the server is idle again, returning
/// every distinct (status, task_state) seen after the request, in order.
async fn act_and_watch(
    c: &TestCloud,
    u: &User,
    id: &str,
    body: Value,
    expect: u16,
) -> Vec<(String, Option<String>)> {
    let r = c
        .post(u, &format!("/servers/{id}/action"), V, body.clone())
        .await;
    assert_eq!(r.status.as_u16(), expect, "{body}: {}", r.text);
    let mut seen: Vec<(String, Option<String>)> = Vec::new();
    for _ in 0..2000 {
        let s = c.get(u, &format!("/servers/{id}"), V).await;
        let srv = &s.body["server"];
        let st = srv["status"].as_str().unwrap_or("").to_string();
        let task = srv["OS-EXT-STS:task_state"].as_str().map(str::to_string);
        let pair = (st, task.clone());
        if seen.last() != Some(&pair) {
            seen.push(pair);
        }
        if task.is_none() && seen.len() > 1 {
            break;
        }
        if task.is_none()
            && seen.len() == 1
            && !matches!(
                body.as_object()
                    .and_then(|o| o.keys().next())
                    .map(String::as_str),
                Some(
                    "os-stop"
                        | "os-start"
                        | "pause"
                        | "unpause"
                        | "suspend"
                        | "resume"
                        | "reboot"
                        | "rebuild"
                        | "resize"
                        | "revertResize"
                        | "shelve"
                        | "unshelve"
                        | "rescue"
                        | "unrescue"
                        | "changePassword"
                        | "createImage"
                        | "createBackup"
                        | "shelveOffload"
                )
            )
        {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(3)).await;
    }
    seen
}

fn statuses(seen: &[(String, Option<String>)]) -> Vec<&str> {
    let mut out: Vec<&str> = Vec::new();
    for (s, _) in seen {
        if out.last() != Some(&s.as_str()) {
            out.push(s);
        }
    }
    out
}

fn tasks(seen: &[(String, Option<String>)]) -> Vec<&str> {
    seen.iter().filter_map(|(_, t)| t.as_deref()).collect()
}

async fn slow_cloud() -> (TestCloud, User, String) {
    let c = common::start_with(|cfg| {
        cfg.sim_latency_ms = 40;
        cfg.shelved_offload_time = -1;
    })
    .await;
    let u = c.login("demo").await;
    let s = c.boot(&u, "act", V, json!({})).await;
    assert_eq!(s["status"], "ACTIVE");
    let id = s["id"].as_str().expect("id").to_string();
    (c, u, id)
}

#[tokio::test(flavor = "multi_thread")]
async fn power_actions_walk_novas_states() {
    let (c, u, id) = slow_cloud().await;
    let seen = act_and_watch(&c, &u, &id, json!({"os-stop": null}), 202).await;
    assert!(tasks(&seen).contains(&"powering-off"), "{seen:?}");
    assert_eq!(statuses(&seen).last(), Some(&"SHUTOFF"));
    let s = c.get(&u, &format!("/servers/{id}"), V).await;
    assert_eq!(s.body["server"]["OS-EXT-STS:power_state"], 4);

    let seen = act_and_watch(&c, &u, &id, json!({"os-start": null}), 202).await;
    assert!(tasks(&seen).contains(&"powering-on"));
    assert_eq!(statuses(&seen).last(), Some(&"ACTIVE"));

    let seen = act_and_watch(&c, &u, &id, json!({"reboot": {"type": "SOFT"}}), 202).await;
    assert!(statuses(&seen).contains(&"REBOOT"), "{seen:?}");
    assert_eq!(
        tasks(&seen),
        vec!["rebooting", "reboot_pending", "reboot_started"]
    );
    let seen = act_and_watch(&c, &u, &id, json!({"reboot": {"type": "HARD"}}), 202).await;
    assert!(statuses(&seen).contains(&"HARD_REBOOT"));
    assert_eq!(
        tasks(&seen),
        vec![
            "rebooting_hard",
            "reboot_pending_hard",
            "reboot_started_hard"
        ]
    );

    let seen = act_and_watch(&c, &u, &id, json!({"pause": null}), 202).await;
    assert_eq!(statuses(&seen).last(), Some(&"PAUSED"));
    // Pausing a paused server is Nova's 409 with its message.
    let r = c
        .post(
            &u,
            &format!("/servers/{id}/action"),
            V,
            json!({"pause": null}),
        )
        .await;
    assert_eq!(
        r.fault(409),
        format!("Cannot 'pause' instance {id} while it is in vm_state paused")
    );
    let seen = act_and_watch(&c, &u, &id, json!({"unpause": null}), 202).await;
    assert_eq!(statuses(&seen).last(), Some(&"ACTIVE"));

    let seen = act_and_watch(&c, &u, &id, json!({"suspend": null}), 202).await;
    assert_eq!(statuses(&seen).last(), Some(&"SUSPENDED"));
    let seen = act_and_watch(&c, &u, &id, json!({"resume": null}), 202).await;
    assert_eq!(statuses(&seen).last(), Some(&"ACTIVE"));

    // Every action left a record, newest first.
    let r = c
        .get(&u, &format!("/servers/{id}/os-instance-actions"), V)
        .await;
    let names: Vec<&str> = r.body["instanceActions"]
        .as_array()
        .expect("actions")
        .iter()
        .filter_map(|a| a["action"].as_str())
        .collect();
    assert_eq!(
        names,
        vec![
            "resume", "suspend", "unpause", "pause", "reboot", "reboot", "start", "stop", "create"
        ]
    );
    let req = r.body["instanceActions"][0]["request_id"]
        .as_str()
        .expect("req")
        .to_string();
    // The event finishes after the state write that shows ACTIVE, as
    // Nova's wrap_instance_event finishes it once the method returned.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let ev = loop {
        let r = c
            .get(&u, &format!("/servers/{id}/os-instance-actions/{req}"), V)
            .await;
        let ev = r.body["instanceAction"]["events"][0].clone();
        if !ev["result"].is_null() || std::time::Instant::now() >= deadline {
            break ev;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    assert_eq!(ev["event"], "compute_resume_instance");
    assert_eq!(ev["result"], "Success");
}

#[tokio::test(flavor = "multi_thread")]
async fn rebuild_resize_and_revert() {
    let (c, u, id) = slow_cloud().await;
    let alt_image = c
        .app
        .images
        .filter(|_| true)
        .iter()
        .find(|i| i.name.as_deref() == Some(rova::bootstrap::IMAGE_ALT_NAME))
        .map(|i| i.id.clone())
        .expect("alt image");
    let r = c
        .post(
            &u,
            &format!("/servers/{id}/action"),
            V,
            json!({"rebuild": {"imageRef": alt_image, "name": "rebuilt", "metadata": {"k": "v"}}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    assert_eq!(r.body["server"]["name"], "rebuilt");
    assert!(r.body["server"]["adminPass"].is_string());
    // Nova's rebuild answers with the server's URL as Location.
    assert_eq!(
        r.header("location"),
        Some(format!("{}/compute/v2.1/servers/{id}", c.base))
    );
    let s = c.wait_status(&u, &id, &["ACTIVE"], V).await;
    assert_eq!(s["image"]["id"], json!(alt_image));
    assert_eq!(s["metadata"], json!({"k": "v"}));

    // Same flavor is refused; another one goes to VERIFY_RESIZE.
    let r = c
        .post(
            &u,
            &format!("/servers/{id}/action"),
            V,
            json!({"resize": {"flavorRef": "1"}}),
        )
        .await;
    assert_eq!(r.fault(400), "When resizing, instances must change flavor!");
    let seen = act_and_watch(&c, &u, &id, json!({"resize": {"flavorRef": "2"}}), 202).await;
    assert_eq!(
        tasks(&seen),
        vec![
            "resize_prep",
            "resize_migrating",
            "resize_migrated",
            "resize_finish"
        ],
        "{seen:?}"
    );
    assert_eq!(statuses(&seen).last(), Some(&"VERIFY_RESIZE"));
    let s = c.get(&u, &format!("/servers/{id}"), Some("2.47")).await;
    assert_eq!(s.body["server"]["flavor"]["original_name"], "m1.small");

    let seen = act_and_watch(&c, &u, &id, json!({"revertResize": null}), 202).await;
    assert!(statuses(&seen).contains(&"REVERT_RESIZE"), "{seen:?}");
    assert_eq!(statuses(&seen).last(), Some(&"ACTIVE"));
    let s = c.get(&u, &format!("/servers/{id}"), Some("2.47")).await;
    assert_eq!(s.body["server"]["flavor"]["original_name"], "m1.tiny");

    act_and_watch(&c, &u, &id, json!({"resize": {"flavorRef": "2"}}), 202).await;
    let r = c
        .post(
            &u,
            &format!("/servers/{id}/action"),
            V,
            json!({"confirmResize": null}),
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let s = c.wait_status(&u, &id, &["ACTIVE"], Some("2.47")).await;
    assert_eq!(s["flavor"]["original_name"], "m1.small");
    // No resize to confirm any more.
    let r = c
        .post(
            &u,
            &format!("/servers/{id}/action"),
            V,
            json!({"confirmResize": null}),
        )
        .await;
    assert_eq!(r.status.as_u16(), 409);
}

#[tokio::test(flavor = "multi_thread")]
async fn shelve_rescue_password_snapshot_backup() {
    let (c, u, id) = slow_cloud().await;
    let seen = act_and_watch(&c, &u, &id, json!({"shelve": null}), 202).await;
    assert_eq!(
        tasks(&seen),
        vec![
            "shelving",
            "shelving_image_pending_upload",
            "shelving_image_uploading"
        ]
    );
    assert_eq!(statuses(&seen).last(), Some(&"SHELVED"));
    let admin = c.login("admin").await;
    // shelveOffload is admin-only by default.
    let r = c
        .post(
            &u,
            &format!("/servers/{id}/action"),
            V,
            json!({"shelveOffload": null}),
        )
        .await;
    assert_eq!(r.status.as_u16(), 403);
    act_and_watch(&c, &admin, &id, json!({"shelveOffload": null}), 202).await;
    let s = c.wait_status(&u, &id, &["SHELVED_OFFLOADED"], V).await;
    assert_eq!(s["OS-EXT-STS:power_state"], 4);
    let seen = act_and_watch(&c, &u, &id, json!({"unshelve": null}), 202).await;
    assert!(tasks(&seen).contains(&"unshelving"));
    assert_eq!(statuses(&seen).last(), Some(&"ACTIVE"));

    let r = c
        .post(
            &u,
            &format!("/servers/{id}/action"),
            V,
            json!({"rescue": {"adminPass": "s3cret"}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body, json!({"adminPass": "s3cret"}));
    c.wait_status(&u, &id, &["RESCUE"], V).await;
    act_and_watch(&c, &u, &id, json!({"unrescue": null}), 202).await;
    c.wait_status(&u, &id, &["ACTIVE"], V).await;

    let seen = act_and_watch(
        &c,
        &u,
        &id,
        json!({"changePassword": {"adminPass": "n3w"}}),
        202,
    )
    .await;
    assert!(statuses(&seen).contains(&"PASSWORD"), "{seen:?}");

    // Snapshot: image_id at 2.45+, task states, and an active image.
    let r = c
        .post(
            &u,
            &format!("/servers/{id}/action"),
            V,
            json!({"createImage": {"name": "snap", "metadata": {"a": "b"}}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    let image_id = r.body["image_id"].as_str().expect("image_id").to_string();
    // From 2.45 the image id is in the body, not in a Location header.
    assert!(r.header("location").is_none());
    c.wait_status(&u, &id, &["ACTIVE"], V).await;
    for _ in 0..500 {
        if c.app
            .images
            .get(&image_id)
            .map(|i| i.status == "active")
            .unwrap_or(false)
        {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let img = c.app.images.get(&image_id).expect("snapshot image");
    assert_eq!(img.status, "active");
    assert_eq!(img.properties.get("image_type"), Some(&json!("snapshot")));
    assert_eq!(img.properties.get("instance_uuid"), Some(&json!(id)));
    // Below 2.45 the image comes back in a Location header.
    let r = c
        .post(
            &u,
            &format!("/servers/{id}/action"),
            Some("2.44"),
            json!({"createImage": {"name": "snap2"}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
    assert!(r.header("location").expect("location").contains("/images/"));
    c.wait_status(&u, &id, &["ACTIVE"], V).await;

    // Backups rotate: with rotation 2, three backups leave two.
    for n in 0..3 {
        let mut ok = false;
        for _ in 0..500 {
            let r = c
                .post(&u, &format!("/servers/{id}/action"), V, json!({"createBackup": {"name": format!("b{n}"), "backup_type": "daily", "rotation": 2}}))
                .await;
            if r.status == StatusCode::ACCEPTED {
                ok = true;
                break;
            }
            assert_eq!(r.status.as_u16(), 409, "{}", r.text);
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        assert!(ok);
        c.wait_status(&u, &id, &["ACTIVE"], V).await;
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    let backups = c.app.images.filter(|i| {
        i.properties.get("image_type") == Some(&json!("backup"))
            && i.properties.get("instance_uuid") == Some(&json!(id))
    });
    assert_eq!(backups.len(), 2);
}

/// Tempest's `test_delete_saving_image`: an image deleted while the
/// snapshot still writes it stays deleted once the snapshot ends (the end
/// of the upload may not bring the record back). The deletes land at
/// stepped delays so that some fall while the snapshot's bytes are being
/// written.
#[tokio::test(flavor = "multi_thread")]
async fn a_snapshot_image_deleted_while_saving_stays_deleted() {
    let c = common::start().await;
    let u = c.login("demo").await;
    let s = c.boot(&u, "snap", V, json!({})).await;
    let id = s["id"].as_str().expect("id").to_string();
    // The image proxy ends at 2.35.
    let img_v = Some("2.35");
    for step in 0..40u64 {
        let r = c
            .post(
                &u,
                &format!("/servers/{id}/action"),
                V,
                json!({"createImage": {"name": format!("doomed-{step}")}}),
            )
            .await;
        assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
        let image_id = r.body["image_id"].as_str().expect("image_id").to_string();
        let req = r.header("x-openstack-request-id").expect("request id");
        tokio::time::sleep(std::time::Duration::from_micros(step * 250)).await;
        let path = format!("/images/{image_id}");
        let d = c.compute(&u, Method::DELETE, &path, img_v, None).await;
        assert_eq!(d.status, StatusCode::NO_CONTENT, "{}", d.text);
        // The snapshot's event finishes after the image was settled.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        loop {
            let r = c
                .get(&u, &format!("/servers/{id}/os-instance-actions/{req}"), V)
                .await;
            if !r.body["instanceAction"]["events"][0]["result"].is_null() {
                break;
            }
            assert!(std::time::Instant::now() < deadline, "{}", r.text);
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        let img = c.get(&u, &path, img_v).await;
        assert_eq!(
            img.status,
            StatusCode::NOT_FOUND,
            "step {step}: {}",
            img.text
        );
        assert!(c
            .app
            .images
            .get(&image_id)
            .is_none_or(|i| i.status == "deleted"));
        assert!(!c.app.images.file_path(&image_id).exists(), "step {step}");
        c.wait_status(&u, &id, &["ACTIVE"], V).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn lock_rules() {
    let c = common::start().await;
    let u = c.login("demo").await;
    let admin = c.login("admin").await;
    let reader = c.login("demo_reader").await;
    let s = c.boot(&u, "locked", V, json!({})).await;
    let id = s["id"].as_str().expect("id").to_string();
    let lock = |reason: Option<&str>| match reason {
        Some(r) => json!({"lock": {"locked_reason": r}}),
        None => json!({"lock": null}),
    };
    // A reader may not lock.
    let r = c
        .post(
            &reader,
            &format!("/servers/{id}/action"),
            Some("2.73"),
            lock(None),
        )
        .await;
    assert_eq!(r.status.as_u16(), 403);
    // Owner locks with a reason (2.73).
    let r = c
        .post(
            &u,
            &format!("/servers/{id}/action"),
            Some("2.73"),
            lock(Some("maintenance")),
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
    let s = c.get(&u, &format!("/servers/{id}"), Some("2.73")).await;
    assert_eq!(s.body["server"]["locked"], true);
    assert_eq!(s.body["server"]["locked_reason"], "maintenance");
    // The owner's actions are refused while locked...
    for body in [
        json!({"pause": null}),
        json!({"os-stop": null}),
        json!({"reboot": {"type": "HARD"}}),
    ] {
        let r = c.post(&u, &format!("/servers/{id}/action"), V, body).await;
        assert_eq!(r.fault(409), format!("Instance {id} is locked"));
    }
    let r = c
        .compute(&u, Method::DELETE, &format!("/servers/{id}"), V, None)
        .await;
    assert_eq!(r.fault(409), format!("Instance {id} is locked"));
    // ...but not the ones Nova does not lock-check.
    let r = c
        .compute(
            &u,
            Method::PUT,
            &format!("/servers/{id}"),
            V,
            Some(json!({"server": {"name": "renamed"}})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    // Re-locking by the owner changes nothing (reason kept).
    c.post(
        &u,
        &format!("/servers/{id}/action"),
        Some("2.73"),
        lock(Some("other")),
    )
    .await;
    let s = c.get(&u, &format!("/servers/{id}"), Some("2.73")).await;
    assert_eq!(s.body["server"]["locked_reason"], "maintenance");
    // The admin may act on it anyway.
    let r = c
        .post(
            &admin,
            &format!("/servers/{id}/action"),
            V,
            json!({"pause": null}),
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
    c.wait_status(&u, &id, &["PAUSED"], V).await;
    // An admin lock from another project replaces the owner's lock...
    let r = c
        .post(
            &admin,
            &format!("/servers/{id}/action"),
            Some("2.73"),
            lock(Some("admin says")),
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
    // ...and the owner may not lift it.
    let r = c
        .post(
            &u,
            &format!("/servers/{id}/action"),
            V,
            json!({"unlock": null}),
        )
        .await;
    assert_eq!(r.status.as_u16(), 403);
    let r = c
        .post(
            &admin,
            &format!("/servers/{id}/action"),
            V,
            json!({"unlock": null}),
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
    let r = c
        .post(
            &u,
            &format!("/servers/{id}/action"),
            V,
            json!({"unpause": null}),
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
    // locked_reason outside 2.73 is refused.
    let r = c
        .post(
            &u,
            &format!("/servers/{id}/action"),
            Some("2.73"),
            json!({"lock": {"bogus": 1}}),
        )
        .await;
    assert_eq!(r.status.as_u16(), 400);
}

#[tokio::test(flavor = "multi_thread")]
async fn injected_faults_and_build_failure() {
    let c = common::start().await;
    let u = c.login("demo").await;
    let admin = c.login("admin").await;
    let post_sim = |path: &str, body: Value| {
        let req = c
            .http
            .post(format!("{}/rova/v1/sim/{path}", c.base))
            .header("X-Auth-Token", &admin.token)
            .json(&body);
        async move { req.send().await.expect("sim request").status() }
    };
    // Only admins drive the simulator.
    let r = c
        .http
        .post(format!("{}/rova/v1/sim/faults", c.base))
        .header("X-Auth-Token", &u.token)
        .json(&json!({"operation": "spawn"}))
        .send()
        .await
        .expect("req");
    assert_eq!(r.status().as_u16(), 403);
    assert_eq!(
        post_sim(
            "faults",
            json!({"operation": "spawn", "message": "no disk"})
        )
        .await
        .as_u16(),
        201
    );
    let s = c.boot(&u, "doomed", V, json!({})).await;
    assert_eq!(s["status"], "ERROR");
    assert_eq!(s["fault"]["message"], "no disk");
    assert_eq!(s["fault"]["code"], 500);
    assert!(
        s["fault"].get("details").is_none(),
        "details are for admins: {s}"
    );
    let id = s["id"].as_str().expect("id");
    let a = c.get(&admin, &format!("/servers/{id}"), V).await;
    assert!(a.body["server"]["fault"]["details"].is_string());
    // A failed action keeps the vm_state and records an Error event.
    let ok = c.boot(&u, "fine", V, json!({})).await;
    let oid = ok["id"].as_str().expect("id").to_string();
    post_sim(
        "faults",
        json!({"operation": "pause", "message": "hypervisor says no"}),
    )
    .await;
    let r = c
        .post(
            &u,
            &format!("/servers/{oid}/action"),
            V,
            json!({"pause": null}),
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
    let mut last = Value::Null;
    for _ in 0..500 {
        let s = c.get(&u, &format!("/servers/{oid}"), V).await;
        last = s.body["server"].clone();
        if last["OS-EXT-STS:task_state"].is_null() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    assert_eq!(last["status"], "ACTIVE");
    let acts = c
        .get(&u, &format!("/servers/{oid}/os-instance-actions"), V)
        .await;
    assert_eq!(acts.body["instanceActions"][0]["action"], "pause");
    for _ in 0..100 {
        let acts = c
            .get(&u, &format!("/servers/{oid}/os-instance-actions"), V)
            .await;
        if acts.body["instanceActions"][0]["message"] == "Error" {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    panic!("the pause action was not marked Error");
}

async fn advance(c: &TestCloud, admin: &User, secs: i64) {
    let r = c
        .http
        .post(format!("{}/rova/v1/sim/clock", c.base))
        .header("X-Auth-Token", &admin.token)
        .json(&json!({"advance_seconds": secs}))
        .send()
        .await
        .expect("clock");
    assert_eq!(r.status(), StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread")]
async fn reclaim_after_a_virtual_day() {
    let c = common::start_with(|cfg| cfg.reclaim_instance_interval = 86400).await;
    let u = c.login("demo").await;
    let admin = c.login("admin").await;
    let s = c.boot(&u, "soft", V, json!({})).await;
    let id = s["id"].as_str().expect("id").to_string();
    let r = c
        .compute(&u, Method::DELETE, &format!("/servers/{id}"), V, None)
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let s = c.get(&u, &format!("/servers/{id}"), V).await;
    assert_eq!(s.body["server"]["status"], "SOFT_DELETED");
    // restore brings it back; delete again.
    let r = c
        .post(
            &u,
            &format!("/servers/{id}/action"),
            V,
            json!({"restore": null}),
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
    c.wait_status(&u, &id, &["ACTIVE"], V).await;
    c.compute(&u, Method::DELETE, &format!("/servers/{id}"), V, None)
        .await;
    // Not yet due after 23 hours...
    advance(&c, &admin, 23 * 3600).await;
    let s = c.get(&u, &format!("/servers/{id}"), V).await;
    assert_eq!(s.body["server"]["status"], "SOFT_DELETED", "{}", s.text);
    // ...reclaimed after 24.
    advance(&c, &admin, 3600).await;
    c.wait_status(&u, &id, &["404"], V).await;
    let l = c
        .get(&u, "/servers/detail?changes-since=2000-01-01T00:00:00Z", V)
        .await;
    let st: Vec<&str> = l.body["servers"]
        .as_array()
        .expect("list")
        .iter()
        .filter_map(|s| s["status"].as_str())
        .collect();
    assert_eq!(st, vec!["DELETED"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn shelved_offload_timers() {
    // N > 0: offloaded once N seconds pass on the virtual clock.
    let c = common::start_with(|cfg| cfg.shelved_offload_time = 3600).await;
    let u = c.login("demo").await;
    let admin = c.login("admin").await;
    let id = c.boot(&u, "s", V, json!({})).await["id"]
        .as_str()
        .expect("id")
        .to_string();
    c.post(
        &u,
        &format!("/servers/{id}/action"),
        V,
        json!({"shelve": null}),
    )
    .await;
    c.wait_status(&u, &id, &["SHELVED"], V).await;
    advance(&c, &admin, 1800).await;
    assert_eq!(
        c.get(&u, &format!("/servers/{id}"), V).await.body["server"]["status"],
        "SHELVED"
    );
    advance(&c, &admin, 1800).await;
    c.wait_status(&u, &id, &["SHELVED_OFFLOADED"], V).await;

    // 0: offloaded at once.
    let c0 = common::start_with(|cfg| cfg.shelved_offload_time = 0).await;
    let u0 = c0.login("demo").await;
    let id0 = c0.boot(&u0, "s", V, json!({})).await["id"]
        .as_str()
        .expect("id")
        .to_string();
    c0.post(
        &u0,
        &format!("/servers/{id0}/action"),
        V,
        json!({"shelve": null}),
    )
    .await;
    c0.wait_status(&u0, &id0, &["SHELVED_OFFLOADED"], V).await;

    // -1: never.
    let cn = common::start_with(|cfg| cfg.shelved_offload_time = -1).await;
    let un = cn.login("demo").await;
    let an = cn.login("admin").await;
    let idn = cn.boot(&un, "s", V, json!({})).await["id"]
        .as_str()
        .expect("id")
        .to_string();
    cn.post(
        &un,
        &format!("/servers/{idn}/action"),
        V,
        json!({"shelve": null}),
    )
    .await;
    cn.wait_status(&un, &idn, &["SHELVED"], V).await;
    advance(&cn, &an, 10 * 365 * 86400).await;
    assert_eq!(
        cn.get(&un, &format!("/servers/{idn}"), V).await.body["server"]["status"],
        "SHELVED"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn resize_auto_confirm() {
    let c = common::start_with(|cfg| cfg.resize_confirm_window = 600).await;
    let u = c.login("demo").await;
    let admin = c.login("admin").await;
    let id = c.boot(&u, "r", V, json!({})).await["id"]
        .as_str()
        .expect("id")
        .to_string();
    c.post(
        &u,
        &format!("/servers/{id}/action"),
        V,
        json!({"resize": {"flavorRef": "2"}}),
    )
    .await;
    c.wait_status(&u, &id, &["VERIFY_RESIZE"], V).await;
    advance(&c, &admin, 599).await;
    assert_eq!(
        c.get(&u, &format!("/servers/{id}"), V).await.body["server"]["status"],
        "VERIFY_RESIZE"
    );
    advance(&c, &admin, 1).await;
    let s = c.wait_status(&u, &id, &["ACTIVE"], Some("2.47")).await;
    assert_eq!(s["flavor"]["original_name"], "m1.small");
}

/// An action the hypervisor driver declares it cannot do is refused at the
/// API with Nova's 501 before anything changes (no task state, no instance
/// action); the state check still comes first (409), as in Nova.
#[tokio::test]
async fn an_action_the_driver_cannot_do_is_501_up_front_and_changes_nothing() {
    use rova::compute::driver::DriverOpKind;
    let c = common::start().await;
    let u = c.login("demo").await;
    let s = c.boot(&u, "nocap", V, json!({})).await;
    let id = s["id"].as_str().expect("id").to_string();
    let fake = c.app.compute.fake.clone().expect("fake driver");
    fake.set_supported(DriverOpKind::Pause, false);
    fake.set_supported(DriverOpKind::ChangePassword, false);
    let actions_before = c
        .get(&u, &format!("/servers/{id}/os-instance-actions"), V)
        .await
        .body["instanceActions"]
        .as_array()
        .map(Vec::len);

    let r = c
        .post(
            &u,
            &format!("/servers/{id}/action"),
            V,
            json!({"pause": null}),
        )
        .await;
    assert_eq!(
        r.fault(501),
        "The requested functionality is not supported."
    );
    assert!(r.body.get("notImplemented").is_some(), "{}", r.text);
    let r = c
        .post(
            &u,
            &format!("/servers/{id}/action"),
            V,
            json!({"changePassword": {"adminPass": "n3w"}}),
        )
        .await;
    assert_eq!(r.fault(501), "Unable to set password on instance");

    let srv = c.get(&u, &format!("/servers/{id}"), V).await.body["server"].clone();
    assert_eq!(srv["status"], "ACTIVE", "{srv}");
    assert_eq!(srv["OS-EXT-STS:task_state"], Value::Null, "{srv}");
    let actions_after = c
        .get(&u, &format!("/servers/{id}/os-instance-actions"), V)
        .await
        .body["instanceActions"]
        .as_array()
        .map(Vec::len);
    assert_eq!(actions_before, actions_after, "no instance action recorded");

    // Supported actions still run; a wrong state is still 409 first.
    act_and_watch(&c, &u, &id, json!({"suspend": null}), 202).await;
    c.wait_status(&u, &id, &["SUSPENDED"], V).await;
    let r = c
        .post(
            &u,
            &format!("/servers/{id}/action"),
            V,
            json!({"pause": null}),
        )
        .await;
    r.fault(409);
    fake.set_supported(DriverOpKind::Pause, true);
    act_and_watch(&c, &u, &id, json!({"resume": null}), 202).await;
    act_and_watch(&c, &u, &id, json!({"pause": null}), 202).await;
    c.wait_status(&u, &id, &["PAUSED"], V).await;
}
