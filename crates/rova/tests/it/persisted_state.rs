//! State that once lived only in process memory survives a restart of the
//! service on the same data directory: console tokens, the simulated
//! driver's virtual clock offset, injected faults and slow steps, and the
//! integer id counter (no id is handed out twice).

use crate::common::{self, Resp, TestCloud, User};
use crate::console_proxy::{auth_token, connect, console_url, next_binary, token_of};
use crate::sim_api::sim;
use reqwest::Method;
use serde_json::{json, Value};

/// A noVNC console token for server `id`.
async fn novnc_token(c: &TestCloud, u: &User, id: &str) -> String {
    token_of(&console_url(c, u, id, "vnc", "novnc").await)
}

/// Opens the console websocket with `token`: the first message the
/// console sends, or the HTTP status of the refusal.
async fn console_greeting(c: &TestCloud, token: &str) -> Result<Vec<u8>, u16> {
    let host = c.base.trim_start_matches("http://");
    let (mut ws, _) = connect(&format!("ws://{host}/websockify?token={token}")).await?;
    Ok(next_binary(&mut ws).await)
}

/// Advances the virtual clock; the answer.
async fn advance(c: &TestCloud, u: &User, secs: i64) -> Resp {
    sim(
        c,
        u,
        Method::POST,
        "clock",
        Some(json!({"advance_seconds": secs})),
    )
    .await
}

fn server_id(s: &Value) -> String {
    s["id"].as_str().expect("id").to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_console_token_issued_before_a_restart_works_after_it_once() {
    let cloud = common::start().await;
    let demo = cloud.login("demo").await;
    let s = cloud.boot(&demo, "con", None, json!({})).await;
    assert_eq!(s["status"], "ACTIVE", "{s}");
    let id = server_id(&s);
    let token = novnc_token(&cloud, &demo, &id).await;
    let expiring = novnc_token(&cloud, &demo, &id).await;

    let cloud = cloud.restart().await;
    let admin = cloud.login("admin").await;
    // The admin API still knows the token.
    let r = auth_token(&cloud, &admin, &token).await;
    assert_eq!(r.status.as_u16(), 200, "{}", r.text);
    assert_eq!(r.body["console"]["instance_uuid"], json!(id));
    // The console connects with it...
    let greeting = console_greeting(&cloud, &token).await.expect("connects");
    assert!(greeting.starts_with(b"RFB "), "{greeting:?}");
    // ...once: it was consumed.
    assert_eq!(console_greeting(&cloud, &token).await.err(), Some(401));

    // Ten minutes later the other token has expired, also across a
    // restart, and its row is pruned.
    let r = advance(&cloud, &admin, 601).await;
    assert_eq!(r.status.as_u16(), 200, "{}", r.text);
    let cloud = cloud.restart().await;
    assert_eq!(console_greeting(&cloud, &expiring).await.err(), Some(401));
    assert!(
        cloud.app.compute.console_tokens.get(&expiring).is_none(),
        "the expired token's row is pruned"
    );
    let admin = cloud.login("admin").await;
    let r = auth_token(&cloud, &admin, &expiring).await;
    assert_eq!(r.status.as_u16(), 404, "{}", r.text);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_virtual_clock_stays_advanced_after_a_restart() {
    let cloud = common::start().await;
    let admin = cloud.login("admin").await;
    let r = advance(&cloud, &admin, 86_400).await;
    assert_eq!(r.status.as_u16(), 200, "{}", r.text);
    assert_eq!(r.body["offset_seconds"], json!(86_400));
    // A refused step changes nothing, on disk either.
    let r = advance(&cloud, &admin, -5).await;
    r.fault(400);

    let cloud = cloud.restart().await;
    let admin = cloud.login("admin").await;
    let r = sim(&cloud, &admin, Method::GET, "clock", None).await;
    assert_eq!(r.status.as_u16(), 200, "{}", r.text);
    assert_eq!(r.body["offset_seconds"], json!(86_400), "{}", r.text);
    let now = chrono::DateTime::parse_from_rfc3339(r.body["now"].as_str().expect("now"))
        .expect("rfc3339");
    assert!(now.with_timezone(&chrono::Utc) > chrono::Utc::now() + chrono::Duration::hours(23));
    // And it keeps moving forward from there.
    let r = advance(&cloud, &admin, 60).await;
    assert_eq!(r.body["offset_seconds"], json!(86_460), "{}", r.text);
}

#[tokio::test(flavor = "multi_thread")]
async fn injected_faults_and_slow_steps_survive_a_restart_until_used_or_cleared() {
    let cloud = common::start().await;
    let admin = cloud.login("admin").await;
    let r = sim(
        &cloud,
        &admin,
        Method::POST,
        "faults",
        Some(json!({"operation": "spawn", "count": 2, "message": "disk on fire"})),
    )
    .await;
    assert_eq!(r.status.as_u16(), 201, "{}", r.text);
    let r = sim(
        &cloud,
        &admin,
        Method::POST,
        "slow",
        Some(json!({"operation": "unrescue", "delay_ms": 1234})),
    )
    .await;
    assert_eq!(r.status.as_u16(), 204, "{}", r.text);
    let s = cloud.boot(&admin, "first", None, json!({})).await;
    assert_eq!(s["status"], "ERROR", "{s}");

    // One fault was used before the restart: one is left after it.
    let cloud = cloud.restart().await;
    let admin = cloud.login("admin").await;
    let r = sim(&cloud, &admin, Method::GET, "faults", None).await;
    assert_eq!(
        r.body["faults"],
        json!([{"operation": "spawn", "count": 1, "message": "disk on fire", "host": null}]),
        "{}",
        r.text
    );
    assert_eq!(
        r.body["slow"],
        json!([{"operation": "unrescue", "delay_ms": 1234}]),
        "{}",
        r.text
    );
    let s = cloud.boot(&admin, "second", None, json!({})).await;
    assert_eq!(s["status"], "ERROR", "{s}");
    assert_eq!(s["fault"]["message"], "disk on fire", "{s}");

    // Used up, and the use is on disk: after another restart the next build
    // succeeds.
    let cloud = cloud.restart().await;
    let admin = cloud.login("admin").await;
    let s = cloud.boot(&admin, "third", None, json!({})).await;
    assert_eq!(s["status"], "ACTIVE", "{s}");
    let r = sim(&cloud, &admin, Method::GET, "faults", None).await;
    assert_eq!(r.body["faults"], json!([]), "{}", r.text);

    // Cleared stays cleared.
    let r = sim(&cloud, &admin, Method::DELETE, "faults", None).await;
    assert_eq!(r.status.as_u16(), 204, "{}", r.text);
    let cloud = cloud.restart().await;
    let admin = cloud.login("admin").await;
    let r = sim(&cloud, &admin, Method::GET, "faults", None).await;
    assert_eq!(r.body, json!({"faults": [], "slow": []}), "{}", r.text);
}

/// The integer in an instance name (`instance-0000000a` → 10).
fn instance_number(s: &Value) -> i64 {
    let name = s["OS-EXT-SRV-ATTR:instance_name"]
        .as_str()
        .unwrap_or_else(|| panic!("instance_name: {s}"));
    let hex = name.strip_prefix("instance-").expect("instance- prefix");
    i64::from_str_radix(hex, 16).expect("hex id")
}

#[tokio::test(flavor = "multi_thread")]
async fn ids_are_not_reused_after_the_highest_is_deleted_and_the_service_restarts() {
    let cloud = common::start().await;
    let admin = cloud.login("admin").await;
    let s = cloud.boot(&admin, "before", None, json!({})).await;
    let before = instance_number(&s);
    // A keypair takes the next id from the same counter, then is deleted:
    // nothing stored holds that id any more.
    let r = cloud
        .post(
            &admin,
            "/os-keypairs",
            Some("2.2"),
            json!({"keypair": {"name": "highest"}}),
        )
        .await;
    assert_eq!(r.status.as_u16(), 201, "{}", r.text);
    let r = cloud.get(&admin, "/os-keypairs/highest", Some("2.2")).await;
    let key_id = r.body["keypair"]["id"].as_i64().expect("keypair id");
    assert!(key_id > before, "{}", r.text);
    let r = Resp::of(
        cloud
            .http
            .delete(format!("{}/compute/v2.1/os-keypairs/highest", cloud.base))
            .header("X-Auth-Token", &admin.token),
    )
    .await;
    assert!(matches!(r.status.as_u16(), 202 | 204), "{}", r.text);

    let cloud = cloud.restart().await;
    let admin = cloud.login("admin").await;
    let s = cloud.boot(&admin, "after", None, json!({})).await;
    assert!(
        instance_number(&s) > key_id,
        "id {} handed out again (keypair had {key_id})",
        instance_number(&s)
    );
}
