//! Cinder's attachments API (3.27+) and the legacy attach actions, as
//! other services and clients drive a volume's attachments: statuses
//! step by step (reserved → attaching → attached, and back), the
//! connection a connector gets, Cinder's 400/404/409s, other projects'
//! attachments as 404, and an attachment Nova holds left to Nova.

use crate::common::{start, Resp, TestCloud, User};
use crate::volumes::{call, create, wait};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

async fn new_volume(c: &TestCloud, u: &User) -> String {
    let r = create(c, u, json!({"size": 1})).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    let id = r.body["volume"]["id"].as_str().expect("id").to_string();
    wait(c, u, &id, Some("available")).await;
    id
}

async fn att(
    c: &TestCloud,
    u: &User,
    method: Method,
    path: &str,
    v: &str,
    body: Option<Value>,
) -> Resp {
    call(c, u, method, path, Some(v), body).await
}

async fn status(c: &TestCloud, u: &User, vol: &str) -> (String, String) {
    let r = call(c, u, Method::GET, &format!("/volumes/{vol}"), None, None).await;
    let v = &r.body["volume"];
    (
        v["status"].as_str().unwrap_or("").to_string(),
        v["attachments"].to_string(),
    )
}

async fn volume_status(c: &TestCloud, u: &User, vol: &str) -> String {
    let r = call(c, u, Method::GET, &format!("/volumes/{vol}"), None, None).await;
    r.body["volume"]["status"]
        .as_str()
        .unwrap_or("")
        .to_string()
}

#[tokio::test]
async fn an_attachment_is_reserved_connected_completed_and_deleted() {
    let cloud = start().await;
    let demo = cloud.login("demo").await;
    let vol = new_volume(&cloud, &demo).await;
    let server = uuid::Uuid::new_v4().to_string();

    // Not there before 3.27.
    let r = att(&cloud, &demo, Method::GET, "/attachments", "3.26", None).await;
    assert_eq!(r.fault(404), "The resource could not be found.");

    let body = json!({"attachment": {"volume_uuid": vol, "instance_uuid": server}});
    let r = att(
        &cloud,
        &demo,
        Method::POST,
        "/attachments",
        "3.27",
        Some(body.clone()),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let a = &r.body["attachment"];
    let id = a["id"].as_str().expect("id").to_string();
    assert_eq!(
        (
            &a["status"],
            &a["instance"],
            &a["volume_id"],
            &a["attach_mode"]
        ),
        (
            &json!("reserved"),
            &json!(server),
            &json!(vol),
            &json!("null")
        )
    );
    assert_eq!(a["connection_info"], json!({}));
    assert_eq!(volume_status(&cloud, &demo, &vol).await, "reserved");

    // One attachment per volume (no multiattach).
    let r = att(
        &cloud,
        &demo,
        Method::POST,
        "/attachments",
        "3.27",
        Some(body),
    )
    .await;
    assert_eq!(
        r.fault(400),
        format!(
            "Invalid volume: Volume {vol} status must be available or downloading to reserve, \
             but the current status is reserved."
        )
    );

    // Listed, filtered, shown.
    let r = att(
        &cloud,
        &demo,
        Method::GET,
        &format!("/attachments?volume_id={vol}"),
        "3.27",
        None,
    )
    .await;
    assert_eq!(
        r.body["attachments"],
        json!([{"id": id, "status": "reserved", "instance": server, "volume_id": vol}])
    );
    let r = att(
        &cloud,
        &demo,
        Method::GET,
        "/attachments?status=attached",
        "3.27",
        None,
    )
    .await;
    assert_eq!(r.body["attachments"], json!([]));

    // A connector gives the connection: the volume's file.
    let path = format!("/attachments/{id}");
    let conn = json!({"attachment": {"connector": {"host": "node-1", "mountpoint": "/dev/vdb"}}});
    let r = att(&cloud, &demo, Method::PUT, &path, "3.27", Some(conn)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let ci = &r.body["attachment"]["connection_info"];
    assert_eq!(ci["driver_volume_type"], "file", "{}", r.text);
    let file = ci["data"]["path"].as_str().expect("path");
    assert!(std::path::Path::new(file).exists(), "{file}");
    assert_eq!(r.body["attachment"]["status"], "attaching");
    assert_eq!(volume_status(&cloud, &demo, &vol).await, "attaching");

    // os-complete needs 3.44.
    let act = format!("{path}/action");
    let r = att(
        &cloud,
        &demo,
        Method::POST,
        &act,
        "3.43",
        Some(json!({"os-complete": {}})),
    )
    .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.text);
    let r = att(
        &cloud,
        &demo,
        Method::POST,
        &act,
        "3.44",
        Some(json!({"os-complete": {}})),
    )
    .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
    let (st, atts) = status(&cloud, &demo, &vol).await;
    assert_eq!(st, "in-use");
    assert!(atts.contains(&id), "{atts}");
    let r = att(&cloud, &demo, Method::GET, &path, "3.44", None).await;
    assert_eq!(r.body["attachment"]["status"], "attached", "{}", r.text);
    assert!(r.body["attachment"]["attached_at"]
        .as_str()
        .is_some_and(|t| !t.is_empty()));

    // Another project sees none of it.
    let alt = cloud.login("alt_demo").await;
    let r = att(&cloud, &alt, Method::GET, &path, "3.44", None).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.text);
    let r = att(&cloud, &alt, Method::DELETE, &path, "3.44", None).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.text);

    // Delete: the attachments left (none), the volume available.
    let r = att(&cloud, &demo, Method::DELETE, &path, "3.44", None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body, json!({"attachments": []}));
    let (st, atts) = status(&cloud, &demo, &vol).await;
    assert_eq!((st.as_str(), atts.as_str()), ("available", "[]"));
    let r = att(&cloud, &demo, Method::GET, &path, "3.44", None).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.text);
}

#[tokio::test]
async fn bad_attachment_requests_change_nothing() {
    let cloud = start().await;
    let demo = cloud.login("demo").await;
    let vol = new_volume(&cloud, &demo).await;
    let post = |body: Value, v: &'static str| {
        let (cloud, demo) = (&cloud, &demo);
        async move { att(cloud, demo, Method::POST, "/attachments", v, Some(body)).await }
    };
    for (body, v) in [
        (json!({"attachment": {}}), "3.27"),
        (json!({"attachment": {"volume_uuid": "nope"}}), "3.27"),
        (
            json!({"attachment": {"volume_uuid": vol, "mode": "rw"}}),
            "3.53",
        ),
        (
            json!({"attachment": {"volume_uuid": vol, "mode": "rx"}}),
            "3.54",
        ),
        (
            json!({"attachment": {"volume_uuid": vol, "connector": 5}}),
            "3.27",
        ),
        (
            json!({"attachment": {"volume_uuid": vol, "color": "red"}}),
            "3.27",
        ),
        (json!({"nothing": {}}), "3.27"),
    ] {
        let r = post(body.clone(), v).await;
        assert_eq!(
            r.status,
            StatusCode::BAD_REQUEST,
            "{body} at {v}: {}",
            r.text
        );
    }
    let missing = uuid::Uuid::new_v4().to_string();
    let r = post(json!({"attachment": {"volume_uuid": missing}}), "3.27").await;
    assert_eq!(
        r.fault(404),
        format!("Volume {missing} could not be found.")
    );
    assert_eq!(volume_status(&cloud, &demo, &vol).await, "available");

    // 3.54's mode is kept.
    let r = post(
        json!({"attachment": {"volume_uuid": vol, "mode": "ro"}}),
        "3.54",
    )
    .await;
    assert_eq!(r.body["attachment"]["attach_mode"], "ro", "{}", r.text);
    let id = r.body["attachment"]["id"].as_str().expect("id").to_string();
    let r = att(
        &cloud,
        &demo,
        Method::PUT,
        &format!("/attachments/{id}"),
        "3.54",
        Some(json!({"attachment": {"connector": {}}})),
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    assert_eq!(volume_status(&cloud, &demo, &vol).await, "reserved");
}

#[tokio::test]
async fn an_attachment_nova_holds_is_novas_to_end() {
    let cloud = start().await;
    let demo = cloud.login("demo").await;
    let vol = new_volume(&cloud, &demo).await;
    let s = cloud
        .boot(&demo, "held", Some("2.79"), json!({"networks": "none"}))
        .await;
    let sid = s["id"].as_str().expect("id").to_string();
    let r = cloud
        .post(
            &demo,
            &format!("/servers/{sid}/os-volume_attachments"),
            Some("2.89"),
            json!({"volumeAttachment": {"volumeId": vol}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let r = cloud
        .get(
            &demo,
            &format!("/servers/{sid}/os-volume_attachments/{vol}"),
            Some("2.89"),
        )
        .await;
    let nova_att = r.body["volumeAttachment"]["attachment_id"]
        .as_str()
        .expect("attachment id")
        .to_string();
    let r = att(
        &cloud,
        &demo,
        Method::GET,
        "/attachments/detail",
        "3.44",
        None,
    )
    .await;
    let listed = &r.body["attachments"][0];
    assert_eq!(
        (&listed["id"], &listed["instance"], &listed["status"]),
        (&json!(nova_att), &json!(sid), &json!("attached")),
        "{}",
        r.text
    );
    assert_eq!(listed["connection_info"]["driver_volume_type"], "file");
    let r = att(
        &cloud,
        &demo,
        Method::DELETE,
        &format!("/attachments/{nova_att}"),
        "3.44",
        None,
    )
    .await;
    assert_eq!(
        r.fault(409),
        format!("Detach volume from instance {sid} using the Compute API")
    );
    assert_eq!(volume_status(&cloud, &demo, &vol).await, "in-use");
}

#[tokio::test]
async fn the_legacy_attach_actions_walk_the_same_statuses() {
    let cloud = start().await;
    let demo = cloud.login("demo").await;
    let vol = new_volume(&cloud, &demo).await;
    let act = |body: Value| {
        let (cloud, demo, vol) = (&cloud, &demo, vol.clone());
        async move {
            call(
                cloud,
                demo,
                Method::POST,
                &format!("/volumes/{vol}/action"),
                None,
                Some(body),
            )
            .await
        }
    };
    let r = act(json!({"os-begin_detaching": {}})).await;
    assert_eq!(
        r.fault(400),
        "Invalid volume: Unable to detach volume. Volume status must be 'in-use' and \
         attach_status must be 'attached' to detach."
    );
    assert_eq!(
        act(json!({"os-reserve": {}})).await.status,
        StatusCode::ACCEPTED
    );
    assert_eq!(volume_status(&cloud, &demo, &vol).await, "attaching");
    let r = act(json!({"os-reserve": {}})).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    assert_eq!(
        act(json!({"os-unreserve": {}})).await.status,
        StatusCode::ACCEPTED
    );
    assert_eq!(volume_status(&cloud, &demo, &vol).await, "available");

    let r = act(json!({"os-initialize_connection": {"connector": {"host": "h"}}})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["connection_info"]["driver_volume_type"], "file");
    let r = act(json!({"os-initialize_connection": {}})).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);

    let server = uuid::Uuid::new_v4().to_string();
    let r = act(json!({"os-attach": {"instance_uuid": server}})).await;
    assert_eq!(r.fault(400), "Must specify 'mountpoint'");
    let r = act(json!({"os-attach": {"instance_uuid": server, "mountpoint": "/dev/vdb"}})).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    let v = wait(&cloud, &demo, &vol, Some("in-use")).await;
    assert_eq!(v["attachments"][0]["server_id"], json!(server));
    assert_eq!(v["attachments"][0]["device"], "/dev/vdb");

    assert_eq!(
        act(json!({"os-begin_detaching": {}})).await.status,
        StatusCode::ACCEPTED
    );
    assert_eq!(volume_status(&cloud, &demo, &vol).await, "detaching");
    assert_eq!(
        act(json!({"os-roll_detaching": {}})).await.status,
        StatusCode::ACCEPTED
    );
    assert_eq!(volume_status(&cloud, &demo, &vol).await, "in-use");
    let r = act(json!({"os-terminate_connection": {"connector": {"host": "h"}}})).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    assert_eq!(
        act(json!({"os-detach": {}})).await.status,
        StatusCode::ACCEPTED
    );
    let v = wait(&cloud, &demo, &vol, Some("available")).await;
    assert_eq!(v["attachments"], json!([]));
    // Nothing attached: accepted, nothing changes (Cinder's API casts it).
    let r = act(json!({"os-detach": {}})).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    assert_eq!(volume_status(&cloud, &demo, &vol).await, "available");

    // A reader may look but not act.
    let reader = cloud.login("demo_reader").await;
    let r = call(
        &cloud,
        &reader,
        Method::POST,
        &format!("/volumes/{vol}/action"),
        None,
        Some(json!({"os-reserve": {}})),
    )
    .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text);
}
