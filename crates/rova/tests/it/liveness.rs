//! Service liveness from heartbeats: a host whose agent stops reporting
//! goes `down` after `service_down_time` (not forced down), its servers
//! show `host_status` UNKNOWN, the scheduler stops placing servers there,
//! evacuation is allowed, and when the agent reports again the host is up
//! and the evacuations it missed are completed. A service that keeps
//! reporting stays up past `service_down_time`.

use crate::common::{start_with, TestCloud, User};
use crate::sim_api::sim;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

async fn cloud(hosts: usize) -> TestCloud {
    start_with(|c| {
        c.sim_hosts = hosts;
        // Wide enough that a report delayed by a busy machine never
        // makes a reporting service look down.
        c.report_interval = 1;
        c.service_down_time = 4;
    })
    .await
}

async fn compute_service(c: &TestCloud, a: &User, host: &str) -> Value {
    let r = c
        .get(
            a,
            &format!("/os-services?binary=nova-compute&host={host}"),
            Some("2.11"),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    r.body["services"][0].clone()
}

async fn hypervisor_state(c: &TestCloud, a: &User, host: &str) -> Value {
    let r = c.get(a, "/os-hypervisors/detail", Some("2.53")).await;
    r.body["hypervisors"]
        .as_array()
        .and_then(|l| l.iter().find(|h| h["hypervisor_hostname"] == json!(host)))
        .map(|h| h["state"].clone())
        .unwrap_or(Value::Null)
}

/// Polls the service until its `state` is `want`; the time it took.
pub(crate) async fn wait_state(c: &TestCloud, a: &User, host: &str, want: &str) -> Duration {
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs(30) {
        if compute_service(c, a, host).await["state"] == json!(want) {
            return t0.elapsed();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("nova-compute on {host} never became {want}");
}

/// Starts or stops a host's heartbeats through the simulation API.
async fn set_agent(c: &TestCloud, a: &User, host: &str, alive: bool) -> crate::common::Resp {
    let path = format!("agents/{host}");
    let r = sim(c, a, Method::POST, &path, Some(json!({"alive": alive}))).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    r
}

fn host_of(s: &Value) -> String {
    s["OS-EXT-SRV-ATTR:host"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

#[tokio::test]
async fn a_host_whose_agent_stops_reporting_goes_unknown_and_can_be_evacuated() {
    let c = cloud(2).await;
    let a = c.login("admin").await;
    let s = c
        .boot(&a, "victim", Some("2.74"), json!({"networks": "none"}))
        .await;
    let sid = s["id"].as_str().expect("id").to_string();
    let src = host_of(&s);
    let other = if src == "rova-sim-1" {
        "rova-sim-2"
    } else {
        "rova-sim-1"
    };
    let svc = compute_service(&c, &a, &src).await;
    assert_eq!(svc["state"], json!("up"));
    assert!(svc["updated_at"].is_string(), "{svc}");
    assert_eq!(s["host_status"], json!("UP"));

    let action = format!("/servers/{sid}/action");
    let evacuate = || c.post(&a, &action, Some("2.29"), json!({"evacuate": {}}));
    // While it reports, evacuation is refused (Nova: 400, in use).
    let r = evacuate().await;
    assert_eq!(
        r.fault(400),
        format!("Compute service of {src} is still in use.")
    );

    let r = set_agent(&c, &a, &src, false).await;
    assert_eq!(r.body["agent"]["alive"], json!(false));
    wait_state(&c, &a, &src, "down").await;
    let svc = compute_service(&c, &a, &src).await;
    assert_eq!(
        svc["forced_down"],
        json!(false),
        "down by heartbeat, not forced"
    );
    assert_eq!(svc["status"], json!("enabled"));
    assert_eq!(compute_service(&c, &a, other).await["state"], json!("up"));
    assert_eq!(hypervisor_state(&c, &a, &src).await, json!("down"));
    assert_eq!(hypervisor_state(&c, &a, other).await, json!("up"));
    let r = c.get(&a, &format!("/servers/{sid}"), Some("2.16")).await;
    assert_eq!(
        r.body["server"]["host_status"],
        json!("UNKNOWN"),
        "{}",
        r.text
    );
    let r = c.get(&a, "/os-availability-zone/detail", None).await;
    let zones = r.body["availabilityZoneInfo"].to_string();
    assert!(zones.contains("\"available\":false"), "{zones}");

    // The scheduler places nothing on the silent host.
    for i in 0..3 {
        let n = c
            .boot(
                &a,
                &format!("after-{i}"),
                Some("2.74"),
                json!({"networks": "none"}),
            )
            .await;
        assert_eq!(n["status"], json!("ACTIVE"));
        assert_eq!(host_of(&n), other);
    }

    // Evacuation is allowed now, and rebuilds the server on the other host.
    let r = evacuate().await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let s = c.wait_status(&a, &sid, &["ACTIVE"], Some("2.74")).await;
    assert_eq!(host_of(&s), other);
    assert_eq!(s["host_status"], json!("UP"));

    // The agent reports again: up at once, and the evacuation it missed is
    // completed (its hold on the old host dropped).
    let r = set_agent(&c, &a, &src, true).await;
    assert_eq!(r.body["agent"]["up"], json!(true));
    assert_eq!(compute_service(&c, &a, &src).await["state"], json!("up"));
    let r = c
        .get(
            &a,
            &format!("/os-migrations?instance_uuid={sid}"),
            Some("2.80"),
        )
        .await;
    assert_eq!(
        r.body["migrations"][0]["status"],
        json!("completed"),
        "{}",
        r.text
    );
    let r = c.get(&a, "/os-hypervisors/detail", Some("2.53")).await;
    let used = r.body["hypervisors"]
        .as_array()
        .and_then(|l| l.iter().find(|h| h["hypervisor_hostname"] == json!(src)))
        .map(|h| h["vcpus_used"].clone());
    assert_eq!(used, Some(json!(0)));
}

#[tokio::test]
async fn heartbeats_keep_services_up_past_service_down_time() {
    let c = cloud(1).await;
    let a = c.login("admin").await;
    let first = compute_service(&c, &a, "rova-sim-1").await;
    tokio::time::sleep(Duration::from_millis(5500)).await;
    let r = c.get(&a, "/os-services", Some("2.11")).await;
    let list = r.body["services"].as_array().cloned().unwrap_or_default();
    assert_eq!(list.len(), 3, "{}", r.text);
    for s in &list {
        assert_eq!(s["state"], json!("up"), "{s}");
    }
    let later = compute_service(&c, &a, "rova-sim-1").await;
    assert!(
        later["updated_at"].as_str() > first["updated_at"].as_str(),
        "{first} then {later}"
    );
    let r = sim(&c, &a, Method::GET, "agents", None).await;
    assert_eq!(r.body["agents"][0]["alive"], json!(true), "{}", r.text);
}

#[tokio::test]
async fn agent_switch_refuses_bad_input() {
    let c = cloud(1).await;
    let a = c.login("admin").await;
    let d = c.login("demo").await;
    let post = |u: &User, host: &str, body: Value| {
        let (u, path) = (u.clone(), format!("agents/{host}"));
        let c = &c;
        async move { sim(c, &u, Method::POST, &path, Some(body)).await }
    };
    let r = post(&a, "rova-sim-1", json!({"alive": "no"})).await;
    assert_eq!(r.fault(400), "'alive' must be a boolean");
    let r = post(&a, "nowhere", json!({"alive": false})).await;
    assert_eq!(r.fault(404), "Compute host nowhere could not be found.");
    let r = post(&d, "rova-sim-1", json!({"alive": false})).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    // Nothing changed: the host still reports.
    let r = sim(&c, &a, Method::GET, "agents", None).await;
    assert_eq!(r.body["agents"][0]["alive"], json!(true), "{}", r.text);
    assert_eq!(
        compute_service(&c, &a, "rova-sim-1").await["state"],
        json!("up")
    );
}

#[test]
fn report_interval_must_be_shorter_than_service_down_time() {
    let mut cfg = rova::config::Config::new(
        std::path::PathBuf::from("/nonexistent"),
        ([127, 0, 0, 1], 0).into(),
    );
    assert!(cfg.validate().is_ok());
    cfg.report_interval = 60;
    let e = cfg.validate().err().unwrap_or_default();
    assert!(
        e.contains("service_down_time: 60 is not greater than report_interval (60)"),
        "{e}"
    );
    cfg.report_interval = 0;
    assert!(cfg.validate().is_err());
}
