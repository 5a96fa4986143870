//! `rova-bench --burst URL,…`: servers created in a cloud that is already
//! running (the multi-host harness's control replicas), POSTs spread over
//! the replicas given, then polled until none is left building. A light
//! client for a machine whose cores the cloud itself needs: one thread,
//! keep-alive connections. Prints one JSON line for the caller
//! (tests/multihost/bench_multihost.py) to report.

use crate::client::{self, Api};
use crate::Args;
use serde_json::json;
use std::time::{Duration, Instant};

pub async fn run(args: &Args) -> Result<(), String> {
    let data = args
        .cloud_data
        .as_deref()
        .ok_or("--burst needs --cloud-data DIR (the cloud's passwords.json)")?;
    let n = *args.servers.first().ok_or("--servers N is needed")?;
    let password = client::password_of(data, "admin")?;
    let http = client::http_client(args.concurrency)?;
    let mut apis = Vec::new();
    for base in &args.burst {
        let base = base.trim_end_matches('/').to_string();
        let token = client::login(&http, &base, "admin", &password, "admin").await?;
        apis.push(Api {
            http: http.clone(),
            base,
            token,
        });
    }
    let first = apis.first().ok_or("--burst needs a URL")?.clone();
    first.check_flavor(&args.flavor).await?;
    let image = first.image_id().await?;
    let started = Instant::now();
    let networks = json!("none");
    let posts = client::post_servers(
        &apis,
        &image,
        &args.flavor,
        &networks,
        &args.prefix,
        n,
        args.concurrency,
    )
    .await?;
    let building = format!("/servers?status=BUILD&name=^{}-&limit=1", args.prefix);
    let timeout = Duration::from_secs(args.timeout_secs);
    let (total, _) = first
        .until_none_building(&building, started, timeout, Duration::from_millis(20))
        .await?;
    let errors = first
        .count(&format!("status=ERROR&name=^{}-", args.prefix))
        .await?;
    let lat = crate::stats::summarize(&posts.latencies);
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let out = json!({
        "servers": n,
        "posted_s": posts.elapsed.as_secs_f64(),
        "total_s": total.as_secs_f64(),
        "failed": posts.failed,
        "failures": posts.failures,
        "errors": errors,
        "post_p50_ms": ms(lat.p50),
        "post_p99_ms": ms(lat.p99),
    });
    println!("{out}");
    Ok(())
}
