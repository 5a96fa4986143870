//! Agents on other hosts: a control process with no hosts of its own and
//! an agent listener; an agent that enrolls with a one-time token, keeps
//! its certificate in its state directory, registers its host (a compute
//! service and a hypervisor with the inventory it reports) and sends
//! heartbeats; servers scheduled onto its host built and acted on through
//! the agent API; the agent killed → its service `down` and its servers'
//! `host_status` UNKNOWN, an action on them fails with the host
//! unreachable; the agent back from its state directory (no token) → up,
//! and the action works. Callers without the right certificate are
//! refused on both listeners.

use crate::common::{start_with, TestCloud, User};
use crate::liveness::wait_state;
use reqwest::StatusCode;
use rova::agent::{AgentConfig, RunningAgent};
use rova::agent_api::pki::{self, Pki, CONTROL_NAME};
use rova::agent_api::types::{self, Inventory, RegisterRequest};
use rova::agent_api::{tls, wire};
use serde_json::{json, Value};
use std::path::Path;
use std::time::{Duration, Instant};

async fn control() -> TestCloud {
    start_with(|c| {
        c.local_hosts = false;
        c.agent_listen = Some("127.0.0.1:0".parse().expect("addr"));
        c.report_interval = 1;
        c.service_down_time = 4;
    })
    .await
}

fn agent_cfg(c: &TestCloud, host: &str, token: Option<String>, dir: &Path) -> AgentConfig {
    AgentConfig {
        host: host.into(),
        controls: vec![c.agent_addr.expect("agent listener").to_string()],
        enroll_token: token,
        listen: "127.0.0.1:0".parse().expect("addr"),
        driver: "fake".into(),
        qemu: Default::default(),
        instances_path: None,
        state_dir: dir.to_path_buf(),
        sim_latency_ms: 1,
        inventory: Inventory {
            vcpus: 4,
            memory_mb: 8192,
            disk_gb: 100,
        },
        availability_zone: None,
        report_interval: None,
        metrics_listen: Some("127.0.0.1:0".parse().expect("addr")),
    }
}

async fn token(c: &TestCloud, host: &str) -> String {
    Pki::load(&c.app.store)
        .expect("pki")
        .new_token(host, chrono::Utc::now())
        .await
        .expect("token")
}

/// The last event of a server's most recent action.
async fn last_event(c: &TestCloud, a: &User, id: &str) -> Value {
    let r = c
        .get(
            a,
            &format!("/servers/{id}/os-instance-actions"),
            Some("2.58"),
        )
        .await;
    let req = r.body["instanceActions"][0]["request_id"]
        .as_str()
        .expect("an action")
        .to_string();
    let r = c
        .get(
            a,
            &format!("/servers/{id}/os-instance-actions/{req}"),
            Some("2.58"),
        )
        .await;
    r.body["instanceAction"]["events"][0].clone()
}

#[tokio::test]
async fn an_agent_enrolls_registers_and_runs_its_hosts_servers() {
    let c = control().await;
    let a = c.login("admin").await;
    // No host of its own: nothing can be scheduled yet.
    let r = c.get(&a, "/os-hypervisors", None).await;
    assert_eq!(r.body["hypervisors"], json!([]), "{}", r.text);

    let dir = crate::storage::temp_dir("agent-1");
    let t = token(&c, "node-1").await;
    let agent: RunningAgent = rova::agent::start(agent_cfg(&c, "node-1", Some(t.clone()), &dir))
        .await
        .expect("agent starts");
    wait_state(&c, &a, "node-1", "up").await;
    let r = c.get(&a, "/os-hypervisors/detail", Some("2.53")).await;
    let hv = &r.body["hypervisors"][0];
    assert_eq!(hv["hypervisor_hostname"], "node-1", "{}", r.text);
    assert_eq!(hv["vcpus"], 4);
    assert_eq!(hv["memory_mb"], 8192);
    assert_eq!(hv["state"], "up");
    for f in ["agent.crt", "agent.key", "ca.crt"] {
        assert!(dir.join(f).exists(), "{f} kept in the state directory");
    }

    // The token is spent: a second agent cannot enroll with it.
    let other = crate::storage::temp_dir("agent-dup");
    let dup = rova::agent::start(agent_cfg(&c, "node-1", Some(t), &other)).await;
    assert!(
        dup.as_ref().err().is_some_and(|e| e.contains("refused")),
        "{:?}",
        dup.err()
    );

    // A server lands on the agent's host and is acted on through it.
    let s = c
        .boot(&a, "on-agent", Some("2.74"), json!({"networks": "none"}))
        .await;
    let id = s["id"].as_str().expect("id").to_string();
    let s = c
        .wait_status(&a, &id, &["ACTIVE", "ERROR"], Some("2.16"))
        .await;
    assert_eq!(s["status"], "ACTIVE", "{s}");
    assert_eq!(s["OS-EXT-SRV-ATTR:host"], "node-1");
    assert_eq!(s["host_status"], "UP");
    // The agent's /metrics: its guest, the build it ran, a fresh heartbeat.
    let m = reqwest::get(format!(
        "http://{}/metrics",
        agent.metrics_addr.expect("metrics served")
    ))
    .await
    .expect("metrics")
    .text()
    .await
    .expect("text");
    assert!(m.contains("rova_agent_guests{host=\"node-1\"} 1\n"), "{m}");
    assert!(
        m.contains(
            "rova_agent_driver_calls_total{host=\"node-1\",call=\"spawn\",outcome=\"done\"} 1\n"
        ),
        "{m}"
    );
    let age: f64 = m
        .lines()
        .find_map(|l| l.strip_prefix("rova_agent_heartbeat_age_seconds{host=\"node-1\"} "))
        .and_then(|v| v.parse().ok())
        .expect("heartbeat age");
    assert!((0.0..60.0).contains(&age), "{m}");
    let r = c
        .post(
            &a,
            &format!("/servers/{id}/action"),
            None,
            json!({"os-stop": null}),
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    c.wait_status(&a, &id, &["SHUTOFF"], None).await;

    // The agent dies: its service goes down, the server's host UNKNOWN,
    // and starting the server fails with the host unreachable.
    drop(agent);
    wait_state(&c, &a, "node-1", "down").await;
    let s = c.get(&a, &format!("/servers/{id}"), Some("2.16")).await;
    assert_eq!(s.body["server"]["host_status"], "UNKNOWN", "{}", s.text);
    let r = c
        .post(
            &a,
            &format!("/servers/{id}/action"),
            None,
            json!({"os-start": null}),
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    let t0 = Instant::now();
    let ev = loop {
        let ev = last_event(&c, &a, &id).await;
        if ev["finish_time"].is_string() || t0.elapsed() > Duration::from_secs(30) {
            break ev;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(ev["result"], "Error", "{ev}");
    let s = c.wait_status(&a, &id, &["SHUTOFF", "ACTIVE"], None).await;
    assert_eq!(s["status"], "SHUTOFF", "{s}");

    // Back from its state directory, without a token: up, and it works.
    let back = rova::agent::start(agent_cfg(&c, "node-1", None, &dir))
        .await
        .expect("agent restarts");
    wait_state(&c, &a, "node-1", "up").await;
    let r = c
        .post(
            &a,
            &format!("/servers/{id}/action"),
            None,
            json!({"os-start": null}),
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    let s = c.wait_status(&a, &id, &["ACTIVE"], Some("2.16")).await;
    assert_eq!(s["host_status"], "UP");
    drop(back);
}

#[tokio::test]
async fn only_enrolled_agents_and_control_replicas_are_let_in() {
    let c = control().await;
    let addr = c.agent_addr.expect("agent listener").to_string();
    let t = token(&c, "node-1").await;
    let pin = pki::pinned_ca(&t).expect("pin").to_string();

    // Without a certificate only enrollment is open.
    let anon = wire::Client::new(tls::enrollment_config(&pin).expect("config"));
    let reg = RegisterRequest {
        address: "127.0.0.1:1".into(),
        driver: "fake".into(),
        inventory: Inventory {
            vcpus: 1,
            memory_mb: 512,
            disk_gb: 1,
        },
        availability_zone: None,
        guests: None,
        storage: None,
    };
    let r: Result<Value, _> = anon
        .post(
            &addr,
            CONTROL_NAME,
            types::REGISTER,
            &reg,
            Duration::from_secs(10),
        )
        .await;
    assert!(
        matches!(&r, Err(wire::CallError::Refused(f)) if f.code == 401),
        "{r:?}"
    );
    // A token pinning another CA does not trust this control plane.
    let wrong = wire::Client::new(tls::enrollment_config(&"0".repeat(64)).expect("config"));
    let r: Result<Value, _> = wrong
        .post(
            &addr,
            CONTROL_NAME,
            types::ENROLL,
            &json!({}),
            Duration::from_secs(10),
        )
        .await;
    assert!(matches!(&r, Err(wire::CallError::Unreachable(_))), "{r:?}");

    // An agent's certificate does not let it call another agent.
    let d1 = crate::storage::temp_dir("agent-a");
    let d2 = crate::storage::temp_dir("agent-b");
    let a1 = rova::agent::start(agent_cfg(&c, "node-1", Some(t), &d1))
        .await
        .expect("agent 1");
    let t2 = token(&c, "node-2").await;
    let _a2 = rova::agent::start(agent_cfg(&c, "node-2", Some(t2), &d2))
        .await
        .expect("agent 2");
    let read = |f: &str| std::fs::read_to_string(d2.join(f)).expect("state file");
    let as_node2 = wire::Client::new(
        tls::client_config(&read("ca.crt"), &read("agent.crt"), &read("agent.key"))
            .expect("config"),
    );
    let r: Result<Value, _> = as_node2
        .post(
            &a1.addr.to_string(),
            "node-1",
            types::DRIVER,
            &json!({}),
            Duration::from_secs(10),
        )
        .await;
    assert!(
        matches!(&r, Err(wire::CallError::Refused(f)) if f.code == 403),
        "{r:?}"
    );
}

async fn evacuation_status(c: &TestCloud, a: &User, id: &str) -> Value {
    let r = c
        .get(
            a,
            &format!("/os-migrations?instance_uuid={id}&migration_type=evacuation"),
            Some("2.59"),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    r.body["migrations"][0]["status"].clone()
}

#[tokio::test]
async fn a_server_is_evacuated_from_a_dead_agent_which_cleans_up_when_it_returns() {
    let c = control().await;
    let a = c.login("admin").await;
    let (d1, d2) = (
        crate::storage::temp_dir("evac-1"),
        crate::storage::temp_dir("evac-2"),
    );
    let t1 = token(&c, "node-1").await;
    let agent1 = rova::agent::start(agent_cfg(&c, "node-1", Some(t1), &d1))
        .await
        .expect("agent 1");
    let t2 = token(&c, "node-2").await;
    let _agent2 = rova::agent::start(agent_cfg(&c, "node-2", Some(t2), &d2))
        .await
        .expect("agent 2");
    wait_state(&c, &a, "node-1", "up").await;
    wait_state(&c, &a, "node-2", "up").await;

    let s = c
        .boot(
            &a,
            "evacuee",
            Some("2.74"),
            json!({"networks": "none", "host": "node-1"}),
        )
        .await;
    let id = s["id"].as_str().expect("id").to_string();
    let s = c.wait_status(&a, &id, &["ACTIVE", "ERROR"], None).await;
    assert_eq!(s["OS-EXT-SRV-ATTR:host"], "node-1", "{s}");

    // node-1's agent dies; the operator forces its service down.
    drop(agent1);
    wait_state(&c, &a, "node-1", "down").await;
    let r = c
        .get(
            &a,
            "/os-services?binary=nova-compute&host=node-1",
            Some("2.53"),
        )
        .await;
    let sid = r.body["services"][0]["id"]
        .as_str()
        .expect("service id (2.53)")
        .to_string();
    let r = c
        .compute(
            &a,
            reqwest::Method::PUT,
            &format!("/os-services/{sid}"),
            Some("2.53"),
            Some(json!({"forced_down": true})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let s = c.get(&a, &format!("/servers/{id}"), Some("2.16")).await;
    assert_eq!(s.body["server"]["host_status"], "DOWN", "{}", s.text);

    // Evacuated: rebuilt by node-2's agent, ACTIVE there.
    let r = c
        .post(
            &a,
            &format!("/servers/{id}/action"),
            Some("2.29"),
            json!({"evacuate": {}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let t0 = Instant::now();
    let s = loop {
        let s = c
            .wait_status(&a, &id, &["ACTIVE", "ERROR"], Some("2.16"))
            .await;
        if s["OS-EXT-SRV-ATTR:host"] == "node-2" || t0.elapsed() > Duration::from_secs(30) {
            break s;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(s["status"], "ACTIVE", "{s}");
    assert_eq!(s["OS-EXT-SRV-ATTR:host"], "node-2", "{s}");
    assert_eq!(s["host_status"], "UP");
    // The migration record is `done` once the rebuild has ended, a write
    // after the server's own (as Nova's rebuild sets it after the guest
    // is up): poll for it.
    let t0 = Instant::now();
    loop {
        let st = evacuation_status(&c, &a, &id).await;
        if st == "done" {
            break;
        }
        assert!(t0.elapsed() < Duration::from_secs(30), "evacuation {st}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // node-1's agent comes back: it destroys its stale copy and the
    // evacuation is completed; the server stays where it is.
    let _back = rova::agent::start(agent_cfg(&c, "node-1", None, &d1))
        .await
        .expect("agent 1 again");
    let t0 = Instant::now();
    while evacuation_status(&c, &a, &id).await != "completed" {
        assert!(t0.elapsed() < Duration::from_secs(30), "never completed");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let s = c.get(&a, &format!("/servers/{id}"), None).await;
    assert_eq!(s.body["server"]["status"], "ACTIVE");
    assert_eq!(s.body["server"]["OS-EXT-SRV-ATTR:host"], "node-2");
}

/// The guests an agent's state directory lists.
fn ledger(dir: &Path) -> Vec<String> {
    let bytes = std::fs::read(dir.join("guests.json")).unwrap_or_default();
    serde_json::from_slice(&bytes).unwrap_or_default()
}

async fn server_action(c: &TestCloud, a: &User, id: &str, version: &str, body: Value) {
    let r = c
        .post(a, &format!("/servers/{id}/action"), Some(version), body)
        .await;
    assert!(
        matches!(r.status, StatusCode::ACCEPTED | StatusCode::NO_CONTENT),
        "{}",
        r.text
    );
}

/// An agent lists the guests it runs in its state directory; a server
/// moved to another agent's host moves in that list too. Back after a
/// crash, the agent re-adopts the guests it still runs (their servers
/// untouched, nothing rebuilt) and a server whose guest is gone is
/// stopped, as Nova's power-state sync does; starting it defines the
/// guest again.
#[tokio::test]
async fn an_agent_back_readopts_its_guests_and_a_lost_guests_server_is_stopped() {
    let c = control().await;
    let a = c.login("admin").await;
    let dirs = [
        crate::storage::temp_dir("agent-sync-1"),
        crate::storage::temp_dir("agent-sync-2"),
    ];
    let mut agents = Vec::new();
    for (k, dir) in dirs.iter().enumerate() {
        let host = format!("node-{}", k + 1);
        let t = token(&c, &host).await;
        let cfg = agent_cfg(&c, &host, Some(t), dir);
        agents.push(rova::agent::start(cfg).await.expect("agent starts"));
        wait_state(&c, &a, &host, "up").await;
    }
    let mut ids = Vec::new();
    for name in ["kept", "lost", "moved"] {
        let extra = json!({"networks": "none", "availability_zone": "nova:node-1"});
        let s = c.boot(&a, name, Some("2.74"), extra).await;
        assert_eq!(s["status"], "ACTIVE", "{s}");
        ids.push(s["id"].as_str().expect("id").to_string());
    }
    let (kept, lost, moved) = (&ids[0], &ids[1], &ids[2]);
    let mut want = ids.clone();
    want.sort();
    assert_eq!(ledger(&dirs[0]), want);

    // A cold migration to node-2: the guest leaves node-1's list for
    // node-2's.
    let body = json!({"migrate": {"host": "node-2"}});
    server_action(&c, &a, moved, "2.56", body).await;
    c.wait_status(&a, moved, &["VERIFY_RESIZE"], None).await;
    server_action(&c, &a, moved, "2.56", json!({"confirmResize": null})).await;
    let s = c.wait_status(&a, moved, &["ACTIVE"], None).await;
    assert_eq!(s["OS-EXT-SRV-ATTR:host"], "node-2");
    assert_eq!(ledger(&dirs[1]), vec![moved.clone()]);
    let mut left = vec![kept.clone(), lost.clone()];
    left.sort();
    assert_eq!(ledger(&dirs[0]), left);

    // node-1's agent crashes; `lost`'s guest goes while it is away.
    let node1 = agents.remove(0);
    drop(node1);
    std::fs::write(
        dirs[0].join("guests.json"),
        serde_json::to_vec(&vec![kept]).expect("json"),
    )
    .expect("write the guest list");
    let back = rova::agent::start(agent_cfg(&c, "node-1", None, &dirs[0]))
        .await
        .expect("agent restarts");
    let s = c.wait_status(&a, lost, &["SHUTOFF"], None).await;
    assert_eq!(s["OS-EXT-STS:power_state"], 4, "{s}");
    assert_eq!(s["OS-EXT-SRV-ATTR:host"], "node-1");
    let s = c.get(&a, &format!("/servers/{kept}"), None).await;
    assert_eq!(s.body["server"]["status"], "ACTIVE", "{}", s.text);
    assert_eq!(s.body["server"]["OS-EXT-STS:power_state"], 1);
    assert_eq!(ledger(&dirs[0]), vec![kept.clone()]);

    // Started again, its guest is defined on node-1 once more.
    server_action(&c, &a, lost, "2.1", json!({"os-start": null})).await;
    c.wait_status(&a, lost, &["ACTIVE"], None).await;
    assert_eq!(ledger(&dirs[0]), left);

    // An agent that kept no list (one from before lists were kept) claims
    // no guest lost: it takes the servers placed on its host as its own.
    drop(back);
    std::fs::remove_file(dirs[0].join("guests.json")).expect("remove the list");
    let again = rova::agent::start(agent_cfg(&c, "node-1", None, &dirs[0]))
        .await
        .expect("agent restarts");
    let t0 = Instant::now();
    while !dirs[0].join("guests.json").exists() {
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "no guest list written"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(ledger(&dirs[0]), left);
    for id in [kept, lost] {
        let s = c.get(&a, &format!("/servers/{id}"), None).await;
        assert_eq!(s.body["server"]["status"], "ACTIVE", "{}", s.text);
    }
    drop(again);
    drop(agents);
}

/// The guest environment an agent's QEMU driver sees over the agent API
/// (`/agent/v1/env`, image bytes): the servers of its own host only,
/// reports only about its own host, and an image's bytes fetched into its
/// cache as the image service holds them.
#[tokio::test]
async fn an_agents_guest_environment_answers_for_its_own_host_only() {
    use rova::virt::env::{GuestEnv, GuestEvent};
    let c = control().await;
    let a = c.login("admin").await;
    let mut agents = Vec::new();
    let mut dirs = Vec::new();
    for host in ["node-e1", "node-e2"] {
        let dir = crate::storage::temp_dir(host);
        let t = token(&c, host).await;
        agents.push(
            rova::agent::start(agent_cfg(&c, host, Some(t), &dir))
                .await
                .expect("agent starts"),
        );
        wait_state(&c, &a, host, "up").await;
        dirs.push(dir);
    }
    let s = c
        .boot(
            &a,
            "env-1",
            Some("2.74"),
            json!({"networks": "none", "host": "node-e1"}),
        )
        .await;
    let id = s["id"].as_str().expect("id").to_string();
    let s = c.wait_status(&a, &id, &["ACTIVE", "ERROR"], None).await;
    assert_eq!(s["status"], "ACTIVE", "{s}");
    assert_eq!(s["OS-EXT-SRV-ATTR:host"], "node-e1", "{s}");

    let env_of = |dir: &Path| {
        let read = |f: &str| std::fs::read_to_string(dir.join(f)).expect("identity file");
        let client = wire::Client::new(
            tls::client_config(&read("ca.crt"), &read("agent.crt"), &read("agent.key"))
                .expect("client config"),
        );
        rova::agent::remote_env::RemoteEnv::new(
            client,
            vec![c.agent_addr.expect("agent listener").to_string()],
            dir,
        )
    };
    let (e1, e2) = (env_of(&dirs[0]), env_of(&dirs[1]));

    let mine: Vec<String> = e1
        .instances()
        .await
        .iter()
        .map(|i| i.uuid.clone())
        .collect();
    assert_eq!(mine, vec![id.clone()]);
    assert!(e2.instances().await.is_empty(), "another host's servers");
    let inst = e1.instance(&id).await.expect("answer").expect("the server");
    let facts = e1.guest_facts(&inst).await.expect("facts");
    assert_eq!(facts.dhcp_domain, "novalocal");

    // A report about another host is refused and changes nothing.
    let other = GuestEvent::PoweredOff {
        uuid: id.clone(),
        host: "node-e1".into(),
        was: rova_core::states::VmState::Active,
        seen_at: chrono::Utc::now(),
    };
    assert!(!e2.report(other).await, "node-e2 reported about node-e1");
    let s = c.get(&a, &format!("/servers/{id}"), None).await;
    assert_eq!(s.body["server"]["status"], "ACTIVE", "{}", s.text);

    // The image's bytes, fetched into the agent's cache.
    let image = c.image_id();
    let info = e1.image(&image).await.expect("answer").expect("the image");
    assert!(info.active);
    assert_eq!(info.file, dirs[0].join("images").join(&image));
    let want = std::fs::read(c.app.images.file_path(&image)).expect("image bytes");
    assert_eq!(std::fs::read(&info.file).expect("cached bytes"), want);
    assert!(e1.image("no-such-image").await.expect("answer").is_none());
    drop(agents);
}
