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

#[tokio::test(flavor = "multi_thread")]
async fn a_restart_keeps_everything() {
    let dir = std::env::temp_dir().join(format!("rova-restart-{}", uuid::Uuid::new_v4()));
    let cfg = || {
        let mut c = Config::new(dir.clone(), "127.0.0.1:0".parse().expect("addr"));
        c.sim_latency_ms = 1;
        c
    };
    let first = rova::server::start(cfg()).await.expect("first start");
    let base = format!("http://{}", first.addr);
    let pw: std::collections::HashMap<String, String> =
        serde_json::from_slice(&std::fs::read(dir.join("passwords.json")).expect("pw"))
            .expect("json");
    let tok = token(&base, &pw["demo"]).await;
    let image = first
        .app
        .images
        .table
        .all()
        .iter()
        .find(|i| i.name.as_deref() == Some(rova::bootstrap::IMAGE_NAME))
        .map(|i| i.id.clone())
        .expect("image");
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
        second.app.images.table.len(),
        2,
        "bootstrap does not duplicate images"
    );
    assert_eq!(second.app.compute.flavors.len(), 8);
    second.task.abort();
    let _ = std::fs::remove_dir_all(&dir);
}
