//! The simulator's admin API refuses numbers it cannot honour: a clock
//! step past ten years or past year 9999, delays over an hour, counts
//! beyond u32 — each a 400 with Nova's error body that changes nothing,
//! where a huge value once panicked the handler and dropped the connection.

use crate::common::{self, Resp, TestCloud, User};
use reqwest::Method;
use serde_json::{json, Value};

/// A call to `/rova/v1/sim/{path}` as `u`.
pub(crate) async fn sim(
    c: &TestCloud,
    u: &User,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> Resp {
    let mut req = c
        .http
        .request(method, format!("{}/rova/v1/sim/{path}", c.base))
        .header("X-Auth-Token", &u.token);
    if let Some(b) = body {
        req = req.json(&b);
    }
    Resp::read(req.send().await.expect("sim request answered")).await
}

#[tokio::test]
async fn clock_steps_out_of_range_are_400_and_change_nothing() {
    let c = common::start().await;
    let admin = c.login("admin").await;
    let before = sim(&c, &admin, Method::GET, "clock", None).await;
    assert_eq!(before.status.as_u16(), 200, "{}", before.text);
    let offset = before.body["offset_seconds"].clone();
    for bad in [
        json!(9223372036854775807i64),
        json!(u64::MAX),
        json!(-1),
        json!(10 * 366 * 86_400 + 1),
        json!(1.5),
        json!("60"),
        json!(1e300),
    ] {
        let r = sim(
            &c,
            &admin,
            Method::POST,
            "clock",
            Some(json!({"advance_seconds": bad})),
        )
        .await;
        let msg = r.fault(400);
        assert!(msg.contains("advance_seconds"), "{bad}: {msg}");
        let now = sim(&c, &admin, Method::GET, "clock", None).await;
        assert_eq!(now.body["offset_seconds"], offset, "{bad} moved the clock");
    }
    // Ten years at a time is allowed until the clock nears year 9999; the
    // step that would pass it is refused and the clock stays put.
    let mut last = Value::Null;
    for _ in 0..1000 {
        let r = sim(
            &c,
            &admin,
            Method::POST,
            "clock",
            Some(json!({"advance_seconds": 10 * 366 * 86_400})),
        )
        .await;
        if r.status.as_u16() != 200 {
            let msg = r.fault(400);
            assert!(msg.contains("9999"), "{msg}");
            break;
        }
        last = r.body;
    }
    let year: i32 = last["now"].as_str().expect("now")[..4]
        .parse()
        .expect("a four-digit year");
    assert!((9980..9999).contains(&year), "{last}");
    let now = sim(&c, &admin, Method::GET, "clock", None).await;
    assert_eq!(now.body["offset_seconds"], last["offset_seconds"]);
    // The API still works and dates still render.
    let demo = c.login("demo").await;
    let s = c.boot(&demo, "late", None, json!({})).await;
    let created = s["created"].as_str().expect("created");
    assert!(created.starts_with("99"), "{created}");
}

#[tokio::test]
async fn delays_and_counts_out_of_range_are_400() {
    let c = common::start().await;
    let admin = c.login("admin").await;
    for (path, body) in [
        ("slow", json!({"operation": "spawn", "delay_ms": u64::MAX})),
        ("slow", json!({"operation": "spawn", "delay_ms": 3_600_001})),
        ("slow", json!({"operation": "spawn", "delay_ms": -1})),
        ("slow", json!({"operation": "", "delay_ms": 5})),
        ("latency", json!({"step_ms": u64::MAX})),
        ("latency", json!({"step_ms": 3_600_001})),
        ("faults", json!({"operation": "spawn", "count": u64::MAX})),
        ("faults", json!({"operation": "spawn", "count": 0})),
    ] {
        let r = sim(&c, &admin, Method::POST, path, Some(body)).await;
        r.fault(400);
    }
    let r = sim(&c, &admin, Method::GET, "faults", None).await;
    assert_eq!(
        r.body,
        json!({"faults": [], "slow": []}),
        "nothing recorded"
    );
    // In range is accepted.
    let r = sim(
        &c,
        &admin,
        Method::POST,
        "slow",
        Some(json!({"operation": "spawn", "delay_ms": 3_600_000})),
    )
    .await;
    assert_eq!(r.status.as_u16(), 204, "{}", r.text);
    let r = sim(
        &c,
        &admin,
        Method::POST,
        "latency",
        Some(json!({"step_ms": 1})),
    )
    .await;
    assert_eq!(r.status.as_u16(), 204, "{}", r.text);
    let r = sim(&c, &admin, Method::GET, "faults", None).await;
    assert_eq!(
        r.body["slow"],
        json!([{"operation": "spawn", "delay_ms": 3_600_000}])
    );
}
