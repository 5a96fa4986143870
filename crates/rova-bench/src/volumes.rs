//! `--volumes N`: the block-storage benchmark on the simulated driver and
//! the file backend. One at a time, N times each: a blank 1 GiB volume
//! created → `available`, a volume made from the bootstrap image →
//! `available`, and a server booted from an image → ACTIVE against one
//! booted from a volume made from that image → ACTIVE, and a blank 1 GiB
//! volume uploaded to an image (`os-volume_upload_image`, raw and qcow2)
//! → the image `active`. Each sample is
//! the POST sent → the first poll (every 2 ms) that sees the end state;
//! what each run made is deleted before the next.

use crate::client::{self, Api};
use crate::report;
use crate::server;
use crate::stats::{ms, summarize};
use crate::Args;
use serde_json::{json, Value};
use std::path::Path;
use std::time::{Duration, Instant};

const POLL: Duration = Duration::from_millis(2);

/// The block-storage endpoint of the token's project, from the catalog.
pub(crate) async fn volume_base(api: &Api) -> Result<String, String> {
    let r = api
        .http
        .get(format!("{}/identity/v3/auth/catalog", api.base))
        .header("x-auth-token", &api.token)
        .send()
        .await
        .map_err(|e| format!("catalog: {e}"))?;
    let text = r.text().await.map_err(|e| format!("catalog: {e}"))?;
    let v: Value = serde_json::from_str(&text).map_err(|e| format!("catalog: {e}"))?;
    v["catalog"]
        .as_array()
        .and_then(|c| c.iter().find(|e| e["type"] == "block-storage"))
        .and_then(|e| e["endpoints"][0]["url"].as_str())
        .map(str::to_string)
        .ok_or_else(|| "no block-storage endpoint in the catalog".to_string())
}

pub(crate) async fn send(
    api: &Api,
    method: reqwest::Method,
    url: &str,
    body: Option<Value>,
) -> Result<(u16, Value), String> {
    let mut req = api
        .http
        .request(method, url)
        .header("x-auth-token", &api.token);
    if let Some(b) = body {
        req = req
            .header("content-type", "application/json")
            .body(b.to_string());
    }
    let r = req.send().await.map_err(|e| format!("{url}: {e}"))?;
    let status = r.status().as_u16();
    let text = r.text().await.map_err(|e| format!("{url}: {e}"))?;
    Ok((status, serde_json::from_str(&text).unwrap_or(Value::Null)))
}

/// Polls `url` until `done` accepts the answer; gives up after 120 s.
pub(crate) async fn until(
    api: &Api,
    url: &str,
    done: impl Fn(u16, &Value) -> bool,
) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(120);
    while Instant::now() < deadline {
        let (s, v) = send(api, reqwest::Method::GET, url, None).await?;
        if done(s, &v) {
            return Ok(());
        }
        if v.to_string().contains("\"error") {
            return Err(format!("{url}: {v}"));
        }
        tokio::time::sleep(POLL).await;
    }
    Err(format!("{url}: timed out"))
}

/// Creates a volume from `body` and waits until it is `available`;
/// returns its URL.
async fn available_volume(api: &Api, base: &str, body: Value) -> Result<String, String> {
    let (s, v) = send(
        api,
        reqwest::Method::POST,
        &format!("{base}/volumes"),
        Some(body),
    )
    .await?;
    if s != 202 {
        return Err(format!("volume create: HTTP {s}: {v}"));
    }
    let id = v["volume"]["id"].as_str().unwrap_or_default().to_string();
    let url = format!("{base}/volumes/{id}");
    until(api, &url, |_, v| v["volume"]["status"] == "available").await?;
    Ok(url)
}

/// One volume: created → available (timed), then deleted → gone.
async fn volume_once(api: &Api, base: &str, body: Value) -> Result<Duration, String> {
    let t = Instant::now();
    let url = available_volume(api, base, body).await?;
    let took = t.elapsed();
    send(api, reqwest::Method::DELETE, &url, None).await?;
    until(api, &url, |s, _| s == 404).await?;
    Ok(took)
}

/// One upload of a blank 1 GiB volume to an image in `format`: the
/// action's POST → the image `active` (timed), then both deleted.
async fn upload_once(api: &Api, base: &str, format: &str) -> Result<Duration, String> {
    let url = available_volume(api, base, json!({"volume": {"size": 1}})).await?;
    let t = Instant::now();
    let body = json!({"os-volume_upload_image": {"image_name": "bench-upload",
        "disk_format": format}});
    let (s, v) = send(
        api,
        reqwest::Method::POST,
        &format!("{url}/action"),
        Some(body),
    )
    .await?;
    if s != 202 {
        return Err(format!("upload: HTTP {s}: {v}"));
    }
    let image = v["os-volume_upload_image"]["image_id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let image_url = format!("{}/image/v2/images/{image}", api.base);
    until(api, &image_url, |_, v| v["status"] == "active").await?;
    let took = t.elapsed();
    until(api, &url, |_, v| v["volume"]["status"] == "available").await?;
    send(api, reqwest::Method::DELETE, &image_url, None).await?;
    send(api, reqwest::Method::DELETE, &url, None).await?;
    until(api, &url, |s, _| s == 404).await?;
    Ok(took)
}

/// One server: created → ACTIVE (timed), then deleted → gone.
async fn server_once(api: &Api, server: Value) -> Result<Duration, String> {
    let t = Instant::now();
    let a = api
        .call(
            reqwest::Method::POST,
            "/servers",
            Some(client::MICROVERSION),
            Some(json!({ "server": server }).to_string()),
        )
        .await?;
    let v: Value = serde_json::from_slice(&a.body).unwrap_or(Value::Null);
    if a.status != 202 {
        return Err(format!("server create: HTTP {}: {v}", a.status));
    }
    let id = v["server"]["id"].as_str().unwrap_or_default().to_string();
    let path = format!("/servers/{id}");
    loop {
        let s = api.get_json(&path, Some(client::MICROVERSION)).await?;
        match s["server"]["status"].as_str() {
            Some("ACTIVE") => break,
            Some("ERROR") => return Err(format!("server {id} ended in ERROR: {s}")),
            _ => tokio::time::sleep(POLL).await,
        }
    }
    let took = t.elapsed();
    api.call(reqwest::Method::DELETE, &path, None, None).await?;
    while api
        .call(reqwest::Method::GET, &path, None, None)
        .await?
        .status
        != 404
    {
        tokio::time::sleep(POLL).await;
    }
    Ok(took)
}

/// Runs the benchmark (see the module comment).
pub async fn run(args: &Args, rova: &Path) -> Result<(), String> {
    let n = args.volumes;
    let machine = report::Machine::probe(rova);
    println!("{}", machine.describe());
    let load_before = report::loadavg();
    let http = client::http_client(8)?;
    let launch = server::Launch {
        rova,
        sim_latency_ms: args.sim_latency_ms,
        run_tag: "volumes",
        capacity: 8,
        reuse: None,
        extra_args: &[],
        extra_env: &[],
    };
    let (srv, _) = server::start(&launch, &http).await?;
    let result = async {
        let password = client::password_of(&srv.data_dir, "admin")?;
        let token = client::login(&http, &srv.base, "admin", &password, "admin").await?;
        let api = Api {
            http: http.clone(),
            base: srv.base.clone(),
            token,
        };
        let base = volume_base(&api).await?;
        let image = api.image_id().await?;
        let mut rows: Vec<(String, Vec<Duration>)> = Vec::new();
        let mut blank = Vec::new();
        let mut from_image = Vec::new();
        let mut boot_image = Vec::new();
        let mut boot_volume = Vec::new();
        let (mut upload_raw, mut upload_qcow2) = (Vec::new(), Vec::new());
        for _ in 0..n {
            upload_raw.push(upload_once(&api, &base, "raw").await?);
            upload_qcow2.push(upload_once(&api, &base, "qcow2").await?);
            blank.push(volume_once(&api, &base, json!({"volume": {"size": 1}})).await?);
            let body = json!({"volume": {"size": 1, "imageRef": image}});
            from_image.push(volume_once(&api, &base, body).await?);
            let plain = json!({"name": "bench", "imageRef": image, "flavorRef": "1",
                "networks": "none"});
            boot_image.push(server_once(&api, plain).await?);
            let bfv = json!({"name": "bench-bfv", "imageRef": "", "flavorRef": "1",
                "networks": "none", "block_device_mapping_v2": [{"boot_index": 0,
                "uuid": image, "source_type": "image", "destination_type": "volume",
                "volume_size": 1, "delete_on_termination": true}]});
            boot_volume.push(server_once(&api, bfv).await?);
        }
        rows.push(("volume create → available (blank, 1 GiB)".into(), blank));
        rows.push((
            "volume create → available (from the image)".into(),
            from_image,
        ));
        rows.push(("server boot from image → ACTIVE".into(), boot_image));
        rows.push((
            "server boot from volume (made from the image) → ACTIVE".into(),
            boot_volume,
        ));
        rows.push((
            "volume upload → image active (blank 1 GiB, raw)".into(),
            upload_raw,
        ));
        rows.push((
            "volume upload → image active (blank 1 GiB, qcow2)".into(),
            upload_qcow2,
        ));
        Ok::<_, String>(rows)
    }
    .await;
    srv.stop(args.keep).await;
    let rows = result?;
    let mut md = format!(
        "{}\n## {} ({})\n\n{}\n\nLoad average before: {load_before}. {n} of each, one at a time, simulated \
         driver, file backend on this machine's disk.\n\n| what | p50 (ms) | p99 (ms) | max (ms) |\n|---|---|---|---|\n",
        report::begin_marker(&args.label),
        args.label,
        machine.date,
        machine.describe()
    );
    println!(
        "\n{:<58} {:>9} {:>9} {:>9}",
        "what", "p50 ms", "p99 ms", "max ms"
    );
    for (what, samples) in &rows {
        let s = summarize(samples);
        println!(
            "{what:<58} {:>9} {:>9} {:>9}",
            ms(s.p50),
            ms(s.p99),
            ms(s.max)
        );
        md.push_str(&format!(
            "| {what} | {} | {} | {} |\n",
            ms(s.p50),
            ms(s.p99),
            ms(s.max)
        ));
    }
    for note in &args.note {
        md.push_str(&format!("\n{note}\n"));
    }
    md.push_str(&report::end_marker(&args.label));
    md.push('\n');
    if let Some(path) = &args.markdown {
        report::write_markdown(path, &args.label, &md)?;
        println!("wrote section '{}' to {}", args.label, path.display());
    }
    Ok(())
}
