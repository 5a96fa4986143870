//! Structured logs: with `ROVA_LOG_FORMAT=json`, the events of a request
//! carry its request id (the one the response names), method and path, the
//! caller's project and the server the path names.

use crate::crash::start_env;
use serde_json::Value;

#[tokio::test]
async fn request_events_carry_request_project_and_server() {
    let dir = crate::storage::temp_dir("logs");
    let rova = start_env(
        &dir,
        &[],
        &[("ROVA_LOG", "rova=debug"), ("ROVA_LOG_FORMAT", "json")],
    )
    .await;
    let server = "0b1c2d3e-4f50-4617-8899-aabbccddeeff";
    let r = reqwest::Client::new()
        .get(format!("{}/compute/v2.1/servers/{server}", rova.base))
        .header("X-Auth-Token", &rova.demo)
        .send()
        .await
        .expect("answered");
    assert_eq!(r.status().as_u16(), 404);
    let request_id = r
        .headers()
        .get("x-openstack-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let project = reqwest::Client::new()
        .get(format!("{}/identity/v3/auth/tokens", rova.base))
        .header("X-Auth-Token", &rova.demo)
        .header("X-Subject-Token", &rova.demo)
        .send()
        .await
        .expect("answered")
        .json::<Value>()
        .await
        .expect("token body")["token"]["project"]["id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(!project.is_empty());
    // The log is written as events happen; give the writer a moment.
    let mut found = None;
    for _ in 0..50 {
        let log = std::fs::read_to_string(dir.with_extension("log")).unwrap_or_default();
        found = log
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .find(|v| {
                v["fields"]["message"] == "request"
                    && v["span"]["request_id"] == request_id.as_str()
            });
        if found.is_some() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let ev = found.unwrap_or_else(|| panic!("no request event for {request_id}"));
    assert_eq!(ev["fields"]["status"], 404, "{ev}");
    assert_eq!(ev["span"]["server_id"], server, "{ev}");
    assert_eq!(ev["span"]["project_id"], project.as_str(), "{ev}");
    assert_eq!(ev["span"]["method"], "GET", "{ev}");
}
