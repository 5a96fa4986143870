//! Keystone's token API: who may validate, check and revoke whose token;
//! revocations that outlive a restart; and scopes — the default project
//! when none is named, unscoped tokens (refused by the other APIs but
//! exchangeable for a project-scoped one), and system or domain scopes
//! nobody here holds.

use crate::common::{start, Resp, TestCloud, User};
use crate::edge_errors::keystone;
use reqwest::Method;
use serde_json::{json, Value};

/// A request on `/identity/v3/auth/tokens` about `subject`, made by `caller`.
async fn on_token(cloud: &TestCloud, method: Method, caller: &str, subject: &str) -> Resp {
    Resp::of(
        cloud
            .http
            .request(method, format!("{}/identity/v3/auth/tokens", cloud.base))
            .header("X-Auth-Token", caller)
            .header("X-Subject-Token", subject),
    )
    .await
}

/// Asserts Keystone's error body and returns its message.
fn ks_error(r: &Resp, code: u16) -> String {
    let title = match code {
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        _ => "Not Found",
    };
    keystone(r, code, title)
}

/// GET /servers with a raw token: the status.
async fn servers_status(cloud: &TestCloud, token: &str) -> u16 {
    let u = User {
        token: token.to_string(),
        user_id: String::new(),
        project_id: String::new(),
    };
    cloud.get(&u, "/servers", None).await.status.as_u16()
}

/// POST /identity/v3/auth/tokens with `auth`.
async fn issue(cloud: &TestCloud, auth: Value) -> Resp {
    Resp::of(
        cloud
            .http
            .post(format!("{}/identity/v3/auth/tokens", cloud.base))
            .json(&json!({ "auth": auth })),
    )
    .await
}

fn password(cloud: &TestCloud, user: &str) -> Value {
    json!({"methods": ["password"], "password": {"user": {"name": user,
        "domain": {"name": "Default"}, "password": cloud.passwords[user]}}})
}

#[tokio::test(flavor = "multi_thread")]
async fn another_projects_reader_can_neither_see_nor_revoke_the_admins_token() {
    let cloud = start().await;
    let admin = cloud.login("admin").await;
    let reader = cloud.login("demo_reader").await;
    let r = on_token(&cloud, Method::GET, &reader.token, &admin.token).await;
    let m = ks_error(&r, 403);
    assert!(m.contains("identity:validate_token"), "{m}");
    assert!(r.body.get("token").is_none(), "no roles leak: {}", r.text);
    let r = on_token(&cloud, Method::HEAD, &reader.token, &admin.token).await;
    assert_eq!(r.status.as_u16(), 403);
    let r = on_token(&cloud, Method::DELETE, &reader.token, &admin.token).await;
    assert!(ks_error(&r, 403).contains("identity:revoke_token"));
    // The admin's token still works, everywhere.
    assert_eq!(servers_status(&cloud, &admin.token).await, 200);
    let r = on_token(&cloud, Method::GET, &admin.token, &admin.token).await;
    assert_eq!(r.status.as_u16(), 200, "{}", r.text);
    // A member of another project is refused just the same.
    let alt = cloud.login("alt_demo").await;
    let r = on_token(&cloud, Method::DELETE, &alt.token, &reader.token).await;
    ks_error(&r, 403);
    assert_eq!(servers_status(&cloud, &reader.token).await, 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_owner_validates_and_revokes_its_own_token() {
    let cloud = start().await;
    let demo = cloud.login("demo").await;
    let other = cloud.login("demo").await; // same user, another token
    let r = on_token(&cloud, Method::GET, &demo.token, &other.token).await;
    assert_eq!(r.status.as_u16(), 200, "{}", r.text);
    assert_eq!(r.body["token"]["user"]["id"], json!(demo.user_id));
    assert_eq!(r.header("x-subject-token").as_deref(), Some(&*other.token));
    let r = on_token(&cloud, Method::HEAD, &demo.token, &demo.token).await;
    assert_eq!(r.status.as_u16(), 200);
    let r = on_token(&cloud, Method::DELETE, &demo.token, &other.token).await;
    assert_eq!(r.status.as_u16(), 204, "{}", r.text);
    assert_eq!(servers_status(&cloud, &other.token).await, 401);
    assert_eq!(servers_status(&cloud, &demo.token).await, 200);
    // A revoked subject is 404 to a caller who may look.
    let r = on_token(&cloud, Method::GET, &demo.token, &other.token).await;
    ks_error(&r, 404);
    let r = on_token(&cloud, Method::DELETE, &demo.token, &other.token).await;
    ks_error(&r, 404);
    let r = on_token(&cloud, Method::GET, &demo.token, "garbage").await;
    ks_error(&r, 404);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_admin_validates_and_revokes_anyones_token() {
    let cloud = start().await;
    let admin = cloud.login("admin").await;
    let reader = cloud.login("demo_reader").await;
    let r = on_token(&cloud, Method::GET, &admin.token, &reader.token).await;
    assert_eq!(r.status.as_u16(), 200, "{}", r.text);
    assert_eq!(r.body["token"]["project"]["id"], json!(reader.project_id));
    let roles: Vec<&str> = r.body["token"]["roles"]
        .as_array()
        .expect("roles")
        .iter()
        .filter_map(|x| x["name"].as_str())
        .collect();
    assert_eq!(roles, vec!["reader"]);
    let r = on_token(&cloud, Method::HEAD, &admin.token, &reader.token).await;
    assert_eq!(r.status.as_u16(), 200);
    let r = on_token(&cloud, Method::DELETE, &admin.token, &reader.token).await;
    assert_eq!(r.status.as_u16(), 204, "{}", r.text);
    assert_eq!(servers_status(&cloud, &reader.token).await, 401);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_revoked_token_stays_revoked_after_a_restart() {
    let cloud = start().await;
    let revoked = cloud.login("demo").await;
    let kept = cloud.login("demo").await;
    let r = on_token(&cloud, Method::DELETE, &revoked.token, &revoked.token).await;
    assert_eq!(r.status.as_u16(), 204, "{}", r.text);
    assert_eq!(servers_status(&cloud, &revoked.token).await, 401);
    let cloud = cloud.restart().await;
    assert_eq!(servers_status(&cloud, &revoked.token).await, 401);
    assert_eq!(servers_status(&cloud, &kept.token).await, 200);
    let r = on_token(&cloud, Method::GET, &kept.token, &revoked.token).await;
    ks_error(&r, 404);
}

#[tokio::test(flavor = "multi_thread")]
async fn scopes_follow_keystone() {
    let cloud = start().await;
    let demo = cloud.login("demo").await;

    // No scope: the user's default project.
    let r = issue(&cloud, json!({"identity": password(&cloud, "demo")})).await;
    assert_eq!(r.status.as_u16(), 201, "{}", r.text);
    assert_eq!(r.body["token"]["project"]["id"], json!(demo.project_id));

    // Explicitly unscoped: no project, roles or catalog.
    let r = issue(
        &cloud,
        json!({"identity": password(&cloud, "demo"), "scope": "unscoped"}),
    )
    .await;
    assert_eq!(r.status.as_u16(), 201, "{}", r.text);
    let token = r.body["token"].clone();
    for key in ["project", "roles", "catalog"] {
        assert!(token.get(key).is_none(), "{key} in {token}");
    }
    assert_eq!(token["user"]["id"], json!(demo.user_id));
    let unscoped = r.header("x-subject-token").expect("token");

    // The other APIs refuse it; identity lets it list its projects.
    assert_eq!(servers_status(&cloud, &unscoped).await, 401);
    for path in ["/image/v2/images", "/network/v2.0/networks"] {
        let r = cloud
            .http
            .get(format!("{}{path}", cloud.base))
            .header("X-Auth-Token", &unscoped)
            .send()
            .await
            .expect("request");
        assert_eq!(r.status().as_u16(), 401, "{path}");
    }
    let get = |path: &str| {
        Resp::of(
            cloud
                .http
                .get(format!("{}/identity/v3{path}", cloud.base))
                .header("X-Auth-Token", &unscoped),
        )
    };
    let r = get("/auth/projects").await;
    assert_eq!(r.status.as_u16(), 200, "{}", r.text);
    assert_eq!(r.body["projects"][0]["id"], json!(demo.project_id));
    ks_error(&get("/auth/catalog").await, 403);

    // ... and it is exchanged for a project-scoped token, which keeps its
    // expiry and works.
    let r = issue(
        &cloud,
        json!({"identity": {"methods": ["token"], "token": {"id": unscoped}},
               "scope": {"project": {"id": demo.project_id}}}),
    )
    .await;
    assert_eq!(r.status.as_u16(), 201, "{}", r.text);
    assert_eq!(r.body["token"]["project"]["id"], json!(demo.project_id));
    assert_eq!(r.body["token"]["expires_at"], token["expires_at"]);
    assert!(r.body["token"]["catalog"].is_array());
    let scoped = r.header("x-subject-token").expect("token");
    assert_eq!(servers_status(&cloud, &scoped).await, 200);

    // A project the user has no role on is refused.
    let alt = cloud.login("alt_demo").await;
    let r = issue(
        &cloud,
        json!({"identity": {"methods": ["token"], "token": {"id": unscoped}},
               "scope": {"project": {"id": alt.project_id}}}),
    )
    .await;
    assert!(ks_error(&r, 401).contains("has no access to project"));

    // System and domain scopes: nobody holds roles there, not even admin.
    for user in ["admin", "demo"] {
        let r = issue(
            &cloud,
            json!({"identity": password(&cloud, user), "scope": {"system": {"all": true}}}),
        )
        .await;
        assert!(ks_error(&r, 401).ends_with("has no access to the system"));
        let r = issue(
            &cloud,
            json!({"identity": password(&cloud, user), "scope": {"domain": {"id": "default"}}}),
        )
        .await;
        assert!(ks_error(&r, 401).contains("has no access to domain default"));
    }
    // A wrong password is still the plain 401, whatever the scope.
    let mut wrong = password(&cloud, "demo");
    wrong["password"]["user"]["password"] = json!("nope");
    let r = issue(
        &cloud,
        json!({"identity": wrong, "scope": {"system": {"all": true}}}),
    )
    .await;
    assert_eq!(
        ks_error(&r, 401),
        "The request you have made requires authentication."
    );
    // Two scopes at once are malformed.
    let r = issue(
        &cloud,
        json!({"identity": password(&cloud, "demo"),
               "scope": {"system": {"all": true}, "project": {"id": demo.project_id}}}),
    )
    .await;
    ks_error(&r, 400);
}
