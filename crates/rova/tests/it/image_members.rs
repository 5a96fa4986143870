//! Image sharing over HTTP (Glance's `/v2/images/{id}/members`): the owner
//! offers a shared image to another project, which sees it by id at once,
//! lists it once it accepted, and can boot a server from it; only the
//! owner offers and withdraws, only the project offered decides, and a
//! project sees only its own membership.

use crate::common::{start, Resp, TestCloud, User};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

async fn call(c: &TestCloud, u: &User, method: Method, path: &str, body: Option<Value>) -> Resp {
    let mut req = c
        .http
        .request(method, format!("{}{path}", c.base))
        .header("X-Auth-Token", &u.token);
    if let Some(b) = body {
        req = req.json(&b);
    }
    Resp::of(req).await
}

fn listed(r: &Resp, id: &str) -> bool {
    r.body["images"]
        .as_array()
        .is_some_and(|a| a.iter().any(|i| i["id"] == id))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_shared_image_is_offered_accepted_and_withdrawn() {
    let c = start().await;
    let demo = c.login("demo").await;
    let alt = c.login("alt_demo").await;
    let r = call(
        &c,
        &demo,
        Method::POST,
        "/image/v2/images",
        Some(json!({"name": "shared-one", "visibility": "shared",
                    "container_format": "bare", "disk_format": "raw"})),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let id = r.body["id"].as_str().expect("id").to_string();
    let up = c
        .http
        .put(format!("{}/image/v2/images/{id}/file", c.base))
        .header("X-Auth-Token", &demo.token)
        .header("Content-Type", "application/octet-stream")
        .body(vec![7u8; 4096]);
    assert_eq!(Resp::of(up).await.status, StatusCode::NO_CONTENT);
    let image = format!("/image/v2/images/{id}");
    let members = format!("{image}/members");
    let alt_member = format!("{members}/{}", alt.project_id);

    // Not offered yet: alt does not see it.
    let r = call(&c, &alt, Method::GET, &image, None).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.text);

    // Bad bodies are Glance's 400s.
    let r = call(&c, &demo, Method::POST, &members, Some(json!({}))).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.body["message"], "Member to be added not specified");
    let r = call(
        &c,
        &demo,
        Method::POST,
        &members,
        Some(json!({"member": ""})),
    )
    .await;
    assert_eq!(r.body["message"], "Member can't be empty");

    // The owner offers it.
    let offer = json!({"member": alt.project_id});
    let r = call(&c, &demo, Method::POST, &members, Some(offer.clone())).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["status"], "pending");
    assert_eq!(r.body["image_id"], id.as_str());
    assert_eq!(r.body["member_id"], alt.project_id.as_str());
    assert_eq!(r.body["schema"], "/v2/schemas/member");
    let r = call(&c, &demo, Method::POST, &members, Some(offer)).await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.text);

    // Offered: alt sees it by id, but a listing shows it only by status.
    let r = call(&c, &alt, Method::GET, &image, None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let r = call(&c, &alt, Method::GET, "/image/v2/images", None).await;
    assert!(!listed(&r, &id), "pending is not listed by default");
    let r = call(
        &c,
        &alt,
        Method::GET,
        "/image/v2/images?member_status=pending",
        None,
    )
    .await;
    assert!(listed(&r, &id), "{}", r.text);
    let r = call(
        &c,
        &alt,
        Method::GET,
        "/image/v2/images?member_status=bogus",
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);

    // Only alt decides on the offer, and only the owner offers.
    let accept = json!({"status": "accepted"});
    let r = call(&c, &demo, Method::PUT, &alt_member, Some(accept.clone())).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text);
    let r = call(
        &c,
        &alt,
        Method::POST,
        &members,
        Some(json!({"member": "x"})),
    )
    .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text);
    let r = call(
        &c,
        &alt,
        Method::PUT,
        &alt_member,
        Some(json!({"status": "maybe"})),
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    let r = call(&c, &alt, Method::PUT, &alt_member, Some(accept)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["status"], "accepted");

    // Accepted: listed by Glance and by the compute API's image proxy.
    let r = call(&c, &alt, Method::GET, "/image/v2/images", None).await;
    assert!(listed(&r, &id), "{}", r.text);
    let r = c.get(&alt, "/images", None).await;
    assert!(listed(&r, &id), "compute images: {}", r.text);

    // A second member: the owner sees both, alt only its own.
    let r = call(
        &c,
        &demo,
        Method::POST,
        &members,
        Some(json!({"member": "p-other"})),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let count = |r: &Resp| r.body["members"].as_array().map_or(0, Vec::len);
    let r = call(&c, &demo, Method::GET, &members, None).await;
    assert_eq!(count(&r), 2, "{}", r.text);
    let r = call(&c, &alt, Method::GET, &members, None).await;
    assert_eq!(count(&r), 1, "{}", r.text);
    assert_eq!(r.body["members"][0]["member_id"], alt.project_id.as_str());
    let r = call(&c, &alt, Method::GET, &format!("{members}/p-other"), None).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.text);
    let r = call(&c, &alt, Method::GET, &alt_member, None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);

    // alt boots a server from the image it was offered.
    let server = c
        .boot(&alt, "from-shared", None, json!({"imageRef": id}))
        .await;
    assert!(server["id"].is_string(), "{server}");

    // Withdrawn: alt no longer sees it; only the owner withdraws.
    let r = call(&c, &alt, Method::DELETE, &alt_member, None).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text);
    let r = call(&c, &demo, Method::DELETE, &alt_member, None).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
    let r = call(&c, &alt, Method::GET, &image, None).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.text);
    let r = call(&c, &demo, Method::DELETE, &alt_member, None).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.text);

    // A private image has no members; the schemas are served.
    let r = call(
        &c,
        &demo,
        Method::POST,
        "/image/v2/images",
        Some(json!({"name": "mine", "visibility": "private"})),
    )
    .await;
    let private = r.body["id"].as_str().expect("id").to_string();
    let r = call(
        &c,
        &demo,
        Method::GET,
        &format!("/image/v2/images/{private}/members"),
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text);
    let r = call(&c, &demo, Method::GET, "/image/v2/schemas/member", None).await;
    assert_eq!(r.body["name"], "member");

    // The memberships survive a restart, and go with their image.
    let c = c.restart().await;
    let demo = c.login("demo").await;
    let r = call(&c, &demo, Method::GET, &members, None).await;
    assert_eq!(count(&r), 1, "{}", r.text);
    let r = call(&c, &demo, Method::DELETE, &image, None).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
    let r = call(&c, &demo, Method::GET, &members, None).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.text);
}
