//! `GET /metrics`: Prometheus' text format with requests by route template
//! (never an id), latency histograms, operations by kind and outcome, the
//! services' heartbeats and state, guests per host and the database's use.

use crate::common::start;
use crate::sim_api::sim;
use reqwest::{Method, StatusCode};
use serde_json::json;

/// The value of the sample whose name and labels are exactly `series`.
fn sample(body: &str, series: &str) -> Option<f64> {
    body.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

#[tokio::test]
async fn metrics_show_routes_operations_services_and_the_database() {
    let c = start().await;
    let demo = c.login("demo").await;
    let admin = c.login("admin").await;
    let ok = c
        .boot(&demo, "m-ok", Some("2.74"), json!({"networks": "none"}))
        .await;
    let id = ok["id"].as_str().expect("id").to_string();
    assert_eq!(ok["status"], json!("ACTIVE"));
    // A build that fails: its operation ends in error.
    let r = sim(
        &c,
        &admin,
        Method::POST,
        "faults",
        Some(json!({"operation": "spawn", "count": 1, "message": "no"})),
    )
    .await;
    assert_eq!(r.status.as_u16(), 201, "{}", r.text);
    let bad = c
        .boot(&demo, "m-bad", Some("2.74"), json!({"networks": "none"}))
        .await;
    assert_eq!(bad["status"], json!("ERROR"));
    let nowhere = c.http.get(format!("{}/nowhere", c.base)).send().await;
    assert_eq!(nowhere.map(|r| r.status().as_u16()).ok(), Some(404));

    let scrape = || async {
        let r = c
            .http
            .get(format!("{}/metrics", c.base))
            .send()
            .await
            .expect("metrics answered");
        assert_eq!(r.status().as_u16(), 200);
        let ct = r
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        assert!(ct.starts_with("text/plain; version=0.0.4"), "{ct}");
        r.text().await.expect("metrics body")
    };
    // Three more shows of the server: each of its series moves by three.
    let show = r#"method="GET",route="/compute/v2.1/servers/{id}""#;
    let series = [
        format!("rova_http_requests_total{{{show},status=\"200\"}}"),
        format!("rova_http_request_duration_seconds_count{{{show}}}"),
        format!("rova_http_request_duration_seconds_bucket{{{show},le=\"+Inf\"}}"),
    ];
    let before = scrape().await;
    for _ in 0..3 {
        let r = c.get(&demo, &format!("/servers/{id}"), None).await;
        assert_eq!(r.status, StatusCode::OK);
    }
    let body = scrape().await;
    for s in &series {
        let (a, b) = (sample(&before, s), sample(&body, s));
        assert_eq!(
            b.zip(a).map(|(b, a)| b - a),
            Some(3.0),
            "{s}: {a:?} then {b:?}"
        );
    }
    assert!(!body.contains(&id), "a server id became a label value");
    assert_eq!(
        sample(
            &body,
            r#"rova_http_requests_total{method="GET",route="unmatched",status="404"}"#
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(
            &body,
            r#"rova_operations_total{kind="create",outcome="success"}"#
        ),
        Some(1.0),
        "{body}"
    );
    assert_eq!(
        sample(
            &body,
            r#"rova_operations_total{kind="create",outcome="error"}"#
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(
            &body,
            r#"rova_service_up{binary="nova-compute",host="rova-sim-1"}"#
        ),
        Some(1.0)
    );
    let age = sample(
        &body,
        r#"rova_service_heartbeat_age_seconds{binary="nova-compute",host="rova-sim-1"}"#,
    )
    .expect("heartbeat age");
    assert!((0.0..60.0).contains(&age), "{age}");
    assert_eq!(
        sample(&body, r#"rova_guests{host="rova-sim-1"}"#),
        Some(1.0),
        "the ERROR build holds no claim"
    );
    assert!(sample(&body, "rova_db_writes_queued").is_some());
    assert!(sample(&body, r#"rova_db_reader_connections{state="idle"}"#).is_some());
}
