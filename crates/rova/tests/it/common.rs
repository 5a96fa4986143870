//! Shared test harness: starts a real `rova` server in-process on a free
//! loopback port with its own temporary data directory, logs in the
//! bootstrap users, and offers small request helpers that return the
//! status, headers and JSON body.

#![allow(dead_code)]

use reqwest::{Client, Method, StatusCode};
use rova::config::Config;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::path::PathBuf;

/// A running cloud for one test.
pub struct TestCloud {
    pub base: String,
    pub dir: PathBuf,
    /// The PostgreSQL database this cloud keeps its tables in (when the
    /// suite runs on PostgreSQL, see [`test_database`]).
    pub database: Option<rova::store::Database>,
    pub app: std::sync::Arc<rova::app::App>,
    pub http: Client,
    pub passwords: HashMap<String, String>,
    /// Where the agent API listens (when the configuration asks for it).
    pub agent_addr: Option<std::net::SocketAddr>,
    task: tokio::task::JoinHandle<()>,
    /// The cloud's liveness lease and takeover duty: dropped with it.
    life: rova::compute::owners::Life,
}

impl Drop for TestCloud {
    fn drop(&mut self) {
        self.task.abort();
        if !self.dir.as_os_str().is_empty() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// A response: status, headers, body (JSON or Null).
pub struct Resp {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
    pub text: String,
}

impl Resp {
    /// Sends `req` and reads the answer.
    pub async fn of(req: reqwest::RequestBuilder) -> Resp {
        Resp::read(req.send().await.expect("request")).await
    }

    /// Reads a whole response: status, headers, text, JSON body or Null.
    pub async fn read(r: reqwest::Response) -> Resp {
        let status = r.status();
        let headers = r.headers().clone();
        let text = r.text().await.unwrap_or_default();
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Resp {
            status,
            headers,
            body,
            text,
        }
    }

    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    }
    /// Asserts a Nova-shaped error and returns its message.
    pub fn fault(&self, code: u16) -> String {
        assert_eq!(self.status.as_u16(), code, "body: {}", self.text);
        let obj = self.body.as_object().expect("error body is an object");
        assert_eq!(obj.len(), 1, "one top-level key: {}", self.text);
        let (_, inner) = obj.iter().next().expect("key");
        assert_eq!(inner["code"], json!(code));
        inner["message"].as_str().expect("message").to_string()
    }
}

/// Starts a cloud with default configuration (simulated latency 1 ms).
pub async fn start() -> TestCloud {
    start_with(|_| {}).await
}

/// Starts a cloud after letting the test adjust the configuration.
pub async fn start_with(adjust: impl FnOnce(&mut Config)) -> TestCloud {
    let dir = std::env::temp_dir().join(format!("rova-it-{}", uuid::Uuid::new_v4()));
    start_in(dir, adjust).await
}

/// Starts a cloud with the default test configuration on an existing
/// data directory.
pub async fn start_in_dir(dir: PathBuf) -> TestCloud {
    start_in(dir, |_| {}).await
}

/// Starts a cloud on `dir` (a new one, or one a stopped cloud left, or
/// one a running cloud serves: on PostgreSQL a second process).
pub async fn start_in(dir: PathBuf, adjust: impl FnOnce(&mut Config)) -> TestCloud {
    let mut cfg = Config::new(dir.clone(), "127.0.0.1:0".parse().expect("addr"));
    cfg.sim_latency_ms = 1;
    cfg.database = test_database(&dir);
    // The suite runs with instance rows read from the database when
    // ROVA_INSTANCE_CACHE says how few to keep in memory.
    if let Some(n) = std::env::var("ROVA_INSTANCE_CACHE")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        cfg.instance_cache = n;
    }
    let database = cfg.database.clone();
    adjust(&mut cfg);
    let running = rova::server::start(cfg).await.expect("server starts");
    let passwords: HashMap<String, String> =
        serde_json::from_slice(&std::fs::read(dir.join("passwords.json")).expect("passwords.json"))
            .expect("passwords json");
    TestCloud {
        base: format!("http://{}", running.addr),
        dir,
        database,
        app: running.app,
        http: Client::new(),
        passwords,
        agent_addr: running.agent_addr,
        task: running.task,
        life: running.life,
    }
}

/// With `ROVA_TEST_PG_URL` set (a PostgreSQL superuser's URL, as
/// `scripts/pg.sh start` prints), the database of the cloud on `dir`: one
/// of its own on that server, named after the directory, created on first
/// use. Without it, `None`: the embedded SQLite file in `dir`.
pub fn test_database(dir: &std::path::Path) -> Option<rova::store::Database> {
    use std::hash::{Hash, Hasher};
    let url = std::env::var("ROVA_TEST_PG_URL")
        .ok()
        .filter(|u| !u.is_empty())?;
    let mut h = std::collections::hash_map::DefaultHasher::new();
    dir.hash(&mut h);
    let name = format!("rova_it_{:016x}", h.finish());
    rova::store::create_database(&url, &name).expect("creating the test database");
    Some(rova::store::Database::Postgres(rova::store::with_database(
        &url, &name,
    )))
}

/// A logged-in user.
#[derive(Clone)]
pub struct User {
    pub token: String,
    pub user_id: String,
    pub project_id: String,
}

impl TestCloud {
    /// Stops this server and starts a new one (on a new port, default
    /// configuration) on the same data directory, as `rova serve` restarted.
    pub async fn restart(self) -> TestCloud {
        self.restart_with(|_| {}).await
    }

    /// [`TestCloud::restart`] after letting the test adjust the
    /// configuration.
    pub async fn restart_with(mut self, adjust: impl FnOnce(&mut Config)) -> TestCloud {
        self.task.abort();
        let dir = std::mem::take(&mut self.dir);
        drop(self);
        start_in(dir, adjust).await
    }

    /// Token for one of the bootstrap users (project = theirs).
    pub async fn login(&self, user: &str) -> User {
        let project = match user {
            "admin" => "admin",
            "demo" | "demo_reader" | "demo_manager" => "demo",
            "alt_demo" => "alt_demo",
            other => other,
        };
        let pw = self.passwords.get(user).cloned().unwrap_or_default();
        let body = json!({"auth": {"identity": {"methods": ["password"], "password": {"user": {
            "name": user, "domain": {"name": "Default"}, "password": pw}}},
            "scope": {"project": {"name": project, "domain": {"name": "Default"}}}}});
        let r = self
            .http
            .post(format!("{}/identity/v3/auth/tokens", self.base))
            .json(&body)
            .send()
            .await
            .expect("token request");
        assert_eq!(r.status(), StatusCode::CREATED, "login {user}");
        let token = r
            .headers()
            .get("x-subject-token")
            .and_then(|v| v.to_str().ok())
            .expect("x-subject-token")
            .to_string();
        let v: Value = r.json().await.expect("token body");
        User {
            token,
            user_id: v["token"]["user"]["id"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
            project_id: v["token"]["project"]["id"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
        }
    }

    /// A compute API call at a microversion (None = no header = 2.1).
    pub async fn compute(
        &self,
        u: &User,
        method: Method,
        path: &str,
        version: Option<&str>,
        body: Option<Value>,
    ) -> Resp {
        let url = format!("{}/compute/v2.1{path}", self.base);
        let mut req = self
            .http
            .request(method, url)
            .header("X-Auth-Token", &u.token);
        if let Some(v) = version {
            req = req.header("OpenStack-API-Version", format!("compute {v}"));
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        Resp::of(req).await
    }

    pub async fn get(&self, u: &User, path: &str, version: Option<&str>) -> Resp {
        self.compute(u, Method::GET, path, version, None).await
    }

    pub async fn post(&self, u: &User, path: &str, version: Option<&str>, body: Value) -> Resp {
        self.compute(u, Method::POST, path, version, Some(body))
            .await
    }

    /// Id of a bootstrap image (the primary one).
    pub fn image_id(&self) -> String {
        self.app
            .images
            .filter(|_| true)
            .iter()
            .find(|i| i.name.as_deref() == Some(rova::bootstrap::IMAGE_NAME))
            .map(|i| i.id.clone())
            .expect("bootstrap image")
    }

    /// Id of the bootstrap network.
    pub fn network_id(&self) -> String {
        self.app
            .networks
            .networks
            .all()
            .iter()
            .find(|n| n.name == rova::bootstrap::NETWORK_NAME)
            .map(|n| n.id.clone())
            .expect("bootstrap network")
    }

    /// Id of the bootstrap's external network (`public`).
    pub fn public_network_id(&self) -> String {
        self.app
            .networks
            .networks
            .filter(|n| n.name == rova::bootstrap::PUBLIC_NETWORK_NAME)
            .pop()
            .map(|n| n.id.clone())
            .expect("public network")
    }

    /// Creates a server and waits until it leaves BUILD; returns its body.
    pub async fn boot(&self, u: &User, name: &str, version: Option<&str>, extra: Value) -> Value {
        let mut server = json!({"name": name, "imageRef": self.image_id(), "flavorRef": "1"});
        // `networks` is required (and may be "auto") from 2.37 only.
        let minor = version
            .and_then(|v| v.strip_prefix("2."))
            .map(|m| m.parse::<u32>().unwrap_or(u32::MAX))
            .or_else(|| (version == Some("latest")).then_some(u32::MAX));
        if minor.is_some_and(|m| m >= 37) {
            server["networks"] = json!("auto");
        }
        if let (Some(s), Some(e)) = (server.as_object_mut(), extra.as_object()) {
            for (k, v) in e {
                s.insert(k.clone(), v.clone());
            }
        }
        let r = self
            .post(u, "/servers", version, json!({"server": server}))
            .await;
        assert_eq!(r.status, StatusCode::ACCEPTED, "create: {}", r.text);
        let id = r.body["server"]["id"].as_str().expect("id").to_string();
        self.wait_status(u, &id, &["ACTIVE", "ERROR"], version)
            .await
    }

    /// Stops server `id` (`os-stop`, answered 202) and waits until it is
    /// SHUTOFF; the stop's request id.
    pub async fn stop(&self, u: &User, id: &str) -> String {
        let r = self
            .post(
                u,
                &format!("/servers/{id}/action"),
                None,
                json!({"os-stop": null}),
            )
            .await;
        assert_eq!(r.status, StatusCode::ACCEPTED, "os-stop: {}", r.text);
        let req = r.header("x-openstack-request-id").expect("request id");
        self.wait_status(u, id, &["SHUTOFF"], None).await;
        req
    }

    /// Polls a server until its status is one of `want` (10 s limit).
    pub async fn wait_status(
        &self,
        u: &User,
        id: &str,
        want: &[&str],
        version: Option<&str>,
    ) -> Value {
        let mut last = String::new();
        for _ in 0..1000 {
            let r = self.get(u, &format!("/servers/{id}"), version).await;
            last = r.text.clone();
            if r.status == StatusCode::OK {
                let st = r.body["server"]["status"]
                    .as_str()
                    .unwrap_or("")
                    .to_string();
                if want.contains(&st.as_str()) {
                    return r.body["server"].clone();
                }
            } else if want.contains(&"404") && r.status == StatusCode::NOT_FOUND {
                return Value::Null;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        panic!("server {id} never reached {want:?}; last seen: {last}");
    }
}
