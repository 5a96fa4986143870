//! The HTTP side of the benchmark: logging in, finding the image, creating
//! servers with bounded concurrency, waiting for ACTIVE, and timing lists.
//! Every timing covers the whole exchange: request sent → body received.

use serde_json::{json, Value};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The microversion used for creates and lists.
pub const MICROVERSION: &str = "2.90";

/// A logged-in compute API client.
#[derive(Clone)]
pub struct Api {
    pub http: reqwest::Client,
    pub base: String,
    pub token: String,
}

/// One HTTP answer: status and body bytes.
pub struct Answer {
    pub status: u16,
    pub body: Vec<u8>,
}

/// An HTTP client suited to a loopback benchmark: HTTP/1.1, keep-alive,
/// no Nagle delay, no proxy lookup.
pub fn http_client(pool: usize) -> Result<reqwest::Client, String> {
    reqwest::Client::builder()
        .no_proxy()
        .tcp_nodelay(true)
        .pool_max_idle_per_host(pool)
        .timeout(Duration::from_secs(120))
        .build()
        .map_err(|e| format!("building the HTTP client: {e}"))
}

/// Logs `user` in to `project` (both in the Default domain).
pub async fn login(
    http: &reqwest::Client,
    base: &str,
    user: &str,
    password: &str,
    project: &str,
) -> Result<String, String> {
    let body = json!({"auth": {"identity": {"methods": ["password"], "password": {"user": {
        "name": user, "domain": {"name": "Default"}, "password": password}}},
        "scope": {"project": {"name": project, "domain": {"name": "Default"}}}}});
    let r = http
        .post(format!("{base}/identity/v3/auth/tokens"))
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .map_err(|e| format!("token request: {e}"))?;
    let status = r.status().as_u16();
    let token = r
        .headers()
        .get("x-subject-token")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    match (status, token) {
        (201, Some(t)) => Ok(t),
        (s, _) => Err(format!("login as {user} failed with HTTP {s}")),
    }
}

/// Reads `<data>/passwords.json` and returns the password of `user`.
pub fn password_of(data_dir: &std::path::Path, user: &str) -> Result<String, String> {
    let path = data_dir.join("passwords.json");
    let text =
        std::fs::read_to_string(&path).map_err(|e| format!("reading {}: {e}", path.display()))?;
    let v: Value =
        serde_json::from_str(&text).map_err(|e| format!("parsing {}: {e}", path.display()))?;
    v[user]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| format!("no password for {user} in {}", path.display()))
}

/// The bootstrap `private` network's IPv4 subnet is a /16 (65,534
/// addresses), which `networks: "auto"` draws from. Fleets larger than
/// this get a shared network of their own with a /12 subnet.
pub const AUTO_NETWORK_HOLDS: usize = 60_000;

impl Api {
    /// What the fleet's POSTs ask for: `"auto"`, or for more than
    /// [`AUTO_NETWORK_HOLDS`] servers a new shared network `bench-net`
    /// (10.64.0.0/12, through the network API as admin).
    pub async fn networks_for(&self, n: usize) -> Result<Value, String> {
        if n <= AUTO_NETWORK_HOLDS {
            return Ok(json!("auto"));
        }
        let post = |path: &str, body: Value| {
            self.http
                .post(format!("{}/network/v2.0/{path}", self.base))
                .header("x-auth-token", &self.token)
                .header("content-type", "application/json")
                .body(body.to_string())
                .send()
        };
        let r = post(
            "networks",
            json!({"network": {"name": "bench-net", "shared": true}}),
        )
        .await
        .map_err(|e| format!("creating bench-net: {e}"))?;
        let text = r.text().await.map_err(|e| format!("bench-net: {e}"))?;
        let v: Value =
            serde_json::from_str(&text).map_err(|e| format!("bench-net: {e}: {text}"))?;
        let id = v["network"]["id"]
            .as_str()
            .ok_or_else(|| format!("bench-net: {v}"))?
            .to_string();
        let r = post(
            "subnets",
            json!({"subnet": {"network_id": id, "ip_version": 4, "cidr": "10.64.0.0/12",
                "name": "bench-subnet"}}),
        )
        .await
        .map_err(|e| format!("creating bench-subnet: {e}"))?;
        if !r.status().is_success() {
            return Err(format!("bench-subnet: HTTP {}", r.status()));
        }
        Ok(json!([{"uuid": id}]))
    }

    /// One compute API request; `version` None sends no microversion header.
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        version: Option<&str>,
        body: Option<String>,
    ) -> Result<Answer, String> {
        let mut req = self
            .http
            .request(method, format!("{}/compute/v2.1{path}", self.base))
            .header("x-auth-token", &self.token);
        if let Some(v) = version {
            req = req.header("openstack-api-version", format!("compute {v}"));
        }
        if let Some(b) = body {
            req = req.header("content-type", "application/json").body(b);
        }
        let r = req.send().await.map_err(|e| format!("{path}: {e}"))?;
        let status = r.status().as_u16();
        let body = r
            .bytes()
            .await
            .map_err(|e| format!("{path}: reading body: {e}"))?;
        Ok(Answer {
            status,
            body: body.to_vec(),
        })
    }

    pub async fn get_json(&self, path: &str, version: Option<&str>) -> Result<Value, String> {
        let a = self.call(reqwest::Method::GET, path, version, None).await?;
        if a.status != 200 {
            return Err(format!(
                "GET {path}: HTTP {}: {}",
                a.status,
                String::from_utf8_lossy(&a.body)
            ));
        }
        serde_json::from_slice(&a.body).map_err(|e| format!("GET {path}: {e}"))
    }

    /// An active image, preferring the bootstrap cirros one, through the
    /// compute API's image proxy (microversion 2.1; gone after 2.35).
    pub async fn image_id(&self) -> Result<String, String> {
        let v = self.get_json("/images/detail", None).await?;
        let images = v["images"].as_array().cloned().unwrap_or_default();
        let active: Vec<&Value> = images.iter().filter(|i| i["status"] == "ACTIVE").collect();
        active
            .iter()
            .find(|i| i["name"] == "cirros-0.6.2-x86_64-disk")
            .or_else(|| active.first())
            .and_then(|i| i["id"].as_str())
            .map(str::to_string)
            .ok_or_else(|| "no ACTIVE image found via /compute/v2.1/images/detail".to_string())
    }

    /// Checks flavor `id` exists.
    pub async fn check_flavor(&self, id: &str) -> Result<(), String> {
        self.get_json(&format!("/flavors/{id}"), None)
            .await
            .map(|_| ())
    }

    /// Polls `query` (a list with `limit=1` asking for servers still
    /// building) every `pause` until its answer is empty: the time since
    /// `started` then, and how many polls it took.
    pub async fn until_none_building(
        &self,
        query: &str,
        started: Instant,
        timeout: Duration,
        pause: Duration,
    ) -> Result<(Duration, usize), String> {
        let mut polls = 0;
        loop {
            let v = self.get_json(query, Some(MICROVERSION)).await?;
            polls += 1;
            if v["servers"].as_array().is_some_and(|a| a.is_empty()) {
                return Ok((started.elapsed(), polls));
            }
            if started.elapsed() > timeout {
                return Err(format!(
                    "servers still building after {} s",
                    timeout.as_secs()
                ));
            }
            tokio::time::sleep(pause).await;
        }
    }

    /// Counts servers matching `query` (which must not carry limit/marker),
    /// paging with `limit=1000`.
    pub async fn count(&self, query: &str) -> Result<usize, String> {
        let mut total = 0;
        let mut marker: Option<String> = None;
        loop {
            let mut path = format!("/servers?{query}&limit=1000");
            if let Some(m) = &marker {
                path.push_str(&format!("&marker={m}"));
            }
            let v = self.get_json(&path, Some(MICROVERSION)).await?;
            let page = v["servers"].as_array().cloned().unwrap_or_default();
            total += page.len();
            let has_next = v["servers_links"].as_array().is_some_and(|l| !l.is_empty());
            match page.last().and_then(|s| s["id"].as_str()) {
                Some(id) if has_next => marker = Some(id.to_string()),
                _ => return Ok(total),
            }
        }
    }
}

/// What a burst of POSTs produced.
pub struct Posts {
    /// Latency of each accepted (202) POST.
    pub latencies: Vec<Duration>,
    /// Non-202 answers and transport errors (first few).
    pub failures: Vec<String>,
    pub failed: usize,
    /// First POST sent → last POST answered.
    pub elapsed: Duration,
}

/// POSTs `n` servers named `<prefix>-00000`… with at most `concurrency` in
/// flight (a closed loop: each worker sends its next POST when the last one
/// is answered); worker `w` sends to `apis[w % apis.len()]`.
pub async fn post_servers(
    apis: &[Api],
    image: &str,
    flavor: &str,
    networks: &Value,
    prefix: &str,
    n: usize,
    concurrency: usize,
) -> Result<Posts, String> {
    let networks = Arc::new(networks.clone());
    let next = Arc::new(AtomicUsize::new(0));
    let failures = Arc::new(Mutex::new(Vec::<String>::new()));
    let image = Arc::new(image.to_string());
    let flavor = Arc::new(flavor.to_string());
    let prefix = Arc::new(prefix.to_string());
    let started = Instant::now();
    let mut workers = Vec::new();
    if apis.is_empty() {
        return Err("no API to send the POSTs to".into());
    }
    for w in 0..concurrency.clamp(1, n.max(1)) {
        let api = apis[w % apis.len()].clone();
        let (next, failures) = (next.clone(), failures.clone());
        let (image, flavor, prefix) = (image.clone(), flavor.clone(), prefix.clone());
        let networks = networks.clone();
        workers.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    return lat;
                }
                let body = json!({"server": {
                    "name": format!("{prefix}-{i:05}"),
                    "imageRef": *image,
                    "flavorRef": *flavor,
                    "networks": *networks,
                }})
                .to_string();
                let t = Instant::now();
                let r = api
                    .call(
                        reqwest::Method::POST,
                        "/servers",
                        Some(MICROVERSION),
                        Some(body),
                    )
                    .await;
                let took = t.elapsed();
                let failure = match r {
                    Ok(a) if a.status == 202 => {
                        lat.push(took);
                        None
                    }
                    Ok(a) => Some(format!(
                        "HTTP {}: {}",
                        a.status,
                        String::from_utf8_lossy(&a.body)
                    )),
                    Err(e) => Some(e),
                };
                if let Some(f) = failure {
                    failures.lock().unwrap_or_else(|e| e.into_inner()).push(f);
                }
            }
        }));
    }
    let mut latencies = Vec::with_capacity(n);
    for w in workers {
        latencies.extend(w.await.map_err(|e| format!("create worker: {e}"))?);
    }
    let elapsed = started.elapsed();
    let failures = std::mem::take(&mut *failures.lock().unwrap_or_else(|e| e.into_inner()));
    Ok(Posts {
        failed: failures.len(),
        failures: failures.into_iter().take(5).collect(),
        latencies,
        elapsed,
    })
}

/// Results of the create phase.
pub struct Creates {
    pub posts: Posts,
    /// First POST sent → no server left building (polled).
    pub to_all_active: Duration,
    /// Servers ACTIVE at the end (counted by paging).
    pub active: usize,
    /// Servers in ERROR at the end.
    pub error: usize,
    /// The fault message of one of them.
    pub error_example: Option<String>,
    /// Status polls sent while waiting.
    pub polls: usize,
}

/// Creates `n` servers named `bench-00000`…, then polls until none is left
/// building and counts the ACTIVE ones.
pub async fn create_servers(
    api: &Api,
    image: &str,
    flavor: &str,
    networks: &Value,
    n: usize,
    concurrency: usize,
    timeout: Duration,
) -> Result<Creates, String> {
    let started = Instant::now();
    let posts = post_servers(
        std::slice::from_ref(api),
        image,
        flavor,
        networks,
        "bench",
        n,
        concurrency,
    )
    .await?;
    // One cheap request per poll (`status=BUILD&limit=1`: is anything still
    // building?) — the server filters all rows but renders at most one —
    // then count ACTIVE and ERROR once by paging.
    let (to_all_active, polls) = api
        .until_none_building(
            "/servers?status=BUILD&limit=1",
            started,
            timeout,
            Duration::from_millis(5),
        )
        .await?;
    let active = api.count("status=ACTIVE").await?;
    let error = api.count("status=ERROR").await?;
    let error_example = if error > 0 {
        let v = api
            .get_json("/servers/detail?status=ERROR&limit=1", Some(MICROVERSION))
            .await?;
        v["servers"][0]["fault"]["message"]
            .as_str()
            .map(str::to_string)
    } else {
        None
    };
    Ok(Creates {
        posts,
        to_all_active,
        active,
        error,
        error_example,
        polls,
    })
}

/// One list variant's timings.
pub struct ListRun {
    pub label: &'static str,
    pub query: String,
    pub latencies: Vec<Duration>,
    /// Servers in the (first) answer, and whether it had a next link.
    pub items: usize,
    pub next_link: bool,
    pub bytes: usize,
}

/// Times `GET /servers/{id}` `iterations` times, one at a time, over the
/// ids given in turn.
pub async fn time_show(
    api: &Api,
    ids: &[String],
    iterations: usize,
) -> Result<Vec<Duration>, String> {
    let mut latencies = Vec::with_capacity(iterations);
    for n in 0..iterations {
        let Some(id) = ids.get(n % ids.len().max(1)) else {
            break;
        };
        latencies.push(timed_get(api, &format!("/servers/{id}")).await?);
    }
    Ok(latencies)
}

/// One `GET path` and how long it took; an answer other than 200 is an
/// error.
async fn timed_get(api: &Api, path: &str) -> Result<Duration, String> {
    let t = Instant::now();
    let a = api
        .call(reqwest::Method::GET, path, Some(MICROVERSION), None)
        .await?;
    let took = t.elapsed();
    if a.status != 200 {
        return Err(format!("GET {path}: HTTP {}", a.status));
    }
    Ok(took)
}

/// Times `GET /servers/detail?<query>` `iterations` times, one at a time.
pub async fn time_list(
    api: &Api,
    label: &'static str,
    query: &str,
    iterations: usize,
) -> Result<ListRun, String> {
    let path = if query.is_empty() {
        "/servers/detail".to_string()
    } else {
        format!("/servers/detail?{query}")
    };
    // One untimed warm-up that also checks the answer.
    let a = api
        .call(reqwest::Method::GET, &path, Some(MICROVERSION), None)
        .await?;
    if a.status != 200 {
        return Err(format!("GET {path}: HTTP {}", a.status));
    }
    let v: Value = serde_json::from_slice(&a.body).map_err(|e| format!("GET {path}: {e}"))?;
    let items = v["servers"].as_array().map_or(0, Vec::len);
    let next_link = v["servers_links"].as_array().is_some_and(|l| !l.is_empty());
    let bytes = a.body.len();
    let mut latencies = Vec::with_capacity(iterations);
    for _ in 0..iterations {
        latencies.push(timed_get(api, &path).await?);
    }
    Ok(ListRun {
        label,
        query: query.to_string(),
        latencies,
        items,
        next_link,
        bytes,
    })
}

/// Ids of up to `n` servers (brief list, newest first).
pub async fn server_ids(api: &Api, n: usize) -> Result<Vec<String>, String> {
    let v = api
        .get_json(
            &format!("/servers?status=ACTIVE&limit={}", n.min(1000)),
            Some(MICROVERSION),
        )
        .await?;
    Ok(v["servers"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s["id"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default())
}

/// Polls one server until its status is `want` with no task (2 ms apart).
async fn wait_for(api: &Api, id: &str, want: &str, deadline: Instant) -> Result<(), String> {
    loop {
        let v = api
            .get_json(&format!("/servers/{id}"), Some(MICROVERSION))
            .await?;
        let s = &v["server"];
        if s["status"] == want && s["OS-EXT-STS:task_state"].is_null() {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!("server {id} never reached {want}"));
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// The action round trip as a client sees it, per server: POST pause →
/// poll until PAUSED → POST unpause → poll until ACTIVE. `concurrency`
/// servers go through it at once.
pub async fn action_round_trips(
    api: &Api,
    ids: Vec<String>,
    concurrency: usize,
) -> Result<Vec<Duration>, String> {
    let ids = Arc::new(ids);
    let next = Arc::new(AtomicUsize::new(0));
    let mut workers = Vec::new();
    for _ in 0..concurrency.clamp(1, ids.len().max(1)) {
        let (api, ids, next) = (api.clone(), ids.clone(), next.clone());
        workers.push(tokio::spawn(async move {
            let mut out = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(id) = ids.get(i) else {
                    return Ok::<_, String>(out);
                };
                let deadline = Instant::now() + Duration::from_secs(60);
                let t = Instant::now();
                for (action, want) in [("pause", "PAUSED"), ("unpause", "ACTIVE")] {
                    let a = api
                        .call(
                            reqwest::Method::POST,
                            &format!("/servers/{id}/action"),
                            Some(MICROVERSION),
                            Some(format!("{{\"{action}\": null}}")),
                        )
                        .await?;
                    if a.status != 202 {
                        return Err(format!(
                            "{action} {id}: HTTP {}: {}",
                            a.status,
                            String::from_utf8_lossy(&a.body)
                        ));
                    }
                    wait_for(&api, id, want, deadline).await?;
                }
                out.push(t.elapsed());
            }
        }));
    }
    let mut all = Vec::new();
    for w in workers {
        all.extend(w.await.map_err(|e| format!("action worker: {e}"))??);
    }
    Ok(all)
}
