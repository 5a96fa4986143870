//! Restarting `rova serve` on the same data directory keeps everything:
//! users and passwords, servers, keypairs, images and ports.

use rova::config::Config;
use serde_json::{json, Value};

async fn token(base: &str, pw: &str) -> String {
    let body = json!({"auth": {"identity": {"methods": ["password"], "password": {"user": {
        "name": "demo", "domain": {"name": "Default"}, "password": pw}}},
        "scope": {"project": {"name": "demo", "domain": {"name": "Default"}}}}});
    let r = reqwest::Client::new()
        .post(format!("{base}/identity/v3/auth/tokens"))
        .json(&body)
        .send()
        .await
        .expect("token");
    assert_eq!(r.status().as_u16(), 201);
    r.headers()["x-subject-token"]
        .to_str()
        .expect("token")
        .to_string()
}

async fn get(base: &str, tok: &str, path: &str) -> Value {
    reqwest::Client::new()
        .get(format!("{base}/compute/v2.1{path}"))
        .header("X-Auth-Token", tok)
        .header("OpenStack-API-Version", "compute 2.90")
        .send()
        .await
        .expect("get")
        .json()
        .await
        .unwrap_or(Value::Null)
}

fn config(dir: &std::path::Path) -> Config {
    let mut c = Config::new(dir.to_path_buf(), "127.0.0.1:0".parse().expect("addr"));
    c.sim_latency_ms = 1;
    c
}

/// A first start on `dir`: the server, its URL, the passwords, a demo
/// token and the bootstrap image.
struct First {
    first: rova::server::Running,
    base: String,
    pw: std::collections::HashMap<String, String>,
    tok: String,
    image: String,
}

async fn first_start(dir: &std::path::Path) -> First {
    let first = rova::server::start(config(dir)).await.expect("first start");
    let base = format!("http://{}", first.addr);
    let pw: std::collections::HashMap<String, String> =
        serde_json::from_slice(&std::fs::read(dir.join("passwords.json")).expect("pw"))
            .expect("json");
    let tok = token(&base, &pw["demo"]).await;
    let image = first
        .app
        .images
        .filter(|_| true)
        .iter()
        .find(|i| i.name.as_deref() == Some(rova::bootstrap::IMAGE_NAME))
        .map(|i| i.id.clone())
        .expect("image");
    First {
        first,
        base,
        pw,
        tok,
        image,
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_restart_keeps_everything() {
    let dir = std::env::temp_dir().join(format!("rova-restart-{}", uuid::Uuid::new_v4()));
    let cfg = || config(&dir);
    let First {
        first,
        base,
        pw,
        tok,
        image,
    } = first_start(&dir).await;
    let http = reqwest::Client::new();
    let r = http
        .post(format!("{base}/compute/v2.1/servers"))
        .header("X-Auth-Token", &tok)
        .header("OpenStack-API-Version", "compute 2.90")
        .json(
            &json!({"server": {"name": "keep-me", "imageRef": image, "flavorRef": "1",
            "networks": "auto", "metadata": {"k": "v"}}}),
        )
        .send()
        .await
        .expect("create");
    assert_eq!(r.status().as_u16(), 202);
    let id = r.json::<Value>().await.expect("body")["server"]["id"]
        .as_str()
        .expect("id")
        .to_string();
    let mut before = Value::Null;
    for _ in 0..500 {
        before = get(&base, &tok, &format!("/servers/{id}")).await;
        if before["server"]["status"] == "ACTIVE" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_eq!(before["server"]["status"], "ACTIVE");
    first.task.abort();
    drop(first);

    // Same directory, new process state: passwords, tokens (signed with the
    // stored key), the server with its addresses and metadata all survive.
    let second = rova::server::start(cfg()).await.expect("second start");
    let base2 = format!("http://{}", second.addr);
    let pw2: std::collections::HashMap<String, String> =
        serde_json::from_slice(&std::fs::read(dir.join("passwords.json")).expect("pw"))
            .expect("json");
    assert_eq!(pw, pw2);
    let after = get(&base2, &tok, &format!("/servers/{id}")).await;
    assert_eq!(after["server"]["status"], "ACTIVE");
    assert_eq!(after["server"]["metadata"], json!({"k": "v"}));
    assert_eq!(after["server"]["addresses"], before["server"]["addresses"]);
    assert_eq!(
        second.app.images.filter(|_| true).len(),
        2,
        "bootstrap does not duplicate images"
    );
    assert_eq!(second.app.compute.flavors.all().len(), 8);
    second.task.abort();
    let _ = std::fs::remove_dir_all(&dir);
}

/// What is left after an action cut short by a restart: the server once
/// its task state is settled, and the events of the interrupted action.
struct CutShort {
    second: rova::server::Running,
    base2: String,
    tok: String,
    id: String,
    after: Value,
    events: Vec<Value>,
}

/// Boots a server, starts `action` (named `name` in the instance actions)
/// whose driver step `slow_op` takes a minute, stops the service once the
/// action's event is open, starts it again on the same data and waits until
/// the server has no task state.
async fn cut_short_by_a_restart(
    dir: &std::path::Path,
    action: Value,
    name: &str,
    slow_op: &str,
) -> CutShort {
    cut_short_at(dir, None, action, name, slow_op, None).await
}

/// [`cut_short_by_a_restart`], with `before` run to its end first, and the
/// stop coming once the server's task state is `crash_at` (when given).
async fn cut_short_at(
    dir: &std::path::Path,
    before: Option<Value>,
    action: Value,
    name: &str,
    slow_op: &str,
    crash_at: Option<&str>,
) -> CutShort {
    let First {
        first,
        base,
        pw: _,
        tok,
        image,
    } = first_start(dir).await;
    let http = reqwest::Client::new();
    let post = |path: String, body: Value| {
        http.post(format!("{base}/compute/v2.1{path}"))
            .header("X-Auth-Token", &tok)
            .header("OpenStack-API-Version", "compute 2.90")
            .json(&body)
            .send()
    };
    let r = post(
        "/servers".into(),
        json!({"server": {"name": "cut-short", "imageRef": image, "flavorRef": "1",
            "networks": "auto"}}),
    )
    .await
    .expect("create");
    assert_eq!(r.status().as_u16(), 202);
    let id = r.json::<Value>().await.expect("body")["server"]["id"]
        .as_str()
        .expect("id")
        .to_string();
    let status = |v: &Value| v["server"]["status"].as_str().unwrap_or("").to_string();
    let mut active = false;
    for _ in 0..3000 {
        if status(&get(&base, &tok, &format!("/servers/{id}")).await) == "ACTIVE" {
            active = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert!(active, "the server never became ACTIVE");
    if let Some(b) = before {
        let r = post(format!("/servers/{id}/action"), b)
            .await
            .expect("action before");
        assert_eq!(r.status().as_u16(), 202);
        let mut idle = false;
        for _ in 0..3000 {
            let v = get(&base, &tok, &format!("/servers/{id}")).await;
            if v["server"]["OS-EXT-STS:task_state"].is_null() {
                idle = true;
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        assert!(idle, "the action before never finished");
    }
    // The action never gets to finish: its driver step takes a minute.
    first
        .app
        .compute
        .fake
        .as_ref()
        .expect("simulated driver")
        .set_slow(slow_op, std::time::Duration::from_secs(60))
        .await
        .expect("slow step set");
    let r = post(format!("/servers/{id}/action"), action)
        .await
        .expect("action");
    assert_eq!(r.status().as_u16(), 202);
    let req_of = |acts: &Value| {
        acts["instanceActions"]
            .as_array()
            .and_then(|a| a.iter().find(|x| x["action"] == name))
            .and_then(|x| x["request_id"].as_str())
            .map(str::to_string)
    };
    // The crash comes once the compute side has started the action: its
    // event is open (not after a guessed delay, which a busy machine beats).
    let mut started = false;
    for _ in 0..3000 {
        let acts = get(&base, &tok, &format!("/servers/{id}/os-instance-actions")).await;
        if let Some(req) = req_of(&acts) {
            let one = get(
                &base,
                &tok,
                &format!("/servers/{id}/os-instance-actions/{req}"),
            )
            .await;
            let task = get(&base, &tok, &format!("/servers/{id}")).await["server"]
                ["OS-EXT-STS:task_state"]
                .clone();
            if one["instanceAction"]["events"]
                .as_array()
                .is_some_and(|e| !e.is_empty())
                && crash_at.is_none_or(|t| task == t)
            {
                started = true;
                break;
            }
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert!(
        started,
        "the {name} event never opened (or {crash_at:?} never came)"
    );
    first.task.abort();
    drop(first);

    let second = rova::server::start(config(dir))
        .await
        .expect("second start");
    // Slow steps survive a restart; the operator clears this one.
    second
        .app
        .compute
        .fake
        .as_ref()
        .expect("simulated driver")
        .clear()
        .await
        .expect("slow step cleared");
    let base2 = format!("http://{}", second.addr);
    let mut after = Value::Null;
    for _ in 0..3000 {
        after = get(&base2, &tok, &format!("/servers/{id}")).await;
        if after["server"]["OS-EXT-STS:task_state"].is_null() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert!(
        after["server"]["OS-EXT-STS:task_state"].is_null(),
        "{after}"
    );
    let acts = get(&base2, &tok, &format!("/servers/{id}/os-instance-actions")).await;
    let req = req_of(&acts).unwrap_or_else(|| panic!("{name} action"));
    let one = get(
        &base2,
        &tok,
        &format!("/servers/{id}/os-instance-actions/{req}"),
    )
    .await;
    let events = one["instanceAction"]["events"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert!(!events.is_empty(), "{one}");
    CutShort {
        second,
        base2,
        tok,
        id,
        after,
        events,
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_action_cut_short_by_a_restart_is_settled() {
    let dir = std::env::temp_dir().join(format!("rova-restart-{}", uuid::Uuid::new_v4()));
    let c = cut_short_by_a_restart(&dir, json!({"pause": null}), "pause", "pause").await;
    assert_eq!(c.after["server"]["status"], "ACTIVE", "{}", c.after);
    // The interrupted action's event is closed as failed.
    assert!(
        c.events.iter().all(|e| e["result"] == "Error"),
        "{:?}",
        c.events
    );
    // And the server takes actions again.
    let r = reqwest::Client::new()
        .post(format!("{}/compute/v2.1/servers/{}/action", c.base2, c.id))
        .header("X-Auth-Token", &c.tok)
        .json(&json!({"pause": null}))
        .send()
        .await
        .expect("pause again");
    assert_eq!(r.status().as_u16(), 202);
    c.second.task.abort();
    let _ = std::fs::remove_dir_all(&dir);
}

/// The retried action ended with the server in `status` (and
/// `power_state`), its events closed as a success; then the service stops.
async fn carried_out(
    c: CutShort,
    dir: &std::path::Path,
    status: &str,
    power_state: Option<u64>,
    action: &str,
) {
    assert_eq!(c.after["server"]["status"], status, "{}", c.after);
    if let Some(p) = power_state {
        assert_eq!(
            c.after["server"]["OS-EXT-STS:power_state"], p,
            "{}",
            c.after
        );
    }
    let events = closed_events(&c, action).await;
    assert!(
        events.iter().all(|e| e["result"] == "Success"),
        "{events:?}"
    );
    c.second.task.abort();
    let _ = std::fs::remove_dir_all(dir);
}

/// Nova's `_init_instance`: a rebuild cut short leaves the server in ERROR
/// (its guest is half rebuilt), the rebuild's event failed.
#[tokio::test(flavor = "multi_thread")]
async fn a_rebuild_cut_short_by_a_restart_leaves_the_server_in_error() {
    let dir = std::env::temp_dir().join(format!("rova-restart-{}", uuid::Uuid::new_v4()));
    let image = {
        // the bootstrap image id is the same on every start of this dir
        let f = first_start(&dir).await;
        let image = f.image.clone();
        f.first.task.abort();
        image
    };
    let c = cut_short_by_a_restart(
        &dir,
        json!({"rebuild": {"imageRef": image}}),
        "rebuild",
        "rebuild",
    )
    .await;
    assert_eq!(c.after["server"]["status"], "ERROR", "{}", c.after);
    assert_eq!(
        c.after["server"]["OS-EXT-STS:vm_state"], "error",
        "{}",
        c.after
    );
    assert!(
        c.events.iter().all(|e| e["result"] == "Error"),
        "{:?}",
        c.events
    );
    c.second.task.abort();
    let _ = std::fs::remove_dir_all(&dir);
}

/// The events of the server's `name` action once all are closed (a
/// retried action closes its event just after its task clears).
async fn closed_events(c: &CutShort, name: &str) -> Vec<Value> {
    let acts = get(
        &c.base2,
        &c.tok,
        &format!("/servers/{}/os-instance-actions", c.id),
    )
    .await;
    let req = acts["instanceActions"]
        .as_array()
        .and_then(|a| a.iter().find(|x| x["action"] == name))
        .and_then(|x| x["request_id"].as_str())
        .map(str::to_string)
        .unwrap_or_else(|| panic!("{name} action"));
    let mut events = Vec::new();
    for _ in 0..3000 {
        let one = get(
            &c.base2,
            &c.tok,
            &format!("/servers/{}/os-instance-actions/{req}", c.id),
        )
        .await;
        events = one["instanceAction"]["events"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        if events.iter().all(|e| !e["finish_time"].is_null()) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert!(!events.is_empty(), "{name}");
    events
}

/// Nova's `_init_instance` retries a stop cut short: the server ends
/// SHUTOFF and the stop's event is closed as a success.
#[tokio::test(flavor = "multi_thread")]
async fn a_stop_cut_short_by_a_restart_is_carried_out() {
    let dir = std::env::temp_dir().join(format!("rova-restart-{}", uuid::Uuid::new_v4()));
    let c = cut_short_by_a_restart(&dir, json!({"os-stop": null}), "stop", "stop").await;
    carried_out(c, &dir, "SHUTOFF", Some(4), "stop").await;
}

/// Nova's `_retry_reboot`: a hard reboot of a stopped server cut short once
/// started, its guest still down, is done again; the server ends ACTIVE
/// and the reboot's event is closed as a success.
#[tokio::test(flavor = "multi_thread")]
async fn a_started_reboot_of_a_down_guest_is_retried_after_a_restart() {
    let dir = std::env::temp_dir().join(format!("rova-restart-{}", uuid::Uuid::new_v4()));
    let c = cut_short_at(
        &dir,
        Some(json!({"os-stop": null})),
        json!({"reboot": {"type": "HARD"}}),
        "reboot",
        "reboot",
        Some("reboot_started_hard"),
    )
    .await;
    carried_out(c, &dir, "ACTIVE", Some(1), "reboot").await;
}

/// Nova's `_init_instance` unpauses a server whose unpause was cut short
/// while its guest is still paused: the server ends ACTIVE.
#[tokio::test(flavor = "multi_thread")]
async fn an_unpause_cut_short_by_a_restart_is_carried_out() {
    let dir = std::env::temp_dir().join(format!("rova-restart-{}", uuid::Uuid::new_v4()));
    let c = cut_short_at(
        &dir,
        Some(json!({"pause": null})),
        json!({"unpause": null}),
        "unpause",
        "unpause",
        None,
    )
    .await;
    carried_out(c, &dir, "ACTIVE", None, "unpause").await;
}
